"""init_all: a plan of initializers in one parallel pass, the same bits as one by one."""

import math

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
                      ([(a, 42)], TypeError)]:
        with pytest.raises(exc):
            fi.init_all(plan, g)
    with pytest.raises(ValueError):
        fi.init_all([(a, "uniform_"), (a, "kaiming_uniform_", dict(mode="bad"))], g)
    assert (a == 3.0).all()


def test_default_generator_and_many_small_tensors(num_threads):
    num_threads(2)
    arrays = [np.empty((17, 13), np.float32) for _ in range(500)]
    fi.manual_seed(3)
    fi.init_all([(a, "uniform_") for a in arrays])
    fi.manual_seed(3)
    expected = [fi.uniform_(np.empty((17, 13), np.float32)) for _ in range(500)]
    for a, e in zip(arrays, expected):
        np.testing.assert_array_equal(a, e)
