"""One rank of the bench's sharded section (``python -m fastinit._bench_sharded RANK
WORLD PORT SIZE``): a Llama from config built on the meta device, FSDP2-sharded
(``fully_shard`` on every decoder layer and the root) over gloo ranks on this
machine, then initialized twice:

- fastinit: ``fastinit.torch.materialize(model, Generator(0))``;
- torch: ``to_empty(device="cpu")``, ``torch.manual_seed(0)``, the model's own
  ``init_weights()`` (torch's generator, through DTensor's random ops).

Each is timed (the slowest rank's time; the two interleaved, ``REPEAT`` rounds, the
median: on virtual machines that hand freed memory back to their host, first touch
varies a lot from round to round), and the last round's gathered parameters are
compared, one at a time, with the one-process model made the same way (fastinit:
meta and ``materialize``; torch: ``from_config`` after ``torch.manual_seed(0)``).
Rank 0 prints one JSON line.
"""

import gc
import json
import os
import statistics
import sys
import time
import warnings

REPEAT = 3


def _shard(model, mesh, fully_shard):
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _equal_to(model, reference, rank):
    """Whether every parameter's full tensor equals ``reference``'s (on rank 0)."""
    import torch
    same = True
    whole = dict(reference.named_parameters()) if reference is not None else {}
    for name, p in model.named_parameters():
        full = p.full_tensor()                  # every rank takes part in the gather
        if rank == 0:
            same = same and torch.equal(full, whole[name])
    return same


def main():
    rank, world, port, size = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    warnings.filterwarnings("ignore")
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, logging

    import fastinit
    import fastinit.torch as ft
    from fastinit._bench import llama_config

    logging.set_verbosity_error()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    config = llama_config(size)

    def timed(fn, *args):
        dist.barrier()
        t0 = time.perf_counter()
        fn(*args)
        seconds = torch.tensor([time.perf_counter() - t0])
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
        return float(seconds)

    def build():
        with torch.device("meta"):
            return _shard(AutoModelForCausalLM.from_config(config), mesh, fully_shard)

    def torch_init(model):
        model.to_empty(device="cpu")
        torch.manual_seed(0)
        model.init_weights()

    def reference(key):
        """The one-process model made the same way (rank 0 only)."""
        if rank != 0:
            return None
        if key == "torch":
            torch.manual_seed(0)
            return AutoModelForCausalLM.from_config(config)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return ft.materialize(model, fastinit.Generator(0))

    inits = {"fastinit": lambda m: ft.materialize(m, fastinit.Generator(0)),
             "torch": torch_init}
    times, out = {key: [] for key in inits}, {}
    for round_ in range(REPEAT):
        for key, init in inits.items():
            model = build()
            times[key].append(timed(init, model))
            if round_ == REPEAT - 1:             # the last round's model, against one process
                out[f"{key}_equal"] = _equal_to(model, reference(key), rank)
                out["params"] = sum(p.numel() for p in model.parameters())
            del model
            gc.collect()                         # (FSDP2's hooks hold cycles)
    out.update({f"{key}_s": statistics.median(ts) for key, ts in times.items()})
    if rank == 0:
        print(json.dumps(out))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
