/*
 * The piece kernels' two shapes, shared by the distributions whose values come
 * block by block from the stream (uniform, normal): a whole block written straight
 * from registers, or a partial block through the thread's cursor; and the 16-bit
 * variant, which rounds float32 values to float16 or bfloat16.
 */
#ifndef FI_PIECES_H
#define FI_PIECES_H

#include "fi_half.h"
#include "fi_layout.h"
#include "fi_stream.h"

/* What a whole-block kernel stores: float64 (4 values per 32-byte vector), or float32
 * values as float32, float16 or bfloat16 (8 per vector). A fill's values are never
 * NaN, so the 16-bit stores here round them with NAN_FREE set (fi_half.h).
 * FI_OUT_BF16_NO_SUBNORMAL is bfloat16 from values known not to be float32
 * subnormals: the same bits, rounded by AVX512-BF16's conversion where the path has
 * it (fi_bf16x32_no_subnormal). */
enum { FI_OUT_F64, FI_OUT_F32, FI_OUT_F16, FI_OUT_BF16, FI_OUT_BF16_NO_SUBNORMAL };

/* Whether format fmt is bfloat16. */
FI_INLINE int fi_out_bf16(int fmt) { return fmt == FI_OUT_BF16 || fmt == FI_OUT_BF16_NO_SUBNORMAL; }

/* The bytes of one element stored in format fmt. */
FI_INLINE int64_t fi_out_bytes(int fmt)
{
    return fmt == FI_OUT_F64 ? 8 : fmt == FI_OUT_F32 ? 4 : 2;
}

/* Stores one vector of values as elements k.. of dst in format fmt (a constant at
 * every call, so each kernel is compiled for its format): non-temporal when stream
 * is set (dst + k is then 16-byte aligned). */
FI_INLINE void fi_store_vec(void *dst, int64_t k, fi_f32x8 v, int fmt, int stream)
{
    if (fmt == FI_OUT_F64) fi_store32((double *)dst + k, v, stream);
    else if (fmt == FI_OUT_F32) fi_store32((float *)dst + k, v, stream);
    else fi_put_half8((uint16_t *)dst + k, v, stream, fi_out_bf16(fmt), 1);
}

/* Stores one vector of the path's width (2 FI_VW float32 values, or FI_VW float64
 * ones as bits) as elements k.. of the sink's block in format fmt, as fi_store_vec
 * does; the 16-bit formats are stored a step at a time (fi_store_stepv). SINK_MODE:
 * fi_sink_mode(out), a constant at each call (fi_sink_put64). */
FI_INLINE void fi_store_vecv(fi_sink *out, int64_t k, fi_f32xv v, int fmt, int sink_mode)
{
#if FI_VW == 8
    fi_sink_put64(out, k * fi_out_bytes(fmt), (__m512i)v, sink_mode);
#else
    fi_store_vec(out->dst, k, v, fmt, sink_mode == FI_SINK_STREAM);
#endif
}

/* Stores one step's float32 values (FI_NV vectors, 32 values) as elements k.. of the
 * sink's block in format fmt: on AVX-512 float16 as its two 32-byte conversions,
 * bfloat16 as one 64-byte vector. */
FI_INLINE void fi_store_stepv(fi_sink *out, int64_t k, const fi_f32xv *v, int fmt, int sink_mode)
{
#if FI_VW == 8
    _Static_assert(FI_NV == 2, "a step is two 16-value vectors");
    if (fmt == FI_OUT_F16) {
        fi_sink_put32x2(out, k * fi_out_bytes(fmt), fi_f16x16(v[0]), fi_f16x16(v[1]), sink_mode);
        return;
    }
    if (fi_out_bf16(fmt)) {
        const fi_u16x32 h = fmt == FI_OUT_BF16_NO_SUBNORMAL ? fi_bf16x32_no_subnormal(v[0], v[1])
                                                            : fi_half32(v[0], v[1], 1, 1);
        fi_sink_put64(out, k * fi_out_bytes(fmt), (__m512i)h, sink_mode);
        return;
    }
#endif
    for (int i = 0; i < FI_NV; i++) fi_store_vecv(out, k + 2 * FI_VW * i, v[i], fmt, sink_mode);
}

/* The bytes a whole block takes in format fmt. */
FI_INLINE int64_t fi_block_bytes(int fmt) { return FI_BLOCK * fi_out_bytes(fmt); }

/* A random fill of one piece; PER_STEP elements per lane step (32 for float32,
 * 16 for float64). A whole block bound for aligned contiguous memory is written
 * straight from registers (WHOLE); a partial block goes through the cursor
 * (ADVANCE), then MAP turns the cursor's contents into values. */
#define FI_DEFINE_PIECE(NAME, CTYPE, FMT, PARAMS, ADVANCE, MAP, WHOLE, PER_STEP)           \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const PARAMS *pr, int64_t p)         \
{                                                                                          \
    CTYPE vals[FI_BLOCK] FI_ALIGN64;                                                       \
    const int direct = pl->contiguous && pl->aligned;                                      \
    fi_segment s;                                                                          \
    for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) {             \
        const uint64_t block = s.block;                                                    \
        const int64_t j0 = s.j0, m = s.m, flat = s.flat;                                   \
        CTYPE *dst = (CTYPE *)pl->data + flat;                                             \
        if (direct && m == FI_BLOCK && !(pl->stream && ((uintptr_t)dst & 15))) {           \
            WHOLE(pr->sigma, block, pr, dst, pl->stream, FMT);                             \
        } else {                                                                           \
            ADVANCE(c, pr, pr->sigma, block, (j0 + m + (PER_STEP) - 1) / (PER_STEP));      \
            if (direct && !pl->stream) {                                                   \
                MAP(c->raw, j0, m, pr, dst);                                               \
            } else {                                                                       \
                MAP(c->raw, j0, m, pr, vals);                                              \
                fi_emit(pl, flat, vals, m);                                                \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}

/* A 16-bit fill of one piece (BF16: bfloat16, else float16): a whole block bound for
 * contiguous memory is rounded and stored straight from the kernel's registers
 * (WHOLE in the 16-bit format); other pieces get their float32 values (WHOLE into a
 * buffer, or the cursor and MAP), rounded into a buffer, then fi_emit. */
#define FI_DEFINE_PIECE16(NAME, PARAMS, ADVANCE, MAP, WHOLE, BF16, PER_STEP)               \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const PARAMS *pr, int64_t p)         \
{                                                                                          \
    float vals[FI_BLOCK] FI_ALIGN64;                                                       \
    uint16_t half[FI_BLOCK] FI_ALIGN64;                                                    \
    fi_segment s;                                                                          \
    for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) {             \
        const uint64_t block = s.block;                                                    \
        const int64_t j0 = s.j0, m = s.m, flat = s.flat;                                   \
        uint16_t *dst = (uint16_t *)pl->data + flat;                                       \
        if (m == FI_BLOCK && pl->contiguous) {                                             \
            WHOLE(pr->sigma, block, pr, dst, pl->stream && !((uintptr_t)dst & 15),         \
                  (BF16) ? FI_OUT_BF16 : FI_OUT_F16);                                      \
            continue;                                                                      \
        }                                                                                  \
        if (m == FI_BLOCK) {                                                               \
            WHOLE(pr->sigma, block, pr, vals, 0, FI_OUT_F32);                              \
        } else {                                                                           \
            ADVANCE(c, pr, pr->sigma, block, (j0 + m + (PER_STEP) - 1) / (PER_STEP));      \
            MAP(c->raw, j0, m, pr, vals);                                                  \
        }                                                                                  \
        fi_store_half(half, vals, (m + 7) & ~(int64_t)7, BF16, 0, 1);                      \
        fi_emit(pl, flat, half, m);                                                        \
    }                                                                                      \
}

#endif /* FI_PIECES_H */
