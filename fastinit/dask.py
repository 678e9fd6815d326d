"""Lazy initialized arrays for Dask: each chunk is filled where it is computed.

``fastinit.dask.kaiming_normal((50_000, 50_000), chunks=(4096, 4096), generator=g)``
returns a ``dask.array.Array``; computing a chunk runs the in-place initializer on it
with ``global_shape`` and ``global_offset``, so it holds exactly the values an
in-memory fill of the whole array would (fans from the global shape), whatever the
chunking, the number of workers or which worker computes it. Building the array
takes one call of the generator, like the in-place function, so processes that
build the same arrays stay in step. Needs ``pip install fastinit[dask]``.
"""

import inspect
import itertools
import operator

import dask.array as da
import numpy as np
from dask.base import tokenize

from fastinit import init as _init
from fastinit._generator import Generator

__all__ = [
    "uniform", "normal", "trunc_normal", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse", "variance_scaling",
    "lecun_uniform", "lecun_normal",
]


def _fill_chunk(name, state, chunk_shape, offset, global_shape, dtype, kwargs):
    """One chunk: a generator at the frozen state, and the in-place initializer."""
    gen = Generator(0)
    gen.state = state
    out = _init.empty(chunk_shape, dtype)
    getattr(_init, name)(out, generator=gen, global_shape=global_shape,
                         global_offset=offset, **kwargs)
    return out


def _is_int(x):
    """An integer as numpy takes one for a dimension (``operator.index``; not a bool)."""
    if isinstance(x, (bool, np.bool_)):
        return False
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _shape_tuple(shape):
    """``shape`` as numpy takes one: an int or a sequence of ints (no float truncated)."""
    try:
        dims = [shape] if _is_int(shape) else list(shape)
    except TypeError:
        dims = None
    if dims is None or not all(_is_int(d) for d in dims):
        raise TypeError(f"shape must be an int or a sequence of ints, got {shape!r}")
    return tuple(operator.index(d) for d in dims)


def _lazy(name, shape, chunks, dtype, generator, kwargs):
    shape = _shape_tuple(shape)
    gen = generator if generator is not None else _init.default_generator()
    if not isinstance(gen, Generator):
        raise TypeError(f"generator must be a fastinit.Generator or None, got "
                        f"{type(gen).__name__}")
    # Validate the arguments on a stand-in of at most one element (none where the
    # array has none) before taking the call (for orthogonal_, whose stand-in would
    # factor the whole matrix, the dimensions only).
    probe = _init.empty(tuple(min(s, 1) for s in shape), dtype)
    if name == "orthogonal_":
        if len(shape) < 2:
            raise ValueError("Only tensors with 2 or more dimensions are supported")
        inspect.signature(_init.orthogonal_).bind(probe, **kwargs)
        _init._check_gain(probe, kwargs.get("gain", 1))
    else:
        getattr(_init, name)(probe, generator=Generator(0), global_shape=shape,
                             global_offset=(0,) * len(shape), **kwargs)
    chunks = da.core.normalize_chunks(chunks, shape, dtype=np.dtype(probe.dtype))
    state = gen.state
    gen.advance()
    token = tokenize(name, shape, chunks, str(probe.dtype), state, kwargs)
    key = f"fastinit-{name.rstrip('_')}-{token}"
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int).tolist() for c in chunks]
    graph = {}
    whole = None
    if name == "orthogonal_":
        # The QR needs the whole matrix: one task factors it, each chunk slices it.
        whole = f"{key}-whole"
        graph[whole] = (_fill_chunk, name, state, shape, (0,) * len(shape), shape,
                        probe.dtype, kwargs)
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        chunk_shape = tuple(chunks[d][i] for d, i in enumerate(index))
        offset = tuple(starts[d][i] for d, i in enumerate(index))
        if whole is not None:
            block = tuple(slice(o, o + n) for o, n in zip(offset, chunk_shape))
            graph[(key,) + index] = (operator.getitem, whole, block)
        else:
            graph[(key,) + index] = (_fill_chunk, name, state, chunk_shape, offset, shape,
                                     probe.dtype, kwargs)
    return da.Array(graph, key, chunks, meta=np.empty((0,) * len(shape), probe.dtype))


def _make(name):
    def build(shape, chunks="auto", dtype="float32", generator=None, **kwargs):
        return _lazy(name, shape, chunks, dtype, generator, kwargs)

    in_place = getattr(_init, name)
    build.__name__ = build.__qualname__ = name.rstrip("_")
    build.__doc__ = (f"A lazy dask array of ``shape`` and ``chunks`` filled as "
                     f"``fastinit.{name}`` fills it in memory (keyword arguments as there)."
                     f"\n\n{in_place.__doc__}")
    return build


uniform = _make("uniform_")
normal = _make("normal_")
trunc_normal = _make("trunc_normal_")
xavier_uniform = _make("xavier_uniform_")
xavier_normal = _make("xavier_normal_")
kaiming_uniform = _make("kaiming_uniform_")
kaiming_normal = _make("kaiming_normal_")
orthogonal = _make("orthogonal_")
sparse = _make("sparse_")
variance_scaling = _make("variance_scaling_")
lecun_uniform = _make("lecun_uniform_")
lecun_normal = _make("lecun_normal_")
