/*
 * Normal fills (docs/stream.md, section 6): the 256-layer Ziggurat of Marsaglia and
 * Tsang with its exact tail. The fast path is vectorized over a step's candidates;
 * the ~1.5% of candidates outside the layers' rectangles are completed from their
 * lane's auxiliary stream, in each lane's element order, one candidate at a time
 * with both of its likely draws taken at once (fi_zig_fix). float16 and bfloat16
 * round the float32 values.
 */
#ifndef FI_NORMAL_H
#define FI_NORMAL_H

#include "fi_detmath.h"
#include "fi_pieces.h"
#include "fi_ziggurat_tables.h"

/* mean + std * z, in float64 (mean, std) or float32 (the _f fields). */
typedef struct {
    uint64_t sigma;
    double mean, std;
    float mean_f, std_f;
} fi_normal_params;
#define FI_NORMAL_FORMAT "sigma:Q mean:d std:d mean_f:f std_f:f"

/* The tail beyond r (Marsaglia's exact method), from a lane's auxiliary outputs. */
static double fi_zig_tail(fi_lanes *aux, int lane, int negative)
{
    for (;;) {
        const double xx = -fi_log(fi_u53_open(fi_lane_next(aux, lane))) * FI_ZIG_INV_R;
        const double yy = -fi_log(fi_u53_open(fi_lane_next(aux, lane)));
        if (yy + yy > xx * xx) return negative ? -(FI_ZIG_R + xx) : FI_ZIG_R + xx;
    }
}

/* The wedge test where the squeeze cannot decide: y < exp_d(-x^2/2), out of line. */
static FI_COLD int fi_zig_wedge_exp(double y, double x)
{
    return fi_less_than_exp(y, -0.5 * x * x);
}

/* The wedge test of layer idx (>= 1) for x (given as a double) and the uniform
 * output o, y < exp_d(-x^2/2), as far as the squeeze decides it: the parabola
 * through f at the wedge's ends and middle (FI_ZIG_SQUEEZE), when y is farther from
 * it than f can be. FI_ZIG_BELOW (accept) or FI_ZIG_ABOVE (reject), or 0 where only
 * exp_d can tell; *y gets y. The parabola leaves 0.13% of the float32 wedge tests to
 * exp, the chord it replaced 13% (whose mispredicted branch and rough exp took 30%
 * of the fix-ups' time in a C harness on Zen 5). */
enum { FI_ZIG_BELOW = 1, FI_ZIG_ABOVE = 2 };
FI_INLINE int fi_zig_squeeze_side(uint64_t o, int idx, double x, double *y)
{
    const double u = fi_u53(o);
    *y = FI_ZIG_F[idx] + u * (FI_ZIG_F[idx - 1] - FI_ZIG_F[idx]);
    const fi_zig_squeeze sq = FI_ZIG_SQUEEZE[idx];
    const double q = FI_ZIG_F[idx - 1] + (x - sq.xl) * (sq.slope + sq.curve * (x - sq.xr));
    return (*y < q - sq.gap) * FI_ZIG_BELOW + (*y > q + sq.gap) * FI_ZIG_ABOVE;
}

/* Whether the wedge of layer idx accepts x: the squeeze's answer, else exp_d's
 * (fi_less_than_exp). */
FI_INLINE int fi_zig_wedge_accepts(uint64_t o, int idx, double x)
{
    double y;
    const int side = fi_zig_squeeze_side(o, idx, x, &y);
    if (__builtin_expect(!side, 0)) return fi_zig_wedge_exp(y, x);
    return side == FI_ZIG_BELOW;
}

/* Exact-to-bits helper: the magnitude m (< 2^52) as a double. */
FI_INLINE double fi_u52_to_double(uint64_t m)
{
    double d;
    const uint64_t bits = m | 0x4330000000000000ULL;      /* 2^52 + m */
    memcpy(&d, &bits, sizeof d);
    return d - 0x1p52;
}

/* A float64 candidate that left the fast path (idx = X & 255, negative = bit 8,
 * magnitude = X >> 12), completed from its lane's auxiliary outputs. */
static FI_COLD double fi_zig64_slow(fi_lanes *aux, int lane, uint64_t x64)
{
    for (;;) {
        const int idx = (int)(x64 & 255), negative = (int)(x64 >> 8) & 1;
        const uint64_t m = x64 >> 12;
        const double x = fi_u52_to_double(m) * FI_ZIG64_W[idx];
        if (m < FI_ZIG64_K[idx]) return negative ? -x : x;
        if (idx == 0) return fi_zig_tail(aux, lane, negative);
        if (fi_zig_wedge_accepts(fi_lane_next(aux, lane), idx, x)) return negative ? -x : x;
        x64 = fi_lane_next(aux, lane);
    }
}

/* A float32 candidate w that left the fast path (idx = w & 255, negative = bit 8,
 * magnitude = w >> 9); new candidates are the low halves of auxiliary outputs. */
static FI_COLD float fi_zig32_slow(fi_lanes *aux, int lane, uint32_t w)
{
    for (;;) {
        const int idx = (int)(w & 255), negative = (int)(w >> 8) & 1;
        const uint32_t m = w >> 9;
        const float x = (float)(int32_t)m * FI_ZIG32_W[idx];
        if (m < FI_ZIG32_K[idx]) return negative ? -x : x;
        if (idx == 0) return (float)fi_zig_tail(aux, lane, negative);
        if (fi_zig_wedge_accepts(fi_lane_next(aux, lane), idx, (double)x)) return negative ? -x : x;
        w = (uint32_t)fi_lane_next(aux, lane);
    }
}

/* The layers of one vector of float32 candidates, the 32-bit halves of the outputs
 * o (candidate 2i: the low half of o[i], 2i + 1: its high half; its layer is the
 * half's low byte): W_23 and K_23 of each, by one 64-bit load per candidate from the
 * packed table, indexed from general registers, then split and interleaved by
 * shuffles. On AVX-512 vpmovdb narrows the 16 layers to bytes, two general
 * registers' worth (fewer vector instructions than extracting 32-bit lanes: 0.62
 * against 0.68 ns per normal on Zen 5; 16-lane gathers were slower than those
 * extractions, 1.09 against 0.91, in an earlier build); on AVX2 each output's low
 * byte and its byte 4 (1.08 against 1.19 on Zen 3; two 4-lane gathers were slower),
 * the loads paired so that one vshufps per table splits them (GCC's integer
 * shuffles took two more instructions per table: the fast pass 2,990 against 2,870
 * TSC ticks per block on Zen 3). Elsewhere one load per table and candidate. */
FI_INLINE void fi_zig32_layersv(fi_u64xv o, fi_f32xv *w, fi_i32xv *k)
{
#if FI_VW == 8
    const __m128i bytes = _mm512_cvtepi32_epi8((__m512i)o);            /* the layers */
    const uint64_t i0 = (uint64_t)_mm_cvtsi128_si64(bytes),
                   i1 = (uint64_t)_mm_extract_epi64(bytes, 1);
#define FI_WK(I, J) FI_ZIG32_WK[(uint8_t)((I) >> (8 * (J)))]
    const fi_u64x4 a0 = {FI_WK(i0, 0), FI_WK(i0, 1), FI_WK(i0, 4), FI_WK(i0, 5)};
    const fi_u64x4 b0 = {FI_WK(i0, 2), FI_WK(i0, 3), FI_WK(i0, 6), FI_WK(i0, 7)};
    const fi_u64x4 a1 = {FI_WK(i1, 0), FI_WK(i1, 1), FI_WK(i1, 4), FI_WK(i1, 5)};
    const fi_u64x4 b1 = {FI_WK(i1, 2), FI_WK(i1, 3), FI_WK(i1, 6), FI_WK(i1, 7)};
#undef FI_WK
#define FI_W(A, B) (fi_f32x8)__builtin_shufflevector((fi_u32x8)(A), (fi_u32x8)(B), \
                                                   0, 2, 8, 10, 4, 6, 12, 14)
#define FI_K(A, B) (fi_i32x8)__builtin_shufflevector((fi_u32x8)(A), (fi_u32x8)(B), \
                                                   1, 3, 9, 11, 5, 7, 13, 15)
    const fi_f32x8 w0 = FI_W(a0, b0), w1 = FI_W(a1, b1);
    const fi_i32x8 k0 = FI_K(a0, b0), k1 = FI_K(a1, b1);
#undef FI_W
#undef FI_K
    *w = __builtin_shufflevector(w0, w1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    *k = __builtin_shufflevector(k0, k1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#elif defined(__AVX2__)
    /* a: candidates 0, 1, 4, 5 (outputs 0 and 2), b: 2, 3, 6, 7, so that each
     * 128-bit half of W (K) is the even (odd) words of a's and b's: one vshufps */
#define FI_WK(I, H) FI_ZIG32_WK[(uint8_t)(o[I] >> (32 * (H)))]
    const fi_u64xv a = {FI_WK(0, 0), FI_WK(0, 1), FI_WK(2, 0), FI_WK(2, 1)};
    const fi_u64xv b = {FI_WK(1, 0), FI_WK(1, 1), FI_WK(3, 0), FI_WK(3, 1)};
#undef FI_WK
    *w = (fi_f32xv)_mm256_shuffle_ps((__m256)a, (__m256)b, 0x88);    /* words 0, 2 of each */
    *k = (fi_i32xv)_mm256_shuffle_ps((__m256)a, (__m256)b, 0xDD);    /* words 1, 3 */
#else
    const fi_u32xv idx = (fi_u32xv)o & 255;
    for (int i = 0; i < 2 * FI_VW; i++) {
        (*w)[i] = FI_ZIG32_W[idx[i]];
        (*k)[i] = (int32_t)FI_ZIG32_K[idx[i]];
    }
#endif
}

/* The same for FI_VW float64 candidates (layer: the output's low byte): W_52 and
 * K_52, one 16-byte load per candidate with AVX2. */
FI_INLINE void fi_zig64_layers4(fi_u64x4 idx, fi_f64x4 *w, fi_i64x4 *k)
{
#ifdef __AVX2__
    typedef uint64_t u64x2 __attribute__((vector_size(16)));
    u64x2 e0, e1, e2, e3;
    memcpy(&e0, &FI_ZIG64_WK[idx[0]], sizeof e0);
    memcpy(&e1, &FI_ZIG64_WK[idx[1]], sizeof e1);
    memcpy(&e2, &FI_ZIG64_WK[idx[2]], sizeof e2);
    memcpy(&e3, &FI_ZIG64_WK[idx[3]], sizeof e3);
    const fi_u64x4 a = __builtin_shufflevector(e0, e2, 0, 1, 2, 3);   /* W0 K0 W2 K2 */
    const fi_u64x4 b = __builtin_shufflevector(e1, e3, 0, 1, 2, 3);   /* W1 K1 W3 K3 */
    *w = (fi_f64x4)__builtin_shufflevector(a, b, 0, 4, 2, 6);
    *k = (fi_i64x4)__builtin_shufflevector(a, b, 1, 5, 3, 7);
#else
    *w = (fi_f64x4){FI_ZIG64_W[idx[0]], FI_ZIG64_W[idx[1]], FI_ZIG64_W[idx[2]], FI_ZIG64_W[idx[3]]};
    *k = (fi_i64x4){(int64_t)FI_ZIG64_K[idx[0]], (int64_t)FI_ZIG64_K[idx[1]],
                    (int64_t)FI_ZIG64_K[idx[2]], (int64_t)FI_ZIG64_K[idx[3]]};
#endif
}

FI_INLINE void fi_zig64_layersv(fi_u64xv o, fi_f64xv *w, fi_i64xv *k)
{
#if FI_VW == 8
    /* the 8 layers as bytes of one general register (vpmovqb), as for float32 */
    const uint64_t i = (uint64_t)_mm_cvtsi128_si64(_mm512_cvtepi64_epi8((__m512i)o));
    fi_f64x4 w0, w1;
    fi_i64x4 k0, k1;
    fi_zig64_layers4((fi_u64x4){(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16),
                                (uint8_t)(i >> 24)}, &w0, &k0);
    fi_zig64_layers4((fi_u64x4){(uint8_t)(i >> 32), (uint8_t)(i >> 40), (uint8_t)(i >> 48),
                                (uint8_t)(i >> 56)}, &w1, &k1);
    *w = __builtin_shufflevector(w0, w1, 0, 1, 2, 3, 4, 5, 6, 7);
    *k = __builtin_shufflevector(k0, k1, 0, 1, 2, 3, 4, 5, 6, 7);
#else
    fi_zig64_layers4(o & 255, w, k);
#endif
}

/* The fast test of one vector of float32 candidates, the 32-bit halves of the
 * outputs o, given their layers' W_23 and K_23: accepted values go to *z, and their
 * bits to the returned mask (candidate e at bit e); a rejected candidate leaves its
 * raw bits in *z. The mask is of the accepted ones, not the rejected, because that
 * is what the comparison gives: the block kernels invert a whole word of them at
 * once (inverting each vector's bits took two more instructions of some 80 per
 * vector on AVX2). On AVX-512 the comparison's mask register does the select and is
 * the returned mask (GCC's generic code went from mask to vector and back: 4 more
 * instructions per vector); the sign is moved in by one ternary-logic instruction. */
FI_INLINE uint32_t fi_normal_f32_test(fi_u64xv o, fi_f32xv w, fi_i32xv k, fi_f32xv *z)
{
#if FI_VW == 8
    const __m512i h = (__m512i)o, m = _mm512_srli_epi32(h, 9);
    const __mmask16 accept = _mm512_cmpgt_epi32_mask((__m512i)k, m);
    const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(m), (__m512)w);
    const __m512i signed_x = _mm512_ternarylogic_epi32(              /* x ^ (h << 23 & sign) */
        (__m512i)x, _mm512_slli_epi32(h, 23), _mm512_set1_epi32(INT32_MIN), 0x78);
    *z = (fi_f32xv)_mm512_mask_blend_epi32(accept, h, signed_x);
    return accept;
#else
    const fi_u32xv h = (fi_u32xv)o, m = h >> 9;
    const fi_f32xv x = __builtin_convertvector((fi_i32xv)m, fi_f32xv) * w;
    const fi_u32xv signed_x = (fi_u32xv)x ^ ((h & 256) << 23);
    const fi_u32xv accept = (fi_u32xv)(k > (fi_i32xv)m);
#if FI_VW == 4 && defined(__AVX__)
    *z = (fi_f32xv)_mm256_blendv_ps((__m256)h, (__m256)signed_x, (__m256)accept);
#else
    *z = (fi_f32xv)((signed_x & accept) | (h & ~accept));
#endif
    return fi_mask_bits_u32xv(accept);
#endif
}

/* The same for float64 candidates, the whole outputs, given W_52 and K_52. */
FI_INLINE uint32_t fi_normal_f64_test(fi_u64xv x, fi_f64xv w, fi_i64xv k, fi_f64xv *z)
{
#if FI_VW == 8
    const __m512i m = _mm512_srli_epi64((__m512i)x, 12);
    const __mmask8 accept = _mm512_cmpgt_epi64_mask((__m512i)k, m);
    const __m512d md = _mm512_sub_pd(                                    /* exact */
        (__m512d)_mm512_or_si512(m, _mm512_set1_epi64(0x4330000000000000LL)),
        _mm512_set1_pd(0x1p52));
    const __m512i signed_d = _mm512_ternarylogic_epi64(              /* d ^ (x << 55 & sign) */
        (__m512i)_mm512_mul_pd(md, (__m512d)w), _mm512_slli_epi64((__m512i)x, 55),
        _mm512_set1_epi64(INT64_MIN), 0x78);
    *z = (fi_f64xv)_mm512_mask_blend_epi64(accept, (__m512i)x, signed_d);
    return accept;
#else
    const fi_u64xv m = x >> 12;
    const fi_f64xv md = (fi_f64xv)(m | 0x4330000000000000ULL) - 0x1p52;  /* exact */
    const fi_u64xv signed_d = (fi_u64xv)(md * w) ^ ((x & 256) << 55);
    const fi_u64xv accept = (fi_u64xv)(k > (fi_i64xv)m);
#if FI_VW == 4 && defined(__AVX__)
    *z = (fi_f64xv)_mm256_blendv_pd((__m256d)x, (__m256d)signed_d, (__m256d)accept);
#else
    *z = (fi_f64xv)((signed_d & accept) | (x & ~accept));
#endif
    return fi_mask_bits_u64xv(accept);
#endif
}

/* The fast path of one vector of FI_VW lanes: each lane's next main output gives
 * two float32 candidates (low half, then high half) for elements 2i and 2i + 1 of
 * the vector (float64: one, the whole output). */
FI_INLINE uint32_t fi_normal_f32_fast1(fi_u64xv *s0, fi_u64xv *s1, fi_u64xv *s2, fi_u64xv *s3,
                                       fi_f32xv *z)
{
    const fi_u64xv o = fi_stepv(s0, s1, s2, s3);
    fi_f32xv w;
    fi_i32xv k;
    fi_zig32_layersv(o, &w, &k);
    return fi_normal_f32_test(o, w, k, z);
}

FI_INLINE uint32_t fi_normal_f64_fast1(fi_u64xv *s0, fi_u64xv *s1, fi_u64xv *s2, fi_u64xv *s3,
                                       fi_f64xv *z)
{
    const fi_u64xv x = fi_stepv(s0, s1, s2, s3);
    fi_f64xv w;
    fi_i64xv k;
    fi_zig64_layersv(x, &w, &k);
    return fi_normal_f64_test(x, w, k, z);
}

/* The fast path of one step (all 16 lanes): the step's elements in z, an accepted
 * element's bit in the returned mask. */
FI_INLINE uint32_t fi_normal_f32_fastv(fi_lanesv *ln, fi_f32xv *z)
{
    uint32_t accepted = 0;
    for (int v = 0; v < FI_NV; v++)
        accepted |= fi_normal_f32_fast1(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v], &z[v])
                    << (2 * FI_VW * v);
    return accepted;
}

FI_INLINE uint32_t fi_normal_f64_fastv(fi_lanesv *ln, fi_f64xv *z)
{
    uint32_t accepted = 0;
    for (int v = 0; v < FI_NV; v++)
        accepted |= fi_normal_f64_fast1(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v], &z[v])
                    << (FI_VW * v);
    return accepted;
}

/* The fast path over every step of a block: the values in z, the rejected
 * candidates' bits in `rejected` (32 words: element k at bit k % 64 of word k / 64),
 * each word the inverse of its accepted bits. The block is walked vector by vector,
 * each vector's lanes kept in four registers through all its steps (walking step by
 * step, the 16 lanes' state does not fit in AVX2's 16 registers), and one step
 * ahead: a step's candidates and their layers are drawn before the previous step's
 * test, so that its table loads are under way while that test runs. Against the
 * step-by-step walk on Zen 3 (docs/quality.md): the float32 pass at 0.86 of its
 * time and the whole block at 0.95 to 0.97; float64, 0.84 and 0.94. The lanes are
 * read, not advanced. */
#define FI_DEFINE_NORMAL_FAST_BLOCK(NAME, VEC, KVEC, LAYERS, TEST, PER_STEP)               \
FI_INLINE void NAME(const fi_lanesv *ln, VEC (*z)[FI_NV], uint64_t *rejected)              \
{                                                                                          \
    enum { STEPS = FI_BLOCK / (PER_STEP), PER_WORD = 64 / (PER_STEP),                      \
           PER_VEC = (PER_STEP) / FI_NV };                                                 \
    _Static_assert(64 % (PER_STEP) == 0, "a word of rejected bits is whole steps");        \
    uint64_t accepted[FI_BLOCK / 64] = {0};                                                \
    for (int v = 0; v < FI_NV; v++) {                                                      \
        fi_u64xv s0 = ln->s0[v], s1 = ln->s1[v], s2 = ln->s2[v], s3 = ln->s3[v];           \
        fi_u64xv o = fi_stepv(&s0, &s1, &s2, &s3);                                         \
        VEC w;                                                                             \
        KVEC k;                                                                            \
        LAYERS(o, &w, &k);                                                                 \
        for (int t = 0; t < STEPS; t += PER_WORD) {                                        \
            uint64_t bits = 0;                                                             \
            for (int u = 0; u < PER_WORD; u++) {                                           \
                const fi_u64xv o_now = o;                                                  \
                const VEC w_now = w;                                                       \
                const KVEC k_now = k;                                                      \
                if (t + u + 1 < STEPS) {                                                   \
                    o = fi_stepv(&s0, &s1, &s2, &s3);                                      \
                    LAYERS(o, &w, &k);                                                     \
                }                                                                          \
                const uint64_t tested = TEST(o_now, w_now, k_now, &z[t + u][v]);          \
                bits |= tested << ((PER_STEP) * u);                                        \
            }                                                                              \
            accepted[t / PER_WORD] |= bits << (PER_VEC * v);                               \
        }                                                                                  \
    }                                                                                      \
    for (int i = 0; i < FI_BLOCK / 64; i++) rejected[i] = ~accepted[i];                    \
}

#ifdef __AVX512VBMI__
/* With AVX-512 VBMI the whole-block fast path looks up the layers of 64 candidates
 * at once: one vpermt2b picks their layer bytes (the outputs' low bytes) from two
 * vectors of outputs, and each byte plane of the tables (FI_ZIG32_PLANES,
 * FI_ZIG64_PLANES) is looked up by two vpermt2b over its halves, merged by the
 * layer's top bit; unpacks then join W's planes into W, and one permute a vector
 * puts K's top 16 bits in place, in the candidates' order (which the first
 * permute's selector arranges). The other paths, and the partial blocks, look the
 * same values up one candidate at a time (fi_zig32_layersv). Zen 5, C harness: the
 * float32 fast pass from 0.34 to 0.20 ns per value. On Zen 4, where every 512-bit
 * instruction counts (two 256-bit halves; shifts, conversions and byte permutes one
 * a cycle), taking K's joins, the candidates' shifts and the per-vector sign and
 * blend out of the test (fi_normal_f32_test_top16) made the float32 whole block
 * 0.93 of its time and the float64 one 0.91. */
FI_INLINE __m512i fi_plane_lookup(const uint8_t *plane, __m512i layer, __mmask64 high)
{
    const __m512i *t = (const __m512i *)plane;
    return _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(t[0], layer, t[1]),
                                  _mm512_permutex2var_epi8(t[2], layer, t[3]));
}

/* Bytes p0..p3 of 64 values (byte plane b: byte b of each) joined into four vectors
 * of 32-bit values: vector j, lane 4 L + r is position 16 L + 4 j + r. */
FI_INLINE void fi_join_planes32(__m512i p0, __m512i p1, __m512i p2, __m512i p3, __m512i *d)
{
    const __m512i lo01 = _mm512_unpacklo_epi8(p0, p1), hi01 = _mm512_unpackhi_epi8(p0, p1);
    const __m512i lo23 = _mm512_unpacklo_epi8(p2, p3), hi23 = _mm512_unpackhi_epi8(p2, p3);
    d[0] = _mm512_unpacklo_epi16(lo01, lo23);
    d[1] = _mm512_unpackhi_epi16(lo01, lo23);
    d[2] = _mm512_unpacklo_epi16(hi01, hi23);
    d[3] = _mm512_unpackhi_epi16(hi01, hi23);
}

/* Bytes p[0..7] of 64 values joined into eight vectors of 64-bit values: vector g,
 * lane 2 L + r is position 16 L + 2 g + r. */
FI_INLINE void fi_join_planes64(const __m512i *p, __m512i *q)
{
    __m512i lo[2][4];
    for (int h = 0; h < 2; h++)                     /* bytes 0..3, then 4..7 */
        fi_join_planes32(p[4 * h], p[4 * h + 1], p[4 * h + 2], p[4 * h + 3], lo[h]);
    for (int x = 0; x < 4; x++) {
        q[2 * x] = _mm512_unpacklo_epi32(lo[0][x], lo[1][x]);
        q[2 * x + 1] = _mm512_unpackhi_epi32(lo[0][x], lo[1][x]);
    }
}

/* Byte p of the layer vector: vector j's candidate 4 L + r (float32: lane l's two
 * halves are candidates 2 l and 2 l + 1), p = 16 L + 4 j + r, picked from the pair
 * of vectors holding j; float64: vector g's candidate 2 L + r, p = 16 L + 2 g + r.
 * The sign vector picks the next byte of each candidate (its bit 0 is the sign). */
#define FI_SEL32_AT(p) (64 * (((p) >> 2) & 1) + 16 * ((p) >> 4) + 4 * ((p) & 3))
#define FI_SEL64_AT(p) (64 * (((p) >> 1) & 1) + 16 * ((p) >> 4) + 8 * ((p) & 1))
#define FI_SIGN_SEL32_AT(p) (FI_SEL32_AT(p) + 1)
#define FI_SIGN_SEL64_AT(p) (FI_SEL64_AT(p) + 1)
/* The K selectors, entry 64 j + q for byte q of vector j of K values: the position
 * of its lane's candidate (as above) in the bytes that take the top 16 bits of a
 * lane (2 and 3 of a 32-bit lane, 6 and 7 of a 64-bit one), the low plane's byte,
 * then the high plane's (64 + p); the other bytes are zeroed by the mask. */
#define FI_KSEL32_AT(n) ((((n) & 3) == 3) * 64 +                                            \
                         16 * (((n) & 63) >> 4) + 4 * ((n) >> 6) + (((n) >> 2) & 3))
#define FI_KSEL64_AT(n) ((((n) & 7) == 7) * 64 +                                            \
                         16 * (((n) & 63) >> 4) + 2 * ((n) >> 6) + (((n) >> 3) & 1))
#define FI_R4(F, B) F(B), F(B + 1), F(B + 2), F(B + 3)
#define FI_R16(F, B) FI_R4(F, B), FI_R4(F, B + 4), FI_R4(F, B + 8), FI_R4(F, B + 12)
#define FI_R64(F, B) FI_R16(F, B), FI_R16(F, B + 16), FI_R16(F, B + 32), FI_R16(F, B + 48)
#define FI_R256(F, B) FI_R64(F, B), FI_R64(F, B + 64), FI_R64(F, B + 128), FI_R64(F, B + 192)
static const uint8_t FI_SEL32[64] FI_ALIGN64 = {FI_R64(FI_SEL32_AT, 0)};
static const uint8_t FI_SEL64[64] FI_ALIGN64 = {FI_R64(FI_SEL64_AT, 0)};
static const uint8_t FI_SIGN_SEL32[64] FI_ALIGN64 = {FI_R64(FI_SIGN_SEL32_AT, 0)};
static const uint8_t FI_SIGN_SEL64[64] FI_ALIGN64 = {FI_R64(FI_SIGN_SEL64_AT, 0)};
static const uint8_t FI_KSEL32[4 * 64] FI_ALIGN64 = {FI_R256(FI_KSEL32_AT, 0)};
static const uint8_t FI_KSEL64[8 * 64] FI_ALIGN64 = {FI_R256(FI_KSEL64_AT, 0),
                                                     FI_R256(FI_KSEL64_AT, 256)};
#undef FI_R256
#undef FI_R64
#undef FI_R16
#undef FI_R4
#undef FI_KSEL64_AT
#undef FI_KSEL32_AT
#undef FI_SIGN_SEL64_AT
#undef FI_SIGN_SEL32_AT
#undef FI_SEL64_AT
#undef FI_SEL32_AT
#define FI_PAIR(SEL, A, B) \
    _mm512_permutex2var_epi8((__m512i)(A), _mm512_load_si512((const void *)(SEL)), (__m512i)(B))
/* One byte of each of the 64 candidates of four vectors of outputs (float32), of
 * eight (float64), as the selector SEL says. */
#define FI_PICK32(SEL, O) _mm512_mask_blend_epi8(0xFF00FF00FF00FF00ULL,                     \
    FI_PAIR(SEL, (O)[0], (O)[1]), FI_PAIR(SEL, (O)[2], (O)[3]))
#define FI_PICK64(SEL, O) _mm512_mask_blend_epi8(0xFF00FF00FF00FF00ULL,                     \
    _mm512_mask_blend_epi8(0xF0F0F0F0F0F0F0F0ULL, FI_PAIR(SEL, (O)[0], (O)[1]),             \
                           FI_PAIR(SEL, (O)[2], (O)[3])),                                   \
    _mm512_mask_blend_epi8(0xF0F0F0F0F0F0F0F0ULL, FI_PAIR(SEL, (O)[4], (O)[5]),             \
                           FI_PAIR(SEL, (O)[6], (O)[7])))
/* Vector j of K values, K's top 16 bits in each lane's top 16 bits (MASK: those
 * bytes), from the two planes' look-ups: one permute. */
#define FI_K_TOP16(SEL, J, MASK, LO, HI) _mm512_maskz_permutex2var_epi8(                    \
    (MASK), (LO), _mm512_load_si512((const void *)((SEL) + 64 * (J))), (HI))

/* W's top byte (sign bit clear) with the sign bit of the candidates whose sign
 * byte (bit 0) says negative: -W, so that m (-W) = -(m W), -0 for m = 0. One
 * shift and one ternary-logic instruction for 64 candidates, where setting the
 * sign in each vector of values took two instructions a vector. */
FI_INLINE __m512i fi_signed_top(__m512i top, __m512i sign)
{
    return _mm512_ternarylogic_epi32(top, _mm512_slli_epi16(sign, 7),   /* top | (s & 0x80) */
                                     _mm512_set1_epi8((char)0x80), 0xF8);
}

/* The signed W_23 * 2^-9 and (K_23 >> 7) << 16 of the 64 float32 candidates of four
 * vectors of outputs. */
FI_INLINE void fi_zig32_layers64(const fi_u64xv *o, fi_f32xv *w, fi_i32xv *k)
{
    const __m512i layer = FI_PICK32(FI_SEL32, o), sign = FI_PICK32(FI_SIGN_SEL32, o);
    const __mmask64 high = _mm512_movepi8_mask(layer);
#define FI_P(B) fi_plane_lookup(FI_ZIG32_PLANES[B], layer, high)
    __m512i d[4];
    fi_join_planes32(FI_P(0), FI_P(1), FI_P(2), fi_signed_top(FI_P(3), sign), d);
    for (int j = 0; j < 4; j++) w[j] = (fi_f32xv)d[j];
    const __m512i k_lo = FI_P(4), k_hi = FI_P(5);
    for (int j = 0; j < 4; j++)
        k[j] = (fi_i32xv)FI_K_TOP16(FI_KSEL32, j, 0xCCCCCCCCCCCCCCCCULL, k_lo, k_hi);
#undef FI_P
}

/* The signed W_52 * 2^-12 and (K_52 >> 36) << 48 of the 64 float64 candidates of
 * eight vectors of outputs. */
FI_INLINE void fi_zig64_layers64(const fi_u64xv *o, fi_f64xv *w, fi_i64xv *k)
{
    const __m512i layer = FI_PICK64(FI_SEL64, o), sign = FI_PICK64(FI_SIGN_SEL64, o);
    const __mmask64 high = _mm512_movepi8_mask(layer);
    __m512i p[8], q[8];
    for (int b8 = 0; b8 < 8; b8++) p[b8] = fi_plane_lookup(FI_ZIG64_PLANES[b8], layer, high);
    p[7] = fi_signed_top(p[7], sign);
    fi_join_planes64(p, q);
    for (int g = 0; g < 8; g++) w[g] = (fi_f64xv)q[g];
    const __m512i k_lo = fi_plane_lookup(FI_ZIG64_PLANES[8], layer, high),
                  k_hi = fi_plane_lookup(FI_ZIG64_PLANES[9], layer, high);
    for (int g = 0; g < 8; g++)
        k[g] = (fi_i64xv)FI_K_TOP16(FI_KSEL64, g, 0xC0C0C0C0C0C0C0C0ULL, k_lo, k_hi);
}
#undef FI_K_TOP16
#undef FI_PICK64
#undef FI_PICK32
#undef FI_PAIR

/* The fast tests of the whole-block look-ups, against K's top 16 bits: the
 * candidate c (the 32-bit half, or the whole output) is accepted when c < K_top16
 * shifted to the top (unsigned), which is when its magnitude's top 16 bits are
 * below K's; candidates whose top bits equal K's are left to the fix-up's full
 * test. The magnitude m is converted as c with its low 9 (12) bits cleared, m
 * times 2^9 (2^12), exactly, and multiplied by the signed W scaled down as much, so
 * the product is the signed fl(m W) of the other kernels; the multiply's mask
 * keeps a rejected candidate's bits. Four instructions a vector, where the exact
 * test (fi_normal_f32_test) takes seven. */
FI_INLINE uint32_t fi_normal_f32_test_top16(fi_u64xv o, fi_f32xv w, fi_i32xv k, fi_f32xv *z)
{
    const __m512i h = (__m512i)o;
    const __mmask16 accept = _mm512_cmplt_epu32_mask(h, (__m512i)k);
    *z = (fi_f32xv)_mm512_mask_mul_ps(                       /* accept ? m W : h */
        (__m512)h, accept, _mm512_cvtepu32_ps(_mm512_and_si512(h, _mm512_set1_epi32(-512))),
        (__m512)w);
    return accept;
}

FI_INLINE uint32_t fi_normal_f64_test_top16(fi_u64xv x, fi_f64xv w, fi_i64xv k, fi_f64xv *z)
{
    const __m512i c = (__m512i)x;
    const __mmask8 accept = _mm512_cmplt_epu64_mask(c, (__m512i)k);
    *z = (fi_f64xv)_mm512_mask_mul_pd(                       /* accept ? m W : c */
        (__m512d)c, accept, _mm512_cvtepu64_pd(_mm512_and_si512(c, _mm512_set1_epi64(-4096))),
        (__m512d)w);
    return accept;
}

/* One word of a whole block's fast path, 64 candidates (two steps of float32, four
 * of float64): the lanes' next states drawn from s0..s3 (advanced), the values (or
 * a rejected candidate's raw bits) in z[0..], the accepted ones' bits returned
 * (candidate e of the word at bit e). */
#define FI_DEFINE_NORMAL_WORD64(NAME, VEC, KVEC, LAYERS, TEST, PER_STEP)                   \
FI_INLINE uint64_t NAME(fi_u64xv *s0, fi_u64xv *s1, fi_u64xv *s2, fi_u64xv *s3,            \
                        VEC (*z)[FI_NV])                                                   \
{                                                                                          \
    enum { STEPS = 64 / (PER_STEP), NVEC = STEPS * FI_NV, PER_VEC = (PER_STEP) / FI_NV };  \
    fi_u64xv o[NVEC];                                                                      \
    VEC w[NVEC];                                                                           \
    KVEC k[NVEC];                                                                          \
    for (int q = 0; q < NVEC; q++)                                                         \
        o[q] = fi_stepv(&s0[q % FI_NV], &s1[q % FI_NV], &s2[q % FI_NV], &s3[q % FI_NV]);   \
    LAYERS(o, w, k);                                                                       \
    uint64_t accepted = 0;                                                                 \
    for (int q = 0; q < NVEC; q++)                                                         \
        accepted |= (uint64_t)TEST(o[q], w[q], k[q], &z[q / FI_NV][q % FI_NV])             \
                    << (PER_VEC * q);                                                      \
    return accepted;                                                                       \
}
FI_DEFINE_NORMAL_WORD64(fi_normal_f32_word64, fi_f32xv, fi_i32xv, fi_zig32_layers64,
                        fi_normal_f32_test_top16, 2 * FI_LANES)
FI_DEFINE_NORMAL_WORD64(fi_normal_f64_word64, fi_f64xv, fi_i64xv, fi_zig64_layers64,
                        fi_normal_f64_test_top16, FI_LANES)
#undef FI_DEFINE_NORMAL_WORD64

/* The lanes' states copied into locals for a block's walk (GCC stored them back
 * each step through the pointer), and back. */
#define FI_LANES_IN(LN)                                                                    \
    fi_u64xv s0[FI_NV], s1[FI_NV], s2[FI_NV], s3[FI_NV];                                   \
    for (int v = 0; v < FI_NV; v++)                                                        \
        s0[v] = (LN)->s0[v], s1[v] = (LN)->s1[v], s2[v] = (LN)->s2[v], s3[v] = (LN)->s3[v]
#define FI_LANES_OUT(LN)                                                                   \
    for (int v = 0; v < FI_NV; v++)                                                        \
        (LN)->s0[v] = s0[v], (LN)->s1[v] = s1[v], (LN)->s2[v] = s2[v], (LN)->s3[v] = s3[v]

/* The whole-block fast paths, word by word: the rejected candidates' bits in
 * `rejected` (32 words: element k at bit k % 64 of word k / 64). */
#define FI_DEFINE_NORMAL_FAST_BLOCK64(NAME, VEC, WORD, PER_STEP)                           \
FI_INLINE void NAME(fi_lanesv *ln, VEC (*z)[FI_NV], uint64_t *rejected)                    \
{                                                                                          \
    enum { STEPS = 64 / (PER_STEP) };                                                      \
    FI_LANES_IN(ln);                                                                       \
    for (int t = 0; t < FI_BLOCK / (PER_STEP); t += STEPS)                                 \
        rejected[t / STEPS] = ~WORD(s0, s1, s2, s3, z + t);                                \
    FI_LANES_OUT(ln);                                                                      \
}

FI_DEFINE_NORMAL_FAST_BLOCK64(fi_normal_f32_fast_block, fi_f32xv, fi_normal_f32_word64,
                              2 * FI_LANES)
FI_DEFINE_NORMAL_FAST_BLOCK64(fi_normal_f64_fast_block, fi_f64xv, fi_normal_f64_word64, FI_LANES)
#else
FI_DEFINE_NORMAL_FAST_BLOCK(fi_normal_f32_fast_block, fi_f32xv, fi_i32xv, fi_zig32_layersv,
                            fi_normal_f32_test, 2 * FI_LANES)
FI_DEFINE_NORMAL_FAST_BLOCK(fi_normal_f64_fast_block, fi_f64xv, fi_i64xv, fi_zig64_layersv,
                            fi_normal_f64_test, FI_LANES)
#endif
/* A value's bits: float32 in the low 32. */
FI_INLINE uint64_t fi_bits32(float v) { uint32_t b; memcpy(&b, &v, 4); return b; }
FI_INLINE uint64_t fi_bits64(double v) { uint64_t b; memcpy(&b, &v, 8); return b; }

/* The slow sampler's value for candidate w of lane `lane` (IS64: a float64
 * candidate, else the 32 bits of a float32 one), as bits. */
FI_INLINE uint64_t fi_zig_slow_bits(fi_lanes *aux, int lane, uint64_t w, int is64)
{
    return is64 ? fi_bits64(fi_zig64_slow(aux, lane, w))
                : fi_bits32(fi_zig32_slow(aux, lane, (uint32_t)w));
}

/* One rejected candidate completed from its lane's auxiliary stream: the bits of
 * the value fi_zig_slow_bits gives. The wedge test draws output o1; should it
 * reject, the next candidate is output o2, which the fast test accepts 98.5% of the
 * time. Both are drawn at once and both outcomes computed, and the lane keeps its
 * state after o1 where the wedge accepts, after o2 where it rejects, chosen by
 * masks: the common cases run without a branch on the data (the wedge's coin flip
 * is one no predictor can guess). The rest, 2.5% of them (the base strip,
 * the squeeze undecided, a second rejection; and a candidate the full test
 * accepts, which the avx512vbmi fast path leaves here when the top 16 bits of its
 * magnitude tie K's), take one predictable branch to the slow sampler, from the
 * candidate and the lane's state as they came. (C harness on Zen 5, a block's
 * fix-ups interleaved with the branchy version: 1330 against 1750 TSC ticks, first
 * quartiles; on Zen 3 the first version of this took 430 ns against the slow
 * sampler's 900.) */
FI_INLINE uint64_t fi_zig_fix(fi_lanes *aux, int lane, uint64_t w, int is64)
{
    const int idx = (int)(w & 255), layer = idx | (idx == 0);   /* layer 0 goes slow */
    uint64_t *state = fi_lane_state(aux, lane);
    uint64_t s[4] = {state[0], state[FI_LANES], state[2 * FI_LANES], state[3 * FI_LANES]};
    const uint64_t o1 = fi_xoshiro_next(s);
    const uint64_t after_o1[4] = {s[0], s[1], s[2], s[3]};
    const uint64_t o2 = fi_xoshiro_next(s);
    double x;
    uint64_t xbits, x2bits, fast2, accepted;
    if (is64) {
        const uint64_t m = w >> 12, m2 = o2 >> 12;
        x = fi_u52_to_double(m) * FI_ZIG64_W[idx];
        xbits = fi_bits64(x) ^ (w & 256) << 55;
        x2bits = fi_bits64(fi_u52_to_double(m2) * FI_ZIG64_W[o2 & 255]) ^ (o2 & 256) << 55;
        fast2 = m2 < FI_ZIG64_K[o2 & 255];
        accepted = m < FI_ZIG64_K[idx];
    } else {
        const uint32_t w2 = (uint32_t)o2, m2 = w2 >> 9;
        const float xf = (float)(int32_t)((uint32_t)w >> 9) * FI_ZIG32_W[idx];
        x = (double)xf;
        xbits = fi_bits32(xf) ^ (w & 256) << 23;
        x2bits = fi_bits32((float)(int32_t)m2 * FI_ZIG32_W[w2 & 255]) ^ (w2 & 256) << 23;
        fast2 = m2 < FI_ZIG32_K[w2 & 255];
        accepted = ((uint32_t)w >> 9) < FI_ZIG32_K[idx];
    }
    double y;
    const int side = fi_zig_squeeze_side(o1, layer, x, &y);
    const uint64_t below = side == FI_ZIG_BELOW;
    if (__builtin_expect((idx == 0) | (side == 0) | !(below | fast2) | accepted, 0))
        return fi_zig_slow_bits(aux, lane, w, is64);
    uint64_t keep = -below;
    __asm__("" : "+r"(keep));        /* keep the selects selects, not branches */
    for (int j = 0; j < 4; j++) state[j * FI_LANES] = (after_o1[j] & keep) | (s[j] & ~keep);
    return (xbits & keep) | (x2bits & ~keep);
}

/* Completes the rejected candidates of one step, or one word of steps, in element
 * order: element k (bit k of `rejected`) holds its candidate's raw bits until
 * fi_zig_fix, drawing from lane LANE_OF(k % PER_STEP), replaces them by the
 * value's. */
#define FI_DEFINE_NORMAL_FIX(NAME, VEC, RAW, IS64, LANE_OF, PER_STEP)                      \
FI_INLINE void NAME(fi_lanes *aux, uint64_t rejected, VEC *zv)                             \
{                                                                                          \
    RAW *z = (RAW *)zv;                                                                    \
    for (; rejected; rejected &= rejected - 1) {                                           \
        const int k = __builtin_ctzll(rejected);                                           \
        z[k] = (RAW)fi_zig_fix(aux, LANE_OF(k % (PER_STEP)), z[k], IS64);                  \
    }                                                                                      \
}

#define FI_LANE_OF_F32(k) ((k) >> 1)   /* two float32 candidates per lane and step */
#define FI_LANE_OF_F64(k) (k)
FI_DEFINE_NORMAL_FIX(fi_normal_f32_fixv, fi_f32xv, fi_u32_alias, 0, FI_LANE_OF_F32, 2 * FI_LANES)
FI_DEFINE_NORMAL_FIX(fi_normal_f64_fixv, fi_f64xv, fi_u64_alias, 1, FI_LANE_OF_F64, FI_LANES)

/* The same over a whole block, whose rejected elements are the bits of `rej` (32
 * words: element k at bit k % 64 of word k / 64), in one loop whose only branches
 * on the data are the moves to the next nonzero word. Not inlined: its registers
 * are its own (a fifth of its time went to spills inside the block kernel). */
#define FI_DEFINE_NORMAL_FIX_BLOCK(NAME, RAW, IS64, LANE_OF, PER_STEP)                    \
static __attribute__((noinline)) void NAME(fi_lanes *aux, const uint64_t *rej, void *zv)  \
{                                                                                          \
    RAW *z = (RAW *)zv;                                                                    \
    uint64_t live = 0;                        /* the nonzero words */                      \
    int total = 0;                                                                         \
    for (int i = 0; i < FI_BLOCK / 64; i++) {                                              \
        live |= (uint64_t)(rej[i] != 0) << i;                                              \
        total += __builtin_popcountll(rej[i]);                                             \
    }                                                                                      \
    if (!total) return;                                                                    \
    int wi = __builtin_ctzll(live);                                                        \
    uint64_t word = rej[wi];                                                               \
    for (int n = 0; n < total; n++) {                                                      \
        const int k = 64 * wi + __builtin_ctzll(word);                                     \
        z[k] = (RAW)fi_zig_fix(aux, LANE_OF(k % (PER_STEP)), z[k], IS64);                  \
        word &= word - 1;                                                                  \
        if (!word && n + 1 < total) {                                                      \
            live &= live - 1;                                                              \
            wi = __builtin_ctzll(live);                                                    \
            word = rej[wi];                                                                \
        }                                                                                  \
    }                                                                                      \
}

FI_DEFINE_NORMAL_FIX_BLOCK(fi_normal_f32_fix_block, fi_u32_alias, 0, FI_LANE_OF_F32, 2 * FI_LANES)
FI_DEFINE_NORMAL_FIX_BLOCK(fi_normal_f64_fix_block, fi_u64_alias, 1, FI_LANE_OF_F64, FI_LANES)

/* A whole block's fast pass and fix-ups: the values in z. */
#ifdef __AVX512VBMI__
/* With VBMI, one loop: each word's rejected candidates are completed while the
 * next word's fast pass runs, so that the fix-ups' scalar work and the fast pass's
 * vector work overlap. The same order of each lane's auxiliary draws: word by word,
 * element by element. Not inlined, so that its registers are its own in every
 * kernel: inlined into the 16-bit pieces (two block kernels in one function), GCC
 * kept the look-ups' vectors on the stack and the float16 normal fill ran 0.8 of
 * float32's rate instead of 1.0. */
#define FI_DEFINE_NORMAL_FAST_FIX(NAME, VEC, WORD, FIX, PER_STEP)                          \
static __attribute__((noinline)) void NAME(fi_lanesv *ln, fi_lanes *aux, VEC (*z)[FI_NV])    \
{                                                                                          \
    enum { STEPS = 64 / (PER_STEP) };                                                      \
    FI_LANES_IN(ln);                                                                       \
    uint64_t pending = 0;                       /* the previous word's rejected ones */    \
    for (int t = 0; t < FI_BLOCK / (PER_STEP); t += STEPS) {                               \
        const uint64_t accepted = WORD(s0, s1, s2, s3, z + t);                             \
        if (t) FIX(aux, pending, z[t - STEPS]);                                            \
        pending = ~accepted;                                                               \
    }                                                                                      \
    FIX(aux, pending, z[FI_BLOCK / (PER_STEP) - STEPS]);                                   \
}
FI_DEFINE_NORMAL_FAST_FIX(fi_normal_f32_fast_fix, fi_f32xv, fi_normal_f32_word64,
                          fi_normal_f32_fixv, 2 * FI_LANES)
FI_DEFINE_NORMAL_FAST_FIX(fi_normal_f64_fast_fix, fi_f64xv, fi_normal_f64_word64,
                          fi_normal_f64_fixv, FI_LANES)
#undef FI_LANES_OUT
#undef FI_LANES_IN
#else
#define FI_DEFINE_NORMAL_FAST_FIX(NAME, VEC, FAST, FIX)                                    \
FI_INLINE void NAME(fi_lanesv *ln, fi_lanes *aux, VEC (*z)[FI_NV])                           \
{                                                                                          \
    uint64_t rejected[FI_BLOCK / 64];            /* element k at bit k % 64 of word k / 64 */ \
    FAST(ln, z, rejected);                                                                 \
    FIX(aux, rejected, z);                                                                 \
}
FI_DEFINE_NORMAL_FAST_FIX(fi_normal_f32_fast_fix, fi_f32xv, fi_normal_f32_fast_block,
                          fi_normal_f32_fix_block)
FI_DEFINE_NORMAL_FAST_FIX(fi_normal_f64_fast_fix, fi_f64xv, fi_normal_f64_fast_block,
                          fi_normal_f64_fix_block)
#endif
#undef FI_DEFINE_NORMAL_FAST_FIX

/* One step, fast path then fix-ups (the cursor's path). */
FI_INLINE void fi_normal_f32_step(fi_lanesv *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)pr;
    fi_f32xv z[FI_NV];
    fi_normal_f32_fixv(aux, ~fi_normal_f32_fastv(ln, z), z);     /* 32 elements */
    memcpy(out, z, sizeof z);
}

FI_INLINE void fi_normal_f64_step(fi_lanesv *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)pr;
    fi_f64xv z[FI_NV];
    fi_normal_f64_fixv(aux, ~fi_normal_f64_fastv(ln, z) & 0xFFFF, z);
    memcpy(out, z, sizeof z);
}

FI_DEFINE_ADVANCE(fi_normal_f32_advance, fi_normal_f32_step, 4 * 2 * FI_LANES, 1)
FI_DEFINE_ADVANCE(fi_normal_f64_advance, fi_normal_f64_step, 8 * FI_LANES, 1)

/* mean + std * z over the cursor's values. */
FI_INLINE void fi_normal_f32_map(const uint64_t *raw, int64_t j0, int64_t n,
                                 const fi_normal_params *pr, float *out)
{
    const float *z = (const float *)raw + j0;
    const float mean = pr->mean_f, std = pr->std_f;
    for (int64_t k = 0; k < n; k++) out[k] = mean + std * z[k];
}

FI_INLINE void fi_normal_f64_map(const uint64_t *raw, int64_t j0, int64_t n,
                                 const fi_normal_params *pr, double *out)
{
    const double *z = (const double *)raw + j0;
    const double mean = pr->mean, std = pr->std;
    for (int64_t k = 0; k < n; k++) out[k] = mean + std * z[k];
}

/* A whole block: the fast path over every step with the main lanes kept in
 * registers and the fix-ups in element order (fi_normal_f32_fast_fix: each lane's
 * auxiliary stream is consumed in its candidates' order either way), then mean +
 * std * z stored. */
#define FI_DEFINE_NORMAL_WHOLE(NAME, CTYPE, VEC, FAST_FIX, SPLAT, MEAN, STD, PER_STEP)     \
FI_INLINE void NAME##_store(VEC (*z)[FI_NV], VEC mean, VEC std, fi_sink *out, int fmt,      \
                            int sink_mode)                                                     \
{                                                                                          \
    enum { STEPS = FI_BLOCK / (PER_STEP), PER_VEC = 8 * FI_VW / sizeof(CTYPE) };           \
    for (int t = 0; t < STEPS; t++) {                                                      \
        fi_f32xv val[FI_NV];                                                               \
        for (int v = 0; v < FI_NV; v++) val[v] = (fi_f32xv)(mean + std * z[t][v]);         \
        if (sizeof(CTYPE) == 4) fi_store_stepv(out, t * (PER_STEP), val, fmt, sink_mode);      \
        else for (int v = 0; v < FI_NV; v++)                                               \
            fi_store_vecv(out, t * (PER_STEP) + PER_VEC * v, val[v], fmt, sink_mode);          \
    }                                                                                      \
}                                                                                          \
                                                                                           \
FI_INLINE void NAME(uint64_t sigma, uint64_t block, const fi_normal_params *pr, void *dst, \
                    int stream, int fmt)                                                   \
{                                                                                          \
    VEC z[FI_BLOCK / (PER_STEP)][FI_NV];                                                   \
    fi_lanesv ln;                                                                          \
    fi_lanes aux;                                                                          \
    fi_lanesv_seed(&ln, sigma, block, 0);                                                  \
    fi_lanes_seed(&aux, sigma, block, 1);                                                  \
    FAST_FIX(&ln, &aux, z);                                                                \
    const VEC mean = SPLAT(pr->MEAN), std = SPLAT(pr->STD);                                \
    fi_sink out = fi_sink_open(dst, stream);                                               \
    FI_SINK_DISPATCH(&out, NAME##_store, z, mean, std, &out, fmt)                          \
    fi_sink_close(&out, fi_block_bytes(fmt));                                              \
}

FI_DEFINE_NORMAL_WHOLE(fi_normal_f32_whole, float, fi_f32xv, fi_normal_f32_fast_fix,
                       fi_splatv_f32, mean_f, std_f, 2 * FI_LANES)
FI_DEFINE_NORMAL_WHOLE(fi_normal_f64_whole, double, fi_f64xv, fi_normal_f64_fast_fix,
                       fi_splatv_f64, mean, std, FI_LANES)

FI_DEFINE_PIECE(fi_normal_f32_body, float, FI_OUT_F32, fi_normal_params, fi_normal_f32_advance,
                fi_normal_f32_map, fi_normal_f32_whole, 2 * FI_LANES)
FI_DEFINE_PIECE(fi_normal_f64_body, double, FI_OUT_F64, fi_normal_params, fi_normal_f64_advance,
                fi_normal_f64_map, fi_normal_f64_whole, FI_LANES)
FI_DEFINE_PIECE16(fi_normal_f16_body, fi_normal_params, fi_normal_f32_advance,
                  fi_normal_f32_map, fi_normal_f32_whole, 0, 2 * FI_LANES)
FI_DEFINE_PIECE16(fi_normal_bf16_body, fi_normal_params, fi_normal_f32_advance,
                  fi_normal_f32_map, fi_normal_f32_whole, 1, 2 * FI_LANES)

#endif /* FI_NORMAL_H */
