"""A pure-Python implementation of docs/stream.md, for checking the kernels.

Slow and simple on purpose: every line corresponds to a sentence of the spec.
"""

import math

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
    block_fn = uniform_block_f32 if np.dtype(dtype) == np.float32 else uniform_block_f64
    return _fill_blocks(sigma, shape, dtype, global_shape, global_offset,
                        lambda b, need: block_fn(sigma, b, low, high, need))


# --------------------------------------------------------------------------------------
# Normal (section 6)
# --------------------------------------------------------------------------------------

import struct  # noqa: E402

from fastinit._ziggurat_tables import R as _R_DECIMAL  # noqa: E402
from fastinit._ziggurat_tables import tables as _zig_tables  # noqa: E402

ZIG = _zig_tables()
ZIG_R = float(_R_DECIMAL)
ZIG_INV_R = 1 / ZIG_R
L_HI = float.fromhex("0x1.62e42fee00000p-1")
L_LO = float.fromhex("0x1.a39ef35793c76p-33")
LOG2E = float.fromhex("0x1.71547652b82fep+0")
SQRT2 = float.fromhex("0x1.6a09e667f3bcdp+0")
EXP_COEF = [1.0 / f for f in (1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800,
                              39916800, 479001600, 6227020800)]
LOG_COEF = [2.0 / (2 * k + 1) for k in range(12)]


def exp_d(a):
    n = float(int(a * LOG2E + 0.5))
    if n > a * LOG2E + 0.5:
        n -= 1.0
    t = (a - n * L_HI) - n * L_LO
    p = EXP_COEF[13]
    for k in range(12, -1, -1):
        p = p * t + EXP_COEF[k]
    return p * 2.0 ** int(n)


def log_d(u):
    bits = struct.unpack("<Q", struct.pack("<d", u))[0]
    e = (bits >> 52) - 1023
    m = struct.unpack("<d", struct.pack("<Q", (bits & (2**52 - 1)) | (1023 << 52)))[0]
    if m > SQRT2:
        m *= 0.5
        e += 1
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = LOG_COEF[11]
    for k in range(10, -1, -1):
        p = p * z + LOG_COEF[k]
    return e * L_HI + (e * L_LO + s * p)


def u53(x):
    return float(x >> 11) * 2.0**-53


def u53_open(x):
    return float((x >> 11) + 1) * 2.0**-53


class Lane:
    """One lane's auxiliary stream (the slow path's source)."""

    def __init__(self, sigma, block, lane):
        words = splitmix64((sigma + (2**62 + 64 * block + 4 * lane) * GAMMA) & MASK, 4)
        self.s = list(words)

    def next(self):
        return xoshiro_next(self.s)


def tail(aux):
    while True:
        xx = -log_d(u53_open(aux.next())) * ZIG_INV_R
        yy = -log_d(u53_open(aux.next()))
        if yy + yy > xx * xx:
            return ZIG_R + xx


def wedge(aux, i, x):
    u = u53(aux.next())
    return ZIG["F"][i] + u * (ZIG["F"][i - 1] - ZIG["F"][i]) < exp_d(-0.5 * x * x)


def zig64(X, aux):
    while True:
        i, negative, m = X & 255, X >> 8 & 1, X >> 12
        x = float(m) * ZIG["W64"][i]
        if m < ZIG["K64"][i]:
            return -x if negative else x
        if i == 0:
            t = tail(aux)
            return -t if negative else t
        if wedge(aux, i, x):
            return -x if negative else x
        X = aux.next()


def zig32(w, aux):
    while True:
        i, negative, m = w & 255, w >> 8 & 1, w >> 9
        x = np.float32(m) * np.float32(ZIG["W32"][i])
        if m < ZIG["K32"][i]:
            return -x if negative else x
        if i == 0:
            t = np.float32(tail(aux))
            return -t if negative else t
        if wedge(aux, i, float(x)):
            return -x if negative else x
        w = aux.next() & 0xFFFFFFFF


def normal_block_z(sigma, block, dtype, count=BLOCK):
    """The first ``count`` standard-normal values z of a block."""
    aux = [Lane(sigma, block, l) for l in range(LANES)]
    z = []
    if np.dtype(dtype) == np.float64:
        for m, X in enumerate(block_raw(sigma, block, count)):
            z.append(zig64(X, aux[m % LANES]))
        return np.array(z, np.float64)
    for m, X in enumerate(block_raw(sigma, block, -(-count // 2))):
        lane = aux[m % LANES]
        z.append(zig32(X & 0xFFFFFFFF, lane))
        z.append(zig32(X >> 32, lane))
    return np.array(z[:count], np.float32)


def normal_block(sigma, block, dtype, mean, std, count=BLOCK):
    z = normal_block_z(sigma, block, dtype, count)
    if np.dtype(dtype) == np.float32:
        return (np.float32(mean) + (np.float32(std) * z).astype(np.float32)).astype(np.float32)
    return np.float64(mean) + np.float64(std) * z


def normal_fill(key, counter, shape, dtype, mean=0.0, std=1.0,
                global_shape=None, global_offset=None):
    """What ``Generator.normal_`` writes into an array of ``shape`` and ``dtype``."""
    sigma = call_seed(key[0], key[1], counter)
    return _fill_blocks(sigma, shape, dtype, global_shape, global_offset,
                        lambda b, need: normal_block(sigma, b, dtype, mean, std, need))


def _fill_blocks(sigma, shape, dtype, global_shape, global_offset, block_values):
    idx = global_indices(tuple(shape), global_shape, global_offset)
    out = np.empty(idx.shape, dtype=dtype)
    flat_idx, flat_out = idx.reshape(-1), out.reshape(-1)
    for b in np.unique(flat_idx // BLOCK):
        sel = flat_idx // BLOCK == b
        need = int(flat_idx[sel].max() % BLOCK) + 1
        flat_out[sel] = block_values(int(b), need)[flat_idx[sel] % BLOCK]
    return out


# --------------------------------------------------------------------------------------
# float16 / bfloat16 and the truncated normal (section 7)
# --------------------------------------------------------------------------------------

def _bf16():
    import ml_dtypes
    return ml_dtypes.bfloat16


def to_16(values_f32, dtype):
    """float32 values rounded to nearest even in a 16-bit dtype."""
    return np.asarray(values_f32, np.float32).astype(dtype)


def below_16(x, dtype):
    """The largest value of the 16-bit dtype below x (a value of that dtype)."""
    bits = np.asarray([x], dtype).view(np.uint16).astype(np.int64)[0]
    if x == 0:
        bits = 0x8001
    elif x > 0:
        bits -= 1
    else:
        bits += 1
    return float(np.asarray([bits], np.uint16).view(dtype)[0])


def uniform_fill_16(key, counter, shape, dtype, low, high, **shard):
    sigma = call_seed(key[0], key[1], counter)
    lo, hi = np.float32(low), np.float32(high)
    lo_k, hi_k = float(to_16(lo, dtype)), float(to_16(hi, dtype))
    cap = np.nextafter(hi, np.float32(-np.inf)) if lo < hi else hi
    if lo_k < hi_k:
        cap = min(cap, np.float32(below_16(hi_k, dtype)))

    def block(b, need):
        raw = block_raw(sigma, b, -(-need // 2))
        h = np.array([w for x in raw for w in (x & 0xFFFFFFFF, x >> 32)][:need], np.uint64)
        u = (h >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)
        v = (lo + (np.float32(hi - lo) * u).astype(np.float32)).astype(np.float32)
        return to_16(np.where(v < cap, v, cap), dtype)

    return _fill_blocks(sigma, shape, dtype, shard.get("global_shape"),
                        shard.get("global_offset"), block)


def normal_fill_16(key, counter, shape, dtype, mean, std, **shard):
    sigma = call_seed(key[0], key[1], counter)
    return _fill_blocks(sigma, shape, dtype, shard.get("global_shape"),
                        shard.get("global_offset"),
                        lambda b, need: to_16(normal_block(sigma, b, np.float32, mean, std,
                                                           need), dtype))


def _phi(x):
    import math
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def trunc_mode(alpha, beta):
    import math
    if _phi(beta) - _phi(alpha) > 0.3:
        return 0, 0.0
    if alpha >= 0 or beta <= 0:
        lo, hi = (alpha, beta) if alpha >= 0 else (-beta, -alpha)
        if lo * lo == math.inf:                 # the far tail: rate lo, always accepted
            return 2, lo
        root = math.sqrt(lo * lo + 4.0)
        if hi - lo > 2.0 * math.sqrt(math.e) / (lo + root) * math.exp((lo * lo - lo * root) / 4.0):
            return 2, (lo + root) / 2.0
    return 1, 0.0


def trunc_z(X, aux, alpha, beta, mode, rate):
    if mode == 0:
        z = zig64(X, aux)
        while not alpha <= z <= beta:
            z = zig64(aux.next(), aux)
        return z
    if mode == 1:
        m = alpha if alpha > 0 else (beta if beta < 0 else 0.0)
        c = 0.5 * m * m
        x = alpha + (beta - alpha) * u53(X)
        while True:
            x = min(x, beta)
            if u53(aux.next()) < exp_d(c - 0.5 * x * x):
                return x
            x = alpha + (beta - alpha) * u53(aux.next())
    mirror = alpha < 0
    lo, hi = (-beta, -alpha) if mirror else (alpha, beta)
    first = X
    while True:
        x = lo - log_d(u53_open(first)) / rate
        d = x - rate
        if x <= hi and u53(aux.next()) < exp_d(-0.5 * d * d):
            return -x if mirror else x
        first = aux.next()


def _clip(v, lo, hi):
    """Section 7's clip: v < lo gives lo, v > hi gives hi, any other v is kept."""
    v = np.where(v < lo, lo, v)
    return np.where(v > hi, hi, v).astype(v.dtype)


def _inward(a, b, dtype):
    """The smallest and largest values of dtype inside [a, b] (bounds rounded through
    float32 for the narrower dtypes, then stepped inward if rounding left [a, b])."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return a, b
    if dtype == np.float32:
        lo, hi = np.float32(a), np.float32(b)
        lo = np.nextafter(lo, np.float32(np.inf)) if lo < a else lo
        hi = np.nextafter(hi, np.float32(-np.inf)) if hi > b else hi
        return float(lo), float(hi)
    lo, hi = float(to_16(np.float32(a), dtype)), float(to_16(np.float32(b), dtype))
    lo = -below_16(-lo, dtype) if lo < a else lo
    hi = below_16(hi, dtype) if hi > b else hi
    return lo, hi


def constant_fill(shape, dtype, x):
    """Section 7, Constants: the binary64 number x written in the target's format (16-bit
    formats through binary32; NaN as torch writes it)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return np.full(shape, x, np.float64)
    with np.errstate(over="ignore"):
        f = np.float32(x)
    if dtype == np.float32:
        return np.full(shape, f, np.float32)
    if f != f:
        sign = int(np.array(f).view(np.uint32)) >> 16 & 0x8000
        bits = 0x7FC0 if dtype.name == "bfloat16" else sign | 0x7E00
        return np.full(shape, bits, np.uint16).view(dtype)
    return np.full(shape, to_16(f, dtype), dtype)


def trunc_normal_fill(key, counter, shape, dtype, mean, std, a, b, **shard):
    sigma = call_seed(key[0], key[1], counter)
    lo, hi = _inward(a, b, dtype)
    alpha = beta = None
    if std > 0:
        alpha, beta = (a - mean) / std, (b - mean) / std
    if std == 0 or a == b or (alpha == beta and math.isinf(alpha)):
        return constant_fill(shape, dtype, min(max(mean, lo), hi))     # the constant cases
    mode, rate = trunc_mode(alpha, beta)

    def block(blk, need):
        aux = [Lane(sigma, blk, l) for l in range(LANES)]
        raw = block_raw(sigma, blk, need)
        z = [trunc_z(X, aux[j % LANES], alpha, beta, mode, rate) for j, X in enumerate(raw)]
        v = mean + std * np.array(z)
        if np.dtype(dtype) == np.float64:
            return _clip(v, lo, hi)
        v = _clip(v.astype(np.float32), np.float32(lo), np.float32(hi))
        return v if np.dtype(dtype) == np.float32 else to_16(v, dtype)

    return _fill_blocks(sigma, shape, dtype, shard.get("global_shape"),
                        shard.get("global_offset"), block)


# --------------------------------------------------------------------------------------
# sparse_, eye_ and dirac_ (section 7)
# --------------------------------------------------------------------------------------

SPARSE_WORD = 0x5851F42D4C957F2D


def sparse_fill(key, counter, shape, dtype, sparsity, std):
    """normal_(0, std) of the call; in each column the ceil(fl64(sparsity * rows)) rows
    with the smallest keys of the uniform float64 fill of the second stream set to +0."""
    rows, cols = shape
    if np.dtype(dtype) in (np.float32, np.float64):
        values = normal_fill(key, counter, shape, dtype, 0.0, std)
    else:
        values = normal_fill_16(key, counter, shape, dtype, 0.0, std)
    zeros = math.ceil(sparsity * rows)
    keys = uniform_fill((key[0], key[1] ^ SPARSE_WORD), counter, shape, np.float64)
    for col in range(cols):
        order = sorted(range(rows), key=lambda r: (keys[r, col], r))
        for r in order[:zeros]:
            values[r, col] = 0
    return values


def eye_fill(shape, dtype):
    rows, cols = shape
    return np.array([[1.0 if r == c else 0.0 for c in range(cols)] for r in range(rows)],
                    dtype)


def dirac_fill(shape, dtype, groups=1):
    out = np.zeros(shape, dtype)
    per_group = shape[0] // groups
    centre = tuple(size // 2 for size in shape[2:])
    for g in range(groups):
        for d in range(min(per_group, shape[1])):
            out[(g * per_group + d, d) + centre] = 1
    return out

