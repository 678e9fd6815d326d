"""Initializers with torch.nn.init's names, signatures, formulas and errors.

Every function fills a numpy array (float16, bfloat16 with ml_dtypes, float32,
float64) or a CPU torch tensor (the same dtypes, parameters included) in place
and returns it. Sampling functions take ``generator`` (a fastinit.Generator; None
means the default one) and advance it by exactly one call, whatever the size
(even for an empty or meta tensor), so processes that make the same calls stay
in step. With ``global_shape`` and ``global_offset`` the target is that block of
a larger tensor: it receives exactly the values of the whole tensor's fill, and
fans are computed from the global shape.

Beyond torch: ``variance_scaling_``, ``lecun_uniform_`` and ``lecun_normal_`` (the
JAX/Keras family, with an explicit fan layout), ``empty`` to allocate an array to
fill without a separate zeroing pass, and ``init_all`` to run a whole model's
initializers as one parallel pass.
"""

import inspect
import itertools
import math
import sys
import warnings

import numpy as np

from fastinit import _dtypes, _executor, _requests, _runtime, _targets
from fastinit._generator import Generator, default_generator
from fastinit._generator import rewind as _rewind

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
    "zeros_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
    "kaiming_normal_", "orthogonal_", "sparse_", "variance_scaling_", "lecun_uniform_",
    "lecun_normal_", "empty", "init_all",
]

# A second, independent stream of one call (sparse_'s zero pattern): the key with
# this word XORed into its second half (docs/stream.md, section 7).
_SUBSTREAM_1 = 0x5851F42D4C957F2D


def _generator(generator):
    if generator is None:
        return default_generator()
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a fastinit.Generator or None, got "
                        f"{type(generator).__module__}.{type(generator).__name__}")
    return generator


# The nonlinearities of gain 1: the linear ones and sigmoid.
_GAIN_ONE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
             "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    r"""The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain.

    ================= ====================================================
    nonlinearity      gain
    ================= ====================================================
    Linear / Identity :math:`1`
    Conv{1,2,3}D      :math:`1`
    Sigmoid           :math:`1`
    Tanh              :math:`\frac{5}{3}`
    ReLU              :math:`\sqrt{2}`
    Leaky Relu        :math:`\sqrt{\frac{2}{1 + \text{negative\_slope}^2}}`
    SELU              :math:`\frac{3}{4}`
    ================= ====================================================

    ``param`` is leaky_relu's negative slope (default 0.01); an int or float, not a bool.
    """
    if nonlinearity in _GAIN_ONE:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fans(shape):
    """(fan_in, fan_out) of a weight of torch's layout (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field = 1
    for s in shape[2:]:
        receptive_field *= s
    return shape[1] * receptive_field, shape[0] * receptive_field


def _correct_fan(shape, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def _global_shape(tensor, global_shape):
    return tuple(global_shape) if global_shape is not None else _targets.shape_of(tensor)


# --------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------

def uniform_(tensor, a=0.0, b=1.0, generator=None, *, global_shape=None, global_offset=None):
    r"""Fill with values from :math:`\mathcal{U}(a, b)`: in [a, b) in the tensor's dtype."""
    return _generator(generator).uniform_(tensor, a, b, global_shape=global_shape,
                                          global_offset=global_offset)


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, global_shape=None,
            global_offset=None):
    r"""Fill with values from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    return _generator(generator).normal_(tensor, mean, std, global_shape=global_shape,
                                         global_offset=global_offset)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *,
                  global_shape=None, global_offset=None):
    r"""Fill with values from :math:`\mathcal{N}(\text{mean}, \text{std}^2)` conditioned
    on :math:`a \le x \le b` (``a`` and ``b`` absolute, as in torch).

    Exact rejection sampling, correct for small std and narrow intervals in every
    dtype; values never leave [a, b]. Warns, as torch does, when the mean is more
    than 2 std outside [a, b] (torch's values may then be wrong; these are not).
    """
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    return _generator(generator).trunc_normal_(tensor, mean, std, a, b,
                                               global_shape=global_shape,
                                               global_offset=global_offset)


def constant_(tensor, val):
    """Fill with ``val`` (rounded to the tensor's dtype).

    As torch: a finite ``val`` beyond the dtype's largest finite value raises
    RuntimeError ("value cannot be converted to type ... without overflow");
    infinities and NaN are written as they are.
    """
    target = _targets.target(tensor)
    _executor.submit(target, *_requests.constant_request(target, val))
    return _targets.written(tensor)


def ones_(tensor):
    """Fill with 1."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Fill with 0."""
    return constant_(tensor, 0.0)


def _write_values(tensor, values):
    """Write a float64 numpy array of the tensor's shape into it (rounded to its dtype)."""
    array, bits_as = _targets.as_array(tensor)
    array[...] = values if bits_as is None else _dtypes.to_16bit(values, bits_as)


def _submit_values(tensor, target, values, written=None):
    """Write ``values`` (computed in Python) into the validated ``target`` of
    ``tensor`` (not a meta tensor): now, or in order with an ``init_all`` plan.
    ``written`` (default ``tensor``) is what the caller passed: it is marked written
    and returned (a DTensor whose local tensor ``tensor`` is)."""
    _executor.submit_write(target, lambda: _write_values(tensor, values))
    _targets.written(tensor)
    return _targets.written(written) if written is not None else tensor


def _submit_block(tensor, values):
    """Write ``values``, computed for ``tensor``'s whole (global) shape, into it: for a
    DTensor, this rank's block of them into its local tensor."""
    local, global_shape, global_offset = _targets.global_view(tensor)
    target = _targets.target(local, global_shape, global_offset)
    _dtypes.float_kind(target.kind)
    if _targets.is_meta(local):
        return tensor
    if global_shape is not None:
        values = values[tuple(slice(o, o + n) for o, n in zip(global_offset, local.shape))]
    return _submit_values(local, target, values, written=tensor)


def eye_(tensor):
    """Fill the 2-D tensor with the identity matrix (ones where row == column)."""
    shape = _targets.shape_of(tensor)
    if len(shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _submit_block(tensor, np.eye(*shape))


def dirac_(tensor, groups=1):
    """Fill the {3, 4, 5}-D tensor with the Dirac delta: each group of output
    channels preserves the identity of as many input channels as it can."""
    shape = _targets.shape_of(tensor)
    if len(shape) not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    _targets.target(tensor)                       # the target's checks before the values
    out_per_group = shape[0] // groups
    values = np.zeros(shape)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, shape[1])):
            values[(g * out_per_group + d, d) + centre] = 1
    return _submit_block(tensor, values)


# --------------------------------------------------------------------------------------
# Fan-based initializers
# --------------------------------------------------------------------------------------

def xavier_uniform_(tensor, gain=1.0, generator=None, *, global_shape=None,
                    global_offset=None):
    r"""Glorot and Bengio (2010): :math:`\mathcal{U}(-a, a)` with
    :math:`a = \text{gain} \times \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}`.

    As torch computes it: std = gain * sqrt(2 / (fan_in + fan_out)), a = sqrt(3) * std.
    """
    fan_in, fan_out = _fans(_global_shape(tensor, global_shape))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator, global_shape=global_shape,
                    global_offset=global_offset)


def xavier_normal_(tensor, gain=1.0, generator=None, *, global_shape=None,
                   global_offset=None):
    r"""Glorot and Bengio (2010): :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \text{gain} \times \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}`."""
    fan_in, fan_out = _fans(_global_shape(tensor, global_shape))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator, global_shape=global_shape,
                   global_offset=global_offset)


def _kaiming_std(tensor, a, mode, nonlinearity, generator, global_shape, global_offset):
    """std = gain / sqrt(fan_mode), or None for a zero-element tensor (a warned no-op
    that still takes one call of the generator).

    A bad target raises before a bad mode, nonlinearity or generator does; a good one
    is checked once, by the fill (on an 8 x 8 tensor a second check was a sixth of
    the call)."""
    try:
        shape = _global_shape(tensor, global_shape)
        if 0 not in shape:
            fan = _correct_fan(shape, mode)
            std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
            _generator(generator)
            return std
    except Exception:
        _targets.target(tensor, global_shape, global_offset)     # its error, if it has one
        raise
    _targets.target(tensor, global_shape, global_offset)
    warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
    _generator(generator).advance()
    return None


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None,
                     *, global_shape=None, global_offset=None):
    r"""He et al. (2015): :math:`\mathcal{U}(-\text{bound}, \text{bound})` with
    :math:`\text{bound} = \text{gain} \times \sqrt{\frac{3}{\text{fan\_mode}}}`.

    As torch computes it: std = gain / sqrt(fan_mode), bound = sqrt(3) * std; ``a`` is
    leaky_relu's negative slope, ``mode`` "fan_in" (default) or "fan_out".
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, generator, global_shape, global_offset)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator, global_shape=global_shape,
                    global_offset=global_offset)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None,
                    *, global_shape=None, global_offset=None):
    r"""He et al. (2015): :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}`."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, generator, global_shape, global_offset)
    if std is None:
        return tensor
    return normal_(tensor, 0, std, generator, global_shape=global_shape,
                   global_offset=global_offset)


def orthogonal_(tensor, gain=1, generator=None, *, global_shape=None, global_offset=None):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, trailing dimensions flattened.

    Q of the QR factorization of a rows x cols standard normal matrix (drawn in
    float64, transposed when rows < cols), its columns' signs set by the signs of R's
    diagonal, times ``gain``. The QR is taken in the target's precision (float64 for
    float64, float32 for the others, as torch does) by the target's library: torch's
    ``linalg.qr`` for a tensor, numpy's for an array. A shard computes the whole matrix
    and writes its block.
    """
    passed = tensor
    tensor, global_shape, global_offset = _targets.global_view(tensor, global_shape,
                                                               global_offset)
    shape = _global_shape(tensor, global_shape)
    if len(shape) < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    gen = _generator(generator)
    target = _targets.target(tensor, global_shape, global_offset)
    _dtypes.float_kind(target.kind)
    _check_gain(tensor, gain)
    if _targets.is_meta(tensor) or math.prod(shape) == 0:
        gen.advance()
        return passed
    values = _orthogonal(tensor, target.kind == _dtypes.FLOAT64.kind, float(gain), gen, shape,
                         global_shape, global_offset)
    return _submit_values(tensor, target, values, written=passed)


def _check_gain(tensor, gain):
    """Raise, before any draw, what multiplying the target by ``gain`` in place raises
    in its library: torch's error for a complex gain on a real tensor or a gain that
    is no number, numpy's for an array."""
    if _targets.is_tensor(tensor):
        torch = sys.modules["torch"]
        torch.empty(0, dtype=tensor.dtype).mul_(gain)
    else:
        np.multiply(np.zeros(0), gain, out=np.zeros(0))


def _orthogonal(tensor, double, gain, gen, shape, global_shape, global_offset):
    """The values orthogonal_ writes into ``tensor`` (its block of the whole matrix)."""
    rows = shape[0]
    cols = math.prod(shape) // rows
    normals = gen.normal_(np.empty((rows, cols)))
    q = _sign_fixed_q(normals if rows >= cols else normals.T, double, _targets.is_tensor(tensor))
    if rows < cols:
        q = q.T
    values = (q * gain).reshape(shape)
    if global_shape is not None:
        offset = global_offset or (0,) * len(shape)
        local = _targets.shape_of(tensor)
        values = values[tuple(slice(o, o + s) for o, s in zip(offset, local))]
    return values


def _sign_fixed_q(m, double, with_torch):
    """Q of m = QR (m tall) in float64 or float32, by torch or numpy, its columns
    multiplied by the signs of R's diagonal; as a numpy array."""
    if with_torch:
        torch = sys.modules["torch"]
        work = torch.empty(m.shape[::-1], dtype=torch.float64 if double else torch.float32).T
        work.copy_(torch.from_numpy(m))             # column-major, as LAPACK takes it
        q, r = torch.linalg.qr(work)
        q *= torch.sign(torch.diagonal(r))
        return q.numpy()
    q, r = np.linalg.qr(m if double else m.astype(np.float32))
    q *= np.sign(np.diag(r))
    return q


def sparse_(tensor, sparsity, std=0.01, generator=None, *, global_shape=None,
            global_offset=None):
    r"""Martens (2010): :math:`\mathcal{N}(0, \text{std}^2)` values with
    :math:`\lceil \text{sparsity} \times \text{rows} \rceil` zeros in each column.

    Each column's zero rows are those whose keys, uniform values from a second
    stream of the same call, are smallest; so the pattern comes from ``generator``
    and a shard gets exactly its block of the whole tensor's.
    """
    passed = tensor
    tensor, global_shape, global_offset = _targets.global_view(tensor, global_shape,
                                                               global_offset)
    shape = _global_shape(tensor, global_shape)
    if len(shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    gen = _generator(generator)
    with gen.transaction():
        # The zero pattern's stream: the same call as the values', another key.
        pattern = gen.substream(_SUBSTREAM_1)
        gen.normal_(tensor, 0.0, std, global_shape=global_shape, global_offset=global_offset)
    rows = shape[0]
    num_zeros = math.ceil(sparsity * rows)
    if _targets.is_meta(tensor) or num_zeros == 0:
        return _targets.written(passed) if passed is not tensor else passed
    local = _targets.shape_of(tensor)
    r0, c0 = global_offset or (0, 0)
    keys = np.empty((rows, local[1]))
    pattern.uniform_(keys, 0.0, 1.0, global_shape=shape, global_offset=(0, c0))
    zero_rows = np.argsort(keys, axis=0, kind="stable")[:num_zeros]
    mask = np.zeros((rows, local[1]), bool)
    np.put_along_axis(mask, zero_rows, True, axis=0)
    mask = mask[r0:r0 + local[0]]
    array, _ = _targets.as_array(tensor)
    _executor.submit_write(_targets.target(tensor, global_shape, global_offset),
                           lambda: array.__setitem__(mask, 0))
    return _targets.written(passed) if passed is not tensor else passed


# --------------------------------------------------------------------------------------
# The JAX/Keras variance-scaling family
# --------------------------------------------------------------------------------------

_TRUNC_STD = 0.87962566103423978   # std of the standard normal truncated to [-2, 2]


def _layout_fans(shape, layout):
    """(fan_in, fan_out) for a layout: "torch" (out, in, *kernel), "jax"/"keras"
    (*kernel, in, out), or (in_axis, out_axis)."""
    if layout == "torch":
        return _fans(shape)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    if layout in ("jax", "keras"):
        in_axis, out_axis = -2, -1
    else:
        try:
            in_axis, out_axis = layout
        except (TypeError, ValueError):
            raise ValueError(f"layout must be 'torch', 'jax', 'keras' or (in_axis, out_axis), "
                             f"got {layout!r}") from None
    in_axis, out_axis = (_axis_index(axis, len(shape)) for axis in (in_axis, out_axis))
    if in_axis == out_axis:
        raise ValueError(f"in_axis and out_axis must differ, got {layout!r}")
    receptive_field = math.prod(s for k, s in enumerate(shape) if k not in (in_axis, out_axis))
    return shape[in_axis] * receptive_field, shape[out_axis] * receptive_field


def _axis_index(axis, ndim, what="layout"):
    """``axis`` as an index in [0, ndim): an int in [-ndim, ndim), as numpy takes
    axes (numpy's AxisError, a ValueError and an IndexError, otherwise)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{what} axes must be ints, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(int(axis), ndim, what)
    return int(axis) % ndim


def variance_scaling_(tensor, scale=1.0, mode="fan_in", distribution="truncated_normal",
                      layout="torch", generator=None, *, global_shape=None,
                      global_offset=None):
    r"""JAX/Keras variance scaling: variance :math:`\sigma^2 = \text{scale} / n` with
    n = fan_in, fan_out or (fan_in + fan_out) / 2 (``mode`` "fan_in", "fan_out",
    "fan_avg"; n at least 1, as Keras), then

    - "truncated_normal": :math:`\mathcal{N}(0, s^2)` on :math:`[-2s, 2s]`,
      :math:`s = \sigma / 0.87962566103423978` (so the variance is :math:`\sigma^2`);
    - "normal" (or "untruncated_normal"): :math:`\mathcal{N}(0, \sigma^2)`;
    - "uniform": :math:`\mathcal{U}(-\sqrt{3}\sigma, \sqrt{3}\sigma)`.

    ``layout`` says where the fans are: "torch" (out, in, *kernel), "jax" or "keras"
    (*kernel, in, out, e.g. HWIO), or a pair (in_axis, out_axis).
    """
    fan_in, fan_out = _layout_fans(_global_shape(tensor, global_shape), layout)
    if mode == "fan_in":
        n = fan_in
    elif mode == "fan_out":
        n = fan_out
    elif mode == "fan_avg":
        n = (fan_in + fan_out) / 2
    else:
        raise ValueError(f"Mode {mode} not supported, please use one of "
                         "['fan_in', 'fan_out', 'fan_avg']")
    if not 0 < scale < math.inf:                  # (NaN too)
        raise ValueError(f"scale must be positive and finite, got {scale}")
    variance = scale / max(1.0, n)
    kw = dict(global_shape=global_shape, global_offset=global_offset)
    if distribution == "truncated_normal":
        s = math.sqrt(variance) / _TRUNC_STD
        return trunc_normal_(tensor, 0.0, s, -2 * s, 2 * s, generator, **kw)
    if distribution in ("normal", "untruncated_normal"):
        return normal_(tensor, 0.0, math.sqrt(variance), generator, **kw)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return uniform_(tensor, -limit, limit, generator, **kw)
    raise ValueError(f"distribution {distribution!r} not supported, please use one of "
                     "['truncated_normal', 'normal', 'untruncated_normal', 'uniform']")


def lecun_uniform_(tensor, layout="torch", generator=None, *, global_shape=None,
                   global_offset=None):
    r"""LeCun uniform: variance_scaling_(scale=1, "fan_in", "uniform"):
    :math:`\mathcal{U}(-\sqrt{3 / \text{fan\_in}}, \sqrt{3 / \text{fan\_in}})`."""
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", layout, generator,
                             global_shape=global_shape, global_offset=global_offset)


def lecun_normal_(tensor, layout="torch", generator=None, *, global_shape=None,
                  global_offset=None):
    r"""LeCun normal, as JAX: variance_scaling_(scale=1, "fan_in", "truncated_normal"):
    variance 1 / fan_in, truncated at two standard deviations."""
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", layout, generator,
                             global_shape=global_shape, global_offset=global_offset)


def empty(shape, dtype="float32"):
    """A new uninitialized numpy array to fill in place: no zeroing pass, and its
    pages are first touched by the fill's threads. ``dtype`` may be "bfloat16"
    (needs ml_dtypes).

    A large one is advised to use transparent huge pages as ``materialize``'s
    tensors are (``fastinit.build_info()["huge_pages"]``; numpy gives the same advice
    on its own unless ``NUMPY_MADVISE_HUGEPAGE=0``)."""
    if dtype == "bfloat16" or getattr(dtype, "__name__", None) == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("bfloat16 arrays need the ml_dtypes package") from None
        dtype = ml_dtypes.bfloat16
    out = np.empty(shape, dtype)
    _runtime.advise_huge_pages(out.ctypes.data, out.nbytes)
    return out


# --------------------------------------------------------------------------------------
# A whole model at once
# --------------------------------------------------------------------------------------

_TAKES_GENERATOR = {"uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                    "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
                    "variance_scaling_", "lecun_uniform_", "lecun_normal_"}
_NO_GENERATOR = {"constant_", "ones_", "zeros_", "eye_", "dirac_"}


def init_all(plan, generator=None):
    """Run a plan of initializers as one parallel pass; returns None.

    ``plan`` is a sequence of ``(target, initializer)`` or ``(target, initializer,
    kwargs)``, where ``initializer`` is the name of a function of this module (e.g.
    ``"kaiming_uniform_"``), such a function, or any callable, called as
    ``initializer(target, generator=..., **kwargs)`` (``generator`` only where it
    takes one).

    Entries naming this module's initializers (by name or as the functions) are
    all or nothing: every one is validated and takes its generator call in order,
    exactly as the one-by-one calls would, and values computed in Python
    (orthogonal_, sparse_, eye_, dirac_) are computed, before any target is written;
    if one raises, no target is written and
    ``generator`` is back where it was. Then all their fills are written together,
    every piece of every tensor shared among the threads in one GIL-free loop, so
    small tensors cost almost nothing. The bits are those of the one-by-one calls,
    for any thread count; fills of memory that an earlier entry also fills keep
    their order. Other threads that use ``generator`` wait until those calls are
    taken.

    Any other callable runs as a plain call at its place in the plan: the fills of
    the entries before it are written first, and what it does is done then, in its
    own order (a ``t[0].zero_()`` or ``clamp_`` after its fill is kept; a thread
    pool it hands work to may use ``generator``; an ``init_all`` inside it runs as
    it reads). Fills of the entries before it that write its target are written
    first; the others stay with the pass. If a later entry raises, what was written
    so stays written, and the generator is put back only if no call was taken
    outside the plan's named entries (a callable's own calls are never undone). So
    too if the pass raises: a KeyboardInterrupt, or a RuntimeError, before anything is
    written, when a callable reallocated a tensor whose fill was pending (a torch
    ``resize_``; a fill kept past ``t.data = ...`` writes the memory ``t`` had, as
    the call in plan order would have).
    """
    gen = _generator(generator)
    calls = [_plan_call(entry, gen) for entry in plan]
    batch = _executor.Batch()
    with gen.transaction():
        start = gen.state
    taken = 0
    try:
        with batch:
            runs = itertools.groupby(calls, key=lambda c: c[0] in _FASTINIT_INITIALIZERS)
            for ours, run in runs:
                if ours:               # a run of ours: targets validated once, calls in order
                    run = list(run)
                    targets = _targets.prepare(target for _, target, _ in run)
                    batch.hold(targets.values())
                    with gen.transaction(), _targets.prepared(targets):
                        before = gen.state["counter"]
                        for init, target, kwargs in run:
                            init(target, **kwargs)
                        taken += gen.state["counter"] - before
                    continue
                for init, target, kwargs in run:            # a callable, as a plain call
                    batch.write_before(_targets.memory_range(target))
                    with batch.paused():
                        init(target, **kwargs)
        batch.run()
    except BaseException:
        _rewind(gen, start, taken)
        raise


def _plan_call(entry, gen):
    """(initializer function, target, kwargs) of one plan entry, checked."""
    if len(entry) not in (2, 3):
        raise ValueError(f"plan entries are (target, initializer[, kwargs]), got {entry!r}")
    target, init = entry[0], entry[1]
    kwargs = dict(entry[2]) if len(entry) == 3 else {}
    if isinstance(init, str):
        if init not in _TAKES_GENERATOR | _NO_GENERATOR:
            raise ValueError(f"unknown initializer {init!r}")
        takes_generator, init = init in _TAKES_GENERATOR, globals()[init]
    elif callable(init):
        takes_generator = "generator" in inspect.signature(init).parameters
    else:
        raise TypeError(f"initializer must be a name or a callable, got {init!r}")
    if takes_generator:
        kwargs["generator"] = gen
    return init, target, kwargs


_FASTINIT_INITIALIZERS = frozenset(globals()[name] for name in _TAKES_GENERATOR | _NO_GENERATOR)
