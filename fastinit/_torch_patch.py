"""``patch_init``: inside a block, torch's random draws come from a fastinit.Generator.

Three pieces, none of which looks at other modules or imports anything:

- **Blocks.** A context variable holds the blocks this context (thread, or asyncio
  task) has entered and not exited, innermost last; the innermost one's generator
  draws. A block may be exited out of order (it is removed wherever it stands); one
  entered elsewhere cannot be exited here (RuntimeError, nothing changed).
- **The mode.** While any block of a thread is open, a torch function mode
  (``_DrawMode``) sits on that thread's mode stack. It hands the calls listed in
  ``_torch_draws.HANDLERS`` (``Tensor.uniform_``/``normal_``/..., ``torch.rand``/
  ``randn``/``randint``/``randperm``/``normal``/..., and the ``torch.nn.init``
  functions torch passes to modes whole) to their handler with the innermost
  block's generator, and passes everything else on. Modes are per thread, so other
  threads never see it; in a context without an open block it passes everything on.
- **trunc_normal_.** torch.nn.init.trunc_normal_ draws through a private helper it
  looks up in its own module; while any block is open that one name holds a
  stand-in that gives fastinit's trunc_normal_ to a tensor fastinit fills in a
  context with an open block, and torch's helper to anything else.

So every ``torch.nn.init`` function, however it was reached (``from torch.nn.init
import ...``, ``functools.partial``, a registry dict, a default argument,
transformers' table), draws from the block's generator.
"""

import contextvars
import functools
import inspect
import threading

import torch
from torch.overrides import TorchFunctionMode

from fastinit import _dtypes, _requests, _torch_draws
from fastinit import init as _fast
from fastinit._checks import ArgumentError
from fastinit._torch_draws import fastinit_fills

__all__ = ["patch_init", "active_generator", "fastinit_fills"]

# The open blocks of this context, innermost last: a tuple of _Entry.
_open = contextvars.ContextVar("fastinit_patch_blocks", default=())


class _Entry:
    __slots__ = ("block", "generator", "thread")

    def __init__(self, block, generator):
        self.block = block
        self.generator = generator
        self.thread = threading.get_ident()


def active_generator():
    """The generator of this context's innermost open block, or None (also while this
    thread records a deferred construction: its draws are recorded instead)."""
    blocks = _open.get()
    return blocks[-1].generator if blocks and not recording() else None


def recording():
    """Whether this thread is recording a deferred construction (``_deferred``)."""
    return _thread.recording > 0


class _DrawMode(TorchFunctionMode):
    """Hands torch's random calls to fastinit's handlers inside a block."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _torch_draws.HANDLERS.get(func)
        if handler is None and func not in _torch_draws.ESCAPES and \
                getattr(func, "__name__", None) not in _torch_draws.REBINDABLE:
            return func(*args, **kwargs)        # nearly every call: none of ours to answer
        blocks = _open.get()
        if blocks and not recording():
            if handler is None and getattr(func, "__name__", None) in _torch_draws.REBINDABLE:
                handler = _torch_draws.rebound_init_handler(func)
            if handler is not None and not _torch_draws.refused_on_nested(func, args, kwargs):
                return handler(blocks[-1].generator, func, args, kwargs)
            if func in _torch_draws.ESCAPES:
                _torch_draws.warn_escape(func, args, kwargs)
        return func(*args, **kwargs)


class _ThreadState(threading.local):
    """Per thread: the mode on its stack, how many of the thread's blocks are open, and
    whether it records a deferred construction. Class attributes give a thread that
    never set one its default (``getattr``'s default, by an AttributeError raised and
    caught, took a microsecond on each torch call in a block)."""

    mode = None
    count = 0
    recording = 0


_thread = _ThreadState()


def _push_mode():
    count = _thread.count
    if count == 0:
        _thread.mode = _DrawMode()
        torch._C._push_on_torch_function_stack(_thread.mode)
    _thread.count = count + 1


def _pop_mode():
    _thread.count -= 1
    if _thread.count:
        return
    mode, _thread.mode = _thread.mode, None
    stack = [torch._C._get_function_stack_at(i)
             for i in range(torch._C._len_torch_function_stack())]
    if not any(m is mode for m in stack):
        return                                      # someone else removed it already
    above = []
    while True:                                     # modes entered after ours stay, in order
        top = torch._C._pop_torch_function_stack()
        if top is mode:
            break
        above.append(top)
    for m in reversed(above):
        torch._C._push_on_torch_function_stack(m)


# torch.nn.init.trunc_normal_'s helper, replaced by a stand-in while any block is open.
_lock = threading.Lock()
_users = 0
_TRUNC_HELPER = "_no_grad_trunc_normal_"
_torch_trunc = getattr(torch.nn.init, _TRUNC_HELPER, None)
_KINDS = {dtype: d.kind for dtype, d in _dtypes.torch_dtypes(torch).items()}


def _trunc_stand_in(tensor, mean, std, a, b, generator=None):
    gen = active_generator()
    if gen is not None and generator is None:
        with _ModeAside():
            if fastinit_fills(tensor) and \
                    not _fastinit_refuses_trunc(tensor, mean, std, a, b):
                return _fast.trunc_normal_(tensor, mean, std, a, b, gen)
    # (Inside a block, torch's own algorithm draws through the block's handlers.)
    return _torch_trunc(tensor, mean, std, a, b, generator=generator)


class _ModeAside:
    """This thread's mode taken off the stack while fastinit works on its own (drawing
    nothing from torch), as torch takes it off while a handler runs, so that the torch
    calls checking and preparing a target skip it (trunc_normal_ of 64 x 64 in a
    block: 87 us with the mode in place, 34.5 without); left in place when another
    mode is above it."""

    __slots__ = ("mode",)

    def __enter__(self):
        mode, depth = _thread.mode, torch._C._len_torch_function_stack()
        self.mode = None
        if mode is not None and depth and \
                torch._C._get_function_stack_at(depth - 1) is mode:
            torch._C._pop_torch_function_stack()
            self.mode = mode

    def __exit__(self, *exc):
        if self.mode is not None:
            torch._C._push_on_torch_function_stack(self.mode)


def _fastinit_refuses_trunc(tensor, mean, std, a, b):
    """Whether fastinit's trunc_normal_ refuses arguments that torch's may take (a
    negative or NaN std, an infinite mean, a > b: torch's trunc_normal_ takes some,
    raises its own errors for others)."""
    try:
        _requests.trunc_normal_request_of_kind(_KINDS[tensor.dtype], mean, std, a, b)
    except ArgumentError:
        return True
    except TypeError:
        return False        # not numbers: fastinit's trunc_normal_ raises torch's TypeError
    return False


def _install_trunc():
    global _users
    with _lock:
        if _users == 0 and _torch_trunc is not None:
            setattr(torch.nn.init, _TRUNC_HELPER, _trunc_stand_in)
        _users += 1


def _uninstall_trunc():
    global _users
    with _lock:
        _users -= 1
        if _users == 0 and getattr(torch.nn.init, _TRUNC_HELPER, None) is _trunc_stand_in:
            setattr(torch.nn.init, _TRUNC_HELPER, _torch_trunc)


def installed():
    """Whether any block is open in any thread (trunc_normal_'s stand-in is in place)."""
    return _users > 0


class patch_init:
    """Inside this block, torch's random draws come from a fastinit generator.

    ``with fastinit.torch.patch_init(g):`` (or ``@patch_init(g)`` on a function,
    generator function or coroutine function) makes every draw this thread asks of
    torch's global generator on a CPU tensor come from ``generator`` (a
    fastinit.Generator; None: fastinit's default one) instead:

    - ``torch.nn.init``'s functions, however the code reached them, give fastinit's
      bits for the call: ``uniform_``, ``normal_``, ``trunc_normal_``,
      ``xavier_*``, ``kaiming_*`` fill as fastinit's functions of the same names do;
      ``constant_``, ``ones_``, ``zeros_``, ``eye_`` and ``dirac_`` draw nothing;
      ``orthogonal_`` and ``sparse_`` run torch's own code on fastinit's normal draws
      (and ``randperm``): the same law, not fastinit's ``orthogonal_``/``sparse_`` bits.
    - ``Tensor.uniform_``/``normal_``, ``torch.rand``/``randn``/``rand_like``/
      ``randn_like`` and ``torch.normal`` are fastinit's uniform and normal fills;
      ``random_``, ``randint``, ``randperm``, ``bernoulli``, ``exponential_``,
      ``log_normal_``, ``cauchy_``, ``geometric_`` are computed from fastinit's draws
      (``fastinit._torch_draws`` gives each formula).

    Arguments torch refuses raise torch's exception, with nothing drawn. Arguments
    torch takes are answered even where fastinit's own function refuses them: a
    ``normal_`` with a NaN or infinite mean or an infinite std gives mean + std * z on
    fastinit's standard normals z (every value infinite or NaN, as torch's); a
    ``trunc_normal_`` fastinit refuses (torch 2.13 reads a negative std as its
    absolute value) runs torch's own algorithm on fastinit's draws.

    DTensors placed by Shard or Replicate are filled like plain tensors, each rank
    its shard of the global fill. Calls that pass their own ``torch.Generator``,
    tensors on other devices (meta draws nothing) and other tensor subclasses with
    their own torch function or dispatch go to torch. The few random functions not answered (dropout in training,
    ``poisson``, ``multinomial``, ...) run on torch's generator with a
    ``TorchRNGWarning``. TorchScript code (``torch.jit.script``) does not consult
    function modes: its draws go to torch's generator unseen, without a warning
    (code compiled by ``torch.compile`` is answered as eager code is).

    Scope: the block is this thread's (and, under asyncio, this task's) alone;
    threads started inside it are outside it. Blocks nest (the innermost generator
    draws) and may be exited in any order. A block must be exited by the thread
    (context) that entered it: exiting it elsewhere raises RuntimeError and changes
    nothing. As a decorator, each call is its own block; for a generator or
    coroutine function the block is open only while its body runs, not while it is
    suspended. Entering and exiting imports and scans nothing (a few microseconds).
    """

    def __init__(self, generator=None):
        self.generator = _fast._generator(generator)

    def __enter__(self):
        _install_trunc()
        try:
            _push_mode()
        except BaseException:
            _uninstall_trunc()
            raise
        _open.set(_open.get() + (_Entry(self, self.generator),))
        return self.generator

    def __exit__(self, *exc):
        blocks = _open.get()
        here = threading.get_ident()
        for i in range(len(blocks) - 1, -1, -1):
            if blocks[i].block is self and blocks[i].thread == here:
                break
        else:
            raise RuntimeError("patch_init: this block is not open in this thread or context; "
                               "exit it where it was entered")
        _open.set(blocks[:i] + blocks[i + 1:])
        _pop_mode()
        _uninstall_trunc()
        return False

    def __call__(self, fn):
        """Decorate ``fn``: each call runs in its own block with this generator."""
        if inspect.isasyncgenfunction(fn):
            raise TypeError("patch_init cannot decorate an async generator function; "
                            "enter the block inside its body")
        block = functools.partial(patch_init, self.generator)
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_coroutine(*args, **kwargs):
                return await _Stepped(fn(*args, **kwargs), block)
            return run_coroutine
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def run_generator(*args, **kwargs):
                return (yield from _steps(fn(*args, **kwargs), block))
            return run_generator

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with block():
                return fn(*args, **kwargs)
        return run


def _steps(inner, block):
    """Drive a generator or coroutine ``inner``, each of its steps inside a fresh
    ``block()``, nothing of the block open while it is suspended."""
    send, throw = None, None
    while True:
        try:
            with block():
                value = inner.send(send) if throw is None else inner.throw(throw)
        except StopIteration as stop:
            return stop.value
        send, throw = None, None
        try:
            send = yield value
        except GeneratorExit:
            with block():
                inner.close()
            raise
        except BaseException as exc:               # thrown in: passed to the body
            throw = exc


class _Stepped:
    """An awaitable running a coroutine step by step inside blocks."""

    def __init__(self, coroutine, block):
        self._coroutine = coroutine
        self._block = block

    def __await__(self):
        return (yield from _steps(self._coroutine, self._block))
