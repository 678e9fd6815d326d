"""torch's random functions answered from a fastinit.Generator: the handlers that
``patch_init``'s torch function mode (``_torch_patch``) calls inside a block.

Each handler receives the block's generator and the call as torch received it, and
returns what torch's function would return, its values drawn from the generator:

- ``Tensor.uniform_`` and ``Tensor.normal_`` on a tensor fastinit fills (a plain CPU
  tensor or Parameter of float16, bfloat16, float32 or float64), and ``torch.rand``,
  ``torch.randn``, ``rand_like``, ``randn_like`` and ``torch.normal`` with float
  arguments, are fastinit's ``uniform_``/``normal_`` fills: fastinit's exact bits.
  ``torch.nn.init``'s ``uniform_``, ``normal_`` and ``kaiming_uniform_`` (which torch
  hands to a mode whole) are fastinit's functions of the same names. A normal mean or
  std torch takes and fastinit refuses (NaN or infinite) gives torch's arithmetic on
  fastinit's standard normals (``_normal_fill``).
- Every other draw on a CPU tensor (complex and negative-bit views, tensors that
  autograd tracks, views laid over their own memory, nested tensors, integer draws,
  ``exponential_``, ``log_normal_``, ``cauchy_``, ``geometric_``, ``bernoulli``,
  ``random_``, ``randint``, ``randperm``, ``torch.normal`` with tensor arguments) is
  computed from fastinit's uniform, normal or raw 64-bit draws by the formula its
  handler names, then written with torch's own ``copy_`` (so torch's autograd rules
  and errors apply).
- A DTensor placed by Shard or Replicate is filled as its local shard of the global
  fill (``fastinit_fills``). A call that passes its own ``torch.Generator``, a
  tensor on another device, a meta tensor and any other tensor subclass with its
  own ``__torch_function__`` or ``__torch_dispatch__`` go to torch unchanged; so do
  arguments torch refuses, which it refuses before drawing anything, and draws on
  a dtype torch's kernel does not take (``FILLED`` and the sets after it) or on a
  nested tensor (``_NESTED``).

``ESCAPES`` lists torch functions that draw from torch's generator and are not
answered here (dropout in training, ``poisson``, ``multinomial``, ...): inside a
block they still run, with a ``TorchRNGWarning``.
"""

import inspect
import math
import sys
import warnings
from numbers import Real

import numpy as np
import torch
from torch.nn import functional as F

from fastinit import _dtypes, _plan, _targets
from fastinit import init as _fast


class TorchRNGWarning(UserWarning):
    """A call inside ``patch_init`` drew from torch's generator, not fastinit's."""


# torch function -> handler(generator, func, args, kwargs)
HANDLERS = {}

# The torch dtypes fastinit fills (_dtypes' list): the floating dtypes torch 2.13's
# CPU draws take too. Those draws' dtypes (their kernels' dispatch lists), so that a
# call on any other (float8, uint16, a quantized dtype, ...) goes to torch for its
# error: uniform_/normal_ and the continuous draws take FILLED (uniform_ and normal_
# _COMPLEX too); geometric_, randperm and random_'s default range _INTEGERS too;
# bernoulli_ and random_() bool as well.
FILLED = frozenset(_dtypes.torch_dtypes(torch))
_COMPLEX = frozenset((torch.complex32, torch.complex64, torch.complex128))
_INTEGERS = frozenset((torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64))
_NUMBERS = FILLED | _INTEGERS
_NUMBERS_OR_BOOL = _NUMBERS | {torch.bool}
_PLAIN_FUNCTION = (torch._C._disabled_torch_function_impl, torch.Tensor.__torch_function__.__func__)


def _handles(*funcs):
    def register(handler):
        for func in funcs:
            HANDLERS[func] = handler
        return handler
    return register


def _plain(t):
    """A tensor whose memory is its values: no subclass behaviour of its own."""
    cls = type(t)
    function = getattr(cls.__torch_function__, "__func__", cls.__torch_function__)
    return (cls.__torch_dispatch__ is torch._C._disabled_torch_dispatch_impl
            and function in _PLAIN_FUNCTION)


def _cpu_dense(t):
    """A plain CPU tensor with strides (nested tensors included: see ``_NESTED``)."""
    return (isinstance(t, torch.Tensor) and _plain(t) and t.is_cpu
            and t.layout == torch.strided)


def fastinit_fills(t):
    """Whether fastinit writes ``t``'s memory itself: a plain CPU strided tensor of a
    dtype fastinit fills, not nested, not a negative-bit view, and whose elements lie
    at distinct addresses unless a zero stride makes torch refuse the write too (a
    tensor as_strided lays over itself, which torch fills element by element, is
    drawn through a scratch tensor); or a DTensor whose local tensor is one, sharded
    or replicated (each rank writes its block of the global fill)."""
    if _targets.is_dtensor(t):
        try:
            t = _targets.global_view(t)[0]
        except (ValueError, NotImplementedError):
            return False                         # (torch's own call then says why)
    return (_cpu_dense(t) and t.dtype in FILLED and not t.is_neg() and not t.is_nested
            and (t.is_contiguous() or not _laid_over_itself(t)))


def _laid_over_itself(t):
    """Whether two of ``t``'s elements share memory and torch writes them anyway, in
    turn (as_strided over itself); not where a zero stride does it (torch refuses
    such a write, and so does fastinit, with torch's error)."""
    if torch._debug_has_internal_overlap(t) == 1:      # torch's "yes": a zero stride
        return False
    size = t.element_size()
    return _plan.self_overlapping(t.shape, [s * size for s in t.stride()], size)


# The draws torch 2.13 takes on a nested tensor (strided layout; the jagged one is a
# subclass with a dispatch of its own, so torch answers it): normal_, as Tensor.normal_
# or torch.nn.init.normal_, and randn_like. Any other draw on one is torch's own call,
# which refuses it; these are answered through a flat scratch tensor (_fill_float).
_NESTED = frozenset((torch._C.TensorBase.normal_, torch.nn.init.normal_, torch.randn_like))


def refused_on_nested(func, args, kwargs):
    """Whether ``func`` is a draw on a nested tensor that torch refuses (the mode then
    lets torch raise its error)."""
    t = args[0] if args else kwargs.get("input", kwargs.get("tensor", kwargs.get("self")))
    return isinstance(t, torch.Tensor) and t.is_nested and func not in _NESTED


def _tracked(t):
    """An in-place write to ``t`` that autograd must see (a non-leaf in a graph)."""
    return torch.is_grad_enabled() and t.requires_grad


class _Binder:
    """A call's arguments bound to a signature, as ``Signature.bind`` and
    ``apply_defaults`` bind them ({name: value} in the signature's order; None for a
    call the signature refuses). The calls torch's functions receive (arguments in
    order, keywords by name) are bound by names alone, in under a third of
    ``Signature.bind``'s time (1.9 against 6.2 us for ``normal_(t, std=0.02)``; a
    tenth of a small tensor's whole ``normal_`` under ``patch_init`` was ``bind``'s);
    any other call (too many arguments, a keyword unknown or given twice, one
    missing) is left to it."""

    def __init__(self, signature):
        P = inspect.Parameter
        params = signature.parameters.values()
        self.signature = signature
        self.by_names = all(p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY) for p in params)
        self.positional = tuple(p.name for p in params if p.kind is P.POSITIONAL_OR_KEYWORD)
        self.names = frozenset(signature.parameters)
        self.required = frozenset(p.name for p in params if p.default is P.empty)
        self.defaults = [(p.name, p.default) for p in params]

    def __call__(self, args, kwargs):
        if self.by_names and len(args) <= len(self.positional):
            given = dict(zip(self.positional, args))
            if kwargs.keys() <= self.names and not kwargs.keys() & given.keys():
                given.update(kwargs)
                if given.keys() >= self.required:
                    return {name: given.get(name, default) for name, default in self.defaults}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        return bound.arguments


def _scalar(x):
    """A Python number from a number or a one-element tensor; None otherwise."""
    if isinstance(x, torch.Tensor):
        return x.item() if x.numel() == 1 and not x.is_complex() else None
    if isinstance(x, (bool, int, float, np.integer, np.floating)):
        return x
    return None


# --------------------------------------------------------------------------------------
# How values are made: fastinit fills of plain tensors, and float64/int64 arrays
# --------------------------------------------------------------------------------------

def _real_view(t):
    """A complex tensor's components as a real tensor, else ``t``."""
    return torch.view_as_real(t) if t.is_complex() else t


def _uniform01(gen, n):
    return gen.uniform_(np.empty(n))


def _standard_normal(gen, n):
    return gen.normal_(np.empty(n))


def _raw(gen, n):
    return gen.random_raw_(np.empty(n, np.uint64))


def _integers(gen, n, low, high):
    """n integers in [low, high): low + (x mod (high - low)) of raw 64-bit outputs x
    (a bias below (high - low) / 2^64), as int64."""
    raw = _raw(gen, n)
    offsets = raw if high - low == 2 ** 64 else raw % np.uint64(high - low)
    return offsets.view(np.int64) + np.int64(low)          # wraps into [low, high)


def _write(t, values):
    """Write a numpy array of t's element count into t (in its logical order) with
    torch's copy_, which rounds to t's dtype and follows autograd's rules."""
    t.copy_(torch.from_numpy(np.ascontiguousarray(values)).reshape(t.shape))
    return t


def _fill_float(gen, t, draw):
    """Fill the CPU tensor ``t`` (real or complex floating) with ``draw(gen, out)``,
    which fills a plain tensor fastinit writes; through a scratch tensor and copy_
    when t is not one (a negative-bit view, a complex tensor's components kept in
    place, a tensor autograd tracks)."""
    if fastinit_fills(t) and not _tracked(t):
        draw(gen, t)
        return t
    if t.is_nested:                      # its components in order, from one flat fill
        parts = t.unbind()
        flat = torch.empty(sum(p.numel() for p in parts), dtype=t.dtype)
        draw(gen, _real_view(flat))
        start = 0
        for p in parts:
            p.copy_(flat[start:start + p.numel()].view(p.shape))
            start += p.numel()
        return t
    scratch = torch.empty(t.shape, dtype=t.dtype)
    draw(gen, _real_view(scratch))
    t.copy_(scratch)
    return t


def _inplace(func, args, kwargs, t, dtypes_ok, fill):
    """An in-place draw into ``t``: torch's own call where torch refuses it or where
    the tensor is not a CPU tensor of this process's memory (or a DTensor fastinit
    fills); else ``fill()``."""
    if not (_cpu_dense(t) or fastinit_fills(t)) or not dtypes_ok(t.dtype):
        return func(*args, **kwargs)
    if torch.is_grad_enabled() and t.requires_grad and t.is_leaf:
        return func(*args, **kwargs)                # torch's error, raised before any draw
    return fill()


def _floating(dtype):
    return dtype in FILLED


def _floating_or_complex(dtype):
    return dtype in FILLED or dtype in _COMPLEX


def _uniform_draw(a, b):
    return lambda gen, out: _fast.uniform_(out, a, b, gen)


def _normal_draw(mean, std):
    return lambda gen, out: _normal_fill(gen, out, mean, std)


def _complex_normal_draw(mean, std):
    """torch's complex normal_: each component N(mean, (std / sqrt(2))^2)."""
    return lambda gen, out: _normal_fill(gen, out, mean, std / math.sqrt(2))


def _normal_draw_for(out, mean, std):
    """normal_(mean, std)'s draw for ``out``: torch's complex rule for a complex one."""
    return (_complex_normal_draw if out.is_complex() else _normal_draw)(mean, std)


def _normal_fill(gen, out, mean, std):
    """fastinit's normal_(out, mean, std); for a mean or std that torch takes and
    fastinit refuses (``_only_torch_takes``), torch's arithmetic on fastinit's
    standard normals z: mean + std * z in the precision fastinit computes in (float64
    for float64, else float32, 16-bit values rounded from it), so that every value is
    infinite or NaN, as torch's are."""
    if _only_torch_takes(out.dtype, mean, std):
        with torch.no_grad():
            kind = _working_kind(out.dtype)
            wide = out.dtype in (torch.float32, torch.float64)
            z = out if wide else torch.empty_like(out, dtype=torch.float32)
            _fast.normal_(z, 0.0, 1.0, gen)          # (a 16-bit fill's float32 values)
            z.mul_(_dtypes.round_to(std, kind)).add_(_dtypes.round_to(mean, kind))
            return out if wide else out.copy_(z)
    return _fast.normal_(out, mean, std, gen)


_FLOAT32_MAX = _dtypes.FLOAT32.max


def _working_kind(dtype):
    """The precision fastinit's normal fill computes a dtype's values in: float64 for
    float64, float32 for float32 and the 16-bit dtypes."""
    return (_dtypes.FLOAT64 if dtype == torch.float64 else _dtypes.FLOAT32).kind


def _only_torch_takes(dtype, mean, std):
    """Whether torch's normal_ takes (mean, std) on a tensor of ``dtype`` and
    fastinit's refuses them: std >= 0 (not NaN), and the mean or std not finite in
    the working precision. (A NaN or negative std: fastinit's normal_ raises torch's
    error; arguments that are not numbers: its TypeError.)"""
    if type(mean) is float and type(std) is float and \
            -_FLOAT32_MAX <= mean <= _FLOAT32_MAX and std <= _FLOAT32_MAX:
        return False                             # nearly every call, decided at once
    if not (isinstance(mean, Real) and isinstance(std, Real) and std >= 0):
        return False
    kind = _working_kind(dtype)
    return not (math.isfinite(_dtypes.round_to(mean, kind))
                and math.isfinite(_dtypes.round_to(std, kind)))


# --------------------------------------------------------------------------------------
# In-place draws: Tensor.uniform_, normal_, random_, exponential_, ...
# --------------------------------------------------------------------------------------

def _sig(*names, **defaults):
    """The binder of the signature ``(self, *names, **defaults, *, generator=None)``
    of an in-place Tensor draw, for a torch call's arguments (``names`` have no
    default)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return _Binder(inspect.Signature(
        [inspect.Parameter(n, kind) for n in ("self", *names)]
        + [inspect.Parameter(n, kind, default=d) for n, d in defaults.items()]
        + [inspect.Parameter("generator", inspect.Parameter.KEYWORD_ONLY, default=None)]))


_UNIFORM_ = _sig(a=0.0, b=1.0)
_NORMAL_ = _sig(mean=0.0, std=1.0)


def _rename(kwargs, names):
    """torch's keyword names that are Python keywords (from, to) as bindable ones."""
    return {names.get(k, k): v for k, v in kwargs.items()}


def _fill_handler(bind, names, draw_for, rename=None):
    """Tensor.uniform_/normal_: the two parameters ``names`` bound from the call, the
    tensor filled by ``draw_for(tensor, p, q)``'s fastinit draw."""
    def handler(gen, func, args, kwargs):
        arguments = bind(args, _rename(kwargs, rename or {}))
        if arguments is None or arguments["generator"] is not None:
            return func(*args, **kwargs)
        t, p, q = arguments["self"], _scalar(arguments[names[0]]), _scalar(arguments[names[1]])
        if p is None or q is None:
            return func(*args, **kwargs)
        return _inplace(func, args, kwargs, t, _floating_or_complex,
                        lambda: _fill_float(gen, t, draw_for(t, p, q)))
    return handler


_tensor_uniform_ = _fill_handler(_UNIFORM_, ("a", "b"), lambda t, a, b: _uniform_draw(a, b),
                                 rename={"from": "a", "to": "b"})
_tensor_normal_ = _fill_handler(_NORMAL_, ("mean", "std"), _normal_draw_for)
HANDLERS[torch._C.TensorBase.uniform_] = _tensor_uniform_
HANDLERS[torch._C.TensorBase.normal_] = _tensor_normal_


def _values_inplace(func, args, kwargs, t, dtypes_ok, valid, values):
    """An in-place draw whose values are computed as a numpy array (``values(n)``),
    after ``valid()`` says torch would accept the arguments. As torch's kernels do,
    the formulas overflow to infinities and make NaN without a word (numpy would warn)."""
    if not valid():
        return func(*args, **kwargs)                # torch's error

    def fill():
        with np.errstate(all="ignore"):
            values_ = values(t.numel())
        return _write(t, values_)
    return _inplace(func, args, kwargs, t, dtypes_ok, fill)


_ONE_PARAM = {
    # name: (binder, valid(params), values(gen, n, params)); formulas from uniforms
    # U in [0, 1) and standard normals Z, in float64.
    "exponential_": (_sig(lambd=1.0),
                     lambda p: p["lambd"] > 0,
                     lambda g, n, p: -np.log1p(-_uniform01(g, n)) / p["lambd"]),   # -log(1-U)/l
    "log_normal_": (_sig(mean=1.0, std=2.0),
                    lambda p: p["std"] > 0,
                    lambda g, n, p: np.exp(p["mean"] + p["std"] * _standard_normal(g, n))),
    "cauchy_": (_sig(median=0.0, sigma=1.0),
                lambda p: p["sigma"] > 0,
                lambda g, n, p: p["median"] + p["sigma"] * np.tan(
                    np.pi * (_uniform01(g, n) - 0.5))),
    "geometric_": (_sig("p"),
                   lambda p: 0 < p["p"] < 1,
                   # failures before the first success, plus one: ceil(log(1-U)/log(1-p)),
                   # at least 1.
                   lambda g, n, p: np.maximum(1.0, np.ceil(
                       np.log1p(-_uniform01(g, n)) / np.log1p(-p["p"])))),
}


def _one_param_handler(name):
    bind, valid, values = _ONE_PARAM[name]
    func_dtypes = _floating if name != "geometric_" else _NUMBERS.__contains__

    def handler(gen, func, args, kwargs):
        arguments = bind(args, kwargs)
        if arguments is None or arguments["generator"] is not None:
            return func(*args, **kwargs)
        params = {k: _scalar(v) for k, v in arguments.items() if k not in ("self", "generator")}
        if any(v is None for v in params.values()):
            return func(*args, **kwargs)
        t = arguments["self"]
        return _values_inplace(func, args, kwargs, t, func_dtypes, lambda: valid(params),
                               lambda n: values(gen, n, params))
    return handler


for _name in _ONE_PARAM:
    HANDLERS[getattr(torch._C.TensorBase, _name)] = _one_param_handler(_name)


def _random_bounds(dtype):
    """random_()'s default [0, to) for a dtype: every integer the dtype holds exactly
    up to 2^digits for floating dtypes, up to its maximum for integer ones."""
    if dtype.is_floating_point:
        digits = 1 - round(math.log2(torch.finfo(dtype).eps))    # 24 for float32
        return 0, 2 ** digits + 1
    if dtype == torch.bool:
        return 0, 2
    return 0, torch.iinfo(dtype).max + 1


@_handles(torch._C.TensorBase.random_)
def _tensor_random_(gen, func, args, kwargs):
    """random_(), random_(to), random_(from, to): integers in [from, to) by _integers."""
    kwargs_ = dict(kwargs)
    if kwargs_.pop("generator", None) is not None or not args:
        return func(*args, **kwargs)
    t, rest = args[0], list(args[1:])
    names = ("from", "to") if len(rest) + len(kwargs_) == 2 else ("to",)
    given = dict(zip(names, rest))
    given.update(kwargs_)
    if set(given) - {"from", "to"} or (not rest and "from" in kwargs_ and "to" not in kwargs_):
        return func(*args, **kwargs)
    if not isinstance(t, torch.Tensor) or t.is_complex():
        return func(*args, **kwargs)
    low, high = _random_bounds(t.dtype)
    low = _scalar(given.get("from", low))
    high = given.get("to", high)
    high = _random_bounds(t.dtype)[1] if high is None else _scalar(high)
    if low is None or high is None or isinstance(low, float) or isinstance(high, float) or \
            not low < high:
        return func(*args, **kwargs)

    def fill():
        _check_random_range(t.dtype, *rest, **kwargs_)
        return _write(t, _integers(gen, t.numel(), int(low), int(high)))
    # (With bounds, torch's own check above decides which dtypes it takes; without,
    # torch's default range has kernels for _NUMBERS_OR_BOOL only.)
    dtypes_ok = _NUMBERS_OR_BOOL.__contains__ if not given else lambda d: True
    return _inplace(func, args, kwargs, t, dtypes_ok, fill)


def _check_random_range(dtype, *bounds, **named):
    """torch's own checks of random_'s bounds for a dtype, and its warnings, made on a
    tensor with no elements (nothing drawn): bounds beyond the dtype raise torch's
    error, beyond a floating dtype's exact integers (2^24 for float32) its warning."""
    torch.empty(0, dtype=dtype).random_(*bounds, **named)


_BERNOULLI_ = _sig(p=0.5)


def _bernoulli_values(gen, n, p, shape):
    """1 where U < p (p a float or an array broadcast to ``shape``), else 0."""
    u = _uniform01(gen, n).reshape(shape)
    return (u < p).astype(np.float64)


def _probabilities(p):
    """p as a float, or a float64 numpy array from a CPU tensor; None when torch must
    answer (another device, a subclass, a value torch refuses)."""
    if isinstance(p, torch.Tensor):
        if not _cpu_dense(p) or p.is_complex():
            return None
        array = p.detach().to(torch.float64).numpy()
        return array if ((array >= 0) & (array <= 1)).all() else None
    p = _scalar(p)
    return float(p) if p is not None and 0 <= p <= 1 else None


@_handles(torch._C.TensorBase.bernoulli_)
def _tensor_bernoulli_(gen, func, args, kwargs):
    arguments = _BERNOULLI_(args, kwargs)
    if arguments is None or arguments["generator"] is not None:
        return func(*args, **kwargs)
    t, p = arguments["self"], _probabilities(arguments["p"])
    if p is None or not isinstance(t, torch.Tensor):
        return func(*args, **kwargs)
    shape = tuple(t.shape)
    valid = lambda: not isinstance(p, np.ndarray) or _broadcasts(p.shape, shape)  # noqa: E731
    return _values_inplace(func, args, kwargs, t, _NUMBERS_OR_BOOL.__contains__, valid,
                           lambda n: _bernoulli_values(gen, n, p, shape))


def _broadcasts(source, shape):
    try:
        return tuple(np.broadcast_shapes(source, shape)) == tuple(shape)
    except ValueError:
        return False


@_handles(torch.bernoulli, torch._C.TensorBase.bernoulli)
def _bernoulli(gen, func, args, kwargs):
    """bernoulli(input, p=None): 1 where U < p (p, else input's elements), input's
    shape and dtype."""
    kw = dict(kwargs)
    if kw.pop("generator", None) is not None or not args or kw.pop("out", None) is not None:
        return func(*args, **kwargs)
    source = args[0]
    p = args[1] if len(args) > 1 else kw.pop("p", None)
    if kw or len(args) > 2 or not _cpu_dense(source) or not _floating(source.dtype):
        return func(*args, **kwargs)
    probs = _probabilities(source if p is None else p)
    if probs is None:
        return func(*args, **kwargs)
    out = torch.empty_like(source, memory_format=torch.contiguous_format)
    with torch.no_grad():
        return _write(out, _bernoulli_values(gen, out.numel(), probs, tuple(out.shape)))


# --------------------------------------------------------------------------------------
# Factories: torch.rand, randn, rand_like, randn_like, randint(_like), randperm, normal
# --------------------------------------------------------------------------------------

def _fresh(func, args, kwargs, make, fill, dtypes_ok):
    """A factory: ``make()`` builds the empty result as torch would (size, dtype,
    device from the arguments and the default device), then ``fill(result)`` draws
    into it when it is a CPU tensor of a dtype torch accepts; a meta result is
    returned as it is (torch draws nothing there); anything else goes to torch."""
    try:
        out = make()
    except Exception:
        return func(*args, **kwargs)               # torch's own error for the call
    if isinstance(out, torch.Tensor) and out.device.type == "meta" and _plain(out):
        return func(*args, **kwargs) if not dtypes_ok(out.dtype) else out
    if not _cpu_dense(out) or not dtypes_ok(out.dtype):
        return func(*args, **kwargs)
    with torch.no_grad():                       # a new tensor: its draw is no autograd op
        fill(out)
    return out


def _without_generator(kwargs):
    """kwargs less ``generator``, or None when it names a torch.Generator."""
    kw = dict(kwargs)
    return None if kw.pop("generator", None) is not None else kw


def _float_factory(empty, draw_for):
    """rand/randn (``empty`` torch.empty) and rand_like/randn_like (torch.empty_like):
    the result built from the same arguments, filled by ``draw_for(result)``."""
    def handler(gen, func, args, kwargs):
        kw = _without_generator(kwargs)
        if kw is None:
            return func(*args, **kwargs)
        return _fresh(func, args, kwargs, lambda: empty(*args, **kw),
                      lambda out: _fill_float(gen, out, draw_for(out)), _floating_or_complex)
    return handler


def _uniform01_for(out):
    return _uniform_draw(0.0, 1.0)


def _standard_normal_for(out):
    return _normal_draw_for(out, 0.0, 1.0)


HANDLERS[torch.rand] = _float_factory(torch.empty, _uniform01_for)
HANDLERS[torch.randn] = _float_factory(torch.empty, _standard_normal_for)
HANDLERS[torch.rand_like] = _float_factory(torch.empty_like, _uniform01_for)
HANDLERS[torch.randn_like] = _float_factory(torch.empty_like, _standard_normal_for)


def _not_complex(dtype):
    return not dtype.is_complex


def _integer_bounds(positional, kw):
    """(low, high) of randint/randint_like from their trailing positional arguments
    (``high`` or ``low, high``) and keywords, or None when torch must answer."""
    high, low = kw.pop("high", None), kw.pop("low", None)
    if high is None and positional:
        high = positional.pop()
    if low is None and positional:
        low = positional.pop()
    low = 0 if low is None else _scalar(low)
    high = None if high is None else _scalar(high)
    if positional or low is None or high is None or isinstance(low, float) or \
            isinstance(high, float) or low >= high:
        return None
    return int(low), int(high)


def _integer_factory(gen, func, args, kwargs, make, bounds):
    low, high = bounds

    def fill(out):
        _check_random_range(out.dtype, low, high)
        return _write(out, _integers(gen, out.numel(), low, high))
    return _fresh(func, args, kwargs, make, fill, _not_complex)


@_handles(torch.randint)
def _randint(gen, func, args, kwargs):
    """randint(high, size) / randint(low, high, size): integers by _integers."""
    kw = _without_generator(kwargs)
    if kw is None:
        return func(*args, **kwargs)
    positional = list(args)
    size = kw.pop("size", None)
    if size is None and positional and not isinstance(positional[-1], (int, float, torch.Tensor)):
        size = positional.pop()
    bounds = _integer_bounds(positional, kw)
    if size is None or bounds is None:
        return func(*args, **kwargs)
    kw.setdefault("dtype", torch.int64)
    return _integer_factory(gen, func, args, kwargs, lambda: torch.empty(size, **kw), bounds)


@_handles(torch.randint_like)
def _randint_like(gen, func, args, kwargs):
    kw = _without_generator(kwargs)
    if kw is None or not args:
        return func(*args, **kwargs)
    bounds = _integer_bounds(list(args[1:]), kw)
    if bounds is None:
        return func(*args, **kwargs)
    return _integer_factory(gen, func, args, kwargs, lambda: torch.empty_like(args[0], **kw),
                            bounds)


@_handles(torch.randperm)
def _randperm(gen, func, args, kwargs):
    """randperm(n): the indices that sort n raw 64-bit outputs (stable: ties, at
    probability below n^2 / 2^65, keep index order)."""
    kw = _without_generator(kwargs)
    if kw is None or len(args) != 1:
        return func(*args, **kwargs)
    n = _scalar(args[0])
    if n is None or isinstance(n, float) or n < 0:
        return func(*args, **kwargs)
    kw.setdefault("dtype", torch.int64)
    return _fresh(func, args, kwargs, lambda: torch.empty(int(n), **kw),
                  lambda out: _write(out, np.argsort(_raw(gen, int(n)), kind="stable")),
                  _NUMBERS.__contains__)


@_handles(torch.normal)
def _normal(gen, func, args, kwargs):
    """normal(mean, std, size) with floats: fastinit's normal fill. With a tensor mean
    or std: mean + std * Z, Z fastinit's standard normals of the broadcast shape, in
    the result's dtype (torch's arithmetic)."""
    kw = _without_generator(kwargs)
    if kw is None:
        return func(*args, **kwargs)
    positional = list(args)
    names = ["mean", "std", "size"]
    for name, value in zip(names, positional):
        if name in kw:
            return func(*args, **kwargs)
        kw[name] = value
    if len(positional) > 3:
        return func(*args, **kwargs)
    mean, std, size = kw.pop("mean", None), kw.pop("std", 1.0), kw.pop("size", None)
    if mean is None:
        return func(*args, **kwargs)
    if not isinstance(mean, torch.Tensor) and not isinstance(std, torch.Tensor):
        m, s = _scalar(mean), _scalar(std)
        if size is None or m is None or s is None or s < 0:
            return func(*args, **kwargs)
        return _fresh(func, args, kwargs, lambda: torch.empty(size, **kw),
                      lambda out: _fill_float(gen, out, _normal_draw_for(out, m, s)),
                      _floating_or_complex)
    tensors = [x for x in (mean, std) if isinstance(x, torch.Tensor)]
    if size is not None or set(kw) - {"out"} or not all(_cpu_dense(x) for x in tensors) \
            or not all(_floating_or_complex(x.dtype) for x in tensors) or \
            isinstance(std, torch.Tensor) and std.is_complex():
        return func(*args, **kwargs)
    if isinstance(std, torch.Tensor) and not (std >= 0).all() or \
            not isinstance(std, torch.Tensor) and (_scalar(std) is None or not std >= 0):
        return func(*args, **kwargs)                # (NaN too) torch's error, no draw
    try:
        shape = torch.broadcast_shapes(*(x.shape for x in tensors))
    except RuntimeError:
        return func(*args, **kwargs)                # torch's error, raised before any draw
    dtype = mean.dtype if isinstance(mean, torch.Tensor) else std.dtype
    with torch.no_grad():
        z = torch.empty(shape, dtype=dtype)
        _fill_float(gen, z, _standard_normal_for(z))
        result = mean + std * z
    out = kw.get("out")
    return out.copy_(result) if out is not None else result


# --------------------------------------------------------------------------------------
# torch.nn.init's functions that torch hands to a mode whole
# --------------------------------------------------------------------------------------

def _init_handler(name):
    """torch.nn.init.<name> (uniform_, normal_, kaiming_uniform_): fastinit's function
    of that name for a tensor fastinit fills; a tensor it does not fill but torch
    does in place (complex, a negative-bit view, a tensor autograd tracks) gets the
    same formula, drawn through the handlers above."""
    torch_fn = getattr(torch.nn.init, name)
    bind = _Binder(inspect.signature(torch_fn))
    fast_fn = getattr(_fast, name)

    def handler(gen, func, args, kwargs):
        arguments = bind(args, kwargs)
        if arguments is None or arguments.get("generator") is not None:
            return func(*args, **kwargs)
        t = arguments["tensor"]
        if isinstance(t, torch.Tensor) and fastinit_fills(t):
            # (torch's function writes under no_grad too: autograd records nothing.)
            if name == "normal_":
                return _normal_fill(gen, t, arguments["mean"], arguments["std"])
            arguments["generator"] = gen
            return fast_fn(**arguments)
        if not _cpu_dense(t):
            return func(*args, **kwargs)
        low_high = _bounds(name, arguments)
        if low_high is None:
            return t
        with torch.no_grad():
            if name == "normal_":
                return _tensor_normal_(gen, torch._C.TensorBase.normal_, (t, *low_high), {})
            return _tensor_uniform_(gen, torch._C.TensorBase.uniform_, (t, *low_high), {})
    return handler


def _bounds(name, arguments):
    """(a, b) of uniform_, (mean, std) of normal_, (-bound, bound) of kaiming_uniform_
    by fastinit's (torch's) formulas; None for kaiming's zero-element no-op (torch
    warns and draws nothing)."""
    if name == "uniform_":
        return arguments["a"], arguments["b"]
    if name == "normal_":
        return arguments["mean"], arguments["std"]
    t = arguments["tensor"]
    if 0 in t.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=4)
        return None
    fan = _fast._correct_fan(tuple(t.shape), arguments["mode"])
    gain = _fast.calculate_gain(arguments["nonlinearity"], arguments["a"])
    bound = math.sqrt(3.0) * (gain / math.sqrt(fan))
    return -bound, bound


for _name in ("uniform_", "normal_", "kaiming_uniform_"):
    HANDLERS[getattr(torch.nn.init, _name)] = _init_handler(_name)

# torch.nn.init's functions hand themselves to a mode by the name their module binds
# now: under transformers' guard_torch_init_functions that is transformers' wrapper
# (which has already made its checks and called torch's function). Such a call is
# recognized by torch's function's code in the frames that made it.
_INIT_CODES = {getattr(torch.nn.init, name).__code__: HANDLERS[getattr(torch.nn.init, name)]
               for name in ("uniform_", "normal_", "kaiming_uniform_")}
REBINDABLE = frozenset(code.co_name for code in _INIT_CODES)


_INIT_FUNCTIONS = {getattr(torch.nn.init, name).__code__: getattr(torch.nn.init, name)
                   for name in ("uniform_", "normal_", "kaiming_uniform_")}


def _rebinding_code(func, depth):
    frame = sys._getframe(depth + 1)
    for _ in range(4):
        if frame is None:
            return None
        if frame.f_code in _INIT_CODES:
            return frame.f_code if frame.f_code.co_name == func.__name__ else None
        frame = frame.f_back
    return None


def rebound_init_handler(func):
    """The handler of the torch.nn.init function whose hook handed over ``func`` (a
    function bound in its place under its name), or None."""
    code = _rebinding_code(func, 2)
    return None if code is None else _INIT_CODES[code]


def rebound_init_function(func):
    """The torch.nn.init function whose hook handed over ``func`` (see
    rebound_init_handler; called at the same depth), or None."""
    code = _rebinding_code(func, 2)
    return None if code is None else _INIT_FUNCTIONS[code]


# --------------------------------------------------------------------------------------
# Draws not answered here: they run on torch's generator, with a warning
# --------------------------------------------------------------------------------------

def _training_dropout(p_index, training_index, training_default=True):
    def draws(args, kwargs):
        p = kwargs.get("p", args[p_index] if len(args) > p_index else 0.5)
        training = kwargs.get("training", kwargs.get("train", args[training_index]
                                                      if len(args) > training_index
                                                      else training_default))
        return bool(training) and p != 0
    return draws


def _always(args, kwargs):
    return True


ESCAPES = {
    F.dropout: _training_dropout(1, 2), F.dropout1d: _training_dropout(1, 2),
    F.dropout2d: _training_dropout(1, 2), F.dropout3d: _training_dropout(1, 2),
    F.alpha_dropout: _training_dropout(1, 2, False),
    F.feature_alpha_dropout: _training_dropout(1, 2, False),
    torch.dropout: _training_dropout(1, 2), torch.dropout_: _training_dropout(1, 2),
    torch.alpha_dropout: _training_dropout(1, 2),
    torch.feature_alpha_dropout: _training_dropout(1, 2),
    torch.feature_dropout: _training_dropout(1, 2),
    torch.native_dropout: lambda a, k: bool(k.get("train", a[2] if len(a) > 2 else True)),
    F.rrelu: lambda a, k: bool(k.get("training", a[3] if len(a) > 3 else False)),
    torch.rrelu: lambda a, k: bool(k.get("training", a[3] if len(a) > 3 else False)),
    torch.rrelu_: lambda a, k: bool(k.get("training", a[3] if len(a) > 3 else False)),
    F.gumbel_softmax: _always,
    torch.poisson: _always, torch.binomial: _always, torch._standard_gamma: _always,
    torch._sample_dirichlet: _always,
    torch.multinomial: _always, torch._C.TensorBase.multinomial: _always,
    F.scaled_dot_product_attention: lambda a, k: k.get("dropout_p", a[4] if len(a) > 4
                                                        else 0.0) > 0,
    F.fractional_max_pool2d: lambda a, k: k.get("_random_samples") is None,
    F.fractional_max_pool3d: lambda a, k: k.get("_random_samples") is None,
}


def warn_escape(func, args, kwargs):
    """Warn when ``func``, called inside a block, draws from torch's generator."""
    draws = ESCAPES.get(func)
    if draws is not None and kwargs.get("generator") is None and draws(args, kwargs):
        name = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
        warnings.warn(f"{name} inside fastinit.torch.patch_init draws from torch's "
                      f"generator: its values do not follow the fastinit generator",
                      TorchRNGWarning, stacklevel=4)
