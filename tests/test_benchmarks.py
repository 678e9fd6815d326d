"""The asv suite: it passes ``asv check``, covers the grid the dashboard promises, and
every benchmark measures what it says (run here in-process at the smallest sizes;
its timings are asv's business, not the tests')."""

import importlib.util
import itertools
import json
import multiprocessing
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import fastinit

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import common, fills, initializers, models  # noqa: E402

FILLS = [fills.Uniform, fills.Normal, fills.TruncNormal]
INITIALIZERS = [initializers.KaimingUniform, initializers.KaimingNormal,
                initializers.XavierUniform, initializers.XavierNormal,
                initializers.LecunNormal, initializers.Orthogonal]
MODELS = [models.GPT2SmallUniform, models.GPT2SmallReset, models.SmallLayers, models.ManyTensors,
          models.LlamaFromConfig]


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """The torch peers set torch's thread count, which (through the OpenMP runtime
    torch and fastinit share) is also fastinit's default: put it back."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(before if before is not None else os.cpu_count())


def test_asv_check_passes():
    pytest.importorskip("asv")
    proc = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout


def test_asv_config_builds_in_virtualenvs_and_spawns():
    pytest.importorskip("asv")
    from asv.config import Config
    conf = Config.load(str(ROOT / "asv.conf.json"))
    assert conf.environment_type == "virtualenv"
    assert conf.launch_method == "spawn"
    assert conf.matrix["req"]["torch"] == ["2.13.0"]
    assert conf.benchmark_dir == "benchmarks" and conf.repo == "."


@pytest.mark.parametrize("cls", FILLS + INITIALIZERS + MODELS)
def test_every_benchmark_has_a_time_and_a_gbps_track(cls):
    assert callable(cls.time_run)
    assert cls.track_gbps.unit == "GB/s"
    names = dict(zip(cls.param_names, cls.params))
    assert names["threads"] == ["1", "all"]
    assert "fastinit" in names["contender"][0]


@pytest.mark.parametrize("cls", FILLS + INITIALIZERS)
def test_grid_spans_the_promised_sizes_dtypes_and_peers(cls):
    names = dict(zip(cls.param_names, cls.params))
    assert names["dtype"] == ["float16", "bfloat16", "float32", "float64"]
    sizes = [common.elements(s) for s in names["size"]]
    assert sizes == sorted(sizes) and sizes[0] == 1000
    assert sizes[-1] == (4096 * 4096 if cls is initializers.Orthogonal else 250_000_000)
    assert "torch" in names["contender"]
    if cls in FILLS:
        assert names["contender"] == ["fastinit", "numpy", "torch", "ndarray.fill"]


def test_patch_init_block_benchmark_runs_each_operation():
    pytest.importorskip("torch")
    from benchmarks import patch_init
    from fastinit import _torch_patch
    for operation in patch_init.PatchInitBlock.params[0]:
        bench = patch_init.PatchInitBlock()
        bench.setup(operation)
        bench.time_run(operation)
        assert not _torch_patch.installed()          # every block it timed was left


def run_once(cls, params):
    """setup, time_run, track_gbps and teardown of one combination; None if skipped,
    else the target after the timed call and the measured GB/s."""
    bench = cls()
    try:
        bench.setup(*params)
    except NotImplementedError:
        return None
    try:
        bench.time_run(*params)
        gbps = bench.track_gbps(*params)
    finally:
        bench.teardown(*params)
    return bench, gbps


@pytest.mark.parametrize("cls", FILLS)
def test_fill_benchmarks_run_and_skip_only_what_a_peer_lacks(cls):
    pytest.importorskip("ml_dtypes")
    for contender, dtype, threads in itertools.product(
            cls.params[0], common.DTYPES, common.THREADS):
        outcome = run_once(cls, (contender, "1e3", dtype, threads))
        numpy_can = (dtype in ("float32", "float64") and threads == "1"
                     and cls is not fills.TruncNormal)
        if contender == "fastinit" or (contender == "numpy" and numpy_can) or (
                contender == "ndarray.fill" and threads == "1"):
            assert outcome is not None, (contender, dtype, threads)
        elif contender != "torch":
            assert outcome is None, (contender, dtype, threads)
        if outcome is not None:
            bench, gbps = outcome
            assert bench.nbytes == bench.out.nbytes == 1000 * bench.out.itemsize
            assert gbps > 0
            # The timed call wrote the array (it was all ones before).
            assert not np.all(bench.out.astype(np.float64) == 1.0), (contender, dtype)


@pytest.mark.parametrize("cls", INITIALIZERS)
def test_initializer_benchmarks_fill_the_weight_they_time(cls):
    pytest.importorskip("ml_dtypes")
    for dtype, threads in itertools.product(common.DTYPES, common.THREADS):
        bench, gbps = run_once(cls, ("fastinit", "1e3", dtype, threads))
        assert bench.nbytes == 1000 * np.dtype(fastinit.empty(0, dtype).dtype).itemsize
        assert gbps > 0


def test_allocating_fills_return_new_float64_draws():
    for fill in ("uniform", "normal"):
        for threads in common.THREADS:
            bench, gbps = run_once(fills.Allocating, ("fastinit", fill, "1e3", threads))
            assert bench.out.dtype == np.float64 and bench.out.shape == (1000,)
            assert bench.nbytes == 8000 and gbps > 0
            assert len(np.unique(bench.out)) == 1000
        outcome = run_once(fills.Allocating, ("mkl_random", fill, "1e3", "1"))
        assert run_once(fills.Allocating, ("mkl_random", fill, "1e3", "all")) is None
        if importlib.util.find_spec("mkl_random") is None:
            assert outcome is None
        else:
            bench, gbps = outcome
            assert bench.out.dtype == np.float64 and len(np.unique(bench.out)) == 1000
            assert (bench.out.min() >= 0) if fill == "uniform" else (bench.out.min() < 0)


def test_orthogonal_benchmark_takes_square_weights():
    bench, _ = run_once(initializers.Orthogonal, ("fastinit", "1000x1000", "float32", "1"))
    assert bench.nbytes == 4 * 10**6


def test_torch_peers_write_the_same_memory():
    torch = pytest.importorskip("torch")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.zeros(8, ml_dtypes.bfloat16)
    common.tensor_view(torch, a).fill_(1.5)
    assert np.array_equal(a.astype(np.float32), np.full(8, 1.5, np.float32))
    bench, _ = run_once(initializers.Orthogonal, ("torch", "1e4", "float32", "1"))
    assert bench.nbytes == 40_000


def test_gpt2_benchmarks_cover_the_whole_set():
    pytest.importorskip("torch")
    bench, gbps = run_once(models.GPT2SmallReset, ("fastinit", "1"))
    assert bench.nbytes == 124_439_808 * 4
    assert run_once(models.GPT2SmallUniform, ("numpy", "all")) is None


def test_small_layers_benchmark_initializes_all_thousand_tensors():
    pytest.importorskip("torch")
    bench, gbps = run_once(models.SmallLayers, ("fastinit", "4", "1"))
    assert bench.nbytes == 500 * (16 + 4) * 4 and gbps > 0
    bench, _ = run_once(models.SmallLayers, ("torch", "64", "1"))
    assert bench.nbytes == 500 * (64 * 64 + 64) * 4


def test_many_tensors_benchmark_fills_every_tensor_as_its_contender_says():
    for contender in models.ManyTensors.params[0]:
        bench, gbps = run_once(models.ManyTensors, (contender, "1000", "1"))
        assert bench.nbytes == 1000 * 512 * 4 and gbps > 0
    for contender in ("fastinit init_all", "fastinit per tensor"):     # the same draws
        bench = models.ManyTensors()
        bench.setup(contender, "1000", "1")
        bench.run()
        bench.teardown()
        g = fastinit.Generator(0)
        for a in bench.arrays:
            np.testing.assert_array_equal(
                a, fastinit.normal_(np.empty(512, np.float32), 0.0, 0.02, generator=g))


def test_llama_benchmark_materializes_the_whole_model(capsys):
    pytest.importorskip("transformers")
    from fastinit import _bench
    bench = models.LlamaFromConfig()
    bench.setup("fastinit materialize", "1")
    model = bench.run()
    bench.teardown()
    assert sum(p.numel() for p in model.parameters()) * 4 == bench.nbytes == 29_233_664 * 4
    assert all(p.device.type == "cpu" for p in model.parameters())
    _bench.bench_models(1, 1, "29M")
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].startswith("models: Llama from config, 29M float32 parameters")
    assert [" ".join(r.split()[:2]) for r in rows[3:9]] == [
        "transformers from_config", "fastinit: meta,", "fastinit: deferred_init,",
        "fastinit: own", "yardstick: C", "yardstick: fresh-memory"]
    bench.setup("fastinit deferred_init", "1")
    model = bench.run()
    assert all(p.device.type == "cpu" for p in model.parameters())


def _threads_in_forked_child(queue):
    try:
        common.use_fastinit_threads("all")
        queue.put("no error")
    except RuntimeError as e:
        queue.put(str(e))


@pytest.mark.skipif(os.cpu_count() < 2 or not fastinit.build_info()["openmp"],
                    reason="needs OpenMP and two CPUs")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_benchmark_refuses_to_pass_for_all_threads():
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_threads_in_forked_child, args=(queue,))
    child.start()
    message = queue.get(timeout=60)
    child.join(60)
    assert "would fill on 1 threads" in message and "spawn" in message


def _make_images():
    spec = importlib.util.spec_from_file_location(
        "make_images", ROOT / "benchmarks" / "dashboard" / "make_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_page_is_rewritten_to_load_only_local_libraries():
    asv = pytest.importorskip("asv")
    make_images = _make_images()
    page = (pathlib.Path(asv.__file__).parent / "www" / "index.html").read_text()
    assert "https://cdn" in page
    offline = make_images.offline_index(page)
    tags = re.findall(r"<(?:script|link)\b[^>]*>", offline)
    assert tags and not [t for t in tags if "://" in t or "integrity=" in t]
    # Every local path is a file of a package that package.json pins.
    pinned = json.loads((ROOT / "benchmarks" / "dashboard" / "package.json").read_text())
    used = re.findall(r'"vendor/([^"/]+)/', offline)
    assert set(used) == set(pinned["dependencies"])
    with pytest.raises(SystemExit, match="no local copy"):
        make_images.offline_index('<script src="https://cdn.example/new-lib.js"></script>')


def test_bench_tables_name_their_contenders(capsys):
    """The bench command's size tables (with the MKL rows where mkl_random is
    installed, and without them elsewhere) and its orthogonal_ table."""
    from fastinit import _bench
    _bench.bench_sizes([100_000], [1], 1)
    out = capsys.readouterr().out
    has_mkl = importlib.util.find_spec("mkl_random") is not None
    for row in ("fastinit uniform_", "fastinit normal_", "numpy PCG64 standard_normal"):
        assert row in out
    for row in (_bench.MKL_NORMAL, f"fastinit normal_ {_bench.F64_ALLOC}",
                f"np.ones, allocation alone {_bench.F64_ALLOC}"):
        assert (row in out) == has_mkl, row
    assert ("vs mkl" in out) == has_mkl
    _bench.bench_orthogonal((64,), 1, 1)
    rows = [r.split("  ")[1] for r in capsys.readouterr().out.splitlines()[3:]]
    torch_rows = ["fastinit orthogonal_ (torch tensor)", "torch.nn.init orthogonal_"]
    assert rows == (torch_rows if importlib.util.find_spec("torch") else []) + [
        "fastinit orthogonal_ (numpy array)"]


@pytest.mark.parametrize("has_ml_dtypes", [True, False])
def test_bench_dtypes_table_shows_bfloat16_or_says_why_not(capsys, monkeypatch, has_ml_dtypes):
    from fastinit import _bench
    if has_ml_dtypes:
        pytest.importorskip("ml_dtypes")
    else:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "ml_dtypes" else real(name, *a))
    _bench.bench_dtypes(10_000, 1, 1)
    rows = [r.split("  ")[1] for r in capsys.readouterr().out.splitlines()[3:]]
    fills = [f"{fill} {d}" for d in ("float32", "float16", "bfloat16") for fill in
             ("uniform_", "normal_")]
    assert rows == (fills if has_ml_dtypes else
                    fills[:4] + ["bfloat16: skipped (numpy's bfloat16 needs ml_dtypes: pip "
                                 "install ml_dtypes)"])


def test_bench_ratios_are_medians_of_each_rounds_ratio(capsys):
    """A ratio pairs the rounds: a host that slows down in one round slows both sides
    of that round's ratio. Here the medians' ratio would say 1.0; each round says
    the contender took twice as long, but for one round in which the host sped it up."""
    from fastinit import _bench
    rounds = _bench.Rounds({"ref": [1.0, 10.0, 2.0], "x": [2.0, 20.0, 1.0]})
    assert rounds.median("ref") == rounds.median("x") == 2.0
    assert rounds.speed_ratio("ref", "x") == 0.5
    assert rounds.speed_ratio("x", "ref") == 2.0
    _bench._print_table("t", 4 * 10**9, rounds, {"vs ref": "ref", "vs none": "absent"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["contender", "GB/s", "ms", "vs", "ref"]
    assert lines[3].split() == ["ref", "2.00", "2000.00", "1.00"]
    assert lines[4].split() == ["x", "2.00", "2000.00", "0.50"]


def test_gpt2_model_table_has_its_yardsticks_in_the_same_rounds(capsys):
    """The reset table times one uniform fill of the model's bytes and the model's fills
    alone (embeddings' normals and the rest uniform, flat) in the same rounds."""
    torch = pytest.importorskip("torch")
    from fastinit import _bench
    _bench._bench_gpt2_model(torch, 1, 1, 124_439_808 * 4)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[-4:] == ["vs", "torch", "vs", "one"]
    assert [line[:44].strip() for line in lines[3:7]] == [
        "torch reset_parameters()", "fastinit.torch.reset_parameters",
        "one uniform_ of the same bytes", "its fills alone: normal_, uniform_ (flat)"]
    assert lines[5].split()[-1] == "1.00"             # one fill against itself
