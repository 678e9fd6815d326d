"""fastinit.torch.deferred_init: a model built without memory, its construction
recorded, then materialized by replaying the record through fastinit.

Each model is built three ways and compared:

- plainly on the CPU (torch's generator): the reference for the law. Tensors whose
  values the construction fixes (constants, buffers, zeros and ones) must be equal
  exactly; drawn tensors are compared by their law (tolerances below);
- under ``fastinit.torch.patch_init(Generator(s))`` on the CPU: the deferred model
  materialized with ``Generator(s)`` must equal it bit for bit (the record replays the
  same calls in the same order; draws it skips advance the generator as they would);
- ``deferred_init`` then ``materialize``; torch's generator untouched by both steps.

Tolerances, set from the sampling error before looking at the results: a mean within
6 std/sqrt(n) and a standard deviation within 6 std/sqrt(2n) (probability about 2e-9
each of a false alarm); two-sample Kolmogorov-Smirnov tests at p > 1e-6; a uniform's
largest magnitude within its bound and above bound * (1 - 10/n).
"""

import math
import threading

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402
from fastinit import _deferred  # noqa: E402


def named_tensors(model):
    return {**dict(model.named_parameters(remove_duplicate=False)),
            **dict(model.named_buffers(remove_duplicate=False))}


def tied_groups(model):
    groups = {}
    for name, t in named_tensors(model).items():
        groups.setdefault(id(t), set()).add(name)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def assert_bitwise(expected, other):
    assert tied_groups(expected) == tied_groups(other)
    ours = named_tensors(other)
    for name, t in named_tensors(expected).items():
        u = ours[name]
        assert u.device.type == "cpu" and u.dtype == t.dtype and u.shape == t.shape, name
        assert type(u) is type(t) and u.requires_grad == t.requires_grad, name
        assert torch.equal(t.detach().flatten().view(torch.uint8),
                           u.detach().flatten().view(torch.uint8)), name


def assert_same_law(plain, again, other):
    """``other`` against two plain builds with different seeds: what the construction
    fixes (equal in both) exact, drawn tensors by their law, as the module docstring
    says."""
    ours, second = named_tensors(other), named_tensors(again)
    for name, p in named_tensors(plain).items():
        q = ours[name]
        a, b = p.detach().double().flatten(), q.detach().double().flatten()
        assert torch.isfinite(b).all(), name
        if torch.equal(p, second[name]):
            assert torch.equal(p, q), name
        elif a.numel() >= 64:
            assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-6, name


def three_ways(build, seed=0):
    """(plain, patched, deferred) builds; the deferred one checked bit for bit against
    the patched one and by its law against the plain one, torch's generator untouched
    by its recording and by its replay."""
    torch.manual_seed(seed + 1)
    again = build()
    torch.manual_seed(seed)
    plain = build()
    with ft.patch_init(fi.Generator(seed)):
        patched = build()
    state = torch.get_rng_state()
    deferred = ft.deferred_init(build)
    assert all(t.device.type == "meta" for t in named_tensors(deferred).values())
    assert torch.equal(state, torch.get_rng_state())
    assert ft.materialize(deferred, fi.Generator(seed)) is deferred
    assert torch.equal(state, torch.get_rng_state())
    assert _deferred.records_of(deferred) == []
    assert_bitwise(patched, deferred)
    assert_same_law(plain, again, deferred)
    return plain, patched, deferred


def assert_uniform(t, bound):
    x = t.detach().double().flatten().numpy()
    n = x.size
    assert np.abs(x).max() <= bound and np.abs(x).max() >= bound * (1 - 10 / n)


def assert_normal_std(t, std):
    x = t.detach().double().flatten()
    n = x.numel()
    assert abs(x.mean().item()) <= 6 * std / math.sqrt(n)
    assert abs(x.std().item() - std) <= 6 * std / math.sqrt(2 * n)


# --------------------------------------------------------------------------------------
# What the issue names: nn.Transformer, a research module, CLIP, weight norm, HF models
# --------------------------------------------------------------------------------------

def test_transformer_gets_xavier_in_every_matrix():
    d, ff = 64, 256
    plain, _, deferred = three_ways(lambda: nn.Transformer(d, 4, 2, 2, ff, batch_first=True))
    matrices = [(n, p) for n, p in deferred.named_parameters() if p.dim() > 1]
    assert len(matrices) == 2 * 4 + 2 * 6      # encoder layers 4 matrices, decoder 6
    for name, p in matrices:
        fan_out, fan_in = p.shape
        assert_uniform(p, math.sqrt(6 / (fan_in + fan_out)))
    # out_proj: xavier's bound, not Linear's default kaiming_uniform_(a=sqrt(5)) bound
    out_proj = deferred.encoder.layers[0].self_attn.out_proj.weight
    assert out_proj.abs().max() > 1 / math.sqrt(d)


class Research(nn.Module):
    """Constructor-only initialization, as research code writes it."""

    def __init__(self, d=96, vocab=200, scale=0.02):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab, d) * scale)
        self.w = nn.Parameter(torch.randn(d, d) / math.sqrt(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.gamma = nn.Parameter(torch.full((d,), 0.5))
        with torch.no_grad():
            self.gamma.mul_(3).add_(-0.25)                # an in-place op after creation
            self.w[0].zero_()                             # on a view
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed                     # a tie
        self.register_buffer("pos", torch.arange(d).float() / d)
        self.temperature = nn.Parameter(torch.tensor(0.07).log().neg())


def test_research_module():
    plain, _, deferred = three_ways(Research)
    assert deferred.head.weight is deferred.embed
    assert_normal_std(deferred.embed, 0.02)
    assert_normal_std(deferred.w[1:], 1 / math.sqrt(96))
    assert (deferred.w[0] == 0).all()
    assert (deferred.gamma == 1.25).all() and (deferred.bias == 0).all()
    assert torch.equal(deferred.pos, torch.arange(96).float() / 96)
    assert deferred.temperature.item() == pytest.approx(-math.log(0.07), rel=1e-6)


def test_clip_logit_scale():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, vocab_size=99),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8))
    plain, _, deferred = three_ways(lambda: transformers.CLIPModel(config))
    assert deferred.logit_scale.item() == pytest.approx(config.logit_scale_init_value)
    assert torch.equal(deferred.logit_scale, plain.logit_scale)


def test_weight_norm_conv():
    def build():
        return nn.Sequential(
            nn.utils.parametrizations.weight_norm(nn.Conv1d(16, 32, 5)),
            nn.utils.weight_norm(nn.Conv1d(32, 16, 3)),      # the old, hook-based API
            nn.utils.parametrizations.spectral_norm(nn.Linear(16, 24)))
    with pytest.warns(FutureWarning):
        plain, _, deferred = three_ways(build)
    new, old, spectral = deferred
    g, v = new.parametrizations.weight.original0, new.parametrizations.weight.original1
    assert torch.equal(g, torch.norm_except_dim(v, 2, 0))     # as right_inverse makes it
    assert_uniform(v, 1 / math.sqrt(16 * 5))              # the plain weight's own init
    assert old.weight.device.type == "cpu"                # the attribute the hook computes
    assert torch.equal(old.weight, torch._weight_norm(old.weight_v, old.weight_g, 0))
    u = spectral.parametrizations.weight[0]._u
    assert u.norm().item() == pytest.approx(1, rel=1e-5)
    x = torch.randn(2, 16, 20)
    assert torch.isfinite(deferred[1](deferred[0](x))).all()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_hugging_face_from_config(kind):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    if kind == "gpt2":
        config = transformers.GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=64,
                                         vocab_size=1000)
    else:
        config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2, vocab_size=1000)
    auto = transformers.AutoModelForCausalLM
    plain, _, deferred = three_ways(lambda: auto.from_config(config))
    for name, p in deferred.named_parameters():
        if name.endswith("bias"):
            assert (p == 0).all(), name
        elif "norm" in name or "ln_" in name:
            assert (p == 1).all(), name
        elif kind == "gpt2" and name.endswith("c_proj.weight"):
            assert_normal_std(p, 0.02 / math.sqrt(2 * config.n_layer))
        else:
            assert_normal_std(p, 0.02)                      # not torch's default init
    if kind == "gpt2":
        assert deferred.lm_head.weight is deferred.transformer.wte.weight
    ids = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = deferred(input_ids=ids, labels=ids).loss.item()
    assert abs(loss - math.log(1000)) <= 0.02 * math.log(1000)


def test_skipped_draws_advance_the_generator_as_the_eager_build_draws():
    # Linear's own kaiming_uniform_ is overwritten whole by GPT-2's normal_: the replay
    # skips it and advances the generator by its one call.
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=16,
                                     vocab_size=50)
    model = ft.deferred_init(transformers.GPT2LMHeadModel, config)
    record = _deferred.records_of(model)[0]
    assert _deferred._dead_draws(record)
    eager_gen, gen = fi.Generator(4), fi.Generator(4)
    with ft.patch_init(eager_gen):
        transformers.GPT2LMHeadModel(config)
    ft.materialize(model, gen)
    assert gen.state == eager_gen.state


# --------------------------------------------------------------------------------------
# What is recorded
# --------------------------------------------------------------------------------------

def test_inits_that_do_nothing_on_meta_are_recorded_whole():
    def build():
        m = nn.Sequential(nn.Linear(12, 10), nn.Conv2d(4, 4, 3), nn.Linear(10, 30))
        nn.init.orthogonal_(m[0].weight, gain=2.0)
        nn.init.trunc_normal_(m[0].bias, std=0.02)
        nn.init.dirac_(m[1].weight)
        nn.init.sparse_(m[2].weight, 0.5)
        return m
    plain, _, deferred = three_ways(build)
    w = deferred[0].weight.double()
    assert torch.allclose(w @ w.T, 4 * torch.eye(10, dtype=torch.float64), atol=1e-5)
    assert torch.equal(deferred[1].weight, plain[1].weight)
    assert ((deferred[2].weight == 0).sum(0) == 15).all()
    assert deferred[0].bias.abs().max() <= 0.04


def test_values_read_during_construction_are_computed_when_no_draw_is_behind_them():
    class Rates(nn.Module):
        def __init__(self):
            super().__init__()
            rates = [x.item() for x in torch.linspace(0, 0.5, 3)]
            self.rates = rates + torch.linspace(0, 1, 2).tolist()
            self.n = int(torch.ones(4).sum())
            self.table = torch.arange(3.0).numpy()
            self.w = nn.Parameter(torch.full((4,), float(len(rates))))
    m = ft.deferred_init(Rates)
    assert m.rates == [0.0, 0.25, 0.5, 0.0, 1.0] and m.n == 4
    assert m.table.tolist() == [0.0, 1.0, 2.0] and m.w.is_meta
    ft.materialize(m)
    assert (m.w == 3).all()


def test_construction_sees_the_cpu():
    seen = {}

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))
            seen["device"] = self.w.device
            seen["is_meta"] = self.w.is_meta
            seen["empty"] = torch.tensor([]).device            # Hugging Face's own test
            self.b = nn.Parameter(torch.ones(3, device=self.w.device) + self.w.cpu())
    m = ft.deferred_init(Probe)
    assert seen == {"device": torch.device("cpu"), "is_meta": False,
                    "empty": torch.device("cpu")}
    assert m.w.is_meta and m.b.is_meta                       # (outside it, as they are)
    ft.materialize(m)
    assert (m.b == 1).all()


def test_draws_given_a_torch_generator_replay_torch_values():
    class Seeded(nn.Module):
        def __init__(self, g):
            super().__init__()
            self.a = nn.Parameter(torch.randn(5, generator=g))
            self.b = nn.Parameter(torch.empty(5).uniform_(generator=g))
    g = torch.Generator().manual_seed(3)
    m = ft.deferred_init(Seeded, g)
    ft.materialize(m)
    eager = Seeded(torch.Generator().manual_seed(3))
    assert torch.equal(m.a, eager.a) and torch.equal(m.b, eager.b)


def test_tensors_sharing_memory_share_it_after_materialize():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.randn(6, 4))
            self.b = nn.Parameter(self.a.data[2:])            # a view of a's memory
            self.register_buffer("c", self.a.data.view(-1))
    m = ft.deferred_init(Shared)
    ft.materialize(m, fi.Generator(0))
    assert m.b.data_ptr() == m.a.data_ptr() + 2 * 4 * 4
    assert m.c.data_ptr() == m.a.data_ptr()
    with torch.no_grad():
        m.a[3, 1] = 7
    assert m.b[1, 1] == 7 and m.c[13] == 7


def test_draws_into_negative_and_conjugate_views_keep_their_sign():
    # A draw into w.conj().imag (a negative-bit view) or w.conj() writes w's memory
    # negated. The record knew tensors by storage and layout only, so the replay wrote
    # +z where the eager build (and torch) writes -z.
    class Views(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(8, 6, dtype=torch.complex64))
            self.b = nn.Parameter(torch.zeros(8, 6, dtype=torch.complex64))
            nn.init.uniform_(self.a.data.conj().imag, 0.5, 1.0)
            self.b.data.conj().normal_()
    _, patched, deferred = three_ways(Views)
    assert (patched.a.imag <= -0.5).all() and (deferred.a.imag <= -0.5).all()
    assert not torch.equal(patched.b, patched.b.conj())


def test_block_form_nesting_and_patch_init_inside():
    with ft.deferred_init():
        a = nn.Linear(6, 6)
        b = ft.deferred_init(nn.Linear, 6, 3)               # inside: part of the block
    model = nn.Sequential(a, b)

    def inner():
        with ft.patch_init(fi.Generator(99)):               # recorded, not drawn here
            return nn.Linear(3, 3)
    model.append(ft.deferred_init(inner))
    assert all(p.is_meta for p in model.parameters())
    ft.materialize(model, fi.Generator(5))
    with ft.patch_init(fi.Generator(5)):
        eager = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 3))
    with ft.patch_init(fi.Generator(5)) as g:
        g.advance(4)                                        # the block's four draws
        eager.append(nn.Linear(3, 3))
    assert_bitwise(eager, model)


def test_other_threads_build_as_usual_while_one_records():
    out = {}
    started, done = threading.Event(), threading.Event()

    def other():
        started.wait(10)
        out["t"] = torch.zeros(3)
        out["lin"] = nn.Linear(2, 2)
        done.set()

    thread = threading.Thread(target=other)
    thread.start()

    def build():
        started.set()
        done.wait(10)
        return nn.Linear(2, 2)
    m = ft.deferred_init(build)
    thread.join(10)
    assert out["t"].device.type == "cpu" and out["lin"].weight.device.type == "cpu"
    assert m.weight.is_meta and _deferred.DEFERRED_ATTRIBUTE not in out["lin"].__dict__


def test_record_holds_no_parameter_data():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = transformers.LlamaConfig(hidden_size=2048, intermediate_size=5632,
                                      num_hidden_layers=4, num_attention_heads=16,
                                      vocab_size=32000)
    model = ft.deferred_init(transformers.LlamaForCausalLM, config)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert params > 1e9 and all(p.is_meta for p in model.parameters())
    record, = _deferred.records_of(model)
    held = sum(x.numel() * x.element_size() for e in record.entries
               for x in torch.utils._pytree.tree_leaves((e.args, e.kwargs))
               if isinstance(x, torch.Tensor))
    held += sum(s.nbytes() for s in record.storages if s.device.type != "meta")
    assert held < 1e5                                       # constants only


# --------------------------------------------------------------------------------------
# What is refused, and that a refusal changes nothing
# --------------------------------------------------------------------------------------

def _hooks():
    module = nn.modules.module
    return (len(module._global_parameter_registration_hooks),
            len(module._global_buffer_registration_hooks),
            len(module._global_module_registration_hooks))


class ReadsADraw(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4))
        if self.w.sum() > 0:                 # a Python decision on random values
            self.w.data.neg_()


class DrawsPoisson(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.poisson(torch.ones(4)))


@pytest.mark.parametrize("cls, message", [
    (ReadsADraw, r"Tensor.__bool__ reads the values of the bool tensor of shape \(\) made "
                 r"by aten.gt.Scalar, which come from the draw torch.randn"),
    (DrawsPoisson, r"aten.poisson.default draws from torch's generator and is not among"),
])
def test_refused_construction_changes_nothing(cls, message):
    state, hooks = torch.get_rng_state(), _hooks()
    with pytest.raises(RuntimeError, match=message):
        ft.deferred_init(cls)
    assert torch.equal(state, torch.get_rng_state()) and _hooks() == hooks
    assert torch._C._len_torch_function_stack() == 0
    assert not torch._C._len_torch_dispatch_stack()
    assert torch.zeros(2).device.type == "cpu" and not _deferred._torch_patch.recording()


def test_materialize_refuses_before_allocating_and_changes_nothing():
    model = ft.deferred_init(nn.Linear, 4, 4)
    model.extra = nn.Parameter(torch.empty(3, device="meta"))
    gen = fi.Generator(0)
    with pytest.raises(RuntimeError, match="parameter 'extra' is on the meta device but "
                                           "was not made inside deferred_init"):
        ft.materialize(model, gen)
    assert model.weight.is_meta and gen.state == fi.Generator(0).state
    with pytest.raises(ValueError, match="init= applies to models built on the meta"):
        ft.materialize(model, gen, init=ft.reset_parameters)
    del model.extra
    ft.materialize(model, gen)
    assert model.weight.device.type == "cpu"


def test_interrupted_replay_leaves_the_model_and_generator_as_they_were(monkeypatch):
    model = ft.deferred_init(lambda: nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)))
    gen = fi.Generator(1)
    calls = []
    real = _deferred._bind_outputs

    def interrupt(entry, out, env):
        calls.append(entry)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(entry, out, env)
    monkeypatch.setattr(_deferred, "_bind_outputs", interrupt)
    with pytest.raises(KeyboardInterrupt):
        ft.materialize(model, gen)
    assert all(p.is_meta for p in model.parameters())
    assert gen.state == fi.Generator(1).state
    monkeypatch.setattr(_deferred, "_bind_outputs", real)
    ft.materialize(model, gen)
    with ft.patch_init(fi.Generator(1)):
        eager = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    assert_bitwise(eager, model)


def test_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        ft.deferred_init(3)
    with pytest.raises(TypeError, match="takes arguments only with a function"):
        ft.deferred_init(None, 3)
