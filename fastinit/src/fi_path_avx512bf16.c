/* The AVX-512 path with VBMI and BF16 (Sapphire Rapids, Zen 4 and later): the
 * avx512vbmi path's kernels, whose bfloat16 uniform whole blocks round by
 * AVX512-BF16's vcvtne2ps2bf16 where no value can be a float32 subnormal, the one
 * input it rounds differently (fi_half.h, under __AVX512BF16__). fi_dispatch.c runs
 * it only on CPUs with all of them; VBMI without BF16 (Ice Lake) runs
 * fi_path_avx512vbmi.c. */
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)   /* as FI_X86 */
#if defined(FI_EMULATE_AVX512)      /* the build's own instruction set, emulated */
#define __AVX512VBMI__ 1
#define __AVX512BF16__ 1
#include "fi_emulate.h"
#elif defined(__clang__)
#pragma clang attribute push(                                                              \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,avx512bf16,f16c"))), \
    apply_to = function)
#include "fi_avx512_macros.h"        /* which the attribute does not define */
#define __AVX512VBMI__ 1
#define __AVX512BF16__ 1
#else
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,avx512bf16,f16c")
#endif
#define FI_PATH_SUFFIX avx512bf16
#include "fi_path.inc"
#if defined(__clang__) && !defined(FI_EMULATE_AVX512)
#pragma clang attribute pop
#endif
#endif
