"""A meta-device model allocated on the CPU and initialized by its own code, fast.

``materialize`` allocates every parameter and buffer (``to_empty``), advises the OS
to back the large ones with huge pages before their first write, and runs the
model's own initialization under ``patch_init``: a Hugging Face model's
``init_weights`` (its ``_init_weights`` scheme, tied weights, recomputed buffers),
any other module's ``reset_parameters``. torch's version counters then tell which
tensors were written; none may be left as uninitialized memory.
"""

import sys

import torch

from fastinit import _runtime
from fastinit import init as _fast
from fastinit._torch_patch import patch_init


def _state(module):
    """(qualified name, tensor, owning module, kind) of every parameter and buffer,
    each tensor once (tied weights under their first name)."""
    seen, out = set(), []
    for prefix, m in module.named_modules(remove_duplicate=False):
        for kind, tensors in (("parameter", m._parameters), ("buffer", m._buffers)):
            for name, t in tensors.items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                out.append((f"{prefix}.{name}" if prefix else name, t, m, kind))
    return out


def _hf_model(module):
    transformers = sys.modules.get("transformers")
    base = getattr(transformers, "PreTrainedModel", None) if transformers else None
    return base is not None and isinstance(module, base)


def _reset_own(module):
    """Each module's own reset, children first (the order construction runs them):
    ``reset_parameters``, else torch's private ``_reset_parameters`` (MultiheadAttention,
    Transformer), else ``reset_running_stats``."""
    for child in module.children():
        _reset_own(child)
    for method in ("reset_parameters", "_reset_parameters", "reset_running_stats"):
        reset = getattr(module, method, None)
        if callable(reset):
            reset()
            return


def _unwritten(module, versions):
    return [(name, t, m, kind) for name, t, m, kind in _state(module)
            if versions.get(id(t), (None, None))[0] is t and t._version == versions[id(t)][1]]


def materialize(module, generator=None, init=None):
    """Allocate a meta-device ``module`` on the CPU and initialize it; returns it.

    The model runs its own initialization with ``torch.nn.init`` filling through
    fastinit (``patch_init(generator)``): a Hugging Face model its ``init_weights()``
    (the library's scheme: ``_init_weights``, padding rows, norms, recomputed rotary
    and position buffers, tied weights), any other module each submodule's
    ``reset_parameters()`` (children first, as construction runs them; torch's
    ``_reset_parameters`` and ``reset_running_stats`` where that is what a module
    has). ``init(module, generator)``, if given, runs instead, e.g.
    ``fastinit.torch.reset_parameters`` for its one-pass default scheme.

    Every parameter and buffer must then have been written: a Hugging Face model's
    parameter its ``_init_weights`` left alone gets its module's
    ``reset_parameters()`` (what building it on the CPU gives); anything still
    unwritten raises RuntimeError naming it, never silently left as uninitialized
    memory.

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
    state = _state(module)
    for name, t, _, kind in state:
        if t.device.type != "meta":
            raise ValueError(f"materialize expects a model on the meta device; "
                             f"{kind} {name!r} is on {t.device}")
    module.to_empty(device="cpu")
    state = _state(module)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for _, t, _, _ in state}
    for address, nbytes in storages.items():
        _runtime.advise_huge_pages(address, nbytes)
    versions = {id(t): (t, t._version) for _, t, _, _ in state}

    with patch_init(gen), torch.no_grad(), torch.device("cpu"):
        if init is not None:
            init(module, gen)
        elif _hf_model(module):
            module.init_weights()
            for m in {id(m): m for _, _, m, kind in _unwritten(module, versions)
                      if kind == "parameter"}.values():
                if callable(getattr(m, "reset_parameters", None)):
                    m.reset_parameters()
        else:
            _reset_own(module)
    left = _unwritten(module, versions)
    if left:
        names = ", ".join(f"{kind} {name!r} ({type(m).__name__})" for name, _, m, kind in left)
        raise RuntimeError(f"materialize: nothing initialized {names}; its values would be "
                           f"uninitialized memory. Initialize it in the module's "
                           f"reset_parameters (or pass init=...)")
    return module
