"""fastinit.Generator: a keyed, counted stream of fills (docs/stream.md)."""

import contextlib
import contextvars
import os
import threading
import weakref
from numbers import Integral

import numpy as np

from fastinit import _executor, _requests, _targets
from fastinit._engine import call_seed as _call_seed

_MASK64 = (1 << 64) - 1

# A substream's SeedSequence extends its parent's spawn key with this tag and its word:
# no child of the parent (spawn keys ending in 0, 1, 2, ...) can have it.
_SUBSTREAM_TAG = 1 << 64

# The tallies open in this context (a thread, or an asyncio task): each counts the
# calls the context takes from its generator (threads started inside are not counted).
_tallies = contextvars.ContextVar("fastinit_tallies", default=())

# Every live generator, so that a forked child can give each a fresh lock (a lock
# held by a parent's thread at fork would never be released in the child).
_live = weakref.WeakSet()


def _is_int(x):
    """An int as the generator takes counts, seeds and state fields: Python's or
    numpy's, never a bool."""
    return isinstance(x, Integral) and not isinstance(x, (bool, np.bool_))


def _seed_sequence(seed):
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, (list, tuple, np.ndarray)):
        return np.random.SeedSequence(_entropy_words(seed))
    if not _is_int(seed):
        raise TypeError(
            "seed must be None, a non-negative int, a list, tuple or 1-D integer array "
            f"of them or a numpy.random.SeedSequence, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.SeedSequence(int(seed))


def _entropy_words(seed):
    """A seed sequence (list, tuple or one-dimensional integer array) as the list of
    non-negative ints SeedSequence takes as entropy, as numpy's default_rng takes it;
    not its quirks: bools, nested sequences, arrays of more dimensions and an empty
    sequence (which SeedSequence takes as the seed 0) are refused. As there, zeros at
    the end of a sequence shorter than SeedSequence's pool do not change the key."""
    if isinstance(seed, np.ndarray):
        if seed.dtype.kind not in "iu":
            raise TypeError(f"a seed array must hold integers, got dtype {seed.dtype}")
        if seed.ndim != 1:
            raise ValueError(f"a seed array must be one-dimensional, got shape {seed.shape}")
    words = []
    for w in seed:
        if not _is_int(w):
            raise TypeError(f"a seed sequence must hold ints, got {type(w).__name__}")
        if w < 0:
            raise ValueError(f"a seed sequence must hold non-negative ints, got {w}")
        words.append(int(w))
    if not words:
        raise ValueError("a seed sequence must not be empty (SeedSequence would take it as 0)")
    return words


class Generator:
    """A source of reproducible fills.

    Its state is a 128-bit key, drawn from a ``numpy.random.SeedSequence``, and a
    call counter. Each fill takes the next counter value, whatever its size, and
    the value it writes at global element index ``i`` is a pure function of
    (key, counter, i): the same for any thread count, instruction set, memory
    layout or sharding of the target (see docs/stream.md).

    Parameters
    ----------
    seed : None, int, sequence of ints or numpy.random.SeedSequence
        None draws fresh entropy from the OS; an int >= 0, a sequence of them (a
        list, tuple or 1-D integer array, e.g. ``[rank, epoch]``: its entropy, as
        numpy's ``default_rng`` takes it) or a SeedSequence seeds the key through
        ``SeedSequence.generate_state``.

    Generators are thread-safe: concurrent fills each take a distinct counter.
    """

    def __init__(self, seed=None):
        self._lock = threading.RLock()
        _live.add(self)
        self._reseed(seed)

    def _reseed(self, seed):
        seq = _seed_sequence(seed)
        k0, k1 = (int(w) for w in seq.generate_state(2, np.uint64))
        with self._lock:
            self._seed_seq = seq
            self._key = (k0, k1)
            self._counter = 0

    def call_seed(self):
        """Take one call and return its call seed sigma (docs/stream.md, section 2):
        the seed of every value of one fill. Advances the generator by one call."""
        with self._lock:
            c = self._counter
            if c > _MASK64:
                raise OverflowError("this generator has made 2**64 calls")
            self._counter = c + 1
            k0, k1 = self._key
        if _tallies.get():
            _count(self, 1)
        return _call_seed(k0, k1, c)

    def advance(self, calls=1):
        """Take ``calls`` calls without filling anything (what a call on a tensor
        without memory does); returns the generator. Constant time for any count;
        OverflowError, the generator unchanged, past its 2**64 calls. TypeError for a
        count that is no int (as ``spawn``), ValueError for a negative one."""
        if not _is_int(calls):
            raise TypeError(f"calls must be an int, got {type(calls).__name__}")
        if calls < 0:
            raise ValueError(f"calls must be non-negative, got {calls}")
        with self._lock:
            if self._counter + int(calls) > _MASK64 + 1:
                raise OverflowError(f"advancing by {calls} calls passes this generator's "
                                    f"2**64 calls (it has made {self._counter})")
            self._counter += int(calls)
        if _tallies.get():
            _count(self, int(calls))
        return self

    def substream(self, word):
        """A generator in this one's state whose key has ``word`` XORed into its
        second half: its next fill has the same counter as this one's next fill, on
        an independent stream (docs/stream.md, section 7: sparse_'s zero pattern).
        Its ``spawn()`` draws from a SeedSequence of its own (the parent's, its spawn
        key extended by the word), so spawning from it leaves the parent's spawns
        as they were."""
        word = int(word) & _MASK64
        with self._lock:
            child = Generator.__new__(Generator)
            child._lock = threading.RLock()
            _live.add(child)
            seq = self._seed_seq
            child._seed_seq = np.random.SeedSequence(
                seq.entropy, spawn_key=(*seq.spawn_key, _SUBSTREAM_TAG, word),
                pool_size=seq.pool_size)
            child._key = (self._key[0], self._key[1] ^ word)
            child._counter = self._counter
        return child

    @contextlib.contextmanager
    def transaction(self):
        """Hold the generator for a block of calls: other threads that use it wait
        until the block ends, and if the block raises, the generator is put back
        where it was before it. (init_all runs a plan's calls in one.)"""
        with self._lock:
            before = self._key, self._counter
            try:
                yield self
            except BaseException:
                undone = self._counter - before[1] if self._key == before[0] else 0
                self._key, self._counter = before
                if undone > 0:
                    _count(self, -undone)                # (all this thread's: it held the lock)
                raise

    def _fill(self, request, out, global_shape, global_offset, *args):
        """One fill of ``out`` as one call: the target and the arguments are checked
        (``request`` gives the kernel and its parameters), then the call is taken and
        the fill submitted. A meta tensor, which has no memory, is checked and still
        takes its call."""
        target = _targets.target(out, global_shape, global_offset)
        kernel, params = request(target, *args)
        params["sigma"] = self.call_seed()
        _executor.submit(target, kernel, params)
        return _targets.written(out)

    @property
    def state(self):
        """``{"key": (k0, k1), "counter": n, "spawned": s}``: the stream's key and call
        counter, and how many children ``spawn`` has made. Assign such a dict to
        restore them (``spawned`` may be left out: spawning then goes on as it was)."""
        with self._lock:
            return {"key": self._key, "counter": self._counter,
                    "spawned": self._seed_seq.n_children_spawned}

    @state.setter
    def state(self, value):
        if not isinstance(value, dict):
            raise TypeError(f"state must be a dict, got {type(value).__name__}")
        missing = {"key", "counter"} - set(value)
        unknown = set(value) - {"key", "counter", "spawned"}
        if missing or unknown:
            raise ValueError(f"state must be a dict {{'key': (k0, k1), 'counter': n[, "
                             f"'spawned': s]}}; missing {sorted(missing)}, unknown "
                             f"{sorted(unknown)}")
        key = value["key"]
        if not isinstance(key, (tuple, list)):
            raise TypeError(f"state['key'] must be a tuple of two ints, got "
                            f"{type(key).__name__}")
        if len(key) != 2:
            raise ValueError(f"state['key'] must be two 64-bit words, got {key!r}")
        k0, k1 = (_state_int(w, "key words") for w in key)
        counter = _state_int(value["counter"], "counter")
        spawned = _state_int(value.get("spawned", 0), "spawned")
        if not (k0 <= _MASK64 and k1 <= _MASK64 and counter <= _MASK64 + 1):
            raise ValueError("state key words must be unsigned 64-bit integers, and the "
                             "counter at most 2**64")
        with self._lock:
            self._key = (k0, k1)
            self._counter = counter
            if "spawned" in value:
                seq = self._seed_seq
                self._seed_seq = np.random.SeedSequence(
                    seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size,
                    n_children_spawned=spawned)

    def spawn(self, n):
        """``n`` independent child generators, from ``SeedSequence.spawn``. TypeError
        for an ``n`` that is no int, ValueError for a negative one (SeedSequence would
        spawn nothing and say nothing)."""
        if not _is_int(n):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        with self._lock:
            children = self._seed_seq.spawn(n)
        return [Generator(s) for s in children]

    def uniform_(self, out, low=0.0, high=1.0, *, global_shape=None, global_offset=None):
        """Fill ``out`` in place with values uniform on [low, high); returns ``out``.

        For float32, u = (32-bit half >> 8) * 2**-24; for float64, u = (x >> 11) * 2**-53;
        the value is ``low + (high - low) * u`` in the array's precision, and is
        never ``high``: a product that rounds up to ``high`` becomes the largest
        value below it. With ``global_shape`` and ``global_offset``, ``out`` is that
        block of a larger virtual tensor and receives exactly its values.

        Raises fastinit.ArgumentError (a RuntimeError, as ``torch.Tensor.uniform_``,
        and a ValueError) when low > high (or a bound is NaN) or when high - low
        overflows the dtype; TypeError or ValueError for an array that cannot be
        written. ``out`` is untouched then.
        """
        return self._fill(_requests.uniform_request, out, global_shape, global_offset, low, high)

    def normal_(self, out, mean=0.0, std=1.0, *, global_shape=None, global_offset=None):
        """Fill ``out`` in place with ``mean + std * z``, z standard normal; returns ``out``.

        z comes from a 256-layer Ziggurat (Marsaglia and Tsang) with the exact tail
        algorithm: a float32 candidate takes 32 random bits, a float64 one 64; the
        ~1% of candidates outside the layers' rectangles are completed from their
        own lane's stream, so every block stays independent (docs/stream.md). The
        result is ``mean + std * z`` in the array's precision; ``std == 0`` fills
        with ``mean``.

        Raises fastinit.ArgumentError (a ValueError, and a RuntimeError as torch
        raises) for std < 0 ("normal expects std >= 0.0") and for a mean or std
        that is NaN or infinite; ``out`` is untouched then.
        """
        return self._fill(_requests.normal_request, out, global_shape, global_offset, mean, std)

    def standard_normal_(self, out, *, global_shape=None, global_offset=None):
        """Fill ``out`` in place with standard normal values; returns ``out``.

        The same values as ``normal_(out, 0.0, 1.0)``.
        """
        return self.normal_(out, 0.0, 1.0, global_shape=global_shape,
                            global_offset=global_offset)

    def trunc_normal_(self, out, mean=0.0, std=1.0, a=-2.0, b=2.0, *, global_shape=None,
                      global_offset=None):
        """Fill ``out`` in place with normal(mean, std) values conditioned on [a, b].

        Exact rejection sampling (normal proposals when [a, b] holds more than 30%
        of the mass, uniform proposals otherwise), so it stays correct for small
        std and narrow intervals in every dtype; values never leave [a, b].
        """
        return self._fill(_requests.trunc_normal_request, out, global_shape, global_offset, mean,
                          std, a, b)

    def random_raw_(self, out, *, global_shape=None, global_offset=None):
        """Fill a uint64 array with the stream's raw 64-bit outputs; returns ``out``.

        Element i receives raw output (i mod 2048) of its block (docs/stream.md,
        section 3): the bits every fill is made of, for statistical test batteries.
        """
        return self._fill(_requests.raw_request, out, global_shape, global_offset)

    def __getstate__(self):
        with self._lock:
            return {"seed_seq": self._seed_seq, "key": self._key, "counter": self._counter}

    def __setstate__(self, state):
        self._lock = threading.RLock()
        _live.add(self)
        self._seed_seq = state["seed_seq"]
        self._key = tuple(state["key"])
        self._counter = state["counter"]

    def __repr__(self):
        k0, k1 = self._key
        return f"fastinit.Generator(key=(0x{k0:016x}, 0x{k1:016x}), counter={self._counter})"


def _state_int(x, what):
    """A state field as an int: ints only (numpy's too), never bools, floats or text."""
    if not _is_int(x):
        raise TypeError(f"state {what} must be ints, got {type(x).__name__}")
    if x < 0:
        raise ValueError(f"state {what} must be non-negative, got {x}")
    return int(x)


class _Tally:
    __slots__ = ("generator", "calls")

    def __init__(self, generator):
        self.generator, self.calls = generator, 0


def _count(gen, calls):
    for tally in _tallies.get():
        if tally.generator is gen:
            tally.calls += calls


@contextlib.contextmanager
def tally(gen):
    """Count, in the yielded tally's ``calls``, the calls this context takes from
    ``gen`` inside the block (not those of threads it starts, nor of other threads)."""
    t = _Tally(gen)
    token = _tallies.set(_tallies.get() + (t,))
    try:
        yield t
    finally:
        _tallies.reset(token)


def rewind(gen, start, taken):
    """Put ``gen`` back to ``start`` (its ``state``) if the ``taken`` calls since are
    all it has handed out: calls another thread took meanwhile are never handed out
    twice. Calls put back (here, or by a ``transaction`` that raised) leave the
    tallies of the context that took them, so an enclosing rewind still matches."""
    with gen.transaction():
        state = gen.state
        if state["key"] == start["key"] and state["counter"] == start["counter"] + taken:
            gen.state = {"key": start["key"], "counter": start["counter"]}
            _count(gen, -taken)


def _after_fork_in_child():
    """A forked child: fresh locks (their holders are threads of the parent)."""
    global _default_lock
    for gen in list(_live):
        gen._lock = threading.RLock()
    _default_lock = threading.Lock()


_default = None
_default_lock = threading.Lock()


def default_generator():
    """The module's generator, used by functions called with ``generator=None``.

    It is seeded from OS entropy on first use; ``manual_seed`` reseeds it.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Generator()
    return _default


def manual_seed(seed):
    """Reseed the default generator in place with ``seed`` (any seed ``Generator``
    takes); returns it. A seed it refuses leaves the generator as it was."""
    gen = default_generator()
    gen._reseed(seed)
    return gen


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
