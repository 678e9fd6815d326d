"""fastinit.torch.patch_init: torch.nn.init's functions filling through fastinit."""

import math
import sys
import threading
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402
from fastinit import _torch_patch  # noqa: E402

NAMES = _torch_patch.NAMES

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


def sites():
    """Every place torch's init functions are bound that the patch must restore."""
    hf = sys.modules.get("transformers.initialization")
    out = {("torch.nn.init", n): getattr(nn.init, n) for n in NAMES}
    for mod in ("torch.nn.modules.activation", "torch.nn.modules.transformer"):
        for n in NAMES:
            if n in vars(sys.modules[mod]):
                out[(mod, n)] = vars(sys.modules[mod])[n]
    if hf is not None:
        out.update({("hf", n): f for n, f in hf.TORCH_INIT_FUNCTIONS.items()})
    return out


def test_calls_fill_from_the_generator_with_fastinit_bits():
    for name, args, shape in CALLS:
        expected = getattr(fi, name)(torch.empty(shape), *args, generator=fi.Generator(7)) \
            if name not in ("constant_", "ones_", "zeros_", "eye_", "dirac_") else \
            getattr(fi, name)(torch.empty(shape), *args)
        got = torch.full(shape, float("nan"))
        with ft.patch_init(fi.Generator(7)):
            out = getattr(nn.init, name)(got, *args)
        assert out is got
        assert torch.equal(got, expected), name


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
    before = sites()
    g1, g2 = fi.Generator(1), fi.Generator(2)
    with ft.patch_init(g1):
        assert all(f is not before[k] for k, f in sites().items())
        with ft.patch_init(g2):
            inner = nn.init.normal_(torch.empty(100))
        outer = nn.init.normal_(torch.empty(100))
    assert sites() == before and not _torch_patch.installed()
    assert torch.equal(inner, fi.normal_(torch.empty(100), generator=fi.Generator(2)))
    assert torch.equal(outer, fi.normal_(torch.empty(100), generator=fi.Generator(1)))
    with pytest.raises(ZeroDivisionError):
        with ft.patch_init(g1):
            1 / 0
    assert sites() == before and not _torch_patch.installed()

    @ft.patch_init(fi.Generator(9))
    def build():
        return nn.init.uniform_(torch.empty(10))

    first, second = build(), build()            # each call a block, one generator: its calls
    g = fi.Generator(9)
    assert torch.equal(first, fi.uniform_(torch.empty(10), generator=g))
    assert torch.equal(second, fi.uniform_(torch.empty(10), generator=g))
    assert sites() == before


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
        # A complex tensor.
        torch.manual_seed(12)
        c = nn.init.normal_(torch.empty(8, dtype=torch.complex64))
    assert g.state["counter"] == 0
    assert torch.equal(a, torch.empty(64).normal_(1.0, 2.0,
                                                  generator=torch.Generator().manual_seed(4)))
    assert ints.dtype == torch.int32 and (ints == 7).all()
    assert meta.device.type == "meta"
    torch.manual_seed(12)
    assert torch.equal(c, torch.empty(8, dtype=torch.complex64).normal_())


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
