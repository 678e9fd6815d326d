"""A meta-device model allocated on the CPU and initialized by its own code, fast,
all or nothing.

A model built by ``deferred_init`` has its recorded construction replayed
(``_deferred``), its tensors then registered where the meta ones were. Otherwise
``materialize`` gives every parameter and buffer fresh CPU memory (one tensor per
tensor object, so tied parameters stay tied), advises the OS to back the large ones
with huge pages, and runs the model's own initialization under ``patch_init``: a
Hugging Face model's ``init_weights``, any other module's ``reset_parameters``.
Parametrized tensors (weight norm, spectral norm, ``torch.nn.utils.parametrize``)
are first rebuilt as an eager build makes them: the module's own reset of the plain
tensor, then the parametrization's ``right_inverse``. torch's version counters then
tell which tensors were written; none may be left as uninitialized memory. On any
exception the model is put back exactly as it was (on meta, ready for a retry), and
so is the generator.
"""

import sys

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

from fastinit import _deferred, _generator, _runtime, _targets
from fastinit import init as _fast
from fastinit._torch_patch import patch_init

_RESETS = ("reset_parameters", "_reset_parameters", "reset_running_stats")


def _sites(module):
    """(qualified name, owning module, kind, name, tensor) of every registration of a
    parameter or buffer, a tied tensor once per place it is registered."""
    out = []
    for prefix, m in module.named_modules(remove_duplicate=False):
        for kind, tensors in (("parameter", m._parameters), ("buffer", m._buffers)):
            for name, t in tensors.items():
                if t is not None:
                    out.append((f"{prefix}.{name}" if prefix else name, m, kind, name, t))
    return out


def _unique(sites):
    """The distinct tensors of ``sites``, each with its first qualified name."""
    seen = {}
    for qualified, m, kind, _, t in sites:
        seen.setdefault(id(t), (qualified, t, m, kind))
    return list(seen.values())


def _check_devices(sites):
    """A model built on meta: its tensors on meta, or on the CPU (made by old-style
    constructors that ignore the device), at least one on meta."""
    for qualified, _, kind, _, t in sites:
        if _targets.is_dtensor(t):
            _targets.global_view(t)              # its placements: refused here, not later
        if isinstance(t, nn.parameter.UninitializedTensorMixin):
            raise ValueError(f"materialize: {kind} {qualified!r} is uninitialized (a lazy "
                             f"module): run a forward pass to give it a shape first")
        if t.device.type not in ("meta", "cpu"):
            raise ValueError(f"materialize expects a model on the meta device; "
                             f"{kind} {qualified!r} is on {t.device}")
    if sites and not any(t.device.type == "meta" for *_, t in sites):
        qualified, _, kind, _, t = sites[0]
        raise ValueError(f"materialize expects a model on the meta device; {kind} "
                         f"{qualified!r} is on {t.device}, and no tensor is on meta")


def _fresh(t, data=None):
    """A CPU tensor like ``t`` (a Parameter of t's class, the attributes set on it kept;
    a DTensor with a fresh local shard on the same mesh and placements), holding
    ``data`` if given, else fresh memory."""
    data = torch.empty_like(t, device="cpu") if data is None else data
    if not isinstance(t, nn.Parameter):
        return data.requires_grad_(t.requires_grad)
    try:
        new = type(t)(data, t.requires_grad)
    except TypeError:
        new = nn.Parameter(data, t.requires_grad)
    for key, value in t.__dict__.items():       # (a DTensor's own fields stay the new ones)
        new.__dict__.setdefault(key, value)
    return new


def _memory(t):
    """The tensor holding ``t``'s memory on this process (a DTensor's local shard)."""
    return t._local_tensor if _targets.is_dtensor(t) else t


def _reset_fsdp_params(module):
    """What FSDP2 does after converting a sharded module's parameters (its ``_apply``):
    each FSDP parameter takes up the parameter now registered (padding uneven shards)."""
    for m in module.modules():
        state = getattr(m, "_get_fsdp_state", None)
        groups = getattr(state(), "_fsdp_param_groups", None) if callable(state) else None
        for group in groups or ():
            for fsdp_param in group.fsdp_params:
                fsdp_param.reset_sharded_param()


class _Snapshot:
    """Every module's attributes and registrations, to put the model back as it was."""

    def __init__(self, module):
        self._saved = [(m, dict(m.__dict__), dict(m._parameters), dict(m._buffers),
                        dict(m._modules), type(m))
                       for m in {id(m): m for m in module.modules()}.values()]

    def restore(self):
        for m, attributes, parameters, buffers, modules, cls in self._saved:
            for live, saved in ((m._parameters, parameters), (m._buffers, buffers),
                                (m._modules, modules)):
                live.clear()
                live.update(saved)
            m.__dict__.clear()
            m.__dict__.update(attributes)
            if type(m) is not cls:
                m.__class__ = cls


def _own_reset(m):
    """The module's own reset method, as construction runs it, or None."""
    for method in _RESETS:
        reset = getattr(m, method, None)
        if callable(reset):
            return reset
    return None


def _reset_own(module):
    """Each module's own reset, children first (the order construction runs them):
    ``reset_parameters``, else torch's private ``_reset_parameters`` (MultiheadAttention,
    Transformer), else ``reset_running_stats``."""
    for child in module.children():
        _reset_own(child)
    reset = _own_reset(module)
    if reset is not None:
        reset()


def _hf_model(module):
    """A Hugging Face model (whose class module is then loaded: nothing is imported)."""
    modeling = sys.modules.get("transformers.modeling_utils")
    base = getattr(modeling, "PreTrainedModel", None)
    return base is not None and isinstance(module, base)


def _hf_tied_targets(module):
    """The qualified names of the tensors a Hugging Face model ties to others in its
    ``init_weights`` (its ``tie_weights``): each gets its own fresh tensor, initialized
    by its own module, then tied, as an eager build does (so the source's values win:
    an embedding's zero padding row is not overwritten by its tied head's init)."""
    if not _hf_model(module):
        return set()
    base = sys.modules["transformers.modeling_utils"].PreTrainedModel
    out = set()
    for prefix, m in module.named_modules():
        if isinstance(m, base):
            for target in getattr(m, "all_tied_weights_keys", None) or {}:
                out.add(f"{prefix}.{target}" if prefix else target)
    return out


# --------------------------------------------------------------------------------------
# Parametrized tensors: the plain tensor as the module's reset makes it, then the
# parametrization's own right inverse (what registering it on an eager build does)
# --------------------------------------------------------------------------------------

def _stateful(parametrization):
    """A parametrization whose own parameters or buffers its constructor computed
    from the weight; the ones rebuilt here are handled by _rebuild_state."""
    return any(True for _ in parametrization.parameters()) or \
        any(True for _ in parametrization.buffers())


def _rebuild_state(parametrization, value, qualified):
    """Recompute what a stateful parametrization's constructor computed from the
    plain ``value``: spectral norm's u and v (normal draws, normalized, 15 power
    iterations, as torch's constructor does). Any other raises, naming it."""
    spectral = getattr(nn.utils.parametrizations, "_SpectralNorm", None)
    if spectral is not None and type(parametrization) is spectral and value.ndim > 1:
        matrix = parametrization._reshape_weight_to_matrix(value)
        h, w = matrix.shape
        u = matrix.new_empty(h).normal_(0, 1)
        v = matrix.new_empty(w).normal_(0, 1)
        parametrization._u.copy_(nn.functional.normalize(u, dim=0, eps=parametrization.eps))
        parametrization._v.copy_(nn.functional.normalize(v, dim=0, eps=parametrization.eps))
        parametrization._power_method(matrix, 15)
        return
    if _stateful(parametrization):
        raise RuntimeError(
            f"materialize: the parametrization {type(parametrization).__name__} of "
            f"{qualified!r} holds parameters or buffers its constructor computed from the "
            f"weight, which cannot be recomputed here. Register it after materialize, or "
            f"build this model on the CPU inside fastinit.torch.patch_init")


def _plain_value(m, name, shape_like, reset, qualified):
    """The plain tensor ``name`` of module ``m`` as ``reset`` writes it, computed with
    the module temporarily unparametrized (its class and a plain Parameter)."""
    if reset is None:
        raise RuntimeError(f"materialize: {qualified!r} is parametrized and its module "
                           f"{type(m).__name__} has no reset_parameters to initialize it")
    value = nn.Parameter(torch.empty(shape_like.shape, dtype=shape_like.dtype))
    cls, saved = type(m), dict(m._parameters)
    if parametrize.is_parametrized(m):
        m.__class__ = cls.__bases__[0]            # the class parametrize derived from
    try:
        m._parameters[name] = value
        reset()
    finally:
        m._parameters.clear()
        m._parameters.update(saved)
        m.__class__ = cls
    return value.detach()


def _rebuild_parametrized(module, meta_values):
    """Write every parametrized tensor's originals (and spectral norm's state) as an
    eager build would; ``meta_values`` maps (module id, name) to the parametrized
    value computed on meta before allocation (its shape and dtype)."""
    for prefix, m in module.named_modules():
        if not parametrize.is_parametrized(m):
            continue
        for name, chain in m.parametrizations.items():
            qualified = f"{prefix}.{name}" if prefix else name
            value = _plain_value(m, name, meta_values[(id(m), name)], _own_reset(m), qualified)
            for parametrization in chain:
                _rebuild_state(parametrization, value, qualified)
            chain.right_inverse(value)


def _old_weight_norms(module):
    """(module, hook) of each hook-based ``torch.nn.utils.weight_norm``."""
    return [(m, hook) for m in module.modules() for hook in m._forward_pre_hooks.values()
            if isinstance(hook, WeightNorm)]


def _rebuild_old_weight_norm(m, hook, qualified):
    """weight_g and weight_v from the plain weight the module's reset writes, and the
    weight attribute recomputed, as ``torch.nn.utils.weight_norm`` does."""
    g, v = getattr(m, hook.name + "_g"), getattr(m, hook.name + "_v")
    weight = m.__dict__.pop(hook.name)
    try:
        value = _plain_value(m, hook.name, v, _own_reset(m), qualified)
    finally:
        m.__dict__[hook.name] = weight
    v.copy_(value)
    g.copy_(torch.norm_except_dim(value, 2, hook.dim))
    setattr(m, hook.name, hook.compute_weight(m))


# --------------------------------------------------------------------------------------

def _hf_init_weights(model):
    """The model's ``init_weights()``, judged by its own class: FSDP2's ``fully_shard``
    swaps in a class of torch's, which transformers would take for custom code (and
    then skip every module without parameters of its own, such as GPT-2's attention
    and its scaled projections)."""
    base = sys.modules["transformers.modeling_utils"].PreTrainedModel
    own = next(c for c in type(model).__mro__
               if issubclass(c, base) and not c.__module__.startswith("torch."))
    if own is type(model):
        model.init_weights()
        return
    model.__dict__["is_custom_code"] = own.is_custom_code
    try:
        model.init_weights()
    finally:
        del model.__dict__["is_custom_code"]


def _reset_what_init_weights_left(model, before):
    """A Hugging Face parameter its ``_init_weights`` left alone, registered in one
    module only, gets that module's ``reset_parameters()`` (what building it on the
    CPU gives); the module's other parameters keep what ``_init_weights`` wrote. A
    tied parameter left alone is not guessed at: materialize names it."""
    modules = {id(m): m for m in model.modules()}.values()
    owners = {}
    for m in modules:
        for p in m._parameters.values():
            if p is not None:
                owners[id(p)] = owners.get(id(p), 0) + 1
    for m in modules:
        own = {name: p for name, p in m._parameters.items() if p is not None}
        left = [n for n, p in own.items() if before.get(id(p)) == p._version and p.numel()]
        reset = getattr(m, "reset_parameters", None)
        if not left or not callable(reset) or any(owners[id(own[n])] > 1 for n in left):
            continue
        kept = {n: p.detach().clone() for n, p in own.items() if n not in left}
        reset()
        for n, value in kept.items():
            m._parameters[n].copy_(value)


def _written(t, versions):
    return t.numel() == 0 or t._version != versions[id(t)]


def materialize(module, generator=None, init=None):
    """Allocate a meta-device ``module`` on the CPU and initialize it; returns it.

    A model built by ``fastinit.torch.deferred_init`` gets its recorded construction
    replayed instead (draws from ``generator``; ``init`` does not apply): the model an
    eager build inside ``patch_init(generator)`` gives, bit for bit. A meta tensor
    made outside the record is refused by name, before anything is allocated.
    Otherwise:

    The model runs its own initialization with torch's draws coming from fastinit
    (``patch_init(generator)``): a Hugging Face model its ``init_weights()`` (the
    library's scheme: ``_init_weights``, padding rows, norms, recomputed rotary and
    position buffers, tied weights), any other module each submodule's
    ``reset_parameters()`` (children first, as construction runs them; torch's
    ``_reset_parameters`` and ``reset_running_stats`` where that is what a module
    has). ``init(module, generator)``, if given, runs instead, e.g.
    ``fastinit.torch.reset_parameters`` for its one-pass default scheme.

    - **Ties.** Each tensor gets one fresh tensor wherever it is registered, so tied
      parameters stay tied (a Parameter keeps its class and attributes).
    - **Parametrizations** (weight norm, spectral norm, ``parametrize``): the plain
      tensor is initialized by its module's reset, then the parametrization's
      ``right_inverse`` (and spectral norm's power iterations) give the originals,
      as registering it on an eager build does. A parametrization whose other
      state cannot be recomputed raises RuntimeError naming it.
    - **CPU tensors** made inside the meta build (old-style constructors such as
      ``torch.FloatTensor(n)`` ignore the device) are accepted and get fresh memory
      like the rest; the model's init code must write them.
    - **Every tensor written.** A Hugging Face model's parameter its
      ``_init_weights`` left alone gets its module's ``reset_parameters()`` (what
      building it on the CPU gives); anything still unwritten (zero-element tensors
      aside) raises RuntimeError naming it, never silently left as uninitialized
      memory.
    - **All or nothing.** On any exception (an unwritten tensor, a module's own init
      raising, KeyboardInterrupt) every module is put back as it was, on meta, and
      the generator too (unless another thread drew from it meanwhile: its calls are
      never handed out twice), so ``materialize`` can be called again and gives the
      model a first call would have.

    Large fresh tensors are advised to use transparent huge pages before their first
    write where that is faster (``fastinit.build_info()["huge_pages"]`` says whether,
    and why; ``FASTINIT_HUGEPAGES=0`` or ``1`` decides), and each page is first
    touched by the thread that fills it.

    Use::

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)     # no memory, no init
        fastinit.torch.materialize(model, fastinit.Generator(0))
    """
    gen = _fast._generator(generator)
    if init is not None and not callable(init):
        raise TypeError(f"init must be callable, got {type(init).__name__}")
    records = _deferred.records_of(module)
    if records and init is not None:
        raise ValueError("materialize: init= applies to models built on the meta "
                         "device; a model built by deferred_init replays its own "
                         "construction")
    start = gen.state
    with _generator.tally(gen) as taken:
        try:
            if records:
                return _materialize_deferred(module, gen, records)
            return _materialize_meta(module, gen, init)
        except BaseException:
            _generator.rewind(gen, start, taken.calls)
            raise


def _materialize_meta(module, gen, init):
    """Fresh CPU memory for every tensor, then the model's own init (or ``init``)
    under ``patch_init(gen)``; every tensor must have been written."""
    sites = _sites(module)
    _check_devices(sites)
    with torch.no_grad():
        meta_values = {(id(m), name): getattr(m, name)
                       for m in module.modules() if parametrize.is_parametrized(m)
                       for name in m.parametrizations}
    untied = _hf_tied_targets(module)
    snapshot = _Snapshot(module)
    try:
        fresh = {}
        for qualified, m, kind, name, t in sites:
            key = qualified if qualified in untied else id(t)
            if key not in fresh:
                fresh[key] = _fresh(t)
            (m._parameters if kind == "parameter" else m._buffers)[name] = fresh[key]
        _reset_fsdp_params(module)
        for t in fresh.values():
            storage = _memory(t).untyped_storage()
            _runtime.advise_huge_pages(storage.data_ptr(), storage.nbytes())
        versions = {id(t): t._version for t in fresh.values()}
        _initialize(module, gen, init, meta_values)
        left = [(q, t, m, kind) for q, t, m, kind in _unique(_sites(module))
                if id(t) in versions and not _written(t, versions)]
        if left:
            names = ", ".join(f"{kind} {q!r} ({type(m).__name__})" for q, _, m, kind in left)
            raise RuntimeError(
                f"materialize: nothing initialized {names}; its values would be "
                f"uninitialized memory. Initialize it in the module's reset_parameters "
                f"(for a Hugging Face model, in its _init_weights), or pass "
                f"init=fastinit.torch.reset_parameters (which replaces the model's own "
                f"scheme by torch's defaults); the model is unchanged, still on meta")
    except BaseException:
        snapshot.restore()
        _reset_fsdp_params(module)               # FSDP2 takes up the meta parameters again
        raise
    return module


def _initialize(module, gen, init, meta_values):
    with patch_init(gen), torch.no_grad(), torch.device("cpu"):
        _rebuild_parametrized(module, meta_values)
        for m, hook in _old_weight_norms(module):
            _rebuild_old_weight_norm(m, hook, f"{type(m).__name__}.{hook.name}")
        if init is not None:
            init(module, gen)
        elif _hf_model(module):
            before = {id(t): t._version for t in module.parameters()}
            _hf_init_weights(module)
            _reset_what_init_weights_left(module, before)
        else:
            _reset_own(module)
        for m, hook in _old_weight_norms(module):       # as its next forward will compute it
            setattr(m, hook.name, hook.compute_weight(m))


# --------------------------------------------------------------------------------------
# Models built by deferred_init: their recorded construction replayed
# --------------------------------------------------------------------------------------

def _attribute_tensors(module):
    """(module, name, tensor) of each meta tensor a module holds as a plain attribute
    (such as the weight old-style weight norm computes)."""
    out = []
    for m in {id(m): m for m in module.modules()}.values():
        for name, value in m.__dict__.items():
            if isinstance(value, torch.Tensor) and value.device.type == "meta":
                out.append((m, name, value))
    return out


def _record_of(records, t):
    return next((r for r in records if r.tracks(t)), None)


def _materialize_deferred(module, gen, records):
    """Replay each record for the tensors the model holds, then give every parameter,
    buffer and tensor attribute its replayed value (one tensor per tensor object)."""
    sites = _sites(module)
    attributes = [(m, name, t) for m, name, t in _attribute_tensors(module)
                  if _record_of(records, t) is not None]
    needed = {id(r): set() for r in records}
    for qualified, m, kind, name, t in sites:
        if _targets.is_dtensor(t) or _deferred._is_subclass(t):
            raise ValueError(f"materialize: {kind} {qualified!r} is a "
                             f"{type(t).__name__}; a model built by deferred_init is "
                             f"materialized whole on one process (shard it afterwards)")
        record = _record_of(records, t)
        if record is None:
            if t.device.type == "meta":
                raise RuntimeError(
                    f"materialize: {kind} {qualified!r} is on the meta device but was not "
                    f"made inside deferred_init (it has no record to replay); build it "
                    f"inside deferred_init too. The model is unchanged")
            continue                              # a CPU tensor made outside: kept as it is
        needed[id(record)].add(record.sid(t))
    for m, name, t in attributes:
        record = _record_of(records, t)
        needed[id(record)].add(record.sid(t))
    snapshot = _Snapshot(module)
    try:
        with gen.transaction():
            envs = {id(r): _deferred.replay(r, needed[id(r)], gen) for r in records}
        fresh = {}
        for qualified, m, kind, name, t in sites:
            record = _record_of(records, t)
            if record is None:
                continue
            if id(t) not in fresh:
                data = _deferred.tensor_for(record, envs[id(record)], t)
                fresh[id(t)] = _fresh(t, data.requires_grad_(False) if
                                      isinstance(t, nn.Parameter) else
                                      data.requires_grad_(t.requires_grad))
            (m._parameters if kind == "parameter" else m._buffers)[name] = fresh[id(t)]
        for m, name, t in attributes:
            record = _record_of(records, t)
            if id(t) not in fresh:
                fresh[id(t)] = _deferred.tensor_for(record, envs[id(record)], t)
            m.__dict__[name] = fresh[id(t)]
        _deferred.forget(module)
    except BaseException:
        snapshot.restore()
        raise
    return module
