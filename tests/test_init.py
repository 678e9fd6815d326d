"""The initializer API on numpy arrays: distributions, dtypes, shards, threads, errors."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

import fastinit as fi
from fastinit import _fill

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
    high = _fill.round_to_kind(0.1, kind)
    assert f64(a).max() < high
    if a.itemsize == 2:
        assert f64(a).max() == _fill.next_in_kind(high, kind, -math.inf)


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


def test_torch_like_errors_on_numpy():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        fi.kaiming_uniform_(np.empty(5))
    with pytest.raises(ValueError, match="Mode fan_sum not supported"):
        fi.kaiming_normal_(np.empty((3, 4)), mode="fan_sum")
    with pytest.raises(ValueError, match="Unsupported nonlinearity softplus"):
        fi.kaiming_normal_(np.empty((3, 4)), nonlinearity="softplus")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        fi.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        fi.eye_(np.empty((2, 2, 2)))
    with pytest.raises(ValueError, match="divisible by groups"):
        fi.dirac_(np.empty((5, 4, 3)), 2)
    with pytest.raises(ValueError, match="sparsity"):
        fi.sparse_(np.empty((4, 4)), 1.5)
    with pytest.raises(TypeError, match="fastinit.Generator"):
        fi.uniform_(np.empty(3), generator=np.random.default_rng())


def test_errors_leave_the_target_and_generator_untouched():
    for call in [lambda a, g: fi.kaiming_uniform_(a, mode="bad", generator=g),
                 lambda a, g: fi.trunc_normal_(a, 0, 1, 2, 1, g),
                 lambda a, g: fi.normal_(a, 0, -1, g),
                 lambda a, g: fi.sparse_(a, -0.1, generator=g)]:
        a = np.full((4, 4), 9.0)
        g = fi.Generator(0)
        with pytest.raises((ValueError, RuntimeError)):
            call(a, g)
        assert (a == 9.0).all() and g.state["counter"] == 0
    ro2, ro3 = np.zeros((4, 4)), np.zeros((2, 2, 3))
    ro2.flags.writeable = ro3.flags.writeable = False
    for init, arr in [(fi.zeros_, ro2), (fi.eye_, ro2), (fi.orthogonal_, ro2),
                      (fi.dirac_, ro3), (fi.kaiming_normal_, ro2)]:
        with pytest.raises(ValueError, match="read-only"):
            init(arr)
    with pytest.raises(TypeError):
        fi.ones_(np.zeros(3, np.int32))


def test_zero_element_kaiming_warns_and_takes_a_call():
    g = fi.Generator(0)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        fi.kaiming_uniform_(np.empty((0, 3)), generator=g)
    assert g.state["counter"] == 1


def test_empty():
    assert fi.empty((2, 3)).dtype == np.float32
    assert fi.empty((2, 3), "bfloat16").dtype.name == "bfloat16"
    assert fi.empty(4, np.float64).shape == (4,)


def test_import_does_not_import_ml_dtypes_or_torch():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, fastinit; print(sorted(m for m in "
                          "('torch', 'ml_dtypes', 'scipy') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ml_dtypes.bfloat16],
                         ids=["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mean, std, a, b, mode", [
    (0.0, 1.0, -2.0, 2.0, 0),
    (0.1, 0.5, 0.2, 0.21, 1),
    (0.0, 1.0, 2.5, 9.0, 2),
    (0.0, 1.0, -9.0, -2.5, 2),
])
def test_trunc_normal_matches_reference(dtype, mean, std, a, b, mode):
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
