# cython: language_level=3, boundscheck=False, wraparound=False
"""The raw xoshiro256** engine: the published algorithm, bit for bit."""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint64_t

from fastinit._kernels cimport (
    FI_JUMP, FI_LONG_JUMP, fi_call_seed, fi_exp, fi_log, fi_mix64, fi_xoshiro_fill_raw,
    fi_xoshiro_jump,
)

cnp.import_array()

cdef uint64_t MASK64 = 0xFFFFFFFFFFFFFFFF
cdef uint64_t GAMMA = 0x9e3779b97f4a7c15


def splitmix64(seed, n):
    """The first ``n`` outputs of splitmix64 started from state ``seed``.

    Output ``i`` is ``mix64(seed + (i + 1) * 0x9e3779b97f4a7c15 mod 2**64)``.
    """
    cdef uint64_t x = <uint64_t>(int(seed) & MASK64)
    cdef Py_ssize_t i, count = n
    out = np.empty(count, dtype=np.uint64)
    cdef uint64_t[::1] view = out
    for i in range(count):
        x += GAMMA
        view[i] = fi_mix64(x)
    return out


def call_seed(k0, k1, counter):
    """sigma = mix64(k0 XOR mix64(k1 + (counter + 1) * gamma)): the seed of one fill call."""
    return int(fi_call_seed(<uint64_t>k0, <uint64_t>k1, <uint64_t>counter))


def det_exp(double a):
    """exp(a), a in [-7, 0], as the normal sampler's slow path computes it
    (IEEE arithmetic only, the same bits on every machine; docs/stream.md)."""
    return fi_exp(a)


def det_log(double u):
    """log(u), u in [2**-53, 1], as the normal sampler's tail computes it."""
    return fi_log(u)


cdef class Xoshiro256StarStar:
    """The xoshiro256** generator of Blackman and Vigna (2018), exactly as published.

    Parameters
    ----------
    state : sequence of four ints
        The 256-bit state as four unsigned 64-bit words ``(s0, s1, s2, s3)``,
        not all zero.

    ``from_seed(seed)`` builds the state from one integer through splitmix64, as
    the algorithm's authors recommend.

    Examples
    --------
    >>> Xoshiro256StarStar((1, 2, 3, 4)).random_raw(2)
    array([11520,     0], dtype=uint64)
    """

    cdef uint64_t s[4]

    def __init__(self, state):
        self.state = state

    @classmethod
    def from_seed(cls, seed):
        """The generator whose state is the first four splitmix64 outputs from ``seed``."""
        seed = int(seed)
        if not 0 <= seed <= MASK64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        return cls(tuple(int(w) for w in splitmix64(seed, 4)))

    @property
    def state(self):
        """The state as a tuple of four Python ints."""
        return (int(self.s[0]), int(self.s[1]), int(self.s[2]), int(self.s[3]))

    @state.setter
    def state(self, value):
        words = tuple(value)
        if len(words) != 4:
            raise ValueError(f"state must have 4 words, got {len(words)}")
        for w in words:
            if not isinstance(w, (int, np.integer)) or isinstance(w, (bool, np.bool_)):
                raise TypeError(f"state words must be integers, got {type(w).__name__}")
            if not 0 <= w <= MASK64:
                raise ValueError(f"state words must be in [0, 2**64), got {w}")
        if not any(words):
            raise ValueError("state must not be all zero")
        for i in range(4):
            self.s[i] = <uint64_t>int(words[i])

    def random_raw(self, n):
        """The next ``n`` 64-bit outputs, as a numpy uint64 array."""
        cdef Py_ssize_t count = n
        if count < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        out = np.empty(count, dtype=np.uint64)
        cdef uint64_t[::1] view = out
        if count:
            with nogil:
                fi_xoshiro_fill_raw(self.s, &view[0], count)
        return out

    def jump(self):
        """Advance by 2**128 steps in place; returns self."""
        fi_xoshiro_jump(self.s, FI_JUMP)
        return self

    def long_jump(self):
        """Advance by 2**192 steps in place; returns self."""
        fi_xoshiro_jump(self.s, FI_LONG_JUMP)
        return self

    def __reduce__(self):
        return (Xoshiro256StarStar, (self.state,))

    def __repr__(self):
        words = ", ".join(f"0x{w:016x}" for w in self.state)
        return f"Xoshiro256StarStar(({words}))"
