"""Two processes with torch.distributed (gloo on localhost) each fill their shard of a
row-sharded and a column-sharded weight; gathered, they equal the one-process fill."""

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import fastinit  # noqa: E402
import fastinit.torch as ft  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_ranks_gather_the_single_process_fill(tmp_path):
    port, out = str(free_port()), str(tmp_path / "gathered.npz")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(HERE)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "distributed_worker.py"),
                               str(rank), "2", port, out], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for rank in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    got = np.load(out)
    g = fastinit.Generator(2024)
    for key, shape in [("dim0", (1001, 300)), ("dim1", (256, 777))]:
        whole = fastinit.kaiming_uniform_(np.empty(shape, np.float32), a=5 ** 0.5, generator=g)
        np.testing.assert_array_equal(got[key], whole)
    assert got["counters"].tolist() == [2, 2]        # the ranks stayed in step


def test_shard_follows_torch_chunk():
    for n, world in [(1001, 2), (777, 3), (5, 8), (0, 2), (16, 4)]:
        pieces = torch.empty(n, 2).chunk(world, 0)
        for rank in range(world):
            local, offset = ft.shard((n, 2), 0, rank, world)
            expected = pieces[rank].shape[0] if rank < len(pieces) else 0
            assert local == (expected, 2)
            assert offset == (sum(p.shape[0] for p in pieces[:rank]), 0)
    with pytest.raises(ValueError):
        ft.shard((4, 4), 0, 2, 2)


def test_shard_checks_its_dimension_and_ranks():
    assert ft.shard((6, 4), -1, 1, 2) == ft.shard((6, 4), 1, 1, 2) == ((6, 2), (0, 2))
    for dim in (2, -3):
        with pytest.raises(np.exceptions.AxisError):
            ft.shard((6, 4), dim, 0, 2)
    with pytest.raises(TypeError):
        ft.shard((6, 4), True, 0, 2)
    for rank, world in [(0, 0), (-1, 2), (1.0, 2), (0, 2.0)]:
        with pytest.raises(ValueError):
            ft.shard((6, 4), 0, rank, world)
    # The global shape: non-negative ints (numpy's ints too), as torch.empty takes them.
    assert ft.shard((np.int64(6), 4), 0, 1, 2) == ((3, 4), (3, 0))
    with pytest.raises(ValueError, match="non-negative"):
        ft.shard((-4, 3), 0, 0, 2)
    for bad in ((4.0, 3), ("4", 3), (True, 3)):
        with pytest.raises(TypeError, match="ints"):
            ft.shard(bad, 0, 0, 2)


def run_ranks(script, world, args, tmp_path):
    port, out = str(free_port()), str(tmp_path / "out.npz")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(HERE)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, script), str(rank),
                               str(world), port, out, *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for rank in range(world)]
    try:                        # (every rank's pipes drained at once: none blocks on them)
        with ThreadPoolExecutor(world) as pool:
            errors = list(pool.map(lambda p: p.communicate(timeout=240)[1].decode(), procs))
    finally:
        for p in procs:
            p.kill()
    # Every rank's error, not only the first's: a rank that fails because a peer died
    # ("Connection reset by peer") says nothing of why the peer did.
    failed = [f"rank {rank} (exit {p.returncode}):\n{err[-3000:]}"
              for rank, (p, err) in enumerate(zip(procs, errors)) if p.returncode != 0]
    assert not failed, "\n\n".join(failed)
    return np.load(out)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
@pytest.mark.parametrize("world, mesh", [(1, "1"), (2, "2"), (3, "3"), (4, "2x2")])
def test_dtensors_hold_the_one_process_fill(world, mesh, tmp_path):
    import dtensor_worker as w
    got = run_ranks("dtensor_worker.py", world, [mesh], tmp_path)
    g = fastinit.Generator(11)
    for name, shape, _, fill in w.CASES:
        dtype = torch.bfloat16 if "bf16" in name else torch.float32
        whole = torch.full(shape, 7.0, dtype=dtype)
        fill(whole, g)
        np.testing.assert_array_equal(got[name], whole.float().numpy(), err_msg=name)
    assert got["counters"].tolist() == [g.state["counter"]] * world   # in step, no messages
    assert got["partial_refused"] == 1
    if "x" in mesh:                          # FSDP2 over TP (strided shards), materialized
        with torch.device("meta"):
            model = w.build_mlp()
        ft.materialize(model, fastinit.Generator(7))
        for key, p in model.named_parameters():
            np.testing.assert_array_equal(got[f"fsdp-tp.{key}"], p.detach().numpy(), err_msg=key)
        assert got["strided_refused"] == 1
    else:                                    # FSDP2: each module's reset under patch_init
        with ft.patch_init(fastinit.Generator(5)):
            model = w.build_model()
        for name, p in model.named_parameters():
            np.testing.assert_array_equal(got[f"fsdp.{name}"], p.detach().numpy(),
                                          err_msg=name)
        assert got["rng_untouched"] == 1
        plain = ft.reset_parameters(w.build_model(), fastinit.Generator(6))
        for name, p in plain.named_parameters():
            np.testing.assert_array_equal(got[f"reset.{name}"], p.detach().numpy(), err_msg=name)
        for name, build, _ in w.sharded_models():   # materialize, sharded and whole
            with torch.device("meta"):
                model = build()
            ft.materialize(model, fastinit.Generator(7))
            for key, p in model.named_parameters(remove_duplicate=False):
                np.testing.assert_array_equal(got[f"{name}.{key}"], p.detach().numpy(),
                                              err_msg=f"{name}.{key}")
            for key, b in model.named_buffers():
                np.testing.assert_array_equal(got[f"{name}.buffer.{key}"], b.numpy())
            assert got[f"{name}.tied"].tolist() == w.tied_groups(model), name
            assert got[f"{name}.rng_untouched"] == 1, name


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_readme_sharded_example_runs_on_two_ranks(tmp_path):
    pytest.importorskip("transformers")
    import re
    text = open(os.path.join(os.path.dirname(HERE), "README.md")).read()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "fully_shard" in b)
    script = tmp_path / "example.py"
    script.write_text(block)
    port = str(free_port())
    outputs = []
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1", RANK=str(rank),
                                       WORLD_SIZE="2", LOCAL_RANK=str(rank),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for rank in range(2)]
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-3000:]
            outputs.append(out)
    finally:
        for p in procs:
            p.kill()
    # Rank 0 prints the head's shape and spread: the one-process model's.
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=256, intermediate_size=512,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      vocab_size=1000)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    ft.materialize(model, fastinit.Generator(0))
    w = model.lm_head.weight
    assert outputs[0].split() == ["(1000,", "256)", f"{w.std():.4f}"] and outputs[1] == ""
