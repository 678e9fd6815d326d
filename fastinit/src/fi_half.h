/*
 * float32 values rounded to 16 bits, to nearest even: bfloat16 (the top half of the
 * float32 bits, NaN kept quiet) and IEEE float16 (docs/stream.md, section 7).
 *
 * Each conversion takes NAN_FREE, a constant at every call: set, the values are known
 * not to be NaN and the NaN handling is left out, which is exact for every other
 * value. Every fill passes it (no fill of finite parameters makes a NaN: section 7),
 * which took 6% (bfloat16) and 7% (float16) off an in-cache uniform block on AVX2;
 * the tests' whole-range rounding (fi_round16) checks both settings.
 */
#ifndef FI_HALF_H
#define FI_HALF_H

#include "fi_common.h"

/* 8 values below 2^16 to 16 bits. */
FI_INLINE fi_u16x8 fi_narrow_u32x8(fi_u32x8 x)
{
#ifdef __AVX2__
    return (fi_u16x8)_mm_packus_epi32(_mm256_castsi256_si128((__m256i)x),
                                      _mm256_extracti128_si256((__m256i)x, 1));
#else
    return __builtin_convertvector(x, fi_u16x8);
#endif
}

/* 8 float32 values to bfloat16 bits: the top half, rounded to nearest even (a NaN
 * stays a quiet NaN unless NAN_FREE). */
FI_INLINE fi_u16x8 fi_to_bf16x8(fi_f32x8 v, int nan_free)
{
    const fi_u32x8 b = (fi_u32x8)v;
    const fi_u32x8 rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
    if (nan_free) return fi_narrow_u32x8(rounded);
    const fi_u32x8 nan = (fi_u32x8)(v != v);
    if (__builtin_expect(fi_mask_bits_u32x8(nan) == 0, 1)) return fi_narrow_u32x8(rounded);
    return fi_narrow_u32x8((rounded & ~nan) | (((b >> 16) | 0x40u) & nan));
}

/* 8 float32 values to float16 bits, IEEE round to nearest even (a NaN to the
 * specified quiet NaN unless NAN_FREE). Without F16C,
 * branch-free: |x| >= 2^16 or NaN: infinity or a quiet NaN; |x| < 2^-14 (float16 subnormals):
 * one IEEE addition of 2^-1 (whose unit in the last place is float16's 2^-24)
 * rounds the magnitude, and its low bits are the result; otherwise the exponent
 * is rebased and the 13 dropped bits rounded half to even (a carry into the
 * exponent gives the next binade or infinity). */
FI_INLINE fi_u16x8 fi_to_f16x8(fi_f32x8 v, int nan_free)
{
#ifdef __F16C__
    /* vcvtps2ph rounds to nearest even as below, subnormals included; only its NaN
     * differs (it keeps payload bits): a NaN becomes sign | 0x7E00 as below, off the
     * fast path (one compare tells that no lane is a NaN). */
    const fi_u16x8 h =
        (fi_u16x8)_mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (nan_free || __builtin_expect(fi_mask_bits_u32x8((fi_u32x8)(v != v)) == 0, 1)) return h;
    const fi_u16x8 nan = (fi_u16x8)((h & 0x7FFFu) > 0x7C00u);
    return (h & ~nan) | (((h & 0x8000u) | 0x7E00u) & nan);
#else
    const fi_u32x8 b = (fi_u32x8)v;
    const fi_u32x8 sign = (b >> 16) & 0x8000u;
    const fi_u32x8 a = b & 0x7FFFFFFFu;
    const fi_u32x8 big = (fi_u32x8)(a >= 0x47800000u);    /* >= 2^16, inf, NaN */
    const fi_u32x8 is_nan = nan_free ? (fi_u32x8){0} : (fi_u32x8)(a > 0x7F800000u);
    const fi_u32x8 over = (is_nan & 0x7E00u) | (~is_nan & 0x7C00u);
    const fi_u32x8 tiny = (fi_u32x8)(a < 0x38800000u);                /* < 2^-14 */
    const fi_f32x8 magic = fi_splat_f32(0.5f);
    const fi_u32x8 sub = (fi_u32x8)((fi_f32x8)a + magic) - (fi_u32x8)magic;
    const fi_u32x8 norm = (a - 0x38000000u + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    const fi_u32x8 mag = (big & over) | (~big & ((tiny & sub) | (~tiny & norm)));
    return __builtin_convertvector(sign | mag, fi_u16x8);
#endif
}

/* Stores 8 float32 values rounded to 16 bits (bfloat16 or float16) at dst:
 * non-temporal when stream is set (dst then 16-byte aligned). */
FI_INLINE void fi_put_half8(uint16_t *dst, fi_f32x8 v, int stream, int bf16, int nan_free)
{
    const fi_u16x8 h = bf16 ? fi_to_bf16x8(v, nan_free) : fi_to_f16x8(v, nan_free);
#ifdef FI_X86
    if (stream) { _mm_stream_si128((__m128i *)dst, (__m128i)h); return; }
#endif
    (void)stream;
    memcpy(dst, &h, sizeof h);
}

#ifdef __AVX512BW__
/* 32 float32 values (v0, then v1) rounded to 16 bits, as fi_put_half8 rounds them, in
 * one 64-byte vector: bfloat16 from the high words of both vectors by one two-source
 * word permute, float16 by two vcvtps2ph; unless NAN_FREE, a NaN is set as there,
 * off the fast path (one compare per vector tells that no lane is a NaN). */
typedef uint16_t fi_u16x32 __attribute__((vector_size(64)));

/* b + 0x7FFF + ((b >> 16) & 1), whose high word is bfloat16's rounding of b: the
 * 1 added under a mask of the lanes whose bit 16 is set (vptestmd): three
 * instructions, none a shift, in place of four (Zen 4, in cache: a capped bfloat16
 * uniform block 0.97 of its time, a normal one 0.99). */
FI_INLINE fi_u32x16 fi_round_bf16x16(fi_u32x16 b)
{
    const __mmask16 odd = _mm512_test_epi32_mask((__m512i)b, _mm512_set1_epi32(0x10000));
    const __m512i r = _mm512_add_epi32((__m512i)b, _mm512_set1_epi32(0x7FFF));
    return (fi_u32x16)_mm512_mask_sub_epi32(r, odd, r, _mm512_set1_epi32(-1));
}

/* 16 float32 values, none a NaN, to float16 bits by one vcvtps2ph (as fi_put_half8
 * rounds them with NAN_FREE). */
FI_INLINE __m256i fi_f16x16(fi_f32x16 v)
{
    return _mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

FI_INLINE fi_u16x32 fi_half32(fi_f32x16 v0, fi_f32x16 v1, int bf16, int nan_free)
{
    const __mmask16 nan0 = nan_free ? 0 : _mm512_cmp_ps_mask((__m512)v0, (__m512)v0, _CMP_UNORD_Q);
    const __mmask16 nan1 = nan_free ? 0 : _mm512_cmp_ps_mask((__m512)v1, (__m512)v1, _CMP_UNORD_Q);
    fi_u16x32 h;
    if (bf16) {
        const fi_u32x16 b0 = (fi_u32x16)v0, b1 = (fi_u32x16)v1;
        fi_u32x16 r0 = fi_round_bf16x16(b0), r1 = fi_round_bf16x16(b1);
        if (__builtin_expect((nan0 | nan1) != 0, 0)) {     /* the high word: quiet NaN */
            r0 = (fi_u32x16)_mm512_mask_mov_epi32((__m512i)r0, nan0, (__m512i)(b0 | 0x400000u));
            r1 = (fi_u32x16)_mm512_mask_mov_epi32((__m512i)r1, nan1, (__m512i)(b1 | 0x400000u));
        }
        const fi_u16x32 high = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
                                33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
        h = (fi_u16x32)_mm512_permutex2var_epi16((__m512i)r0, (__m512i)high, (__m512i)r1);
    } else {
        h = (fi_u16x32)_mm512_inserti64x4(_mm512_castsi256_si512(fi_f16x16(v0)), fi_f16x16(v1), 1);
        if (__builtin_expect((nan0 | nan1) != 0, 0)) {
            const fi_u16x32 is_nan = (fi_u16x32)((h & 0x7FFFu) > 0x7C00u);
            h = (h & ~is_nan) | (((h & 0x8000u) | 0x7E00u) & is_nan);
        }
    }
    return h;
}

/* 32 float32 values (v0, then v1), none a NaN or a float32 subnormal, rounded to
 * bfloat16 as fi_half32 rounds them. With AVX512-BF16, by one vcvtne2ps2bf16 for
 * fi_half32's seven instructions: it rounds every other value as specified, but takes
 * a subnormal as a zero of the same sign. A uniform block rounded by it took 0.85 of
 * its time (Zen 4, in cache), where a per-vector test for subnormals (vfpclassps)
 * took back two thirds of that; so the uniform kernel proves a fill's values free of
 * them once instead (fi_uniform.h). */
FI_INLINE fi_u16x32 fi_bf16x32_no_subnormal(fi_f32x16 v0, fi_f32x16 v1)
{
#ifdef __AVX512BF16__
    return (fi_u16x32)_mm512_cvtne2ps_pbh((__m512)v1, (__m512)v0);
#else
    return fi_half32(v0, v1, 1, 1);
#endif
}

/* Whether any of the 32 values is a float32 subnormal (exponent field 0, nonzero). */
FI_INLINE int fi_any_subnormal32(fi_f32x16 v0, fi_f32x16 v1)
{
    const fi_u32x16 a0 = (fi_u32x16)v0 & 0x7FFFFFFFu, a1 = (fi_u32x16)v1 & 0x7FFFFFFFu;
    const fi_u32x16 sub = ((a0 - 1u) < 0x7FFFFFu) | ((a1 - 1u) < 0x7FFFFFu);
    return _mm512_test_epi32_mask((__m512i)sub, (__m512i)sub) != 0;
}
#endif

/* Converts m float32 values (m a multiple of 8) to 16 bits (BF16: bfloat16, else
 * float16) into dst. */
FI_INLINE void fi_store_half(uint16_t *dst, const float *vals, int64_t m, int bf16, int stream,
                             int nan_free)
{
    for (int64_t k = 0; k < m; k += 8) {
        fi_f32x8 v;
        memcpy(&v, vals + k, sizeof v);
        fi_put_half8(dst + k, v, stream, bf16, nan_free);
    }
}

#endif /* FI_HALF_H */
