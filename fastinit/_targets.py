"""What users pass in (numpy arrays, CPU torch tensors) turned into fill targets.

torch is never imported here: a tensor can only exist if the user's program has
imported torch already, so ``sys.modules`` tells whether an object may be one.
"""

import contextlib
import contextvars
import sys

import numpy as np

from fastinit import _dtypes, _plan


def is_tensor(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _dtensor_class():
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None)


def is_dtensor(x):
    """A torch.distributed DTensor: each rank holds its shard (its local tensor)."""
    cls = _dtensor_class()
    return cls is not None and isinstance(x, cls)


def global_view(x, global_shape=None, global_offset=None):
    """(memory to write, global_shape, global_offset): for a DTensor, its local tensor
    and where that block lies in the DTensor's global shape (from its mesh, placements
    and this rank's coordinate), so each rank writes its shard with the values a fill
    of the whole tensor gives it; anything else as given."""
    if not is_dtensor(x):
        return x, _as_tuple(global_shape), _as_tuple(global_offset)
    if global_shape is not None or global_offset is not None:
        raise ValueError("a DTensor carries its own global shape and offset; pass neither")
    placements = sys.modules["torch.distributed.tensor.placement_types"]
    for k, p in enumerate(x.placements):
        if isinstance(p, placements.Partial):
            raise ValueError(f"cannot fill a DTensor with a Partial placement ({p}): its local "
                             f"tensors are summands, not shards; redistribute it to "
                             f"Replicate or Shard first")
        if isinstance(p, placements._StridedShard) and not _one_block(x, k, p, placements):
            raise NotImplementedError(f"cannot fill a DTensor with placements {x.placements}: "
                                      f"its strided shard does not leave one block per rank")
    utils = sys.modules.get("torch.distributed.tensor._utils")
    if utils is None:
        import torch.distributed.tensor._utils as utils
    shape = tuple(x.shape)
    local_shape, offset = utils.compute_local_shape_and_global_offset(
        shape, x.device_mesh, x.placements)
    local = x._local_tensor
    if tuple(local.shape) != tuple(local_shape):
        raise NotImplementedError(f"a DTensor whose local tensor {tuple(local.shape)} is not "
                                  f"its block {tuple(local_shape)} of {shape} (padded shards)")
    return local, shape, tuple(offset)


def _as_tuple(value):
    """A global shape or offset as a tuple (so that ``offset or default`` never asks a
    numpy array its truth value); None, or what is no sequence, as given (the target
    then says what is wrong with it)."""
    try:
        return tuple(value) if value is not None else None
    except TypeError:
        return value


def _one_block(x, k, strided, placements):
    """Whether the strided shard at mesh dimension ``k`` leaves each rank one block: it
    does when the mesh dimensions after it that shard the same tensor dimension split
    each of its chunks exactly (FSDP2 over tensor parallelism: the TP shard first)."""
    later = 1
    for j in range(k + 1, len(x.placements)):
        p = x.placements[j]
        if isinstance(p, placements.Shard) and not isinstance(p, placements._StridedShard) \
                and p.dim == strided.dim:
            later *= x.device_mesh.size(j)
    return later == strided.split_factor


def is_meta(x):
    """A tensor on the meta device: no storage, so every initializer is a no-op."""
    return is_tensor(x) and x.is_meta


def shape_of(x):
    if is_tensor(x) or hasattr(x, "shape"):
        return tuple(x.shape)
    try:
        return tuple(memoryview(x).shape)                   # array.array and other buffers
    except TypeError:
        raise TypeError(f"expected a numpy.ndarray, a CPU torch.Tensor or an object with the "
                        f"buffer protocol, got {type(x).__name__}") from None


# torch's message for an in-place write to an inference tensor outside inference mode.
_INFERENCE_MESSAGE = (
    "Inplace update to inference tensor outside InferenceMode is not allowed.You can make a "
    "clone to get a normal tensor before doing inplace update.See "
    "https://github.com/pytorch/rfcs/pull/17 for more details.")


# torch's message for an in-place write to a tensor whose elements share memory.
_OVERLAP_MESSAGE = (
    "unsupported operation: more than one element of the written-to tensor refers to a "
    "single memory location. Please clone() the tensor before performing the operation.")


# torch's floating dtypes -> the DType fastinit fills them as, and torch's CPU device
# (both made on first use).
_torch_dtypes = _cpu = None


def _tensor_dtype(x):
    """(DType, meta) of a tensor that a fill may write, after the checks torch's own
    in-place fill makes (device, layout, inference tensor, self-overlap, negative bit),
    with torch's errors. A meta tensor passes them as a CPU tensor would."""
    global _torch_dtypes, _cpu
    torch = sys.modules["torch"]
    if _torch_dtypes is None:
        _torch_dtypes, _cpu = _dtypes.torch_dtypes(torch), torch.device("cpu")
    device = x.device
    meta = False
    if device != _cpu:                  # (a device comparison is cheaper than its .type)
        if device.type not in ("cpu", "meta"):
            raise TypeError(f"expected a CPU tensor, got a tensor on {device}")
        meta = device.type == "meta"
    if x.layout != torch.strided:
        raise TypeError(f"expected a dense (strided) tensor, got layout {x.layout}")
    if x.is_nested:
        raise TypeError("expected a dense (strided) tensor, got a nested tensor")
    dtype = _torch_dtypes.get(x.dtype)
    if dtype is None:
        raise TypeError(f"unsupported dtype {x.dtype}; {_dtypes.UNSUPPORTED}")
    if x.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(_INFERENCE_MESSAGE)
    # (A contiguous tensor cannot overlap itself: the cheap question first.)
    if not meta and not x.is_contiguous() and torch._debug_has_internal_overlap(x) == 1:
        raise RuntimeError(_OVERLAP_MESSAGE)
    if x.is_neg():
        raise TypeError("expected a tensor without the negative bit (this is a view such as "
                        ".imag of a conjugate); torch.nn.init's functions under "
                        "fastinit.torch.patch_init fill it")
    return dtype, meta


def as_array(x):
    """A plain numpy view of ``x``'s memory (16-bit floats of a tensor as int16; a
    buffer-protocol object's as numpy reads it), and the kind override _plan.Target
    needs for it (None when the dtype says it)."""
    if not is_tensor(x):
        return _plan.plain_array(x), None
    dtype, _ = _tensor_dtype(x)
    d = x.detach()
    if dtype.itemsize != 2:
        return d.numpy(), None
    return d.view(sys.modules["torch"].int16).numpy(), dtype.kind     # 16-bit: as int16


# Targets already validated, by id of what the caller passed (see ``prepared``).
_prepared = contextvars.ContextVar("fastinit_prepared_targets", default=None)


def target(x, global_shape=None, global_offset=None):
    """A validated _plan.Target for ``x`` (nothing is written yet). A meta tensor is
    validated as a CPU tensor would be, and gives a target of no elements; a DTensor
    is its local shard, placed by ``global_view``."""
    if global_shape is None and global_offset is None:
        known = _prepared.get()
        if known is not None and id(x) in known:
            return known[id(x)]
    x, global_shape, global_offset = global_view(x, global_shape, global_offset)
    if not is_tensor(x):
        return _plan.Target(x, global_shape, global_offset)
    dtype, meta = _tensor_dtype(x)
    return _plan.memory_target(x.untyped_storage(), 0 if meta else x.data_ptr(), x.shape,
                               x.stride(), dtype.kind, global_shape, global_offset,
                               no_memory=meta)


def written(x):
    """Tell autograd that ``x`` was modified in place, as torch's in-place fills do
    (so stale saved tensors are detected); no history is recorded."""
    if is_tensor(x) and not x.is_meta:
        increment = sys.modules["torch"].autograd.graph.increment_version
        increment(x)
        if is_dtensor(x):
            increment(x._local_tensor)
    return x


def _target_or_none(x):
    """``target(x)``, or None when ``x`` is no target (its initializer will say why)."""
    try:
        return target(x)
    except (TypeError, ValueError, RuntimeError):
        return None


def prepare(objects):
    """{id: Target} of those of ``objects`` that are valid targets, for ``prepared``."""
    targets = {id(x): _target_or_none(x) for x in objects}
    return {k: t for k, t in targets.items() if t is not None}


@contextlib.contextmanager
def prepared(targets):
    """A block in which ``target(x)`` is ``targets[id(x)]`` (from ``prepare``) for the
    objects it holds, not built again: init_all's entries are validated once. Only
    for a block in which nothing resizes them or moves their memory."""
    token = _prepared.set(targets)
    try:
        yield
    finally:
        _prepared.reset(token)


def memory_range(x):
    """The bytes [lo, hi) a fill of ``x`` may write (its Target's), or None when it has
    none (an empty or meta tensor) or is no target (its initializer will say why)."""
    t = _target_or_none(x)
    return (t.mem_lo, t.mem_hi) if t is not None and t.size else None
