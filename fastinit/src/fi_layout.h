/*
 * Memory layout: how a fill's plan is cut into pieces and each piece into
 * per-block segments, how local elements are walked in C order, and the stores
 * (plain, or non-temporal for large fills) that write values into the target.
 */
#ifndef FI_LAYOUT_H
#define FI_LAYOUT_H

#include "fi_common.h"
#include "fi_plan.h"
#include "fi_stream.h"

/* Where piece p starts: its local flat index and its global index. */
FI_INLINE void fi_piece_start(const fi_plan *pl, int64_t p, int64_t *flat, uint64_t *g, int64_t *n)
{
    const int64_t run = p / pl->pieces_per_run;
    const int64_t q = p % pl->pieces_per_run;
    uint64_t gr = pl->gbase;
    int64_t rem = run;
    for (int k = pl->run_dims - 1; k >= 0; k--) {
        const int64_t i = rem % pl->shape[k];
        rem /= pl->shape[k];
        gr += (uint64_t)i * pl->run_gstride[k];
    }
    const int64_t start = q * pl->piece_len;
    const int64_t left = pl->run_len - start;
    *n = left < pl->piece_len ? left : pl->piece_len;
    *flat = run * pl->run_len + start;
    *g = gr + (uint64_t)start;
}

/* The segments of piece p that lie in one block each: block `block`, its elements
 * [j0, j0 + m), which are local elements [flat, flat + m). Iterate with
 *     for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) ... */
typedef struct {
    int64_t flat, n, j0, m;
    uint64_t g, block;
} fi_segment;

FI_INLINE int fi_segment_set(fi_segment *s)
{
    if (s->n <= 0) return 0;
    s->block = s->g / FI_BLOCK;
    s->j0 = (int64_t)(s->g % FI_BLOCK);
    s->m = s->n < FI_BLOCK - s->j0 ? s->n : FI_BLOCK - s->j0;
    return 1;
}

FI_INLINE int fi_segment_first(fi_segment *s, const fi_plan *pl, int64_t p)
{
    fi_piece_start(pl, p, &s->flat, &s->g, &s->n);
    return fi_segment_set(s);
}

FI_INLINE int fi_segment_next(fi_segment *s)
{
    s->flat += s->m;
    s->g += (uint64_t)s->m;
    s->n -= s->m;
    return fi_segment_set(s);
}

/* Walks local elements in C order from a flat index: pointer and multi-index. */
typedef struct {
    char *ptr;
    int64_t idx[FI_MAXDIM];
} fi_walker;

FI_INLINE void fi_walker_init(fi_walker *w, const fi_plan *pl, int64_t flat)
{
    w->ptr = pl->data;
    for (int k = pl->ndim - 1; k >= 0; k--) {
        const int64_t i = flat % pl->shape[k];
        flat /= pl->shape[k];
        w->idx[k] = i;
        w->ptr += i * pl->strides[k];
    }
}

FI_INLINE void fi_walker_next(fi_walker *w, const fi_plan *pl)
{
    for (int k = pl->ndim - 1; k >= 0; k--) {
        w->ptr += pl->strides[k];
        if (++w->idx[k] < pl->shape[k]) return;
        w->ptr -= pl->shape[k] * pl->strides[k];
        w->idx[k] = 0;
    }
}

/* Copies nbytes to dst with non-temporal stores on its 16-byte aligned body. */
FI_INLINE void fi_stream_copy(char *dst, const char *src, size_t nbytes)
{
#ifdef FI_X86
    size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
    if (head > nbytes) head = nbytes;
    memcpy(dst, src, head);
    size_t i = head;
    for (; i + 16 <= nbytes; i += 16)
        _mm_stream_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
    memcpy(dst + i, src + i, nbytes - i);
#else
    memcpy(dst, src, nbytes);
#endif
}

/* Orders this thread's non-temporal stores before anything that follows. */
void fi_store_fence(void);

/* Writes n values of vals (itemsize bytes each) for local flat indices [flat, flat+n). */
FI_INLINE void fi_emit(const fi_plan *pl, int64_t flat, const void *vals, int64_t n)
{
    const size_t isz = (size_t)pl->itemsize;
    if (pl->contiguous) {
        char *dst = pl->data + flat * (int64_t)isz;
        if (pl->stream) fi_stream_copy(dst, (const char *)vals, (size_t)n * isz);
        else memcpy(dst, vals, (size_t)n * isz);
        return;
    }
    fi_walker w;
    fi_walker_init(&w, pl, flat);
    const char *src = (const char *)vals;
    for (int64_t i = 0; i < n; i++) {
        memcpy(w.ptr, src + i * (int64_t)isz, isz);
        fi_walker_next(&w, pl);
    }
}

/* Stores 8 floats or 4 doubles (32 bytes) at p: non-temporal when stream is set
 * (p is then 16-byte aligned), plain otherwise. */
FI_INLINE void fi_store32(void *p, fi_f32x8 v, int stream)
{
#ifdef FI_X86
    if (stream) {
        const fi_f32x4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3);
        const fi_f32x4 b = __builtin_shufflevector(v, v, 4, 5, 6, 7);
        _mm_stream_ps((float *)p, (__m128)a);
        _mm_stream_ps((float *)p + 4, (__m128)b);
        return;
    }
#endif
    (void)stream;
    memcpy(p, &v, sizeof v);
}

/* Stores a 64-byte vector at p: with stream set, non-temporal (p is then 16-byte
 * aligned; on AVX-512 a 64-byte aligned p takes one whole-line store). On AVX-512 a
 * plain store is one unaligned 64-byte store by intrinsic: GCC's generic tuning
 * splits a 64-byte memcpy of unknown alignment into two 32-byte stores and a
 * shuffle, which cost an in-cache uniform block a tenth of its time on Zen 4. */
FI_INLINE void fi_store64(void *p, fi_f32x16 v, int stream)
{
#ifdef __AVX512F__
    if (stream && !((uintptr_t)p & 63)) {
        _mm512_stream_ps((float *)p, (__m512)v);
        return;
    }
    if (!stream) {
        _mm512_storeu_ps((float *)p, (__m512)v);
        return;
    }
#endif
    fi_store32(p, FI_LO8(v), stream);
    fi_store32((char *)p + 32, FI_HI8(v), stream);
}

#endif /* FI_LAYOUT_H */
