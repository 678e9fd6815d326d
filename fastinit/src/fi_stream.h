/*
 * The block stream (docs/stream.md, section 3): blocks of 2048 elements, each drawn
 * from its own 16 interleaved xoshiro256** lanes (and 16 auxiliary lanes for the
 * rejection samplers' slow paths), seeded by splitmix64 from the call seed and the
 * block index; and the cursor, one thread's generated prefix of one block.
 */
#ifndef FI_STREAM_H
#define FI_STREAM_H

#include "fi_common.h"
#include "fi_engine.h"

#define FI_LANES 16       /* interleaved xoshiro256** states per block */
#define FI_BLOCK 2048     /* elements per block */
#define FI_VECS (FI_LANES / 4)   /* 4-lane vectors per block */

/* The lane states of one block, as FI_VECS vectors of 4 lanes per state word. */
typedef struct {
    fi_u64x4 s0[FI_VECS], s1[FI_VECS], s2[FI_VECS], s3[FI_VECS];
} fi_lanes;

/* A block's 16 lanes at the path's width: FI_NV vectors of FI_VW lanes per state
 * word; fi_lanes is the same memory at 4 lanes per vector. */
#define FI_NV (FI_LANES / FI_VW)
typedef struct {
    fi_u64xv s0[FI_NV], s1[FI_NV], s2[FI_NV], s3[FI_NV];
} fi_lanesv;
_Static_assert(sizeof(fi_lanesv) == sizeof(fi_lanes), "fi_lanesv is fi_lanes at another width");

/* splitmix64's output function (fi_mix64) on FI_VW lanes. AVX2 and SSE2 have no
 * 64-bit multiply; GCC composes it of three 32-bit ones, which on AVX2 still beats
 * the scalar function (a block's lanes seeded in 98 against 172 TSC ticks on Zen 3,
 * rdtsc included; a float32 normal block, which seeds two sets, takes about 4,200),
 * and on SSE2 does not (294 against 270). AVX-512's vpmullq is one instruction. */
FI_INLINE fi_u64xv fi_mix64v(fi_u64xv z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds the 16 lanes of a block: the main lanes (aux = 0) from splitmix64 outputs
 * 64 b .. 64 b + 63 of the call seed, the auxiliary lanes of the normal sampler's
 * slow path (aux = 1) from outputs 2^62 + 64 b onwards; word k of lane l is output
 * 4 l + k of those, the mix of sigma + (first + 4 l + k + 1) gamma (mod 2^64). */
FI_INLINE void fi_lanesv_seed(fi_lanesv *ln, uint64_t sigma, uint64_t block, int aux)
{
    const uint64_t first = (aux ? 1ULL << 62 : 0) + block * (uint64_t)(4 * FI_LANES);
#ifndef __AVX2__                  /* SSE2's composed multiplies lose to scalar ones */
    uint64_t w[4][FI_LANES] FI_ALIGN64;
    for (int l = 0; l < FI_LANES; l++)
        for (int k = 0; k < 4; k++)
            w[k][l] = fi_mix64(sigma + (first + 4 * (uint64_t)l + (uint64_t)k + 1) * FI_GAMMA);
    memcpy(ln->s0, w[0], sizeof ln->s0); memcpy(ln->s1, w[1], sizeof ln->s1);
    memcpy(ln->s2, w[2], sizeof ln->s2); memcpy(ln->s3, w[3], sizeof ln->s3);
#else
    const uint64_t g = FI_GAMMA;
    fi_u64xv lanes;                                       /* lane l = FI_VW v + i */
    for (int i = 0; i < FI_VW; i++) lanes[i] = 4 * (uint64_t)i * g;
    const fi_u64xv at = sigma + (first + 1) * g + lanes;
    for (int v = 0; v < FI_NV; v++) {
        const uint64_t vec = (uint64_t)(4 * FI_VW * v) * g;
        ln->s0[v] = fi_mix64v(at + vec);
        ln->s1[v] = fi_mix64v(at + vec + g);
        ln->s2[v] = fi_mix64v(at + vec + 2 * g);
        ln->s3[v] = fi_mix64v(at + vec + 3 * g);
    }
#endif
}

/* The same states in fi_lanes' layout (cursors' lanes, the auxiliary lanes, which the
 * slow paths step lane by lane). */
FI_INLINE void fi_lanes_seed(fi_lanes *ln, uint64_t sigma, uint64_t block, int aux)
{
    fi_lanesv wide;
    fi_lanesv_seed(&wide, sigma, block, aux);
    memcpy(ln, &wide, sizeof *ln);
}

FI_INLINE fi_u64xv fi_rotlv(fi_u64xv x, int k) { return (x << k) | (x >> (64 - k)); }

#if FI_VW == 8
/* a ^ b ^ c in one ternary-logic instruction (truth table 0x96). */
FI_INLINE fi_u64xv fi_xor3v(fi_u64xv a, fi_u64xv b, fi_u64xv c)
{
    return (fi_u64xv)_mm512_ternarylogic_epi64((__m512i)a, (__m512i)b, (__m512i)c, 0x96);
}
#endif

/* One xoshiro256** step of FI_VW lanes; the multiplications by 5 and 9 are written
 * as shifts and adds, which AVX2 has and 64-bit vector multiplies are not (on Zen 4
 * AVX-512's vpmullq was no faster than them). On AVX-512 the state update's five
 * xors are regrouped as three three-way xors of the old words (s2 ^ s0 ^ t,
 * s1 ^ s2 ^ s0, s0 ^ s3 ^ s1), one ternary-logic instruction each: a uniform float32
 * block took 0.95 to 0.96 of its time on Zen 4, whose loop is bound by the number of
 * vector instructions (C harness). The other paths keep the algorithm's order,
 * which GCC compiles to five xors anyway (their object code is unchanged). */
FI_INLINE fi_u64xv fi_stepv(fi_u64xv *s0, fi_u64xv *s1, fi_u64xv *s2, fi_u64xv *s3)
{
    fi_u64xv x = *s1 + (*s1 << 2);
    x = fi_rotlv(x, 7);
    x = x + (x << 3);
    const fi_u64xv t = *s1 << 17;
#if FI_VW == 8
    const fi_u64xv a0 = *s0, a1 = *s1, a2 = *s2, a3 = *s3;
    *s2 = fi_xor3v(a2, a0, t);
    *s1 = fi_xor3v(a1, a2, a0);
    *s0 = fi_xor3v(a0, a3, a1);
    *s3 = fi_rotlv(a3 ^ a1, 45);
#else
    *s2 ^= *s0;
    *s3 ^= *s1;
    *s1 ^= *s2;
    *s0 ^= *s3;
    *s2 ^= t;
    *s3 = fi_rotlv(*s3, 45);
#endif
    return x;
}

/* One lane's state in place: word j of lane l at fi_lane_state(ln, l)[FI_LANES j]
 * (the vectors hold lanes in order). */
_Static_assert(sizeof(fi_lanes) == 4 * FI_LANES * sizeof(uint64_t), "fi_lanes is four words per lane");
FI_INLINE uint64_t *fi_lane_state(fi_lanes *ln, int lane)
{
    return (uint64_t *)ln + lane;
}

/* The next output of one lane, out of the vector states. */
static inline uint64_t fi_lane_next(fi_lanes *ln, int lane)
{
    uint64_t *state = fi_lane_state(ln, lane);
    uint64_t s[4] = {state[0], state[FI_LANES], state[2 * FI_LANES], state[3 * FI_LANES]};
    const uint64_t x = fi_xoshiro_next(s);
    state[0] = s[0]; state[FI_LANES] = s[1]; state[2 * FI_LANES] = s[2]; state[3 * FI_LANES] = s[3];
    return x;
}

/* U(x) and U'(x) of docs/stream.md, section 6: the top 53 bits as a double. */
static inline double fi_u53(uint64_t x) { return (double)(x >> 11) * 0x1p-53; }          /* [0, 1) */
static inline double fi_u53_open(uint64_t x) { return (double)((x >> 11) + 1) * 0x1p-53; } /* (0, 1] */

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
typedef struct fi_cursor {
    uint64_t raw[FI_BLOCK] FI_ALIGN64;
    fi_lanes lanes, aux;
    uint64_t sigma;
    uint64_t block;
    int64_t steps;
    int64_t job;
    int valid;
} fi_cursor;

fi_cursor *fi_cursor_new(void);
void fi_cursor_free(fi_cursor *c);
void fi_cursor_bind(fi_cursor *c, int64_t job);

/* One step of all 16 lanes for the uniform fills: 16 raw outputs. */
FI_INLINE void fi_uniform_step(fi_lanesv *ln, fi_lanes *aux, const void *pr, void *out)
{
    (void)aux; (void)pr;
    for (int v = 0; v < FI_NV; v++) {
        const fi_u64xv x = fi_stepv(&ln->s0[v], &ln->s1[v], &ln->s2[v], &ln->s3[v]);
        memcpy((char *)out + sizeof x * v, &x, sizeof x);
    }
}

/* Make the first `steps` steps of (sigma, block) available in c->raw, each step's
 * STEP_BYTES written by STEP after the previous one's. USES_AUX: whether STEP
 * draws from the auxiliary lanes. `pr` is the fill's parameters, passed through. */
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
    fi_lanesv ln;                                  /* (the same layout at the path's width) */ \
    memcpy(&ln, &c->lanes, sizeof ln);                                                     \
    for (int64_t t = c->steps; t < steps; t++)                                             \
        STEP(&ln, &c->aux, pr, (char *)c->raw + t * (STEP_BYTES));                         \
    memcpy(&c->lanes, &ln, sizeof ln);                                                     \
    if (steps > c->steps) c->steps = steps;                                                \
}

FI_DEFINE_ADVANCE(fi_uniform_advance, fi_uniform_step, 8 * FI_LANES, 0)

#endif /* FI_STREAM_H */
