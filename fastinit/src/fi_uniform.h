/*
 * Uniform fills (docs/stream.md, sections 4, 5 and 7): float64 from the top 53 bits
 * of each raw output, float32 from the top 24 bits of each 32-bit half, float16 and
 * bfloat16 by rounding the float32 values; and the raw outputs themselves (uint64).
 */
#ifndef FI_UNIFORM_H
#define FI_UNIFORM_H

#include "fi_pieces.h"

/* min(low + range * u, cap), in float64 (low, range, cap) or float32 (the _f fields). */
typedef struct {
    uint64_t sigma;
    double low, range, cap;
    float low_f, range_f, cap_f;
} fi_uniform_params;
#define FI_UNIFORM_FORMAT "sigma:Q low:d range:d cap:d low_f:f range_f:f cap_f:f"

typedef struct {
    uint64_t sigma;
} fi_raw_params;
#define FI_RAW_FORMAT "sigma:Q"

/* Uniform float32: element j of a block is the 32-bit half j of the block's raw
 * outputs read as little-endian uint32 (even j: low half, odd j: high half);
 * u = (half >> 8) * 2^-24 and the value is min(low + range*u, cap). */
FI_INLINE void fi_uniform_f32_map(const uint64_t *raw, int64_t j0, int64_t n,
                                  const fi_uniform_params *pr, float *out)
{
    const fi_u32_alias *h = (const fi_u32_alias *)raw + j0;
    const float lo = pr->low_f, r = pr->range_f, cap = pr->cap_f;
    for (int64_t k = 0; k < n; k++) {
        const float u = (float)(int32_t)(h[k] >> 8) * 0x1p-24f;
        const float v = lo + r * u;
        out[k] = v < cap ? v : cap;
    }
}

/* Uniform float64: element j is raw output j; u = (x >> 11) * 2^-53. */
FI_INLINE void fi_uniform_f64_map(const uint64_t *raw, int64_t j0, int64_t n,
                                  const fi_uniform_params *pr, double *out)
{
    const uint64_t *x = raw + j0;
    const double lo = pr->low, r = pr->range, cap = pr->cap;
    for (int64_t k = 0; k < n; k++) {
        const double u = (double)(int64_t)(x[k] >> 11) * 0x1p-53;
        const double v = lo + r * u;
        out[k] = v < cap ? v : cap;
    }
}

/* Whether no value of a fill can pass its cap, so that `v < cap ? v : cap` is v
 * and the kernels may leave the comparison out: low and range finite, range >= 0,
 * and v at the largest u (TOP, computed by the kernel's own operations) below cap,
 * or equal to a nonzero cap. v = low + range * u is then nondecreasing in u, each
 * rounding being monotonic, so every v is at most TOP; a v equal to the cap is the
 * cap's own bits unless both are zeros of opposite signs (uniform_(0.0, -0.0)).
 * True for [0, 1) and the symmetric bounds of kaiming_uniform_ and xavier_uniform_
 * (float32 and float64); mostly false for float16 and bfloat16, whose caps sit a
 * 16-bit step below high. */
FI_INLINE int fi_uniform_never_capped(double low, double range, double top, double cap)
{
    return isfinite(low) && isfinite(range) && range >= 0.0
           && (top < cap || (top == cap && cap != 0.0));
}

/* Whether no float32 value of a fill, min(low + range*u, cap) as fi_uniform_f32_map
 * computes it, can be a subnormal (so that bfloat16 may be rounded by
 * fi_bf16x32_no_subnormal). Sufficient: low, range finite, range >= 0, cap not
 * subnormal, and one of
 *  - low >= 2^-126: every value is at least low (each rounding is monotonic);
 *  - low = 0 and range = 0 or range >= 2^-102: the value is p = range*u rounded,
 *    0 or at least range 2^-24 >= 2^-126;
 *  - low <= -2^-102 (exponent e >= -102): a subnormal low + p would be exact (a sum
 *    below 2^-126 is representable), so p within 2^-126 of |low|, p >= 2^(e-1) and
 *    both multiples of 2^(e-24) >= 2^-126: so is their sum, which is then 0.
 * True for [0, 1) and the bounds of kaiming_uniform_ and xavier_uniform_. */
FI_INLINE int fi_uniform_no_subnormal(float low, float range, float cap)
{
    const float min_normal = 0x1p-126f, edge = 0x1p-102f;
    return isfinite(low) && isfinite(range) && range >= 0.0f
           && (fabsf(cap) >= min_normal || cap == 0.0f)
           && (low >= min_normal || low <= -edge || (low == 0.0f && (range == 0.0f || range >= edge)));
}

/* A whole block of float32 uniforms into dst, straight from the lane registers:
 * the outputs of a vector step, read as uint32 halves, are consecutive elements
 * (section 5 of docs/stream.md). Same values as fi_uniform_f32_map: range * u is
 * the float32 product range * k 2^-24 (k = half >> 8), rounded once; when range
 * 2^-24 is exact (it is unless it falls below float32's normal range), (range 2^-24)
 * * k is that same rounding, one multiplication fewer (FUSED). CAPPED: whether the
 * cap is applied (fi_uniform_never_capped); leaving it out took a float32 block to
 * 0.92 of its time on Zen 4 with AVX-512, 0.95 with AVX2 (C harness). (k converted
 * as the half with its low 8 bits cleared, unsigned, exactly k 2^8, took a block
 * 1.02-1.03 of its time on Zen 4: an AND for the shift, the same count.) */
FI_INLINE void fi_uniform_f32_steps(fi_lanesv *ln, fi_f32xv lo, fi_f32xv r, fi_f32xv cap,
                                    fi_sink *out, int fmt, int fused, int capped, int sink_mode)
{
    for (int t = 0; t < FI_BLOCK / (2 * FI_LANES); t++) {
        fi_f32xv val[FI_NV];
        for (int v = 0; v < FI_NV; v++) {
            const fi_u32xv h = (fi_u32xv)fi_stepv(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
            const fi_f32xv k = __builtin_convertvector((fi_i32xv)(h >> 8), fi_f32xv);
            const fi_f32xv x = lo + r * (fused ? k : k * 0x1p-24f);
            val[v] = capped ? fi_min_f32xv(x, cap) : x;
        }
        fi_store_stepv(out, t * 2 * FI_LANES, val, fmt, sink_mode);
    }
}

/* STEPS(ln, lo, r, cap, out, fmt, fused, capped, mode) with FUSED and CAPPED as
 * constants too: each loop compiled for one combination. */
#define FI_UNIFORM_STEPS(STEPS, LN, LO, R, CAP, OUT, FMT, FUSED, CAPPED, M)                 \
    do {                                                                                   \
        if (FUSED) {                                                                       \
            if (CAPPED) STEPS(LN, LO, R, CAP, OUT, FMT, 1, 1, M);                          \
            else STEPS(LN, LO, R, CAP, OUT, FMT, 1, 0, M);                                 \
        } else {                                                                           \
            if (CAPPED) STEPS(LN, LO, R, CAP, OUT, FMT, 0, 1, M);                          \
            else STEPS(LN, LO, R, CAP, OUT, FMT, 0, 0, M);                                 \
        }                                                                                  \
    } while (0)

FI_INLINE void fi_uniform_f32_whole(uint64_t sigma, uint64_t block, const fi_uniform_params *pr,
                                    void *dst, int stream, int fmt)
{
    fi_lanesv ln;
    fi_lanesv_seed(&ln, sigma, block, 0);
    const fi_f32xv lo = fi_splatv_f32(pr->low_f), cap = fi_splatv_f32(pr->cap_f);
    const float scaled = pr->range_f * 0x1p-24f, k_top = 0x1p24f - 1.0f;
    const int fused = scaled * 0x1p24f == pr->range_f;
    const float top = pr->low_f + (fused ? scaled * k_top : pr->range_f * (k_top * 0x1p-24f));
    const fi_f32xv r = fi_splatv_f32(fused ? scaled : pr->range_f);
    fi_sink out = fi_sink_open(dst, stream);
    const int capped = !fi_uniform_never_capped(pr->low_f, pr->range_f, top, pr->cap_f);
#ifdef __AVX512BF16__
    if (fmt == FI_OUT_BF16 && fi_uniform_no_subnormal(pr->low_f, pr->range_f, pr->cap_f)) {
        FI_SINK_DISPATCH(&out, FI_UNIFORM_STEPS, fi_uniform_f32_steps, &ln, lo, r, cap, &out,
                         FI_OUT_BF16_NO_SUBNORMAL, fused, capped)
    } else
#endif
    FI_SINK_DISPATCH(&out, FI_UNIFORM_STEPS, fi_uniform_f32_steps, &ln, lo, r, cap, &out, fmt, fused, capped)
    fi_sink_close(&out, fi_block_bytes(fmt));
}

/* The integer k = x >> 11 of a float64 uniform as a double scaled by a power of
 * two: u = k_scaled * FI_U53_UNIT exactly. With AVX-512 (DQ), x with its low 11
 * bits cleared, converted as unsigned: exactly k 2^11 (53 significant bits), two
 * instructions; elsewhere, without a 64-bit conversion, u itself: the double 1 +
 * (x >> 12) 2^-52, minus 1, plus 2^-53 when bit 11 of x is set (eight). */
#if FI_VW == 8
#define FI_U53_UNIT 0x1p-64
FI_INLINE fi_f64xv fi_u53_scaled(fi_u64xv x)
{
    return (fi_f64xv)_mm512_cvtepu64_pd((__m512i)(x & ~(uint64_t)2047));
}
#else
#define FI_U53_UNIT 1.0
FI_INLINE fi_f64xv fi_u53_scaled(fi_u64xv x)
{
    const fi_u64xv one_bits = fi_splatv_u64(0x3FF0000000000000ULL);    /* 1.0 */
    const fi_u64xv half_ulp = fi_splatv_u64(0x3CA0000000000000ULL);    /* 2^-53 */
    const fi_f64xv high52 = (fi_f64xv)((x >> 12) | one_bits) - fi_splatv_f64(1.0);
    return high52 + (fi_f64xv)(half_ulp & -((x >> 11) & 1));
}
#endif

/* A whole block of float64 uniforms into dst, as float32's: range * u is the
 * product range * k_scaled * FI_U53_UNIT, rounded once, and (range FI_U53_UNIT) *
 * k_scaled where that is exact (FUSED; always on AVX2 and the baseline, whose unit
 * is 1). AVX-512, Zen 4, in cache: 0.79 of the block's time (C harness). */
FI_INLINE void fi_uniform_f64_steps(fi_lanesv *ln, fi_f64xv lo, fi_f64xv r, fi_f64xv cap,
                                    fi_sink *out, int fmt, int fused, int capped, int sink_mode)
{
    for (int t = 0; t < FI_BLOCK / FI_LANES; t++)
        for (int v = 0; v < FI_NV; v++) {
            const fi_f64xv k = fi_u53_scaled(fi_stepv(&ln->s0[v], &ln->s1[v], &ln->s2[v],
                                                      &ln->s3[v]));
            const fi_f64xv x = lo + r * (fused ? k : k * FI_U53_UNIT);
            const fi_f64xv val = capped ? fi_min_f64xv(x, cap) : x;
            fi_store_vecv(out, t * FI_LANES + FI_VW * v, (fi_f32xv)val, fmt, sink_mode);
        }
}

FI_INLINE void fi_uniform_f64_whole(uint64_t sigma, uint64_t block, const fi_uniform_params *pr,
                                    void *dst, int stream, int fmt)
{
    fi_lanesv ln;
    fi_lanesv_seed(&ln, sigma, block, 0);
    const fi_f64xv lo = fi_splatv_f64(pr->low), cap = fi_splatv_f64(pr->cap);
    const double scaled = pr->range * FI_U53_UNIT;
    const double k_top = (0x1p53 - 1.0) * (0x1p-53 / FI_U53_UNIT);      /* the largest k_scaled */
    const int fused = FI_U53_UNIT == 1.0 || scaled * (1.0 / FI_U53_UNIT) == pr->range;
    const double top = pr->low + (fused ? scaled * k_top : pr->range * (k_top * FI_U53_UNIT));
    const fi_f64xv r = fi_splatv_f64(fused ? scaled : pr->range);
    fi_sink out = fi_sink_open(dst, stream);
    const int capped = !fi_uniform_never_capped(pr->low, pr->range, top, pr->cap);
    FI_SINK_DISPATCH(&out, FI_UNIFORM_STEPS, fi_uniform_f64_steps, &ln, lo, r, cap, &out, fmt, fused, capped)
    fi_sink_close(&out, fi_block_bytes(fmt));
}

#undef FI_UNIFORM_STEPS

FI_DEFINE_PIECE(fi_uniform_f32_body, float, FI_OUT_F32, fi_uniform_params, fi_uniform_advance,
                fi_uniform_f32_map, fi_uniform_f32_whole, 2 * FI_LANES)
FI_DEFINE_PIECE(fi_uniform_f64_body, double, FI_OUT_F64, fi_uniform_params, fi_uniform_advance,
                fi_uniform_f64_map, fi_uniform_f64_whole, FI_LANES)
FI_DEFINE_PIECE16(fi_uniform_f16_body, fi_uniform_params, fi_uniform_advance,
                  fi_uniform_f32_map, fi_uniform_f32_whole, 0, 2 * FI_LANES)
FI_DEFINE_PIECE16(fi_uniform_bf16_body, fi_uniform_params, fi_uniform_advance,
                  fi_uniform_f32_map, fi_uniform_f32_whole, 1, 2 * FI_LANES)

/* Raw outputs: element j of a block is raw[j] itself (uint64, the float64 layout). */
FI_INLINE void fi_raw_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_raw_params *pr,
                          uint64_t *out)
{
    (void)pr;
    memcpy(out, raw + j0, (size_t)n * sizeof *out);
}

FI_INLINE void fi_raw_body(fi_cursor *c, const fi_plan *pl, const fi_raw_params *pr, int64_t p)
{
    uint64_t vals[FI_BLOCK] FI_ALIGN64;
    fi_segment s;
    for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) {
        fi_uniform_advance(c, pr, pr->sigma, s.block, (s.j0 + s.m + FI_LANES - 1) / FI_LANES);
        fi_raw_map(c->raw, s.j0, s.m, pr, vals);
        fi_emit(pl, s.flat, vals, s.m);
    }
}

#endif /* FI_UNIFORM_H */
