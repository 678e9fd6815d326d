"""fastinit.torch.patch_init: torch.nn.init's functions filling through fastinit."""

import functools
import math
import subprocess
import textwrap
import sys
import threading
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402
from fastinit import _torch_patch  # noqa: E402

# (name, positional arguments after the tensor, shape): one call of each function.
CALLS = [
    ("uniform_", (-0.5, 2.0), (40, 30)),
    ("normal_", (1.0, 3.0), (40, 30)),
    ("trunc_normal_", (0.0, 0.02, -0.04, 0.04), (40, 30)),
    ("constant_", (0.25,), (40, 30)),
    ("ones_", (), (40, 30)),
    ("zeros_", (), (40, 30)),
    ("eye_", (), (40, 30)),
    ("dirac_", (2,), (8, 3, 3, 3)),
    ("xavier_uniform_", (1.5,), (40, 30)),
    ("xavier_normal_", (0.5,), (40, 30)),
    ("kaiming_uniform_", (math.sqrt(5),), (40, 30, 3)),
    ("kaiming_normal_", (0, "fan_out", "relu"), (40, 30)),
    ("orthogonal_", (2.0,), (40, 30)),
    ("sparse_", (0.5, 0.1), (40, 30)),
]


def no_mode_left():
    """Nothing of patch_init left: no torch function mode, torch's trunc helper back."""
    return (torch._C._len_torch_function_stack() == 0 and not _torch_patch.installed()
            and nn.init._no_grad_trunc_normal_ is _torch_patch._torch_trunc)


EXACT = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
         "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_")


def test_calls_fill_from_the_generator_with_fastinit_bits():
    for name, args, shape in (c for c in CALLS if c[0] in EXACT):
        expected = getattr(fi, name)(torch.empty(shape), *args, generator=fi.Generator(7)) \
            if name not in ("constant_", "ones_", "zeros_", "eye_", "dirac_") else \
            getattr(fi, name)(torch.empty(shape), *args)
        got = torch.full(shape, float("nan"))
        with ft.patch_init(fi.Generator(7)):
            out = getattr(nn.init, name)(got, *args)
        assert out is got
        assert torch.equal(got, expected), name
    assert no_mode_left()


def test_orthogonal_and_sparse_run_torchs_code_on_fastinit_draws():
    # orthogonal_: torch's QR of fastinit's normal fill of a new (rows, cols) tensor.
    with ft.patch_init(fi.Generator(4)):
        got = nn.init.orthogonal_(torch.empty(6, 10), gain=2.0)
    normals = fi.normal_(torch.empty(6, 10), generator=fi.Generator(4)).t()
    q, r = torch.linalg.qr(normals)
    q *= torch.diag(r, 0).sign()
    assert torch.equal(got, q.t() * 2.0)
    # sparse_: fastinit's normal fill, then each column's zeros from randperm, which
    # sorts raw 64-bit draws of the next calls.
    with ft.patch_init(fi.Generator(5)):
        got = nn.init.sparse_(torch.empty(10, 3), sparsity=0.3)
    g = fi.Generator(5)
    expected = fi.normal_(torch.empty(10, 3), 0, 0.01, generator=g)
    for col in range(3):
        rows = np.argsort(g.random_raw_(np.empty(10, np.uint64)), kind="stable")[:3]
        expected[torch.from_numpy(rows), col] = 0
    assert torch.equal(got, expected)


def test_modules_construct_through_the_patch():
    # Linear.__init__ calls init.kaiming_uniform_(a=sqrt(5)) then init.uniform_ for the
    # bias; MultiheadAttention binds xavier_uniform_ and constant_ by name at import.
    with ft.patch_init(fi.Generator(3)):
        lin = nn.Linear(30, 20)
        mha = nn.MultiheadAttention(16, 2)
    g = fi.Generator(3)
    w = fi.kaiming_uniform_(torch.empty(20, 30), a=math.sqrt(5), generator=g)
    b = fi.uniform_(torch.empty(20), -1 / math.sqrt(30), 1 / math.sqrt(30), generator=g)
    assert torch.equal(lin.weight, w) and torch.equal(lin.bias, b)
    fi.kaiming_uniform_(torch.empty(16, 16), a=math.sqrt(5), generator=g)    # out_proj
    fi.uniform_(torch.empty(16), -0.25, 0.25, generator=g)
    assert torch.equal(mha.in_proj_weight, fi.xavier_uniform_(torch.empty(48, 16), generator=g))
    assert (mha.in_proj_bias == 0).all() and (mha.out_proj.bias == 0).all()


def test_hugging_face_table_is_patched():
    hf = pytest.importorskip("transformers.initialization")
    t = torch.empty(50, 20)
    with ft.patch_init(fi.Generator(5)):
        hf.normal_(t, std=0.02)                           # transformers' guarded function
        with hf.guard_torch_init_functions():             # what initialize_weights enters
            u = nn.init.uniform_(torch.empty(30))
    g = fi.Generator(5)
    assert torch.equal(t, fi.normal_(torch.empty(50, 20), 0, 0.02, generator=g))
    assert torch.equal(u, fi.uniform_(torch.empty(30), generator=g))


def test_restored_after_exit_exception_and_nesting():
    g1, g2 = fi.Generator(1), fi.Generator(2)
    with ft.patch_init(g1):
        assert _torch_patch.installed() and torch._C._len_torch_function_stack() == 1
        with ft.patch_init(g2):
            inner = nn.init.normal_(torch.empty(100))
        outer = nn.init.normal_(torch.empty(100))
    assert no_mode_left()
    assert torch.equal(inner, fi.normal_(torch.empty(100), generator=fi.Generator(2)))
    assert torch.equal(outer, fi.normal_(torch.empty(100), generator=fi.Generator(1)))
    for error in (ZeroDivisionError, KeyboardInterrupt):
        with pytest.raises(error):
            with ft.patch_init(g1):
                with ft.patch_init(g2):
                    raise error()
        assert no_mode_left()

    @ft.patch_init(fi.Generator(9))
    def build():
        return nn.init.uniform_(torch.empty(10))

    first, second = build(), build()            # each call a block, one generator: its calls
    g = fi.Generator(9)
    assert torch.equal(first, fi.uniform_(torch.empty(10), generator=g))
    assert torch.equal(second, fi.uniform_(torch.empty(10), generator=g))
    assert no_mode_left()


def test_blocks_exited_out_of_order():
    a, b = ft.patch_init(fi.Generator(1)), ft.patch_init(fi.Generator(2))
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)                # the outer block first: b stays innermost
    x = torch.randn(50)
    with torch.device("meta"):                  # a mode entered after ours
        b.__exit__(None, None, None)            # ours leaves from under it; it stays
        assert torch._C._len_torch_function_stack() == 1
        assert isinstance(torch._C._get_function_stack_at(0), torch.utils._device.DeviceContext)
        assert torch.randn(3).device.type == "meta"
    assert torch.equal(x, fi.normal_(torch.empty(50), generator=fi.Generator(2)))
    assert no_mode_left()
    with pytest.raises(RuntimeError, match="not open in this thread"):
        b.__exit__(None, None, None)            # exited twice: refused, nothing changed
    assert no_mode_left()


def test_exit_from_another_thread_is_refused_and_changes_nothing():
    block = ft.patch_init(fi.Generator(3))
    block.__enter__()
    errors = []

    def other():
        try:
            block.__exit__(None, None, None)
        except RuntimeError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert errors and "not open in this thread" in errors[0]
    x = torch.rand(20)                          # still inside the block here
    block.__exit__(None, None, None)
    assert torch.equal(x, fi.uniform_(torch.empty(20), generator=fi.Generator(3)))
    assert no_mode_left()


def test_generator_function_decorated():
    @ft.patch_init(fi.Generator(6))
    def layers(n):
        for _ in range(n):
            received = yield torch.randn(8)
            assert received == "ok"
        return "done"

    torch.manual_seed(0)
    it = layers(3)
    outside = []
    values = [next(it)]
    outside.append(torch.randn(8))              # between steps: torch's generator
    assert no_mode_left()
    values.append(it.send("ok"))
    outside.append(torch.randn(8))
    values.append(it.send("ok"))
    with pytest.raises(StopIteration) as stop:
        it.send("ok")
    assert stop.value.value == "done"
    g = fi.Generator(6)
    for v in values:
        assert torch.equal(v, fi.normal_(torch.empty(8), generator=g))
    torch.manual_seed(0)
    assert all(torch.equal(o, torch.randn(8)) for o in outside)
    # close() and throw() reach the body inside a block and leave nothing behind.
    it = layers(2)
    next(it)
    it.close()
    it = layers(2)
    next(it)
    with pytest.raises(AssertionError):
        it.send("not ok")
    assert no_mode_left()


def test_async_function_decorated_and_interleaved_tasks():
    import asyncio

    async def draws():
        out = []
        for _ in range(3):
            out.append(torch.randn(16))
            await asyncio.sleep(0)              # the other task runs here
        return out

    async def main():
        return await asyncio.gather(ft.patch_init(fi.Generator(8))(draws)(), draws())

    torch.manual_seed(1)
    ours, theirs = asyncio.run(main())
    g = fi.Generator(8)
    assert all(torch.equal(v, fi.normal_(torch.empty(16), generator=g)) for v in ours)
    torch.manual_seed(1)
    assert all(torch.equal(v, torch.randn(16)) for v in theirs)
    assert no_mode_left()

    async def agen():
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        ft.patch_init(fi.Generator(0))(agen)


def test_fallbacks_reach_torch_with_their_arguments():
    g = fi.Generator(0)
    with ft.patch_init(g):
        # An explicit torch.Generator: torch's values from it, no fastinit call.
        a = nn.init.normal_(torch.empty(64), 1.0, 2.0, generator=torch.Generator().manual_seed(4))
        # Integer tensors: torch's functions (its fill; its error for uniform_).
        ints = nn.init.constant_(torch.empty(64, dtype=torch.int32), 7)
        with pytest.raises(NotImplementedError, match="not implemented for 'Int'"):
            nn.init.uniform_(torch.empty(64, dtype=torch.int32), 0, 10)
        # A meta tensor: torch's no-op.
        meta = nn.init.kaiming_uniform_(torch.empty(5, 5, device="meta"))
        # A complex tensor: fastinit's draws, each component N(0, 1/2) as torch's.
        c = nn.init.normal_(torch.empty(8, dtype=torch.complex64))
    assert g.state["counter"] == 1
    assert torch.equal(a, torch.empty(64).normal_(1.0, 2.0,
                                                  generator=torch.Generator().manual_seed(4)))
    assert ints.dtype == torch.int32 and (ints == 7).all()
    assert meta.device.type == "meta"
    components = fi.normal_(torch.empty(8, 2), 0.0, 1 / math.sqrt(2), generator=fi.Generator(0))
    assert torch.equal(torch.view_as_real(c), components)


def test_errors_and_warnings_as_torch():
    bad = [
        ("uniform_", (torch.empty(4), 1.0, 0.0)),
        ("normal_", (torch.empty(4), 0.0, -1.0)),
        ("kaiming_uniform_", (torch.empty(4, 4), 0, "fan_mid")),
        ("xavier_normal_", (torch.empty(4),)),
        ("eye_", (torch.empty(2, 2, 2),)),
        ("dirac_", (torch.empty(3, 2, 2), 2)),
        ("sparse_", (torch.empty(2, 2, 2), 0.5)),
        ("orthogonal_", (torch.empty(4),)),
        ("constant_", (torch.empty(2, dtype=torch.float16), 1e6)),
    ]
    for name, args in bad:
        with pytest.raises(Exception) as theirs:
            getattr(nn.init, name)(*args)
        with ft.patch_init(fi.Generator(0)):
            with pytest.raises(type(theirs.value)) as ours:
                getattr(nn.init, name)(*args)
        assert str(ours.value) == str(theirs.value), name
    with ft.patch_init(fi.Generator(0)):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            nn.init.trunc_normal_(torch.empty(10), mean=10.0, std=1.0, a=-1.0, b=1.0)
    assert any("mean is more than 2 std" in str(x.message) for x in w)


def test_draws_torch_refuses_raise_its_errors_and_take_nothing():
    # Calls torch refuses before drawing: under the patch the same error type and
    # message, no fastinit call taken and torch's generator untouched.
    bad = [
        lambda: torch.normal(torch.zeros(3), torch.ones(4)),        # shapes do not broadcast
        lambda: torch.normal(torch.zeros(3), -torch.ones(3)),
        lambda: torch.randint(5, 3, (2,)),
        lambda: torch.zeros(3).bernoulli_(1.5),
        lambda: torch.zeros(3).exponential_(-1.0),
        lambda: torch.rand_like(torch.zeros(3, dtype=torch.int32)),
        lambda: torch.empty(3, requires_grad=True).uniform_(),
        lambda: torch.normal(torch.zeros(3), torch.full((3,), math.nan)),   # NaN std
        lambda: torch.normal(torch.zeros(3), math.nan),
        lambda: torch.zeros(3, dtype=torch.float16).random_(70000),        # beyond the dtype
        lambda: torch.zeros(3, dtype=torch.int8).random_(-300, 3),
        lambda: torch.randint(0, 300, (2,), dtype=torch.uint8),
        lambda: torch.zeros(3).random_(2 ** 63),                           # beyond int64
    ]
    g = fi.Generator(0)
    for k, call in enumerate(bad):
        with pytest.raises(Exception) as theirs:
            call()
        before = torch.get_rng_state()
        with ft.patch_init(g):
            with pytest.raises(type(theirs.value)) as ours:
                call()
        assert str(ours.value) == str(theirs.value), k
        assert torch.equal(torch.get_rng_state(), before), k
    assert g.state["counter"] == 0


def _quantized():
    return torch.quantize_per_tensor(torch.zeros(3), 0.1, 0, torch.qint8)


@pytest.mark.parametrize("make", [lambda: torch.zeros(3, dtype=torch.float8_e4m3fn),
                                  lambda: torch.zeros(3, dtype=torch.float8_e5m2),
                                  lambda: torch.zeros(3, dtype=torch.uint16),
                                  lambda: torch.zeros(3, dtype=torch.uint64),
                                  lambda: torch.zeros(3, dtype=torch.bool), _quantized],
                         ids=["float8_e4m3fn", "float8_e5m2", "uint16", "uint64", "bool",
                              "qint8"])
def test_draws_on_dtypes_torch_does_not_draw_raise_its_errors(make):
    # torch's CPU kernels draw only some dtypes (float8 none; uint16 and up neither
    # bernoulli_ nor geometric_ nor random_'s default range; bool no randperm): on the
    # others each call raises torch's error inside a block too, with nothing drawn
    # (the handlers had filled float8 by its formulas, or raised fastinit's TypeError).
    calls = [lambda t: t.uniform_(), lambda t: t.normal_(), lambda t: t.exponential_(),
             lambda t: t.log_normal_(), lambda t: t.cauchy_(), lambda t: t.geometric_(0.5),
             lambda t: t.bernoulli_(0.5), lambda t: t.bernoulli_(torch.full((3,), 0.5)),
             lambda t: t.random_(), lambda t: torch.rand_like(t), lambda t: torch.randn_like(t),
             lambda t: torch.bernoulli(t), lambda t: torch.normal(t, 1.0),
             lambda t: torch.rand(3, dtype=t.dtype), lambda t: torch.randn(3, dtype=t.dtype),
             lambda t: torch.normal(0.0, 1.0, (3,), dtype=t.dtype),
             lambda t: torch.randperm(3, dtype=t.dtype),
             lambda t: nn.init.uniform_(t), lambda t: nn.init.normal_(t),
             lambda t: nn.init.trunc_normal_(t), lambda t: nn.init.kaiming_uniform_(t.view(1, 3)),
             lambda t: nn.init.xavier_normal_(t.view(1, 3))]
    g, refused = fi.Generator(0), 0
    for k, call in enumerate(calls):
        try:
            call(make())
            continue                                 # torch draws this dtype
        except Exception as e:
            theirs = e
        refused += 1
        before = torch.get_rng_state()
        with ft.patch_init(g):
            with pytest.raises(type(theirs)) as ours:
                call(make())
        assert str(ours.value) == str(theirs), k
        assert torch.equal(torch.get_rng_state(), before), k
    assert g.state["counter"] == 0 and refused >= 3


def test_complex_torch_normal_draws_from_the_block():
    # torch.normal of a complex dtype or with a complex mean tensor drew from torch's
    # generator, unseen. Now: torch's complex rule (each component N(0, 1/2) scaled
    # by std, the mean added) on fastinit's normals, one call, torch's generator
    # untouched; the components' spread as torch's.
    n = 20000
    mean = torch.full((n,), 1 + 2j, dtype=torch.complex64)
    calls = [(lambda: torch.normal(0.0, 2.0, (n,), dtype=torch.complex64), 0.0, 2.0),
             (lambda: torch.normal(mean, 2.0), mean, 2.0)]
    for k, (call, m, s) in enumerate(calls):
        plain = torch.view_as_real(call() - m)
        before, g = torch.get_rng_state(), fi.Generator(5)
        with ft.patch_init(g):
            ours = call()
        assert ours.dtype == torch.complex64 and g.state["counter"] == 1, k
        assert torch.equal(torch.get_rng_state(), before), k
        z = fi.normal_(torch.empty(n, 2), 0.0, 1 / math.sqrt(2), generator=fi.Generator(5))
        expected = torch.view_as_complex(z) * s + m if k else torch.view_as_complex(
            fi.normal_(torch.empty(n, 2), 0.0, s / math.sqrt(2), generator=fi.Generator(5)))
        assert torch.equal(ours, expected), k
        spread = torch.view_as_real(ours - m).std(dim=0)
        assert torch.allclose(spread, plain.std(dim=0), atol=0.05), k      # both ~ 2 / sqrt(2)
        assert torch.allclose(spread, torch.full((2,), math.sqrt(2)), atol=0.05), k


def test_views_laid_over_themselves_are_written_as_torchs_draws_write_them():
    # A view as_strided over its own memory (no zero stride): torch's draws fill it,
    # element by element; fastinit's own functions refuse it (their threads would
    # write one location at once), so a block raised where the script ran. Now the
    # values are drawn into a scratch tensor (one call) and written by torch's copy_.
    def view(base):
        return base.as_strided((6, 4), (2, 1))

    calls = [lambda t: t.uniform_(), lambda t: nn.init.normal_(t, 0.0, 0.02),
             lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5))]
    for k, call in enumerate(calls):
        call(view(torch.zeros(30)))                              # torch takes it
        with pytest.raises(ValueError, match="overlaps itself"):
            fi.uniform_(view(torch.zeros(30)), generator=fi.Generator(0))
        base, g, before = torch.zeros(30), fi.Generator(3), torch.get_rng_state()
        with ft.patch_init(g):
            call(view(base))
        assert torch.equal(torch.get_rng_state(), before), k
        assert g.state["counter"] >= 1, k
        with ft.patch_init(fi.Generator(3)):
            scratch = call(torch.zeros(6, 4))                     # the same draws, unlaid
        expected = torch.zeros(30)
        view(expected).copy_(scratch)
        assert torch.equal(base, expected), k
        assert base[:13].count_nonzero() == 13, k
    # trunc_normal_ on such a view runs torch's algorithm, on the block's draws (as
    # for any tensor fastinit's own function does not fill).
    base, g, before = torch.zeros(30), fi.Generator(3), torch.get_rng_state()
    with ft.patch_init(g):
        nn.init.trunc_normal_(view(base), std=0.02)
    assert torch.equal(torch.get_rng_state(), before) and g.state["counter"] >= 1
    assert base[:13].count_nonzero() == 13 and base.abs().max() <= 2


def test_nested_tensors():
    # fastinit's functions refuse a nested tensor with a TypeError (not torch's
    # internal error). In a block, the draws torch takes on one (normal_, randn_like)
    # are fastinit's normals of its components in order, one call; the others raise
    # torch's error.
    def nested():
        return torch.nested.nested_tensor([torch.zeros(2, 3), torch.zeros(4, 3)])

    with pytest.raises(TypeError, match="got a nested tensor"):
        fi.normal_(nested(), generator=fi.Generator(0))
    flat = fi.normal_(torch.empty(18), 0.0, 0.5, generator=fi.Generator(4))
    for k, call in enumerate([lambda t: t.normal_(0.0, 0.5), lambda t: nn.init.normal_(t, 0.0, 0.5),
                              lambda t: torch.randn_like(t).mul_(0.5)]):
        before, g = torch.get_rng_state(), fi.Generator(4)
        with ft.patch_init(g):
            ours = call(nested())
        assert torch.equal(torch.get_rng_state(), before) and g.state["counter"] == 1, k
        assert torch.equal(torch.cat([p.reshape(-1) for p in ours.unbind()]), flat), k
    for k, call in enumerate([lambda t: t.uniform_(), lambda t: t.bernoulli_(0.5),
                              lambda t: torch.rand_like(t), lambda t: t.exponential_()]):
        with pytest.raises(Exception) as theirs:
            call(nested())
        before, g = torch.get_rng_state(), fi.Generator(0)
        with ft.patch_init(g):
            with pytest.raises(type(theirs.value)) as ours:
                call(nested())
        assert str(ours.value) == str(theirs.value), k
        assert torch.equal(torch.get_rng_state(), before) and g.state["counter"] == 0, k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_normal_arguments_torch_takes_and_fastinit_refuses_are_answered(dtype):
    # A NaN or infinite mean, an infinite std (and, below float64, a mean beyond
    # float32): torch takes them and every value is infinite or NaN; fastinit's own
    # normal_ refuses them. Inside a block: mean + std * z on fastinit's standard normals
    # z (one call), in float32 below float64 (16-bit values rounded from it), and
    # torch's generator untouched.
    params = [(math.nan, 1.0), (0.0, math.inf), (-math.inf, 0.0), (1.0, math.inf),
              (math.inf, math.inf), (math.nan, 0.0)]
    if dtype != torch.float64:
        params += [(1e39, 1.0), (0.0, 1e39), (math.inf, 2.0 ** 70)]   # (2^70 z: beyond 16 bits)
    calls = [lambda t, m, s: nn.init.normal_(t, m, s),
             lambda t, m, s: t.normal_(m, s),
             lambda t, m, s: t.copy_(torch.normal(m, s, t.shape, dtype=dtype))]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    for mean, std in params:
        for k, call in enumerate(calls):
            plain = call(torch.empty(2000, dtype=dtype), mean, std)
            before = torch.get_rng_state()
            g = fi.Generator(9)
            with ft.patch_init(g):
                ours = call(torch.empty(2000, dtype=dtype), mean, std)
            z = fi.normal_(torch.empty(2000, dtype=work), 0.0, 1.0, generator=fi.Generator(9))
            m32, s32 = torch.tensor(mean, dtype=work).item(), torch.tensor(std, dtype=work).item()
            expected = (z * s32 + m32).to(dtype)
            assert torch.equal(ours.isnan(), expected.isnan()), (mean, std, k)
            assert torch.equal(ours[~ours.isnan()], expected[~expected.isnan()]), (mean, std, k)
            assert not torch.isfinite(ours).any() and not torch.isfinite(plain).any()
            assert ours.isnan().all() == plain.isnan().all(), (mean, std, k)
            assert g.state["counter"] == 1 and torch.equal(torch.get_rng_state(), before)


@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
def test_trunc_normal_arguments_fastinit_refuses_take_torchs_algorithm_on_its_draws():
    # torch 2.13's trunc_normal_ takes a negative std (its uniform-proposal path
    # squares it: N(0, 1) on [-2, 2] for std -1), which fastinit's refuses: inside a
    # block torch's algorithm runs, drawing through the block's handlers.
    def patched(seed):
        t, g = torch.empty(100_000), fi.Generator(seed)
        before = torch.get_rng_state()
        with ft.patch_init(g):
            nn.init.trunc_normal_(t, 0.0, -1.0, -2.0, 2.0)
        assert torch.equal(torch.get_rng_state(), before) and g.state["counter"] >= 2
        return t
    t = patched(3)
    assert torch.equal(t, patched(3)) and not torch.equal(t, patched(4))
    # N(0, 1) on [-2, 2]: sd 0.8796, so the sample mean's sd is 0.0028 and the sample
    # sd's about 0.0017.
    assert t.min() >= -2.0 and t.max() <= 2.0
    assert abs(t.mean().item()) < 0.015 and abs(t.std().item() - 0.8796) < 0.01
    # Arguments torch's algorithm refuses: its error, nothing drawn.
    for kwargs in (dict(a=math.nan), dict(a=1.0, b=-1.0), dict(std=-1.0, a=math.inf)):
        with pytest.raises(Exception) as theirs:
            nn.init.trunc_normal_(torch.empty(8), **kwargs)
        g = fi.Generator(0)
        with ft.patch_init(g):
            with pytest.raises(type(theirs.value)) as ours:
                nn.init.trunc_normal_(torch.empty(8), **kwargs)
        assert str(ours.value) == str(theirs.value) and g.state["counter"] == 0


def test_draws_warn_as_torch_and_only_as_torch():
    # random_ bounds beyond a floating dtype's exact integers: torch's own warning,
    # once, as without the block. Formulas that overflow or make NaN (log_normal_ with
    # a huge std, cauchy_ at infinity): silent, as torch's kernels are.
    calls = [(1, lambda: torch.zeros(64).random_(0, 2 ** 40)),
             (1, lambda: torch.randint(-2 ** 30, 3, (64,), dtype=torch.float32)),
             (0, lambda: torch.zeros(64).log_normal_(0.0, 1e39)),
             (0, lambda: torch.zeros(64).cauchy_(math.inf, math.inf)),
             (0, lambda: torch.zeros(64, dtype=torch.float64).log_normal_(math.inf, math.inf))]
    for k, (warned, call) in enumerate(calls):
        theirs = _warnings_of(call)
        g = fi.Generator(0)
        before = torch.get_rng_state()
        with ft.patch_init(g):
            ours = _warnings_of(call)
        assert [(w.category, str(w.message)) for w in ours] == \
            [(w.category, str(w.message)) for w in theirs], k
        assert len(ours) == warned, k
        assert all("is out of bounds [-(2^24), 2^24]" in str(w.message) for w in ours), k
        assert g.state["counter"] == 1 and torch.equal(torch.get_rng_state(), before), k


def _warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


def test_trunc_normal_sets_the_mode_aside_only_while_fastinit_fills():
    # fastinit's trunc_normal_ runs with the block's mode off the stack (as handlers
    # do): it is back afterwards, also after an exception, and the block's later draws
    # are still answered. With another mode above it, it stays and the values agree.
    from torch.overrides import TorchFunctionMode

    class Above(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    depth = torch._C._len_torch_function_stack()
    g = fi.Generator(0)
    before = torch.get_rng_state()
    with ft.patch_init(g):
        inside = torch._C._len_torch_function_stack()
        w = nn.init.trunc_normal_(torch.empty(40, 30), std=0.02)
        with pytest.raises(TypeError):
            nn.init.trunc_normal_(torch.empty(4), mean="x")
        assert torch._C._len_torch_function_stack() == inside
        z = torch.randn(16)
        with Above():
            w2 = nn.init.trunc_normal_(torch.empty(40, 30), std=0.02)
    assert torch._C._len_torch_function_stack() == depth
    assert torch.equal(torch.get_rng_state(), before) and g.state["counter"] == 3
    ref = fi.Generator(0)
    assert torch.equal(w, fi.trunc_normal_(torch.empty(40, 30), std=0.02, generator=ref))
    assert torch.equal(z, fi.normal_(torch.empty(16), generator=ref))
    assert torch.equal(w2, fi.trunc_normal_(torch.empty(40, 30), std=0.02, generator=ref))


def test_other_threads_keep_torch():
    inside, started, done = threading.Event(), threading.Event(), threading.Event()
    results = {}

    def patched():
        with ft.patch_init(fi.Generator(0)):
            inside.set()
            started.wait(10)
            results["in"] = nn.init.normal_(torch.empty(1000))
            done.wait(10)

    def plain():
        inside.wait(10)
        assert _torch_patch.installed()
        results["gen"] = torch.Generator().manual_seed(0)
        torch.manual_seed(21)
        results["out"] = nn.init.normal_(torch.empty(1000))
        started.set()
        done.set()

    threads = [threading.Thread(target=patched), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    torch.manual_seed(21)
    assert torch.equal(results["out"], torch.empty(1000).normal_())
    assert torch.equal(results["in"], fi.normal_(torch.empty(1000), generator=fi.Generator(0)))
    assert not _torch_patch.installed()


def test_two_threads_in_blocks_use_their_own_generators():
    out, barrier = {}, threading.Barrier(2)

    def work(seed):
        with ft.patch_init(fi.Generator(seed)):
            barrier.wait(10)
            out[seed] = [nn.init.normal_(torch.empty(5000)) for _ in range(20)]
            barrier.wait(10)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for seed in (1, 2):
        g = fi.Generator(seed)
        for got in out[seed]:
            assert torch.equal(got, fi.normal_(torch.empty(5000), generator=g))
    assert not _torch_patch.installed()


def test_patch_rejects_a_torch_generator():
    with pytest.raises(TypeError, match="fastinit.Generator"):
        ft.patch_init(torch.Generator())


# --------------------------------------------------------------------------------------
# Nothing escapes to torch's generator, however the draw is reached
# --------------------------------------------------------------------------------------

PARTIAL = functools.partial(nn.init.trunc_normal_, std=0.02)      # made at import (timm)
REGISTRY = {"xavier": nn.init.xavier_uniform_, "kaiming": nn.init.kaiming_normal_}


def default_argument(t, init=nn.init.normal_):
    return init(t, 0.0, 0.5)


class Holder:
    init = staticmethod(nn.init.uniform_)


class ResearchModule(nn.Module):
    """Initialization as research code writes it: draws of every kind."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.empty(20, 10))
        self.b = nn.Parameter(torch.empty(30))
        self.c = nn.Parameter(torch.empty(6, 7))
        self.d = nn.Parameter(torch.empty(5, 5))
        self.e = nn.Parameter(torch.empty(12))
        self.reset_parameters()

    def reset_parameters(self):
        with torch.no_grad():
            PARTIAL(self.a)
            REGISTRY["xavier"](self.c)
            default_argument(self.d)
            Holder.init(self.e, -1.0, 1.0)
            self.b.normal_(0, 0.1)
            self.b.add_(torch.randn(30) * 0.01 + torch.rand(30) * 0.01)
            self.b.mul_(torch.randint(1, 3, (30,)).float())
            self.b[torch.randperm(30)[:3]] = 0
            self.b.add_(torch.empty(30).exponential_() * 0.001)
            self.b.add_(torch.normal(torch.zeros(30), torch.ones(30)) * 0.001)
            self.b.add_(torch.bernoulli(torch.full((30,), 0.5)) * 0.001)
            self.b.add_(torch.randn_like(self.b) * 0.001)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                nn.init.normal(self.c)                 # the deprecated spelling


def test_every_way_of_drawing_comes_from_fastinit():
    results = {}
    for torch_seed, fi_seed in ((0, 7), (1, 7), (0, 8)):
        torch.manual_seed(torch_seed)
        state = torch.get_rng_state()
        with ft.patch_init(fi.Generator(fi_seed)):
            m = ResearchModule()
        assert torch.equal(torch.get_rng_state(), state)          # torch's RNG untouched
        results[(torch_seed, fi_seed)] = m.state_dict()
    same, other = results[(0, 7)], results[(1, 7)]
    assert all(torch.equal(same[k], other[k]) for k in same)       # torch's seed: no effect
    changed = results[(0, 8)]
    assert all(not torch.equal(same[k], changed[k]) for k in same)  # fastinit's: all change
    assert no_mode_left()


def test_exact_bits_through_any_binding():
    with ft.patch_init(fi.Generator(2)):
        a = PARTIAL(torch.empty(40, 30))
        c = REGISTRY["kaiming"](torch.empty(40, 30), mode="fan_out")
        d = default_argument(torch.empty(100))
        e = Holder.init(torch.empty(100), -1.0, 1.0)
        r = torch.randn(3, 5, dtype=torch.float64)
        u = torch.rand(7, dtype=torch.bfloat16)
        n = torch.normal(2.0, 3.0, (40,))
    g = fi.Generator(2)
    assert torch.equal(a, fi.trunc_normal_(torch.empty(40, 30), std=0.02, generator=g))
    assert torch.equal(c, fi.kaiming_normal_(torch.empty(40, 30), mode="fan_out", generator=g))
    assert torch.equal(d, fi.normal_(torch.empty(100), 0.0, 0.5, generator=g))
    assert torch.equal(e, fi.uniform_(torch.empty(100), -1.0, 1.0, generator=g))
    assert torch.equal(r, fi.normal_(torch.empty(3, 5, dtype=torch.float64), generator=g))
    assert torch.equal(u, fi.uniform_(torch.empty(7, dtype=torch.bfloat16), generator=g))
    assert torch.equal(n, fi.normal_(torch.empty(40), 2.0, 3.0, generator=g))


def test_draw_laws():
    """Each computed draw by its law. Tolerances: a mean of n draws within 6 standard
    errors; frequencies within 6 binomial standard errors."""
    n = 200_000
    with ft.patch_init(fi.Generator(11)):
        ints = torch.randint(3, 10, (n,))
        ints_like = torch.randint_like(torch.empty(1000), 2, 6)
        perm = torch.randperm(1000)
        expo = torch.empty(n, dtype=torch.float64).exponential_(2.0)
        geo = torch.empty(n).geometric_(0.25)
        bern = torch.empty(n).bernoulli_(0.3)
        cauchy = torch.empty(n, dtype=torch.float64).cauchy_(1.0, 2.0)
        lognormal = torch.empty(n, dtype=torch.float64).log_normal_(0.0, 0.5)
        rand_f = torch.empty(n).random_()
        cplx = torch.randn(n, dtype=torch.complex128)
    assert ints.dtype == torch.int64 and ints.min() == 3 and ints.max() == 9
    counts = torch.bincount(ints - 3, minlength=7).double()
    assert (counts - n / 7).abs().max() <= 6 * math.sqrt(n / 7)
    assert ints_like.dtype == torch.float32 and set(ints_like.tolist()) == {2.0, 3.0, 4.0, 5.0}
    assert torch.equal(perm.sort().values, torch.arange(1000))
    assert abs(expo.mean().item() - 0.5) <= 6 * 0.5 / math.sqrt(n) and expo.min() >= 0
    assert abs(geo.mean().item() - 4.0) <= 6 * math.sqrt(0.75) / 0.25 / math.sqrt(n)
    assert geo.min() == 1 and torch.equal(geo, geo.round())
    assert abs(bern.mean().item() - 0.3) <= 6 * math.sqrt(0.21 / n)
    assert abs((cauchy - 1.0).abs().median().item() - 2.0) <= 0.05      # median |x - m| = s
    assert abs(lognormal.log().std().item() - 0.5) <= 6 * 0.5 / math.sqrt(2 * n)
    assert rand_f.min() >= 0 and rand_f.max() <= 2 ** 24 and torch.equal(rand_f, rand_f.round())
    for part in (cplx.real, cplx.imag):               # each component N(0, 1/2)
        assert abs(part.var().item() - 0.5) <= 6 * 0.5 * math.sqrt(2 / n)


def test_explicit_torch_generator_and_other_devices_go_to_torch():
    g = fi.Generator(0)
    with ft.patch_init(g):
        a = torch.randn(10, generator=torch.Generator().manual_seed(3))
        b = torch.empty(10).uniform_(generator=torch.Generator().manual_seed(3))
        with torch.device("meta"):
            c = torch.randn(4, 4)
        d = torch.randn(4, 4, device="meta")
    assert g.state["counter"] == 0
    assert torch.equal(a, torch.randn(10, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(b, torch.empty(10).uniform_(generator=torch.Generator().manual_seed(3)))
    assert c.device.type == d.device.type == "meta"


def test_torch_parity_under_the_patch():
    # A negative-bit view (.conj().imag) is filled, as torch fills it.
    base = torch.zeros(50, dtype=torch.complex64)
    with ft.patch_init(fi.Generator(1)):
        nn.init.uniform_(base.conj().imag, 2.0, 3.0)
    assert ((-base.imag >= 2) & (-base.imag < 3)).all()
    assert torch.equal(-base.imag, fi.uniform_(torch.empty(50), 2.0, 3.0,
                                               generator=fi.Generator(1)))
    # Expanded tensors: torch's RuntimeError, word for word, nothing drawn.
    for name in ("normal_", "uniform_", "xavier_uniform_", "trunc_normal_", "kaiming_normal_"):
        with pytest.raises(RuntimeError) as theirs:
            getattr(nn.init, name)(torch.zeros(4, 1).expand(4, 5))
        g = fi.Generator(0)
        with ft.patch_init(g):
            with pytest.raises(RuntimeError) as ours:
                getattr(nn.init, name)(torch.zeros(4, 1).expand(4, 5))
        assert str(ours.value) == str(theirs.value) and g.state["counter"] == 0, name
    # sparse_ with sparsity above 1: torch zeros every row; so does the patch.
    with ft.patch_init(fi.Generator(0)):
        s = nn.init.sparse_(torch.ones(6, 4), sparsity=1.5)
    assert (s == 0).all()
    # A leaf that requires grad, outside no_grad: torch's error, nothing drawn.
    with pytest.raises(RuntimeError) as theirs:
        nn.Parameter(torch.empty(3)).normal_()
    g = fi.Generator(0)
    with ft.patch_init(g):
        with pytest.raises(RuntimeError) as ours:
            nn.Parameter(torch.empty(3)).normal_()
    assert str(ours.value) == str(theirs.value) and g.state["counter"] == 0


def test_uncovered_draws_warn():
    with ft.patch_init(fi.Generator(0)):
        with pytest.warns(ft.TorchRNGWarning, match="dropout"):
            torch.nn.functional.dropout(torch.ones(10), 0.5, training=True)
        with pytest.warns(ft.TorchRNGWarning, match="poisson"):
            torch.poisson(torch.ones(3))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            torch.nn.functional.dropout(torch.ones(10), 0.5, training=False)   # no draw


def _randn_plus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.randn(3)


def test_compiled_code_is_answered_and_torchscript_escapes_as_documented():
    # README's table: code compiled by torch.compile draws from the block's generator
    # (the eager backend: no C compiler needed); TorchScript code does not consult
    # function modes, so its draws go to torch's generator, with no warning.
    compiled = torch.compile(_randn_plus, backend="eager")
    g = fi.Generator(6)
    with ft.patch_init(g):
        got = compiled(torch.zeros(3))
    assert torch.equal(got, fi.normal_(torch.empty(3), generator=fi.Generator(6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # torch.jit.script is deprecated
        scripted = torch.jit.script(_randn_plus)
    torch.manual_seed(3)
    expected = torch.randn(3)
    torch.manual_seed(3)
    g = fi.Generator(6)
    with ft.patch_init(g), warnings.catch_warnings():
        warnings.simplefilter("error")
        got = scripted(torch.zeros(3))
    assert torch.equal(got, expected) and g.state["counter"] == 0


def test_every_random_op_of_torch_is_answered_or_warned():
    """torch's ops tagged nondeterministic_seeded that Python code can call by name (as
    torch.<name> or a Tensor method) are either answered from fastinit or warned about."""
    from fastinit import _torch_draws
    known = set(_torch_draws.HANDLERS) | set(_torch_draws.ESCAPES)
    missing = []
    for name in dir(torch.ops.aten):
        packet = getattr(torch.ops.aten, name, None)
        try:
            overloads = [getattr(packet, o) for o in packet.overloads()]
        except (AttributeError, TypeError, RuntimeError):
            continue
        if not any(torch.Tag.nondeterministic_seeded in o.tags for o in overloads):
            continue
        for owner in (torch, torch._C.TensorBase):
            func = getattr(owner, name.rstrip("_") + ("_" if name.endswith("_") else ""),
                           None)
            if func is not None and not name.startswith("_") and "rnn" not in name and \
                    name not in ("lstm", "gru") and func not in known:
                missing.append(f"{owner.__name__}.{name}")
    assert not missing, missing


# --------------------------------------------------------------------------------------
# Entering a block: no imports, no scans, in any ordinary script
# --------------------------------------------------------------------------------------

def test_entering_touches_no_module():
    class Tripwire:
        """A sys.modules entry that fails if anything looks inside it."""
        touched = 0

        def __getattribute__(self, name):
            Tripwire.touched += 1
            raise ImportError("a broken optional dependency")

    sys.modules["fastinit_test_tripwire"] = Tripwire()
    try:
        with ft.patch_init(fi.Generator(0)):
            nn.Linear(4, 4)
        assert Tripwire.touched == 0
    finally:
        del sys.modules["fastinit_test_tripwire"]


def test_lazy_modules_stay_unloaded(tmp_path):
    import importlib.util
    (tmp_path / "fastinit_lazy_probe.py").write_text(
        "raise ImportError('a broken optional dependency')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.find_spec("fastinit_lazy_probe")
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["fastinit_lazy_probe"] = module
        loader.exec_module(module)
        with ft.patch_init(fi.Generator(0)):
            nn.init.xavier_uniform_(torch.empty(3, 3))
        with torch.device("meta"):
            m = nn.Linear(3, 3)
        ft.materialize(m)
        assert type(module).__name__ == "_LazyModule"            # never executed
    finally:
        sys.modules.pop("fastinit_lazy_probe", None)
        sys.path.remove(str(tmp_path))


SCRIPT = """
import sys
import torch
from torch import nn
from torch.nn.init import xavier_uniform_, trunc_normal_
import fastinit, fastinit.torch

sys.modules.setdefault("__mp_main__", sys.modules["__main__"])   # as multiprocessing does
sys.modules["alias_of_init"] = sys.modules["torch.nn.init"]      # a module bound twice

with fastinit.torch.patch_init(fastinit.Generator(0)):
    w = xavier_uniform_(torch.empty(8, 8))
with torch.device("meta"):
    m = nn.Linear(8, 8)
fastinit.torch.materialize(m, fastinit.Generator(0))
expected = fastinit.xavier_uniform_(torch.empty(8, 8), generator=fastinit.Generator(0))
print("OK", torch.equal(w, expected), m.weight.device)
"""


def test_an_ordinary_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OK", "True", "cpu"]


def test_kaiming_on_a_tensor_fastinit_does_not_fill_directly_keeps_its_bits():
    # A negative-bit view goes through a scratch tensor and torch's copy_, with the
    # bound of fastinit's kaiming_uniform_: the same values, negated in memory.
    base = torch.zeros(6, 10, dtype=torch.complex64)
    with ft.patch_init(fi.Generator(3)):
        nn.init.kaiming_uniform_(base.conj().imag, a=math.sqrt(5), mode="fan_out")
    want = fi.kaiming_uniform_(torch.empty(6, 10), a=math.sqrt(5), mode="fan_out",
                               generator=fi.Generator(3))
    assert torch.equal(-base.imag, want)


def test_binder_binds_as_signature_bind():
    """_Binder's names-only binding gives what Signature.bind and apply_defaults give
    (None where bind refuses), for every signature the handlers bind and calls
    valid and not: too many arguments, unknown, repeated and missing ones."""
    import inspect
    from fastinit import _torch_draws as draws

    def reference(signature, args, kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        return dict(bound.arguments)

    t = torch.empty(3)
    binders = [draws._UNIFORM_, draws._NORMAL_, draws._BERNOULLI_,
               *(binder for binder, _, _ in draws._ONE_PARAM.values()),
               *(draws._Binder(inspect.signature(getattr(nn.init, name)))
                 for name in ("uniform_", "normal_", "kaiming_uniform_"))]
    gen = torch.Generator()
    calls = [((t,), {}), ((t, 1.0), {}), ((t, 1.0, 2.0), {}), ((t, 1.0, 2.0, 3.0), {}),
             ((t, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0), {}), ((), {}), ((), {"tensor": t}),
             ((), {"self": t, "mean": 1.0}), ((t,), {"std": 0.5}), ((t,), {"b": 2.0, "a": 1.0}),
             ((t, 1.0), {"a": 2.0}), ((t, 1.0), {"mean": 2.0}), ((t,), {"nope": 1}),
             ((t,), {"generator": gen}), ((t, 0.0, 1.0), {"generator": None}),
             ((t, 0.5, "fan_out", "relu"), {}), ((t,), {"mode": "fan_out", "a": 0.1}),
             ((t,), {"p": 0.3}), ((t, 0.3), {}), ((t, 0.3), {"p": 0.3})]
    bound = 0
    for binder in binders:
        for args, kwargs in calls:
            want = reference(binder.signature, args, kwargs)
            got = binder(args, kwargs)
            assert got == want and (got is None or list(got) == list(want)), \
                (binder.signature, args, kwargs)
            bound += want is not None
    assert bound > 40                      # both kinds of call were held
