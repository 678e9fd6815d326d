"""What the benchmark classes share: the parameter grid, the targets, the peers'
thread settings and the throughput measurement.

Every benchmark takes a ``contender`` parameter, so fastinit and its peers are lines
on the same dashboard graph. A combination a contender cannot run (numpy has no
float16 fills and runs on one thread; torch may lack an operation for a dtype) is
skipped by raising NotImplementedError in ``setup``, which asv shows as n/a.

Sizes are strings ("1e3" ... "2.5e8"): the dashboard reads them as categories and,
plotting one series against size, spaces them evenly, as on a log axis (numbers
would crowd 1e3..1e8 into the first pixels of a linear one).
"""

import math
import os
import statistics
import time

import numpy as np

import fastinit

SIZES = ["1e3", "1e4", "1e5", "1e6", "1e7", "1e8", "2.5e8"]
DTYPES = ["float16", "bfloat16", "float32", "float64"]
THREADS = ["1", "all"]

#: Matrices of ``size // FAN_IN`` rows and FAN_IN columns (torch's (out, in) layout)
#: for the initializers.
FAN_IN = 1000


def elements(size):
    """Elements of a size parameter: a count ("1e6") or a matrix shape ("4096x4096")."""
    if "x" in size:
        return math.prod(int(n) for n in size.split("x"))
    return int(float(size))


def thread_count(threads):
    return os.cpu_count() if threads == "all" else int(threads)


def skip(reason):
    """Skip this parameter combination (asv records it as n/a)."""
    raise NotImplementedError(reason)


def use_fastinit_threads(threads):
    fastinit.set_num_threads(None if threads == "all" else int(threads))
    wanted = thread_count(threads)
    if fastinit.get_num_threads() != wanted:
        # A forked benchmark process fills serially (see fastinit.get_num_threads):
        # measuring it as "all" would be a lie. asv.conf.json launches by spawn.
        raise RuntimeError(f"fastinit would fill on {fastinit.get_num_threads()} threads, "
                           f"not {wanted}; run asv with launch_method 'spawn'")


def import_torch(threads):
    """torch set to the benchmark's thread count; skips where torch is missing."""
    try:
        import torch
    except ImportError:
        skip("torch is not installed")
    torch.set_num_threads(thread_count(threads))
    return torch


def single_threaded(contender, threads):
    """numpy's generators and ndarray.fill run on one thread: no "all" combination."""
    if threads != "1":
        skip(f"{contender} runs on one thread")


def ones(shape, dtype):
    """A pre-touched array (its pages are mapped before the clock starts)."""
    return np.ones(shape, fastinit.empty(0, dtype).dtype)


def tensor_view(torch, array):
    """A torch tensor on ``array``'s memory (bfloat16 goes through its bits: torch
    does not read ml_dtypes' dtype)."""
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def torch_supports(torch, make, dtype):
    """Skip unless torch runs ``make(tensor)()`` on a small tensor of ``dtype`` (some
    of its operations have no float16 or bfloat16 kernel on the CPU)."""
    try:
        make(torch.ones(4, 4, dtype=getattr(torch, dtype)))()
    except (RuntimeError, NotImplementedError) as e:
        skip(f"torch: {e}")


def numpy_dtype(dtype):
    """The dtype numpy's Generator can fill in place, or a skip."""
    if dtype not in ("float32", "float64"):
        skip(f"numpy's Generator has no {dtype} output")
    return np.dtype(dtype)


def seconds(fn, number=1):
    """Seconds per call of ``number`` back-to-back calls of ``fn``."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def gbps(fn, nbytes, max_samples=7, max_seconds=2.0, min_sample=0.01):
    """Median throughput of ``fn`` in GB/s (1e9 bytes written per second).

    The first call warms up (thread pool, caches) and is not counted, unless it
    alone takes over ``max_seconds``: then start-up costs are lost in it and it is
    the one sample. Otherwise each sample times enough back-to-back calls to last
    ``min_sample`` seconds (so that a microsecond fill is not timer noise, as in
    timeit), and at least 3 samples are taken, more, up to ``max_samples``, while
    their total stays under ``max_seconds``."""
    first = seconds(fn)
    if first >= max_seconds:
        return nbytes / first / 1e9
    number = max(1, math.ceil(min_sample / max(first, 1e-9)))
    times = []
    while len(times) < max_samples and (len(times) < 3 or sum(times) * number < max_seconds):
        times.append(seconds(fn, number))
    return nbytes / statistics.median(times) / 1e9


class _Contender:
    """The two benchmarks of every class: ``time_run`` (seconds per call) and
    ``track_gbps`` (throughput) of ``self.run``, the operation that a subclass's
    ``setup`` picks for the contender, writing ``self.nbytes`` bytes. (The leading
    underscore keeps asv from collecting this base class itself.)"""

    timeout = 600

    def teardown(self, *params):
        fastinit.set_num_threads(None)

    def time_run(self, *params):
        self.run()

    def track_gbps(self, *params):
        return gbps(self.run, self.nbytes)

    track_gbps.unit = "GB/s"
