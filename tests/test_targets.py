"""Bad targets and bad bounds: the exact exception, and the target untouched."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastinit
from fastinit import _plan

SENTINEL = 123.0


def target(dtype=np.float32, shape=(4, 5)):
    return np.full(shape, SENTINEL, dtype)


def assert_rejected(arr, exc, match=None, **kw):
    before = np.array(arr, copy=True)
    g = fastinit.Generator(0)
    with pytest.raises(exc, match=match):
        g.uniform_(arr, **kw)
    np.testing.assert_array_equal(np.asarray(arr), before)
    assert g.state["counter"] == 0


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.uint64, np.bool_, np.complex64,
                                   np.complex128, object, ">f4", ">f2"])
def test_unsupported_dtypes(dtype):
    assert_rejected(np.zeros((3, 3), dtype), TypeError, "dtype")


def test_not_an_array():
    for bad in ([1.0, 2.0], 3.0, None, memoryview(bytearray(8))):
        with pytest.raises(TypeError, match="numpy.ndarray"):
            fastinit.Generator(0).uniform_(bad)


def test_read_only():
    a = target()
    a.flags.writeable = False
    assert_rejected(a, ValueError, "read-only")
    assert_rejected(np.broadcast_to(np.float32(1), (3, 3)), ValueError, "read-only")


@pytest.mark.parametrize("shape, strides", [((3, 4), (0, 4)), ((5,), (0,)), ((3, 3), (4, 4)),
                                            ((2, 3, 2), (8, 4, 4))])
def test_self_overlapping_views(shape, strides):
    base = np.full(40, SENTINEL, np.float32)
    view = as_strided(base, shape=shape, strides=strides, writeable=True)
    with pytest.raises(ValueError, match="overlaps itself"):
        fastinit.Generator(0).uniform_(view)
    assert (base == SENTINEL).all()


def test_non_overlapping_as_strided_view_is_accepted():
    base = np.zeros(40, np.float32)
    view = as_strided(base, shape=(4, 5), strides=(40, 8), writeable=True)
    fastinit.Generator(0).uniform_(view)
    assert (base[1::2] == 0).all() and (view > 0).any()


@pytest.mark.parametrize("kw, exc, match", [
    (dict(global_shape=(4,)), ValueError, "dimensions"),
    (dict(global_shape=(4, 4)), ValueError, "does not fit"),
    (dict(global_shape=(10, 10), global_offset=(7, 0)), ValueError, "does not fit"),
    (dict(global_shape=(10, 10), global_offset=(0, -1)), ValueError, "non-negative"),
    (dict(global_shape=(10, 10), global_offset=(0, 1.0)), TypeError, "ints"),
    (dict(global_shape=5), TypeError, "sequence"),
    (dict(global_offset=(0, 0)), ValueError, "needs global_shape"),
    (dict(global_shape=(2**40, 2**40)), ValueError, "too many"),
])
def test_bad_shards(kw, exc, match):
    assert_rejected(target(), exc, match, **kw)


@pytest.mark.parametrize("dtype, name", [(np.float32, "float"), (np.float64, "double")])
@pytest.mark.parametrize("low, high, message", [
    # torch's checks and words, in torch's order: each bound within the dtype's range
    # (NaN is not), then from <= to, then to - from at most the largest value.
    (float("nan"), 1.0, "from is out of bounds for {name}"),
    (0.0, float("nan"), "to is out of bounds for {name}"),
    (-float("inf"), 0.0, "from is out of bounds for {name}"),
    (0.0, float("inf"), "to is out of bounds for {name}"),
    (float("nan"), -1.0, "from is out of bounds for {name}"),
    (1.0, 0.0, "uniform_ expects to return a [from, to) range, but found from=1 > to=0"),
    (True, False, "uniform_ expects to return a [from, to) range, but found from=1 > to=0"),
])
def test_bad_bounds_raise_torchs_errors(dtype, name, low, high, message):
    arr = target(dtype)
    before, g = arr.copy(), fastinit.Generator(0)
    with pytest.raises(fastinit.ArgumentError) as caught:
        g.uniform_(arr, low, high)
    assert str(caught.value) == message.format(name=name)
    assert isinstance(caught.value, RuntimeError)
    np.testing.assert_array_equal(arr, before)
    assert g.state["counter"] == 0


def test_range_limits():
    # to - from beyond the dtype's largest value, in double, as torch words it.
    assert_rejected(target(np.float32), RuntimeError,
                    r"^uniform_ expects to-from <= std::numeric_limits<Float>::max\(\), but found "
                    r"to=3e\+38 and from=-3e\+38 which result in", low=-3e38, high=3e38)
    assert_rejected(target(np.float64), RuntimeError, r"numeric_limits<Double>::max",
                    low=-1e308, high=1e308)
    assert_rejected(target(np.float32), RuntimeError, "from is out of bounds for float",
                    low=4e38, high=4e38)
    # Within float32's range in double, yet the bounds rounded to float32 are more than
    # its largest value apart: the kernel's float32 range would overflow.
    assert_rejected(target(np.float32), RuntimeError, "overflow float32",
                    low=-1.3324797682178696e+38, high=2.070343698167419e+38)
    a = target(np.float64)
    fastinit.Generator(0).uniform_(a, -3e38, 3e38)      # fine in float64
    assert (a >= -3e38).all() and (a < 3e38).all()


def test_non_numeric_bounds():
    assert_rejected(target(), TypeError, None, low="0", high=1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_stay_below_high_when_rounding_would_reach_it(dtype):
    # high is the next float after low: low + r*u rounds up to high for u >= 1/2.
    low = dtype(1.0)
    high = np.nextafter(low, dtype(2))
    a = np.empty(100_000, dtype)
    fastinit.Generator(0).uniform_(a, float(low), float(high))
    assert (a == low).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_low_equal_high_fills_low(dtype):
    a = np.empty(1000, dtype)
    fastinit.Generator(0).uniform_(a, 2.5, 2.5)
    assert (a == 2.5).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_arrays_are_a_noop_that_takes_a_call(dtype):
    g = fastinit.Generator(0)
    for shape in [(0,), (3, 0), (0, 5, 2)]:
        g.uniform_(np.empty(shape, dtype))
    g.uniform_(np.empty((0, 4), dtype), global_shape=(10, 4), global_offset=(10, 0))
    assert g.state["counter"] == 4


def test_target_rejects_before_anything_else():
    with pytest.raises(TypeError):
        _plan.Target(np.zeros(3, np.int8))


def test_buffer_protocol_targets_get_the_bits_of_a_numpy_array():
    import array
    n = 5000
    want = fastinit.Generator(3).normal_(np.empty(n, np.float32))
    floats = array.array("f", bytes(4 * n))
    fastinit.Generator(3).normal_(floats)
    np.testing.assert_array_equal(np.frombuffer(floats, np.float32), want)
    raw = bytearray(4 * n)
    view = memoryview(raw).cast("f")
    fastinit.Generator(3).normal_(view)
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32), want)
    # Shapes, initializers and other dtypes go through the buffer too.
    m = memoryview(bytearray(8 * 12)).cast("d", (3, 4))
    fastinit.kaiming_uniform_(m, generator=fastinit.Generator(4))
    np.testing.assert_array_equal(
        np.asarray(m), fastinit.kaiming_uniform_(np.empty((3, 4)), generator=fastinit.Generator(4)))
    t = _plan.Target(memoryview(bytearray(4 * 10)).cast("f"))
    assert t.view is not None and t.view.shape == (10,) and t.kind == 0
    with pytest.raises(ValueError, match="read-only"):
        fastinit.uniform_(memoryview(bytes(16)).cast("f"))
    with pytest.raises(TypeError, match="buffer of float16, float32 or float64"):
        fastinit.uniform_(array.array("i", [0] * 4))


def test_buffer_protocol_targets_take_the_initializers_computed_in_python():
    # orthogonal_, eye_, dirac_ and sparse_'s zeros are written through a numpy view
    # of the buffer: sparse_ on a memoryview raised NotImplementedError ("sub-views")
    # after its normal fill had written the values, and orthogonal_/eye_ a TypeError
    # from the memoryview.
    calls = [("orthogonal_", (6, 4), {"generator": 1}), ("eye_", (6, 4), {}),
             ("sparse_", (6, 4), {"sparsity": 0.5, "generator": 1}),
             ("dirac_", (4, 2, 3), {})]
    for name, shape, kw in calls:
        kw = {k: fastinit.Generator(v) if k == "generator" else v for k, v in kw.items()}
        raw = bytearray(4 * int(np.prod(shape)))
        getattr(fastinit, name)(memoryview(raw).cast("f", shape), **kw)
        kw = {k: fastinit.Generator(1) if k == "generator" else v for k, v in kw.items()}
        want = getattr(fastinit, name)(np.zeros(shape, np.float32), **kw)
        np.testing.assert_array_equal(np.frombuffer(raw, np.float32).reshape(shape), want)
        assert want.any()


@pytest.mark.parametrize("call", [lambda a, g: fastinit.orthogonal_(a, generator=g),
                                  lambda a, g: fastinit.eye_(a),
                                  lambda a, g: fastinit.dirac_(a.reshape(4, 1, 4))])
def test_uint64_arrays_take_only_raw_outputs(call):
    # uint64 is random_raw_'s dtype; orthogonal_, eye_ and dirac_ wrote into it
    # (orthogonal_'s values truncated to zeros, after taking a call).
    a, g = np.full((4, 4), 7, np.uint64), fastinit.Generator(0)
    with pytest.raises(TypeError, match="unsupported dtype uint64.*random_raw_"):
        call(a, g)
    assert (a == 7).all() and g.state["counter"] == 0


def test_a_target_holds_its_buffer_during_a_fill():
    import array
    floats = array.array("f", [0.0] * 10)
    t = _plan.Target(floats)
    with pytest.raises(BufferError):
        floats.append(1.0)               # resizing would move the memory being written
    del t
    floats.append(1.0)


def test_uint64_in_any_spelling_takes_raw_outputs():
    import array
    want = fastinit.Generator(4).random_raw_(np.empty(40, np.uint64))
    for target in (np.empty(40, np.ulonglong), array.array("Q", bytes(320)),
                   np.empty(40, np.uint64)):
        fastinit.Generator(4).random_raw_(target)
        np.testing.assert_array_equal(np.asarray(target, np.uint64), want)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_ndarray_subclasses_are_filled_through_their_memory():
    m = np.matrix(np.zeros((6, 5)))
    fastinit.Generator(2).normal_(m)
    np.testing.assert_array_equal(np.asarray(m), fastinit.Generator(2).normal_(np.zeros((6, 5))))
    masked = np.ma.masked_array(np.zeros(30), mask=np.arange(30) % 2 == 0)
    fastinit.Generator(2).uniform_(masked)
    np.testing.assert_array_equal(masked.data, fastinit.Generator(2).uniform_(np.zeros(30)))
