"""Hugging Face architectures built four ways and compared tensor by tensor: plainly
(``from_config`` on the CPU, torch's generator), under ``fastinit.torch.patch_init``,
on the meta device then ``fastinit.torch.materialize``, and by
``fastinit.torch.deferred_init`` then ``materialize``.

Every model type in transformers' auto mappings that builds offline from a small
config is tried (``python -m pytest -m slow tests/test_hf_sweep.py -s`` prints the
table). Checks, per architecture, against the plain build:

- the same parameter and buffer names, shapes and dtypes; the same tied groups;
- buffers exact; parameters of two or more elements whose plain values are all
  equal (ones, zeros, a constant such as CLIP's logit_scale) exact;
- other parameters of at least 64 elements by their law: a two-sample
  Kolmogorov-Smirnov test against the plain build's values at p > 1e-6 (with
  thousands of tensors, a false alarm about 1 time in 300), after setting aside
  rows that are exactly zero in the plain build (padding rows), which must be zero
  in the others too;
- every value finite, and torch's generator untouched by the fastinit builds;
- deferred_init + materialize against the patch_init build with the same seed: the
  same tensors bit for bit (the same names, shapes, dtypes and ties).
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from scipy import stats  # noqa: E402

import fastinit as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402

pytestmark = pytest.mark.slow

SMALL = {
    "hidden_size": 64, "d_model": 64, "n_embd": 64, "dim": 64, "embed_dim": 64,
    "intermediate_size": 128, "ffn_dim": 128, "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128, "d_ff": 128, "n_inner": 128, "hidden_dim": 128,
    "num_hidden_layers": 2, "n_layer": 2, "num_layers": 2, "n_layers": 2,
    "encoder_layers": 2, "decoder_layers": 2, "num_decoder_layers": 2,
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "num_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 512, "max_position_embeddings": 128, "n_positions": 128,
    "num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2,
    "moe_intermediate_size": 64, "shared_expert_intermediate_size": 64,
    "image_size": 32, "patch_size": 8, "num_channels": 3, "state_size": 8,
    "head_dim": 16, "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8, "v_head_dim": 16, "conv_kernel": 4, "expand": 2,
}


def _small_config(model_type):
    config = transformers.AutoConfig.for_model(model_type)
    for key, value in SMALL.items():
        if hasattr(config, key) and isinstance(getattr(config, key), int) and \
                not isinstance(getattr(config, key), bool):
            setattr(config, key, value)
    if hasattr(config, "layer_types") and isinstance(config.layer_types, list):
        layers = getattr(config, "num_hidden_layers", len(config.layer_types))
        config.layer_types = (config.layer_types * layers)[:layers]
    return config


def _model_types():
    names = transformers.models.auto.modeling_auto
    out = {}
    for mapping in (names.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                    names.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
                    names.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
                    names.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
                    names.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES, names.MODEL_MAPPING_NAMES):
        for model_type, cls_name in mapping.items():
            if model_type not in out and isinstance(cls_name, str):
                out[model_type] = cls_name
    return sorted(out.items())


def _build(model_type, cls_name):
    cls = getattr(transformers, cls_name, None)
    if cls is None:
        return None
    try:
        config = _small_config(model_type)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device("meta"):                  # its size first, without memory
                size = sum(p.numel() for p in cls(config).parameters())
            if size > 30_000_000:
                return None
            torch.manual_seed(0)
            model = cls(config)
    except Exception:                                   # noqa: BLE001 (this type is skipped)
        return None
    return cls, config, model


def _tied_groups(model):
    groups = {}
    for m_name, m in model.named_modules(remove_duplicate=False):
        for name, p in m._parameters.items():
            if p is not None:
                groups.setdefault(id(p), set()).add(f"{m_name}.{name}" if m_name else name)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _compare(plain, other):
    """The failures of ``other`` against ``plain``, as strings."""
    failures = []
    if _tied_groups(plain) != _tied_groups(other):
        failures.append("tied groups differ")
    ours = dict(other.named_parameters())
    for name, p in plain.named_parameters():
        q = ours.get(name)
        if q is None or q.shape != p.shape or q.dtype != p.dtype:
            failures.append(f"{name}: missing or reshaped")
            continue
        a, b = p.detach().double().flatten(), q.detach().double().flatten()
        if not torch.isfinite(b).all():
            failures.append(f"{name}: not finite")
        elif a.numel() > 1 and (a == a[0]).all():
            if not torch.equal(a, b):
                failures.append(f"{name}: constant {a[0].item():g} not kept")
        elif a.numel() >= 64:
            rows_a, rows_b = p.detach().double(), q.detach().double()
            if rows_a.dim() == 2:
                zero = (rows_a == 0).all(dim=1)
                if not (rows_b[zero] == 0).all():
                    failures.append(f"{name}: zero rows not zero")
                a, b = rows_a[~zero].flatten(), rows_b[~zero].flatten()
            if stats.ks_2samp(a.numpy(), b.numpy()).pvalue <= 1e-6:
                failures.append(f"{name}: law differs (KS)")
    buffers = dict(other.named_buffers())
    for name, buf in plain.named_buffers():
        if name not in buffers or not torch.equal(buffers[name], buf):
            failures.append(f"buffer {name} differs")
    return failures


def _sweep_one(model_type, cls_name):
    built = _build(model_type, cls_name)
    if built is None:
        return None
    cls, config, plain = built
    row = {"type": model_type, "params": sum(p.numel() for p in plain.parameters())}
    untouched = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.get_rng_state()
        with ft.patch_init(fi.Generator(1)):
            patched = cls(config)
        untouched.append(torch.equal(state, torch.get_rng_state()))
        row["patch_init"] = _compare(plain, patched)
        with torch.device("meta"):              # (a constructor may draw here, as plainly)
            meta = cls(config)
        state = torch.get_rng_state()
        try:
            ft.materialize(meta, fi.Generator(1))
            row["materialize"] = _compare(plain, meta)
        except Exception as exc:                        # noqa: BLE001 (reported in the table)
            row["materialize"] = [f"raised {type(exc).__name__}: {str(exc)[:150]}"]
        untouched.append(torch.equal(state, torch.get_rng_state()))
        state = torch.get_rng_state()
        try:
            deferred = ft.deferred_init(cls, config)
            ft.materialize(deferred, fi.Generator(1))
            row["deferred"] = _bitwise(patched, deferred)
        except Exception as exc:                        # noqa: BLE001 (reported in the table)
            row["deferred"] = [f"raised {type(exc).__name__}: {str(exc)[:150]}"]
        untouched.append(torch.equal(state, torch.get_rng_state()))
    row["torch_rng_untouched"] = all(untouched)
    return row


def _bitwise(expected, other):
    """The failures of ``other`` against ``expected``, bit for bit."""
    failures = [] if _tied_groups(expected) == _tied_groups(other) else ["tied groups differ"]
    theirs = {**dict(other.named_parameters()), **dict(other.named_buffers())}
    for name, t in [*expected.named_parameters(), *expected.named_buffers()]:
        u = theirs.get(name)
        if u is None or u.shape != t.shape or u.dtype != t.dtype or u.device != t.device:
            failures.append(f"{name}: missing, reshaped or elsewhere")
        elif not torch.equal(t.detach().flatten().view(torch.uint8),
                             u.detach().flatten().view(torch.uint8)):
            failures.append(f"{name}: bits differ")
    return failures


def test_hugging_face_sweep():
    rows = [r for r in (_sweep_one(t, c) for t, c in _model_types()) if r is not None]
    print("\n| model type | parameters | patch_init | materialize | deferred_init |")
    print("| --- | ---: | --- | --- | --- |")
    for r in rows:
        cells = [("ok" if not r[k] else "; ".join(r[k][:3]))
                 for k in ("patch_init", "materialize", "deferred")]
        print(f"| {r['type']} | {r['params']:,} | {' | '.join(cells)} |")
    built = len(rows)
    patched_ok = sum(not r["patch_init"] for r in rows)
    materialized_ok = sum(not r["materialize"] for r in rows)
    deferred_ok = sum(not r["deferred"] for r in rows)
    print(f"\nbuilt {built}; patch_init matches {patched_ok}; materialize matches "
          f"{materialized_ok}; deferred_init + materialize equals patch_init bit for bit "
          f"on {deferred_ok}")
    assert built >= 30
    assert all(r["torch_rng_untouched"] for r in rows)
    assert all(not r["patch_init"] for r in rows), [r for r in rows if r["patch_init"]]
    loud = "raised RuntimeError: materialize"
    refused = [r for r in rows if r["materialize"]
               and not all(f.startswith(loud) for f in r["materialize"])]
    assert not refused, refused
    assert all(not r["deferred"] for r in rows), [(r["type"], r["deferred"]) for r in rows
                                                  if r["deferred"]]
