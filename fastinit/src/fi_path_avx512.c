/* The AVX-512 path (F, DQ, BW, VL, with F16C): every kernel compiled for AVX-512,
 * as fi_path_avx2.c is for AVX2. fi_dispatch.c runs it only on CPUs with all of them. */
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)   /* as FI_X86 */
#if defined(FI_EMULATE_AVX512)      /* the build's own instruction set, emulated */
#include "fi_emulate.h"
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,f16c"))), \
                             apply_to = function)
#include "fi_avx512_macros.h"        /* which the attribute does not define */
#else
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,f16c")
#endif
#define FI_PATH_SUFFIX avx512
#include "fi_path.inc"
#if defined(__clang__) && !defined(FI_EMULATE_AVX512)
#pragma clang attribute pop
#endif
#endif
