"""In-cache nanoseconds per element of each fill kernel, on one thread, per
instruction-set path: the kernels' own speed, apart from memory bandwidth.

Each kernel fills a contiguous array that stays in the L2 cache (256 KiB of float32
by default) and a one-block array (2048 elements); the time per element is the
difference divided by the difference in elements, which takes the fixed cost of a
call (Python, checks, dispatch) out. Medians of interleaved rounds.

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
    t0 = time.perf_counter()
    for _ in range(reps):
        fill(a)
    return (time.perf_counter() - t0) / reps


def measure(paths, rounds):
    fastinit.set_num_threads(1)
    table = {}
    for name, (dtype, fill) in kernels().items():
        big, small = np.empty(BIG, dtype), np.empty(SMALL, dtype)
        samples = {p: [] for p in paths}
        for _ in range(rounds):
            for p in paths:                          # interleaved
                _runtime.set_simd_path(p)
                t_big, t_small = seconds(fill, big, 20), seconds(fill, small, 20)
                samples[p].append((t_big - t_small) / (BIG - SMALL) * 1e9)
        table[name] = {p: statistics.median(s) for p, s in samples.items()}
    return table


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
