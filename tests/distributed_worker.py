"""One rank of tests/test_torch_distributed.py: fills its shards of two weights and
gathers them on rank 0, which saves them. Run as: python distributed_worker.py
RANK WORLD PORT OUT."""

import sys

import numpy as np
import torch
import torch.distributed as dist

import fastinit
import fastinit.torch as ft


def main():
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    g = fastinit.Generator(2024)
    results = {}
    for dim, shape in [(0, (1001, 300)), (1, (256, 777))]:       # row- and column-sharded
        local_shape, offset = ft.shard(shape, dim, rank, world)
        local = torch.empty(local_shape)
        fastinit.kaiming_uniform_(local, a=5 ** 0.5, generator=g, global_shape=shape,
                                  global_offset=offset)
        parts = [None] * world
        dist.all_gather_object(parts, local.numpy())
        results[f"dim{dim}"] = np.concatenate(parts, axis=dim)
    finish(out, rank, world, g, results)


def finish(out, rank, world, generator, results):
    """Gather every rank's generator counter; rank 0 saves them with ``results``."""
    counters = [None] * world
    dist.all_gather_object(counters, generator.state["counter"])
    if rank == 0:
        np.savez(out, counters=np.array(counters), **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
