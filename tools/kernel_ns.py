"""In-cache nanoseconds per element of each fill kernel, on one thread, per
instruction-set path: the kernels' own speed, apart from memory bandwidth.

Each kernel fills a contiguous array that stays in the L2 cache (256 KiB of float32
by default) and a one-block array (2048 elements); the time per element is the
difference divided by the difference in elements, which takes the fixed cost of a
call (Python, checks, dispatch) out. Medians of rounds, each of which times every
kernel on every path.

    python tools/kernel_ns.py [--paths avx512vbmi,avx512,avx2,baseline] [--rounds 41]

Needs ml_dtypes for bfloat16. Run with nothing else on the machine.
"""

import argparse
import statistics
import time

import ml_dtypes
import numpy as np

import fastinit
from fastinit import _runtime

BIG, SMALL = 1 << 16, 2048


def kernels():
    g = fastinit.Generator(0)
    out = {}
    for name, dtype in (("float32", np.float32), ("float64", np.float64),
                        ("float16", np.float16), ("bfloat16", ml_dtypes.bfloat16)):
        out[f"uniform {name}"] = (dtype, g.uniform_)
        out[f"normal {name}"] = (dtype, g.normal_)
    out["trunc_normal float32 (std 0.02)"] = (
        np.float32, lambda a: fastinit.trunc_normal_(a, 0.0, 0.02, generator=g))
    out["trunc_normal float32 (a, b = -2s, 2s)"] = (
        np.float32, lambda a: fastinit.trunc_normal_(a, 0.0, 0.02, -0.04, 0.04, generator=g))
    return out


def seconds(fill, a, reps):
    fill(a)                                      # warm: a and the kernel's code in cache
    t0 = time.perf_counter()
    for _ in range(reps):
        fill(a)
    return (time.perf_counter() - t0) / reps


def measure(paths, rounds):
    """Each round times every kernel on every path, so that a host whose clock moves
    between rounds moves every cell of a round together: the rows are comparable
    with each other as well as the columns."""
    fastinit.set_num_threads(1)
    fills = kernels()
    arrays = {name: (np.empty(BIG, dtype), np.empty(SMALL, dtype))
              for name, (dtype, _) in fills.items()}
    samples = {name: {p: [] for p in paths} for name in fills}
    for _ in range(rounds):
        for p in paths:
            _runtime.set_simd_path(p)
            for name, (_, fill) in fills.items():
                big, small = arrays[name]
                t_big, t_small = seconds(fill, big, 20), seconds(fill, small, 20)
                samples[name][p].append((t_big - t_small) / (BIG - SMALL) * 1e9)
    return {name: {p: statistics.median(s) for p, s in row.items()}
            for name, row in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(_runtime.simd_paths()))
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    table = measure(paths, args.rounds)
    print(f"in-cache ns per element, 1 thread ({BIG} elements minus {SMALL})")
    print(f"  {'kernel':<40}" + "".join(f"{p:>12}" for p in paths))
    for name, row in table.items():
        print(f"  {name:<40}" + "".join(f"{row[p]:>12.3f}" for p in paths))


if __name__ == "__main__":
    main()
