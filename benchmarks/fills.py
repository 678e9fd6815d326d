"""The Generator's fills next to numpy's Generator (PCG64), torch.nn.init and the
bandwidth yardstick ndarray.fill, on the same pre-touched memory, by size, dtype
and thread count."""

import numpy as np

import fastinit

from .common import (DTYPES, SIZES, THREADS, _Contender, elements, import_torch, numpy_dtype,
                     ones, single_threaded, skip, tensor_view, torch_supports,
                     use_fastinit_threads)

CONTENDERS = ["fastinit", "numpy", "torch", "ndarray.fill"]


class _Fill(_Contender):
    """``fastinit``, ``numpy`` and ``torch`` are the same fill by each library (the
    subclass's functions of that name make it; ``numpy = None`` where numpy has
    none); ``ndarray.fill`` writes one constant, the rate a plain write reaches."""

    params = (CONTENDERS, SIZES, DTYPES, THREADS)
    param_names = ["contender", "size", "dtype", "threads"]

    def setup(self, contender, size, dtype, threads):
        make = self.contender(contender, dtype, threads)     # may skip: nothing allocated yet
        self.out = ones(elements(size), dtype)
        self.nbytes = self.out.nbytes
        self.run = make(self.out)

    def contender(self, contender, dtype, threads):
        """A function of the target array that makes the timed call."""
        if contender == "fastinit":
            use_fastinit_threads(threads)
            gen = fastinit.Generator(0)
            return lambda out: self.fastinit(gen, out)
        if contender == "torch":
            torch = import_torch(threads)
            torch_supports(torch, lambda t: self.torch(torch, t), dtype)
            return lambda out: self.torch(torch, tensor_view(torch, out))
        single_threaded(contender, threads)
        if contender == "ndarray.fill":
            return lambda out: lambda: out.fill(0.5)
        if self.numpy is None:
            skip(f"numpy's Generator has no {type(self).__name__} fill")
        rng, np_dtype = np.random.Generator(np.random.PCG64(0)), numpy_dtype(dtype)
        return lambda out: self.numpy(rng, out, np_dtype)


class Uniform(_Fill):
    """U(0, 1): fastinit uniform_, numpy random, torch.nn.init.uniform_."""

    @staticmethod
    def fastinit(gen, out):
        return lambda: gen.uniform_(out)

    @staticmethod
    def numpy(rng, out, dtype):
        return lambda: rng.random(out=out, dtype=dtype)

    @staticmethod
    def torch(torch, tensor):
        return lambda: torch.nn.init.uniform_(tensor)


class Normal(_Fill):
    """N(0, 1): fastinit normal_ (Ziggurat), numpy standard_normal (Ziggurat),
    torch.nn.init.normal_ (Box-Muller)."""

    @staticmethod
    def fastinit(gen, out):
        return lambda: gen.normal_(out)

    @staticmethod
    def numpy(rng, out, dtype):
        return lambda: rng.standard_normal(out=out, dtype=dtype)

    @staticmethod
    def torch(torch, tensor):
        return lambda: torch.nn.init.normal_(tensor)


class TruncNormal(_Fill):
    """N(0, 1) truncated to [-2, 2]: fastinit trunc_normal_ (exact rejection) and
    torch.nn.init.trunc_normal_ (inverse CDF); numpy's Generator has no such fill."""

    numpy = None

    @staticmethod
    def fastinit(gen, out):
        return lambda: gen.trunc_normal_(out, 0.0, 1.0, -2.0, 2.0)

    @staticmethod
    def torch(torch, tensor):
        return lambda: torch.nn.init.trunc_normal_(tensor, 0.0, 1.0, -2.0, 2.0)


class Allocating(_Contender):
    """Fills that return a new float64 array, the only way mkl_random (Intel MKL's
    vector statistics) draws: ``mkl_random`` on SFMT19937 (its fastest engine in our
    runs; ICDF normals, its fastest method) and ``fastinit`` filling ``np.empty`` of
    the same size. Both times include the allocation and the first touch of its
    pages. mkl_random runs on one thread (it has no threaded fill) and is skipped
    where it is not installed."""

    params = (["fastinit", "mkl_random"], ["uniform", "normal"], SIZES, ["1", "all"])
    param_names = ["contender", "fill", "size", "threads"]

    def setup(self, contender, fill, size, threads):
        n = elements(size)
        if contender == "mkl_random":
            single_threaded(contender, threads)
            try:
                import mkl_random
            except ImportError:
                skip("mkl_random is not installed")
            rs = mkl_random.MKLRandomState(0, brng="SFMT19937")
            draw = (lambda: rs.random_sample(n)) if fill == "uniform" else \
                (lambda: rs.standard_normal(n, method="ICDF"))
        else:
            use_fastinit_threads(threads)
            gen = fastinit.Generator(0)
            method = gen.uniform_ if fill == "uniform" else gen.normal_

            def draw():
                return method(np.empty(n))
        self.nbytes = 8 * n

        def run():
            self.out = draw()
        self.run = run
