/*
 * fastinit C kernels: the xoshiro256** engine, the block stream of docs/stream.md,
 * and the per-piece fill kernels that the OpenMP driver in _fill.pyx calls.
 *
 * Every kernel is written once as portable C and compiled several times, once per
 * instruction set (baseline x86-64, AVX2, AVX-512), by inlining one body into
 * wrappers with a `target` attribute. The compiler vectorizes the 16-lane loops for
 * each target. Built with -ffp-contract=off, the float operations are the same IEEE
 * operations on every path, so every path writes the same bits.
 */
#ifndef FASTINIT_KERNELS_H
#define FASTINIT_KERNELS_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "_ziggurat.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#include <emmintrin.h>
#define FI_X86 1
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "fastinit's stream layout reads 32-bit halves in little-endian order"
#endif

#if !defined(__GNUC__)
#error "fastinit's kernels use GCC/Clang vector extensions"
#endif
#define FI_INLINE static inline __attribute__((always_inline))
#define FI_ALIGN64 __attribute__((aligned(64)))
typedef uint32_t fi_u32_alias __attribute__((__may_alias__));
typedef uint16_t fi_u16_alias __attribute__((__may_alias__));

/* 32-byte vectors: one source, lowered to SSE2 pairs, AVX2 or AVX-512VL per target. */
typedef uint64_t fi_u64x4 __attribute__((vector_size(32)));
typedef int64_t fi_i64x4 __attribute__((vector_size(32)));
typedef uint32_t fi_u32x8 __attribute__((vector_size(32)));
typedef int32_t fi_i32x8 __attribute__((vector_size(32)));
typedef float fi_f32x8 __attribute__((vector_size(32)));
typedef double fi_f64x4 __attribute__((vector_size(32)));
typedef float fi_f32x4 __attribute__((vector_size(16)));
typedef uint16_t fi_u16x8 __attribute__((vector_size(16)));
#define FI_VECS (FI_LANES / 4)   /* 4-lane vectors per block */

/* Broadcasts. (Not x + (vector){0}: that would turn -0.0 into +0.0.) */
FI_INLINE fi_f32x8 fi_splat_f32(float x) { return (fi_f32x8){x, x, x, x, x, x, x, x}; }
FI_INLINE fi_f64x4 fi_splat_f64(double x) { return (fi_f64x4){x, x, x, x}; }
FI_INLINE fi_u64x4 fi_splat_u64(uint64_t x) { return (fi_u64x4){x, x, x, x}; }

/* ------------------------------------------------------------------------- */
/* Engine                                                                     */
/* ------------------------------------------------------------------------- */

#define FI_GAMMA 0x9e3779b97f4a7c15ULL   /* splitmix64 increment */

static inline uint64_t fi_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* The splitmix64 output function (Stafford's Mix13 variant, as in splitmix64.c). */
static inline uint64_t fi_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One xoshiro256** step: returns the output and advances s[0..3]. */
static inline uint64_t fi_xoshiro_next(uint64_t *s)
{
    const uint64_t result = fi_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = fi_rotl(s[3], 45);
    return result;
}

static void fi_xoshiro_fill_raw(uint64_t *s, uint64_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = fi_xoshiro_next(s);
}

/* Jump polynomials published with xoshiro256**: 2^128 and 2^192 steps. */
static const uint64_t FI_JUMP[4] = {
    0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL, 0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
static const uint64_t FI_LONG_JUMP[4] = {
    0x76e15d3efefdcbbfULL, 0xc5004e441c522fb3ULL, 0x77710069854ee241ULL, 0x39109bb02acbe635ULL};

static void fi_xoshiro_jump(uint64_t *s, const uint64_t *poly)
{
    uint64_t acc[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        for (int b = 0; b < 64; b++) {
            if (poly[i] & (1ULL << b)) {
                acc[0] ^= s[0]; acc[1] ^= s[1]; acc[2] ^= s[2]; acc[3] ^= s[3];
            }
            fi_xoshiro_next(s);
        }
    }
    memcpy(s, acc, sizeof acc);
}

/* ------------------------------------------------------------------------- */
/* Stream layout (docs/stream.md)                                             */
/* ------------------------------------------------------------------------- */

#define FI_LANES 16       /* interleaved xoshiro256** states per block */
#define FI_BLOCK 2048     /* elements per block */

/* sigma: the 64-bit seed of one fill call, from the generator key and call counter. */
static inline uint64_t fi_call_seed(uint64_t k0, uint64_t k1, uint64_t counter)
{
    return fi_mix64(k0 ^ fi_mix64(k1 + (counter + 1) * FI_GAMMA));
}

/* The lane states of one block, as FI_VECS vectors of 4 lanes per state word. */
typedef struct {
    fi_u64x4 s0[FI_VECS], s1[FI_VECS], s2[FI_VECS], s3[FI_VECS];
} fi_lanes;

/* Seeds the 16 lanes of a block: the main lanes (aux = 0) from splitmix64 outputs
 * 64 b .. 64 b + 63 of the call seed, the auxiliary lanes of the normal sampler's
 * slow path (aux = 1) from outputs 2^62 + 64 b onwards. */
FI_INLINE void fi_lanes_seed(fi_lanes *ln, uint64_t sigma, uint64_t block, int aux)
{
    uint64_t w[4][FI_LANES] FI_ALIGN64;
    const uint64_t first = (aux ? 1ULL << 62 : 0) + block * (uint64_t)(4 * FI_LANES);
    for (int l = 0; l < FI_LANES; l++)
        for (int k = 0; k < 4; k++)
            w[k][l] = fi_mix64(sigma + (first + 4 * (uint64_t)l + (uint64_t)k + 1) * FI_GAMMA);
    memcpy(ln->s0, w[0], sizeof ln->s0); memcpy(ln->s1, w[1], sizeof ln->s1);
    memcpy(ln->s2, w[2], sizeof ln->s2); memcpy(ln->s3, w[3], sizeof ln->s3);
}

FI_INLINE fi_u64x4 fi_rotl4(fi_u64x4 x, int k) { return (x << k) | (x >> (64 - k)); }

/* One xoshiro256** step of 4 lanes; the multiplications by 5 and 9 are written
 * as shifts and adds, which AVX2 has and 64-bit vector multiplies are not. */
FI_INLINE fi_u64x4 fi_step4(fi_u64x4 *s0, fi_u64x4 *s1, fi_u64x4 *s2, fi_u64x4 *s3)
{
    fi_u64x4 x = *s1 + (*s1 << 2);
    x = fi_rotl4(x, 7);
    x = x + (x << 3);
    const fi_u64x4 t = *s1 << 17;
    *s2 ^= *s0;
    *s3 ^= *s1;
    *s1 ^= *s2;
    *s0 ^= *s3;
    *s2 ^= t;
    *s3 = fi_rotl4(*s3, 45);
    return x;
}

/*
 * A cursor is one thread's view of one block of one fill: its lane states, how
 * many steps have been taken, and the raw outputs so far (output m of the block
 * at raw[m]). Consecutive requests inside the same block of the same fill continue
 * from where it stopped, so a block is generated at most once per thread however
 * it is cut into pieces.
 *
 * What a cursor holds depends on everything about its fill (kernel, parameters,
 * call seed), not only on the call seed: two fills of one pass may share a call
 * seed (two generators in the same state) yet step their lanes differently. So a
 * cursor belongs to one fill at a time, the `job` the executor binds it to, and
 * binding it to another job discards what it holds.
 */
typedef struct {
    uint64_t raw[FI_BLOCK] FI_ALIGN64;
    fi_lanes lanes, aux;
    uint64_t sigma;
    uint64_t block;
    int64_t steps;
    int64_t job;
    int valid;
} fi_cursor;

static fi_cursor *fi_cursor_new(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, sizeof(fi_cursor)) != 0) return NULL;
    ((fi_cursor *)p)->valid = 0;
    ((fi_cursor *)p)->job = -1;
    return (fi_cursor *)p;
}

/* Gives the cursor to fill number `job` of the executor's pass. */
static inline void fi_cursor_bind(fi_cursor *c, int64_t job)
{
    if (c->job != job) {
        c->job = job;
        c->valid = 0;
    }
}

static void fi_cursor_free(fi_cursor *c) { free(c); }

/* One step of all 16 lanes for the uniform fills: 16 raw outputs. */
FI_INLINE void fi_uniform_step(fi_lanes *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)aux; (void)pr;
    for (int v = 0; v < FI_VECS; v++) {
        const fi_u64x4 x = fi_step4(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
        memcpy((char *)out + sizeof x * v, &x, sizeof x);
    }
}

/* Make the first `steps` steps of (sigma, block) available in c->raw, each step's
 * STEP_BYTES written by STEP after the previous one's. USES_AUX: whether STEP
 * draws from the auxiliary lanes. `pr` is the fill's fi_params, passed through. */
#define FI_DEFINE_ADVANCE(NAME, STEP, STEP_BYTES, USES_AUX)                                \
FI_INLINE void NAME(fi_cursor *c, const void *pr, uint64_t sigma, uint64_t block,         \
                    int64_t steps)                                                         \
{                                                                                          \
    if (!c->valid || c->sigma != sigma || c->block != block || c->steps > steps) {         \
        fi_lanes_seed(&c->lanes, sigma, block, 0);                                         \
        if (USES_AUX) fi_lanes_seed(&c->aux, sigma, block, 1);                             \
        c->sigma = sigma;                                                                  \
        c->block = block;                                                                  \
        c->steps = 0;                                                                      \
        c->valid = 1;                                                                      \
    }                                                                                      \
    fi_lanes ln = c->lanes;                                                                \
    for (int64_t t = c->steps; t < steps; t++)                                             \
        STEP(&ln, &c->aux, pr, (char *)c->raw + t * (STEP_BYTES));                         \
    c->lanes = ln;                                                                         \
    if (steps > c->steps) c->steps = steps;                                                \
}

FI_DEFINE_ADVANCE(fi_uniform_advance, fi_uniform_step, 8 * FI_LANES, 0)

/* ------------------------------------------------------------------------- */
/* Fill plans                                                                 */
/* ------------------------------------------------------------------------- */

#define FI_MAXDIM 64

/*
 * A plan describes where one fill writes: the local array (data, shape, byte
 * strides), how its elements map to global indices, and how the work is cut into
 * pieces. Local elements are grouped into runs of run_len consecutive global
 * indices (one run per multi-index of the first run_dims dimensions); each run is
 * cut into pieces of at most piece_len elements. Pieces are the unit of
 * parallel work.
 */
typedef struct {
    char *data;
    int ndim;
    int itemsize;
    int contiguous;                 /* local array is C-contiguous */
    int aligned;                    /* data is aligned to the item size */
    int stream;                     /* use non-temporal stores */
    int64_t shape[FI_MAXDIM];
    int64_t strides[FI_MAXDIM];     /* bytes */
    int run_dims;
    int64_t run_len;
    uint64_t run_gstride[FI_MAXDIM];/* global index step per local index, dims < run_dims */
    uint64_t gbase;                 /* global index of the local element (0, ..., 0) */
    int64_t piece_len;
    int64_t pieces_per_run;
    int64_t npieces;
} fi_plan;

/* Parameters of one fill: the call seed and the value map. */
typedef struct {
    uint64_t sigma;
    double low, range, cap;         /* float64 uniform: min(low + range*u, cap) */
    float low_f, range_f, cap_f;    /* float32 uniform */
    double mean, std;               /* float64 normal: mean + std*z */
    float mean_f, std_f;            /* float32 normal */
    uint64_t bits;                  /* constant: the value's bit pattern, itemsize bytes */
    double alpha, beta;             /* truncated normal: standardized bounds [alpha, beta] */
    double lo_clip, hi_clip;        /* truncated normal: values clipped to these */
    double rate;                    /* truncated normal, mode 2: the exponential's rate */
    int trunc_mode;                 /* 0: normal, 1: uniform, 2: exponential proposals */
} fi_params;

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
static void fi_store_fence(void)
{
#ifdef FI_X86
    _mm_sfence();
#endif
}

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

/* ------------------------------------------------------------------------- */
/* Value maps                                                                 */
/* ------------------------------------------------------------------------- */

/* Uniform float32: element j of a block is the 32-bit half j of the block's raw
 * outputs read as little-endian uint32 (even j: low half, odd j: high half);
 * u = (half >> 8) * 2^-24 and the value is min(low + range*u, cap). */
FI_INLINE void fi_uniform_f32_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, float *out)
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
FI_INLINE void fi_uniform_f64_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, double *out)
{
    const uint64_t *x = raw + j0;
    const double lo = pr->low, r = pr->range, cap = pr->cap;
    for (int64_t k = 0; k < n; k++) {
        const double u = (double)(int64_t)(x[k] >> 11) * 0x1p-53;
        const double v = lo + r * u;
        out[k] = v < cap ? v : cap;
    }
}

/* 8 float32 values to bfloat16 bits: the top half, rounded to nearest even (a NaN
 * stays a quiet NaN). */
FI_INLINE fi_u16x8 fi_to_bf16x8(fi_f32x8 v)
{
    const fi_u32x8 b = (fi_u32x8)v;
    const fi_u32x8 rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
    const fi_u32x8 nan = (fi_u32x8)((b & 0x7FFFFFFFu) > 0x7F800000u);
    return __builtin_convertvector((rounded & ~nan) | (((b >> 16) | 0x40u) & nan), fi_u16x8);
}

/* 8 float32 values to float16 bits, IEEE round to nearest even, branch-free:
 * |x| >= 2^16 or NaN: infinity or a quiet NaN; |x| < 2^-14 (float16 subnormals):
 * one IEEE addition of 2^-1 (whose unit in the last place is float16's 2^-24)
 * rounds the magnitude, and its low bits are the result; otherwise the exponent
 * is rebased and the 13 dropped bits rounded half to even (a carry into the
 * exponent gives the next binade or infinity). */
FI_INLINE fi_u16x8 fi_to_f16x8(fi_f32x8 v)
{
    const fi_u32x8 b = (fi_u32x8)v;
    const fi_u32x8 sign = (b >> 16) & 0x8000u;
    const fi_u32x8 a = b & 0x7FFFFFFFu;
    const fi_u32x8 big = (fi_u32x8)(a >= 0x47800000u);    /* >= 2^16, inf, NaN */
    const fi_u32x8 is_nan = (fi_u32x8)(a > 0x7F800000u);
    const fi_u32x8 over = (is_nan & 0x7E00u) | (~is_nan & 0x7C00u);
    const fi_u32x8 tiny = (fi_u32x8)(a < 0x38800000u);                /* < 2^-14 */
    const fi_f32x8 magic = fi_splat_f32(0.5f);
    const fi_u32x8 sub = (fi_u32x8)((fi_f32x8)a + magic) - (fi_u32x8)magic;
    const fi_u32x8 norm = (a - 0x38000000u + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    const fi_u32x8 mag = (big & over) | (~big & ((tiny & sub) | (~tiny & norm)));
    return __builtin_convertvector(sign | mag, fi_u16x8);
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

/* Stores 8 float32 values rounded to 16 bits (bfloat16 or float16) at dst:
 * non-temporal when stream is set (dst then 16-byte aligned). */
FI_INLINE void fi_put_half8(uint16_t *dst, fi_f32x8 v, int stream, int bf16)
{
    const fi_u16x8 h = bf16 ? fi_to_bf16x8(v) : fi_to_f16x8(v);
#ifdef FI_X86
    if (stream) { _mm_stream_si128((__m128i *)dst, (__m128i)h); return; }
#endif
    (void)stream;
    memcpy(dst, &h, sizeof h);
}

/* A whole block of float32 uniforms into dst, straight from the lane registers:
 * the 4 outputs of a vector step, read as 8 uint32 halves, are 8 consecutive
 * elements (section 5 of docs/stream.md). Same values as fi_uniform_f32_map. */
FI_INLINE void fi_uniform_f32_whole(uint64_t sigma, uint64_t block, const fi_params *pr,
                                    float *dst, int stream)
{
    fi_lanes ln;
    fi_lanes_seed(&ln, sigma, block, 0);
    const fi_f32x8 lo = fi_splat_f32(pr->low_f), r = fi_splat_f32(pr->range_f);
    const fi_f32x8 cap = fi_splat_f32(pr->cap_f);
    for (int t = 0; t < FI_BLOCK / (2 * FI_LANES); t++)
        for (int v = 0; v < FI_VECS; v++) {
            const fi_u32x8 h = (fi_u32x8)fi_step4(&ln.s0[v], &ln.s1[v], &ln.s2[v], &ln.s3[v]);
            const fi_f32x8 u = __builtin_convertvector((fi_i32x8)(h >> 8), fi_f32x8) * 0x1p-24f;
            const fi_f32x8 val = lo + r * u;
            const fi_i32x8 below = val < cap;
            const fi_i32x8 bits = ((fi_i32x8)val & below) | ((fi_i32x8)cap & ~below);
            fi_store32(dst + t * 2 * FI_LANES + 8 * v, (fi_f32x8)bits, stream);
        }
}

/* A whole block of float64 uniforms into dst. u = (x >> 11) * 2^-53 is formed
 * exactly without a 64-bit integer conversion (which AVX2 lacks): the double
 * 1 + (x >> 12) * 2^-52, minus 1, plus 2^-53 when bit 11 of x is set. */
FI_INLINE void fi_uniform_f64_whole(uint64_t sigma, uint64_t block, const fi_params *pr,
                                    double *dst, int stream)
{
    fi_lanes ln;
    fi_lanes_seed(&ln, sigma, block, 0);
    const fi_f64x4 lo = fi_splat_f64(pr->low), r = fi_splat_f64(pr->range);
    const fi_f64x4 cap = fi_splat_f64(pr->cap);
    const fi_u64x4 one_bits = fi_splat_u64(0x3FF0000000000000ULL);    /* 1.0 */
    const fi_u64x4 half_ulp = fi_splat_u64(0x3CA0000000000000ULL);    /* 2^-53 */
    for (int t = 0; t < FI_BLOCK / FI_LANES; t++)
        for (int v = 0; v < FI_VECS; v++) {
            const fi_u64x4 x = fi_step4(&ln.s0[v], &ln.s1[v], &ln.s2[v], &ln.s3[v]);
            const fi_f64x4 high52 = (fi_f64x4)((x >> 12) | one_bits) - fi_splat_f64(1.0);
            const fi_f64x4 low1 = (fi_f64x4)(half_ulp & -((x >> 11) & 1));
            const fi_f64x4 u = high52 + low1;
            const fi_f64x4 val = lo + r * u;
            const fi_i64x4 below = val < cap;
            const fi_i64x4 bits = ((fi_i64x4)val & below) | ((fi_i64x4)cap & ~below);
            fi_store32(dst + t * FI_LANES + 4 * v, (fi_f32x8)bits, stream);
        }
}

/* ------------------------------------------------------------------------- */
/* Normal: the Ziggurat (docs/stream.md, section 6)                           */
/* ------------------------------------------------------------------------- */

/* exp(a) for a <= 0 from IEEE additions, multiplications and exact scalings only,
 * so that it rounds the same way on every machine (libm's exp need not):
 * a = n ln2 + r with |r| <= ln(2)/2, exp(r) by its Taylor polynomial of degree 13
 * in Horner form (coefficients 1/k! rounded to double), times 2^n. */
static const double FI_EXP_COEF[14] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};

static double fi_exp(double a)
{
    if (a < -708.0) return 0.0;                           /* below the normal range */
    if (a > 709.0) return (double)INFINITY;               /* above the double range */
    if (a != a) return a;                                 /* NaN: no integer conversion */
    const double inv_ln2 = 0x1.71547652b82fep+0;
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    const double y = a * inv_ln2 + 0.5;
    double n = (double)(int64_t)y;                        /* floor(y), for |y| < 2^62 */
    if (n > y) n -= 1.0;
    const double r = (a - n * ln2_hi) - n * ln2_lo;
    double p = FI_EXP_COEF[13];
    for (int k = 12; k >= 0; k--) p = p * r + FI_EXP_COEF[k];
    const uint64_t scale_bits = (uint64_t)((int64_t)n + 1023) << 52;   /* 2^n, n >= -1022 */
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

/* log(u) for 0 < u <= 1, likewise: u = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * log(m) = 2 atanh(s) = s (2 + z (2/3 + z (2/5 + ... + z 2/23))), s = (m-1)/(m+1), z = s^2. */
static const double FI_LOG_COEF[12] = {
    2.0, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19,
    2.0 / 21, 2.0 / 23};

static double fi_log(double u)
{
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    uint64_t bits;                                        /* u is normal: u >= 2^-53 */
    memcpy(&bits, &u, sizeof bits);
    int e = (int)(bits >> 52) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m;                                             /* u = m 2^e, m in [1, 2) */
    memcpy(&m, &bits, sizeof m);
    if (m > 0x1.6a09e667f3bcdp+0) { m *= 0.5; e += 1; }
    const double s = (m - 1.0) / (m + 1.0), z = s * s;
    double p = FI_LOG_COEF[11];
    for (int k = 10; k >= 0; k--) p = p * z + FI_LOG_COEF[k];
    return e * ln2_hi + (e * ln2_lo + s * p);
}

/* The next output of one lane, out of the vector states. */
static uint64_t fi_lane_next(fi_lanes *ln, int lane)
{
    const int v = lane >> 2, i = lane & 3;
    uint64_t s[4] = {ln->s0[v][i], ln->s1[v][i], ln->s2[v][i], ln->s3[v][i]};
    const uint64_t x = fi_xoshiro_next(s);
    ln->s0[v][i] = s[0]; ln->s1[v][i] = s[1]; ln->s2[v][i] = s[2]; ln->s3[v][i] = s[3];
    return x;
}

static inline double fi_u53(uint64_t x) { return (double)(x >> 11) * 0x1p-53; }          /* [0, 1) */
static inline double fi_u53_open(uint64_t x) { return (double)((x >> 11) + 1) * 0x1p-53; } /* (0, 1] */

/* The tail beyond r (Marsaglia's exact method), from a lane's auxiliary outputs. */
static double fi_zig_tail(fi_lanes *aux, int lane, int negative)
{
    for (;;) {
        const double xx = -fi_log(fi_u53_open(fi_lane_next(aux, lane))) * FI_ZIG_INV_R;
        const double yy = -fi_log(fi_u53_open(fi_lane_next(aux, lane)));
        if (yy + yy > xx * xx) return negative ? -(FI_ZIG_R + xx) : FI_ZIG_R + xx;
    }
}

/* Whether the wedge of layer idx accepts x (given as a double), from one more output. */
static int fi_zig_wedge(fi_lanes *aux, int lane, int idx, double x)
{
    const double u = fi_u53(fi_lane_next(aux, lane));
    return FI_ZIG_F[idx] + u * (FI_ZIG_F[idx - 1] - FI_ZIG_F[idx]) < fi_exp(-0.5 * x * x);
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

/* The fast path of one float32 step: each lane's next main output gives two
 * candidates (low half, then high half) for elements 2l and 2l+1 of the step's
 * 32, computed 8 at a time; only the table look-ups are per element. Accepted
 * values go to z; a rejected candidate leaves its raw bits in z and its bit in
 * the returned mask. */
FI_INLINE uint32_t fi_normal_f32_fast(fi_lanes *ln, fi_f32x8 *z)
{
    uint32_t rejected = 0;
    for (int v = 0; v < FI_VECS; v++) {
        const fi_u32x8 h = (fi_u32x8)fi_step4(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
        const fi_u32x8 idx = h & 255, m = h >> 9;
        const fi_f32x8 w = {FI_ZIG32_W[idx[0]], FI_ZIG32_W[idx[1]], FI_ZIG32_W[idx[2]],
                            FI_ZIG32_W[idx[3]], FI_ZIG32_W[idx[4]], FI_ZIG32_W[idx[5]],
                            FI_ZIG32_W[idx[6]], FI_ZIG32_W[idx[7]]};
        const fi_i32x8 k = {(int32_t)FI_ZIG32_K[idx[0]], (int32_t)FI_ZIG32_K[idx[1]],
                            (int32_t)FI_ZIG32_K[idx[2]], (int32_t)FI_ZIG32_K[idx[3]],
                            (int32_t)FI_ZIG32_K[idx[4]], (int32_t)FI_ZIG32_K[idx[5]],
                            (int32_t)FI_ZIG32_K[idx[6]], (int32_t)FI_ZIG32_K[idx[7]]};
        const fi_f32x8 x = __builtin_convertvector((fi_i32x8)m, fi_f32x8) * w;
        const fi_u32x8 signed_x = (fi_u32x8)x ^ ((h & 256) << 23);
        const fi_u32x8 reject = (fi_u32x8)((fi_i32x8)m >= k);
        z[v] = (fi_f32x8)((signed_x & ~reject) | (h & reject));
        uint64_t any[4];
        memcpy(any, &reject, sizeof any);
        if (any[0] | any[1] | any[2] | any[3])
            for (int i = 0; i < 8; i++) rejected |= (reject[i] & 1u) << (8 * v + i);
    }
    return rejected;
}

/* The same for float64: one candidate per lane, element l of the step's 16. */
FI_INLINE uint32_t fi_normal_f64_fast(fi_lanes *ln, fi_f64x4 *z)
{
    uint32_t rejected = 0;
    for (int v = 0; v < FI_VECS; v++) {
        const fi_u64x4 x = fi_step4(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
        const fi_u64x4 idx = x & 255, m = x >> 12;
        const fi_f64x4 w = {FI_ZIG64_W[idx[0]], FI_ZIG64_W[idx[1]], FI_ZIG64_W[idx[2]],
                            FI_ZIG64_W[idx[3]]};
        const fi_i64x4 k = {(int64_t)FI_ZIG64_K[idx[0]], (int64_t)FI_ZIG64_K[idx[1]],
                            (int64_t)FI_ZIG64_K[idx[2]], (int64_t)FI_ZIG64_K[idx[3]]};
        const fi_f64x4 md = (fi_f64x4)(m | 0x4330000000000000ULL) - 0x1p52;  /* exact */
        const fi_u64x4 signed_d = (fi_u64x4)(md * w) ^ ((x & 256) << 55);
        const fi_u64x4 reject = (fi_u64x4)((fi_i64x4)m >= k);
        z[v] = (fi_f64x4)((signed_d & ~reject) | (x & reject));
        uint64_t any[4];
        memcpy(any, &reject, sizeof any);
        if (any[0] | any[1] | any[2] | any[3])
            for (int i = 0; i < 4; i++) rejected |= (uint32_t)(reject[i] & 1u) << (4 * v + i);
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
FI_DEFINE_NORMAL_FIX(fi_normal_f32_fix, fi_f32x8, float, uint32_t, fi_zig32_slow, FI_LANE_OF_F32)
FI_DEFINE_NORMAL_FIX(fi_normal_f64_fix, fi_f64x4, double, uint64_t, fi_zig64_slow, FI_LANE_OF_F64)

/* One step, fast path then fix-ups (the cursor's path). */
FI_INLINE void fi_normal_f32_step(fi_lanes *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)pr;
    fi_f32x8 z[FI_VECS];
    fi_normal_f32_fix(aux, fi_normal_f32_fast(ln, z), z);
    memcpy(out, z, sizeof z);
}

FI_INLINE void fi_normal_f64_step(fi_lanes *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)pr;
    fi_f64x4 z[FI_VECS];
    fi_normal_f64_fix(aux, fi_normal_f64_fast(ln, z), z);
    memcpy(out, z, sizeof z);
}

FI_DEFINE_ADVANCE(fi_normal_f32_advance, fi_normal_f32_step, 4 * 2 * FI_LANES, 1)
FI_DEFINE_ADVANCE(fi_normal_f64_advance, fi_normal_f64_step, 8 * FI_LANES, 1)

/* mean + std * z over the cursor's values. */
FI_INLINE void fi_normal_f32_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, float *out)
{
    const float *z = (const float *)raw + j0;
    const float mean = pr->mean_f, std = pr->std_f;
    for (int64_t k = 0; k < n; k++) out[k] = mean + std * z[k];
}

FI_INLINE void fi_normal_f64_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, double *out)
{
    const double *z = (const double *)raw + j0;
    const double mean = pr->mean, std = pr->std;
    for (int64_t k = 0; k < n; k++) out[k] = mean + std * z[k];
}

/* A whole block: the fast path over every step with the main lanes kept in
 * registers, then the fix-ups in element order (each lane's auxiliary stream
 * is consumed in its candidates' order either way), then mean + std * z stored. */
#define FI_DEFINE_NORMAL_WHOLE(NAME, CTYPE, VEC, FAST, FIX, SPLAT, MEAN, STD, PER_STEP)    \
FI_INLINE void NAME(uint64_t sigma, uint64_t block, const fi_params *pr, CTYPE *dst,      \
                    int stream)                                                            \
{                                                                                          \
    enum { STEPS = FI_BLOCK / (PER_STEP), PER_VEC = 32 / sizeof(CTYPE) };                  \
    VEC z[STEPS][FI_VECS];                                                                 \
    uint32_t rejected[STEPS];                                                              \
    fi_lanes ln, aux;                                                                      \
    fi_lanes_seed(&ln, sigma, block, 0);                                                   \
    for (int t = 0; t < STEPS; t++) rejected[t] = FAST(&ln, z[t]);                         \
    fi_lanes_seed(&aux, sigma, block, 1);                                                  \
    for (int t = 0; t < STEPS; t++) FIX(&aux, rejected[t], z[t]);                          \
    const VEC mean = SPLAT(pr->MEAN), std = SPLAT(pr->STD);                                \
    for (int t = 0; t < STEPS; t++)                                                        \
        for (int v = 0; v < FI_VECS; v++)                                                  \
            fi_store32(dst + t * (PER_STEP) + PER_VEC * v, (fi_f32x8)(mean + std * z[t][v]), \
                       stream);                                                            \
}

FI_DEFINE_NORMAL_WHOLE(fi_normal_f32_whole, float, fi_f32x8, fi_normal_f32_fast,
                       fi_normal_f32_fix, fi_splat_f32, mean_f, std_f, 2 * FI_LANES)
FI_DEFINE_NORMAL_WHOLE(fi_normal_f64_whole, double, fi_f64x4, fi_normal_f64_fast,
                       fi_normal_f64_fix, fi_splat_f64, mean, std, FI_LANES)

/* ------------------------------------------------------------------------- */
/* Piece kernels                                                              */
/* ------------------------------------------------------------------------- */

/* A random fill of one piece; PER_STEP elements per lane step (32 for float32,
 * 16 for float64). A whole block bound for aligned contiguous memory is written
 * straight from registers (WHOLE); a partial block goes through the cursor
 * (ADVANCE), then MAP turns the cursor's contents into values. */
#define FI_DEFINE_PIECE(NAME, CTYPE, ADVANCE, MAP, WHOLE, PER_STEP)                        \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)      \
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

FI_DEFINE_PIECE(fi_uniform_f32_body, float, fi_uniform_advance, fi_uniform_f32_map,
                fi_uniform_f32_whole, 2 * FI_LANES)
FI_DEFINE_PIECE(fi_uniform_f64_body, double, fi_uniform_advance, fi_uniform_f64_map,
                fi_uniform_f64_whole, FI_LANES)
FI_DEFINE_PIECE(fi_normal_f32_body, float, fi_normal_f32_advance, fi_normal_f32_map,
                fi_normal_f32_whole, 2 * FI_LANES)
FI_DEFINE_PIECE(fi_normal_f64_body, double, fi_normal_f64_advance, fi_normal_f64_map,
                fi_normal_f64_whole, FI_LANES)

/* ------------------------------------------------------------------------- */
/* 16-bit outputs: float32 values rounded to nearest even                     */
/* ------------------------------------------------------------------------- */

/* Converts m float32 values (m a multiple of 8) to 16 bits (BF16: bfloat16, else
 * float16) into dst. */
FI_INLINE void fi_store_half(uint16_t *dst, const float *vals, int64_t m, int bf16, int stream)
{
    for (int64_t k = 0; k < m; k += 8) {
        fi_f32x8 v;
        memcpy(&v, vals + k, sizeof v);
        fi_put_half8(dst + k, v, stream, bf16);
    }
}

/* A 16-bit fill of one piece (BF16: bfloat16, else float16): the block's float32
 * values (WHOLE, or the cursor) are computed into a cache-resident buffer, then
 * converted, straight into contiguous memory or through fi_emit. (Converting in
 * the generation loop is slower with AVX2's 16 registers, all taken by the lanes.) */
#define FI_DEFINE_PIECE16(NAME, ADVANCE, MAP, WHOLE, BF16, PER_STEP)                       \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)      \
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

FI_DEFINE_PIECE16(fi_uniform_f16_body, fi_uniform_advance, fi_uniform_f32_map,
                  fi_uniform_f32_whole, 0, 2 * FI_LANES)
FI_DEFINE_PIECE16(fi_uniform_bf16_body, fi_uniform_advance, fi_uniform_f32_map,
                  fi_uniform_f32_whole, 1, 2 * FI_LANES)
FI_DEFINE_PIECE16(fi_normal_f16_body, fi_normal_f32_advance, fi_normal_f32_map,
                  fi_normal_f32_whole, 0, 2 * FI_LANES)
FI_DEFINE_PIECE16(fi_normal_bf16_body, fi_normal_f32_advance, fi_normal_f32_map,
                  fi_normal_f32_whole, 1, 2 * FI_LANES)

/* ------------------------------------------------------------------------- */
/* Truncated normal (docs/stream.md, section 7)                               */
/* ------------------------------------------------------------------------- */

/* A standardized truncated normal in [alpha, beta] for one element (docs/stream.md,
 * section 7), from its first candidate and then its lane's auxiliary outputs.
 * Mode 0: z is the element's float64 normal value; while z is outside,
 * z = zig64(A()). Mode 1: proposals x = alpha + (beta - alpha) U, accepted when
 * U(A()) < exp_d(c - x^2/2), c = min over the interval of x^2/2. Mode 2 (Robert,
 * 1995; the interval within one tail, mirrored to the right one when beta <= 0,
 * [lo, hi] = |ends|): x = lo - log_d(U') / rate, accepted when x <= hi and
 * U(A()) < exp_d(-(x - rate)^2 / 2). Each proposal's first uniform comes from the
 * main output x0 for the first proposal, from A() for later ones. */
static double fi_trunc_one(fi_lanes *aux, int lane, double z, uint64_t x0, const fi_params *pr)
{
    if (pr->trunc_mode == 0) {
        while (!(z >= pr->alpha && z <= pr->beta))
            z = fi_zig64_slow(aux, lane, fi_lane_next(aux, lane));
        return z;
    }
    if (pr->trunc_mode == 1) {
        const double width = pr->beta - pr->alpha;
        const double m = pr->alpha > 0 ? pr->alpha : (pr->beta < 0 ? pr->beta : 0.0);
        const double c = 0.5 * m * m;
        double x = pr->alpha + width * fi_u53(x0);
        for (;;) {
            if (x > pr->beta) x = pr->beta;
            if (fi_u53(fi_lane_next(aux, lane)) < fi_exp(c - 0.5 * x * x)) return x;
            x = pr->alpha + width * fi_u53(fi_lane_next(aux, lane));
        }
    }
    const int mirror = pr->alpha < 0;
    const double lo = mirror ? -pr->beta : pr->alpha, hi = mirror ? -pr->alpha : pr->beta;
    uint64_t first = x0;
    for (;;) {
        const double x = lo - fi_log(fi_u53_open(first)) / pr->rate;
        const double d = x - pr->rate;
        if (x <= hi && fi_u53(fi_lane_next(aux, lane)) < fi_exp(-0.5 * d * d))
            return mirror ? -x : x;
        first = fi_lane_next(aux, lane);
    }
}

/* One step: 16 standardized truncated normals (element l from lane l), binary64. */
FI_INLINE void fi_trunc_step(fi_lanes *ln, fi_lanes *aux, const void *params, void *out)
{
    const fi_params *pr = (const fi_params *)params;
    double *z = (double *)out;
    if (pr->trunc_mode == 0) {
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
FI_INLINE void fi_trunc_f64_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, double *out)
{
    const double *z = (const double *)raw + j0;
    for (int64_t k = 0; k < n; k++) {
        double v = pr->mean + pr->std * z[k];
        v = v < pr->lo_clip ? pr->lo_clip : v;
        out[k] = v > pr->hi_clip ? pr->hi_clip : v;
    }
}

FI_INLINE void fi_trunc_f32_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, float *out)
{
    const double *z = (const double *)raw + j0;
    const float lo = (float)pr->lo_clip, hi = (float)pr->hi_clip;
    for (int64_t k = 0; k < n; k++) {
        float v = (float)(pr->mean + pr->std * z[k]);
        v = v < lo ? lo : v;
        out[k] = v > hi ? hi : v;
    }
}

#define FI_DEFINE_TRUNC_PIECE(NAME, CTYPE, MAP, CONVERT)                                   \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)      \
{                                                                                          \
    CTYPE vals[FI_BLOCK] FI_ALIGN64;                                                       \
    fi_segment s;                                                                          \
    for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) {             \
        const uint64_t block = s.block;                                                    \
        const int64_t j0 = s.j0, m = s.m, flat = s.flat;                                   \
        fi_trunc_advance(c, pr, pr->sigma, block, (j0 + m + FI_LANES - 1) / FI_LANES);     \
        MAP(c->raw, j0, m, pr, vals);                                                      \
        CONVERT                                                                            \
    }                                                                                      \
}

FI_DEFINE_TRUNC_PIECE(fi_trunc_f64_body, double, fi_trunc_f64_map, fi_emit(pl, flat, vals, m);)
FI_DEFINE_TRUNC_PIECE(fi_trunc_f32_body, float, fi_trunc_f32_map, fi_emit(pl, flat, vals, m);)
FI_DEFINE_TRUNC_PIECE(fi_trunc_f16_body, float, fi_trunc_f32_map, {
    uint16_t half[FI_BLOCK] FI_ALIGN64;
    fi_store_half(half, vals, (m + 7) & ~(int64_t)7, 0, 0);
    fi_emit(pl, flat, half, m); })
FI_DEFINE_TRUNC_PIECE(fi_trunc_bf16_body, float, fi_trunc_f32_map, {
    uint16_t half[FI_BLOCK] FI_ALIGN64;
    fi_store_half(half, vals, (m + 7) & ~(int64_t)7, 1, 0);
    fi_emit(pl, flat, half, m); })

/* Raw outputs: element j of a block is raw[j] itself (uint64, the float64 layout). */
FI_INLINE void fi_raw_map(const uint64_t *raw, int64_t j0, int64_t n, const fi_params *pr, uint64_t *out)
{
    (void)pr;
    memcpy(out, raw + j0, (size_t)n * sizeof *out);
}

FI_INLINE void fi_raw_body(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)
{
    uint64_t vals[FI_BLOCK] FI_ALIGN64;
    fi_segment s;
    for (int ok = fi_segment_first(&s, pl, p); ok; ok = fi_segment_next(&s)) {
        fi_uniform_advance(c, pr, pr->sigma, s.block, (s.j0 + s.m + FI_LANES - 1) / FI_LANES);
        fi_raw_map(c->raw, s.j0, s.m, pr, vals);
        fi_emit(pl, s.flat, vals, s.m);
    }
}

/* Constant fill of one piece, for any item size: the value's bit pattern is
 * written into a small buffer once and emitted repeatedly, through the same store
 * paths as the random fills. */
FI_INLINE void fi_constant_body(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)
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

/* ------------------------------------------------------------------------- */
/* Runtime dispatch                                                           */
/* ------------------------------------------------------------------------- */

typedef void (*fi_piece_fn)(fi_cursor *, const fi_plan *, const fi_params *, int64_t);

/* Kernels by distribution and dtype (the dtype order: float32, float64, float16,
 * bfloat16, as Target.kind numbers them). */
enum { FI_UNIFORM = 0, FI_NORMAL = 4, FI_TRUNC = 8, FI_CONSTANT = 12, FI_RAW = 13,
       FI_NKERNELS = 14 };
enum { FI_PATH_BASELINE, FI_PATH_AVX2, FI_PATH_AVX512, FI_NPATHS };
static const char *const FI_PATH_NAMES[FI_NPATHS] = {"baseline", "avx2", "avx512"};

#define FI_WRAP(BODY, SUFFIX, ATTR)                                                        \
    ATTR static void BODY##_##SUFFIX(fi_cursor *c, const fi_plan *pl,                     \
                                     const fi_params *pr, int64_t p)                       \
    { BODY(c, pl, pr, p); }

#define FI_WRAP_ALL(SUFFIX, ATTR)                                                          \
    FI_WRAP(fi_uniform_f32_body, SUFFIX, ATTR)                                             \
    FI_WRAP(fi_uniform_f64_body, SUFFIX, ATTR)                                             \
    FI_WRAP(fi_uniform_f16_body, SUFFIX, ATTR)                                             \
    FI_WRAP(fi_uniform_bf16_body, SUFFIX, ATTR)                                            \
    FI_WRAP(fi_normal_f32_body, SUFFIX, ATTR)                                              \
    FI_WRAP(fi_normal_f64_body, SUFFIX, ATTR)                                              \
    FI_WRAP(fi_normal_f16_body, SUFFIX, ATTR)                                              \
    FI_WRAP(fi_normal_bf16_body, SUFFIX, ATTR)                                             \
    FI_WRAP(fi_trunc_f32_body, SUFFIX, ATTR)                                               \
    FI_WRAP(fi_trunc_f64_body, SUFFIX, ATTR)                                               \
    FI_WRAP(fi_trunc_f16_body, SUFFIX, ATTR)                                               \
    FI_WRAP(fi_trunc_bf16_body, SUFFIX, ATTR)                                              \
    FI_WRAP(fi_constant_body, SUFFIX, ATTR)                                                \
    FI_WRAP(fi_raw_body, SUFFIX, ATTR)                                                     \
    static const fi_piece_fn FI_TABLE_##SUFFIX[FI_NKERNELS] = {                            \
        fi_uniform_f32_body_##SUFFIX, fi_uniform_f64_body_##SUFFIX,                        \
        fi_uniform_f16_body_##SUFFIX, fi_uniform_bf16_body_##SUFFIX,                       \
        fi_normal_f32_body_##SUFFIX, fi_normal_f64_body_##SUFFIX,                          \
        fi_normal_f16_body_##SUFFIX, fi_normal_bf16_body_##SUFFIX,                         \
        fi_trunc_f32_body_##SUFFIX, fi_trunc_f64_body_##SUFFIX,                            \
        fi_trunc_f16_body_##SUFFIX, fi_trunc_bf16_body_##SUFFIX,                           \
        fi_constant_body_##SUFFIX, fi_raw_body_##SUFFIX};

FI_WRAP_ALL(baseline, )
#ifdef FI_X86
FI_WRAP_ALL(avx2, __attribute__((target("avx2,f16c"))))
FI_WRAP_ALL(avx512, __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,f16c"))))
#endif

/* Whether this CPU (and OS) can run a path. */
static int fi_path_supported(int path)
{
    if (path == FI_PATH_BASELINE) return 1;
#ifdef FI_X86
    __builtin_cpu_init();
    const int f16c = __builtin_cpu_supports("f16c");
    if (path == FI_PATH_AVX2) return __builtin_cpu_supports("avx2") && f16c;
    if (path == FI_PATH_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && f16c;
#endif
    return 0;
}

static const fi_piece_fn *fi_path_table(int path)
{
#ifdef FI_X86
    if (path == FI_PATH_AVX512) return FI_TABLE_avx512;
    if (path == FI_PATH_AVX2) return FI_TABLE_avx2;
#endif
    (void)path;
    return FI_TABLE_baseline;
}

/* ------------------------------------------------------------------------- */
/* OpenMP, guarded so that a serial build compiles and imports                */
/* ------------------------------------------------------------------------- */

static int fi_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static int fi_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* The bench's yardstick of write bandwidth: the plainest OpenMP loop of
 * non-temporal stores of a constant over a float32 array (cache lines split
 * statically among the threads). fastinit's fills are measured against it. */
static void fi_stream_yardstick(float *a, int64_t n, int nthreads)
{
#ifdef FI_X86
    int64_t head = (int64_t)(((16 - ((uintptr_t)a & 15)) & 15) / sizeof(float));
    if (head > n) head = n;
    for (int64_t i = 0; i < head; i++) a[i] = 1.0f;
    float *body = a + head;
    const int64_t vectors = (n - head) / 4;
    if (nthreads > 1) {
        #pragma omp parallel num_threads(nthreads)
        {
            #pragma omp for schedule(static)
            for (int64_t i = 0; i < vectors; i++) _mm_stream_ps(body + 4 * i, _mm_set1_ps(1.0f));
            _mm_sfence();
        }
    } else {
        for (int64_t i = 0; i < vectors; i++) _mm_stream_ps(body + 4 * i, _mm_set1_ps(1.0f));
        _mm_sfence();
    }
    for (int64_t i = head + 4 * vectors; i < n; i++) a[i] = 1.0f;
#else
    (void)nthreads;
    for (int64_t i = 0; i < n; i++) a[i] = 1.0f;
#endif
}

/* Build facts for fastinit.build_info(); setup.py defines FI_BUILD_FLAGS. */
#ifndef FI_BUILD_FLAGS
#define FI_BUILD_FLAGS "unknown"
#endif
#if defined(__clang__)
#define FI_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define FI_COMPILER "gcc " __VERSION__
#else
#define FI_COMPILER "unknown"
#endif
static const char *const fi_build_flags = FI_BUILD_FLAGS;
static const char *const fi_compiler = FI_COMPILER;

#endif /* FASTINIT_KERNELS_H */
