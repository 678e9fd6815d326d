/*
 * An emulated AVX-512: what the AVX-512 paths' translation units include
 * (fi_path_avx512.inc) instead of setting their instruction set when the build defines FI_EMULATE_AVX512 (setup.py,
 * FASTINIT_EMULATE_AVX512; run by tools/emulated_paths.py). Their kernels then take
 * the same AVX-512 branches, with the same intrinsics, computed by SIMDe's portable
 * implementations (the SIMD Everywhere library, Debian's libsimde-dev) in the
 * build's own instruction set. So a CPU without AVX-512 runs those paths, slowly, and
 * the tests hold their bits to the specification on any machine. Never in a build
 * that users install: such a build says FI_EMULATE_AVX512 in its flags
 * (fastinit._runtime.build_facts()).
 */
#ifndef FI_EMULATE_H
#define FI_EMULATE_H

#include <stdint.h>
#include <string.h>

#include "fi_avx512_macros.h"        /* the macros GCC's target pragma defines */

#define SIMDE_NO_NATIVE                     /* computed, never the CPU's own instructions */
#define SIMDE_ENABLE_NATIVE_ALIASES         /* under the intrinsics' own names */
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

/* fi_common.h: the intrinsics are these, not <immintrin.h>'s */
#define FI_EMULATED_INTRINSICS 1

/* The few the kernels use that SIMDe 0.7 (Debian 12's) lacks, by their definitions in
 * Intel's manual; a SIMDe that has one defines its name, and its own is used. The
 * lane conversions: N lanes of type FROM converted (C's conversion: to nearest,
 * or truncated to the low bits) to type TO, the result's other bytes zero. */
#define FI_EMULATED_CONVERT(NAME, RESULT, ARG, FROM, TO, N)                              \
    static inline RESULT NAME(ARG a)                                                      \
    {                                                                                     \
        FROM s[N];                                                                        \
        TO d[sizeof(RESULT) / sizeof(TO)] = {0};                                          \
        RESULT r;                                                                         \
        memcpy(s, &a, sizeof s);                                                          \
        for (int i = 0; i < (N); i++) d[i] = (TO)s[i];                                    \
        memcpy(&r, d, sizeof r);                                                          \
        return r;                                                                         \
    }
#ifndef _mm512_cvtepi32_ps
FI_EMULATED_CONVERT(_mm512_cvtepi32_ps, __m512, __m512i, int32_t, float, 16)    /* vcvtdq2ps */
#endif
#ifndef _mm512_cvtepi32_epi8
FI_EMULATED_CONVERT(_mm512_cvtepi32_epi8, __m128i, __m512i, uint32_t, uint8_t, 16) /* vpmovdb */
#endif
#ifndef _mm512_cvtepi64_epi8
FI_EMULATED_CONVERT(_mm512_cvtepi64_epi8, __m128i, __m512i, uint64_t, uint8_t, 8)  /* vpmovqb */
#endif
#ifndef _mm512_cvtepu32_ps
FI_EMULATED_CONVERT(_mm512_cvtepu32_ps, __m512, __m512i, uint32_t, float, 16)  /* vcvtudq2ps */
#endif
#ifndef _mm512_cvtepu64_pd
FI_EMULATED_CONVERT(_mm512_cvtepu64_pd, __m512d, __m512i, uint64_t, double, 8) /* vcvtuqq2pd */
#endif
#undef FI_EMULATED_CONVERT

#ifndef _mm512_cvtps_ph
static inline __m256i fi_emulated_cvtps_ph512(__m512 a, const int rounding)   /* vcvtps2ph */
{
    __m256 half[2];
    __m128i h[2];
    __m256i r;
    memcpy(half, &a, sizeof half);
    h[0] = _mm256_cvtps_ph(half[0], rounding);
    h[1] = _mm256_cvtps_ph(half[1], rounding);
    memcpy(&r, h, sizeof r);
    return r;
}
#define _mm512_cvtps_ph(a, rounding) fi_emulated_cvtps_ph512((a), (rounding))
#endif

#ifndef _mm512_cvtne2ps_pbh
/* vcvtne2ps2bf16 (AVX512-BF16): 32 float32 values (b, then a) to bfloat16 as Intel's
 * manual defines it: a NaN to its top half made quiet; a subnormal taken as a zero of
 * its sign (DAZ); else rounded to nearest even. */
static inline __m512i fi_emulated_cvtne2ps_pbh(__m512 a, __m512 b)
{
    uint32_t x[32];
    uint16_t r[32];
    __m512i out;
    memcpy(x, &b, 64);
    memcpy(x + 16, &a, 64);
    for (int i = 0; i < 32; i++) {
        uint32_t v = x[i];
        if ((v & 0x7FFFFFFFu) > 0x7F800000u) {
            r[i] = (uint16_t)((v >> 16) | 0x40u);
            continue;
        }
        if ((v & 0x7F800000u) == 0) v &= 0x80000000u;
        r[i] = (uint16_t)((v + 0x7FFFu + ((v >> 16) & 1u)) >> 16);
    }
    memcpy(&out, r, sizeof out);
    return out;
}
#define _mm512_cvtne2ps_pbh(a, b) fi_emulated_cvtne2ps_pbh((a), (b))
#endif

/* the mask types' and constants' own names */
typedef simde__mmask8 __mmask8;
typedef simde__mmask16 __mmask16;
typedef simde__mmask32 __mmask32;
typedef simde__mmask64 __mmask64;
/* unsigned a < b, lane by lane, as a mask (vpcmpud, vpcmpuq) */
#define FI_EMULATED_LESS(NAME, MASK, T, N)                                                 \
    static inline MASK NAME(__m512i a, __m512i b)                                         \
    {                                                                                     \
        T x[N], y[N];                                                                     \
        MASK m = 0;                                                                       \
        memcpy(x, &a, sizeof x);                                                          \
        memcpy(y, &b, sizeof y);                                                          \
        for (int i = 0; i < (N); i++) m |= (MASK)((MASK)(x[i] < y[i]) << i);              \
        return m;                                                                         \
    }
#ifndef _mm512_cmplt_epu32_mask
FI_EMULATED_LESS(_mm512_cmplt_epu32_mask, __mmask16, uint32_t, 16)
#endif
#ifndef _mm512_cmplt_epu64_mask
FI_EMULATED_LESS(_mm512_cmplt_epu64_mask, __mmask8, uint64_t, 8)
#endif
#undef FI_EMULATED_LESS
#ifndef _MM_FROUND_TO_NEAREST_INT
#define _MM_FROUND_TO_NEAREST_INT SIMDE_MM_FROUND_TO_NEAREST_INT
#endif
#ifndef _MM_FROUND_NO_EXC
#define _MM_FROUND_NO_EXC SIMDE_MM_FROUND_NO_EXC
#endif
#ifndef _CMP_UNORD_Q
#define _CMP_UNORD_Q SIMDE_CMP_UNORD_Q
#endif

/* non-temporal stores: plain ones (the values are what the tests see) */
#ifndef _mm512_stream_ps
static inline void _mm512_stream_ps(void *p, __m512 a) { memcpy(p, &a, sizeof a); }
#endif
#ifndef _mm512_stream_si512
static inline void _mm512_stream_si512(void *p, __m512i a) { memcpy(p, &a, sizeof a); }
#endif

#endif
