"""One rank of tests/test_torch_distributed.py's DTensor tests: fills DTensors of
several placements with fastinit and saves, on rank 0, each one's full_tensor() and
each rank's generator counter. Run as: python dtensor_worker.py RANK WORLD PORT OUT
MESH, MESH being the mesh shape, e.g. "2" or "2x2"."""

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

import fastinit
from distributed_worker import finish

# (name, global shape, placements per mesh dimension, the fill): each fill takes the
# generator and the DTensor. The same list, with plain tensors, is the one-process fill.
CASES = [
    ("uniform-rows", (37, 5), ("S0",), lambda t, g: fastinit.uniform_(t, -1.0, 2.0, g)),
    ("normal-cols", (6, 4099), ("S1",), lambda t, g: fastinit.normal_(t, 0.5, 2.0, g)),
    ("trunc-replicated", (33, 7), ("R",), lambda t, g: fastinit.trunc_normal_(
        t, 0.0, 0.02, -0.04, 0.04, g)),
    ("kaiming-uneven", (5, 3, 3, 3), ("S0",), lambda t, g: fastinit.kaiming_uniform_(
        t, a=5 ** 0.5, generator=g)),
    ("xavier-bf16", (64, 33), ("S1",), lambda t, g: fastinit.xavier_normal_(t, 1.5, g)),
    ("empty-shards", (2, 9), ("S0",), lambda t, g: fastinit.normal_(t, generator=g)),
    ("orthogonal", (24, 10), ("S0",), lambda t, g: fastinit.orthogonal_(t, 2.0, g)),
    ("sparse", (30, 12), ("S1",), lambda t, g: fastinit.sparse_(t, 0.3, 0.5, g)),
    ("eye", (9, 13), ("S1",), lambda t, g: fastinit.eye_(t)),
    ("dirac", (6, 4, 3, 3), ("S0",), lambda t, g: fastinit.dirac_(t, 2)),
    ("generator-fill", (4100,), ("S0",), lambda t, g: g.normal_(t)),
    ("plan", (40, 9), ("S0",), lambda t, g: fastinit.init_all(
        [(t, "kaiming_normal_", {"mode": "fan_out"})], g)),
]
MESH_2D_PLACEMENTS = {"S0": ("S0", "S1"), "S1": ("S1", "S0"), "R": ("R", "S0")}


def build_model():
    return torch.nn.Sequential(torch.nn.Linear(9, 7), torch.nn.Embedding(11, 5),
                               torch.nn.LayerNorm(5))


def build_mlp():
    return torch.nn.Sequential(torch.nn.Linear(8, 18), torch.nn.ReLU(), torch.nn.Linear(18, 8))


def sharded_models():
    """(name, builder, "fsdp" or a tensor-parallel plan) of the models materialized
    sharded."""
    models = [("fsdp-torch", build_model, "fsdp"),
              ("tp-mlp", build_mlp, {"0": "col", "2": "row"}),
              ("fsdp-encoder", lambda: torch.nn.TransformerEncoderLayer(
                  16, 4, dim_feedforward=24, batch_first=True), "fsdp")]
    try:
        import transformers
    except ImportError:
        return models
    transformers.logging.set_verbosity_error()
    gpt2 = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                   vocab_size=97)
    llama = transformers.LlamaConfig(hidden_size=32, intermediate_size=48,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, vocab_size=97)
    layer = "model.layers.*."
    llama_plan = {layer + "self_attn.q_proj": "col", layer + "self_attn.k_proj": "col",
                  layer + "self_attn.v_proj": "col", layer + "self_attn.o_proj": "row",
                  layer + "mlp.gate_proj": "col", layer + "mlp.up_proj": "col",
                  layer + "mlp.down_proj": "row"}
    return models + [("fsdp-gpt2", lambda: transformers.GPT2LMHeadModel(gpt2), "fsdp"),
                     ("fsdp-llama", lambda: transformers.LlamaForCausalLM(llama), "fsdp"),
                     ("tp-llama", lambda: transformers.LlamaForCausalLM(llama), llama_plan)]


def tied_groups(model):
    groups = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return sorted(",".join(sorted(g)) for g in groups.values() if len(g) > 1)


def placements(codes):
    return [Replicate() if c == "R" else Shard(int(c[1])) for c in codes]


def main():
    rank, world, port, out, mesh_shape = sys.argv[1:6]
    rank, world = int(rank), int(world)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    shape = tuple(int(n) for n in mesh_shape.split("x"))
    mesh = init_device_mesh("cpu", shape, mesh_dim_names=("dp", "tp")[:len(shape)])
    g = fastinit.Generator(11)
    results = {}
    for name, global_shape, codes, fill in CASES:
        codes = MESH_2D_PLACEMENTS[codes[0]] if len(shape) == 2 else codes
        codes = tuple(c if c == "R" or int(c[1]) < len(global_shape) else "R" for c in codes)
        dtype = torch.bfloat16 if "bf16" in name else torch.float32
        t = distribute_tensor(torch.full(global_shape, 7.0, dtype=dtype), mesh,
                              placements(codes))
        fill(t, g)
        results[name] = t.full_tensor().float().numpy()
    # FSDP2 over a 1-D mesh: meta build, fully_shard, to_empty, then the modules' own
    # reset_parameters inside patch_init.
    if len(shape) == 1:
        import fastinit.torch as ft
        from torch.distributed.fsdp import fully_shard
        with torch.device("meta"):
            model = build_model()
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        state = torch.get_rng_state()
        with ft.patch_init(fastinit.Generator(5)):
            for m in model:
                m.reset_parameters()
        results["rng_untouched"] = np.array(int(torch.equal(state, torch.get_rng_state())))
        # fastinit.torch.reset_parameters: torch's default scheme in one init_all pass.
        with torch.device("meta"):
            plain = build_model()
        fully_shard(plain, mesh=mesh)
        plain.to_empty(device="cpu")
        ft.reset_parameters(plain, fastinit.Generator(6))
        for name, p in plain.named_parameters():
            results[f"reset.{name}"] = p.full_tensor().detach().numpy()
        for name, p in model.named_parameters():
            results[f"fsdp.{name}"] = p.full_tensor().detach().numpy()
        # materialize: FSDP2 and tensor parallelism over torch modules and tiny Hugging
        # Face models; rank 0 saves every parameter's full tensor and every buffer.
        from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                                       parallelize_module)
        for name, build, shard in sharded_models():
            with torch.device("meta"):
                model = build()
            if shard == "fsdp":
                fully_shard(model, mesh=mesh)
            else:
                parallelize_module(model, mesh, {k: ColwiseParallel() if v == "col" else
                                                 RowwiseParallel() for k, v in shard.items()})
            state = torch.get_rng_state()
            ft.materialize(model, fastinit.Generator(7))
            results[f"{name}.rng_untouched"] = np.array(
                int(torch.equal(state, torch.get_rng_state())))
            for key, p in model.named_parameters(remove_duplicate=False):
                whole = p.full_tensor() if isinstance(p, DTensor) else p    # (TP: not all)
                results[f"{name}.{key}"] = whole.detach().numpy()
            for key, b in model.named_buffers():
                results[f"{name}.buffer.{key}"] = b.detach().numpy()
            results[f"{name}.tied"] = np.array(tied_groups(model))
    if len(shape) == 2:                      # FSDP2 over tensor parallelism: strided shards
        import fastinit.torch as ft
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                                       parallelize_module)
        with torch.device("meta"):
            model = build_mlp()
        parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
        fully_shard(model, mesh=mesh["dp"])
        ft.materialize(model, fastinit.Generator(7))
        for key, p in model.named_parameters():
            results[f"fsdp-tp.{key}"] = p.full_tensor().detach().numpy()
        # A strided shard that leaves a rank pieces of several blocks: refused.
        from torch.distributed.tensor.placement_types import _StridedShard
        odd = DTensor.from_local(torch.zeros(3, 2), mesh, [_StridedShard(0, split_factor=3),
                                                           Shard(0)], run_check=False)
        try:
            fastinit.normal_(odd, generator=fastinit.Generator(0))
            results["strided_refused"] = np.array(0)
        except NotImplementedError:
            results["strided_refused"] = np.array(1)
    # What is refused: a Partial placement, before any write or call.
    p = DTensor.from_local(torch.zeros(4, 4), mesh, [Partial()] * len(shape))
    before = g.state["counter"]
    try:
        fastinit.normal_(p, generator=g)
        results["partial_refused"] = np.array(0)
    except ValueError as exc:
        results["partial_refused"] = np.array(int("Partial" in str(exc)
                                                  and g.state["counter"] == before))
    finish(out, rank, world, g, results)


if __name__ == "__main__":
    main()
