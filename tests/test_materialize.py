"""Models built three ways: plainly on the CPU, under fastinit.torch.patch_init, and
on the meta device then fastinit.torch.materialize; each checked against the
initialization scheme its own code declares.

Tolerances, set from the sampling error before looking at the results: a sample of
n normal draws has a mean within 6 std/sqrt(n) of 0 and a standard deviation within
6 std/sqrt(2n) of std except with probability about 2e-9 each; uniform draws are
checked by their bound, their extreme and a Kolmogorov-Smirnov test at 1e-4.
"""

import math
import re
import threading

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402
from fastinit import _deferred as fi_deferred  # noqa: E402


def assert_normal_std(t, std):
    x = t.detach().double().flatten()
    n = x.numel()
    assert n >= 64
    assert abs(x.mean().item()) <= 6 * std / math.sqrt(n)
    assert abs(x.std().item() - std) <= 6 * std / math.sqrt(2 * n)


def assert_uniform(t, bound):
    x = t.detach().double().flatten().numpy()
    n = x.size
    assert np.abs(x).max() <= bound and np.abs(x).max() >= bound * (1 - 10 / n)
    assert stats.kstest(x, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-4


def three_ways(build, seed=0):
    torch.manual_seed(seed)
    plain = build()
    with ft.patch_init(fi.Generator(seed)):
        patched = build()
    with torch.device("meta"):
        meta = build()
    assert all(p.device.type == "meta" for p in meta.parameters())
    materialized = ft.materialize(meta, fi.Generator(seed))
    assert materialized is meta
    return plain, patched, materialized


def assert_same_buffers(plain, other):
    ours = dict(other.named_buffers())
    for name, buf in plain.named_buffers():
        assert ours[name].dtype == buf.dtype and torch.equal(ours[name], buf), name


# --------------------------------------------------------------------------------------
# Hugging Face models
# --------------------------------------------------------------------------------------

VOCAB = 1000


def hf_models():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    small = dict(vocab_size=VOCAB)
    return {
        "gpt2": (transformers.GPT2LMHeadModel,
                 transformers.GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=64, **small)),
        "llama": (transformers.LlamaForCausalLM,
                  transformers.LlamaConfig(hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, **small)),
        "bert": (transformers.BertForMaskedLM,
                 transformers.BertConfig(hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         pad_token_id=0, **small)),
    }


def hf_scheme(kind, config, name, p):
    """What the model's own _init_weights gives parameter ``name``: ("normal", std),
    ("zeros",) or ("ones",)."""
    std = config.initializer_range
    if name.endswith("bias"):
        return ("zeros",)
    if "norm" in name.lower() or "ln_" in name:
        return ("ones",)
    if kind == "gpt2" and name.endswith("c_proj.weight"):
        return ("normal", std / math.sqrt(2 * config.n_layer))
    return ("normal", std)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_hugging_face_models_three_ways(kind):
    cls, config = hf_models()[kind]
    models = three_ways(lambda: cls(config))
    plain = models[0]
    for model in models:
        params = dict(model.named_parameters(remove_duplicate=False))
        for name, p in params.items():
            scheme = hf_scheme(kind, config, name, p)
            if scheme[0] == "normal":
                w = p.detach()
                if kind == "bert" and name.endswith("word_embeddings.weight"):
                    assert (w[config.pad_token_id] == 0).all()          # padding row
                    w = torch.cat([w[:config.pad_token_id], w[config.pad_token_id + 1:]])
                assert_normal_std(w, scheme[1])
            else:
                assert (p == (1 if scheme[0] == "ones" else 0)).all(), name
        assert_same_buffers(plain, model)
        if getattr(config, "tie_word_embeddings", False):
            assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
        ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()
        assert math.isfinite(loss) and abs(loss - math.log(VOCAB)) <= 0.02 * math.log(VOCAB)


def test_hugging_face_materialize_is_reproducible_and_fast_path_only():
    cls, config = hf_models()["llama"]
    out = []
    for _ in range(2):
        with torch.device("meta"):
            model = cls(config)
        out.append(ft.materialize(model, fi.Generator(42)).state_dict())
    assert all(torch.equal(out[0][k], out[1][k]) for k in out[0])
    # The fills came from the generator: one more materialize on Generator(43) differs.
    with torch.device("meta"):
        model = cls(config)
    other = ft.materialize(model, fi.Generator(43)).state_dict()
    assert not torch.equal(other["model.embed_tokens.weight"], out[0]["model.embed_tokens.weight"])


# --------------------------------------------------------------------------------------
# Plain torch modules
# --------------------------------------------------------------------------------------

def _fan_in(w):
    return nn.init._calculate_fan_in_and_fan_out(w)[0]


def check_linear(m):
    gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    assert_uniform(m.weight, math.sqrt(3.0) * gain / math.sqrt(_fan_in(m.weight)))
    if m.bias is not None:
        assert_uniform(m.bias, 1 / math.sqrt(_fan_in(m.weight)))


def test_linear_and_conv_three_ways():
    for build in (lambda: nn.Linear(300, 200), lambda: nn.Conv2d(16, 32, 3)):
        for m in three_ways(build):
            check_linear(m)


def test_attention_three_ways():
    for m in three_ways(lambda: nn.MultiheadAttention(64, 4, add_bias_kv=True)):
        assert_uniform(m.in_proj_weight, math.sqrt(6 / (64 + 192)))
        assert (m.in_proj_bias == 0).all() and (m.out_proj.bias == 0).all()
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        assert_uniform(m.out_proj.weight, math.sqrt(3.0) * gain / 8)
        for b in (m.bias_k, m.bias_v):                      # xavier_normal_ of (1, 1, 64)
            assert b.abs().max() > 0 and torch.isfinite(b).all()


def test_lstm_three_ways():
    for m in three_ways(lambda: nn.LSTM(32, 48, num_layers=2)):
        for name, p in m.named_parameters():
            assert_uniform(p, 1 / math.sqrt(48))


def test_transformer_three_ways():
    def build():
        return nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=1,
                              dim_feedforward=64)

    for m in three_ways(build):
        for name, p in m.named_parameters():
            if p.dim() > 1:                    # nn.Transformer's own xavier_uniform_ pass
                assert_uniform(p, math.sqrt(6 / sum(p.shape[:2]))), name
            elif "norm" in name and name.endswith("weight"):
                assert (p == 1).all(), name
            elif name.endswith("in_proj_bias") or "norm" in name or \
                    name.endswith("out_proj.bias"):
                assert (p == 0).all(), name
            else:                              # Linear biases
                assert p.abs().max() > 0, name
        x = torch.randn(5, 2, 32, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(m(x, x)).all()


def test_batchnorm_buffers_restored():
    plain, patched, materialized = three_ways(lambda: nn.Sequential(nn.Conv2d(3, 8, 3),
                                                                    nn.BatchNorm2d(8)))
    for m in (patched, materialized):
        assert_same_buffers(plain, m)
        assert (m[1].weight == 1).all() and (m[1].bias == 0).all()


# --------------------------------------------------------------------------------------
# What materialize refuses
# --------------------------------------------------------------------------------------

class WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("table", torch.arange(10.0))


class WithParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))


def test_unrestorable_tensors_are_named():
    for cls, what in ((WithBuffer, "buffer 'table' (WithBuffer)"),
                      (WithParameter, "parameter 'scale' (WithParameter)")):
        with torch.device("meta"):
            m = cls()
        with pytest.raises(RuntimeError, match=re.escape(f"nothing initialized {what}")):
            ft.materialize(m)


def test_reset_parameters_through_materialize():
    # The README's meta recipe for fastinit's one-pass default scheme: buffers it
    # cannot restore are named, not left as garbage.
    with torch.device("meta"):
        ok = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.Embedding(50, 8))
        bad = WithBuffer()
    ft.materialize(ok, fi.Generator(0), init=ft.reset_parameters)
    expected = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.Embedding(50, 8))
    ft.reset_parameters(expected, fi.Generator(0))
    assert all(torch.equal(a, b) for a, b in zip(ok.state_dict().values(),
                                                 expected.state_dict().values()))
    with pytest.raises(RuntimeError, match="buffer 'table'"):
        ft.materialize(bad, init=ft.reset_parameters)


def test_materialize_needs_a_meta_model():
    with pytest.raises(ValueError, match="parameter 'weight' is on cpu"):
        ft.materialize(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="fastinit.Generator"):
        with torch.device("meta"):
            m = nn.Linear(2, 2)
        ft.materialize(m, torch.Generator())


def test_hugging_face_parameters_its_init_leaves_get_their_modules_reset():
    transformers = pytest.importorskip("transformers")

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(64))
            self.reset_parameters()

        def reset_parameters(self):
            nn.init.uniform_(self.w, -3.0, 3.0)

    class Bare(nn.Module):                      # no reset_parameters: nothing restores it
        def __init__(self):
            super().__init__()
            self.v = nn.Parameter(torch.zeros(4))

    class Tiny(transformers.PreTrainedModel):
        config_class = transformers.PretrainedConfig

        def __init__(self, config, bare=False):
            super().__init__(config)
            self.lin = nn.Linear(16, 16)
            self.scale = Scale()
            if bare:
                self.bare = Bare()
            self.post_init()

    config = transformers.PretrainedConfig(initializer_range=0.02)
    with torch.device("meta"):
        model = Tiny(config)
    ft.materialize(model, fi.Generator(3))
    assert_normal_std(model.lin.weight, 0.02)
    assert (model.lin.bias == 0).all()
    w = model.scale.w.detach()
    assert w.abs().max() <= 3.0 and w.abs().max() > 1.0      # its own U(-3, 3), not garbage
    with torch.device("meta"):
        model = Tiny(config, bare=True)
    with pytest.raises(RuntimeError, match=re.escape("parameter 'bare.v' (Bare)")):
        ft.materialize(model)


# --------------------------------------------------------------------------------------
# All or nothing, ties, odd tensors, parametrizations
# --------------------------------------------------------------------------------------

def meta_state(model):
    """Every registration: (module id, kind, name) -> the tensor object, and its device."""
    return {(id(m), kind, name): t for m in model.modules()
            for kind, tensors in (("p", m._parameters), ("b", m._buffers))
            for name, t in tensors.items()}


class Failing(nn.Module):
    """A model whose own init raises partway through (after other modules wrote)."""

    def __init__(self, error):
        super().__init__()
        self.first = nn.Linear(8, 8)
        self.second = nn.Linear(8, 8)
        self.error = error

    def reset_parameters(self):
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("error", [KeyError("boom"), KeyboardInterrupt(), ValueError("x")])
def test_a_failing_init_leaves_the_model_and_generator_as_they_were(error):
    with torch.device("meta"):
        model, clean = Failing(error), Failing(None)
    before = meta_state(model)
    g = fi.Generator(0)
    fi.normal_(np.empty(3), generator=g)
    start = g.state
    with pytest.raises(type(error)):
        ft.materialize(model, g)                # raises after both Linear layers drew
    after = meta_state(model)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert all(t.device.type == "meta" for t in after.values())
    assert g.state == start
    model.error = None
    ft.materialize(model, g)                               # the retry, same generator
    assert all(p.device.type == "cpu" for p in model.parameters())
    check_linear(model.first)
    h = fi.Generator(0)
    fi.normal_(np.empty(3), generator=h)
    ft.materialize(clean, h)                               # as if it never failed
    assert g.state == h.state
    for (name, p), q in zip(model.named_parameters(), clean.parameters()):
        assert torch.equal(p, q), name


class DrawsInAThread(nn.Module):
    """A model whose init has another thread draw from the generator, then raises."""

    def __init__(self, generator):
        super().__init__()
        self.layer = nn.Linear(4, 4)
        self.generator = generator

    def reset_parameters(self):
        worker = threading.Thread(
            target=lambda: fi.normal_(np.empty(5), generator=self.generator))
        worker.start()
        worker.join()
        raise ValueError("after the thread drew")


def test_a_failed_materialize_keeps_the_calls_other_threads_took():
    g = fi.Generator(3)
    with torch.device("meta"):
        model = DrawsInAThread(g)
    start = g.state
    with pytest.raises(ValueError, match="thread drew"):
        ft.materialize(model, g)
    # Linear's weight and bias, then the thread's fill: none is handed out again.
    assert g.state["counter"] == start["counter"] + 3
    assert all(p.device.type == "meta" for p in model.parameters())


def test_a_failed_materialize_after_an_inner_rewind_puts_the_generator_back():
    """An init that draws, then runs an init_all that fails (and puts its own calls
    back), or a transaction that raises: the failed materialize puts the generator
    back to where it began."""
    def raises(target, generator=None):
        raise ValueError("a callable of the plan")

    def init(module, generator):
        fi.normal_(np.empty(4), generator=generator)
        fi.init_all([(np.empty(3), "normal_"), (np.empty(2), raises)], generator)

    with torch.device("meta"):
        model = nn.Linear(3, 3)
    g = fi.Generator(5)
    start = g.state
    with pytest.raises(ValueError, match="callable of the plan"):
        ft.materialize(model, g, init=init)
    assert g.state == start

    def init_with_a_transaction(module, generator):
        fi.normal_(np.empty(4), generator=generator)
        with generator.transaction():              # rolled back as it raises
            fi.normal_(np.empty(3), generator=generator)
            raise ValueError("inside a transaction")

    with pytest.raises(ValueError, match="inside a transaction"):
        ft.materialize(model, g, init=init_with_a_transaction)
    assert g.state == start


def test_a_deferred_model_failing_after_its_replay_puts_the_generator_back(monkeypatch):
    model = ft.deferred_init(lambda: nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 2)))
    g = fi.Generator(4)
    start = g.state

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(fi_deferred, "tensor_for", interrupted)
        with pytest.raises(KeyboardInterrupt):
            ft.materialize(model, g)
    assert g.state == start
    assert all(p.device.type == "meta" for p in model.parameters())
    ft.materialize(model, g)
    clean = ft.materialize(ft.deferred_init(
        lambda: nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 2))), fi.Generator(4))
    for p, q in zip(model.parameters(), clean.parameters()):
        assert torch.equal(p, q)


def test_an_unwritten_tensor_leaves_the_model_on_meta():
    with torch.device("meta"):
        m = WithBuffer()
    before = meta_state(m)
    with pytest.raises(RuntimeError, match="still on meta"):
        ft.materialize(m)
    assert all(meta_state(m)[k] is t for k, t in before.items())


class NanoGPT(nn.Module):
    """nanoGPT's tying: the head shares the embedding's Parameter."""

    def __init__(self, vocab=300, d=32):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def reset_parameters(self):
        self.apply(self._init_weights)


def test_tied_weights_stay_tied():
    eager = NanoGPT()
    with torch.device("meta"):
        model = NanoGPT()
    ft.materialize(model, fi.Generator(1))
    assert model.lm_head.weight is model.wte.weight
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in eager.parameters())
    assert_normal_std(model.wte.weight, 0.02)


def test_zero_element_and_cpu_made_tensors():
    class Legacy(nn.Module):
        def __init__(self):
            super().__init__()
            self.empty = nn.Linear(4, 0)
            self.mask_emb = nn.Parameter(torch.FloatTensor(1, 64))    # ignores the meta device
            self.reset_parameters()

        def reset_parameters(self):
            nn.init.uniform_(self.mask_emb, -1.0, 1.0)

    with torch.device("meta"):
        m = Legacy()
    assert m.mask_emb.device.type == "cpu"
    old = m.mask_emb
    with pytest.warns(UserWarning, match="zero-element"):
        ft.materialize(m, fi.Generator(2))
    assert m.empty.weight.shape == (0, 4) and m.mask_emb is not old
    g = fi.Generator(2)                 # Linear(4, 0)'s reset: two fastinit calls, no values
    with pytest.warns(UserWarning, match="zero-element"):
        fi.kaiming_uniform_(torch.empty(0, 4), a=math.sqrt(5), generator=g)
    fi.uniform_(torch.empty(0), generator=g)
    assert torch.equal(m.mask_emb.detach(), fi.uniform_(torch.empty(1, 64), -1.0, 1.0,
                                                        generator=g))


def test_cpu_made_tensor_nothing_writes_is_named():
    class Stale(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.mask = nn.Parameter(torch.FloatTensor(3))

    with torch.device("meta"):
        m = Stale()
    with pytest.raises(RuntimeError, match=re.escape("parameter 'mask' (Stale)")):
        ft.materialize(m)
    assert m.lin.weight.device.type == "meta"


def test_weight_norm_and_spectral_norm_as_an_eager_build():
    from torch.nn.utils import parametrizations, weight_norm as old_weight_norm

    def build():
        return nn.ModuleDict({
            "wn": parametrizations.weight_norm(nn.Conv1d(16, 32, 5), dim=2),
            "sn": parametrizations.spectral_norm(nn.Linear(40, 30)),
            "old": old_weight_norm(nn.Linear(24, 12)),
        })

    with warnings_ignored():
        eager = build()
        with torch.device("meta"):
            model = build()
        ft.materialize(model, fi.Generator(4))
    wn = model["wn"].parametrizations.weight
    # original1 is the conv's own default weight; original0 its norm along dim 2.
    check_linear(_conv_view(model["wn"], wn.original1))
    assert torch.equal(wn.original0, torch.norm_except_dim(wn.original1, 2, 2))
    assert torch.allclose(model["wn"].weight, wn.original1, rtol=1e-6, atol=1e-7)
    # Spectral norm: u and v from power iterations on the original weight, as torch's
    # constructor leaves them: unit vectors, v = normalize(W^T u), and u^T W v within
    # 10% of W's largest singular value (15 iterations from a random start).
    sn = model["sn"].parametrizations.weight
    w, u, v = sn.original.detach(), sn[0]._u, sn[0]._v
    assert abs(u.norm().item() - 1) < 1e-6 and abs(v.norm().item() - 1) < 1e-6
    assert torch.allclose(v, nn.functional.normalize(w.T @ u, dim=0), atol=1e-6)
    top = torch.linalg.matrix_norm(w, ord=2).item()
    assert 0.9 * top <= (u @ w @ v).item() <= top * (1 + 1e-5)
    assert eager["sn"].parametrizations.weight[0]._u.shape == u.shape
    check_linear(_linear_view(sn.original))
    # Hook-based weight_norm: weight_g = ||weight_v|| per row, weight recomputed.
    old = model["old"]
    assert torch.equal(old.weight_g, torch.norm_except_dim(old.weight_v, 2, 0))
    check_linear(_linear_view(old.weight_v))
    assert torch.allclose(old.weight, old.weight_v, rtol=1e-6, atol=1e-7)


class warnings_ignored:
    def __enter__(self):
        import warnings
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def _linear_view(weight):
    """A stand-in Linear whose weight is ``weight`` (for check_linear's bounds)."""
    m = nn.Module()
    m.weight, m.bias = weight, None
    return m


def _conv_view(conv, weight):
    m = _linear_view(weight)
    m.bias = conv.bias
    return m


def test_stateful_parametrization_is_refused_with_the_model_unchanged():
    class Scaled(nn.Module):
        def __init__(self, weight):
            super().__init__()
            self.register_buffer("scale", weight.abs().mean())

        def forward(self, x):
            return x * self.scale

    from torch.nn.utils import parametrize
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(5, 5))
        parametrize.register_parametrization(m[0], "weight", Scaled(m[0].weight))
    before = meta_state(m)
    with pytest.raises(RuntimeError, match=r"Scaled of '0\.weight'.*patch_init"):
        ft.materialize(m)
    assert all(meta_state(m)[k] is t for k, t in before.items())


def test_hugging_face_fallback_keeps_what_init_weights_wrote():
    # RegNet-style: _init_weights writes a layer's weight and not its bias; the bias
    # gets the layer's own reset, the weight keeps the library's law.
    transformers = pytest.importorskip("transformers")

    class Tiny(transformers.PreTrainedModel):
        config_class = transformers.PretrainedConfig

        def __init__(self, config):
            super().__init__(config)
            self.conv = nn.Conv2d(32, 64, 1)
            self.post_init()

        def _init_weights(self, module):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    with torch.device("meta"):
        model = Tiny(transformers.PretrainedConfig())
    ft.materialize(model, fi.Generator(5))
    assert_normal_std(model.conv.weight, math.sqrt(2 / 64))
    assert_uniform(model.conv.bias, 1 / math.sqrt(32))
