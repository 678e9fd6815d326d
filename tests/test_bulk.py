"""init_all: a plan of initializers in one parallel pass, the same bits as one by one."""

import math
import threading

import numpy as np
import pytest

import fastinit as fi


def shapes():
    return [(50, 30), (3000, 700), (7,), (128, 64, 3, 3), (1000,), (64, 64), (40, 30)]


def plan_for(arrays):
    a = arrays
    return [
        (a[0], "kaiming_uniform_", dict(a=math.sqrt(5))),
        (a[1], "normal_", dict(std=0.02)),
        (a[2], "zeros_"),
        (a[3], fi.xavier_normal_),
        (a[4], "uniform_", dict(a=-0.1, b=0.1)),
        (a[1][:10], "zeros_"),                    # after the normal fill of the same memory
        (a[5], "orthogonal_", dict(gain=2.0)),
        (a[6], "sparse_", dict(sparsity=0.5)),
        (a[3][0], "trunc_normal_", dict(std=0.5)),
        (a[0], "eye_"),                           # overwrites the first entry, in order
    ]


def one_by_one(arrays, seed):
    g = fi.Generator(seed)
    for entry in plan_for(arrays):
        target, init = entry[0], entry[1]
        kwargs = dict(entry[2]) if len(entry) == 3 else {}
        fn = getattr(fi, init) if isinstance(init, str) else init
        if fn not in (fi.zeros_, fi.eye_):
            kwargs["generator"] = g
        fn(target, **kwargs)
    return g


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_plan_equals_one_by_one(threads, dtype, num_threads):
    num_threads(threads)
    bulk = [np.empty(s, dtype) for s in shapes()]
    g = fi.Generator(5)
    fi.init_all(plan_for(bulk), g)
    single = [np.empty(s, dtype) for s in shapes()]
    g1 = one_by_one(single, 5)
    for x, y in zip(bulk, single):
        np.testing.assert_array_equal(x, y)
    assert g.state == g1.state
    assert (bulk[1][:10] == 0).all() and np.array_equal(bulk[0], np.eye(50, 30, dtype=dtype))


def test_plan_errors_write_nothing():
    a = np.full((4, 4), 3.0)
    g = fi.Generator(0)
    for plan, exc in [([(a, "no_such_init_")], ValueError), ([(a,)], ValueError),
                      ([(a, 42)], TypeError),
                      ([(a, "uniform_"), (a, "kaiming_uniform_", dict(mode="bad"))], ValueError)]:
        with pytest.raises(exc):
            fi.init_all(plan, g)
        assert (a == 3.0).all() and g.state["counter"] == 0


def _raise_in_callable(t):
    raise RuntimeError("an entry of the user's own")


BAD_ENTRIES = {
    "kaiming-mode": lambda: (np.empty((5, 5)), "kaiming_uniform_", dict(mode="bad")),
    "constant-overflow": lambda: (np.empty(5, np.float32), "constant_", dict(val=1e39)),
    "sparse-std": lambda: (np.empty((5, 5)), "sparse_", dict(sparsity=0.5, std=-1.0)),
    "orthogonal-1d": lambda: (np.empty(5), "orthogonal_"),
    "eye-3d": lambda: (np.empty((2, 2, 2)), "eye_"),
    "read-only": lambda: (np.broadcast_to(np.empty(1), (4, 4)), "normal_"),
    "callable": lambda: (np.empty(5), _raise_in_callable),
}


@pytest.mark.parametrize("bad", list(BAD_ENTRIES))
def test_plan_is_all_or_nothing(bad):
    # Entries that compute their values in Python (eye_, dirac_, orthogonal_, sparse_)
    # and fills of every kind come first; the bad entry last: nothing may be written
    # and the generator must be where it was.
    targets = [np.full((8, 8), 7.0), np.full((4, 4, 3), 7.0), np.full((8, 8), 7.0),
               np.full((20, 10), 7.0), np.full(100, 7.0), np.full(300_000, 7.0, np.float32),
               np.full((30, 30), 7.0)]
    plan = [(targets[0], "eye_"), (targets[1], "dirac_"), (targets[2], "orthogonal_"),
            (targets[3], "sparse_", dict(sparsity=0.5)), (targets[4], "uniform_"),
            (targets[5], "normal_"), (targets[6], "zeros_")]
    g = fi.Generator(0)
    fi.normal_(np.empty(3), generator=g)
    before = g.state
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        fi.init_all(plan + [BAD_ENTRIES[bad]()], g)
    assert g.state == before
    for t in targets:
        assert (t == 7.0).all()
    fi.init_all(plan, g)                            # the same plan, valid, then writes all
    assert g.state["counter"] == before["counter"] + 4
    assert not any((t == 7.0).any() for t in targets)


# Each entry draws from a generator of its own, all in the same state: every fill of the
# pass has the same call seed, and only its kernel and parameters tell them apart.
SAME_SEED_PASS = """
import numpy as np, fastinit as fi
base = np.empty((64, 600), np.float32)
specs = [
    ((100,), np.float32, "uniform_", {}),
    ((2000,), np.float32, "normal_", {}),
    ((3000,), np.float16, "trunc_normal_", dict(std=0.5)),
    ((5000,), np.float64, "normal_", {}),
    ((2500,), np.float32, "trunc_normal_", dict(a=2.0, b=3.0)),
    ((300,), np.float32, "trunc_normal_", dict(a=0.1, b=0.2)),
    ((4097,), np.float64, "uniform_", {}),
    ((150_001,), np.float32, "normal_", {}),
    ((2049,), np.float16, "uniform_", {}),
]
for threads in (1, 2):
    fi.set_num_threads(threads)
    for order in (1, -1):
        targets = [np.empty(shape, dtype) for shape, dtype, _, _ in specs]
        strided = [np.empty((64, 1200), np.float32)[:, ::2] for _ in range(2)]
        plan = [(t, lambda t, n=n, kw=kw: getattr(fi, n)(t, generator=fi.Generator(0), **kw))
                for t, (_, _, n, kw) in zip(targets, specs)]
        plan += [(strided[0], lambda t: fi.normal_(t, generator=fi.Generator(0))),
                 (strided[1], lambda t: fi.uniform_(t, generator=fi.Generator(0)))]
        fi.init_all(plan[::order])
        for t, (shape, dtype, n, kw) in zip(targets, specs):
            alone = getattr(fi, n)(np.empty(shape, dtype), generator=fi.Generator(0), **kw)
            assert np.array_equal(t, alone), (threads, order, n, shape)
        assert np.array_equal(strided[0], fi.normal_(base.copy(), generator=fi.Generator(0)))
        assert np.array_equal(strided[1], fi.uniform_(base.copy(), generator=fi.Generator(0)))
print("same bits")
"""


def test_a_fill_does_not_depend_on_the_rest_of_its_pass():
    # Mixed kernels, dtypes and layouts with one call seed in one pass, on 1 and 2 threads.
    # In a subprocess with a time limit: a cursor shared between fills once made the
    # slow path of the normal sampler reject forever.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", SAME_SEED_PASS], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "same bits", out.stderr[-2000:]


def test_a_batch_tells_fills_of_its_targets_from_others():
    """Batch.holds (a binary search over the held ranges, merged) against comparing
    with every held target, for random slices of one buffer, held in random order."""
    from fastinit import _executor, _plan
    buf = np.zeros(3000, np.float32)
    rng = np.random.default_rng(0)
    for _ in range(200):
        batch, held = _executor.Batch(), []
        for _ in range(rng.integers(1, 40)):
            lo = rng.integers(0, 2900)
            held.append(_plan.Target(buf[lo:lo + rng.integers(0, 120)]))
            batch.hold(held[-1:])
        for _ in range(60):
            lo = rng.integers(0, 2950)
            q = _plan.Target(buf[lo:lo + rng.integers(1, 60)])
            assert batch.holds(q) == any(q.mem_lo < h.mem_hi and h.mem_lo < q.mem_hi
                                         for h in held if h.size)


def test_fill_groups_match_checking_every_earlier_fill():
    """The parallel loops of a pass (consecutive fills of distinct memory; a fill of
    memory an earlier fill of its loop writes starts the next) against checking each
    fill against every earlier one of its loop, for random slices of one buffer:
    overlapping or not, strided, empty (whose fills make no job), in random order."""
    from fastinit import _executor, _plan
    buf = np.zeros(3000, np.float32)
    rng = np.random.default_rng(1)
    g = fi.Generator(0)
    splits = 0
    for trial in range(300):
        views = []
        for _ in range(rng.integers(1, 40)):
            lo = rng.integers(0, 2900)
            width = rng.integers(0, 40 if trial % 3 else 120)
            views.append(buf[lo:lo + width:rng.integers(1, 3)])
        batch = _executor.Batch()
        batch.hold([_plan.Target(buf)])
        with batch:
            for v in views:
                g.uniform_(v)
        got = [len(group) for group in _executor.fill_groups(batch.jobs)]
        want, group = [], []
        for t in (_plan.Target(v) for v in views):
            if not t.size:
                continue                               # a fill of nothing makes no job
            if any(t.mem_lo < u.mem_hi and u.mem_lo < t.mem_hi for u in group):
                want.append(len(group))
                group = []
            group.append(t)
        want.append(len(group))
        assert got == want, (trial, got, want)
        splits += len(want) - 1
    assert splits > 100          # the trials had overlaps to split at, and runs to keep


def test_default_generator_and_many_small_tensors(num_threads):
    num_threads(2)
    arrays = [np.empty((17, 13), np.float32) for _ in range(500)]
    fi.manual_seed(3)
    fi.init_all([(a, "uniform_") for a in arrays])
    fi.manual_seed(3)
    expected = [fi.uniform_(np.empty((17, 13), np.float32)) for _ in range(500)]
    for a, e in zip(arrays, expected):
        np.testing.assert_array_equal(a, e)


# --------------------------------------------------------------------------------------
# Callables: plain calls at their place in the plan
# --------------------------------------------------------------------------------------

def test_what_a_callable_does_after_its_fill_is_kept():
    def emb_init(t, generator=None):                    # a padding row, zeroed after
        fi.normal_(t, 0, 0.02, generator=generator)
        t[0] = 0

    def clamped(t, generator=None):
        fi.normal_(t, generator=generator)
        np.clip(t, -0.5, 0.5, out=t)

    def nested(t, generator=None):                      # an init_all inside a callable
        fi.init_all([(t, "ones_"), (t[:2], "zeros_")])
        t[-1] = 5

    emb, other, clip, tail = np.empty((10, 8)), np.empty(50), np.empty(1000), np.empty(6)
    g = fi.Generator(3)
    fi.init_all([(other, "uniform_"), (emb, emb_init), (clip, clamped), (tail, nested),
                 (other[:5], "zeros_")], g)
    h = fi.Generator(3)
    want_other = fi.uniform_(np.empty(50), generator=h)
    want_emb = fi.normal_(np.empty((10, 8)), 0, 0.02, generator=h)
    want_emb[0] = 0
    want_clip = np.clip(fi.normal_(np.empty(1000), generator=h), -0.5, 0.5)
    want_other[:5] = 0
    np.testing.assert_array_equal(emb, want_emb)
    np.testing.assert_array_equal(clip, want_clip)
    np.testing.assert_array_equal(other, want_other)
    np.testing.assert_array_equal(tail, [0, 0, 1, 1, 1, 5])
    assert g.state == h.state


def test_a_callable_may_hand_work_to_threads_that_use_the_generator():
    from concurrent.futures import ThreadPoolExecutor

    def pooled(t, generator=None):
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(generator.normal_, np.array_split(t, 2)))

    t, done = np.zeros(1000), []
    worker = threading.Thread(daemon=True, target=lambda: done.append(fi.init_all([(t, pooled)],
                                                                     fi.Generator(0))))
    worker.start()
    worker.join(30)
    assert done == [None] and (t != 0).all()


def test_a_callable_writing_a_target_sees_the_earlier_fills_of_it():
    a, b = np.full(100, 7.0), np.full(100, 7.0)
    seen = {}

    def look(t, generator=None):
        seen["a"] = t.copy()

    fi.init_all([(a, "zeros_"), (b, "ones_"), (a, look)])
    assert (seen["a"] == 0).all() and (b == 1).all()


def test_callables_on_random_slices_see_every_earlier_fill():
    """Plans of fills and callables (each doubling its slice in place) on random,
    overlapping slices of one buffer: the result is the one-by-one result only if each
    callable ran after every earlier fill of its memory was written, and before every
    later one. A callable whose memory no kept fill writes runs without writing any."""
    rng = np.random.default_rng(2)

    def double(t):
        t *= 2

    for _ in range(200):
        bulk, single = np.zeros(600), np.zeros(600)
        entries = []
        for _ in range(rng.integers(1, 30)):
            lo = int(rng.integers(0, 580))
            hi = lo + int(rng.integers(0, 40))
            entries.append((lo, hi, ["uniform_", "normal_", double][rng.integers(0, 3)]))
        fi.init_all([(bulk[lo:hi], init) for lo, hi, init in entries], fi.Generator(9))
        g = fi.Generator(9)
        for lo, hi, init in entries:
            if init is double:
                double(single[lo:hi])
            else:
                getattr(fi, init)(single[lo:hi], generator=g)
        np.testing.assert_array_equal(bulk, single)


def test_a_callable_swapping_a_pending_tensors_memory_sees_one_by_one_results():
    """A fill kept past a callable writes the memory its tensor had when the call was
    made, which it keeps alive: as when the fill was written first, the tensor then
    shows what the callable gave it."""
    torch = pytest.importorskip("torch")
    b, a = torch.full((5000,), 7.0), torch.zeros(10)
    old = b.detach()
    new = torch.full((5000,), 3.0)

    def swap(t, generator=None):
        b.data = new

    fi.init_all([(b, "uniform_"), (a, swap), (a, "ones_")], fi.Generator(2))
    assert torch.equal(old, fi.uniform_(torch.empty(5000), generator=fi.Generator(2)))
    assert torch.equal(b, new) and (a == 1).all()


def test_a_callable_reallocating_a_pending_tensor_raises_before_any_write():
    torch = pytest.importorskip("torch")
    b, c, a = torch.full((10,), 7.0), torch.full((10,), 7.0), torch.zeros(4)

    def grow(t, generator=None):
        b.resize_(1 << 20)                  # realloc: b's old memory is freed

    g = fi.Generator(2)
    before = g.state
    with pytest.raises(RuntimeError, match="reallocated before it was written"):
        fi.init_all([(b, "uniform_"), (c, "normal_"), (a, grow)], g)
    assert (b[:10] == 7.0).all() and (c == 7.0).all() and (a == 0).all()
    assert g.state == before


def test_entries_after_a_callable_fill_what_it_left():
    """The entries after a callable are validated after it ran: a tensor it grew or
    gave new memory is filled whole, in its new memory."""
    torch = pytest.importorskip("torch")
    a, grown, swapped = torch.zeros(4), torch.zeros(10), torch.zeros(10)

    def reshape(t, generator=None):
        grown.resize_(3000)
        swapped.data = torch.zeros(2000)

    g = fi.Generator(4)
    fi.init_all([(a, "ones_"), (a, reshape), (grown, "uniform_"), (swapped, "normal_")], g)
    h = fi.Generator(4)
    assert torch.equal(grown, fi.uniform_(torch.empty(3000), generator=h))
    assert torch.equal(swapped, fi.normal_(torch.empty(2000), generator=h))
    assert g.state == h.state


def test_a_raising_callable_keeps_the_generator_when_nothing_else_drew():
    target = np.full(64, 7.0)
    g = fi.Generator(1)
    before = g.state
    with pytest.raises(RuntimeError):
        fi.init_all([(target, "normal_"), (np.empty(3), _raise_in_callable)], g)
    assert g.state == before and (target == 7.0).all()

    def draws_then_raises(t, generator=None):
        fi.normal_(t, generator=generator)
        raise KeyError("late")

    drawn = np.full(8, 7.0)
    with pytest.raises(KeyError):
        fi.init_all([(target, "normal_"), (drawn, draws_then_raises)], g)
    # The callable's own call cannot be undone: the generator stays past it, its
    # fill is written, the deferred fill of an other target is not.
    assert g.state["counter"] == before["counter"] + 2
    assert (drawn != 7.0).all() and (target == 7.0).all()
