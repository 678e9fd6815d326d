/*
 * Truncated normal fills (docs/stream.md, section 7): exact rejection sampling in
 * binary64, one element per lane and step, with normal (mode 0), uniform (mode 1)
 * or exponential (mode 2, Robert 1995) proposals; values rounded to the target and
 * clipped to its values inside [a, b].
 */
#ifndef FI_TRUNC_H
#define FI_TRUNC_H

#include "fi_normal.h"

/* The standardized interval [alpha, beta], the values' map mean + std * z, its clip
 * [lo_clip, hi_clip], the proposal mode and mode 2's rate. */
typedef struct {
    uint64_t sigma;
    double mean, std, alpha, beta, lo_clip, hi_clip, rate;
    int32_t mode;
} fi_trunc_params;
#define FI_TRUNC_FORMAT "sigma:Q mean:d std:d alpha:d beta:d lo_clip:d hi_clip:d rate:d mode:i"

/* The next float64 normal of a lane's auxiliary stream, zig64(A()): the fast
 * path inline, the rest by the slow sampler (which repeats the fast test first). */
FI_INLINE double fi_zig64_next(fi_lanes *aux, int lane)
{
    const uint64_t x = fi_lane_next(aux, lane);
    const int idx = (int)(x & 255);
    const uint64_t m = x >> 12;
    if (__builtin_expect(m >= FI_ZIG64_K[idx], 0)) return fi_zig64_slow(aux, lane, x);
    const double d = fi_u52_to_double(m) * FI_ZIG64_W[idx];
    return (x >> 8) & 1 ? -d : d;
}

/* A standardized truncated normal in [alpha, beta] for one element (docs/stream.md,
 * section 7), from its first candidate and then its lane's auxiliary outputs.
 * Mode 0: z is the element's float64 normal value; while z is outside,
 * z = zig64(A()). Mode 1: proposals x = alpha + (beta - alpha) U, accepted when
 * U(A()) < exp_d(c - x^2/2), c = min over the interval of x^2/2. Mode 2 (Robert,
 * 1995; the interval within one tail, mirrored to the right one when beta <= 0,
 * [lo, hi] = |ends|): x = lo - log_d(U') / rate, accepted when x <= hi and
 * U(A()) < exp_d(-(x - rate)^2 / 2). Each proposal's first uniform comes from the
 * main output x0 for the first proposal, from A() for later ones. */
static double fi_trunc_one(fi_lanes *aux, int lane, double z, uint64_t x0, const fi_trunc_params *pr)
{
    if (pr->mode == 0) {
        while (!(z >= pr->alpha && z <= pr->beta)) z = fi_zig64_next(aux, lane);
        return z;
    }
    if (pr->mode == 1) {
        const double width = pr->beta - pr->alpha;
        const double m = pr->alpha > 0 ? pr->alpha : (pr->beta < 0 ? pr->beta : 0.0);
        const double c = 0.5 * m * m;
        double x = pr->alpha + width * fi_u53(x0);
        for (;;) {
            if (x > pr->beta) x = pr->beta;
            if (fi_less_than_exp(fi_u53(fi_lane_next(aux, lane)), c - 0.5 * x * x)) return x;
            x = pr->alpha + width * fi_u53(fi_lane_next(aux, lane));
        }
    }
    const int mirror = pr->alpha < 0;
    const double lo = mirror ? -pr->beta : pr->alpha, hi = mirror ? -pr->alpha : pr->beta;
    uint64_t first = x0;
    for (;;) {
        const double x = lo - fi_log(fi_u53_open(first)) / pr->rate;
        const double d = x - pr->rate;
        if (x <= hi && fi_less_than_exp(fi_u53(fi_lane_next(aux, lane)), -0.5 * d * d))
            return mirror ? -x : x;
        first = fi_lane_next(aux, lane);
    }
}

/* One step: 16 standardized truncated normals (element l from lane l), binary64. */
FI_INLINE void fi_trunc_step(fi_lanesv *ln, fi_lanes *aux, const void *params, void *out)
{
    const fi_trunc_params *pr = (const fi_trunc_params *)params;
    double *z = (double *)out;
    if (pr->mode == 0) {
        fi_normal_f64_step(ln, aux, params, out);           /* vectorized fast path */
        for (int k = 0; k < FI_LANES; k++)
            if (!(z[k] >= pr->alpha && z[k] <= pr->beta)) z[k] = fi_trunc_one(aux, k, z[k], 0, pr);
        return;
    }
    uint64_t x[FI_LANES] FI_ALIGN64;
    fi_uniform_step(ln, aux, params, x);
    for (int k = 0; k < FI_LANES; k++) z[k] = fi_trunc_one(aux, k, 0.0, x[k], pr);
}

FI_DEFINE_ADVANCE(fi_trunc_advance, fi_trunc_step, 8 * FI_LANES, 1)

/* Values: v = mean + std z in binary64, rounded to the target, then clipped to
 * [lo_clip, hi_clip] (the interval's ends rounded inward to the target). */
FI_INLINE void fi_trunc_f64_map(const uint64_t *raw, int64_t j0, int64_t n,
                                const fi_trunc_params *pr, double *out)
{
    const double *z = (const double *)raw + j0;
    for (int64_t k = 0; k < n; k++) {
        double v = pr->mean + pr->std * z[k];
        v = v < pr->lo_clip ? pr->lo_clip : v;
        out[k] = v > pr->hi_clip ? pr->hi_clip : v;
    }
}

FI_INLINE void fi_trunc_f32_map(const uint64_t *raw, int64_t j0, int64_t n,
                                const fi_trunc_params *pr, float *out)
{
    const double *z = (const double *)raw + j0;
    const float lo = (float)pr->lo_clip, hi = (float)pr->hi_clip;
    for (int64_t k = 0; k < n; k++) {
        float v = (float)(pr->mean + pr->std * z[k]);
        v = v < lo ? lo : v;
        out[k] = v > hi ? hi : v;
    }
}

/* Mode 0's float64 normal fast path over a block (fi_normal_f64_fast_block). */
FI_INLINE void fi_trunc_normal_fast(uint64_t block, const fi_trunc_params *pr,
                                    fi_f64xv (*z)[FI_NV], uint64_t *rejected)
{
    fi_lanesv ln;
    fi_lanesv_seed(&ln, pr->sigma, block, 0);
    fi_normal_f64_fast_block(&ln, z, rejected);
}

/* No value the Ziggurat draws (section 6) is 14 or more in magnitude: the fast
 * path and the wedges give less than r = 3.654..., the tail r + xx with xx =
 * -log_d(U') / r, and U' >= 2^-53 makes -log_d(U') at most 53 ln 2 = 36.74 (log_d
 * is within an ulp or two of ln), so xx < 10.06 and r + xx < 13.71. An interval
 * holding [-14, 14] thus rejects nothing (trunc_normal_(std=0.02)'s [-100, 100]). */
#define FI_ZIG_MAX 14.0

/* Whether any of the block's values lies outside [alpha, beta]: the block's least
 * and greatest values against them (no value is a NaN), two instructions a vector
 * where comparing each vector with both ends took six. */
FI_INLINE int fi_trunc_any_outside(const fi_trunc_params *pr, fi_f64xv (*z)[FI_NV])
{
    fi_f64xv lo = z[0][0], hi = z[0][0];
    for (int t = 0; t < FI_BLOCK / FI_LANES; t++)
        for (int v = 0; v < FI_NV; v++) {
            lo = fi_min_f64xv(lo, z[t][v]);
            hi = fi_max_f64xv(hi, z[t][v]);
        }
    const fi_i64xv outside = (lo < fi_splatv_f64(pr->alpha)) | (hi > fi_splatv_f64(pr->beta));
    return fi_mask_bits_u64xv((fi_u64xv)outside) != 0;
}

/* Doubles' bits as signed integers that order the doubles as their values do (NaNs
 * apart; -0 just below +0): negative values' magnitude bits inverted. */
FI_INLINE fi_i64xv fi_order_keyv(fi_i64xv bits)
{
    return bits ^ ((fi_i64xv)(bits < 0) & INT64_MAX);
}

/* Mode 0 after a whole block's fast pass (z: its values, or a rejected candidate's
 * raw bits, element k at bit k % 64 of rejected[k / 64]): the elements the fast test
 * rejected or whose value lies outside [alpha, beta], in element order, each
 * completed by the Ziggurat (fi_zig_fix) and then drawn again while outside, in one
 * loop over their bitmap. Per lane that is fi_trunc_step's order, a step holding one
 * element of each lane. */
static __attribute__((noinline)) void fi_trunc_complete0(fi_lanes *aux, const fi_trunc_params *pr,
                                                         const uint64_t *rejected, uint64_t *zbits)
{
    /* The range check on the values' bits as integers: a rejected candidate's raw
     * bits may be a NaN, and a floating-point comparison of one would set the
     * invalid-operation flag of the caller's floating-point state (a write mask does
     * not stop a compiler from comparing every lane). key(x) orders the doubles as
     * their values do, NaNs apart, except -0 < +0, hence the zeros' ends below. */
    const fi_i64xv lo = fi_order_keyv((fi_i64xv)fi_splatv_f64(pr->alpha == 0.0 ? -0.0 : pr->alpha)),
                   hi = fi_order_keyv((fi_i64xv)fi_splatv_f64(pr->beta == 0.0 ? 0.0 : pr->beta));
    for (int i = 0; i < FI_BLOCK / 64; i++) {
        uint64_t outside = 0;
        for (int q = 0; q < 64 / FI_VW; q++) {
            fi_i64xv b;
            memcpy(&b, zbits + 64 * i + FI_VW * q, sizeof b);
            const fi_i64xv key = fi_order_keyv(b);
            outside |= (uint64_t)fi_mask_bits_u64xv((fi_u64xv)((key < lo) | (key > hi)))
                       << (FI_VW * q);
        }
        for (uint64_t todo = rejected[i] | outside; todo; todo &= todo - 1) {
            const int k = 64 * i + __builtin_ctzll(todo), lane = k % FI_LANES;
            double v;
            if ((rejected[i] >> (k & 63)) & 1) {
                const uint64_t bits = fi_zig_fix(aux, lane, zbits[k], 1);
                memcpy(&v, &bits, sizeof v);
                if (__builtin_expect(v >= pr->alpha && v <= pr->beta, 1)) {
                    zbits[k] = bits;
                    continue;
                }
            }
            do v = fi_zig64_next(aux, lane);
            while (__builtin_expect(!(v >= pr->alpha && v <= pr->beta), 0));
            memcpy(zbits + k, &v, sizeof v);
        }
    }
}

/* A whole block's standardized values z (binary64, element j at z[j]) without a
 * cursor. Mode 0: the float64 normal fast path over every step, then the Ziggurat
 * fix-ups and the range rejections in one loop in element order
 * (fi_trunc_complete0), so each lane's auxiliary stream is consumed in its
 * elements' order as in fi_trunc_step. Over an interval holding
 * [-r, r], where only the tail's rare values can fall outside, first the block's
 * normal values as fi_normal_f64_whole draws them (fi_normal_f64_fast_fix) and a
 * check, which an interval holding [-FI_ZIG_MAX, FI_ZIG_MAX] (trunc_normal_(std=
 * 0.02)'s [-100, 100], say) skips: only should a value lie outside is the block
 * drawn again that way. Modes 1 and 2: the main outputs, then each element
 * in order. */
FI_INLINE void fi_trunc_whole(uint64_t block, const fi_trunc_params *pr, uint64_t *zbits)
{
    enum { STEPS = FI_BLOCK / FI_LANES };
    fi_lanes aux;
    if (pr->mode == 0) {
        fi_f64xv (*z)[FI_NV] = (fi_f64xv (*)[FI_NV])zbits;      /* in place (64-byte aligned) */
        uint64_t rejected[FI_BLOCK / 64];
        if (pr->alpha <= -FI_ZIG_R && pr->beta >= FI_ZIG_R) {
            fi_lanesv ln;
            fi_lanesv_seed(&ln, pr->sigma, block, 0);
            fi_lanes_seed(&aux, pr->sigma, block, 1);
            fi_normal_f64_fast_fix(&ln, &aux, z);
            if (pr->alpha <= -FI_ZIG_MAX && pr->beta >= FI_ZIG_MAX) return;
            if (__builtin_expect(!fi_trunc_any_outside(pr, z), 1)) return;
        }
        fi_trunc_normal_fast(block, pr, z, rejected);
        fi_lanes_seed(&aux, pr->sigma, block, 1);
        fi_trunc_complete0(&aux, pr, rejected, zbits);
        return;
    }
    fi_lanesv ln;
    fi_lanesv_seed(&ln, pr->sigma, block, 0);
    for (int t = 0; t < STEPS; t++) fi_uniform_step(&ln, &aux, pr, zbits + t * FI_LANES);
    fi_lanes_seed(&aux, pr->sigma, block, 1);
    double *z = (double *)zbits;
    for (int j = 0; j < FI_BLOCK; j++)
        z[j] = fi_trunc_one(&aux, j % FI_LANES, 0.0, zbits[j], pr);
}

/* A whole block's values, as fi_trunc_f32_map and fi_trunc_f64_map compute them,
 * vector by vector from its z (element j at z[j]) and stored as elements of dst:
 * float32 values in format fmt (float32 or 16-bit) a step of 32 at a time, float64
 * ones FI_VW at a time; non-temporal when stream is set. */
FI_INLINE void fi_trunc_store_f32_to(const double *z, const fi_trunc_params *pr, fi_sink *out,
                                     int fmt, int sink_mode)
{
    const fi_f64xv mean = fi_splatv_f64(pr->mean), std = fi_splatv_f64(pr->std);
    const fi_f32xv lo = fi_splatv_f32((float)pr->lo_clip), hi = fi_splatv_f32((float)pr->hi_clip);
    for (int k = 0; k < FI_BLOCK; k += 2 * FI_LANES) {
        fi_f32xv val[FI_NV];
        for (int v = 0; v < FI_NV; v++) {
            fi_f64xv a, b;
            memcpy(&a, z + k + 2 * FI_VW * v, sizeof a);
            memcpy(&b, z + k + 2 * FI_VW * v + FI_VW, sizeof b);
            const fi_f32xh fa = __builtin_convertvector(mean + std * a, fi_f32xh);
            const fi_f32xh fb = __builtin_convertvector(mean + std * b, fi_f32xh);
#if FI_VW == 8
            const fi_f32xv x = __builtin_shufflevector(fa, fb, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                       10, 11, 12, 13, 14, 15);
#else
            const fi_f32xv x = __builtin_shufflevector(fa, fb, 0, 1, 2, 3, 4, 5, 6, 7);
#endif
            val[v] = fi_min_f32xv(hi, fi_max_f32xv(lo, x));   /* x < lo ? lo, x > hi ? hi */
        }
        fi_store_stepv(out, k, val, fmt, sink_mode);
    }
}

FI_INLINE void fi_trunc_store_f32(const double *z, const fi_trunc_params *pr, void *dst, int fmt,
                                  int stream)
{
    fi_sink out = fi_sink_open(dst, stream);
    FI_SINK_DISPATCH(&out, fi_trunc_store_f32_to, z, pr, &out, fmt)
    fi_sink_close(&out, fi_block_bytes(fmt));
}

FI_INLINE void fi_trunc_store_f64_to(const double *z, const fi_trunc_params *pr, fi_sink *out,
                                     int sink_mode)
{
    const fi_f64xv mean = fi_splatv_f64(pr->mean), std = fi_splatv_f64(pr->std);
    const fi_f64xv lo = fi_splatv_f64(pr->lo_clip), hi = fi_splatv_f64(pr->hi_clip);
    for (int k = 0; k < FI_BLOCK; k += FI_VW) {
        fi_f64xv x;
        memcpy(&x, z + k, sizeof x);
        x = mean + std * x;
        x = fi_min_f64xv(hi, fi_max_f64xv(lo, x));
        fi_store_vecv(out, k, (fi_f32xv)x, FI_OUT_F64, sink_mode);
    }
}

FI_INLINE void fi_trunc_store_f64(const double *z, const fi_trunc_params *pr, double *dst,
                                  int stream)
{
    fi_sink out = fi_sink_open(dst, stream);
    FI_SINK_DISPATCH(&out, fi_trunc_store_f64_to, z, pr, &out)
    fi_sink_close(&out, fi_block_bytes(FI_OUT_F64));
}

/* A piece: the standardized values of whole blocks from fi_trunc_whole, of partial
 * ones from the cursor. A whole block bound for memory STORE can write (DIRECT, given
 * dst) is stored straight from them; otherwise MAP turns them into the target's
 * values in vals, and CONVERT writes vals (m of them, from local flat index flat). */
#define FI_DEFINE_TRUNC_PIECE(NAME, CTYPE, DTYPE, MAP, CONVERT, DIRECT, STORE)            \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const fi_trunc_params *pr, int64_t p) \
{                                                                                          \
    CTYPE vals[FI_BLOCK] FI_ALIGN64;                                                       \
    uint64_t zbits[FI_BLOCK] FI_ALIGN64;                                                   \
    fi_segment s;                                                                          \
    for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) {             \
        const uint64_t block = s.block;                                                    \
        const int64_t j0 = s.j0, m = s.m, flat = s.flat;                                   \
        DTYPE *dst = (DTYPE *)pl->data + flat;                                             \
        const uint64_t *z = zbits;                                                         \
        if (m == FI_BLOCK) {                                                               \
            fi_trunc_whole(block, pr, zbits);                                              \
            if (DIRECT) {                                                                  \
                STORE;                                                                     \
                continue;                                                                  \
            }                                                                              \
        } else {                                                                           \
            fi_trunc_advance(c, pr, pr->sigma, block, (j0 + m + FI_LANES - 1) / FI_LANES); \
            z = c->raw;                                                                    \
        }                                                                                  \
        MAP(z, m == FI_BLOCK ? 0 : j0, m, pr, vals);                                       \
        CONVERT                                                                            \
    }                                                                                      \
}

/* Whole blocks written straight: contiguous, aligned memory (16-byte aligned where
 * the stores are non-temporal), as fi_pieces.h's kernels; 16-bit ones whenever
 * contiguous, streamed only where 16-byte aligned. Not on the baseline path, where
 * GCC builds each 8-float vector of fi_trunc_store_f32 through the stack (1.3
 * against the map's 0.6 ns per value). */
#ifdef __AVX__
#define FI_TRUNC_VECTOR_STORE 1
#else
#define FI_TRUNC_VECTOR_STORE 0
#endif
#define FI_TRUNC_DIRECT (FI_TRUNC_VECTOR_STORE && pl->contiguous && pl->aligned &&                \
                         !(pl->stream && ((uintptr_t)dst & 15)))
#define FI_TRUNC_STORE16(FMT) \
    fi_trunc_store_f32((const double *)zbits, pr, dst, FMT, pl->stream && !((uintptr_t)dst & 15))

FI_DEFINE_TRUNC_PIECE(fi_trunc_f64_body, double, double, fi_trunc_f64_map,
                      fi_emit(pl, flat, vals, m);, FI_TRUNC_DIRECT,
                      fi_trunc_store_f64((const double *)zbits, pr, dst, pl->stream))
FI_DEFINE_TRUNC_PIECE(fi_trunc_f32_body, float, float, fi_trunc_f32_map,
                      fi_emit(pl, flat, vals, m);, FI_TRUNC_DIRECT,
                      fi_trunc_store_f32((const double *)zbits, pr, dst, FI_OUT_F32, pl->stream))
FI_DEFINE_TRUNC_PIECE(fi_trunc_f16_body, float, uint16_t, fi_trunc_f32_map, {
    uint16_t half[FI_BLOCK] FI_ALIGN64;
    fi_store_half(half, vals, (m + 7) & ~(int64_t)7, 0, 0, 1);
    fi_emit(pl, flat, half, m); }, FI_TRUNC_VECTOR_STORE && pl->contiguous,
                      FI_TRUNC_STORE16(FI_OUT_F16))
FI_DEFINE_TRUNC_PIECE(fi_trunc_bf16_body, float, uint16_t, fi_trunc_f32_map, {
    uint16_t half[FI_BLOCK] FI_ALIGN64;
    fi_store_half(half, vals, (m + 7) & ~(int64_t)7, 1, 0, 1);
    fi_emit(pl, flat, half, m); }, FI_TRUNC_VECTOR_STORE && pl->contiguous,
                      FI_TRUNC_STORE16(FI_OUT_BF16))

#undef FI_TRUNC_DIRECT
#undef FI_TRUNC_VECTOR_STORE
#undef FI_TRUNC_STORE16

#endif /* FI_TRUNC_H */
