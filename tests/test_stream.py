"""The compiled fills against the pure-Python reference of docs/stream.md."""

import numpy as np
import pytest

import reference as ref
import fastinit
from fastinit import _runtime

DTYPES = [np.float32, np.float64]


def fresh(seed=2024):
    return fastinit.Generator(seed)


def expected(gen_seed, counter, shape, dtype, **kw):
    return ref.uniform_fill(fresh(gen_seed).state["key"], counter, shape, dtype, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_blocks_match_reference(dtype):
    n = 3 * ref.BLOCK + 77          # three whole blocks and a partial one
    a = np.empty(n, dtype)
    fresh().uniform_(a)
    np.testing.assert_array_equal(a, expected(2024, 0, (n,), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_counter_advances_per_call(dtype):
    g = fresh()
    first, second = np.empty(100, dtype), np.empty(5000, dtype)
    g.uniform_(np.empty(0, dtype))  # an empty fill still takes a call
    g.uniform_(first, -2.0, 3.0)
    g.uniform_(second)
    np.testing.assert_array_equal(first, expected(2024, 1, (100,), dtype, low=-2.0, high=3.0))
    np.testing.assert_array_equal(second, expected(2024, 2, (5000,), dtype))
    assert g.state["counter"] == 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [1, 1000, 2047, 2049, 5000])
def test_fill_starting_mid_block(dtype, offset):
    gshape = (offset + 3000,)
    a = np.empty(3000, dtype)
    fresh().uniform_(a, global_shape=gshape, global_offset=(offset,))
    np.testing.assert_array_equal(
        a, expected(2024, 0, (3000,), dtype, global_shape=gshape, global_offset=(offset,)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bounds_and_0d(dtype):
    a = np.empty((7, 300), dtype)
    fresh().uniform_(a, -0.125, 17.5)
    np.testing.assert_array_equal(a, expected(2024, 0, (7, 300), dtype, low=-0.125, high=17.5))
    z = np.empty((), dtype)
    fresh().uniform_(z, 3.0, 4.0)
    assert z == expected(2024, 0, (), dtype, low=3.0, high=4.0)


def whole(shape, dtype, seed=11):
    a = np.empty(shape, dtype)
    fastinit.Generator(seed).uniform_(a)
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, offset, gshape", [
    ((37, 1500), (0, 2500), (37, 4100)),          # column shard, rows not whole
    ((10, 4100), (20, 0), (37, 4100)),            # row shard
    ((5, 3, 700), (1, 2, 100), (8, 6, 900)),      # 3-D interior block
    ((2, 6, 900), (3, 0, 0), (8, 6, 900)),        # whole trailing dims
    ((1, 1), (36, 4099), (37, 4100)),             # last element
])
def test_shards_equal_slices_of_the_whole(dtype, shape, offset, gshape):
    full = whole(gshape, dtype)
    part = np.empty(shape, dtype)
    fastinit.Generator(11).uniform_(part, global_shape=gshape, global_offset=offset)
    sl = tuple(slice(o, o + s) for o, s in zip(offset, shape))
    np.testing.assert_array_equal(part, full[sl])


@pytest.mark.parametrize("dtype", DTYPES)
def test_shards_tile_the_whole(dtype):
    gshape = (300, 5000)
    full = whole(gshape, dtype)
    rebuilt = np.zeros(gshape, dtype)
    for r0, r1 in [(0, 100), (100, 300)]:
        for c0, c1 in [(0, 1234), (1234, 4000), (4000, 5000)]:
            part = np.empty((r1 - r0, c1 - c0), dtype)
            fastinit.Generator(11).uniform_(part, global_shape=gshape, global_offset=(r0, c0))
            rebuilt[r0:r1, c0:c1] = part
    np.testing.assert_array_equal(rebuilt, full)


def misaligned(shape, dtype):
    """A C-ordered view one byte into a uint8 buffer: misaligned for its dtype."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    a = np.zeros(nbytes + 1, np.uint8)[1:].view(dtype).reshape(shape)
    assert not a.flags.aligned
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda s, d: np.empty(s, d, order="F"),
    lambda s, d: np.empty((s[0], 2 * s[1]), d)[:, ::2],
    lambda s, d: np.empty(s, d)[::-1, ::-1],
    lambda s, d: np.empty(s[::-1], d).T,
    lambda s, d: misaligned(s, d),
], ids=["fortran", "sliced", "negative", "transposed", "misaligned"])
def test_layouts_get_logical_order(dtype, make):
    shape = (123, 457)
    a = make(shape, dtype)
    assert a.shape == shape
    fastinit.Generator(11).uniform_(a)
    np.testing.assert_array_equal(a, whole(shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_counts_give_identical_bits(dtype, num_threads):
    # Large enough to run in parallel and to use non-temporal stores.
    shape = (1031, 4099)
    results = []
    for n in (1, 2, 3, 7):
        num_threads(n)
        results.append(whole(shape, dtype, seed=5))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    num_threads(3)
    part = np.empty((1031, 2000), dtype)
    fastinit.Generator(5).uniform_(part, global_shape=shape, global_offset=(0, 1000))
    np.testing.assert_array_equal(part, results[0][:, 1000:3000])


@pytest.mark.parametrize("dtype", DTYPES)
def test_simd_paths_give_identical_bits(dtype, simd_path):
    paths = _runtime.simd_paths()
    assert paths[0] == "baseline"
    results = {}
    for p in paths:
        simd_path(p)
        big = whole((3_000_001,), dtype, seed=9)
        odd = np.empty((333, 517), dtype, order="F")
        fastinit.Generator(9).uniform_(odd, -3.0, 0.5)
        results[p] = (big, odd)
    for p in paths[1:]:
        np.testing.assert_array_equal(results[p][0], results["baseline"][0])
        np.testing.assert_array_equal(results[p][1], results["baseline"][1])
    np.testing.assert_array_equal(results["baseline"][0][:5000],
                                  expected(9, 0, (5000,), dtype))


def test_constant_fill(num_threads):
    for n in (1, 2):
        num_threads(n)
        for dtype in DTYPES:
            for shape in [(0,), (5,), (3_000_000,), (300, 400)]:
                a = np.zeros(shape, dtype)
                fastinit.constant_(a, 0.1)
                assert (a == dtype(0.1)).all()
            f = np.zeros((50, 60), dtype, order="F")[::2, 1::3]
            fastinit.constant_(f, -2.5)
            assert (f == -2.5).all()


def test_random_raw_is_the_block_stream():
    n = 3 * ref.BLOCK + 5
    g = fastinit.Generator(31)
    out = g.random_raw_(np.empty(n, np.uint64))
    sigma = ref.call_seed(*g.state["key"], 0)
    want = sum((ref.block_raw(sigma, b, ref.BLOCK) for b in range(4)), [])[:n]
    assert out.tolist() == want
    part = np.empty(700, np.uint64)
    fastinit.Generator(31).random_raw_(part, global_shape=(n,), global_offset=(2000,))
    assert part.tolist() == want[2000:2700]
    with pytest.raises(TypeError, match="random_raw_"):
        fastinit.Generator(0).uniform_(np.empty(4, np.uint64))
    with pytest.raises(TypeError, match="uint64"):
        fastinit.Generator(0).random_raw_(np.empty(4))
