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

/* A random fill of one piece; PER_STEP elements per lane step (32 for float32,
 * 16 for float64). A whole block bound for aligned contiguous memory is written
 * straight from registers (WHOLE); a partial block goes through the cursor
 * (ADVANCE), then MAP turns the cursor's contents into values. */
#define FI_DEFINE_PIECE(NAME, CTYPE, PARAMS, ADVANCE, MAP, WHOLE, PER_STEP)                \
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
            WHOLE(pr->sigma, block, pr, dst, pl->stream);                                  \
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

/* A 16-bit fill of one piece (BF16: bfloat16, else float16): the block's float32
 * values (WHOLE, or the cursor) are computed into a cache-resident buffer, then
 * converted, straight into contiguous memory or through fi_emit. (Converting in
 * the generation loop is slower with AVX2's 16 registers, all taken by the lanes.) */
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
        if (m == FI_BLOCK) {                                                               \
            WHOLE(pr->sigma, block, pr, vals, 0);                                          \
        } else {                                                                           \
            ADVANCE(c, pr, pr->sigma, block, (j0 + m + (PER_STEP) - 1) / (PER_STEP));      \
            MAP(c->raw, j0, m, pr, vals);                                                  \
        }                                                                                  \
        if (m == FI_BLOCK && pl->contiguous) {                                             \
            fi_store_half(dst, vals, m, BF16, pl->stream && !((uintptr_t)dst & 15));       \
        } else {                                                                           \
            fi_store_half(half, vals, (m + 7) & ~(int64_t)7, BF16, 0);                     \
            fi_emit(pl, flat, half, m);                                                    \
        }                                                                                  \
    }                                                                                      \
}

#endif /* FI_PIECES_H */
