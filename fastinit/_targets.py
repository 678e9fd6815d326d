"""What users pass in (numpy arrays, CPU torch tensors) turned into fill targets.

torch is never imported here: a tensor can only exist if the user's program has
imported torch already, so ``sys.modules`` tells whether an object may be one.
"""

import sys

from fastinit import _fill

_FLOAT_NAMES = ("float32", "float64", "float16", "bfloat16")


def is_tensor(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_meta(x):
    """A tensor on the meta device: no storage, so every initializer is a no-op."""
    return is_tensor(x) and x.device.type == "meta"


def shape_of(x):
    if is_tensor(x) or hasattr(x, "shape"):
        return tuple(x.shape)
    raise TypeError(f"expected a numpy.ndarray or a torch.Tensor, got {type(x).__name__}")


def as_array(x):
    """A numpy view of ``x``'s memory (16-bit floats of a tensor as int16), and the
    kind override _fill.Target needs for it (None when the dtype says it)."""
    if not is_tensor(x):
        return x, None
    torch = sys.modules["torch"]
    if x.device.type != "cpu":
        raise TypeError(f"expected a CPU tensor, got a tensor on {x.device}")
    if x.layout != torch.strided:
        raise TypeError(f"expected a dense (strided) tensor, got layout {x.layout}")
    kinds = {torch.float32: None, torch.float64: None, torch.float16: 2, torch.bfloat16: 3}
    if x.dtype not in kinds:
        raise TypeError(f"unsupported dtype {x.dtype}; expected float16, bfloat16, float32 "
                        "or float64")
    d = x.detach()
    if kinds[x.dtype] is None:
        return d.numpy(), None
    return d.view(torch.int16).numpy(), kinds[x.dtype]


def target(x, global_shape=None, global_offset=None):
    """A validated _fill.Target for ``x`` (nothing is written yet)."""
    array, bits_as = as_array(x)
    return _fill.Target(array, global_shape, global_offset, bits_as)


def written(x):
    """Tell autograd that ``x`` was modified in place, as torch's in-place fills do
    (so stale saved tensors are detected); no history is recorded."""
    if is_tensor(x):
        sys.modules["torch"].autograd.graph.increment_version(x)
    return x
