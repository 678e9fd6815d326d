/*
 * Normal fills (docs/stream.md, section 6): the 256-layer Ziggurat of Marsaglia and
 * Tsang with its exact tail. The fast path is vectorized over a step's candidates;
 * the ~1.5% of candidates outside the layers' rectangles are completed from their
 * lane's auxiliary stream, in element order. float16 and bfloat16 round the float32
 * values.
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

/* Whether the wedge of layer idx accepts x (given as a double), from one more output:
 * y < exp_d(-x^2/2). The chord of the layer's wedge decides first, when y is farther
 * from it than f can be (FI_ZIG_CHORD), then fi_less_than_exp: the answer is exp_d's. */
static int fi_zig_wedge(fi_lanes *aux, int lane, int idx, double x)
{
    const double u = fi_u53(fi_lane_next(aux, lane));
    const double y = FI_ZIG_F[idx] + u * (FI_ZIG_F[idx - 1] - FI_ZIG_F[idx]);
    const fi_zig_chord ch = FI_ZIG_CHORD[idx];
    const double chord = FI_ZIG_F[idx - 1] + ch.slope * (x - ch.xl);
    if (y < chord - ch.gap) return 1;
    if (y > chord + ch.gap) return 0;
    return fi_less_than_exp(y, -0.5 * x * x);
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
static double fi_zig64_slow(fi_lanes *aux, int lane, uint64_t x64)
{
    for (;;) {
        const int idx = (int)(x64 & 255), negative = (int)(x64 >> 8) & 1;
        const uint64_t m = x64 >> 12;
        const double x = fi_u52_to_double(m) * FI_ZIG64_W[idx];
        if (m < FI_ZIG64_K[idx]) return negative ? -x : x;
        if (idx == 0) return fi_zig_tail(aux, lane, negative);
        if (fi_zig_wedge(aux, lane, idx, x)) return negative ? -x : x;
        x64 = fi_lane_next(aux, lane);
    }
}

/* A float32 candidate w that left the fast path (idx = w & 255, negative = bit 8,
 * magnitude = w >> 9); new candidates are the low halves of auxiliary outputs. */
static float fi_zig32_slow(fi_lanes *aux, int lane, uint32_t w)
{
    for (;;) {
        const int idx = (int)(w & 255), negative = (int)(w >> 8) & 1;
        const uint32_t m = w >> 9;
        const float x = (float)(int32_t)m * FI_ZIG32_W[idx];
        if (m < FI_ZIG32_K[idx]) return negative ? -x : x;
        if (idx == 0) return (float)fi_zig_tail(aux, lane, negative);
        if (fi_zig_wedge(aux, lane, idx, (double)x)) return negative ? -x : x;
        w = (uint32_t)fi_lane_next(aux, lane);
    }
}

/* The layers idx of 8 float32 candidates: W_23 and K_23 of each. With AVX2, one
 * 64-bit load per candidate from the packed table, split by two in-lane shuffles
 * (faster than two 8-lane gathers on Zen 3); elsewhere one load per table and lane. */
FI_INLINE void fi_zig32_layers(fi_u32x8 idx, fi_f32x8 *w, fi_i32x8 *k)
{
#ifdef __AVX2__
    const fi_u64x4 a = {FI_ZIG32_WK[idx[0]], FI_ZIG32_WK[idx[1]], FI_ZIG32_WK[idx[4]],
                        FI_ZIG32_WK[idx[5]]};
    const fi_u64x4 b = {FI_ZIG32_WK[idx[2]], FI_ZIG32_WK[idx[3]], FI_ZIG32_WK[idx[6]],
                        FI_ZIG32_WK[idx[7]]};
    *w = (fi_f32x8)__builtin_shufflevector((fi_u32x8)a, (fi_u32x8)b, 0, 2, 8, 10, 4, 6, 12, 14);
    *k = (fi_i32x8)__builtin_shufflevector((fi_u32x8)a, (fi_u32x8)b, 1, 3, 9, 11, 5, 7, 13, 15);
#else
    *w = (fi_f32x8){FI_ZIG32_W[idx[0]], FI_ZIG32_W[idx[1]], FI_ZIG32_W[idx[2]], FI_ZIG32_W[idx[3]],
                    FI_ZIG32_W[idx[4]], FI_ZIG32_W[idx[5]], FI_ZIG32_W[idx[6]], FI_ZIG32_W[idx[7]]};
    *k = (fi_i32x8){(int32_t)FI_ZIG32_K[idx[0]], (int32_t)FI_ZIG32_K[idx[1]],
                    (int32_t)FI_ZIG32_K[idx[2]], (int32_t)FI_ZIG32_K[idx[3]],
                    (int32_t)FI_ZIG32_K[idx[4]], (int32_t)FI_ZIG32_K[idx[5]],
                    (int32_t)FI_ZIG32_K[idx[6]], (int32_t)FI_ZIG32_K[idx[7]]};
#endif
}

/* The same for 4 float64 candidates: W_52 and K_52, one 16-byte load per candidate
 * with AVX2. */
FI_INLINE void fi_zig64_layers(fi_u64x4 idx, fi_f64x4 *w, fi_i64x4 *k)
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

/* The layers of one vector of candidates at the path's width: the 8-wide (float64:
 * 4-wide) look-ups above, on each half of a 64-byte vector. (AVX-512's 16-lane
 * gathers were slower on Zen 5: 1.09 against 0.91 ns per normal.) */
FI_INLINE void fi_zig32_layersv(fi_u32xv idx, fi_f32xv *w, fi_i32xv *k)
{
#if FI_VW == 8
    fi_f32x8 w0, w1;
    fi_i32x8 k0, k1;
    fi_zig32_layers(FI_LO8(idx), &w0, &k0);
    fi_zig32_layers(FI_HI8(idx), &w1, &k1);
    *w = __builtin_shufflevector(w0, w1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    *k = __builtin_shufflevector(k0, k1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    fi_zig32_layers(idx, w, k);
#endif
}

FI_INLINE void fi_zig64_layersv(fi_u64xv idx, fi_f64xv *w, fi_i64xv *k)
{
#if FI_VW == 8
    fi_f64x4 w0, w1;
    fi_i64x4 k0, k1;
    fi_zig64_layers(FI_LO4(idx), &w0, &k0);
    fi_zig64_layers(FI_HI4(idx), &w1, &k1);
    *w = __builtin_shufflevector(w0, w1, 0, 1, 2, 3, 4, 5, 6, 7);
    *k = __builtin_shufflevector(k0, k1, 0, 1, 2, 3, 4, 5, 6, 7);
#else
    fi_zig64_layers(idx, w, k);
#endif
}

/* The fast path of one float32 step at the path's width: each lane's next main
 * output gives two candidates (low half, then high half) for elements 2l and 2l+1 of
 * the step's 32. Accepted values go to z; a rejected candidate leaves its raw bits in
 * z and its bit (element e at bit e) in the returned mask. */
FI_INLINE uint32_t fi_normal_f32_fastv(fi_lanesv *ln, fi_f32xv *z)
{
    uint32_t rejected = 0;
    for (int v = 0; v < FI_NV; v++) {
        const fi_u32xv h = (fi_u32xv)fi_stepv(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
        const fi_u32xv idx = h & 255, m = h >> 9;
        fi_f32xv w;
        fi_i32xv k;
        fi_zig32_layersv(idx, &w, &k);
        const fi_f32xv x = __builtin_convertvector((fi_i32xv)m, fi_f32xv) * w;
        const fi_u32xv signed_x = (fi_u32xv)x ^ ((h & 256) << 23);
        const fi_u32xv reject = (fi_u32xv)((fi_i32xv)m >= k);
        z[v] = (fi_f32xv)((signed_x & ~reject) | (h & reject));
        rejected |= fi_mask_bits_u32xv(reject) << (2 * FI_VW * v);
    }
    return rejected;
}

FI_INLINE uint32_t fi_normal_f64_fastv(fi_lanesv *ln, fi_f64xv *z)
{
    uint32_t rejected = 0;
    for (int v = 0; v < FI_NV; v++) {
        const fi_u64xv x = fi_stepv(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
        const fi_u64xv idx = x & 255, m = x >> 12;
        fi_f64xv w;
        fi_i64xv k;
        fi_zig64_layersv(idx, &w, &k);
        const fi_f64xv md = (fi_f64xv)(m | 0x4330000000000000ULL) - 0x1p52;  /* exact */
        const fi_u64xv signed_d = (fi_u64xv)(md * w) ^ ((x & 256) << 55);
        const fi_u64xv reject = (fi_u64xv)((fi_i64xv)m >= k);
        z[v] = (fi_f64xv)((signed_d & ~reject) | (x & reject));
        rejected |= fi_mask_bits_u64xv(reject) << (FI_VW * v);
    }
    return rejected;
}

/* Completes the rejected candidates of one step in element order: element k holds
 * its candidate's raw bits (RAW) until SLOW, drawing from lane LANE_OF(k), replaces
 * them by the value. */
#define FI_DEFINE_NORMAL_FIX(NAME, VEC, SCALAR, RAW, SLOW, LANE_OF)                        \
FI_INLINE void NAME(fi_lanes *aux, uint32_t rejected, VEC *zv)                             \
{                                                                                          \
    SCALAR *z = (SCALAR *)zv;                                                              \
    while (rejected) {                                                                     \
        const int k = __builtin_ctz(rejected);                                             \
        RAW bits;                                                                          \
        rejected &= rejected - 1;                                                          \
        memcpy(&bits, &z[k], sizeof bits);                                                 \
        z[k] = SLOW(aux, LANE_OF(k), bits);                                                \
    }                                                                                      \
}

#define FI_LANE_OF_F32(k) ((k) >> 1)   /* two float32 candidates per lane and step */
#define FI_LANE_OF_F64(k) (k)
FI_DEFINE_NORMAL_FIX(fi_normal_f32_fixv, fi_f32xv, float, uint32_t, fi_zig32_slow,
                     FI_LANE_OF_F32)
FI_DEFINE_NORMAL_FIX(fi_normal_f64_fixv, fi_f64xv, double, uint64_t, fi_zig64_slow,
                     FI_LANE_OF_F64)

/* One step, fast path then fix-ups (the cursor's path). */
FI_INLINE void fi_normal_f32_step(fi_lanesv *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)pr;
    fi_f32xv z[FI_NV];
    fi_normal_f32_fixv(aux, fi_normal_f32_fastv(ln, z), z);
    memcpy(out, z, sizeof z);
}

FI_INLINE void fi_normal_f64_step(fi_lanesv *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)pr;
    fi_f64xv z[FI_NV];
    fi_normal_f64_fixv(aux, fi_normal_f64_fastv(ln, z), z);
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
 * registers, then the fix-ups in element order (each lane's auxiliary stream
 * is consumed in its candidates' order either way), then mean + std * z stored. */
#define FI_DEFINE_NORMAL_WHOLE(NAME, CTYPE, VEC, FAST, FIX, SPLAT, MEAN, STD, PER_STEP)    \
FI_INLINE void NAME(uint64_t sigma, uint64_t block, const fi_normal_params *pr, void *dst,       \
                    int stream, int fmt)                                                   \
{                                                                                          \
    enum { STEPS = FI_BLOCK / (PER_STEP), PER_VEC = 8 * FI_VW / sizeof(CTYPE) };           \
    VEC z[STEPS][FI_NV];                                                                   \
    uint32_t rejected[STEPS];                                                              \
    fi_lanesv ln;                                                                          \
    fi_lanes aux;                                                                          \
    fi_lanesv_seed(&ln, sigma, block, 0);                                                  \
    for (int t = 0; t < STEPS; t++) rejected[t] = FAST(&ln, z[t]);                         \
    fi_lanes_seed(&aux, sigma, block, 1);                                                  \
    for (int t = 0; t < STEPS; t++) FIX(&aux, rejected[t], z[t]);                          \
    const VEC mean = SPLAT(pr->MEAN), std = SPLAT(pr->STD);                                \
    for (int t = 0; t < STEPS; t++)                                                        \
        for (int v = 0; v < FI_NV; v++)                                                    \
            fi_store_vecv(dst, t * (PER_STEP) + PER_VEC * v, (fi_f32xv)(mean + std * z[t][v]), \
                          fmt, stream);                                                    \
}

FI_DEFINE_NORMAL_WHOLE(fi_normal_f32_whole, float, fi_f32xv, fi_normal_f32_fastv,
                       fi_normal_f32_fixv, fi_splatv_f32, mean_f, std_f, 2 * FI_LANES)
FI_DEFINE_NORMAL_WHOLE(fi_normal_f64_whole, double, fi_f64xv, fi_normal_f64_fastv,
                       fi_normal_f64_fixv, fi_splatv_f64, mean, std, FI_LANES)

FI_DEFINE_PIECE(fi_normal_f32_body, float, FI_OUT_F32, fi_normal_params, fi_normal_f32_advance,
                fi_normal_f32_map, fi_normal_f32_whole, 2 * FI_LANES)
FI_DEFINE_PIECE(fi_normal_f64_body, double, FI_OUT_F64, fi_normal_params, fi_normal_f64_advance,
                fi_normal_f64_map, fi_normal_f64_whole, FI_LANES)
FI_DEFINE_PIECE16(fi_normal_f16_body, fi_normal_params, fi_normal_f32_advance,
                  fi_normal_f32_map, fi_normal_f32_whole, 0, 2 * FI_LANES)
FI_DEFINE_PIECE16(fi_normal_bf16_body, fi_normal_params, fi_normal_f32_advance,
                  fi_normal_f32_map, fi_normal_f32_whole, 1, 2 * FI_LANES)

#endif /* FI_NORMAL_H */
