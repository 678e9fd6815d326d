"""Parity with torch.nn.init (skipped without torch): the same gains, fans, bounds and
stds to the last bit, the same exceptions and warnings, and tensors of every dtype."""

import math
import warnings
from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.init as tinit  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402

SHAPES = [(3, 4), (64, 32), (16, 8, 3), (32, 16, 3, 3), (4, 2, 3, 5, 7), (1, 1), (7, 1, 1)]
NONLINEARITIES = [("linear", None), ("conv1d", None), ("conv_transpose3d", None),
                  ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3),
                  ("leaky_relu", math.sqrt(5))]


@pytest.mark.parametrize("nonlinearity, param", NONLINEARITIES)
def test_calculate_gain_identical(nonlinearity, param):
    ours, theirs = fi.calculate_gain(nonlinearity, param), tinit.calculate_gain(nonlinearity, param)
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("call", [
    lambda m: m.calculate_gain("softplus"),
    lambda m: m.calculate_gain("leaky_relu", True),
    lambda m: m.calculate_gain("leaky_relu", "0.1"),
    lambda m: m.kaiming_uniform_(torch.empty(3, 4), mode="fan_sum"),
    lambda m: m.kaiming_normal_(torch.empty(3, 4), nonlinearity="gelu"),
    lambda m: m.kaiming_normal_(torch.empty(5)),
    lambda m: m.xavier_uniform_(torch.empty(5)),
    lambda m: m.xavier_normal_(torch.empty(())),
    lambda m: m.orthogonal_(torch.empty(5)),
    lambda m: m.sparse_(torch.empty(2, 3, 4), 0.5),
    lambda m: m.eye_(torch.empty(2, 3, 4)),
    lambda m: m.dirac_(torch.empty(3, 3)),
    lambda m: m.dirac_(torch.empty(5, 4, 3), 2),
    lambda m: m.uniform_(torch.empty(3), 1.0, 0.0),
    lambda m: m.normal_(torch.empty(3), 0.0, -1.0),
], ids=["gain", "slope-bool", "slope-str", "mode", "nonlinearity", "1d-kaiming",
        "1d-xavier-u", "0d-xavier-n", "1d-orthogonal", "3d-sparse", "3d-eye", "2d-dirac",
        "groups", "uniform-range", "normal-std"])
def test_same_exceptions(call):
    with pytest.raises(Exception) as theirs:
        call(tinit)
    with pytest.raises(Exception) as ours:
        call(fi)
    assert isinstance(ours.value, type(theirs.value))
    if not isinstance(theirs.value, RuntimeError):      # torch's C++ messages carry more
        assert str(ours.value) == str(theirs.value)


INF, NAN = math.inf, math.nan
# (uniform_ bounds | normal_ mean and std) torch refuses, by its check of each kind.
REFUSED = [("uniform_", (NAN, 0.0)), ("uniform_", (0.0, NAN)), ("uniform_", (-INF, 0.0)),
           ("uniform_", (0.0, INF)), ("uniform_", (1e39, 2e39)), ("uniform_", (-1e300, 0.0)),
           ("uniform_", (NAN, -1.0)), ("uniform_", (1.0, 0.5)), ("uniform_", (True, False)),
           ("uniform_", (-3e38, 3e38)), ("uniform_", (-1e308, 1e308)),
           ("uniform_", (-6e4, 6e4)), ("uniform_", (-7e4, 0.0)),
           ("normal_", (0.0, -1.0)), ("normal_", (0.0, NAN)), ("normal_", (NAN, -INF))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_argument_errors_are_torchs_word_for_word(dtype):
    # torch's uniform_/normal_ checks (bounds within the dtype's range, from <= to,
    # to - from at most the largest value; std >= 0), in torch's order and words,
    # before anything is written or taken.
    refused = 0
    for name, params in REFUSED:
        try:
            getattr(torch.empty(8, dtype=dtype), name)(*params)
            continue                                   # in range for this dtype
        except RuntimeError as e:
            theirs = str(e)
        refused += 1
        t, g = torch.zeros(8, dtype=dtype), fi.Generator(0)
        with pytest.raises(fi.ArgumentError) as ours:
            getattr(fi, name)(t, *params, generator=g)
        assert str(ours.value) == theirs, (name, params)
        assert (t == 0).all() and g.state["counter"] == 0
    assert refused >= 11                              # (float64 takes the rest)


def capture(obj, method):
    """Patch ``obj.method`` to record its arguments (and do nothing)."""
    calls = []

    def record(self, *args, **kwargs):
        calls.append((args, kwargs))
        return self

    return mock.patch.object(obj, method, record), calls


def torch_args(fn, method, shape, **kw):
    patch, calls = capture(torch.Tensor, method)
    with patch:
        fn(torch.empty(shape), **kw)
    return calls[0][0]


def our_args(fn, method, shape, **kw):
    patch, calls = capture(fi.Generator, method)
    with patch:
        fn(np.empty(shape, np.float32), **kw)
    return calls[0][0][1:]          # after the target


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("nonlinearity, param", NONLINEARITIES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "FAN_OUT"])
def test_kaiming_bounds_and_stds_identical(shape, nonlinearity, param, mode):
    kw = dict(a=param if param is not None else 0, mode=mode, nonlinearity=nonlinearity)
    if param is None and nonlinearity == "leaky_relu":
        kw["a"] = 0
    assert (our_args(fi.kaiming_uniform_, "uniform_", shape, **kw)
            == torch_args(tinit.kaiming_uniform_, "uniform_", shape, **kw))
    assert (our_args(fi.kaiming_normal_, "normal_", shape, **kw)
            == tuple(float(v) for v in torch_args(tinit.kaiming_normal_, "normal_", shape, **kw)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 0.5, math.sqrt(2), 5.0 / 3])
def test_xavier_bounds_and_stds_identical(shape, gain):
    assert (our_args(fi.xavier_uniform_, "uniform_", shape, gain=gain)
            == torch_args(tinit.xavier_uniform_, "uniform_", shape, gain=gain))
    assert (our_args(fi.xavier_normal_, "normal_", shape, gain=gain)
            == torch_args(tinit.xavier_normal_, "normal_", shape, gain=gain))


def test_fans_from_global_shape_for_shards():
    kw = dict(a=math.sqrt(5))
    full = torch_args(tinit.kaiming_uniform_, "uniform_", (256, 512), **kw)
    patch, calls = capture(fi.Generator, "uniform_")
    with patch:
        fi.kaiming_uniform_(np.empty((256, 128), np.float32), global_shape=(256, 512),
                            global_offset=(0, 384), **kw)
    assert calls[0][0][1:] == full


def test_zero_element_warning_matches():
    for fn in ("kaiming_uniform_", "kaiming_normal_"):
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            getattr(tinit, fn)(torch.empty(0, 3))
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            getattr(fi, fn)(torch.empty(0, 3))
        assert [(w.category, str(w.message)) for w in ours] == \
            [(w.category, str(w.message)) for w in theirs]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_deterministic_fills_equal_torch(dtype):
    for shape, groups in [((6, 4, 3), 1), ((6, 4, 3, 3), 2), ((8, 2, 3, 3, 3), 4)]:
        a, b = torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype)
        assert torch.equal(fi.dirac_(a, groups), tinit.dirac_(b, groups))
    for fn, args in [("eye_", ()), ("ones_", ()), ("zeros_", ()), ("constant_", (0.1,))]:
        a, b = torch.empty(5, 7, dtype=dtype), torch.empty(5, 7, dtype=dtype)
        assert torch.equal(getattr(fi, fn)(a, *args), getattr(tinit, fn)(b, *args))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tensors_of_every_dtype_match_numpy_results(dtype):
    np_dtype = {torch.float16: np.float16, torch.float32: np.float32,
                torch.float64: np.float64}.get(dtype)
    t = torch.empty(300, 200, dtype=dtype)
    fi.kaiming_normal_(t, generator=fi.Generator(3))
    if np_dtype is not None:
        a = np.empty((300, 200), np_dtype)
        fi.kaiming_normal_(a, generator=fi.Generator(3))
        np.testing.assert_array_equal(t.numpy(), a)
    else:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        a = np.empty((300, 200), ml_dtypes.bfloat16)
        fi.kaiming_normal_(a, generator=fi.Generator(3))
        np.testing.assert_array_equal(t.view(torch.int16).numpy(), a.view(np.int16))
    assert abs(t.double().std().item() / (math.sqrt(2 / 1.0001) / math.sqrt(200)) - 1) < 0.02


def test_parameters_views_and_autograd():
    p = torch.nn.Parameter(torch.zeros(64, 32))
    version = p._version
    fi.xavier_uniform_(p, generator=fi.Generator(0))
    assert p.requires_grad and p.grad_fn is None and p._version > version
    assert (p != 0).any()
    base = torch.zeros(40, 90)
    view = base[:, 10:70:2].t()                       # non-contiguous
    fi.uniform_(view, generator=fi.Generator(1))
    contiguous = torch.empty(30, 40)
    fi.uniform_(contiguous, generator=fi.Generator(1))
    assert torch.equal(view, contiguous)
    assert (base[:, :10] == 0).all() and (base[:, 70:] == 0).all()


# Layouts of a tensor of 60 x 40 elements: (the view to fill, of a base tensor).
TENSOR_LAYOUTS = {
    "contiguous": lambda b: b,
    "transposed": lambda b: b.t(),
    "stepped columns": lambda b: b[:, 3:33:3],
    "rows from an offset": lambda b: b[7:50],
    "a column": lambda b: b[:, 5],
    "size-1 dimensions, odd strides": lambda b: b.as_strided((20, 1, 1, 30), (40, 3, 999, 1), 2),
    "zero elements": lambda b: b[:, 4:4],
    "0-d": lambda b: b[2, 3],
    "interleaved (torch: too hard to tell)": lambda b: b.view(-1).as_strided((4, 5), (2, 10)),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("layout", list(TENSOR_LAYOUTS))
def test_a_tensor_target_is_its_numpy_views(layout, dtype):
    """A tensor's target is read from its sizes, strides and data pointer, not from a
    numpy view: the same checks, bytes and bits as its numpy view's target."""
    from fastinit import _plan, _targets
    make = TENSOR_LAYOUTS[layout]
    base, twin = torch.zeros(60, 40, dtype=dtype), torch.zeros(60, 40, dtype=dtype)
    view, array = make(base), make(twin).numpy()
    try:
        want = _plan.Target(array)
    except ValueError as e:                         # the same refusal, the tensor untouched
        with pytest.raises(ValueError, match=str(e)):
            fi.normal_(view, generator=fi.Generator(5))
        assert not base.any()
        return
    got = _targets.target(view)
    assert (got.kind, got.size, got.mem_hi - got.mem_lo) == \
        (want.kind, want.size, want.mem_hi - want.mem_lo)
    if got.size:
        assert got.mem_lo - base.data_ptr() == want.mem_lo - twin.data_ptr()
    fi.normal_(view, generator=fi.Generator(5))
    fi.normal_(array, generator=fi.Generator(5))
    assert torch.equal(base.view(torch.uint8), twin.view(torch.uint8))
    assert base.any() == (got.size > 0)


def test_an_unaligned_tensor_gets_the_bits_of_an_aligned_one():
    t = torch.frombuffer(bytearray(4 * 1000 + 2), dtype=torch.float32, offset=2, count=1000)
    assert t.data_ptr() % 4 == 2
    fi.normal_(t, generator=fi.Generator(6))
    assert torch.equal(t, fi.normal_(torch.empty(1000), generator=fi.Generator(6)))


# Every public function on a tensor; whether it takes a generator call.
EVERY_INIT = {
    "uniform_": (lambda t, g: fi.uniform_(t, generator=g), True),
    "normal_": (lambda t, g: fi.normal_(t, generator=g), True),
    "trunc_normal_": (lambda t, g: fi.trunc_normal_(t, generator=g), True),
    "constant_": (lambda t, g: fi.constant_(t, 0.3), False),
    "ones_": (lambda t, g: fi.ones_(t), False),
    "zeros_": (lambda t, g: fi.zeros_(t), False),
    "eye_": (lambda t, g: fi.eye_(t), False),
    "dirac_": (lambda t, g: fi.dirac_(t.view(8, 4, 1)), False),
    "xavier_uniform_": (lambda t, g: fi.xavier_uniform_(t, generator=g), True),
    "xavier_normal_": (lambda t, g: fi.xavier_normal_(t, generator=g), True),
    "kaiming_uniform_": (lambda t, g: fi.kaiming_uniform_(t, generator=g), True),
    "kaiming_normal_": (lambda t, g: fi.kaiming_normal_(t, generator=g), True),
    "orthogonal_": (lambda t, g: fi.orthogonal_(t, generator=g), True),
    "sparse_": (lambda t, g: fi.sparse_(t, 0.5, generator=g), True),
    "variance_scaling_": (lambda t, g: fi.variance_scaling_(t, generator=g), True),
    "lecun_uniform_": (lambda t, g: fi.lecun_uniform_(t, generator=g), True),
    "lecun_normal_": (lambda t, g: fi.lecun_normal_(t, generator=g), True),
}


@pytest.mark.parametrize("name", list(EVERY_INIT))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_meta_tensors_are_no_ops_that_take_a_call(name, dtype):
    init, samples = EVERY_INIT[name]
    g = fi.Generator(0)
    t = torch.empty(8, 4, device="meta", dtype=dtype)
    assert init(t, g).is_meta
    assert g.state["counter"] == int(samples)
    # As a plan entry, and as what reset_parameters' init_fn chooses for a meta model.
    g = fi.Generator(0)
    fi.init_all([(t, lambda x: init(x, g))])
    assert g.state["counter"] == int(samples)
    with torch.device("meta"):
        model = torch.nn.Linear(4, 8, dtype=dtype)
    g = fi.Generator(0)
    ft.reset_parameters(model, g, init_fn=lambda m, n, p: (
        lambda x, generator: init(x, generator), {}) if n == "weight" else None)
    assert model.weight.is_meta and g.state["counter"] == int(samples) + 1


def test_meta_tensors_still_check_their_arguments():
    g = fi.Generator(0)
    m = torch.empty(8, 4, device="meta")
    for call in [lambda: fi.normal_(m, 0.0, -1.0, g), lambda: fi.uniform_(m, 1.0, 0.0, g),
                 lambda: fi.kaiming_uniform_(m, mode="bad", generator=g),
                 lambda: fi.sparse_(m, 0.5, -1.0, g), lambda: fi.eye_(m.view(2, 4, 4)),
                 lambda: fi.uniform_(m, generator=g, global_shape=(8, 4),
                                     global_offset=(1, 0))]:
        with pytest.raises((ValueError, RuntimeError)):
            call()
    with pytest.raises(TypeError, match="unsupported dtype"):
        fi.uniform_(torch.empty(3, device="meta", dtype=torch.int32), generator=g)
    assert g.state["counter"] == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_constant_overflow_matches_torch(dtype):
    largest = torch.finfo(dtype).max
    values = [largest, -largest, math.inf, -math.inf, math.nan, 1e39, -1e39, 7e4, 65519.0,
              3.4028235677973366e38, 1e300, True, 3, 1j, 2 + 0j]
    for value in values:
        theirs, ours = torch.full((3,), 2.0, dtype=dtype), torch.full((3,), 2.0, dtype=dtype)
        try:
            tinit.constant_(theirs, value)
        except Exception as exc:                          # noqa: BLE001 (any, compared)
            with pytest.raises(type(exc)) as caught:
                fi.constant_(ours, value)
            assert str(caught.value) == str(exc)
            assert (ours == 2.0).all()
            continue
        fi.constant_(ours, value)
        assert torch.equal(ours.isnan(), theirs.isnan())
        assert torch.equal(ours.nan_to_num(), theirs.nan_to_num()), value


def test_inference_tensors_as_torch():
    with torch.inference_mode():
        inside = torch.zeros(8, 4)
    with torch.inference_mode():
        scratch = torch.zeros(8, 4)
    with pytest.raises(RuntimeError) as theirs:     # (torch writes, then raises)
        tinit.uniform_(scratch)
    g = fi.Generator(0)
    for name, (init, _) in EVERY_INIT.items():
        with pytest.raises(RuntimeError) as ours:
            init(inside, g)
        assert str(ours.value) == str(theirs.value), name
    assert (inside == 0).all() and g.state["counter"] == 0
    with pytest.raises(RuntimeError, match="inference tensor"):
        fi.init_all([(inside, "uniform_")], g)
    with torch.inference_mode():
        for name, (init, _) in EVERY_INIT.items():
            init(inside, g)                             # allowed inside inference mode
            init(torch.zeros(8, 4), g)                  # and on normal tensors there
    assert not (inside == 0).all()


def test_trunc_normal_warning_matches_torch():
    for mean, std, warned in [(5.0, 1.0, True), (-4.5, 1.0, True), (3.9, 1.0, False),
                              (0.0, 0.02, False)]:
        caught = {}
        for lib in (tinit, fi):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                lib.trunc_normal_(torch.empty(10), mean, std, -2.0, 2.0)
            caught[lib] = [(x.category, str(x.message)) for x in w]
        assert caught[fi] == caught[tinit] and bool(caught[fi]) == warned


def test_bad_tensors():
    with pytest.raises(TypeError, match="unsupported dtype"):
        fi.normal_(torch.zeros(3, dtype=torch.int32))
    with pytest.raises(TypeError, match="unsupported dtype"):
        fi.ones_(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(TypeError, match="negative bit"):
        fi.uniform_(torch.zeros(3, dtype=torch.complex64).conj().imag)
    with pytest.raises(TypeError, match="dense"):
        fi.uniform_(torch.zeros(3, 3).to_sparse())


@pytest.mark.parametrize("make", [lambda: torch.zeros(1).expand(5, 3),
                                  lambda: torch.zeros(4, 1).expand(4, 6)[:, ::2],
                                  lambda: torch.zeros(3, 1).expand(3, 4).t(),
                                  lambda: torch.zeros(2, 3, dtype=torch.float64).expand(2, 2, 3)])
@pytest.mark.parametrize("init", ["uniform_", "normal_", "orthogonal_", "kaiming_normal_"])
def test_self_overlapping_tensors_raise_torchs_error(make, init):
    # (torch's constant_ fills such a tensor; fastinit's refuses it: its threads
    # would write one location at once. Under patch_init, constant_ is torch's.)
    with pytest.raises(RuntimeError) as theirs:
        getattr(tinit, init)(make())
    target, g = make(), fi.Generator(0)
    with pytest.raises(RuntimeError) as ours:
        getattr(fi, init)(target, generator=g)
    assert str(ours.value) == str(theirs.value)
    assert (target == 0).all() and g.state["counter"] == 0


@pytest.mark.parametrize("init", ["uniform_", "normal_", "kaiming_uniform_", "xavier_normal_",
                                  "trunc_normal_"])
def test_sample_statistics_match_torch(init):
    shape = (1024, 512)
    ours = getattr(fi, init)(torch.empty(shape), generator=fi.Generator(0)).double()
    theirs = getattr(tinit, init)(torch.empty(shape), generator=torch.Generator().manual_seed(0))
    theirs = theirs.double()
    n = ours.numel()
    se_mean = theirs.std().item() / math.sqrt(n)
    assert abs(ours.mean().item() - theirs.mean().item()) < 7 * se_mean
    assert abs(ours.std().item() / theirs.std().item() - 1) < 7 * math.sqrt(1 / n)
    if init.endswith("uniform_"):       # the same bounds: the extremes nearly reach them
        assert abs(ours.min().item() - theirs.min().item()) < 1e-4 * theirs.std().item()
        assert abs(ours.max().item() - theirs.max().item()) < 1e-4 * theirs.std().item()
    elif init == "trunc_normal_":       # [a, b] = [-2, 2], nearly reached at this size
        assert -2.0 <= ours.min().item() < -1.99 and 1.99 < ours.max().item() <= 2.0


class _ReportsCuda(torch.Tensor):
    """A CPU tensor that says it lives on a GPU (this machine has none)."""

    @property
    def device(self):
        return torch.device("cuda", 0)


def test_tensors_on_other_devices_are_refused_untouched():
    t = torch.zeros(4, 4).as_subclass(_ReportsCuda)
    g = fi.Generator(0)
    for init in (fi.uniform_, fi.kaiming_normal_, fi.zeros_, fi.orthogonal_):
        with pytest.raises(TypeError, match="expected a CPU tensor, got a tensor on cuda:0"):
            init(t) if init is fi.zeros_ else init(t, generator=g)
    assert (t.as_subclass(torch.Tensor) == 0).all() and g.state["counter"] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_orthogonal_on_a_tensor_takes_torchs_qr_in_its_precision(dtype):
    """A tensor's QR is torch.linalg.qr's, in float32 for float32 and 16-bit tensors
    and float64 for float64, of the same float64 draws an array gets."""
    shape = (30, 50)
    draws = torch.from_numpy(fi.Generator(9).normal_(np.empty(shape)))
    work = torch.float64 if dtype == torch.float64 else torch.float32
    q, r = torch.linalg.qr(draws.T.to(work))
    want = (0.5 * (q * torch.sign(torch.diagonal(r))).T).to(dtype)
    got = fi.orthogonal_(torch.empty(shape, dtype=dtype), 0.5, fi.Generator(9))
    assert torch.equal(got, want)
    gram = got.double() @ got.double().T
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(gram, 0.25 * torch.eye(30, dtype=torch.float64), atol=tol, rtol=0)


def test_torch_accepts_what_fastinit_accepts_at_the_edges():
    # Infinite truncation bounds: torch takes those whose interval holds more than 30%
    # of the mass (its normal-proposal path); fastinit takes every one.
    for a, b in ((-math.inf, math.inf), (0.5, math.inf), (-math.inf, -1.0)):
        if (a, b) != (-math.inf, -1.0):              # 16% of the mass: torch refuses
            t = tinit.trunc_normal_(torch.empty(1000), 0.0, 1.0, a, b)
            assert ((t >= a) & (t <= b)).all()
        f = fi.trunc_normal_(torch.empty(1000), 0.0, 1.0, a, b, fi.Generator(0))
        assert ((f >= a) & (f <= b)).all() and torch.isfinite(f).all()
    for gain in (1j, "2"):
        with pytest.raises(Exception) as theirs:
            tinit.orthogonal_(torch.empty(4, 4), gain)
        g = fi.Generator(0)
        with pytest.raises(type(theirs.value)) as ours:
            fi.orthogonal_(torch.empty(4, 4), gain, g)
        assert str(ours.value) == str(theirs.value) and g.state["counter"] == 0
