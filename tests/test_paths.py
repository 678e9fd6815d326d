"""Every instruction-set path against the specification (docs/stream.md).

The kernels are compiled once per path (baseline, AVX2, AVX-512, AVX-512 with VBMI,
and with VBMI and BF16: fastinit/src/fi_path_*.c) and the faster paths compute
differently (gathers, F16C, byte permutes, BF16's conversion), so each path is held to the pure-Python reference on its own, whole
blocks and partial ones. A path this CPU cannot run is skipped, and the skip says so;
tools/emulated_paths.py runs this file (and the other exactness tests) against a build
whose AVX-512 paths run on any CPU, their intrinsics emulated.
"""

import numpy as np
import pytest

import reference as ref
import fastinit
from fastinit import _runtime

PATHS = ("baseline", "avx2", "avx512", "avx512vbmi", "avx512bf16")


@pytest.fixture(params=PATHS)
def path(request, simd_path):
    name = request.param
    if name not in _runtime.simd_paths():
        pytest.skip(f"this CPU cannot run the {name} path (it runs {_runtime.simd_paths()}); "
                    "tools/emulated_paths.py tests the AVX-512 paths emulated")
    simd_path(name)
    return name


def _bf16():
    return pytest.importorskip("ml_dtypes").bfloat16


# Shapes cut so that each fill has whole blocks (2048 elements) and partial ones: a
# sharded fill starting mid-block, and a strided view.
GSHAPE, OFFSET, SHAPE = (3, 4100), (1, 700), (2, 3000)


def _key(seed):
    return fastinit.Generator(seed).state["key"]


CASES = {
    "whole": dict(shape=(5000,), shard={}),
    "shard": dict(shape=SHAPE, shard=dict(global_shape=GSHAPE, global_offset=OFFSET)),
}


# Each fill: (Generator method, its arguments, the reference for 32/64-bit targets,
# the reference for 16-bit targets).
FILLS = {
    "uniform": ("uniform_", (-0.5, 2.0), ref.uniform_fill, ref.uniform_fill_16),
    # a range whose 2^-24-th is below float32's normal range (the kernels' unfused case)
    "uniform_tiny": ("uniform_", (0.0, 1e-32), ref.uniform_fill, ref.uniform_fill_16),
    # the same for float64's 2^-64-th (the AVX-512 float64 kernel's unfused case)
    "uniform_tiny64": ("uniform_", (0.0, 1e-300), ref.uniform_fill, ref.uniform_fill_16),
    # The float32 and float64 kernels leave the cap out where no value can pass it
    # (the first range, and [0, 1), whose largest value is its cap); the others keep
    # it (uniform_tiny, and the two below).
    "uniform_unit": ("uniform_", (0.0, 1.0), ref.uniform_fill, ref.uniform_fill_16),
    # high one float32 step above low: half the float32 values round up to high and
    # are capped
    "uniform_capped": ("uniform_", (1.0, 1.0 + 2.0**-23), ref.uniform_fill, ref.uniform_fill_16),
    # every value +0.0, the cap -0.0: equal, yet the cap's bits are written
    "uniform_signed_zero": ("uniform_", (0.0, -0.0), ref.uniform_fill, ref.uniform_fill_16),
    # most values float32 subnormals, which the avx512bf16 path's bfloat16 conversion
    # would flush (its uniform kernel rounds them as specified instead); and a range
    # with none (its low at the edge of the kernel's proof that none can come out)
    "uniform_subnormal": ("uniform_", (-2e-38, 2e-38), ref.uniform_fill, ref.uniform_fill_16),
    "uniform_no_subnormal": ("uniform_", (-2.0**-102, 2.0**-101), ref.uniform_fill,
                             ref.uniform_fill_16),
    "normal": ("normal_", (0.25, 1.5), ref.normal_fill, ref.normal_fill_16),
}


@pytest.mark.parametrize("case", ["whole", "shard"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("fill", list(FILLS))
def test_fill_matches_reference(path, fill, dtype, case):
    method, args, reference, reference_16 = FILLS[fill]
    dt = _bf16() if dtype == "bfloat16" else np.dtype(dtype)
    c = CASES[case]
    out = np.empty(c["shape"], dt)
    getattr(fastinit.Generator(5), method)(out, *args, **c["shard"])
    make = reference if dtype in ("float32", "float64") else reference_16
    want = make(_key(5), 0, c["shape"], dt, *args, **c["shard"])
    np.testing.assert_array_equal(out.view(np.uint8), np.asarray(want, dt).view(np.uint8))


@pytest.mark.parametrize("case", ["whole", "shard"])
@pytest.mark.parametrize("a, b", [(-2.0, 2.0),      # mode 0: normal proposals
                                  (-0.3, 1.5),      # mode 0 with range rejections
                                  (0.5, 0.6),       # mode 1: uniform proposals
                                  (2.5, 9.0)])      # mode 2: exponential proposals
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_trunc_normal_matches_reference(path, dtype, a, b, case):
    dt = _bf16() if dtype == "bfloat16" else np.dtype(dtype)
    c = CASES[case]
    out = np.empty(c["shape"], dt)
    fastinit.Generator(7).trunc_normal_(out, 0.0, 1.0, a, b, **c["shard"])
    want = ref.trunc_normal_fill(_key(7), 0, c["shape"], dt, 0.0, 1.0, a, b, **c["shard"])
    np.testing.assert_array_equal(out.view(np.uint8), np.asarray(want, dt).view(np.uint8))


STREAMED = {
    "uniform": ("uniform_", (-0.5, 2.0)),
    "normal": ("normal_", (0.25, 1.5)),
    "trunc_normal": ("trunc_normal_", (0.0, 0.02)),
}


@pytest.mark.parametrize("offset", [0, 16, 32, 48])        # bytes past a 64-byte line
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("fill", list(STREAMED))
def test_streamed_fill_at_every_alignment(path, fill, dtype, offset):
    # A fill this large is written with non-temporal stores (8 MiB and up); its whole
    # blocks store 64-byte vectors on AVX-512, in whole lines at any of these offsets
    # (each line joined from two vectors where the target is off a line), 16-byte
    # pieces elsewhere.
    # The same elements filled as shards, each too small to stream, are the yardstick.
    method, args = STREAMED[fill]
    dt = _bf16() if dtype == "bfloat16" else np.dtype(dtype)
    size = np.dtype(dt).itemsize
    n = 4_300_000
    buf = np.empty(n + 64, dt)
    start = (-buf.ctypes.data // size) % (64 // size) + offset // size
    out = buf[start:start + n]
    assert out.ctypes.data % 64 == offset
    getattr(fastinit.Generator(5), method)(out, *args)
    want = np.empty(n, dt)
    for lo in range(0, n, 1_000_000):
        part = want[lo:lo + 1_000_000]
        getattr(fastinit.Generator(5), method)(part, *args, global_shape=(n,),
                                               global_offset=(lo,))
    np.testing.assert_array_equal(out.view(f"u{size}"), want.view(f"u{size}"))



def test_small_fills_streamed_in_a_large_pass(path):
    # init_all's pass writes 8 MiB and more, so every fill of it is streamed, small
    # ones too: partial blocks at every offset from a 64-byte line, whole blocks
    # whose start is only 2- or 8-byte aligned, a strided view, each dtype and fill.
    # Each must hold the bits of its own call, too small to stream.
    bf16 = _bf16()
    kinds = [("uniform_", {"a": -0.5, "b": 2.0}), ("normal_", {"mean": 0.25, "std": 1.5}),
             ("trunc_normal_", {"std": 0.02})]
    big = np.empty(2_200_000, np.float32)
    plan, small = [(big, "uniform_")], []
    for i, dt in enumerate([np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16),
                            np.dtype(bf16)]):
        for j, (n, shift) in enumerate([(700, 0), (3000, 1), (4096 + 5, 3), (2048, 4)]):
            buf = np.empty(n + 64, dt)
            start = (-buf.ctypes.data // dt.itemsize) % (64 // dt.itemsize) + shift
            small.append(buf[start:start + n])
        small.append(np.empty((40, 130), dt)[:, ::2])
        for k, a in enumerate(small[-5:]):
            name, kwargs = kinds[(i + k) % 3]
            plan.append((a, name, kwargs))
    assert sum(a.nbytes for a, *_ in plan) >= 8 << 20
    fastinit.init_all(plan, fastinit.Generator(11))
    g = fastinit.Generator(11)
    for entry in plan:
        a = entry[0]
        want = np.empty_like(a)
        getattr(fastinit, entry[1])(want, **(entry[2] if len(entry) > 2 else {}), generator=g)
        np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), want.view(f"u{a.itemsize}"))


# --------------------------------------------------------------------------------------
# Rounding to 16 bits (docs/stream.md, section 7), on float32 bit patterns
# --------------------------------------------------------------------------------------

def _expected_16(bits, bfloat16):
    """The specification's rounding of the float32 patterns ``bits`` to 16 bits:
    bfloat16 by its formula, float16 by numpy's IEEE conversion; a NaN becomes the
    quiet NaN sign | 0x7E00 (float16) or its top half with the quiet bit (bfloat16)."""
    x = bits.view(np.float32)
    nan = np.isnan(x)
    if bfloat16:
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
        want = (rounded >> np.uint32(16)).astype(np.uint16)
        quiet = ((bits >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    else:
        with np.errstate(over="ignore"):
            want = x.astype(np.float16).view(np.uint16)
        quiet = (((bits >> np.uint32(16)) & np.uint32(0x8000)) | np.uint32(0x7E00)).astype(np.uint16)
    return np.where(nan, quiet, want)


def _check_patterns(bits, bfloat16):
    """Both roundings of the path: the specification's, NaNs included, and the one
    the fills use (``nan_free``), on every pattern that is not a NaN; for bfloat16,
    the latter again on the patterns with the subnormals left out, so that every
    other value (zeros included) also meets the avx512bf16 path's conversion, which
    rounds 32 values at a time where none is a subnormal."""
    want = _expected_16(bits, bfloat16)
    out = np.empty(bits.shape, np.uint16)
    _runtime.round_to_16bit(bits.view(np.float32), out, bfloat16)
    bad = np.flatnonzero(out != want)
    assert bad.size == 0, [(hex(bits[i]), hex(out[i]), hex(want[i])) for i in bad[:5]]
    numbers = ~np.isnan(bits.view(np.float32))
    _runtime.round_to_16bit(bits.view(np.float32), out, bfloat16, nan_free=True)
    bad = np.flatnonzero((out != want) & numbers)
    assert bad.size == 0, [(hex(bits[i]), hex(out[i]), hex(want[i])) for i in bad[:5]]
    if bfloat16:
        magnitude = bits & np.uint32(0x7FFFFFFF)
        kept = (magnitude == 0) | (magnitude > 0x7FFFFF)
        n = np.count_nonzero(kept) // 8 * 8
        rest, want, numbers = bits[kept][:n], want[kept][:n], numbers[kept][:n]
        out = np.empty(rest.shape, np.uint16)
        _runtime.round_to_16bit(rest.view(np.float32), out, True, nan_free=True)
        bad = np.flatnonzero((out != want) & numbers)
        assert bad.size == 0, [(hex(rest[i]), hex(out[i]), hex(want[i])) for i in bad[:5]]


SPECIAL = np.array([0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000,
                    0x7FC00000, 0xFFFFFFFF, 0x7F800001, 0x7FBFFFFF, 0x477FE000, 0x477FEFFF,
                    0x477FF000, 0x47800000, 0x387FC000, 0x38800000, 0x33000000, 0x33000001,
                    0x337FFFFF, 0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000],
                   np.uint32)


@pytest.mark.parametrize("bfloat16", [False, True], ids=["float16", "bfloat16"])
def test_round16_special_and_sampled_patterns(path, bfloat16):
    """Zeros, subnormals, ties, the overflow threshold, infinities and NaNs, every
    pattern whose low 12 bits are zero (all exponents, both signs, the ties of both
    formats among them) and 2^22 random patterns."""
    rng = np.random.default_rng(16)
    grid = np.arange(2**20, dtype=np.uint32) << np.uint32(12)
    sampled = rng.integers(0, 2**32, 2**22, dtype=np.uint32)
    bits = np.concatenate([SPECIAL, grid, sampled])
    _check_patterns(bits[: bits.size // 8 * 8], bfloat16)


@pytest.mark.slow
@pytest.mark.parametrize("bfloat16", [False, True], ids=["float16", "bfloat16"])
def test_round16_every_float32(path, bfloat16):
    """All 2^32 float32 bit patterns, in chunks of 2^24."""
    chunk = np.arange(2**24, dtype=np.uint32)
    for top in range(256):
        _check_patterns(chunk | np.uint32(top << 24), bfloat16)


def test_round16_refuses_mismatched_or_ragged_lengths():
    with pytest.raises(ValueError, match="multiple of 8"):
        _runtime.round_to_16bit(np.zeros(12, np.float32), np.zeros(12, np.uint16), False)
    with pytest.raises(ValueError, match="same length"):
        _runtime.round_to_16bit(np.zeros(16, np.float32), np.zeros(8, np.uint16), True)
