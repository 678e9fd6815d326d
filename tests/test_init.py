"""The initializer API on numpy arrays: distributions, dtypes, shards, threads, errors."""

import ctypes
import ctypes.util
import math
import platform
import struct
import warnings

import numpy as np
import pytest
from scipy import stats

import fastinit as fi
from fastinit import _dtypes, _runtime

ml_dtypes = pytest.importorskip("ml_dtypes")
DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
IDS = ["float16", "bfloat16", "float32", "float64"]

# Every sampling initializer, with arguments, on a 2-D weight.
SAMPLERS = {
    "uniform_": lambda t, g, **kw: fi.uniform_(t, -0.3, 0.7, g, **kw),
    "normal_": lambda t, g, **kw: fi.normal_(t, 0.1, 0.5, g, **kw),
    "trunc_normal_": lambda t, g, **kw: fi.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, g, **kw),
    "xavier_uniform_": lambda t, g, **kw: fi.xavier_uniform_(t, 1.0, g, **kw),
    "xavier_normal_": lambda t, g, **kw: fi.xavier_normal_(t, 2.0, g, **kw),
    "kaiming_uniform_": lambda t, g, **kw: fi.kaiming_uniform_(t, math.sqrt(5), generator=g,
                                                               **kw),
    "kaiming_normal_": lambda t, g, **kw: fi.kaiming_normal_(t, mode="fan_out",
                                                             nonlinearity="relu", generator=g,
                                                             **kw),
    "orthogonal_": lambda t, g, **kw: fi.orthogonal_(t, 1.5, g, **kw),
    "sparse_": lambda t, g, **kw: fi.sparse_(t, 0.25, 0.1, g, **kw),
    "variance_scaling_": lambda t, g, **kw: fi.variance_scaling_(t, 2.0, "fan_avg", generator=g,
                                                                 **kw),
    "lecun_uniform_": lambda t, g, **kw: fi.lecun_uniform_(t, generator=g, **kw),
    "lecun_normal_": lambda t, g, **kw: fi.lecun_normal_(t, generator=g, **kw),
}


def f64(a):
    return np.asarray(a).astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_shards_threads_and_layouts_agree(name, dtype, num_threads):
    gshape = (96, 700)
    whole = np.empty(gshape, dtype)
    num_threads(1)
    SAMPLERS[name](whole, fi.Generator(4))
    num_threads(3)
    again = np.empty(gshape, dtype, order="F")
    SAMPLERS[name](again, fi.Generator(4))
    np.testing.assert_array_equal(f64(again), f64(whole))
    for off, shp in [((0, 300), (96, 250)), ((40, 0), (56, 700)), ((10, 123), (7, 501))]:
        part = np.empty(shp, dtype)
        SAMPLERS[name](part, fi.Generator(4), global_shape=gshape, global_offset=off)
        np.testing.assert_array_equal(f64(part), f64(whole[off[0]:off[0] + shp[0],
                                                            off[1]:off[1] + shp[1]]))


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_global_shape_and_offset_may_be_numpy_arrays(name):
    # As tuples give them. orthogonal_ and sparse_ asked an offset array its truth
    # value (ValueError) after drawing: sparse_ had written its normals.
    part = np.full((7, 501), 9.0, np.float32)
    SAMPLERS[name](part, fi.Generator(4), global_shape=np.array([96, 700]),
                   global_offset=np.array([10, 123]))
    want = SAMPLERS[name](np.empty((7, 501), np.float32), fi.Generator(4),
                          global_shape=(96, 700), global_offset=(10, 123))
    np.testing.assert_array_equal(part, want)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_takes_exactly_one_call(name):
    g = fi.Generator(0)
    SAMPLERS[name](np.empty((30, 40), np.float32), g)
    SAMPLERS[name](np.empty((30, 40), np.float32), g)
    assert g.state["counter"] == 2


@pytest.mark.parametrize("kind, dtype", list(enumerate([np.float32, np.float64, np.float16,
                                                    ml_dtypes.bfloat16])), ids=IDS[2:] + IDS[:2])
def test_uniform_bounds_in_every_dtype(kind, dtype):
    a = np.empty(200_000, dtype)
    fi.uniform_(a, -1.0, 1.0, fi.Generator(1))
    x = f64(a)
    assert x.min() >= -1.0 and x.max() < 1.0
    if a.itemsize > 2:
        assert stats.kstest((x + 1) / 2, "uniform").pvalue > 1e-4
    # 0.1 is not a value of any of these dtypes: values stay below 0.1 rounded to the
    # dtype; in 16 bits, where rounding up to it is frequent, the largest value below
    # it is reached.
    fi.uniform_(a, 0.0, 0.1, fi.Generator(1))
    high = _dtypes.round_to(0.1, kind)
    assert f64(a).max() < high
    if a.itemsize == 2:
        assert f64(a).max() == _dtypes.next_toward(high, kind, -math.inf)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_normal_and_trunc_normal_statistics(dtype):
    n = 400_000
    a = np.empty(n, dtype)
    fi.normal_(a, 0.5, 2.0, fi.Generator(2))
    x = f64(a)
    tol = 1e-2 if a.itemsize == 2 else 0          # 16-bit rounding of the values
    assert abs(x.mean() - 0.5) < 5 * 2 / math.sqrt(n) + tol
    assert abs(x.std() / 2.0 - 1) < 5 * math.sqrt(0.5 / n) + tol
    fi.trunc_normal_(a, 1.0, 0.5, 0.2, 1.6, fi.Generator(3))
    x = f64(a)
    assert x.min() >= 0.2 and x.max() <= 1.6
    dist = stats.truncnorm((0.2 - 1.0) / 0.5, (1.6 - 1.0) / 0.5, loc=1.0, scale=0.5)
    assert abs(x.mean() - dist.mean()) < 5 * dist.std() / math.sqrt(n) + tol
    if a.itemsize > 2:
        assert stats.kstest(x, dist.cdf).pvalue > 1e-4


@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
@pytest.mark.parametrize("a, b, mean, std", [
    (-2.0, 2.0, 0.0, 1.0),        # normal proposals
    (3.0, 3.5, 0.0, 1.0),         # far tail, narrow: uniform proposals
    (-0.001, 0.002, 0.0, 1.0),    # narrow around the mode
    (0.5, 4.0, 0.0, 1e-3),        # tiny std, interval far away in std units
])
def test_trunc_normal_is_exact_in_hard_cases(a, b, mean, std):
    x = np.empty(200_000)
    fi.trunc_normal_(x, mean, std, a, b, fi.Generator(5))
    assert x.min() >= a and x.max() <= b
    dist = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert stats.kstest(x, dist.cdf).pvalue > 1e-4


def test_trunc_normal_float16_small_std_stays_inside():
    # torch's inverse-CDF version left [a, b] here; rejection cannot.
    h = np.empty(100_000, np.float16)
    fi.trunc_normal_(h, 0.0, 0.02, -0.04, 0.04, fi.Generator(6))
    assert f64(h).min() >= -0.04 and f64(h).max() <= 0.04
    assert abs(f64(h).std() / 0.02 - 0.88) < 0.02


def test_xavier_kaiming_scales():
    w = np.empty((512, 256, 3, 3), np.float32)
    fan_in, fan_out = 256 * 9, 512 * 9
    fi.xavier_uniform_(w, 1.0, fi.Generator(0))
    a = math.sqrt(3.0) * math.sqrt(2.0 / (fan_in + fan_out))
    assert w.min() >= -a and w.max() < a and abs(w.std() / (a / math.sqrt(3)) - 1) < 0.01
    fi.kaiming_normal_(w, generator=fi.Generator(0))
    assert abs(w.std() / (math.sqrt(2 / (1 + 0.01**2)) / math.sqrt(fan_in)) - 1) < 0.01


def test_orthogonal_is_orthogonal():
    for shape in [(40, 60), (60, 40), (16, 4, 3, 3), (50, 50)]:
        w = np.empty(shape)
        fi.orthogonal_(w, 2.0, fi.Generator(1))
        m = w.reshape(shape[0], -1)
        small = min(m.shape)
        gram = m @ m.T if m.shape[0] == small else m.T @ m
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)


def test_sparse_zero_counts():
    w = np.empty((101, 37))
    fi.sparse_(w, 0.3, 0.05, fi.Generator(2))
    assert ((w == 0).sum(axis=0) == math.ceil(0.3 * 101)).all()
    patterns = {tuple(np.flatnonzero(w[:, j] == 0)) for j in range(37)}
    assert len(patterns) > 30                      # columns get different rows
    nz = w[w != 0]
    assert abs(nz.std() / 0.05 - 1) < 0.05


def test_constant_eye_dirac():
    for dtype in DTYPES:
        a = np.empty((3, 5), dtype)
        fi.constant_(a, 0.3)
        assert (f64(a) == f64(np.asarray(0.3, dtype))).all()
        fi.ones_(a)
        assert (f64(a) == 1).all()
        fi.zeros_(a)
        assert (f64(a) == 0).all()
        fi.eye_(a)
        np.testing.assert_array_equal(f64(a), np.eye(3, 5))
    d = np.empty((6, 4, 3, 3))
    fi.dirac_(d, 2)
    assert d.sum() == 6 and d[0, 0, 1, 1] == 1 and d[3, 0, 1, 1] == 1 and d[5, 2, 1, 1] == 1


def test_variance_scaling_layouts_and_formulas():
    hwio = np.empty((3, 3, 64, 128))
    oihw = np.empty((128, 64, 3, 3))
    fi.variance_scaling_(hwio, 2.0, "fan_in", "normal", layout="jax", generator=fi.Generator(0))
    fi.variance_scaling_(oihw, 2.0, "fan_in", "normal", generator=fi.Generator(0))
    assert abs(hwio.std() / math.sqrt(2.0 / 576) - 1) < 0.02
    assert abs(oihw.std() / math.sqrt(2.0 / 576) - 1) < 0.02
    fi.variance_scaling_(hwio, 1.0, "fan_avg", "uniform", layout=(-2, -1),
                         generator=fi.Generator(0))
    limit = math.sqrt(3.0 / ((576 + 1152) / 2))
    assert hwio.min() >= -limit and hwio.max() < limit
    fi.lecun_normal_(hwio, layout="keras", generator=fi.Generator(0))
    assert abs(hwio.std() / math.sqrt(1 / 576) - 1) < 0.02     # truncation corrected
    assert np.abs(hwio).max() <= 2 * math.sqrt(1 / 576) / 0.87962566103423978
    for bad in [dict(mode="fan_sum"), dict(distribution="cauchy"), dict(layout="nchw"),
                dict(layout=(1, 1)), dict(scale=0.0)]:
        with pytest.raises(ValueError):
            fi.variance_scaling_(hwio, **{"scale": 1.0, **bad})
    # A NaN or infinite scale is refused for what it is (it passed `scale <= 0` and
    # failed later, naming the std or bounds it made), for every distribution.
    for scale in (math.nan, math.inf):
        for distribution in ("truncated_normal", "normal", "uniform"):
            with pytest.raises(ValueError, match=f"scale must be positive and finite, got {scale}"):
                fi.variance_scaling_(hwio, scale, distribution=distribution)


def test_errors_beyond_torchs():
    # (The errors torch also raises are compared with torch's in test_init_torch.py.)
    with pytest.raises(ValueError, match="sparsity"):
        fi.sparse_(np.empty((4, 4)), 1.5)
    with pytest.raises(TypeError, match="fastinit.Generator"):
        fi.uniform_(np.empty(3), generator=np.random.default_rng())


@pytest.mark.parametrize("init", [fi.kaiming_uniform_, fi.kaiming_normal_])
@pytest.mark.parametrize("bad", [dict(mode="fan_sum"), dict(nonlinearity="gelu"), dict(mode=None),
                                 dict(generator="g")], ids=["mode", "nonlinearity", "mode-None",
                                                            "generator"])
def test_kaiming_reports_a_bad_target_before_a_bad_argument(init, bad):
    with pytest.raises(TypeError, match="unsupported dtype"):
        init(np.empty((4, 4), np.int32), **bad)
    read_only = np.empty((4, 4))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init(read_only, **bad)
    with pytest.raises(ValueError, match="does not fit"):
        init(np.empty((4, 4)), **bad, global_shape=(4, 4), global_offset=(1, 0))
    good = np.full((4, 4), 7.0)                       # a good target: the argument's error
    with pytest.raises((TypeError, ValueError, AttributeError)) as error:
        init(good, **bad)
    assert "dtype" not in str(error.value) and (good == 7.0).all()


# Every public function, and the Generator's fills, with one bad argument each: (shape of
# the float32 target, the call, the exception).
FAILING_CALLS = {
    "uniform_": ((4, 4), lambda t, g: fi.uniform_(t, 1.0, 0.0, g), RuntimeError),
    "normal_": ((4, 4), lambda t, g: fi.normal_(t, 0.0, -1.0, g), RuntimeError),
    "normal_-nan": ((4, 4), lambda t, g: fi.normal_(t, math.nan, 1.0, g), ValueError),
    "trunc_normal_": ((4, 4), lambda t, g: fi.trunc_normal_(t, 0, 1, 2, 1, g), RuntimeError),
    "constant_": ((4, 4), lambda t, g: fi.constant_(t, 1e39), RuntimeError),
    "constant_-str": ((4, 4), lambda t, g: fi.constant_(t, "1"), TypeError),
    "eye_": ((2, 2, 2), lambda t, g: fi.eye_(t), ValueError),
    "dirac_": ((5, 4, 3), lambda t, g: fi.dirac_(t, 2), ValueError),
    "xavier_uniform_": ((4,), lambda t, g: fi.xavier_uniform_(t, generator=g), ValueError),
    "xavier_normal_": ((4,), lambda t, g: fi.xavier_normal_(t, generator=g), ValueError),
    "kaiming_uniform_": ((4, 4), lambda t, g: fi.kaiming_uniform_(t, mode="bad", generator=g),
                         ValueError),
    "kaiming_normal_": ((4, 4), lambda t, g: fi.kaiming_normal_(t, nonlinearity="gelu",
                                                                generator=g), ValueError),
    "orthogonal_": ((4,), lambda t, g: fi.orthogonal_(t, generator=g), ValueError),
    "orthogonal_-complex-gain": ((4, 4), lambda t, g: fi.orthogonal_(t, 1j, g), TypeError),
    "orthogonal_-text-gain": ((4, 4), lambda t, g: fi.orthogonal_(t, "2", g), TypeError),
    "kaiming_uniform_-empty-shard": ((0, 4), lambda t, g: fi.kaiming_uniform_(
        t, generator=g, global_shape=(0, 4), global_offset="junk"), TypeError),
    "kaiming_normal_-empty-shard": ((0, 4), lambda t, g: fi.kaiming_normal_(
        t, generator=g, global_shape=(0, 8), global_offset=(0, 9)), ValueError),
    "trunc_normal_-nan-bound": ((4, 4), lambda t, g: fi.trunc_normal_(t, 0, 1, math.nan, 1, g),
                                ValueError),
    "sparse_-std": ((4, 4), lambda t, g: fi.sparse_(t, 0.5, -1.0, g), RuntimeError),
    "sparse_-nan": ((4, 4), lambda t, g: fi.sparse_(t, 0.5, math.nan, g), ValueError),
    "sparse_-sparsity": ((4, 4), lambda t, g: fi.sparse_(t, -0.1, generator=g), ValueError),
    "variance_scaling_-axis": ((4, 4), lambda t, g: fi.variance_scaling_(t, layout=(0, 5),
                                                                         generator=g),
                               ValueError),
    "variance_scaling_-mode": ((4, 4), lambda t, g: fi.variance_scaling_(t, mode="fan",
                                                                         generator=g),
                               ValueError),
    "variance_scaling_-dist": ((4, 4), lambda t, g: fi.variance_scaling_(
        t, distribution="cauchy", generator=g), ValueError),
    "lecun_uniform_": ((4, 4), lambda t, g: fi.lecun_uniform_(t, "nchw", g), ValueError),
    "lecun_normal_": ((4, 4), lambda t, g: fi.lecun_normal_(t, (1, 1), g), ValueError),
    "Generator.uniform_": ((4, 4), lambda t, g: g.uniform_(t, math.inf, math.inf),
                           RuntimeError),
    "Generator.trunc_normal_": ((4, 4), lambda t, g: g.trunc_normal_(t, 0.0, 1.0, 0.1, 0.1 + 1e-9),
                                ValueError),
    "Generator.random_raw_": ((4, 4), lambda t, g: g.random_raw_(t), TypeError),
}


@pytest.mark.parametrize("name", list(FAILING_CALLS))
def test_a_call_that_raises_leaves_target_and_generator_untouched(name):
    shape, call, exc = FAILING_CALLS[name]
    t = np.full(shape, 9.0, np.float32)
    g = fi.Generator(0)
    fi.uniform_(np.empty(3), generator=g)
    before = g.state
    with pytest.raises(exc):
        call(t, g)
    assert g.state == before and (t == 9.0).all()


PUBLIC_FILLS = {
    "uniform_": lambda t, g: fi.uniform_(t, generator=g),
    "normal_": lambda t, g: fi.normal_(t, generator=g),
    "trunc_normal_": lambda t, g: fi.trunc_normal_(t, generator=g),
    "constant_": lambda t, g: fi.constant_(t, 0.5),
    "ones_": lambda t, g: fi.ones_(t),
    "zeros_": lambda t, g: fi.zeros_(t),
    "eye_": lambda t, g: fi.eye_(t),
    "dirac_": lambda t, g: fi.dirac_(t.reshape(4, 4, 1)),
    "xavier_uniform_": lambda t, g: fi.xavier_uniform_(t, generator=g),
    "xavier_normal_": lambda t, g: fi.xavier_normal_(t, generator=g),
    "kaiming_uniform_": lambda t, g: fi.kaiming_uniform_(t, generator=g),
    "kaiming_normal_": lambda t, g: fi.kaiming_normal_(t, generator=g),
    "orthogonal_": lambda t, g: fi.orthogonal_(t, generator=g),
    "sparse_": lambda t, g: fi.sparse_(t, 0.5, generator=g),
    "variance_scaling_": lambda t, g: fi.variance_scaling_(t, generator=g),
    "lecun_uniform_": lambda t, g: fi.lecun_uniform_(t, generator=g),
    "lecun_normal_": lambda t, g: fi.lecun_normal_(t, generator=g),
}


@pytest.mark.parametrize("name", list(PUBLIC_FILLS))
def test_unwritable_targets_raise_before_anything_else(name):
    g = fi.Generator(0)
    read_only = np.zeros((4, 4))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        PUBLIC_FILLS[name](read_only, g)
    with pytest.raises(TypeError, match="unsupported dtype"):
        PUBLIC_FILLS[name](np.zeros((4, 4), np.int32), g)
    assert g.state["counter"] == 0 and (read_only == 0).all()


@pytest.mark.parametrize("kind, dtype", list(enumerate([np.float32, np.float64, np.float16,
                                                        ml_dtypes.bfloat16])))
def test_constant_rejects_values_beyond_the_dtype(kind, dtype):
    largest = _dtypes.BY_KIND[kind].max
    for ok in [largest, -largest, math.inf, -math.inf, 0.0, True]:
        a = fi.constant_(np.zeros(3, dtype), ok)
        assert (a.astype(np.float64) == float(ok)).all()
    a = fi.constant_(np.zeros(3, dtype), math.nan)
    assert np.isnan(a.astype(np.float64)).all()
    if dtype is not np.float64:
        for bad in [np.nextafter(largest, math.inf), -1e39 if kind != 1 else None]:
            a = np.full(3, 2.0, dtype)
            with pytest.raises(RuntimeError, match="without overflow"):
                fi.constant_(a, bad)
            assert (a == 2.0).all()


def test_layout_axes_are_validated():
    w = np.empty((3, 4), np.float32)
    for layout in [(0, 5), (0, -3), (2, 1)]:
        with pytest.raises(np.exceptions.AxisError):
            fi.variance_scaling_(w, layout=layout, generator=fi.Generator(0))
    for layout in [(1, 1), (0, -2), (-1, 1)]:
        with pytest.raises(ValueError, match="must differ"):
            fi.variance_scaling_(w, layout=layout, generator=fi.Generator(0))
    for layout in [(True, 0), (0.0, 1), ("0", 1)]:
        with pytest.raises(TypeError, match="layout axes must be ints"):
            fi.variance_scaling_(w, layout=layout, generator=fi.Generator(0))
    a = fi.variance_scaling_(np.empty((3, 4)), layout=(-1, 0), generator=fi.Generator(1))
    b = fi.variance_scaling_(np.empty((3, 4)), layout=(1, 0), generator=fi.Generator(1))
    np.testing.assert_array_equal(a, b)


# Extreme truncated-normal parameters, in a subprocess with a time limit (some once
# looped forever): (mean, std, a, b) and what every value must then be.
EXTREME_TRUNC = """
import json, math, warnings
import numpy as np, fastinit as fi
warnings.simplefilter("ignore")
cases = [(0.0, 1e-200, 1.0, 2.0), (0.0, 5e-324, 1.0, 2.0), (0.0, 5e-324, -2.0, 2.0),
         (0.0, 1e-200, -2.0, -1.0), (0.0, 1.0, 1e300, 1.5e300), (0.0, 1e-30, 1e10, 2e10),
         (1e308, 1e300, -1e308, 1.7e308), (-1e308, 1.0, 1e308, 1.5e308),
         (0.0, 1e-300, 1e-300, 2e-300)]
out = []
for mean, std, a, b in cases:
    for dtype in (np.float64, np.float32) if 1e-30 < b < 3e38 else (np.float64,):
        x = fi.trunc_normal_(np.empty(5000, dtype), mean, std, a, b, fi.Generator(1))
        x = x.astype(np.float64)
        out.append([mean, std, a, b, np.dtype(dtype).name, x.min(), x.max(),
                    bool(np.isfinite(x).all())])
print(json.dumps(out))
"""


def test_trunc_normal_extreme_parameters_return_values_in_the_interval():
    import json
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-c", EXTREME_TRUNC], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    for mean, std, a, b, dtype, lo, hi, finite in json.loads(run.stdout):
        case = (mean, std, a, b, dtype)
        if dtype == "float32":
            a, b = max(a, -3.4028234663852886e38), min(b, 3.4028234663852886e38)
        assert finite and a <= lo <= hi <= b, case
        if mean + 2 * std < a or mean - 2 * std > b:
            # Far outside: the spread std**2 / distance is below the dtype's resolution, so
            # every value is the end of [a, b] nearest the mean.
            nearest = a if mean < a else b
            assert lo == hi and abs(lo - nearest) <= 1e-15 * abs(nearest), case


def _far_tail_law(a, w):
    """CDF and mean of t = z - a for a standard normal z conditioned on [a, a + w], a > 0
    large: density proportional to exp(-a t - t**2 / 2), written with erfcx so that
    nothing overflows (scipy's truncnorm loses the mean this far out)."""
    from scipy import integrate, special

    def g(t):
        return special.erfcx(a / math.sqrt(2)) - \
            special.erfcx((a + t) / math.sqrt(2)) * np.exp(-a * t - t * t / 2)

    total = g(w)
    mean = integrate.quad(lambda t: t * math.exp(-a * t - t * t / 2), 0, w, epsabs=0,
                          epsrel=1e-12)[0]
    mass = integrate.quad(lambda t: math.exp(-a * t - t * t / 2), 0, w, epsabs=0,
                          epsrel=1e-12)[0]
    return (lambda t: g(np.clip(t, 0, w)) / total), mean / mass


@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
@pytest.mark.parametrize("a, b", [(1e3, 1e3 + 1.0), (-1e3 - 1.0, -1e3), (1e3, 1e3 + 1e-4)])
def test_trunc_normal_far_in_the_tail_has_the_right_law(a, b):
    # In the far tail x - a (or b - x) is nearly exponential with rate |a| (exponential
    # proposals); [a, a + 1e-4] is narrower than 1/|a| (uniform proposals).
    x = fi.trunc_normal_(np.empty(100_000), 0.0, 1.0, a, b, fi.Generator(2))
    assert x.min() >= a and x.max() <= b
    t = x - a if a > 0 else b - x
    cdf, mean = _far_tail_law(min(abs(a), abs(b)), b - a)
    assert abs(t.mean() - mean) < 5 * t.std() / math.sqrt(x.size)
    assert stats.kstest(t, cdf).pvalue > 1e-4


def test_zero_element_kaiming_warns_and_takes_a_call():
    g = fi.Generator(0)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        fi.kaiming_uniform_(np.empty((0, 3)), generator=g)
    assert g.state["counter"] == 1


def test_empty():
    assert fi.empty((2, 3)).dtype == np.float32
    assert fi.empty((2, 3), "bfloat16").dtype.name == "bfloat16"
    assert fi.empty(4, np.float64).shape == (4,)


def test_warnings_point_at_the_caller():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fi.kaiming_normal_(np.empty((3, 0)))
    assert caught[0].filename == __file__


# --------------------------------------------------------------------------------------
# Bits: 16-bit fills and the truncated normal against tests/reference.py
# --------------------------------------------------------------------------------------

import reference as ref  # noqa: E402


def key_of(seed):
    return fi.Generator(seed).state["key"]


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["float16", "bfloat16"])
def test_16bit_fills_match_reference(dtype):
    n = 2 * ref.BLOCK + 99
    a = np.empty(n, dtype)
    fi.uniform_(a, -0.3, 0.1, fi.Generator(8))
    np.testing.assert_array_equal(
        a.view(np.uint16), ref.uniform_fill_16(key_of(8), 0, (n,), dtype, -0.3, 0.1)
        .view(np.uint16))
    fi.normal_(a, 0.5, 3.0, fi.Generator(8))
    np.testing.assert_array_equal(
        a.view(np.uint16), ref.normal_fill_16(key_of(8), 0, (n,), dtype, 0.5, 3.0)
        .view(np.uint16))
    part = np.empty((3, 700), dtype)
    kw = dict(global_shape=(5, 1500), global_offset=(1, 333))
    fi.normal_(part, 0.0, 1e-6, fi.Generator(8), **kw)      # float16 subnormals
    np.testing.assert_array_equal(
        part.view(np.uint16), ref.normal_fill_16(key_of(8), 0, (3, 700), dtype, 0.0, 1e-6, **kw)
        .view(np.uint16))


@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ml_dtypes.bfloat16],
                         ids=["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mean, std, a, b, mode", [
    (0.0, 1.0, -2.0, 2.0, 0),
    (0.1, 0.5, 0.2, 0.21, 1),
    (0.0, 1.0, 2.5, 9.0, 2),
    (0.0, 1.0, -9.0, -2.5, 2),
    (0.0, 1e-200, 1.0, 2.0, 2),         # the far tail: alpha = 1e200, its square overflows
    (0.0, 1e-200, -2.0, -1.0, 2),
    (0.0, 5e-324, 1.0, 2.0, None),      # alpha = beta = inf: the bound nearest the mean
    (0.5, 2.0, -math.inf, math.inf, 0),  # the whole line: a normal fill
    (0.0, 1.0, 2.0, math.inf, 2),       # half-lines, in a tail and across the mean
    (0.0, 1.0, -math.inf, -3.0, 2),
    (0.0, 0.02, -math.inf, 0.3, 0),
    (0.0, 1.0, 0.0, 3.0, 0),            # an end at zero: -0.0 lies inside [0, b]
    (0.0, 1.0, -3.0, -0.0, 0),
])
def test_trunc_normal_matches_reference(dtype, mean, std, a, b, mode):
    if mode is not None:
        assert ref.trunc_mode((a - mean) / std, (b - mean) / std)[0] == mode
    n = ref.BLOCK + 300
    out = np.empty(n, dtype)
    fi.trunc_normal_(out, mean, std, a, b, fi.Generator(9))
    want = ref.trunc_normal_fill(key_of(9), 0, (n,), dtype, mean, std, a, b)
    np.testing.assert_array_equal(out.astype(np.float64), want.astype(np.float64))
    part = np.empty(700, dtype)
    fi.trunc_normal_(part, mean, std, a, b, fi.Generator(9), global_shape=(n,),
                     global_offset=(1500,))
    np.testing.assert_array_equal(part.astype(np.float64), want[1500:2200].astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trunc_normal_wide_interval_with_a_tail_value_outside(dtype, simd_path):
    """An interval holding [-r, r] (r = 3.654..., the Ziggurat's base) whose blocks
    hold float64 normals beyond it (asserted from the reference): the whole-block
    kernel completes such a block's fix-ups in one loop, finds the value outside and
    draws the block again step by step. Bit for bit the reference on every path."""
    a, b, n = -3.7, 3.7, 4 * ref.BLOCK
    assert a <= -ref.ZIG_R and b >= ref.ZIG_R
    sigma = ref.call_seed(*key_of(3), 0)
    beyond = [blk for blk in range(4) if np.any(np.abs(ref.normal_block_z(sigma, blk, np.float64)) > b)]
    assert beyond, "no block with a value outside: the redrawing path would go untested"
    want = ref.trunc_normal_fill(key_of(3), 0, (n,), dtype, 0.0, 1.0, a, b)
    for path in _runtime.simd_paths():
        simd_path(path)
        out = np.empty(n, dtype)
        fi.trunc_normal_(out, 0.0, 1.0, a, b, fi.Generator(3))
        np.testing.assert_array_equal(out, want, err_msg=path)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="FE_INVALID is x86's")
def test_trunc_normal_leaves_no_invalid_operation_flag(simd_path):
    """Until the Ziggurat completes them, rejected candidates keep their raw bits, and
    random bits can be a NaN (about 1 in 2048): the truncated normal's range check must
    not compare them, which would leave the invalid-operation flag set in the calling
    thread's floating-point state. 2M values at ±2 std: some 15 such NaNs expected."""
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    fe_invalid = 1
    threads = fi.get_num_threads()
    fi.set_num_threads(1)                   # the fill runs on this thread
    try:
        for path in _runtime.simd_paths():
            simd_path(path)
            out = np.empty(1 << 21)
            libm.feclearexcept(fe_invalid)
            fi.trunc_normal_(out, 0.0, 1.0, -2.0, 2.0, fi.Generator(4))
            assert libm.fetestexcept(fe_invalid) == 0, path
    finally:
        fi.set_num_threads(threads)


def test_no_normal_value_reaches_14():
    """The kernels skip the truncated normal's range check when [alpha, beta] holds
    [-14, 14] (FI_ZIG_MAX in fi_trunc.h). The largest magnitude the Ziggurat gives
    is the tail's r + xx with its uniform at its least, U' = 2^-53."""
    assert ref.u53_open(0) == 2.0 ** -53
    largest = ref.ZIG_R - ref.log_d(2.0 ** -53) * ref.ZIG_INV_R
    assert 13.7 < largest < 14.0
    # U' steps up from 2^-53, so log_d only rises from there (spot checks)
    for x in (1 << 11, 2 << 11, 12345 << 11, 1 << 40):
        assert ref.log_d(ref.u53_open(x)) > ref.log_d(2.0 ** -53)


@pytest.mark.parametrize("shape", [(40, 60), (60, 40), (16, 4, 3, 3)])
def test_orthogonal_takes_the_qr_in_the_targets_precision(shape):
    """float32 (and 16-bit) targets: Q of numpy's float32 QR of the float64 draws;
    float64: of the float64 QR (docs/stream.md, section 7)."""
    rows, cols = shape[0], math.prod(shape) // shape[0]
    draws = fi.Generator(4).normal_(np.empty((rows, cols)))
    for dtype in (np.float32, np.float64):
        m = (draws if rows >= cols else draws.T).astype(dtype)
        q, r = np.linalg.qr(m)
        q = q * np.sign(np.diag(r))
        want = (1.5 * (q if rows >= cols else q.T)).reshape(shape)
        w = np.empty(shape, dtype)
        fi.orthogonal_(w, 1.5, fi.Generator(4))
        np.testing.assert_array_equal(w, want.astype(dtype))
        small = min(rows, cols)
        m = w.reshape(rows, -1).astype(np.float64)
        gram = m @ m.T if rows == small else m.T @ m
        np.testing.assert_allclose(gram, 2.25 * np.eye(small),
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


# --------------------------------------------------------------------------------------
# The places docs/stream.md used to leave to guesswork, each against tests/reference.py
# --------------------------------------------------------------------------------------

DTYPES = [np.float64, np.float32, np.float16, ml_dtypes.bfloat16]
SNAN64 = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000123))[0]   # -NaN, a payload


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("x", [1 + 2**-11 + 2**-40, -1 + 2**-9 + 2**-30, 1e-8, 65519.9,
                               3.0e38, math.inf, -0.0, math.nan, SNAN64])
def test_constants_are_rounded_through_binary32(dtype, x):
    want = ref.constant_fill((5,), dtype, x)
    bits = {8: np.uint64, 4: np.uint32, 2: np.uint16}[np.dtype(dtype).itemsize]
    fills = [lambda t: fi.constant_(t, x)]
    if math.isfinite(x):                       # (normal_'s mean must be finite)
        fills += [lambda t: fi.normal_(t, x, 0.0, fi.Generator(0)),
                  lambda t: fi.trunc_normal_(t, x, 0.0, -math.inf, math.inf, fi.Generator(0))]
    for fill in fills:
        try:
            got = fill(np.empty(5, dtype))
        except RuntimeError as exc:            # beyond the format: refused (section 11)
            assert "overflow" in str(exc) and abs(x) > _dtypes.BY_KIND[
                [np.float32, np.float64, np.float16, ml_dtypes.bfloat16].index(dtype)].max
            continue
        np.testing.assert_array_equal(got.view(bits), want.view(bits))
    if np.dtype(dtype) == np.float16 and x == 1 + 2**-11 + 2**-40:
        assert float(want[0]) == 1.0          # not 1 + 2**-10, the nearest float16


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mean, std, a, b", [(0.3, 0.0, -1.0, 1.0), (5.0, 0.0, -1.0, 1.0),
                                             (0.0, 1.0, 0.5, 0.5), (1 + 2**-11 + 2**-40, 0.0,
                                                                     -2.0, 2.0),
                                             (-0.0, 0.0, 0.0, 1.0)])
def test_trunc_normal_constant_cases_match_reference(dtype, mean, std, a, b):
    bits = {8: np.uint64, 4: np.uint32, 2: np.uint16}[np.dtype(dtype).itemsize]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = fi.trunc_normal_(np.empty(7, dtype), mean, std, a, b, fi.Generator(1))
    want = ref.trunc_normal_fill(key_of(1), 0, (7,), dtype, mean, std, a, b)
    np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape, sparsity", [((10, 7), 0.1), ((33, 5), 0.5), ((8, 3), 1.0),
                                             ((12, 4), 0.0)])
def test_sparse_matches_reference(dtype, shape, sparsity):
    got = fi.sparse_(np.empty(shape, dtype), sparsity, 0.5, fi.Generator(3))
    want = ref.sparse_fill(key_of(3), 0, shape, dtype, sparsity, 0.5)
    bits = {8: np.uint64, 4: np.uint32, 2: np.uint16}[np.dtype(dtype).itemsize]
    np.testing.assert_array_equal(got.view(bits), want.view(bits))
    if shape == (10, 7):                       # ceil(fl64(0.1 * 10)) = 1 zero per column
        assert ((got == 0).sum(axis=0) == 1).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32", "float16", "bfloat16"])
def test_eye_and_dirac_match_reference(dtype):
    np.testing.assert_array_equal(fi.eye_(np.full((4, 6), 9.0, dtype)), ref.eye_fill((4, 6),
                                                                                    dtype))
    for shape, groups in (((6, 4, 3), 2), ((4, 6, 3, 5), 1), ((6, 2, 3, 3, 3), 3)):
        np.testing.assert_array_equal(fi.dirac_(np.full(shape, 9.0, dtype), groups),
                                      ref.dirac_fill(shape, dtype, groups))


@pytest.mark.parametrize("gain", [1.7, np.float64(1.7), 3])
def test_orthogonal_gain_multiplies_in_the_precision_of_q(gain):
    unit = fi.orthogonal_(np.empty((30, 20), np.float32), 1.0, fi.Generator(4))
    got = fi.orthogonal_(np.empty((30, 20), np.float32), gain, fi.Generator(4))
    np.testing.assert_array_equal(got, unit * np.float32(float(gain)))
    half = fi.orthogonal_(np.empty((30, 20), np.float16), gain, fi.Generator(4))
    np.testing.assert_array_equal(half, (unit * np.float32(float(gain))).astype(np.float16))
