/* The AVX-512 path with VBMI (F, DQ, BW, VL, VBMI, with F16C: Ice Lake and later;
 * those with BF16 too run fi_path_avx512bf16.c, these kernels plus one conversion):
 * the AVX-512 path's kernels, whose whole-block normal fast paths look their
 * Ziggurat layers up by VBMI's byte permutes (fi_normal.h, under __AVX512VBMI__).
 * fi_dispatch.c runs it only on CPUs with all of them; the AVX-512 CPUs without
 * VBMI (Skylake-SP, Cascade Lake) run fi_path_avx512.c. */
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)   /* as FI_X86 */
#if defined(FI_EMULATE_AVX512)      /* the build's own instruction set, emulated */
#define __AVX512VBMI__ 1
#include "fi_emulate.h"
#elif defined(__clang__)
#pragma clang attribute push(                                                              \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,f16c"))),          \
    apply_to = function)
#include "fi_avx512_macros.h"        /* which the attribute does not define */
#define __AVX512VBMI__ 1
#else
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,f16c")
#endif
#define FI_PATH_SUFFIX avx512vbmi
#include "fi_path.inc"
#if defined(__clang__) && !defined(FI_EMULATE_AVX512)
#pragma clang attribute pop
#endif
#endif
