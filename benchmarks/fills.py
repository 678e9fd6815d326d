"""asv benchmarks: fastinit's fills by size, dtype and thread count, and the peers.

Each fill has a ``time_`` benchmark (seconds per call, lower is better, as asv's
regression detection assumes) and a ``track_`` throughput in GB/s.
"""

import os
import statistics
import time

import numpy as np

import fastinit

SIZES = [10**3, 10**5, 10**6, 10**7, 10**8]
DTYPES = ["float32", "float64"]
THREADS = ["1", "all"]


def gbps(fn, nbytes, rounds=7):
    """Median throughput of ``fn`` over ``rounds`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e9


def set_threads(threads):
    fastinit.set_num_threads(None if threads == "all" else int(threads))


class Uniform:
    params = (SIZES, DTYPES, THREADS)
    param_names = ["size", "dtype", "threads"]

    def setup(self, size, dtype, threads):
        self.out = np.ones(size, dtype)        # pre-touched
        self.gen = fastinit.Generator(0)
        set_threads(threads)

    def teardown(self, size, dtype, threads):
        fastinit.set_num_threads(None)

    def time_uniform(self, size, dtype, threads):
        self.gen.uniform_(self.out)

    def track_uniform_gbps(self, size, dtype, threads):
        return gbps(lambda: self.gen.uniform_(self.out), self.out.nbytes)

    track_uniform_gbps.unit = "GB/s"


class Normal:
    params = (SIZES, DTYPES, THREADS)
    param_names = ["size", "dtype", "threads"]

    def setup(self, size, dtype, threads):
        self.out = np.ones(size, dtype)
        self.gen = fastinit.Generator(0)
        set_threads(threads)

    def teardown(self, size, dtype, threads):
        fastinit.set_num_threads(None)

    def time_normal(self, size, dtype, threads):
        self.gen.normal_(self.out)

    def track_normal_gbps(self, size, dtype, threads):
        return gbps(lambda: self.gen.normal_(self.out), self.out.nbytes)

    track_normal_gbps.unit = "GB/s"


class Peers:
    """numpy's PCG64 and ndarray.fill (the bandwidth yardstick), on the same arrays."""

    params = (SIZES, DTYPES)
    param_names = ["size", "dtype"]

    def setup(self, size, dtype):
        self.out = np.ones(size, dtype)
        self.rng = np.random.Generator(np.random.PCG64(0))
        self.dtype = np.dtype(dtype)

    def time_numpy_pcg64_random(self, size, dtype):
        self.rng.random(out=self.out, dtype=self.dtype)

    def track_numpy_pcg64_random_gbps(self, size, dtype):
        return gbps(lambda: self.rng.random(out=self.out, dtype=self.dtype), self.out.nbytes)

    track_numpy_pcg64_random_gbps.unit = "GB/s"

    def time_ndarray_fill(self, size, dtype):
        self.out.fill(0.5)

    def track_ndarray_fill_gbps(self, size, dtype):
        return gbps(lambda: self.out.fill(0.5), self.out.nbytes)

    track_ndarray_fill_gbps.unit = "GB/s"

    def time_numpy_pcg64_standard_normal(self, size, dtype):
        self.rng.standard_normal(out=self.out, dtype=self.dtype)

    def track_numpy_pcg64_standard_normal_gbps(self, size, dtype):
        return gbps(lambda: self.rng.standard_normal(out=self.out, dtype=self.dtype),
                    self.out.nbytes)

    track_numpy_pcg64_standard_normal_gbps.unit = "GB/s"


class TorchPeers:
    """torch's own fills on the same memory (skipped where torch is not installed)."""

    params = (SIZES, DTYPES, THREADS)
    param_names = ["size", "dtype", "threads"]

    def setup(self, size, dtype, threads):
        try:
            import torch
        except ImportError:
            raise NotImplementedError("torch is not installed") from None
        torch.set_num_threads(os.cpu_count() if threads == "all" else int(threads))
        self.out = np.ones(size, dtype)
        self.tensor = torch.from_numpy(self.out)

    def time_torch_uniform(self, size, dtype, threads):
        self.tensor.uniform_()

    def track_torch_uniform_gbps(self, size, dtype, threads):
        return gbps(self.tensor.uniform_, self.out.nbytes)

    track_torch_uniform_gbps.unit = "GB/s"

    def time_torch_normal(self, size, dtype, threads):
        self.tensor.normal_()

    def track_torch_normal_gbps(self, size, dtype, threads):
        return gbps(self.tensor.normal_, self.out.nbytes)

    track_torch_normal_gbps.unit = "GB/s"


class Initializers:
    """fastinit's initializers (numpy arrays) and torch.nn.init's (tensors) on the same
    memory; torch's rows are skipped where torch is not installed."""

    params = (["kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "trunc_normal_",
               "orthogonal_"], ["float32", "float16", "bfloat16"], THREADS)
    param_names = ["initializer", "dtype", "threads"]

    def setup(self, initializer, dtype, threads):
        shape = (512, 512) if initializer == "orthogonal_" else (4096, 4096)
        self.w = fastinit.empty(shape, dtype)
        self.gen = fastinit.Generator(0)
        set_threads(threads)
        self.fn = getattr(fastinit, initializer)
        self.tensor = None
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(os.cpu_count() if threads == "all" else int(threads))
        self.tensor = torch.empty(shape, dtype=getattr(torch, dtype))
        self.torch_fn = getattr(torch.nn.init, initializer)

    def teardown(self, initializer, dtype, threads):
        fastinit.set_num_threads(None)

    def time_fastinit(self, initializer, dtype, threads):
        self.fn(self.w, generator=self.gen)

    def track_fastinit_gbps(self, initializer, dtype, threads):
        return gbps(lambda: self.fn(self.w, generator=self.gen), self.w.nbytes)

    track_fastinit_gbps.unit = "GB/s"

    def time_torch(self, initializer, dtype, threads):
        if self.tensor is None:
            raise NotImplementedError("torch is not installed")
        self.torch_fn(self.tensor)

    def track_torch_gbps(self, initializer, dtype, threads):
        if self.tensor is None:
            raise NotImplementedError("torch is not installed")
        return gbps(lambda: self.torch_fn(self.tensor), self.w.nbytes)

    track_torch_gbps.unit = "GB/s"


class GPT2Small:
    """The GPT-2 small shape set (148 tensors, 124M float32 parameters): one init_all
    plan against one uniform fill of the same total size, and, with torch, torch's
    default initialization of the model against fastinit.torch.reset_parameters."""

    params = (THREADS,)
    param_names = ["threads"]
    timeout = 300

    def setup(self, threads):
        from fastinit._shapes import gpt2_small
        self.arrays = [np.ones(shape, np.float32) for _, shape in gpt2_small()]
        self.flat = np.ones(sum(a.size for a in self.arrays), np.float32)
        self.plan = [(a, "uniform_") for a in self.arrays]
        self.gen = fastinit.Generator(0)
        set_threads(threads)
        self.model = None
        try:
            import torch
        except ImportError:
            return
        from fastinit import _bench
        torch.set_num_threads(os.cpu_count() if threads == "all" else int(threads))
        self.model = _bench._gpt2_model(torch)
        self.layers = [m for m in self.model.modules() if hasattr(m, "reset_parameters")]

    def teardown(self, threads):
        fastinit.set_num_threads(None)

    def time_init_all_uniform(self, threads):
        fastinit.init_all(self.plan, self.gen)

    def time_one_uniform_of_the_same_size(self, threads):
        self.gen.uniform_(self.flat)

    def track_init_all_vs_one_fill(self, threads):
        one = gbps(lambda: self.gen.uniform_(self.flat), self.flat.nbytes, rounds=5)
        plan = gbps(lambda: fastinit.init_all(self.plan, self.gen), self.flat.nbytes, rounds=5)
        return plan / one

    track_init_all_vs_one_fill.unit = "ratio"

    def time_fastinit_reset_parameters(self, threads):
        if self.model is None:
            raise NotImplementedError("torch is not installed")
        import fastinit.torch as ft
        ft.reset_parameters(self.model, self.gen)

    def time_torch_reset_parameters(self, threads):
        if self.model is None:
            raise NotImplementedError("torch is not installed")
        for m in self.layers:
            m.reset_parameters()


def track_machine_cpus():
    return os.cpu_count()


track_machine_cpus.unit = "CPUs"


def timeraw_import_fastinit():
    """Time to import fastinit in a fresh interpreter, numpy already imported."""
    return "import fastinit", "import numpy"
