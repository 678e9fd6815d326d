"""PyTorch modules: their own initialization through fastinit, and their default one
as one parallel pass.

``patch_init()`` makes torch.nn.init's functions fill through fastinit inside a
block, so any model's own initialization code runs at fastinit's speed;
``materialize(model)`` allocates a meta-device model and runs its own
initialization that way (Hugging Face models included); ``deferred_init(fn)`` builds
any model without memory, recording its construction, which ``materialize`` then
replays through fastinit.

``reset_parameters(module)`` gives every parameter of a model the distribution torch's
own ``reset_parameters`` gives it (checked against torch's source for each layer
below), drawn from a fastinit.Generator and written by ``fastinit.init_all``: all
tensors of the model in one GIL-free parallel loop. Importing this module imports
torch; ``import fastinit`` does not.
"""

import math
from numbers import Integral

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.rnn import RNNBase

from fastinit._deferred import deferred_init
from fastinit._materialize import materialize
from fastinit._torch_draws import FILLED, TorchRNGWarning
from fastinit._torch_patch import patch_init
from fastinit.init import _axis_index, _fans, init_all

__all__ = ["patch_init", "deferred_init", "materialize", "reset_parameters", "default_plan",
           "shard", "TorchRNGWarning"]


def _fan_in_bound(weight):
    """1/sqrt(fan_in) of a weight (0 for an empty one), as Linear and _ConvNd use for biases."""
    fan_in, _ = _fans(tuple(weight.shape))
    return 1 / math.sqrt(fan_in) if fan_in > 0 else 0


def _linear(m):
    # Linear and _ConvNd: kaiming_uniform_(a=sqrt(5)); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    rules = {"weight": ("kaiming_uniform_", {"a": math.sqrt(5)})}
    if m.bias is not None:
        bound = _fan_in_bound(m.weight)
        rules["bias"] = ("uniform_", {"a": -bound, "b": bound})
    return rules


def _bilinear(m):
    bound = 1 / math.sqrt(m.weight.size(1))
    return {name: ("uniform_", {"a": -bound, "b": bound}) for name in ("weight", "bias")}


def _embedding(m):
    return {"weight": ("normal_", {})}


def _norm(m):
    # LayerNorm, GroupNorm, RMSNorm, BatchNorm/InstanceNorm (_NormBase): ones and zeros.
    return {"weight": ("ones_", {}), "bias": ("zeros_", {})}


def _rnn(m):
    stdv = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0
    return {name: ("uniform_", {"a": -stdv, "b": stdv}) for name, _ in m.named_parameters()}


def _attention(m):
    rules = {name: ("xavier_uniform_", {})
             for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")}
    rules["in_proj_bias"] = ("zeros_", {})
    rules["bias_k"] = rules["bias_v"] = ("xavier_normal_", {})
    return rules


# Layer types whose reset_parameters this module reproduces: (class, rules, the method
# torch calls, whose presence unchanged on a subclass means the rules still apply).
_RULES = [
    (nn.Linear, _linear, nn.Linear.reset_parameters),
    (_ConvNd, _linear, _ConvNd.reset_parameters),
    (nn.Bilinear, _bilinear, nn.Bilinear.reset_parameters),
    (nn.Embedding, _embedding, nn.Embedding.reset_parameters),
    (nn.LayerNorm, _norm, nn.LayerNorm.reset_parameters),
    (nn.GroupNorm, _norm, nn.GroupNorm.reset_parameters),
    (nn.RMSNorm, _norm, nn.RMSNorm.reset_parameters),
    (_NormBase, _norm, _NormBase.reset_parameters),
    (RNNBase, _rnn, RNNBase.reset_parameters),
    (nn.MultiheadAttention, _attention, nn.MultiheadAttention._reset_parameters),
]


def _default_rules(m, own):
    """{parameter name: (initializer, kwargs)} of m's own parameters ``own``, or None
    when m is not a layer known here (or a subclass that changed how it initializes),
    or one of its parameters has a dtype fastinit does not fill (complex: its own
    reset_parameters then runs)."""
    if any(p.dtype not in FILLED for p in own.values()):
        return None
    for cls, rules, method in _RULES:
        if isinstance(m, cls):
            name = method.__name__
            if getattr(type(m), name) is not method:
                return None
            return rules(m)
    return None


def default_plan(module, init_fn=None):
    """The init_all plan that reset_parameters runs, and the modules it leaves to
    their own ``reset_parameters`` (layers it does not know).

    Modules are visited children first, as torch constructs them (so that
    MultiheadAttention's zero ``out_proj.bias`` comes after that Linear's own
    initialization). ``init_fn(module, name, parameter)`` may return ``(initializer,
    kwargs)`` for any parameter, overriding its default, or None to keep it.
    """
    plan, fallbacks = [], []
    owners = {}                 # id(parameter) -> (module, name), made when first needed

    def custom_of(p):
        if not owners:
            owners.update((id(q), (m, name)) for m in module.modules()
                          for name, q in m.named_parameters(recurse=False))
        m, name = owners[id(p)]
        return init_fn(m, name, p)

    def visit(m):
        for child in m.children():
            visit(child)
        own = dict(m.named_parameters(recurse=False))
        rules = _default_rules(m, own)
        custom = {name: init_fn(m, name, p) for name, p in own.items()} if init_fn else {}
        if rules is None and own and not any(v is not None for v in custom.values()):
            if hasattr(m, "reset_parameters"):
                fallbacks.append(m)
            return
        rules = rules or {}
        for name, param in own.items():
            spec = custom.get(name) or rules.get(name)
            if spec is not None:
                plan.append((param, spec[0], spec[1]))
        if isinstance(m, nn.Embedding) and m.padding_idx is not None and custom.get("weight") is None:
            plan.append((m.weight[m.padding_idx], "zeros_", {}))
        if isinstance(m, nn.MultiheadAttention) and m.out_proj.bias is not None and \
                rules.get("in_proj_bias") and m.in_proj_bias is not None:
            plan.append((m.out_proj.bias, "zeros_", {}))
        if isinstance(m, _NormBase) and m.track_running_stats and rules:
            plan.append((m.running_mean, "zeros_", {}))
            plan.append((m.running_var, "ones_", {}))
        if isinstance(m, nn.Transformer) and \
                type(m)._reset_parameters is nn.Transformer._reset_parameters:
            # its constructor ends with xavier_uniform_ on every matrix, over its layers'
            matrices = {id(p): p for p in m.parameters() if p.dim() > 1 and
                        not (init_fn and custom_of(p))}
            plan[:] = [e for e in plan if id(e[0]) not in matrices]
            plan.extend((p, "xavier_uniform_", {}) for p in matrices.values())

    visit(module)
    return plan, fallbacks


def reset_parameters(module, generator=None, init_fn=None):
    """Initialize every parameter of ``module`` as torch's default initialization
    would, in one parallel pass; returns ``module``.

    Known layers: Linear, Conv1d/2d/3d and their transposes, Bilinear, Embedding
    (padding row zeroed), LayerNorm, GroupNorm, RMSNorm, BatchNorm/InstanceNorm
    (running statistics reset too), MultiheadAttention, RNN/LSTM/GRU, and
    nn.Transformer (xavier_uniform_ on every matrix of its layers, as its
    constructor does after theirs). Other modules with parameters, and known layers
    with complex parameters, have their own ``reset_parameters`` called (with torch's
    RNG).

    Works on models materialized from the meta device with ``to_empty(device="cpu")``.
    ``init_fn(module, name, parameter)`` returning ``(initializer, kwargs)`` overrides a
    parameter's default, e.g. a Hugging Face-style scheme::

        def gpt_style(module, name, param):
            if isinstance(module, (nn.Linear, nn.Embedding)) and name == "weight":
                return "normal_", {"std": 0.02}
            if name == "bias":
                return "zeros_", {}
            return None          # LayerNorm keeps ones/zeros
    """
    plan, fallbacks = default_plan(module, init_fn)
    init_all(plan, generator)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _NormBase) and m.track_running_stats and \
                    m.num_batches_tracked is not None:
                m.num_batches_tracked.zero_()
    for m in fallbacks:
        m.reset_parameters()
    return module


def shard(global_shape, dim, rank, world_size):
    """(local_shape, global_offset) of ``rank``'s block of a tensor split along ``dim``
    over ``world_size`` ranks as ``torch.chunk`` splits it (and DTensor's ``Shard(dim)``
    places it): blocks of ceil(n / world_size), the last ones shorter or empty.

    Each rank then initializes its block with the global view, e.g.::

        local_shape, offset = fastinit.torch.shard(w_shape, 0, rank, world)
        local = torch.empty(local_shape)
        fastinit.kaiming_uniform_(local, a=5 ** 0.5, generator=g,
                                  global_shape=w_shape, global_offset=offset)

    and every rank, making the same calls on the same generator, stays in step with
    the others without communicating.
    """
    global_shape = tuple(global_shape)
    for s in global_shape:
        if isinstance(s, bool) or not isinstance(s, Integral):
            raise TypeError(f"global_shape must contain ints, got {type(s).__name__}")
        if s < 0:
            raise ValueError(f"global_shape must be non-negative, got {global_shape}")
    global_shape = tuple(int(s) for s in global_shape)
    if isinstance(world_size, bool) or not isinstance(world_size, Integral) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, Integral) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}")
    rank, world_size = int(rank), int(world_size)
    dim = _axis_index(dim, len(global_shape), "shard")   # as torch.chunk: -ndim <= dim < ndim
    n = global_shape[dim]
    size = -(-n // world_size) if n else 0
    start = min(rank * size, n)
    stop = min(start + size, n)
    local = list(global_shape)
    local[dim] = stop - start
    offset = [0] * len(global_shape)
    offset[dim] = start
    return tuple(local), tuple(offset)
