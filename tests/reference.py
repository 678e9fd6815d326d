"""A pure-Python implementation of docs/stream.md, for checking the kernels.

Slow and simple on purpose: every line corresponds to a sentence of the spec.
"""

import numpy as np

MASK = (1 << 64) - 1
GAMMA = 0x9e3779b97f4a7c15
BLOCK = 2048
LANES = 16


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def splitmix64(x, n):
    return [mix64((x + (i + 1) * GAMMA) & MASK) for i in range(n)]


def xoshiro_next(s):
    result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
    t = (s[1] << 17) & MASK
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45)
    return result


JUMP = (0x180EC6D33CFD0ABA, 0xD5A61266F0C9392C, 0xA9582618E03FC9AA, 0x39ABDC4529B1661C)
LONG_JUMP = (0x76E15D3EFEFDCBBF, 0xC5004E441C522FB3, 0x77710069854EE241, 0x39109BB02ACBE635)


def xoshiro_jump(s, poly):
    acc = [0, 0, 0, 0]
    for word in poly:
        for b in range(64):
            if word >> b & 1:
                acc = [a ^ x for a, x in zip(acc, s)]
            xoshiro_next(s)
    s[:] = acc


def call_seed(k0, k1, counter):
    return mix64(k0 ^ mix64((k1 + (counter + 1) * GAMMA) & MASK))


def block_raw(sigma, block, count):
    """The first ``count`` raw outputs of a block (section 3)."""
    words = splitmix64((sigma + 64 * block * GAMMA) & MASK, 64)
    lanes = [words[4 * l:4 * l + 4] for l in range(LANES)]
    steps = -(-count // LANES)
    raw = []
    for _ in range(steps):
        for s in lanes:
            raw.append(xoshiro_next(s))
    return raw[:count]


def uniform_block_f64(sigma, block, low, high, count=BLOCK):
    raw = np.array(block_raw(sigma, block, count), dtype=np.uint64)
    u = (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53
    r = np.float64(high) - np.float64(low)
    v = np.float64(low) + r * u
    cap = np.nextafter(np.float64(high), -np.inf) if low < high else np.float64(high)
    return np.where(v < cap, v, cap)


def uniform_block_f32(sigma, block, low, high, count=BLOCK):
    raw = block_raw(sigma, block, -(-count // 2))
    halves = []
    for x in raw:
        halves += [x & 0xFFFFFFFF, x >> 32]
    h = np.array(halves[:count], dtype=np.uint64)
    u = (h >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)
    lo, hi = np.float32(low), np.float32(high)
    r = np.float32(hi - lo)
    v = (lo + (r * u).astype(np.float32)).astype(np.float32)
    cap = np.nextafter(hi, np.float32(-np.inf)) if lo < hi else hi
    return np.where(v < cap, v, cap).astype(np.float32)


def global_indices(shape, global_shape=None, global_offset=None):
    """Global index of every local element, as an int array of ``shape`` (section 6)."""
    if global_shape is None:
        global_shape, global_offset = shape, (0,) * len(shape)
    grids = np.indices(shape, dtype=np.int64)
    idx = np.zeros(shape, dtype=np.int64)
    step = 1
    for k in range(len(shape) - 1, -1, -1):
        idx += (grids[k] + global_offset[k]) * step
        step *= global_shape[k]
    return idx


def uniform_fill(key, counter, shape, dtype, low=0.0, high=1.0,
                 global_shape=None, global_offset=None):
    """What ``Generator.uniform_`` writes into an array of ``shape`` and ``dtype``."""
    sigma = call_seed(key[0], key[1], counter)
    idx = global_indices(tuple(shape), global_shape, global_offset)
    block_fn = uniform_block_f32 if np.dtype(dtype) == np.float32 else uniform_block_f64
    out = np.empty(idx.shape, dtype=dtype)
    flat_idx, flat_out = idx.reshape(-1), out.reshape(-1)
    for b in np.unique(flat_idx // BLOCK):
        sel = flat_idx // BLOCK == b
        need = int(flat_idx[sel].max() % BLOCK) + 1
        values = block_fn(sigma, int(b), low, high, need)
        flat_out[sel] = values[flat_idx[sel] % BLOCK]
    return out
