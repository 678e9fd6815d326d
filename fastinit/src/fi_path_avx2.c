/* The AVX2 path (with F16C): every kernel compiled for AVX2, whose gathers, masks
 * and half-precision conversions the kernels use under __AVX2__ / __F16C__.
 * fi_dispatch.c runs it only on CPUs that have both. The instruction set is set for
 * the whole file (GCC: #pragma GCC target, which also defines the ISA macros;
 * Clang: a target attribute on every function, which does not, so the macros are
 * defined here: without them a Clang build compiled the kernels' portable code, with
 * the same bits, in 1.1 to 2.1 times GCC's time on Zen 3). */
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)   /* as FI_X86 */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,f16c"))), apply_to = function)
#define __AVX__ 1
#define __AVX2__ 1
#define __F16C__ 1
#else
#pragma GCC target("avx2,f16c")
#endif
#define FI_PATH_SUFFIX avx2
#include "fi_path.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
