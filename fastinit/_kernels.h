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

#if defined(__GNUC__)
#define FI_INLINE static inline __attribute__((always_inline))
#define FI_ALIGN64 __attribute__((aligned(64)))
typedef uint32_t fi_u32_alias __attribute__((__may_alias__));
#else
#define FI_INLINE static inline
#define FI_ALIGN64
typedef uint32_t fi_u32_alias;
#endif

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

/*
 * A cursor is one thread's view of one block: its lane states, how many steps
 * have been taken, and the raw outputs so far (output m of the block at raw[m]).
 * Consecutive requests inside the same block continue from where it stopped, so a
 * block is generated at most once per thread however it is cut into pieces.
 */
typedef struct {
    uint64_t raw[FI_BLOCK] FI_ALIGN64;
    uint64_t s[4][FI_LANES] FI_ALIGN64;
    uint64_t sigma;
    uint64_t block;
    int64_t steps;
    int valid;
} fi_cursor;

static fi_cursor *fi_cursor_new(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, sizeof(fi_cursor)) != 0) return NULL;
    ((fi_cursor *)p)->valid = 0;
    return (fi_cursor *)p;
}

static void fi_cursor_free(fi_cursor *c) { free(c); }

FI_INLINE void fi_block_seed(fi_cursor *c, uint64_t sigma, uint64_t block)
{
    const uint64_t first = block * (uint64_t)(4 * FI_LANES);
    for (int l = 0; l < FI_LANES; l++)
        for (int w = 0; w < 4; w++)
            c->s[w][l] = fi_mix64(sigma + (first + 4 * (uint64_t)l + (uint64_t)w + 1) * FI_GAMMA);
    c->sigma = sigma;
    c->block = block;
    c->steps = 0;
    c->valid = 1;
}

/* Make raw[0 .. FI_LANES*steps) available for (sigma, block). */
FI_INLINE void fi_block_advance(fi_cursor *c, uint64_t sigma, uint64_t block, int64_t steps)
{
    if (!c->valid || c->sigma != sigma || c->block != block || c->steps > steps)
        fi_block_seed(c, sigma, block);
    uint64_t s0[FI_LANES], s1[FI_LANES], s2[FI_LANES], s3[FI_LANES];
    memcpy(s0, c->s[0], sizeof s0); memcpy(s1, c->s[1], sizeof s1);
    memcpy(s2, c->s[2], sizeof s2); memcpy(s3, c->s[3], sizeof s3);
    for (int64_t t = c->steps; t < steps; t++) {
        uint64_t *out = c->raw + t * FI_LANES;
        for (int l = 0; l < FI_LANES; l++) {
            out[l] = fi_rotl(s1[l] * 5, 7) * 9;
            const uint64_t tt = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= tt;
            s3[l] = fi_rotl(s3[l], 45);
        }
    }
    memcpy(c->s[0], s0, sizeof s0); memcpy(c->s[1], s1, sizeof s1);
    memcpy(c->s[2], s2, sizeof s2); memcpy(c->s[3], s3, sizeof s3);
    if (steps > c->steps) c->steps = steps;
}

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
    double value;                   /* constant */
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

/* ------------------------------------------------------------------------- */
/* Piece kernels                                                              */
/* ------------------------------------------------------------------------- */

/* Uniform fill of one piece; values_per_output is 2 for float32, 1 for float64. */
#define FI_DEFINE_UNIFORM_PIECE(NAME, CTYPE, MAP, PER_OUTPUT)                              \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)      \
{                                                                                          \
    CTYPE vals[FI_BLOCK] FI_ALIGN64;                                                       \
    int64_t flat, n;                                                                       \
    uint64_t g;                                                                            \
    fi_piece_start(pl, p, &flat, &g, &n);                                                  \
    while (n > 0) {                                                                        \
        const uint64_t block = g / FI_BLOCK;                                               \
        const int64_t j0 = (int64_t)(g % FI_BLOCK);                                        \
        const int64_t m = n < FI_BLOCK - j0 ? n : FI_BLOCK - j0;                           \
        const int64_t per_step = (int64_t)FI_LANES * (PER_OUTPUT);                         \
        fi_block_advance(c, pr->sigma, block, (j0 + m + per_step - 1) / per_step);         \
        MAP(c->raw, j0, m, pr, vals);                                                      \
        fi_emit(pl, flat, vals, m);                                                        \
        flat += m; g += (uint64_t)m; n -= m;                                               \
    }                                                                                      \
}

FI_DEFINE_UNIFORM_PIECE(fi_uniform_f32_body, float, fi_uniform_f32_map, 2)
FI_DEFINE_UNIFORM_PIECE(fi_uniform_f64_body, double, fi_uniform_f64_map, 1)

/* Constant fill of one piece: the value is written into a small buffer once and
 * emitted repeatedly, so it shares the store paths of the random fills. */
#define FI_DEFINE_CONSTANT_PIECE(NAME, CTYPE)                                              \
FI_INLINE void NAME(fi_cursor *c, const fi_plan *pl, const fi_params *pr, int64_t p)      \
{                                                                                          \
    (void)c;                                                                               \
    CTYPE vals[FI_BLOCK] FI_ALIGN64;                                                       \
    const CTYPE v = (CTYPE)pr->value;                                                      \
    int64_t flat, n;                                                                       \
    uint64_t g;                                                                            \
    fi_piece_start(pl, p, &flat, &g, &n);                                                  \
    const int64_t fill = n < FI_BLOCK ? n : FI_BLOCK;                                      \
    for (int64_t k = 0; k < fill; k++) vals[k] = v;                                        \
    while (n > 0) {                                                                        \
        const int64_t m = n < FI_BLOCK ? n : FI_BLOCK;                                     \
        fi_emit(pl, flat, vals, m);                                                        \
        flat += m; n -= m;                                                                 \
    }                                                                                      \
}

FI_DEFINE_CONSTANT_PIECE(fi_constant_f32_body, float)
FI_DEFINE_CONSTANT_PIECE(fi_constant_f64_body, double)

/* ------------------------------------------------------------------------- */
/* Runtime dispatch                                                           */
/* ------------------------------------------------------------------------- */

typedef void (*fi_piece_fn)(fi_cursor *, const fi_plan *, const fi_params *, int64_t);

enum { FI_UNIFORM_F32, FI_UNIFORM_F64, FI_CONSTANT_F32, FI_CONSTANT_F64, FI_NKERNELS };
enum { FI_PATH_BASELINE, FI_PATH_AVX2, FI_PATH_AVX512, FI_NPATHS };
static const char *const FI_PATH_NAMES[FI_NPATHS] = {"baseline", "avx2", "avx512"};

#define FI_WRAP(BODY, SUFFIX, ATTR)                                                        \
    ATTR static void BODY##_##SUFFIX(fi_cursor *c, const fi_plan *pl,                     \
                                     const fi_params *pr, int64_t p)                       \
    { BODY(c, pl, pr, p); }

#define FI_WRAP_ALL(SUFFIX, ATTR)                                                          \
    FI_WRAP(fi_uniform_f32_body, SUFFIX, ATTR)                                             \
    FI_WRAP(fi_uniform_f64_body, SUFFIX, ATTR)                                             \
    FI_WRAP(fi_constant_f32_body, SUFFIX, ATTR)                                            \
    FI_WRAP(fi_constant_f64_body, SUFFIX, ATTR)                                            \
    static const fi_piece_fn FI_TABLE_##SUFFIX[FI_NKERNELS] = {                            \
        fi_uniform_f32_body_##SUFFIX, fi_uniform_f64_body_##SUFFIX,                        \
        fi_constant_f32_body_##SUFFIX, fi_constant_f64_body_##SUFFIX};

FI_WRAP_ALL(baseline, )
#ifdef FI_X86
FI_WRAP_ALL(avx2, __attribute__((target("avx2"))))
FI_WRAP_ALL(avx512, __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))))
#endif

/* Whether this CPU (and OS) can run a path. */
static int fi_path_supported(int path)
{
    if (path == FI_PATH_BASELINE) return 1;
#ifdef FI_X86
    __builtin_cpu_init();
    if (path == FI_PATH_AVX2) return __builtin_cpu_supports("avx2");
    if (path == FI_PATH_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
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
