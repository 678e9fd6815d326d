/*
 * float32 values rounded to 16 bits, to nearest even: bfloat16 (the top half of the
 * float32 bits, NaN kept quiet) and IEEE float16 (docs/stream.md, section 7).
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
 * stays a quiet NaN). */
FI_INLINE fi_u16x8 fi_to_bf16x8(fi_f32x8 v)
{
    const fi_u32x8 b = (fi_u32x8)v;
    const fi_u32x8 rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
    const fi_u32x8 nan = (fi_u32x8)(v != v);
    if (__builtin_expect(fi_mask_bits_u32x8(nan) == 0, 1)) return fi_narrow_u32x8(rounded);
    return fi_narrow_u32x8((rounded & ~nan) | (((b >> 16) | 0x40u) & nan));
}

/* 8 float32 values to float16 bits, IEEE round to nearest even. Without F16C,
 * branch-free: |x| >= 2^16 or NaN: infinity or a quiet NaN; |x| < 2^-14 (float16 subnormals):
 * one IEEE addition of 2^-1 (whose unit in the last place is float16's 2^-24)
 * rounds the magnitude, and its low bits are the result; otherwise the exponent
 * is rebased and the 13 dropped bits rounded half to even (a carry into the
 * exponent gives the next binade or infinity). */
FI_INLINE fi_u16x8 fi_to_f16x8(fi_f32x8 v)
{
#ifdef __F16C__
    /* vcvtps2ph rounds to nearest even as below, subnormals included; only its NaN
     * differs (it keeps payload bits): a NaN becomes sign | 0x7E00 as below, off the
     * fast path (one compare tells that no lane is a NaN). */
    const fi_u16x8 h =
        (fi_u16x8)_mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (__builtin_expect(fi_mask_bits_u32x8((fi_u32x8)(v != v)) == 0, 1)) return h;
    const fi_u16x8 nan = (fi_u16x8)((h & 0x7FFFu) > 0x7C00u);
    return (h & ~nan) | (((h & 0x8000u) | 0x7E00u) & nan);
#else
    const fi_u32x8 b = (fi_u32x8)v;
    const fi_u32x8 sign = (b >> 16) & 0x8000u;
    const fi_u32x8 a = b & 0x7FFFFFFFu;
    const fi_u32x8 big = (fi_u32x8)(a >= 0x47800000u);    /* >= 2^16, inf, NaN */
    const fi_u32x8 is_nan = (fi_u32x8)(a > 0x7F800000u);
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
FI_INLINE void fi_put_half8(uint16_t *dst, fi_f32x8 v, int stream, int bf16)
{
    const fi_u16x8 h = bf16 ? fi_to_bf16x8(v) : fi_to_f16x8(v);
#ifdef FI_X86
    if (stream) { _mm_stream_si128((__m128i *)dst, (__m128i)h); return; }
#endif
    (void)stream;
    memcpy(dst, &h, sizeof h);
}

/* Stores 16 float32 values rounded to 16 bits at dst (fi_put_half8 on each half; on
 * AVX-512 one conversion and one 32-byte store). */
FI_INLINE void fi_put_half16(uint16_t *dst, fi_f32x16 v, int stream, int bf16)
{
#ifdef __AVX512F__
    fi_u16x16 h;
    if (bf16) {
        const fi_u32x16 b = (fi_u32x16)v;
        const fi_u32x16 rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
        const __mmask16 nan = _mm512_cmp_ps_mask((__m512)v, (__m512)v, _CMP_UNORD_Q);
        const fi_u32x16 bits = (fi_u32x16)_mm512_mask_mov_epi32(
            (__m512i)rounded, nan, (__m512i)((b >> 16) | 0x40u));
        h = (fi_u16x16)_mm512_cvtepi32_epi16((__m512i)bits);
    } else {
        h = (fi_u16x16)_mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __mmask16 nan = _mm512_cmp_ps_mask((__m512)v, (__m512)v, _CMP_UNORD_Q);
        if (__builtin_expect(nan != 0, 0)) {
            const fi_u16x16 is_nan = (fi_u16x16)((h & 0x7FFFu) > 0x7C00u);
            h = (h & ~is_nan) | (((h & 0x8000u) | 0x7E00u) & is_nan);
        }
    }
    if (stream && !((uintptr_t)dst & 31)) {
        _mm256_stream_si256((__m256i *)dst, (__m256i)h);
        return;
    }
    if (stream) {
        _mm_stream_si128((__m128i *)dst, (__m128i)__builtin_shufflevector(h, h, 0, 1, 2, 3, 4, 5, 6, 7));
        _mm_stream_si128((__m128i *)(dst + 8),
                         (__m128i)__builtin_shufflevector(h, h, 8, 9, 10, 11, 12, 13, 14, 15));
        return;
    }
    memcpy(dst, &h, sizeof h);
#else
    fi_put_half8(dst, FI_LO8(v), stream, bf16);
    fi_put_half8(dst + 8, FI_HI8(v), stream, bf16);
#endif
}

/* Converts m float32 values (m a multiple of 8) to 16 bits (BF16: bfloat16, else
 * float16) into dst. */
FI_INLINE void fi_store_half(uint16_t *dst, const float *vals, int64_t m, int bf16, int stream)
{
    for (int64_t k = 0; k < m; k += 8) {
        fi_f32x8 v;
        memcpy(&v, vals + k, sizeof v);
        fi_put_half8(dst + k, v, stream, bf16);
    }
}

#endif /* FI_HALF_H */
