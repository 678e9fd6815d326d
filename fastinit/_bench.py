"""``python -m fastinit bench``: fastinit's fills side by side with numpy and torch.

Every contender runs on the same pre-touched memory, interleaved round by round
(so a noisy neighbour slows all of them alike), and the report gives medians as
GB/s and as ratios to the machine's write bandwidth and to numpy.
"""

import importlib.util
import os
import statistics
import time

import numpy as np

import fastinit
from fastinit import _fill
from fastinit._shapes import gpt2_small


def _median_seconds(contenders, repeat):
    """Run each contender once per round, ``repeat`` rounds; median seconds each."""
    times = {name: [] for name in contenders}
    for fn in contenders.values():   # warm-up: page tables, thread pools, caches
        fn()
    for _ in range(repeat):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _torch(threads):
    """torch, set to ``threads`` threads, or None where it is not installed."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    torch.set_num_threads(threads)
    return torch


def _print_table(title, nbytes, seconds, base, base_label, numpy_name):
    """One row per contender: GB/s, ms, and speed ratios to ``base`` and to numpy."""
    print(f"\n{title}")
    print(f"  {'contender':<34}{'GB/s':>7}{'ms':>9}{base_label:>10}{'vs numpy':>10}")
    for name, s in seconds.items():
        print(f"  {name:<34}{nbytes / s / 1e9:>7.2f}{s * 1e3:>9.2f}"
              f"{seconds[base] / s:>10.2f}{seconds[numpy_name] / s:>10.2f}")


def bench_sizes(sizes, thread_counts, repeat):
    gen = fastinit.Generator(0)
    pcg = np.random.Generator(np.random.PCG64(0))
    for size in sizes:
        a = np.ones(size, np.float32)                       # pre-touched
        for threads in thread_counts:
            fastinit.set_num_threads(threads)
            target = _fill.Target(a)
            contenders = {
                "stream-store limit (C, OpenMP)": lambda: _fill.stream_yardstick(a, threads),
                "fastinit constant fill": lambda: _fill.constant(target, 0.5),
                "fastinit uniform_ float32": lambda: gen.uniform_(a),
                "numpy ndarray.fill (1 thread)": lambda: a.fill(0.5),
                "numpy PCG64 random (1 thread)": lambda: pcg.random(out=a, dtype=np.float32),
            }
            torch = _torch(threads)
            if torch is not None:
                t = torch.from_numpy(a)
                contenders["torch uniform_ float32"] = lambda: t.uniform_()
            seconds = _median_seconds(contenders, repeat)
            _print_table(f"{size:.3g} float32 elements ({a.nbytes / 2**20:.1f} MiB), "
                         f"{threads} thread{'s' * (threads > 1)}",
                         a.nbytes, seconds, "stream-store limit (C, OpenMP)", "vs limit",
                         "numpy PCG64 random (1 thread)")
        del a
    fastinit.set_num_threads(None)


def bench_gpt2(threads, repeat):
    shapes = gpt2_small()
    arrays = [np.ones(shape, np.float32) for _, shape in shapes]
    nbytes = sum(a.nbytes for a in arrays)
    params = sum(a.size for a in arrays)
    fastinit.set_num_threads(threads)
    gen = fastinit.Generator(0)
    pcg = np.random.Generator(np.random.PCG64(0))

    def each(fn):
        return lambda: [fn(a) for a in arrays]

    contenders = {
        "numpy ndarray.fill (1 thread)": each(lambda a: a.fill(0.5)),
        "fastinit uniform_ float32": each(gen.uniform_),
        "numpy PCG64 random (1 thread)": each(lambda a: pcg.random(out=a, dtype=np.float32)),
    }
    torch = _torch(threads)
    if torch is not None:
        tensors = [torch.from_numpy(a) for a in arrays]
        contenders["torch uniform_ float32"] = lambda: [t.uniform_() for t in tensors]
    seconds = _median_seconds(contenders, repeat)
    _print_table(f"GPT-2 small: {len(arrays)} tensors, {params:,} float32 parameters "
                 f"({nbytes / 2**20:.0f} MiB), one call per tensor, {threads} threads",
                 nbytes, seconds, "numpy ndarray.fill (1 thread)", "vs fill",
                 "numpy PCG64 random (1 thread)")
    fastinit.set_num_threads(None)


def run(sizes, thread_counts, repeat):
    info = fastinit.build_info()
    print(f"fastinit {info['version']} bench: float32, medians of {repeat} interleaved rounds.")
    print("Ratios are speed relative to the column's reference (> 1: faster). 'limit' is the")
    print("machine's write bandwidth: a bare OpenMP loop of non-temporal stores.")
    print(f"machine: {info['machine']}, {os.cpu_count()} CPUs, SIMD path {info['simd_path']}, "
          f"OpenMP {'on' if info['openmp'] else 'off'}, numpy {info['numpy']}")
    bench_sizes(sizes, thread_counts, repeat)
    bench_gpt2(max(thread_counts), repeat)
