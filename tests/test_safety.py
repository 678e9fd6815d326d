"""Concurrency, fork and interruption."""

import multiprocessing
import signal
import threading
import time

import numpy as np
import pytest

import reference as ref
import fastinit as fi


def _child_fill(queue):
    b = np.empty(3_000_000, np.float32)
    fi.uniform_(b, generator=fi.Generator(0))
    queue.put((fi.get_num_threads(), b[:1000].tobytes(), fi.default_generator().state))


def test_forked_child_runs_serially_and_continues_the_default_generator():
    # GNU OpenMP cannot run a parallel region in a child forked after its parent
    # ran one (it hangs): fills in a forked child run on one thread, same bits.
    parent = np.empty(3_000_000, np.float32)
    fi.uniform_(parent, generator=fi.Generator(0))
    fi.manual_seed(5)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child_fill, args=(queue,))
    p.start()
    threads, values, child_state = queue.get(timeout=120)
    p.join(30)
    assert p.exitcode == 0
    assert threads == 1 and values == parent[:1000].tobytes()
    # The child's default generator continues from the parent's state: both would
    # draw the same values. Give each worker its own generator with spawn().
    assert child_state == fi.default_generator().state


def test_keyboard_interrupt_stops_a_huge_fill_between_rounds():
    # A fill that outlasts the signal 50 ms in by far: a truncated normal drawn by
    # rejection (0.7 s on 2 Zen 5 cores; normal_ of these 150M float32 takes 45 ms
    # there, and sometimes finished first).
    big = np.ones(150_000_000, np.float32)
    timer = threading.Timer(0.05, signal.raise_signal, (signal.SIGINT,))
    before = threading.active_count()
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        fi.trunc_normal_(big, 0.0, 1.0, -0.1, 0.1, generator=fi.Generator(1))
        time.sleep(5)       # reached only if the fill finished before the signal
    assert time.perf_counter() - t0 < 5
    timer.join()
    assert threading.active_count() == before
    small = fi.uniform_(np.empty(1000), generator=fi.Generator(2))   # still works
    np.testing.assert_array_equal(small, ref.uniform_fill(fi.Generator(2).state["key"], 0,
                                                          (1000,), np.float64))


def test_fills_while_other_threads_change_the_thread_count():
    expected = fi.normal_(np.empty((700, 3000), np.float32), generator=fi.Generator(3))
    stop = threading.Event()

    def churn():
        n = 1
        while not stop.is_set():
            fi.set_num_threads(n)
            n = n % 3 + 1

    churners = [threading.Thread(target=churn) for _ in range(2)]
    for t in churners:
        t.start()
    try:
        for _ in range(10):
            got = fi.normal_(np.empty((700, 3000), np.float32), generator=fi.Generator(3))
            np.testing.assert_array_equal(got, expected)
    finally:
        stop.set()
        for t in churners:
            t.join()
        fi.set_num_threads(None)


@pytest.mark.slow
def test_more_than_2_to_the_31_elements():
    # float16, 2.2e9 elements (4.4 GB): every index is 64-bit. The values around
    # 2**31 and at the very end equal the reference's.
    import reference as ref

    n = 2_200_000_000
    a = np.empty(n, np.float16)
    fi.uniform_(a, -1.0, 1.0, generator=fi.Generator(6))
    key = fi.Generator(6).state["key"]
    for start in (2**31 - 3000, 2**32 - 5000 if n > 2**32 else n - 3000):
        want = ref.uniform_fill_16(key, 0, (3000,), np.float16, -1.0, 1.0,
                                   global_shape=(n,), global_offset=(start,))
        np.testing.assert_array_equal(a[start:start + 3000].view(np.uint16),
                                      want.view(np.uint16))
