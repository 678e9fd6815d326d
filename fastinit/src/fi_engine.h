/*
 * The engine: xoshiro256** (Blackman and Vigna, 2018) exactly as published, its
 * jump polynomials, the splitmix64 output function, and the call seed of one fill
 * (docs/stream.md, sections 1 and 2). Header-only: every function is small.
 */
#ifndef FI_ENGINE_H
#define FI_ENGINE_H

#include <stdint.h>
#include <string.h>

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

static inline void fi_xoshiro_fill_raw(uint64_t *s, uint64_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = fi_xoshiro_next(s);
}

/* Jump polynomials published with xoshiro256**: 2^128 and 2^192 steps. */
static const uint64_t FI_JUMP[4] = {
    0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL, 0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
static const uint64_t FI_LONG_JUMP[4] = {
    0x76e15d3efefdcbbfULL, 0xc5004e441c522fb3ULL, 0x77710069854ee241ULL, 0x39109bb02acbe635ULL};

static inline void fi_xoshiro_jump(uint64_t *s, const uint64_t *poly)
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

/* sigma: the 64-bit seed of one fill call, from the generator key and call counter. */
static inline uint64_t fi_call_seed(uint64_t k0, uint64_t k1, uint64_t counter)
{
    return fi_mix64(k0 ^ fi_mix64(k1 + (counter + 1) * FI_GAMMA));
}

#endif /* FI_ENGINE_H */
