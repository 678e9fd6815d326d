"""fastinit.torch.reset_parameters against torch's own initialization, layer by layer."""

import math

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402


def assert_uniform(t, bound):
    """``t`` holds draws of U(-bound, bound): inside the bounds, its largest |value| as
    close to the bound as n draws come (below 1 - 10/n of it with probability e**-10),
    and a Kolmogorov-Smirnov test against the law at the 1e-4 level. Zeros, or draws
    from half the bound, fail for any n >= 20."""
    x = t.detach().double().flatten().numpy()
    n = x.size
    assert n >= 20 and np.abs(x).max() <= bound
    assert np.abs(x).max() >= bound * (1 - 10 / n)
    assert stats.kstest(x, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-4


def assert_normal(t, std):
    """``t`` holds draws of N(0, std**2): Kolmogorov-Smirnov at the 1e-4 level."""
    x = t.detach().double().flatten().numpy()
    assert x.size >= 20 and stats.kstest(x, stats.norm(0, std).cdf).pvalue > 1e-4


def draws(module, name, at_least=256):
    """Parameter ``name`` of ``module`` after reset_parameters with seeds 0, 1, ...,
    concatenated until there are ``at_least`` values (small biases need several)."""
    out, seed = [], 0
    while sum(t.numel() for t in out) < at_least:
        ft.reset_parameters(module, fi.Generator(seed))
        out.append(getattr(module, name).detach().clone().flatten())
        seed += 1
    return torch.cat(out)


def test_linear_conv_bilinear():
    for m in [nn.Linear(300, 200), nn.Conv1d(16, 32, 5), nn.Conv2d(8, 16, 3),
              nn.Conv3d(4, 8, 3), nn.ConvTranspose2d(16, 8, 3), nn.Conv2d(8, 16, 3, groups=4)]:
        fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        assert_uniform(draws(m, "weight"), math.sqrt(3.0) * gain / math.sqrt(fan_in))
        assert_uniform(draws(m, "bias"), 1 / math.sqrt(fan_in))
    b = nn.Bilinear(20, 30, 40)
    assert_uniform(draws(b, "weight"), 1 / math.sqrt(20))
    assert_uniform(draws(b, "bias"), 1 / math.sqrt(20))


def test_embedding_and_norms():
    e = nn.Embedding(5000, 64, padding_idx=3)
    ft.reset_parameters(e, fi.Generator(0))
    w = e.weight.detach()
    assert (w[3] == 0).all() and abs(w.std().item() - 1) < 0.01
    for m in [nn.LayerNorm(64), nn.GroupNorm(4, 64), nn.RMSNorm(64), nn.BatchNorm2d(64),
              nn.InstanceNorm1d(64, affine=True)]:
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(7)
        ft.reset_parameters(m, fi.Generator(0))
        assert (m.weight == 1).all()
        if getattr(m, "bias", None) is not None:
            assert (m.bias == 0).all()
    bn = nn.BatchNorm1d(10)
    bn.train()
    bn(torch.randn(32, 10))
    ft.reset_parameters(bn, fi.Generator(0))
    assert (bn.running_mean == 0).all() and (bn.running_var == 1).all()
    assert bn.num_batches_tracked.item() == 0


def test_attention_and_recurrent():
    mha = nn.MultiheadAttention(64, 4, add_bias_kv=True)
    ft.reset_parameters(mha, fi.Generator(0))
    assert_uniform(mha.in_proj_weight, math.sqrt(6 / (64 + 192)))
    assert (mha.in_proj_bias == 0).all() and (mha.out_proj.bias == 0).all()
    assert_uniform(mha.out_proj.weight, 1 / math.sqrt(64))           # its Linear default
    # bias_k and bias_v, shape (1, 1, 64): xavier_normal_, fans 64 and 64.
    assert not torch.equal(mha.bias_k, mha.bias_v)
    assert_normal(draws(mha, "bias_k"), math.sqrt(2 / 128))
    assert_normal(draws(mha, "bias_v"), math.sqrt(2 / 128))
    kv = nn.MultiheadAttention(64, 4, kdim=32, vdim=16)
    ft.reset_parameters(kv, fi.Generator(0))
    assert_uniform(kv.k_proj_weight, math.sqrt(6 / (64 + 32)))
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        r = cls(20, 50, num_layers=2, bidirectional=True)
        ft.reset_parameters(r, fi.Generator(0))
        for p in r.parameters():
            assert_uniform(p, 1 / math.sqrt(50))


def test_transformer_gets_xavier_in_every_matrix_as_its_constructor_gives():
    model = nn.Transformer(64, 4, 1, 1, 128)
    ft.reset_parameters(model, fi.Generator(0))
    matrices = 0
    for name, p in model.named_parameters():
        if p.dim() > 1:
            fan_out, fan_in = p.shape
            assert_uniform(p, math.sqrt(6 / (fan_in + fan_out)))
            matrices += 1
        elif "norm" in name and name.endswith("weight"):
            assert (p == 1).all(), name
        elif "in_proj_bias" in name or "out_proj.bias" in name or "norm" in name:
            assert (p == 0).all(), name
    assert matrices == 4 + 6
    # A parameter init_fn decides keeps its rule, as any other.
    gpt = ft.reset_parameters(model, fi.Generator(0), init_fn=lambda m, n, p: (
        ("zeros_", {}) if isinstance(m, nn.Linear) and n == "weight" else None))
    assert (gpt.encoder.layers[0].linear1.weight == 0).all()
    assert_uniform(gpt.encoder.layers[0].self_attn.in_proj_weight, math.sqrt(6 / 256))


def test_distributions_match_torch_defaults():
    # torch's initialization and ours follow the same law, parameter by parameter: a
    # two-sample Kolmogorov-Smirnov test at the 1e-4 level (the 32-element conv bias
    # included: zeros, or draws from half its bound, fail it).
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Linear(512, 512), nn.Conv2d(16, 32, 3), nn.Embedding(1000, 64))
    ours = nn.Sequential(nn.Linear(512, 512), nn.Conv2d(16, 32, 3), nn.Embedding(1000, 64))
    ft.reset_parameters(ours, fi.Generator(1))
    for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
        x, y = (v.detach().double().flatten().numpy() for v in (p, q))
        assert stats.ks_2samp(x, y).pvalue > 1e-4, name
        assert np.abs(y).max() <= np.abs(x).max() * (1 + 10 / x.size) or name == "2.weight"


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.called = 0

    def reset_parameters(self):
        self.called += 1
        with torch.no_grad():
            self.w.fill_(5)


class MyLinear(nn.Linear):
    def reset_parameters(self):
        with torch.no_grad():
            self.weight.fill_(2)
            if self.bias is not None:
                self.bias.fill_(2)


def test_fallbacks_for_unknown_and_overriding_modules():
    m = nn.Sequential(Custom(), MyLinear(4, 4), nn.Linear(400, 400))
    ft.reset_parameters(m, fi.Generator(0))
    assert m[0].called == 1 and (m[0].w == 5).all()
    assert (m[1].weight == 2).all()                       # its own reset_parameters
    assert_uniform(m[2].weight, 1 / math.sqrt(400))


def test_known_layers_with_complex_parameters_run_their_own_reset():
    # fastinit fills no complex tensor: the layer's own reset_parameters runs (torch's
    # law, on torch's generator), where the plan's kaiming_uniform_ raised TypeError.
    m = nn.Sequential(nn.Linear(300, 300), nn.Linear(300, 300, dtype=torch.complex64),
                      nn.Embedding(50, 40, dtype=torch.complex64))
    plan, fallbacks = ft.default_plan(m)
    assert fallbacks == [m[1], m[2]] and [e[0] for e in plan] == [m[0].weight, m[0].bias]
    before = torch.get_rng_state()
    ft.reset_parameters(m, fi.Generator(0))
    assert not torch.equal(torch.get_rng_state(), before)
    assert_uniform(m[0].weight, 1 / math.sqrt(300))
    bound = 1 / math.sqrt(300)
    for part in (m[1].weight.real, m[1].weight.imag):
        assert part.abs().max() <= bound and part.abs().max() > 0.99 * bound
    assert abs(torch.view_as_real(m[2].weight).std().item() / math.sqrt(0.5) - 1) < 0.1


def test_init_fn_expresses_a_hugging_face_scheme():
    def gpt_style(module, name, param):
        if isinstance(module, (nn.Linear, nn.Embedding)) and name == "weight":
            return "normal_", {"std": 0.02}
        if name == "bias":
            return "zeros_", {}
        return None

    m = nn.Sequential(nn.Embedding(1000, 64), nn.Linear(64, 256), nn.LayerNorm(256))
    ft.reset_parameters(m, fi.Generator(0), init_fn=gpt_style)
    for w in (m[0].weight, m[1].weight):
        assert abs(w.std().item() / 0.02 - 1) < 0.05
    assert (m[1].bias == 0).all() and (m[2].weight == 1).all() and (m[2].bias == 0).all()


def gpt2_like(width=64, layers=2, vocab=1000, context=128):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, 4)
            self.fc, self.proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    model = nn.Module()
    model.wte, model.wpe = nn.Embedding(vocab, width), nn.Embedding(context, width)
    model.h = nn.ModuleList([Block() for _ in range(layers)])
    model.ln_f = nn.LayerNorm(width)
    return model


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_meta_models_materialized_then_reset_reproducibly(threads, num_threads):
    num_threads(threads)
    with torch.device("meta"):
        model = gpt2_like()
    model = model.to_empty(device="cpu")
    ft.reset_parameters(model, fi.Generator(11))
    again = gpt2_like()
    ft.reset_parameters(again, fi.Generator(11))
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_meta_model_without_storage_is_a_no_op():
    with torch.device("meta"):
        model = gpt2_like()
    g = fi.Generator(0)
    ft.reset_parameters(model, g)
    assert g.state["counter"] > 0 and all(p.is_meta for p in model.parameters())


def test_bulk_equals_one_by_one_on_modules():
    model = gpt2_like()
    plan, fallbacks = ft.default_plan(model)
    assert not fallbacks
    ft.reset_parameters(model, fi.Generator(2))
    other = gpt2_like()
    g = fi.Generator(2)
    for param, init, kwargs in ft.default_plan(other)[0]:
        fn = getattr(fi, init)
        if init in ("zeros_", "ones_"):
            fn(param)
        else:
            fn(param, generator=g, **kwargs)
    for p, q in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
