"""fastinit's initializers next to torch.nn.init's, on the same pre-touched weight of
``size // FAN_IN`` rows and FAN_IN columns, by size, dtype and thread count."""

import math

import fastinit

from .common import (DTYPES, FAN_IN, THREADS, _Contender, elements, import_torch, ones,
                     tensor_view, torch_supports, use_fastinit_threads)


class _Initializer(_Contender):
    """``fastinit`` calls ``fastinit.<name>(w, **kwargs)``; ``torch`` calls the
    function and arguments ``torch_call`` names in torch.nn.init (the same ones,
    unless a subclass says otherwise) on the same memory."""

    params = (["fastinit", "torch"], ["1e3", "1e5", "1e7", "2.5e8"], DTYPES, THREADS)
    param_names = ["contender", "size", "dtype", "threads"]
    kwargs = {}

    def torch_call(self, weight_shape):
        """torch.nn.init's function and arguments for a weight of that shape."""
        return self.name, self.kwargs

    def weight_shape(self, size):
        """The weight's shape for a size parameter: FAN_IN columns."""
        return (elements(size) // FAN_IN, FAN_IN)

    def setup(self, contender, size, dtype, threads):
        shape = self.weight_shape(size)
        if contender == "fastinit":
            use_fastinit_threads(threads)
            fn = getattr(fastinit, self.name)
            kwargs = dict(self.kwargs, generator=fastinit.Generator(0))
        else:
            torch = import_torch(threads)
            name, kwargs = self.torch_call(shape)
            fn = getattr(torch.nn.init, name)
            torch_supports(torch, lambda t: lambda: fn(t, **kwargs), dtype)
        w = ones(shape, dtype)
        target = w if contender == "fastinit" else tensor_view(torch, w)
        self.nbytes = w.nbytes
        self.run = lambda: fn(target, **kwargs)


class KaimingUniform(_Initializer):
    """kaiming_uniform_(a=sqrt(5)), as torch's Linear and Conv layers use it."""
    name, kwargs = "kaiming_uniform_", {"a": math.sqrt(5)}


class KaimingNormal(_Initializer):
    name = "kaiming_normal_"


class XavierUniform(_Initializer):
    name = "xavier_uniform_"


class XavierNormal(_Initializer):
    name = "xavier_normal_"


class LecunNormal(_Initializer):
    """The JAX/Keras family: lecun_normal_ (variance_scaling_ with scale 1, fan_in,
    truncated normal). torch has no such function: its peer is what a torch user
    writes for it, trunc_normal_ with JAX's std and bounds at two std."""
    name = "lecun_normal_"

    def torch_call(self, weight_shape):
        # 0.8796... is the std of a standard normal truncated to [-2, 2] (JAX's constant).
        std = math.sqrt(1.0 / weight_shape[1]) / 0.87962566103423978
        return "trunc_normal_", {"std": std, "a": -2 * std, "b": 2 * std}


class Orthogonal(_Initializer):
    """orthogonal_ on moderate sizes (both take a QR of the whole weight), and on the
    square 1000 x 1000 and 4096 x 4096 weights that the bench reports."""
    name = "orthogonal_"
    params = (["fastinit", "torch"], ["1e3", "1e4", "1e5", "1e6", "1000x1000", "4096x4096"],
              DTYPES, THREADS)

    def weight_shape(self, size):
        if "x" in size:
            return tuple(int(n) for n in size.split("x"))
        return super().weight_shape(size)
