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

/*
 * Where a whole-block kernel writes: dst, from the block's first element on, one
 * vector after another in address order, non-temporal when stream is set (dst is
 * then 16-byte aligned). Opened per block, closed after its last vector.
 *
 * On AVX-512 every vector is 64 bytes, and a streamed dst off a 64-byte line (as
 * numpy's large arrays are: 16 bytes past one) is still written in whole lines:
 * each line joined from the previous vector's tail and this one's head by one
 * permute, the partial lines at the block's two ends 16 bytes at a time. Against
 * four 16-byte stores per vector, on one thread of Zen 4: uniform_ on 1e8 float32
 * elements 16 bytes past a line from 0.76 to 0.84 of the write limit (0.93 on a
 * line); in a C harness, 0.92 of the time for uniform float32 blocks, 0.85 for
 * float64, 0.95 for normal float32, bfloat16 unchanged.
 */
typedef struct {
    char *dst;
    int stream;
#if FI_VW == 8
    int lag;                     /* streamed: bytes dst lies past a 64-byte line */
    __m512i join;                /* the permute's indices: a line from two vectors */
    __m512i prev;                /* the vector stored last */
#endif
} fi_sink;

FI_INLINE fi_sink fi_sink_open(void *dst, int stream)
{
    fi_sink s;
    s.dst = (char *)dst;
    s.stream = stream;
#if FI_VW == 8
    s.lag = stream ? (int)((uintptr_t)dst & 63) : 0;
    const int first = (64 - s.lag) / 4;      /* a line's first 32-bit word in prev */
    s.join = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
                                               1, 0), _mm512_set1_epi32(first));
    s.prev = _mm512_setzero_si512();
#endif
    return s;
}

/* How the sink stores: plain, non-temporal, or non-temporal joining vectors into
 * lines (AVX-512, dst off a line). */
enum { FI_SINK_PLAIN, FI_SINK_STREAM, FI_SINK_JOIN };
FI_INLINE int fi_sink_mode(const fi_sink *s)
{
#if FI_VW == 8
    if (s->stream && s->lag) return FI_SINK_JOIN;
#endif
    return s->stream ? FI_SINK_STREAM : FI_SINK_PLAIN;
}

/* FN(..., mode) for the sink's mode: each call compiled with the mode as a
 * constant, so that every loop stores one way (fi_sink_put64). */
#define FI_SINK_DISPATCH(SINK, FN, ...)                                                    \
    switch (fi_sink_mode(SINK)) {                                                          \
    case FI_SINK_PLAIN: FN(__VA_ARGS__, FI_SINK_PLAIN); break;                             \
    case FI_SINK_STREAM: FN(__VA_ARGS__, FI_SINK_STREAM); break;                           \
    default: FN(__VA_ARGS__, FI_SINK_JOIN);                                                \
    }

#if FI_VW == 8
/* Bytes [from, to) of v (multiples of 16) stored non-temporally at p: the partial
 * lines at a joined block's ends. Out of line: inlined into the loops, its spill of
 * v made GCC spill the kernels' lane states too. */
static FI_COLD void fi_stream_part(char *p, __m512i v, int from, int to)
{
    char *at = p - from;                       /* where byte 0 of v would go */
    if (from <= 0 && 0 < to) _mm_stream_si128((__m128i *)at, _mm512_castsi512_si128(v));
    if (from <= 16 && 16 < to) _mm_stream_si128((__m128i *)(at + 16), _mm512_extracti32x4_epi32(v, 1));
    if (from <= 32 && 32 < to) _mm_stream_si128((__m128i *)(at + 32), _mm512_extracti32x4_epi32(v, 2));
    if (from <= 48 && 48 < to) _mm_stream_si128((__m128i *)(at + 48), _mm512_extracti32x4_epi32(v, 3));
}

/* The 64-byte vector v as bytes off.. of the sink's block (off: 0, 64, 128, ... in
 * turn). MODE: fi_sink_mode(s), a constant at each call, so that every loop is
 * compiled for one way of storing (with the mode tested per vector, GCC unswitched
 * some loops and not others, whose lane states it then spilled). */
FI_INLINE void fi_sink_put64(fi_sink *s, int64_t off, __m512i v, int mode)
{
    char *p = s->dst + off;
    if (mode == FI_SINK_PLAIN) {
        _mm512_storeu_si512((void *)p, v);
    } else if (mode == FI_SINK_STREAM) {
        _mm512_stream_si512((__m512i *)p, v);
    } else {
        if (__builtin_expect(off != 0, 1))  /* the line: the last vector's tail, v's head */
            _mm512_stream_si512((__m512i *)(p - s->lag),
                                _mm512_permutex2var_epi32(s->prev, s->join, v));
        else
            fi_stream_part(p, v, 0, 64 - s->lag);
        s->prev = v;
    }
}
#endif

#if FI_VW == 8
/* Two 32-byte vectors, lo then hi, as bytes off.. of the sink's block, as
 * fi_sink_put64 stores their concatenation: plain or streamed as two 32-byte stores
 * (the join of the two halves left out: a float16 uniform block, whose conversions
 * give 32-byte halves, 0.94-0.95 of its time on Zen 4, C harness), joined into
 * lines only in the mode that joins (dst off a 64-byte line). */
FI_INLINE void fi_sink_put32x2(fi_sink *s, int64_t off, __m256i lo, __m256i hi, int mode)
{
    char *p = s->dst + off;
    if (mode == FI_SINK_PLAIN) {
        _mm256_storeu_si256((__m256i *)p, lo);
        _mm256_storeu_si256((__m256i *)(p + 32), hi);
    } else if (mode == FI_SINK_STREAM) {
        _mm256_stream_si256((__m256i *)p, lo);
        _mm256_stream_si256((__m256i *)(p + 32), hi);
    } else {
        fi_sink_put64(s, off, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), mode);
    }
}
#endif

/* After the block's last vector, which ended at byte nbytes: its tail, if left. */
FI_INLINE void fi_sink_close(fi_sink *s, int64_t nbytes)
{
#if FI_VW == 8
    if (fi_sink_mode(s) == FI_SINK_JOIN)
        fi_stream_part(s->dst + nbytes - s->lag, s->prev, 64 - s->lag, 64);
#else
    (void)s; (void)nbytes;
#endif
}

#endif /* FI_LAYOUT_H */
