/* Constant fills (constant_, ones_, zeros_, normal_ with std 0): one bit pattern. */
#ifndef FI_CONSTANT_H
#define FI_CONSTANT_H

#include "fi_layout.h"

/* The value's bit pattern, in the target's item size (the low bytes). */
typedef struct {
    uint64_t bits;
} fi_constant_params;
#define FI_CONSTANT_FORMAT "bits:Q"

/* Constant fill of one piece, for any item size: the value's bit pattern is
 * written into a small buffer once and emitted repeatedly, through the same store
 * paths as the random fills. */
FI_INLINE void fi_constant_body(fi_cursor *c, const fi_plan *pl, const fi_constant_params *pr,
                                int64_t p)
{
    (void)c;
    uint64_t vals[FI_BLOCK] FI_ALIGN64;               /* FI_BLOCK items of up to 8 bytes */
    const size_t isz = (size_t)pl->itemsize;
    int64_t flat, n;
    uint64_t g;
    fi_piece_start(pl, p, &flat, &g, &n);
    const int64_t fill = n < FI_BLOCK ? n : FI_BLOCK;
    if (isz == 2) {
        const uint16_t v = (uint16_t)pr->bits;
        for (int64_t k = 0; k < fill; k++) ((fi_u16_alias *)vals)[k] = v;
    } else if (isz == 4) {
        const uint32_t v = (uint32_t)pr->bits;
        for (int64_t k = 0; k < fill; k++) ((fi_u32_alias *)vals)[k] = v;
    } else {
        for (int64_t k = 0; k < fill; k++) vals[k] = pr->bits;
    }
    while (n > 0) {
        const int64_t m = n < FI_BLOCK ? n : FI_BLOCK;
        fi_emit(pl, flat, vals, m);
        flat += m; n -= m;
    }
}

#endif /* FI_CONSTANT_H */
