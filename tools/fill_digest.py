"""Print one SHA-256 digest of a fixed set of fills: the same on every Python version,
platform, thread count and instruction-set path (fastinit's fills are pure functions of
(seed, call, element index); docs/stream.md). orthogonal_ is left out: its QR is the
platform LAPACK's. Run by tools/build_wheels.py against each
installed wheel; needs numpy and ml_dtypes (for bfloat16)."""

import hashlib

import ml_dtypes
import numpy as np

import fastinit


def fills():
    g = fastinit.Generator(2026)
    yield g.uniform_(np.empty((250, 400), np.float32), -1.0, 1.0)
    yield g.normal_(np.empty((333, 77), np.float64), 0.5, 2.0)
    yield fastinit.trunc_normal_(np.empty((128, 96), np.float32), 0.0, 0.02, -0.04, 0.04,
                                 generator=g)
    yield g.uniform_(np.empty(50_001, np.float16))
    yield g.normal_(np.empty(50_001, np.float16), 0.0, 0.02)
    yield g.normal_(np.empty((64, 1000), ml_dtypes.bfloat16))
    # A shard: rows 100..199 of a (1000, 300) weight, with the whole weight's values.
    yield fastinit.kaiming_uniform_(np.empty((100, 300), np.float32), a=5 ** 0.5, generator=g,
                                    global_shape=(1000, 300), global_offset=(100, 0))


def digest():
    h = hashlib.sha256()
    for a in fills():
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    print(digest())
