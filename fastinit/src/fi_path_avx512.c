/* The AVX-512 path (F, DQ, BW, VL, with F16C): every kernel compiled for AVX-512,
 * as fi_path_avx2.c is for AVX2. fi_dispatch.c runs it only on CPUs with all of them. */
#define FI_PATH_SUFFIX avx512
#define FI_PATH_TARGET "avx512f,avx512dq,avx512bw,avx512vl,f16c"
#define FI_PATH_VBMI 0
#define FI_PATH_BF16 0
#include "fi_path_avx512.inc"
