"""``python -m fastinit bench``: fastinit's fills side by side with numpy and torch.

Every contender runs on the same pre-touched memory, interleaved round by round
(so a noisy neighbour slows all of them alike), and the report gives medians as
GB/s and speed ratios to reference contenders of the same run: each ratio the
median over the rounds of that round's ratio, so that a host that slows down or
speeds up between rounds moves both sides of a ratio together.
"""

import importlib.util
import os
import statistics
import time

import numpy as np

import fastinit
from fastinit import _runtime
from fastinit._shapes import gpt2_small

LIMIT = "stream-store limit (C, OpenMP)"
NP_RANDOM = "numpy PCG64 random (1 thread)"
NP_NORMAL = "numpy PCG64 standard_normal"
NP_FILL = "numpy ndarray.fill (1 thread)"
TORCH_NORMAL = "torch normal_"
FI_UNIFORM = "fastinit uniform_"
F64_ALLOC = "(f64, allocates)"   # rows that allocate and write float64: twice the bytes
MKL_NORMAL = f"mkl_random ICDF {F64_ALLOC}"


def _mkl_random():
    """mkl_random's generator on SFMT19937 (its fastest engine in our runs), or None
    where mkl_random is not installed. It returns new float64 arrays only (no ``out``,
    no float32): its rows include that allocation, and fastinit's f64 rows beside
    them allocate the same way, for a like-for-like comparison."""
    if importlib.util.find_spec("mkl_random") is None:
        return None
    import mkl_random
    return mkl_random.MKLRandomState(0, brng="SFMT19937")


class Rounds(dict):
    """Seconds of each contender in each round: name -> [seconds in round 0, 1, ...].
    Contenders timed together ran back to back in each round."""

    def median(self, name):
        return statistics.median(self[name])

    def speed_ratio(self, ref, name):
        """How many times as fast as ``ref`` ``name`` ran: the median over the rounds
        of ref's seconds / name's seconds, rounds paired by their index."""
        return statistics.median(r / s for r, s in zip(self[ref], self[name]))


def _time_rounds(contenders, repeat):
    """Run each contender once per round, ``repeat`` rounds, after one warm-up call
    each; their Rounds."""
    rounds = Rounds({name: [] for name in contenders})
    for fn in contenders.values():   # warm-up: page tables, thread pools, caches
        fn()
    for _ in range(repeat):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            rounds[name].append(time.perf_counter() - t0)
    return rounds


def _torch(threads):
    """torch, set to ``threads`` threads, or None where it is not installed."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    torch.set_num_threads(threads)
    return torch


def _print_table(title, nbytes, rounds, references):
    """One row per contender of ``rounds``: GB/s and ms (medians), and its speed
    relative to each reference (a dict of column label -> contender name; absent
    references are skipped)."""
    refs = {label: name for label, name in references.items() if name in rounds}
    print(f"\n{title}")
    widths = [max(11, len(lab) + 2) for lab in refs]
    print(f"  {'contender':<42}{'GB/s':>7}{'ms':>9}" +
          "".join(f"{lab:>{w}}" for lab, w in zip(refs, widths)))
    for name in rounds:
        s = rounds.median(name)
        ratios = "".join(f"{rounds.speed_ratio(ref, name):>{w}.2f}"
                         for ref, w in zip(refs.values(), widths))
        written = 2 * nbytes if name.endswith(F64_ALLOC) else nbytes
        print(f"  {name:<42}{written / s / 1e9:>7.2f}{s * 1e3:>9.2f}{ratios}")


def bench_sizes(sizes, thread_counts, repeat):
    gen = fastinit.Generator(0)
    pcg = np.random.Generator(np.random.PCG64(0))
    mkl = _mkl_random()
    for size in sizes:
        a = np.ones(size, np.float32)                       # pre-touched
        for threads in thread_counts:
            fastinit.set_num_threads(threads)
            torch = _torch(threads)
            t = torch.from_numpy(a) if torch is not None else None
            label = (f"{size:.3g} float32 elements ({a.nbytes / 2**20:.1f} MiB), "
                     f"{threads} thread{'s' * (threads > 1)}")
            uniform = {
                LIMIT: lambda: _runtime.stream_yardstick(a, threads),
                "fastinit constant fill": lambda: fastinit.constant_(a, 0.5),
                FI_UNIFORM: lambda: gen.uniform_(a),
                NP_FILL: lambda: a.fill(0.5),
                NP_RANDOM: lambda: pcg.random(out=a, dtype=np.float32),
            }
            normal = {
                FI_UNIFORM: lambda: gen.uniform_(a),
                "fastinit normal_": lambda: gen.normal_(a),
                NP_NORMAL: lambda: pcg.standard_normal(out=a, dtype=np.float32),
            }
            if t is not None:
                uniform["torch uniform_"] = lambda: t.uniform_()
                normal[TORCH_NORMAL] = lambda: t.normal_()
            if mkl is not None and threads == 1:            # mkl_random runs on one thread
                uniform[f"mkl_random uniform {F64_ALLOC}"] = lambda: mkl.random_sample(size)
                uniform[f"fastinit uniform_ {F64_ALLOC}"] = lambda: gen.uniform_(np.empty(size))
                normal[MKL_NORMAL] = lambda: mkl.standard_normal(size, method="ICDF")
                normal[f"fastinit normal_ {F64_ALLOC}"] = lambda: gen.normal_(np.empty(size))
                normal[f"np.ones, allocation alone {F64_ALLOC}"] = lambda: np.ones(size)
            _print_table("uniform: " + label, a.nbytes, _time_rounds(uniform, repeat),
                         {"vs limit": LIMIT, "vs numpy": NP_RANDOM})
            _print_table("normal: " + label, a.nbytes, _time_rounds(normal, repeat),
                         {"vs numpy": NP_NORMAL, "vs torch": TORCH_NORMAL,
                          "vs uniform": FI_UNIFORM, "vs mkl": MKL_NORMAL})
        del a
    fastinit.set_num_threads(None)


INITIALIZERS = {
    "kaiming_uniform_": dict(a=5 ** 0.5),
    "kaiming_normal_": dict(),
    "xavier_uniform_": dict(),
    "trunc_normal_": dict(std=0.02),
}


def bench_initializers(shape, threads, repeat):
    """fastinit's initializers against torch.nn.init's on the same float32 weight."""
    w = np.ones(shape, np.float32)
    fastinit.set_num_threads(threads)
    gen = fastinit.Generator(0)
    torch = _torch(threads)
    t = torch.from_numpy(w) if torch is not None else None
    contenders = {}
    for name, kw in INITIALIZERS.items():
        ours = getattr(fastinit, name)
        contenders[f"fastinit {name}"] = lambda ours=ours, kw=kw: ours(w, generator=gen, **kw)
        if t is not None:
            theirs = getattr(torch.nn.init, name)
            contenders[f"torch.nn.init {name}"] = lambda theirs=theirs, kw=kw: theirs(t, **kw)
    rounds = _time_rounds(contenders, repeat)
    print(f"\ninitializers: {shape[0]} x {shape[1]} float32 weight ({w.nbytes / 2**20:.0f} MiB), "
          f"{threads} threads")
    print(f"  {'contender':<42}{'GB/s':>7}{'ms':>9}{'vs torch':>11}")
    for name in rounds:
        sec = rounds.median(name)
        peer = name.replace("fastinit ", "torch.nn.init ")
        ratio = (f"{rounds.speed_ratio(peer, name):>11.2f}"
                 if peer in rounds and name.startswith("fastinit") else "")
        print(f"  {name:<42}{w.nbytes / sec / 1e9:>7.2f}{sec * 1e3:>9.2f}{ratio}")
    fastinit.set_num_threads(None)


def bench_orthogonal(sizes, threads, repeat):
    """orthogonal_ on square float32 weights: torch.nn.init's against fastinit's on the
    same tensor (both then take torch's QR), interleaved; then fastinit's on a numpy
    array (numpy's QR), timed apart, because OpenBLAS's threads keep spinning after a
    QR and would slow whichever torch contender ran next."""
    fastinit.set_num_threads(threads)
    torch = _torch(threads)
    gen = fastinit.Generator(0)
    for n in sizes:
        w = np.ones((n, n), np.float32)
        rounds = Rounds()
        if torch is not None:
            t = torch.ones(n, n)
            rounds = _time_rounds({
                "fastinit orthogonal_ (torch tensor)":
                    lambda: fastinit.orthogonal_(t, generator=gen),
                "torch.nn.init orthogonal_": lambda: torch.nn.init.orthogonal_(t),
            }, repeat)
        rounds.update(_time_rounds({      # timed apart: its ratio pairs the rounds by index
            "fastinit orthogonal_ (numpy array)": lambda: fastinit.orthogonal_(w, generator=gen),
        }, repeat))
        _print_table(f"orthogonal_: {n} x {n} float32, {threads} threads", w.nbytes, rounds,
                     {"vs torch": "torch.nn.init orthogonal_"})
    fastinit.set_num_threads(None)


def bench_dtypes(size, threads, repeat):
    """Elements per second of uniform_ and normal_ by dtype (16-bit needs ml_dtypes
    for bfloat16 arrays; float16 is numpy's own)."""
    dtypes = [np.float32, np.float16]
    has_bfloat16 = importlib.util.find_spec("ml_dtypes") is not None
    if has_bfloat16:
        import ml_dtypes
        dtypes.append(ml_dtypes.bfloat16)
    fastinit.set_num_threads(threads)
    gen = fastinit.Generator(0)
    arrays = {np.dtype(d).name: np.ones(size, d) for d in dtypes}
    contenders = {}
    for name, a in arrays.items():
        contenders[f"uniform_ {name}"] = lambda a=a: gen.uniform_(a)
        contenders[f"normal_ {name}"] = lambda a=a: gen.normal_(a)
    rounds = _time_rounds(contenders, repeat)
    print(f"\ndtypes: {size:.3g} elements, {threads} threads (elements per second; "
          f"'vs float32' compares the same fill)")
    print(f"  {'contender':<42}{'Gelem/s':>9}{'vs float32':>12}")
    for name in rounds:
        base = name.rsplit(" ", 1)[0] + " float32"
        print(f"  {name:<42}{size / rounds.median(name) / 1e9:>9.2f}"
              f"{rounds.speed_ratio(base, name):>12.2f}")
    if not has_bfloat16:
        print("  bfloat16: skipped (numpy's bfloat16 needs ml_dtypes: pip install ml_dtypes)")
    fastinit.set_num_threads(None)


def bench_gpt2(threads, repeat):
    """The GPT-2 small shape set: one call per tensor, one init_all plan, one fill of
    the same total size; then torch's default initialization of the same model."""
    shapes = gpt2_small()
    arrays = [np.ones(shape, np.float32) for _, shape in shapes]
    nbytes = sum(a.nbytes for a in arrays)
    params = sum(a.size for a in arrays)
    flat = np.ones(params, np.float32)
    fastinit.set_num_threads(threads)
    gen = fastinit.Generator(0)
    pcg = np.random.Generator(np.random.PCG64(0))
    plan = [(a, "uniform_") for a in arrays]
    contenders = {
        "one uniform_ of the same size": lambda: gen.uniform_(flat),
        "fastinit init_all uniform_": lambda: fastinit.init_all(plan, gen),
        "fastinit uniform_ per tensor": lambda: [gen.uniform_(a) for a in arrays],
        NP_RANDOM + " per tensor": lambda: [pcg.random(out=a, dtype=np.float32) for a in arrays],
    }
    torch = _torch(threads)
    if torch is not None:
        tensors = [torch.from_numpy(a) for a in arrays]
        contenders["torch uniform_ per tensor"] = lambda: [t.uniform_() for t in tensors]
    rounds = _time_rounds(contenders, repeat)
    _print_table(f"GPT-2 small: {len(arrays)} tensors, {params:,} float32 parameters "
                 f"({nbytes / 2**20:.0f} MiB), uniform, {threads} threads", nbytes, rounds,
                 {"vs one": "one uniform_ of the same size", "vs numpy": NP_RANDOM + " per tensor"})
    if torch is not None:
        _bench_gpt2_model(torch, threads, repeat, nbytes)
    fastinit.set_num_threads(None)


def _gpt2_model(torch):
    """GPT-2 small as torch modules (the shapes of gpt2_small())."""
    nn = torch.nn
    width = 768

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.c_attn, self.c_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.c_fc, self.mlp_proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    model = nn.Module()
    model.wte, model.wpe = nn.Embedding(50257, width), nn.Embedding(1024, width)
    model.h = nn.ModuleList([Block() for _ in range(12)])
    model.ln_f = nn.LayerNorm(width)
    return model


def _bench_gpt2_model(torch, threads, repeat, nbytes):
    import fastinit.torch as ft

    model = _gpt2_model(torch)
    gen = fastinit.Generator(0)
    layers = [m for m in model.modules() if hasattr(m, "reset_parameters")]

    def build_meta_then_reset():
        with torch.device("meta"):
            m = _gpt2_model(torch)
        ft.materialize(m, gen, init=ft.reset_parameters)

    # The yardstick in the same rounds and the same kind of memory as the model's
    # parameters (torch's allocations), so that 'vs one' compares like with like; and
    # the model's fills alone, as two flat fills (its embeddings' normals, the rest
    # uniform), so that what reset_parameters adds to them shows.
    flat = torch.zeros(nbytes // 4)
    normals = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    flat_normal, flat_uniform = flat[:normals], flat[normals:]
    contenders = {
        "torch reset_parameters()": lambda: [m.reset_parameters() for m in layers],
        "fastinit.torch.reset_parameters": lambda: ft.reset_parameters(model, gen),
        "one uniform_ of the same bytes": lambda: gen.uniform_(flat),
        "its fills alone: normal_, uniform_ (flat)":
            lambda: (gen.normal_(flat_normal), gen.uniform_(flat_uniform)),
    }
    rounds = _time_rounds(contenders, repeat)
    del flat, flat_normal, flat_uniform
    _print_table(f"GPT-2 small model, torch's default initialization (Linear: kaiming "
                 f"uniform; Embedding: normal), pre-allocated, {threads} threads", nbytes,
                 rounds, {"vs torch": "torch reset_parameters()",
                           "vs one": "one uniform_ of the same bytes"})
    contenders = {
        "torch builds on CPU": lambda: _gpt2_model(torch),
        "fastinit: meta, materialize, reset": build_meta_then_reset,
    }
    rounds = _time_rounds(contenders, max(2, repeat // 2))
    _print_table("GPT-2 small model, allocation included", nbytes, rounds,
                 {"vs torch": "torch builds on CPU"})


SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vbmi",
              "avx512_bf16", "avx512_fp16")


def cpu_description():
    """The CPU's model name and its SIMD flags that matter here (Linux), or the
    platform's processor string elsewhere."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    model = fields.get("model name\t", "").strip() or platform.machine()
    flags = set(fields.get("flags\t\t", "").split())
    return f"{model} ({' '.join(f for f in SIMD_FLAGS if f in flags) or 'no AVX'})"


def run(sizes, thread_counts, repeat, init_shape=(16384, 16384), models_repeat=3,
        models_size="953M", orthogonal_sizes=(1000, 4096)):
    info = fastinit.build_info()
    print(f"fastinit {info['version']} bench: float32, medians of {repeat} interleaved rounds.")
    print("Ratios are speed relative to the column's contender (> 1: faster), each the")
    print("median of the rounds' own ratios. 'limit' is the machine's write bandwidth:")
    print("a bare OpenMP loop of non-temporal stores.")
    print(f"Rows marked {F64_ALLOC} return a new float64 array, as mkl_random must (GB/s")
    print("counts their 8-byte elements; ratios compare times for the same element count).")
    print(f"machine: {info['machine']}, {os.cpu_count()} CPUs: {cpu_description()}")
    print(f"fastinit: SIMD path {info['simd_path']}, OpenMP {'on' if info['openmp'] else 'off'}, "
          f"numpy {info['numpy']}")
    bench_sizes(sizes, thread_counts, repeat)
    bench_initializers(init_shape, max(thread_counts), repeat)
    bench_orthogonal(orthogonal_sizes, max(thread_counts), repeat)
    bench_dtypes(max(sizes), max(thread_counts), repeat)
    bench_gpt2(max(thread_counts), repeat)
    bench_models(max(thread_counts), models_repeat, models_size)
    bench_sharded(models_size)


def bench_sharded(size="953M", world=2):
    """The same Llama, FSDP2-sharded over ``world`` gloo ranks on this machine (one
    thread each): fastinit's materialize against torch's own initialization of the
    sharded model, and whether each gathered model equals the one-process model."""
    if importlib.util.find_spec("transformers") is None or \
            importlib.util.find_spec("torch") is None:
        print("\nsharded: skipped (needs torch and transformers)")
        return
    import json
    import socket
    import subprocess
    import sys
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_gloo_available():
        print("\nsharded: skipped (torch.distributed with gloo is not available)")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "fastinit._bench_sharded", str(rank),
                               str(world), port, size], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in range(world)]
    outputs = [p.communicate(timeout=3600) for p in procs]
    if any(p.returncode for p in procs):
        last = [line for _, err in outputs for line in err.strip().splitlines()[-1:]]
        print(f"\nsharded: failed (exit codes {[p.returncode for p in procs]}; {last})")
        return
    out = json.loads(outputs[0][0].strip().splitlines()[-1])
    print(f"\nsharded: Llama from config, {out['params'] / 1e6:.0f}M float32 parameters, "
          f"FSDP2 over {world} gloo ranks (1 thread each), meta build, model's own init, "
          f"first touch included (medians of 3 interleaved rounds)")
    print(f"  {'contender':44} {'ms':>9} {'vs torch':>9}  gathered == one process")
    for name, key in (("torch: to_empty, manual_seed, init_weights", "torch"),
                      ("fastinit: materialize", "fastinit")):
        seconds = out[f"{key}_s"]
        print(f"  {name:44} {seconds * 1e3:9.0f} {out['torch_s'] / seconds:9.2f}  "
              f"{'yes' if out[f'{key}_equal'] else 'no'}")


def llama_config(size="953M"):
    """The Llama of the models section (transformers' LlamaConfig): "953M" parameters
    (hidden 2048, 16 layers, vocab 32000), or "29M" (hidden 512, 4 layers, vocab 16000)
    for quick runs and the asv suite."""
    from transformers import LlamaConfig
    if size not in ("953M", "29M"):
        raise ValueError(f"size must be '953M' or '29M', got {size!r}")
    if size == "953M":
        return LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
                           num_attention_heads=16, num_key_value_heads=16, vocab_size=32000)
    return LlamaConfig(hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                       num_attention_heads=8, num_key_value_heads=8, vocab_size=16000)


def _clear_hf_flags(model):
    """Forget which tensors a Hugging Face model has initialized, so that its
    init_weights() runs again (on memory already touched)."""
    for obj in [*model.modules(), *model.parameters(), *model.buffers()]:
        obj.__dict__.pop("_is_hf_initialized", None)


def bench_models(threads, repeat, size="953M"):
    """A Hugging Face Llama from its config: plain (built on the CPU, torch's default
    initialization, then the model's own), against built on the meta device and
    fastinit.torch.materialize (the model's own initialization through fastinit,
    first touch included), against fastinit.torch.deferred_init and materialize (the
    construction recorded, then replayed), against the same fills again on touched
    memory; and the yardstick: a C loop writing the same bytes into freshly mapped
    memory on the same threads, plus the touched fills (what the machine allows)."""
    if importlib.util.find_spec("transformers") is None:
        print("\nmodels: skipped (transformers is not installed: pip install 'fastinit[hf]')")
        return
    torch = _torch(threads)
    import fastinit.torch as ft
    from transformers import AutoModelForCausalLM, logging
    logging.set_verbosity_error()
    fastinit.set_num_threads(threads)
    config = llama_config(size)
    nbytes = _llama_params(config) * 4
    gen = fastinit.Generator(0)
    kept = {}

    def plain():
        kept.pop("model", None)
        kept["model"] = AutoModelForCausalLM.from_config(config)

    def meta_materialize():
        kept.pop("model", None)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        kept["model"] = ft.materialize(model, gen)

    def deferred():
        kept.pop("model", None)
        model = ft.deferred_init(AutoModelForCausalLM.from_config, config)
        kept["model"] = ft.materialize(model, gen)

    def touched():
        model = kept["model"]
        _clear_hf_flags(model)
        with ft.patch_init(gen):
            model.init_weights()

    contenders = (("plain", plain), ("materialize", meta_materialize),
                  ("deferred", deferred), ("touched", touched))
    times = {name: [] for name, _ in contenders}
    times["first touch"] = []
    for _ in range(repeat):                     # interleaved; no warm-up (first touch is the point)
        for name, fn in contenders:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        kept.clear()
        first_touch = _runtime.first_touch_yardstick(nbytes, threads)
        if first_touch is not None:
            times["first touch"].append(first_touch)
    if times["first touch"]:            # the yardstick of each round: its two parts
        times["yardstick"] = [a + b for a, b in zip(times["first touch"], times["touched"])]
    else:
        del times["first touch"]
    labels = {"plain": "transformers from_config (plain)",
              "materialize": "fastinit: meta, materialize",
              "deferred": "fastinit: deferred_init, materialize",
              "touched": "fastinit: own init again, touched memory",
              "first touch": "yardstick: C loop into fresh memory",
              "yardstick": "yardstick: fresh-memory loop + touched"}
    _print_table(f"models: Llama from config, {nbytes / 4e6:.0f}M float32 parameters, "
                 f"model's own initialization, {threads} threads "
                 f"(huge pages {_runtime.huge_pages_reason.split(':')[0]})",
                 nbytes, Rounds({labels[k]: v for k, v in times.items()}),
                 {"vs plain": labels["plain"], "vs yardstick": labels["yardstick"]})
    fastinit.set_num_threads(None)


def _llama_params(config):
    h, i, v, n = (config.hidden_size, config.intermediate_size, config.vocab_size,
                  config.num_hidden_layers)
    kv = h // config.num_attention_heads * config.num_key_value_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
    return 2 * v * h + n * per_layer + h
