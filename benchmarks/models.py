"""Whole models by thread count: the GPT-2 small set (148 tensors, 124M float32
parameters) initialized at once, 1,000 small tensors (the cost per tensor), 1,000
and 20,000 tiny ones (how a plan's cost grows with its length), and a small Hugging
Face Llama built from its config (allocation and first touch included)."""

import numpy as np

import fastinit
from fastinit._shapes import gpt2_small

from .common import (
    THREADS, _Contender, import_torch, single_threaded, skip, use_fastinit_threads,
)


class GPT2SmallUniform(_Contender):
    """U(0, 1) into every tensor of the set: fastinit's init_all plan (one parallel
    pass), fastinit's uniform_ tensor by tensor, numpy's PCG64 and torch's uniform_
    tensor by tensor, and the ideal: one fastinit uniform_ fill of the same total size."""

    params = (["fastinit init_all", "fastinit per tensor", "fastinit one fill", "numpy",
               "torch"], THREADS)
    param_names = ["contender", "threads"]

    def setup(self, contender, threads):
        if contender.startswith("fastinit"):
            use_fastinit_threads(threads)
        elif contender == "numpy":
            single_threaded(contender, threads)
        else:
            torch = import_torch(threads)
        arrays = [np.ones(shape, np.float32) for _, shape in gpt2_small()]
        self.nbytes = sum(a.nbytes for a in arrays)
        gen = fastinit.Generator(0)
        if contender == "fastinit init_all":
            plan = [(a, "uniform_") for a in arrays]
            self.run = lambda: fastinit.init_all(plan, gen)
        elif contender == "fastinit per tensor":
            self.run = lambda: [gen.uniform_(a) for a in arrays]
        elif contender == "fastinit one fill":
            flat = np.ones(self.nbytes // 4, np.float32)
            self.run = lambda: gen.uniform_(flat)
        elif contender == "numpy":
            rng = np.random.Generator(np.random.PCG64(0))
            self.run = lambda: [rng.random(out=a, dtype=np.float32) for a in arrays]
        else:
            tensors = [torch.from_numpy(a) for a in arrays]
            self.run = lambda: [t.uniform_() for t in tensors]


class GPT2SmallReset(_Contender):
    """torch's default initialization of GPT-2 small built as torch modules (Linear:
    kaiming_uniform_(a=sqrt(5)) and a uniform bias; Embedding: normal; LayerNorm:
    ones and zeros): fastinit.torch.reset_parameters against every module's own
    reset_parameters()."""

    params = (["fastinit", "torch"], THREADS)
    param_names = ["contender", "threads"]

    def setup(self, contender, threads):
        from fastinit import _bench
        _reset_model(self, contender, threads, _bench._gpt2_model(import_torch(threads)))


class SmallLayers(_Contender):
    """The cost per tensor: torch's default initialization of 500 Linear layers of
    ``width`` x ``width`` (1,000 tensors), fastinit.torch.reset_parameters against every
    layer's own reset_parameters(). At width 4 the fill is nothing and the time is
    what each tensor costs in Python."""

    params = (["fastinit", "torch"], ["4", "64", "256"], THREADS)
    param_names = ["contender", "width", "threads"]

    def setup(self, contender, width, threads):
        nn = import_torch(threads).nn
        w = int(width)
        model = nn.Sequential(*[nn.Linear(w, w) for _ in range(500)])
        _reset_model(self, contender, threads, model)


class ManyTensors(_Contender):
    """How the cost of a plan grows with its number of tensors: ``count`` float32
    tensors of 512 elements, normal(0, 0.02) into each, by one init_all plan, by
    fastinit's normal_ tensor by tensor, and by numpy's PCG64 tensor by tensor. The
    time per tensor should not grow with the count (an init_all pass once checked
    each fill against every earlier one: 1.7 s for 20,000 tensors)."""

    params = (["fastinit init_all", "fastinit per tensor", "numpy"], ["1000", "20000"],
              THREADS)
    param_names = ["contender", "count", "threads"]

    def setup(self, contender, count, threads):
        if contender.startswith("fastinit"):
            use_fastinit_threads(threads)
        else:
            single_threaded(contender, threads)
        self.arrays = arrays = [np.ones(512, np.float32) for _ in range(int(count))]
        self.nbytes = sum(a.nbytes for a in arrays)
        gen = fastinit.Generator(0)
        if contender == "fastinit init_all":
            plan = [(a, "normal_", {"std": 0.02}) for a in arrays]
            self.run = lambda: fastinit.init_all(plan, gen)
        elif contender == "fastinit per tensor":
            self.run = lambda: [gen.normal_(a, 0.0, 0.02) for a in arrays]
        else:
            rng = np.random.Generator(np.random.PCG64(0))
            self.run = lambda: [rng.standard_normal(out=a, dtype=np.float32) for a in arrays]


def _reset_model(bench, contender, threads, model):
    """``bench.run``: torch's default initialization of ``model``, by
    fastinit.torch.reset_parameters or by every module's own reset_parameters()."""
    bench.nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if contender == "fastinit":
        from fastinit.torch import reset_parameters
        use_fastinit_threads(threads)
        gen = fastinit.Generator(0)
        bench.run = lambda: reset_parameters(model, gen)
    else:
        layers = [m for m in model.modules() if hasattr(m, "reset_parameters")]
        bench.run = lambda: [m.reset_parameters() for m in layers]


class LlamaFromConfig(_Contender):
    """A 29M-parameter Hugging Face Llama (hidden 512, 4 layers, vocab 16000) from its
    config, allocation and first touch included: transformers' from_config on the CPU
    (torch's default initialization, then the model's own) against building it on the
    meta device and fastinit.torch.materialize (the model's own initialization through
    fastinit), and against fastinit.torch.deferred_init and materialize (its
    construction recorded, then replayed through fastinit). The bench command runs the
    same at 953M parameters."""

    params = (["fastinit materialize", "fastinit deferred_init", "transformers"], THREADS)
    param_names = ["contender", "threads"]

    def setup(self, contender, threads):
        torch = import_torch(threads)
        try:
            from transformers import AutoModelForCausalLM, logging
        except ImportError:
            skip("transformers is not installed")
        logging.set_verbosity_error()
        from fastinit import _bench
        config = _bench.llama_config("29M")
        self.nbytes = _bench._llama_params(config) * 4
        if contender == "transformers":
            self.run = lambda: AutoModelForCausalLM.from_config(config)
            return
        import fastinit.torch as ft
        use_fastinit_threads(threads)
        gen = fastinit.Generator(0)

        def materialize():
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
            return ft.materialize(model, gen)

        def deferred():
            return ft.materialize(ft.deferred_init(AutoModelForCausalLM.from_config, config),
                                  gen)

        self.run = deferred if contender == "fastinit deferred_init" else materialize
