"""Deferred initialization: a module built without memory, with a record of what its
construction did to every tensor, replayed on CPU memory by ``materialize``.

Recording (``deferred_init``) runs the construction on the meta device under two torch
modes of this thread:

- ``_CallRecorder``, a torch function mode, records each call ``patch_init`` answers
  (``_torch_draws.HANDLERS``: ``torch.randn``, ``Tensor.normal_``, torch.nn.init's
  ``uniform_``/``normal_``/``kaiming_uniform_`` ...) as one *call* entry, replayed
  later by calling the same torch function inside ``patch_init``: the draw's bits are
  what ``patch_init`` gives that call. torch.nn.init's functions that do nothing on
  meta tensors (``trunc_normal_``'s helper, ``orthogonal_``, ``sparse_``, ``dirac_``)
  are recorded whole when they ask ``is_meta``. Reading a tensor's values in Python
  (``item``, ``tolist``, ``bool``, ...) is answered by replaying what the tensor
  depends on, if no draw is among it; otherwise it is refused.
- ``_OpRecorder``, a torch dispatch mode, records every other aten operation that
  touches a recorded tensor (factories, arithmetic, views, copies, in-place ops) as an
  *op* entry, replayed by calling the same operator on CPU tensors.

Tensors are known by their storage: an entry refers to a tensor as (storage number,
dtype, size, stride, offset), so views, ``.data``, ``nn.Parameter(t)`` and in-place
writes through any alias are followed without tracking Python objects. The record
holds no tensor data beyond CPU constants the construction itself made (such as
``torch.tensor(2.6592)``).

Replaying (``replay``) runs, in recorded order, only the entries that write storages
the model still holds or that those entries read, on fresh CPU memory, with
``patch_init(generator)`` open; a draw whose values are overwritten whole before
anything reads them (torch's default init of a layer that the model's own scheme
then replaces) is skipped, its one generator call advanced over, so the result is
bit for bit what building the model on the CPU inside ``patch_init(generator)``
gives.
"""

import inspect
import sys
import threading

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from fastinit import _runtime, _torch_draws, _torch_patch
from fastinit._generator import Generator
from fastinit._torch_patch import patch_init

__all__ = ["deferred_init", "records_of", "replay", "DEFERRED_ATTRIBUTE"]

# Where a module built under deferred_init keeps its record (removed by materialize).
DEFERRED_ATTRIBUTE = "_fastinit_deferred"

_META = torch.device("meta")
_CPU = torch.device("cpu")


class _Ref:
    """A recorded tensor: a view of recorded storage ``sid``, with its negative and
    conjugate bits (a view such as ``.conj().imag`` reads and writes its memory
    negated)."""

    __slots__ = ("sid", "dtype", "size", "stride", "offset", "bits")

    def __init__(self, sid, t):
        self.sid = sid
        self.dtype = t.dtype
        self.size = tuple(t.shape)
        self.stride = tuple(t.stride())
        self.offset = t.storage_offset()
        self.bits = (t.is_neg(), t.is_conj())

    def matches(self, t):
        return (self.dtype == t.dtype and self.size == tuple(t.shape)
                and self.stride == tuple(t.stride()) and self.offset == t.storage_offset()
                and self.bits == (t.is_neg(), t.is_conj()))


class _TorchGenerator:
    """A ``torch.Generator`` a recorded draw was given: replayed from the state it had
    when the record first met it (one replayed generator per recorded one)."""

    __slots__ = ("key", "state")

    def __init__(self, key, state):
        self.key = key
        self.state = state


class _Entry:
    """One recorded operation: ``kind`` "op" (an aten operator) or "call" (a torch
    function replayed inside patch_init); arguments with tensors as _Ref; the storages
    it reads and writes; the storage it overwrites whole without reading (or None)."""

    __slots__ = ("kind", "func", "args", "kwargs", "outs", "reads", "writes", "overwrites",
                 "one_call", "pinned")

    def __init__(self, kind, func, args, kwargs, outs, reads, writes, overwrites=None,
                 one_call=False, pinned=False):
        self.kind, self.func, self.args, self.kwargs = kind, func, args, kwargs
        self.outs, self.reads, self.writes = outs, reads, writes
        self.overwrites, self.one_call, self.pinned = overwrites, one_call, pinned

    @property
    def name(self):
        func = self.func
        if isinstance(func, torch._ops.OpOverload):
            return f"aten.{func.__name__}"
        owner = getattr(func, "__objclass__", None)
        prefix = "Tensor." if owner is not None else getattr(func, "__module__", "") + "."
        return prefix + getattr(func, "__name__", repr(func))


class Record:
    """The operations a deferred construction made, and the storages they made."""

    def __init__(self):
        self.entries = []
        self.sids = {}             # recorded storage's address (StorageImpl) -> number
        self.storages = []         # number -> the recording's storage (kept: addresses unique)
        self.made_by = []          # number -> index of the entry that made it
        self.tainted = {}          # number -> index of a draw its values depend on
        self.generators = {}       # id(torch.Generator) -> _TorchGenerator
        self.muted = 0             # > 0 while a call entry runs (its own ops are not recorded)
        self.paused = 0            # > 0 while the record computes values itself
        self.scratch = Generator(0)   # what handlers are given here (on meta they draw nothing)

    # -- tensors ----------------------------------------------------------------------

    def sid(self, t):
        return self.sids.get(_storage_key(t))

    def tracks(self, t):
        return isinstance(t, torch.Tensor) and self.sid(t) is not None

    def _new_storage(self, t, entry_index):
        storage = t.untyped_storage()
        sid = len(self.storages)
        self.sids[storage._cdata] = sid
        self.storages.append(storage)
        self.made_by.append(entry_index)
        return sid

    def describe(self, sid):
        made = self.entries[self.made_by[sid]]
        ref = next(r for r in made.outs if r is not None and r.sid == sid)
        dtype = str(ref.dtype).replace("torch.", "")
        return f"the {dtype} tensor of shape {ref.size} made by {made.name}"

    def _encode(self, tree, reads):
        """``tree`` with recorded tensors as _Ref (their storages added to ``reads``),
        other CPU tensors as constant copies; a meta tensor made outside is refused."""
        def leaf(x):
            if isinstance(x, torch.Generator):
                return self._torch_generator(x)
            if not isinstance(x, torch.Tensor):
                return x
            sid = self.sid(x)
            if sid is not None:
                reads.add(sid)
                return _Ref(sid, x)
            if x.device.type == "cpu" and not _is_subclass(x):
                return x.detach().clone()
            raise RuntimeError(
                f"deferred_init: a {x.device.type} tensor of shape {tuple(x.shape)} made "
                f"outside the deferred construction is used inside it; only CPU tensors "
                f"from outside can be recorded (as constants)")
        return pytree.tree_map(leaf, tree)

    def _torch_generator(self, g):
        if g.device.type != "cpu":
            raise RuntimeError(f"deferred_init: a draw uses a torch.Generator on "
                               f"{g.device}; only CPU generators can be replayed")
        kept = self.generators.get(id(g))
        if kept is None or kept[0] is not g:
            kept = self.generators[id(g)] = (g, _TorchGenerator(len(self.generators),
                                                                g.get_state()))
        return kept[1]

    def _outputs(self, out, writes, index):
        refs = []
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                sid = self.sid(t)
                if sid is None:
                    sid = self._new_storage(t, index)
                writes.add(sid)
                refs.append(_Ref(sid, t))
            else:
                refs.append(None)
        return refs

    def _add(self, kind, func, args, kwargs, out, mutated=(), overwritten=None,
             one_call=False, draw=False, pinned=False):
        reads, writes = set(), set()
        index = len(self.entries)
        enc_args, enc_kwargs = self._encode((args, kwargs), reads)
        for t in mutated:
            writes.add(self.sid(t))
        outs = self._outputs(out, writes, index)
        overwrites = None
        if overwritten is not None and _covers_storage(overwritten):
            overwrites = self.sid(overwritten)
            if not any(isinstance(x, torch.Tensor) and x is not overwritten and
                       self.sid(x) == overwrites for x in pytree.tree_leaves((args, kwargs))):
                reads.discard(overwrites)
            else:
                overwrites = None
        self.entries.append(_Entry(kind, func, enc_args, enc_kwargs, outs, reads, writes,
                                   overwrites, one_call, pinned))
        source = index if draw else next((self.tainted[s] for s in reads if s in self.tainted),
                                         None)
        if source is not None:
            for sid in writes:
                self.tainted.setdefault(sid, source)
        return index

    # -- what the recorders call --------------------------------------------------------

    def add_op(self, func, args, kwargs, out):
        mutated = list(_mutated_arguments(func, args, kwargs))
        overwritten = mutated[0] if func in _OVERWRITING_OPS and len(mutated) == 1 else None
        self._add("op", func, args, kwargs, out, mutated, overwritten)

    def add_call(self, func, args, kwargs, out, target, one_call, pinned):
        self._add("call", func, args, kwargs, out, [target] if target is not None else (),
                  overwritten=target, one_call=one_call, draw=True, pinned=pinned)

    def add_constant(self, value):
        """A new recorded meta tensor holding (a copy of) the CPU tensor ``value``."""
        self.muted += 1
        try:
            out = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype,
                                      device=_META).requires_grad_(value.requires_grad)
        finally:
            self.muted -= 1
        self._add("op", _constant, (value,), {}, out)      # (_encode keeps a copy)
        return out

    def refuse_read(self, what, tensors):
        for t in tensors:
            sid = self.sid(t)
            if sid is not None and sid in self.tainted:
                raise RuntimeError(
                    f"deferred_init: {what} reads the values of {self.describe(sid)}, which "
                    f"come from the draw {self.entries[self.tainted[sid]].name}; a value "
                    f"computed in Python from a random tensor cannot be replayed. Compute it "
                    f"without reading the tensor, or build this part eagerly inside "
                    f"fastinit.torch.patch_init")

    def evaluate(self, tree):
        """``tree`` with each recorded meta tensor replaced by its value, computed on
        the CPU from what it depends on (no draw among it: refuse_read first)."""
        tensors = [x for x in pytree.tree_leaves(tree)
                   if isinstance(x, torch.Tensor) and self.tracks(x) and x.device.type == "meta"]
        if not tensors:
            return tree
        self.paused += 1
        try:
            include = _closure(self, {self.sid(t) for t in tensors}, every_draw=False)
            env = _run(self, include, None)
            real = {id(t): _view(env, _Ref(self.sid(t), t)) for t in tensors}
        finally:
            self.paused -= 1
        return pytree.tree_map(lambda x: real.get(id(x), x) if isinstance(x, torch.Tensor) else x,
                               tree)


def _storage_key(t):
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, TypeError):
        return None                              # sparse and other storage-less tensors


def _is_subclass(t):
    """A tensor subclass other than Parameter (DTensor, a wrapper with its own modes)."""
    return type(t) is not torch.Tensor and not isinstance(t, nn.Parameter)


def _covers_storage(t):
    """Whether ``t`` is its whole storage, each byte once."""
    if not isinstance(t, torch.Tensor) or t.storage_offset() != 0 or not t.is_contiguous():
        return False
    return t.numel() * t.element_size() == t.untyped_storage().nbytes() and t.numel() > 0


def _mutated_arguments(func, args, kwargs):
    """The tensors an aten operator writes in place (its schema's mutable arguments)."""
    schema = func._schema
    for i, argument in enumerate(schema.arguments):
        info = argument.alias_info
        if info is None or not info.is_write:
            continue
        value = args[i] if i < len(args) else kwargs.get(argument.name)
        for t in pytree.tree_leaves(value):
            if isinstance(t, torch.Tensor):
                yield t


_aten = torch.ops.aten
_OVERWRITING_OPS = frozenset({_aten.copy_.default, _aten.fill_.Scalar, _aten.fill_.Tensor,
                              _aten.zero_.default})


# --------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------

_NO_OP_ON_META = {f.__code__: f for f in (torch.nn.init.orthogonal_, torch.nn.init.sparse_,
                                          torch.nn.init.dirac_)}
_TRUNC_HELPER = getattr(torch.nn.init, "_no_grad_trunc_normal_", None)
if _TRUNC_HELPER is not None:
    _NO_OP_ON_META[_TRUNC_HELPER.__code__] = _TRUNC_HELPER


def _trunc_through_patch(tensor, mean, std, a, b, generator=None):
    """trunc_normal_'s helper as bound when replayed (patch_init's stand-in)."""
    return torch.nn.init._no_grad_trunc_normal_(tensor, mean, std, a, b, generator)


_REPLAYED_AS = {_TRUNC_HELPER: _trunc_through_patch}

# Calls that, on a tensor fastinit fills, take exactly one generator call under
# patch_init (so that skipping one advances the generator by one).
_ONE_CALL = frozenset({torch.Tensor.uniform_, torch.Tensor.normal_, torch.nn.init.uniform_,
                       torch.nn.init.normal_, torch.nn.init.kaiming_uniform_,
                       _trunc_through_patch})

# Functions that make a tensor from Python data (no aten operation to record).
_FROM_DATA = frozenset({torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor})


def _constant(value):
    """A recorded constant's value (replayed from its copy in the record)."""
    return value


_READS = frozenset({torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__,
                    torch.Tensor.__format__,
                    torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__,
                    torch.Tensor.__complex__, torch.Tensor.numpy, torch.Tensor.__array__,
                    torch.equal, torch.allclose})


# What a recorded (meta) tensor tells the construction about its device: the CPU, as
# an eager build would see, so that code choosing by device behaves as it does there.
_IS_META = torch._C.TensorBase.is_meta
_DEVICE_GETTERS = {torch._C.TensorBase.device: _CPU, _IS_META: False,
                   torch._C.TensorBase.is_cpu: True}
_TO_DEVICE = frozenset({torch.Tensor.to, torch.Tensor.cpu})


def _cpu_to_meta(tree):
    """``tree`` with each mention of the CPU device (``"cpu"``, ``torch.device("cpu")``)
    as the meta device."""
    def leaf(x):
        if isinstance(x, torch.device) and x.type == "cpu":
            return _META
        if isinstance(x, str) and x in ("cpu", "cpu:0"):
            return "meta"
        return x
    return pytree.tree_map(leaf, tree)


def _calling_no_op_function(depth=2):
    """(torch.nn.init function, its frame) asking ``is_meta`` just above, or None."""
    frame = sys._getframe(depth)
    for _ in range(3):
        if frame is None:
            return None
        fn = _NO_OP_ON_META.get(frame.f_code)
        if fn is not None:
            return fn, frame
        frame = frame.f_back
    return None


def _one_call(func, target, args, kwargs):
    """Whether the recorded draw takes one generator call when replayed: a call of
    _ONE_CALL on a non-empty tensor fastinit fills, all its other arguments numbers."""
    if func not in _ONE_CALL or target is None or target.numel() == 0:
        return False
    if target.dtype not in _torch_draws.FILLED or target.layout != torch.strided \
            or target.is_neg() or _is_subclass(target):
        return False
    others = [x for x in pytree.tree_leaves((args, kwargs)) if x is not target]
    return all(x is None or isinstance(x, (bool, int, float, str)) for x in others)


def _target(func, args, kwargs):
    """The tensor an in-place draw writes (its first argument), or None."""
    name = getattr(func, "__name__", "")
    if not name.endswith("_") or name.startswith("__"):
        return None
    first = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
    return first if isinstance(first, torch.Tensor) else None


class _CallRecorder(TorchFunctionMode):
    """Records the calls patch_init answers, torch.nn.init's meta no-ops whole, and
    answers or refuses Python reads of recorded tensors."""

    def __init__(self, record):
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        record = self.record
        if record.muted or record.paused:
            return func(*args, **kwargs)
        getter = getattr(func, "__self__", None)
        if getter in _DEVICE_GETTERS and args and record.tracks(args[0]):
            if getter is _IS_META:
                found = _calling_no_op_function()
                if found is None:
                    return False
                self._record_whole(*found)
                return True                      # (torch's function then returns at once)
            return _DEVICE_GETTERS[getter]
        if func in _TO_DEVICE and args and record.tracks(args[0]):
            if func is torch.Tensor.cpu:
                return args[0]
            args, kwargs = _cpu_to_meta(args), _cpu_to_meta(kwargs)
            return func(*args, **kwargs)
        if func in _READS:
            tensors = [x for x in pytree.tree_leaves((args, kwargs))
                       if isinstance(x, torch.Tensor) and record.tracks(x)]
            if tensors:
                record.refuse_read(_name(func), tensors)
                args, kwargs = record.evaluate((args, kwargs))
            return func(*args, **kwargs)
        if func in _FROM_DATA:
            return self._record_from_data(func, args, kwargs)
        handler = _torch_draws.HANDLERS.get(func)
        replayed = func
        if handler is None and getattr(func, "__name__", None) in _torch_draws.REBINDABLE:
            handler = _torch_draws.rebound_init_handler(func)
            replayed = _torch_draws.rebound_init_function(func) if handler else func
        if handler is None:
            return func(*args, **kwargs)
        tensors = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        if tensors and not any(record.tracks(t) for t in tensors):
            return func(*args, **kwargs)             # the caller's own tensors: not recorded
        record.muted += 1
        try:
            out = handler(record.scratch, func, args, kwargs)
        finally:
            record.muted -= 1
        target = _target(func, args, kwargs)
        pinned = any(isinstance(x, torch.Generator) for x in pytree.tree_leaves((args, kwargs)))
        record.add_call(replayed, args, kwargs, out, target,
                        _one_call(replayed, target, args, kwargs), pinned)
        return out

    def _record_from_data(self, func, args, kwargs):
        """torch.tensor and its kin build a tensor from Python data without an aten
        operation: its value is built on the CPU now and recorded as a constant, and
        the construction gets a recorded meta tensor holding it."""
        record = self.record
        tensors = [x for x in pytree.tree_leaves((args, kwargs))
                   if isinstance(x, torch.Tensor) and record.tracks(x)]
        if tensors:
            record.refuse_read(_name(func), tensors)
            args, kwargs = record.evaluate((args, kwargs))
        device = kwargs.get("device")
        if device is not None and torch.device(device).type not in ("cpu", "meta"):
            raise RuntimeError(f"deferred_init: {_name(func)} asks for a tensor on {device}; "
                               f"deferred models are materialized on the CPU")
        record.paused += 1
        try:
            value = func(*args, **{**kwargs, "device": "cpu"})
        finally:
            record.paused -= 1
        if not isinstance(value, torch.Tensor):
            return value
        return record.add_constant(value.detach())

    def _record_whole(self, fn, frame):
        params = inspect.signature(fn).parameters
        values = {name: frame.f_locals[name] for name in params if name in frame.f_locals}
        tensor = values.pop("tensor")
        replayed = _REPLAYED_AS.get(fn, fn)
        pinned = values.get("generator") is not None
        args = (tensor, *values.values())
        self.record.add_call(replayed, args, {}, None, tensor,
                             _one_call(replayed, tensor, args, {}), pinned)


def _name(func):
    owner = getattr(func, "__objclass__", None)
    return ("Tensor." if owner is not None else "torch.") + getattr(func, "__name__", str(func))


class _OpRecorder(TorchDispatchMode):
    """Records every aten operation that makes or touches a recorded tensor."""

    def __init__(self, record):
        super().__init__()
        self.record = record

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.record.paused:
            return func(*args, **kwargs)
        with torch._C.DisableTorchFunction():     # (this code sees tensors as they are)
            return self._record(func, args, kwargs)

    def _record(self, func, args, kwargs):
        record = self.record
        tensors = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        if tensors and not any(record.tracks(t) for t in tensors):
            return func(*args, **kwargs)             # the caller's own tensors: not recorded
        # A factory or an op on recorded tensors makes meta tensors, whatever device
        # the construction names for them (it sees them as CPU tensors).
        if not tensors and kwargs.get("device", None) is None and "device" in \
                (a.name for a in func._schema.arguments):
            kwargs = {**kwargs, "device": _META}
        args, kwargs = _cpu_to_meta(args), _cpu_to_meta(kwargs)
        if record.muted:
            return func(*args, **kwargs)
        if any(t.device.type == "cpu" and t.dim() > 0 for t in tensors):
            twins = {id(t): record.add_constant(t.detach()) for t in tensors
                     if t.device.type == "cpu" and t.dim() > 0}
            args, kwargs = pytree.tree_map(
                lambda x: twins.get(id(x), x) if isinstance(x, torch.Tensor) else x,
                (args, kwargs))
            tensors = [twins.get(id(t), t) for t in tensors]
        if torch.Tag.nondeterministic_seeded in func.tags:
            raise RuntimeError(
                f"deferred_init: aten.{func.__name__} draws from torch's generator and is "
                f"not among the draws fastinit answers, so its values could not be "
                f"replayed from a fastinit generator. Make this draw after materialize, or "
                f"build this part eagerly inside fastinit.torch.patch_init")
        for t in tensors:
            if t.device.type not in ("meta", "cpu"):
                raise RuntimeError(f"deferred_init: aten.{func.__name__} uses a tensor on "
                                   f"{t.device}; deferred models are materialized on the CPU")
        try:
            out = func(*args, **kwargs)
        except (RuntimeError, NotImplementedError) as exc:
            tracked = [record.describe(record.sid(t)) for t in tensors if record.tracks(t)]
            raise RuntimeError(
                f"deferred_init: aten.{func.__name__} cannot be recorded"
                + (f" on {tracked[0]}" if tracked else "") + f": {exc}") from exc
        record.add_op(func, args, kwargs, out)
        return out


class _StopRecording:
    """The last thing a recording undoes: this thread no longer records."""

    def __exit__(self, *exc):
        _torch_patch._thread.recording = 0


class _Recording:
    """The modes and registration hooks of one deferred construction on this thread."""

    def __init__(self):
        self.record = Record()
        self._stack = []
        self.modules = {}

    def __enter__(self):
        record = self.record
        here = threading.get_ident()
        if _torch_patch.recording():
            self._stack = None                   # inside another: recorded by that one
            return self

        def registered(module, name, value):
            if threading.get_ident() == here:
                self.modules.setdefault(id(module), module)
            return None

        hooks = nn.modules.module
        _torch_patch._thread.recording = 1
        self._stack.append(_StopRecording())
        try:
            self._stack.append(hooks.register_module_parameter_registration_hook(registered))
            self._stack.append(hooks.register_module_buffer_registration_hook(registered))
            self._stack.append(hooks.register_module_module_registration_hook(registered))
            for ctx in (_OpRecorder(record), _CallRecorder(record)):
                ctx.__enter__()
                self._stack.append(ctx)
        except BaseException:
            self._unwind(None, None, None)
            raise
        return self

    def _unwind(self, *exc):
        while self._stack:
            item = self._stack.pop()
            if hasattr(item, "remove"):
                item.remove()
            else:
                item.__exit__(*exc)

    def __exit__(self, *exc):
        if self._stack is None:
            return False
        self._unwind(*exc)
        if exc[0] is None:
            for module in self.modules.values():
                module.__dict__[DEFERRED_ATTRIBUTE] = self.record
        return False

    def attach(self, obj):
        """Give the record to every module reachable from ``obj`` too."""
        if isinstance(obj, nn.Module) and self._stack is not None:
            for m in obj.modules():
                m.__dict__[DEFERRED_ATTRIBUTE] = self.record


class _DeferredBlock:
    """``with deferred_init():``: the modules built inside are recorded."""

    def __init__(self):
        self._recording = None

    def __enter__(self):
        if self._recording is not None:
            raise RuntimeError("deferred_init: this block is already open")
        self._recording = _Recording()
        self._recording.__enter__()

    def __exit__(self, *exc):
        recording, self._recording = self._recording, None
        return recording.__exit__(*exc)


def deferred_init(fn=None, /, *args, **kwargs):
    """Build a module without allocating its tensors, recording its construction.

    ``fastinit.torch.deferred_init(fn, *args, **kwargs)`` calls ``fn(*args, **kwargs)``
    (a module class, ``AutoModelForCausalLM.from_config``, any function building a
    model) with its tensors on the meta device and returns what it returns;
    ``with fastinit.torch.deferred_init():`` records the modules the block builds.
    ``fastinit.torch.materialize(model, generator)`` then allocates the model on the
    CPU and replays the record, its draws from ``generator``.

    Recorded, for every tensor the construction makes: factories and their values
    (``torch.zeros``, ``torch.full``, ``torch.tensor(2.6592)``, ``arange``), draws
    (``torch.randn``, ``Tensor.normal_``, every torch.nn.init function), copies,
    views, arithmetic and in-place ops, parametrizations, ``.data`` assignments and
    ties. A value read in Python during the construction (``item()``, ``tolist()``,
    ``bool``) is computed from the replayed values when no draw is among what it
    depends on, and refused otherwise; so is a draw fastinit does not answer
    (``poisson``, dropout). A refusal raises RuntimeError naming the operation and the
    tensor; nothing has been allocated and torch's generator is untouched.
    """
    if fn is None:
        if args or kwargs:
            raise TypeError("deferred_init() takes arguments only with a function")
        return _DeferredBlock()
    if not callable(fn):
        raise TypeError(f"deferred_init: fn must be callable, got {type(fn).__name__}")
    with _Recording() as recording:
        out = fn(*args, **kwargs)
    recording.attach(out)
    return out


def records_of(module):
    """The distinct records held by ``module``'s submodules."""
    seen = {}
    for m in module.modules():
        record = m.__dict__.get(DEFERRED_ATTRIBUTE)
        if record is not None:
            seen.setdefault(id(record), record)
    return list(seen.values())


def forget(module):
    for m in module.modules():
        m.__dict__.pop(DEFERRED_ATTRIBUTE, None)


# --------------------------------------------------------------------------------------
# Replaying
# --------------------------------------------------------------------------------------

def _dead_draws(record):
    """Indices of one-call draws whose whole storage is overwritten, unread, later."""
    pending, dead = {}, set()
    for i, e in enumerate(record.entries):
        for sid in e.reads | e.writes:
            if e.overwrites == sid and sid in pending:
                dead.add(pending.pop(sid))
            pending.pop(sid, None)
        if e.kind == "call" and e.one_call and not e.pinned and e.overwrites is not None:
            pending[e.overwrites] = i
    return dead


def _closure(record, needed, dead=frozenset(), every_draw=True):
    """The entries to replay so that storages ``needed`` hold their recorded values:
    every live entry writing a needed storage and, transitively, those writing what
    it reads; with ``every_draw``, also every draw that cannot be skipped (its
    generator calls not known to be one, or its torch.Generator shared)."""
    needed = set(needed)
    include = set()
    for i in range(len(record.entries) - 1, -1, -1):
        e = record.entries[i]
        if i in dead:
            continue
        forced = every_draw and e.kind == "call" and (e.pinned or not e.one_call)
        if forced or e.writes & needed:
            include.add(i)
            needed |= e.reads
    return include


def _to_cpu(x):
    if isinstance(x, torch.device) and x.type == "meta":
        return _CPU
    if isinstance(x, str) and x == "meta":
        return "cpu"
    return x


def _view(env, ref):
    view = torch.empty(0, dtype=ref.dtype).set_(env[ref.sid], ref.offset, ref.size, ref.stride)
    negative, conjugate = ref.bits
    if negative:
        view = torch._neg_view(view)
    return view.conj() if conjugate else view


def _decode(tree, env, generators):
    def leaf(x):
        if isinstance(x, _Ref):
            return _view(env, x)
        if isinstance(x, _TorchGenerator):
            g = generators.get(x.key)
            if g is None:
                g = generators[x.key] = torch.Generator().set_state(x.state)
            return g
        if isinstance(x, torch.Tensor):
            return x.clone()
        return _to_cpu(x)
    return pytree.tree_map(leaf, tree)


def _bind_outputs(entry, out, env):
    for ref, t in zip(entry.outs, pytree.tree_leaves(out)):
        if ref is None:
            continue
        if not isinstance(t, torch.Tensor) or not ref.matches(t):
            raise RuntimeError(f"materialize: replaying {entry.name} gave a tensor laid out "
                               f"unlike the recorded one")
        storage = t.untyped_storage()
        known = env.get(ref.sid)
        if known is None:
            env[ref.sid] = storage
            _runtime.advise_huge_pages(storage.data_ptr(), storage.nbytes())
        elif known.data_ptr() != storage.data_ptr():
            raise RuntimeError(f"materialize: replaying {entry.name} did not write the "
                               f"recorded tensor in place")


def _run(record, include, generator, env=None):
    """Replay the entries ``include`` in order on the CPU (draws from ``generator``
    inside patch_init; a skipped one-call draw advances it by one). Returns the
    storages: number -> CPU storage."""
    env = {} if env is None else env
    generators = {}
    with torch.no_grad(), torch.device("cpu"):
        block = patch_init(generator) if generator is not None else None
        if block is not None:
            block.__enter__()
        try:
            for i, e in enumerate(record.entries):
                if i not in include:
                    if e.kind == "call" and generator is not None:
                        generator.advance(1)          # (only one-call draws are left out)
                    continue
                args, kwargs = _decode((e.args, e.kwargs), env, generators)
                out = e.func(*args, **kwargs)
                _bind_outputs(e, out, env)
        finally:
            if block is not None:
                block.__exit__(None, None, None)
    return env


def replay(record, needed, generator):
    """Replay ``record`` so that storages ``needed`` (numbers) hold their values, draws
    from ``generator``; returns number -> CPU storage."""
    dead = _dead_draws(record)
    include = _closure(record, needed, dead)
    return _run(record, include, generator)


def tensor_for(record, env, t):
    """The CPU tensor standing for recorded tensor ``t`` after replay (a view of its
    replayed storage with t's layout)."""
    return _view(env, _Ref(record.sid(t), t))
