/*
 * What every fastinit C file needs: the platforms it builds on, inlining and
 * alignment, and the 32-byte vector types the kernels are written in.
 *
 * The kernels are portable C with GCC/Clang vector extensions, compiled once per
 * instruction set (fi_dispatch.c); with -ffp-contract=off every path performs the
 * same IEEE operations and so writes the same bits.
 */
#ifndef FI_COMMON_H
#define FI_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#ifndef FI_EMULATED_INTRINSICS     /* else fi_emulate.h's */
#include <immintrin.h>
#endif
#define FI_X86 1
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "fastinit's stream layout reads 32-bit halves in little-endian order"
#endif

#if !defined(__GNUC__)
#error "fastinit's kernels use GCC/Clang vector extensions"
#endif

#define FI_INLINE static inline __attribute__((always_inline))
/* The rare paths of the rejection samplers: never inlined, so that the hot loops
 * around their calls keep their registers and their code compact. */
#define FI_COLD __attribute__((noinline, cold))
#define FI_ALIGN64 __attribute__((aligned(64)))
typedef uint32_t fi_u32_alias __attribute__((__may_alias__));
typedef uint16_t fi_u16_alias __attribute__((__may_alias__));
typedef uint64_t fi_u64_alias __attribute__((__may_alias__));

/* 32-byte vectors: one source, lowered to SSE2 pairs, AVX2 or AVX-512VL per target. */
typedef uint64_t fi_u64x4 __attribute__((vector_size(32)));
typedef int64_t fi_i64x4 __attribute__((vector_size(32)));
typedef uint32_t fi_u32x8 __attribute__((vector_size(32)));
typedef int32_t fi_i32x8 __attribute__((vector_size(32)));
typedef float fi_f32x8 __attribute__((vector_size(32)));
typedef double fi_f64x4 __attribute__((vector_size(32)));
typedef float fi_f32x4 __attribute__((vector_size(16)));
typedef uint16_t fi_u16x8 __attribute__((vector_size(16)));

/* 64-byte vectors (AVX-512's registers), and the whole-block kernels' vectors:
 * FI_VW 64-bit lanes each, the width each path computes on best. 8 (64 bytes, one
 * register) on AVX-512; 4 (32 bytes) on AVX2 and the baseline path, where GCC
 * lowers wider generic vectors poorly (measured: a 64-byte uniform kernel ran 13x
 * slower on AVX2). One source: every path compiles it at its own width. */
typedef uint64_t fi_u64x8 __attribute__((vector_size(64)));
typedef uint32_t fi_u32x16 __attribute__((vector_size(64)));
typedef float fi_f32x16 __attribute__((vector_size(64)));
typedef uint16_t fi_u16x16 __attribute__((vector_size(32)));
#ifdef __AVX512F__
#define FI_VW 8
#else
#define FI_VW 4
#endif
typedef uint64_t fi_u64xv __attribute__((vector_size(8 * FI_VW)));
typedef int64_t fi_i64xv __attribute__((vector_size(8 * FI_VW)));
typedef uint32_t fi_u32xv __attribute__((vector_size(8 * FI_VW)));
typedef int32_t fi_i32xv __attribute__((vector_size(8 * FI_VW)));
typedef float fi_f32xv __attribute__((vector_size(8 * FI_VW)));
typedef double fi_f64xv __attribute__((vector_size(8 * FI_VW)));
typedef float fi_f32xh __attribute__((vector_size(4 * FI_VW)));      /* FI_VW float32 */

/* Broadcasts. (Not x + (vector){0}: that would turn -0.0 into +0.0.) */
FI_INLINE fi_f32x8 fi_splat_f32(float x) { return (fi_f32x8){x, x, x, x, x, x, x, x}; }
FI_INLINE fi_f64x4 fi_splat_f64(double x) { return (fi_f64x4){x, x, x, x}; }
FI_INLINE fi_u64x4 fi_splat_u64(uint64_t x) { return (fi_u64x4){x, x, x, x}; }
/* At the path's width: written as initializers, which GCC turns into one broadcast.
 * (Loops setting each element, once inlined into the kernels' per-block setup, became
 * chains of inserts: 104 vinsertps in the AVX2 path's object code, 595 masked
 * broadcasts in the AVX-512 one.) */
#define FI_X4(x) x, x, x, x
#if FI_VW == 8
#define FI_COPIES_64(x) {FI_X4(x), FI_X4(x)}                           /* FI_VW */
#define FI_COPIES_32(x) {FI_X4(x), FI_X4(x), FI_X4(x), FI_X4(x)}       /* 2 FI_VW */
#else
#define FI_COPIES_64(x) {FI_X4(x)}
#define FI_COPIES_32(x) {FI_X4(x), FI_X4(x)}
#endif
FI_INLINE fi_f32xv fi_splatv_f32(float x) { return (fi_f32xv)FI_COPIES_32(x); }
FI_INLINE fi_f64xv fi_splatv_f64(double x) { return (fi_f64xv)FI_COPIES_64(x); }
FI_INLINE fi_u64xv fi_splatv_u64(uint64_t x) { return (fi_u64xv)FI_COPIES_64(x); }
#undef FI_COPIES_32
#undef FI_COPIES_64
#undef FI_X4

/* The halves of a 64-byte vector. */
#define FI_LO8(v) __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7)
#define FI_HI8(v) __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15)
#define FI_LO4(v) __builtin_shufflevector((v), (v), 0, 1, 2, 3)
#define FI_HI4(v) __builtin_shufflevector((v), (v), 4, 5, 6, 7)

/* min(a, b) as `a < b ? a : b` and max(a, b) as `a > b ? a : b`, lane by lane (b
 * where either is a NaN or both are zeros): x86's MINPS/MINPD and MAXPS/MAXPD
 * compute exactly that (they return the second operand unless the first is less,
 * or greater), in one instruction instead of compare and blend. FI_PS and FI_PD
 * apply the instruction OP (min or max) at the path's width. */
#if FI_VW == 8
#define FI_PS(OP, A, B) (fi_f32xv)_mm512_##OP##_ps((__m512)(A), (__m512)(B))
#define FI_PD(OP, A, B) (fi_f64xv)_mm512_##OP##_pd((__m512d)(A), (__m512d)(B))
#elif defined(__AVX__)
#define FI_PS(OP, A, B) (fi_f32xv)_mm256_##OP##_ps((__m256)(A), (__m256)(B))
#define FI_PD(OP, A, B) (fi_f64xv)_mm256_##OP##_pd((__m256d)(A), (__m256d)(B))
#elif defined(FI_X86)
typedef double fi_f64x2 __attribute__((vector_size(16)));
#define FI_PS(OP, A, B)                                                                    \
    __builtin_shufflevector((fi_f32x4)_mm_##OP##_ps((__m128)FI_LO4(A), (__m128)FI_LO4(B)),  \
                            (fi_f32x4)_mm_##OP##_ps((__m128)FI_HI4(A), (__m128)FI_HI4(B)),  \
                            0, 1, 2, 3, 4, 5, 6, 7)
#define FI_PD(OP, A, B)                                                                    \
    __builtin_shufflevector(                                                               \
        (fi_f64x2)_mm_##OP##_pd((__m128d)__builtin_shufflevector((A), (A), 0, 1),          \
                                (__m128d)__builtin_shufflevector((B), (B), 0, 1)),         \
        (fi_f64x2)_mm_##OP##_pd((__m128d)__builtin_shufflevector((A), (A), 2, 3),          \
                                (__m128d)__builtin_shufflevector((B), (B), 2, 3)),         \
        0, 1, 2, 3)
#else
#define FI_FIRST_min(A, B) ((A) < (B))
#define FI_FIRST_max(A, B) ((A) > (B))
#define FI_PS(OP, A, B) ((fi_f32xv)(((fi_i32xv)(A) & FI_FIRST_##OP(A, B)) |                 \
                                    ((fi_i32xv)(B) & ~FI_FIRST_##OP(A, B))))
#define FI_PD(OP, A, B) ((fi_f64xv)(((fi_i64xv)(A) & FI_FIRST_##OP(A, B)) |                 \
                                    ((fi_i64xv)(B) & ~FI_FIRST_##OP(A, B))))
#endif
FI_INLINE fi_f32xv fi_min_f32xv(fi_f32xv a, fi_f32xv b) { return FI_PS(min, a, b); }
FI_INLINE fi_f32xv fi_max_f32xv(fi_f32xv a, fi_f32xv b) { return FI_PS(max, a, b); }
FI_INLINE fi_f64xv fi_min_f64xv(fi_f64xv a, fi_f64xv b) { return FI_PD(min, a, b); }
FI_INLINE fi_f64xv fi_max_f64xv(fi_f64xv a, fi_f64xv b) { return FI_PD(max, a, b); }
#undef FI_PS
#undef FI_PD

/* A lane mask (each lane all ones or zero) as bits: bit i for lane i. */
FI_INLINE uint32_t fi_mask_bits_u32x8(fi_u32x8 mask)
{
#ifdef __AVX2__
    return (uint32_t)_mm256_movemask_ps((__m256)mask);
#else
    uint64_t any[4];
    uint32_t bits = 0;
    memcpy(any, &mask, sizeof any);
    if (any[0] | any[1] | any[2] | any[3])
        for (int i = 0; i < 8; i++) bits |= (mask[i] & 1u) << i;
    return bits;
#endif
}

FI_INLINE uint32_t fi_mask_bits_u64x4(fi_u64x4 mask)
{
#ifdef __AVX2__
    return (uint32_t)_mm256_movemask_pd((__m256d)mask);
#else
    uint32_t bits = 0;
    if (mask[0] | mask[1] | mask[2] | mask[3])
        for (int i = 0; i < 4; i++) bits |= (uint32_t)(mask[i] & 1u) << i;
    return bits;
#endif
}

/* A lane mask of the path's width as bits. */
FI_INLINE uint32_t fi_mask_bits_u32xv(fi_u32xv mask)
{
#if FI_VW == 8 && defined(__AVX512DQ__)
    return (uint32_t)_mm512_movepi32_mask((__m512i)mask);
#elif FI_VW == 8
    return fi_mask_bits_u32x8(FI_LO8(mask)) | fi_mask_bits_u32x8(FI_HI8(mask)) << 8;
#else
    return fi_mask_bits_u32x8(mask);
#endif
}

FI_INLINE uint32_t fi_mask_bits_u64xv(fi_u64xv mask)
{
#if FI_VW == 8 && defined(__AVX512DQ__)
    return (uint32_t)_mm512_movepi64_mask((__m512i)mask);
#elif FI_VW == 8
    return fi_mask_bits_u64x4(FI_LO4(mask)) | fi_mask_bits_u64x4(FI_HI4(mask)) << 4;
#else
    return fi_mask_bits_u64x4(mask);
#endif
}

#endif /* FI_COMMON_H */
