"""torch.nn.init's functions filling through fastinit, for code that calls them itself.

While a ``patch_init`` block is active, every place torch.nn.init's functions are
bound (torch.nn.init, the torch.nn.modules that imported them by name, any other
loaded module that did the same, and the table transformers' ``initialization``
module captured at its import) holds a stand-in with torch's signature. A stand-in
fills through fastinit with the block's generator when the call comes from the
thread (the context) that entered the block and the tensor is one fastinit fills;
otherwise it calls torch's own function with the same arguments. So the patch is
visible to other threads only as the same torch behaviour they had.

The stand-ins are installed when the first block is entered (in any thread) and
removed when the last one exits, under a lock.
"""

import contextlib
import contextvars
import functools
import inspect
import sys
import threading

import torch

from fastinit import init as _fast

# torch.nn.init's functions that fastinit fills, by name.
NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
         "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
         "kaiming_normal_", "orthogonal_", "sparse_")

_FILLED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter, torch.nn.Buffer)

# The generator of the innermost block entered by this context (None: not patched here).
_active = contextvars.ContextVar("fastinit_patch_generator", default=None)

_lock = threading.Lock()
_depth = 0            # blocks entered and not yet exited, all threads
_installed = []       # (namespace dict, name, torch's function, stand-in)


def fastinit_fills(tensor):
    """Whether a stand-in fills ``tensor`` through fastinit (else torch's function
    does): a plain CPU tensor or Parameter, strided, of a floating dtype fastinit
    writes. Meta tensors, other devices, integer and complex dtypes and tensor
    subclasses (fake, functional, distributed tensors...) go to torch."""
    return (type(tensor) in _PLAIN_TYPES and tensor.device.type == "cpu"
            and tensor.layout == torch.strided and tensor.dtype in _FILLED_DTYPES)


def _stand_in(torch_fn, fast_fn):
    signature = inspect.signature(torch_fn)
    takes_generator = "generator" in signature.parameters

    @functools.wraps(torch_fn)
    def stand_in(*args, **kwargs):
        generator = _active.get()
        if generator is None:
            return torch_fn(*args, **kwargs)
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError:
            return torch_fn(*args, **kwargs)        # torch's own error for a bad call
        if arguments.get("generator") is not None or not isinstance(
                arguments.get("tensor"), torch.Tensor) or not fastinit_fills(arguments["tensor"]):
            return torch_fn(*args, **kwargs)
        if takes_generator:
            arguments["generator"] = generator
        return fast_fn(**arguments)

    stand_in.__fastinit_original__ = torch_fn
    return stand_in


def _binding_sites(originals):
    """Every (namespace dict, name) holding one of torch's functions ``originals``
    ({id: function}): module globals of every loaded module, and transformers'
    table of the torch functions it captured."""
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            if id(value) in originals and originals[id(value)] is value:
                yield namespace, name
    hf = sys.modules.get("transformers.initialization")
    table = getattr(hf, "TORCH_INIT_FUNCTIONS", None)
    if isinstance(table, dict):
        for name, value in table.items():
            if id(value) in originals and originals[id(value)] is value:
                yield table, name


def _torch_function(name):
    """torch's own ``torch.nn.init.<name>``, even while another library has replaced
    it there (transformers does, inside its ``initialize_weights``)."""
    fn = getattr(torch.nn.init, name)
    fn = getattr(fn, "__fastinit_original__", fn)
    if getattr(fn, "__module__", None) != "torch.nn.init":
        hf = sys.modules.get("transformers.initialization")
        fn = getattr(hf, "TORCH_INIT_FUNCTIONS", {}).get(name, fn)
        fn = getattr(fn, "__fastinit_original__", fn)
    return fn


def _install():
    originals, stand_ins = {}, {}
    for name in NAMES:
        fn = _torch_function(name)
        originals[id(fn)] = fn
        stand_ins[id(fn)] = _stand_in(fn, getattr(_fast, name))
    for namespace, name in list(_binding_sites(originals)):
        original = namespace[name]
        stand_in = stand_ins[id(original)]
        namespace[name] = stand_in
        _installed.append((namespace, name, original, stand_in))


def _uninstall():
    # A site whose value changed since (another library's patch in place, not yet
    # restored) keeps it: its owner will put our stand-in back, which then only
    # passes calls on to torch.
    while _installed:
        namespace, name, original, stand_in = _installed.pop()
        if namespace.get(name) is stand_in:
            namespace[name] = original


def installed():
    """Whether the stand-ins are in place (some patch_init block is active)."""
    return bool(_installed)


class patch_init(contextlib.ContextDecorator):
    """Make ``torch.nn.init``'s functions fill through fastinit, in this block.

    Within the block (or the decorated function), calls from this thread to
    ``uniform_``, ``normal_``, ``trunc_normal_``, ``constant_``, ``ones_``,
    ``zeros_``, ``eye_``, ``dirac_``, ``xavier_*``, ``kaiming_*``, ``orthogonal_``
    and ``sparse_`` (through ``torch.nn.init``, the modules that imported them, or
    Hugging Face transformers' ``initialization``) draw from ``generator`` (a
    fastinit.Generator; None: the default one) with torch's distributions,
    arguments, errors and warnings. Modules' own initialization (``Linear()``,
    ``reset_parameters()``, a Hugging Face model's ``init_weights()``) therefore
    runs at fastinit's speed and reproducibly.

    Calls go to torch's own function, unchanged, when fastinit does not fill the
    tensor (meta or other devices, integer or complex dtypes, tensor subclasses)
    or when they pass their own ``torch.Generator``. One difference: torch cannot
    take ``orthogonal_`` of a float16 or bfloat16 tensor (NotImplementedError);
    fastinit fills it.

    The patch replaces process-global functions while any block is active, but a
    replaced function fills through fastinit only for calls from the thread that
    entered the block (threads it starts are not inside it); calls from other
    threads reach torch's function. Blocks nest (the innermost generator is used)
    and may be used from several threads at once; torch's functions are back in
    place when the last block exits, also on an exception.
    """

    def __init__(self, generator=None):
        self.generator = _fast._generator(generator)
        self._tokens = []

    def _recreate_cm(self):
        return patch_init(self.generator)        # each decorated call: its own block

    def __enter__(self):
        global _depth
        with _lock:
            if _depth == 0:
                _install()
            _depth += 1
        self._tokens.append(_active.set(self.generator))
        return self.generator

    def __exit__(self, *exc):
        global _depth
        _active.reset(self._tokens.pop())
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()
        return False
