import copy
import math
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import reference as ref
import fastinit


def draw(g, n=1000, dtype=np.float64):
    return g.uniform_(np.empty(n, dtype))


def test_seed_forms():
    a = fastinit.Generator(42).state
    b = fastinit.Generator(np.random.SeedSequence(42)).state
    assert a == b
    assert a["key"] == tuple(int(w) for w in np.random.SeedSequence(42).generate_state(2, np.uint64))
    assert fastinit.Generator().state["key"] != fastinit.Generator().state["key"]
    assert fastinit.Generator(np.uint8(42)).state == a


@pytest.mark.parametrize("seed", [[1, 2], (1, 2), np.array([1, 2]), np.array([1, 2], np.uint64),
                                  [np.int8(1), 2], [2**70, 0], [1, 2, 0]])
def test_sequence_seeds_as_numpy_takes_them(seed):
    # A sequence of ints is SeedSequence entropy, as numpy's default_rng takes it: the
    # same key as the SeedSequence of it, and a generator that spawns, pickles and
    # continues as any other.
    entropy = [int(w) for w in seed]
    g = fastinit.Generator(seed)
    assert g.state["key"] == tuple(
        int(w) for w in np.random.SeedSequence(entropy).generate_state(2, np.uint64))
    assert g.state == fastinit.Generator(np.random.SeedSequence(entropy)).state
    first = draw(g)
    np.testing.assert_array_equal(draw(pickle.loads(pickle.dumps(g))), draw(g))
    np.testing.assert_array_equal(first, draw(fastinit.Generator(list(seed))))
    kids = [draw(k) for k in fastinit.Generator(seed).spawn(2)]
    again = [draw(k) for k in fastinit.Generator(np.random.SeedSequence(entropy)).spawn(2)]
    for k, j in zip(kids, again):
        np.testing.assert_array_equal(k, j)


def test_sequence_seeds_differ_by_content_and_order():
    keys = {fastinit.Generator(s).state["key"] for s in ([1, 2], [2, 1], [1, 2, 5], [1, 3], 1)}
    assert len(keys) == 5


@pytest.mark.parametrize("bad, exc, message", [
    (-1, ValueError, "non-negative"), (1.5, TypeError, "seed must be"),
    ("1", TypeError, "seed must be"), (True, TypeError, "seed must be"),
    ({1, 2}, TypeError, "seed must be"), (range(2), TypeError, "list, tuple or 1-D"), ([1, -1], ValueError, "non-negative ints"),
    ([1.5], TypeError, "must hold ints"), ([True], TypeError, "must hold ints"),
    ([[1]], TypeError, "must hold ints"), (["1"], TypeError, "must hold ints"),
    (np.array([1.5]), TypeError, "must hold integers"),
    (np.array([[1, 2]]), ValueError, "one-dimensional"),
    (np.array([-1]), ValueError, "non-negative ints"), ([], ValueError, "must not be empty"),
    (np.array([], np.int64), ValueError, "must not be empty")])
def test_bad_seeds(bad, exc, message):
    with pytest.raises(exc, match=message):
        fastinit.Generator(bad)


def test_same_seed_same_values_different_seed_different_values():
    assert np.array_equal(draw(fastinit.Generator(1)), draw(fastinit.Generator(1)))
    assert not np.array_equal(draw(fastinit.Generator(1)), draw(fastinit.Generator(2)))


def test_spawn_children_are_distinct_and_reproducible():
    kids = fastinit.Generator(3).spawn(4)
    values = [draw(k) for k in kids]
    assert len({v.tobytes() for v in values}) == 4
    again = [draw(k) for k in fastinit.Generator(3).spawn(4)]
    for v, w in zip(values, again):
        np.testing.assert_array_equal(v, w)
    # Spawning twice gives new children, as SeedSequence.spawn does.
    g = fastinit.Generator(3)
    first, second = g.spawn(1)[0], g.spawn(1)[0]
    assert first.state["key"] != second.state["key"]
    # A negative count spawned nothing, silently; text or None failed inside
    # SeedSequence ("unsupported operand type(s) for +").
    for n, exc in ((-1, ValueError), (None, TypeError), ("2", TypeError), (2.0, TypeError),
                   (True, TypeError)):
        with pytest.raises(exc, match="n must be"):
            g.spawn(n)
    assert g.spawn(0) == [] and len(g.spawn(np.int64(2))) == 2


def test_pickle_and_deepcopy_continue_the_stream():
    g = fastinit.Generator(8)
    draw(g)
    for clone in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        assert clone.state == g.state
        np.testing.assert_array_equal(draw(clone), draw(copy.deepcopy(g)))
    clone = pickle.loads(pickle.dumps(g))
    assert clone.spawn(1)[0].state == g.spawn(1)[0].state


def test_state_roundtrip_and_validation():
    g = fastinit.Generator(5)
    draw(g)
    saved = g.state
    x = draw(g)
    g.state = saved
    np.testing.assert_array_equal(draw(g), x)
    for bad in [{}, {"key": (1,), "counter": 0}, {"key": (1, 2), "counter": -1},
                {"key": (2**64, 0), "counter": 0}, {"key": (1, 2), "counter": 0, "x": 1}]:
        with pytest.raises(ValueError):
            g.state = bad
    # Types as numpy's bit generators take them: ints only.
    for bad in [None, {"key": (1.0, 2), "counter": 0}, {"key": (1, 2), "counter": 1.5},
                {"key": "12", "counter": 0}, {"key": (True, 2), "counter": 0},
                {"key": (1, 2), "counter": False}, {"key": (1, 2), "counter": "3"},
                {"key": (1, 2), "counter": 0, "spawned": 0.0}]:
        with pytest.raises(TypeError):
            g.state = bad
    assert g.state == saved | {"counter": saved["counter"] + 1}


def test_state_restores_spawn_and_substreams_spawn_apart():
    g = fastinit.Generator(21)
    saved = g.state
    first = [c.state for c in g.spawn(3)]
    g.state = saved
    assert [c.state for c in g.spawn(3)] == first
    # A substream's spawns leave the parent's alone, and differ from them.
    parent, twin = fastinit.Generator(21), fastinit.Generator(21)
    sub = parent.substream(0x77)
    sub_children = [c.state["key"] for c in sub.spawn(2)]
    assert [c.state for c in parent.spawn(2)] == [c.state for c in twin.spawn(2)]
    assert not set(sub_children) & {c.state["key"] for c in fastinit.Generator(21).spawn(2)}


def test_advance_is_constant_time_and_all_or_nothing():
    g = fastinit.Generator(2)
    g.advance(2**40)
    assert g.state["counter"] == 2**40
    g.advance(np.uint64(2**63))
    assert g.state["counter"] == 2**40 + 2**63
    g.state = {"key": g.state["key"], "counter": 2**64 - 1}
    with pytest.raises(OverflowError):
        g.advance(2)
    assert g.state["counter"] == 2**64 - 1
    g.advance(1)
    with pytest.raises(OverflowError):
        g.uniform_(np.empty(3))
    assert g.state["counter"] == 2**64


FORK_WITH_HELD_TRANSACTION = """
import os, threading, numpy as np, fastinit
g = fastinit.Generator(0)
held, release = threading.Event(), threading.Event()

def hold():
    with g.transaction():
        held.set()
        release.wait(30)

t = threading.Thread(target=hold)
t.start()
held.wait(30)
pid = os.fork()
if pid == 0:
    g.normal_(np.empty(10))                     # the parent's thread holds the lock
    os._exit(0)
_, status = os.waitpid(pid, 0)
release.set()
t.join()
print("child", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_another_thread_holds_the_generator():
    done = subprocess.run([sys.executable, "-c", FORK_WITH_HELD_TRANSACTION],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["child", "0"], done.stderr


def test_repr():
    g = fastinit.Generator(0)
    draw(g)
    k0, k1 = g.state["key"]
    assert repr(g) == f"fastinit.Generator(key=(0x{k0:016x}, 0x{k1:016x}), counter=1)"


def test_default_generator_and_manual_seed():
    g = fastinit.manual_seed(99)
    assert g is fastinit.default_generator()
    assert g.state == fastinit.Generator(99).state
    x = draw(g)
    assert fastinit.manual_seed(99) is g
    np.testing.assert_array_equal(draw(g), x)
    # Every seed form Generator takes; a bad seed leaves the generator as it was.
    assert fastinit.manual_seed([4, 2]).state == fastinit.Generator([4, 2]).state
    before = g.state
    for bad in ([1, -1], [], 1.5):
        with pytest.raises((TypeError, ValueError)):
            fastinit.manual_seed(bad)
        assert g.state == before


def test_failed_call_does_not_advance():
    g = fastinit.Generator(1)
    with pytest.raises(RuntimeError):
        g.uniform_(np.empty(10), 1.0, 0.0)
    with pytest.raises(TypeError):
        g.uniform_(np.empty(10, np.int32))
    assert g.state["counter"] == 0


def test_threads_sharing_a_generator_get_distinct_calls():
    g = fastinit.Generator(77)
    n_threads, per_thread = 8, 25
    out = [[None] * per_thread for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)

    def work(t):
        barrier.wait()
        for i in range(per_thread):
            out[t][i] = draw(g, 64)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert g.state["counter"] == n_threads * per_thread
    # Every call got its own counter: the set of results is exactly calls 0..199.
    key = g.state["key"]
    got = sorted(a.tobytes() for row in out for a in row)
    want = sorted(ref.uniform_fill(key, c, (64,), np.float64).tobytes()
                  for c in range(n_threads * per_thread))
    assert got == want


def test_python_threads_filling_different_arrays_concurrently():
    shape = (700, 3000)
    want = [fastinit.Generator(s).uniform_(np.empty(shape, np.float32)) for s in range(4)]
    got = [np.empty(shape, np.float32) for _ in range(4)]
    threads = [threading.Thread(target=fastinit.Generator(s).uniform_, args=(got[s],))
               for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, a in zip(want, got):
        np.testing.assert_array_equal(a, w)


def test_advance_substream_and_transaction():
    g = fastinit.Generator(4)
    assert g.advance(3) is g and g.state["counter"] == 3
    # A count that is no int is a TypeError, as spawn's (it was a ValueError).
    for bad, exc in ((-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError),
                     (None, TypeError), (np.float64(2), TypeError)):
        with pytest.raises(exc, match="calls must be"):
            g.advance(bad)
    assert g.state["counter"] == 3
    assert g.advance(np.int64(0)).state["counter"] == 3
    # A substream: the same counter, key word 1 XORed, an independent stream.
    sub = g.substream(0x1234)
    assert sub.state == {"key": (g.state["key"][0], g.state["key"][1] ^ 0x1234), "counter": 3,
                         "spawned": 0}
    a = sub.uniform_(np.empty(100))
    twin = fastinit.Generator(4)
    twin.state = {"key": (g.state["key"][0], g.state["key"][1] ^ 0x1234), "counter": 3}
    np.testing.assert_array_equal(a, twin.uniform_(np.empty(100)))
    assert g.state["counter"] == 3 and not np.array_equal(a, g.uniform_(np.empty(100)))
    # A transaction puts the generator back when its block raises.
    before = g.state
    with pytest.raises(KeyError):
        with g.transaction():
            g.advance(5)
            raise KeyError("out")
    assert g.state == before
    with g.transaction():
        g.advance(2)
    assert g.state["counter"] == before["counter"] + 2


def test_scalar_bits_match_numpys_casts():
    # _dtypes.bits for float32 and float64 (struct) against numpy's scalar casts: doubles
    # at, just beside and halfway between float32 neighbours (ties to even) on every
    # exponent and sign, float32's subnormals and overflow edge, zeros, infinities and
    # NaNs with payloads and signs.
    from fastinit import _dtypes
    exps = np.arange(255, dtype=np.uint32) << np.uint32(23)              # finite exponents
    mant = np.array([0, 1, 2, 0x400000, 0x7FFFFE, 0x7FFFFF], np.uint32)
    f32 = ((exps[:, None] | mant[None, :]).ravel()).view(np.float32)
    with np.errstate(over="ignore"):
        up = np.nextafter(f32, np.float32(np.inf)).astype(np.float64)
    f32 = f32.astype(np.float64)
    halfway = (f32 + up) / 2                                       # exact in float64
    values = np.concatenate([f32, halfway, np.nextafter(halfway, np.inf),
                             np.nextafter(halfway, -np.inf)])
    values = np.concatenate([values, -values, [0.0, -0.0, np.inf, -np.inf, 3.4028235677973366e38,
                                               1e-46, 7e-46, 1e300, 5e-324]])
    values = values[np.abs(values) < 3.4028235677973366e38]      # beyond: numpy warns (inf)
    nans = np.array([0x7FF8000000000000, 0xFFF8000000000001, 0x7FF4000000000000 | 0xABCDE << 29,
                     0x7FF0000000000001], np.uint64).view(np.float64)
    with np.errstate(invalid="ignore"):                                 # (NaN casts)
        for v in [*values, *nans]:
            assert _dtypes.bits(float(v), _dtypes.FLOAT32.kind) == \
                int(np.float32(v).view(np.uint32))
            assert _dtypes.bits(float(v), _dtypes.FLOAT64.kind) == \
                int(np.float64(v).view(np.uint64))


def test_scalar_bfloat16_rounding_matches_the_array_rounding():
    # The arguments' rounding (_dtypes.round_to, _dtypes.bits) for bfloat16 runs in
    # Python integers; the array version (and the kernels) are the yardstick, on
    # every sign and exponent, ties, both ends of the mantissa, zeros, subnormals,
    # the largest float32 and infinity.
    from fastinit import _dtypes
    rng = np.random.default_rng(3)
    exps = np.arange(256, dtype=np.uint32) << np.uint32(23)
    mant = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0x18000, 0x7F7FFF, 0x7FFFFF], np.uint32)
    patterns = (exps[:, None] | mant[None, :]).ravel()
    patterns = np.concatenate([patterns, patterns | np.uint32(0x80000000),
                               rng.integers(0, 2**32, 20_000, dtype=np.uint32)])
    values = patterns.view(np.float32)
    values = values[values == values]                        # NaNs have their own rule
    want = _dtypes.bfloat16_bits(values)
    got = np.array([_dtypes.bits(float(v), _dtypes.BFLOAT16.kind) for v in values], np.uint16)
    np.testing.assert_array_equal(got, want)
    back = np.array([_dtypes.round_to(float(v), _dtypes.BFLOAT16.kind) for v in values],
                    np.float32)
    np.testing.assert_array_equal(back.view(np.uint32), want.astype(np.uint32) << 16)
    assert _dtypes.bits(float("nan"), _dtypes.BFLOAT16.kind) == 0x7FC0
    assert math.isnan(_dtypes.round_to(float("nan"), _dtypes.BFLOAT16.kind))
