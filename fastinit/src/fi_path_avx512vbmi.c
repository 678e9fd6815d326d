/* The AVX-512 path with VBMI (F, DQ, BW, VL, VBMI, with F16C: Ice Lake and later;
 * those with BF16 too run fi_path_avx512bf16.c, these kernels plus one conversion):
 * the AVX-512 path's kernels, whose whole-block normal fast paths look their
 * Ziggurat layers up by VBMI's byte permutes (fi_normal.h, under __AVX512VBMI__).
 * fi_dispatch.c runs it only on CPUs with all of them; the AVX-512 CPUs without
 * VBMI (Skylake-SP, Cascade Lake) run fi_path_avx512.c. */
#define FI_PATH_SUFFIX avx512vbmi
#define FI_PATH_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,f16c"
#define FI_PATH_VBMI 1
#define FI_PATH_BF16 0
#include "fi_path_avx512.inc"
