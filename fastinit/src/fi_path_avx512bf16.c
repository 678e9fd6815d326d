/* The AVX-512 path with VBMI and BF16 (Sapphire Rapids, Zen 4 and later): the
 * avx512vbmi path's kernels, whose bfloat16 uniform whole blocks round by
 * AVX512-BF16's vcvtne2ps2bf16 where no value can be a float32 subnormal, the one
 * input it rounds differently (fi_half.h, under __AVX512BF16__). fi_dispatch.c runs
 * it only on CPUs with all of them; VBMI without BF16 (Ice Lake) runs
 * fi_path_avx512vbmi.c. */
#define FI_PATH_SUFFIX avx512bf16
#define FI_PATH_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,avx512bf16,f16c"
#define FI_PATH_VBMI 1
#define FI_PATH_BF16 1
#include "fi_path_avx512.inc"
