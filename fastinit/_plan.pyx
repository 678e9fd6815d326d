# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Targets: an array checked as a fill's destination (dtype, byte order, writability,
self-overlap, shard bounds), and its memory plan for the kernels: how its elements
map to global indices and how the work is cut into pieces (fastinit/src/fi_plan.h)."""

import numpy as np

from fastinit import _dtypes

cimport numpy as cnp
from libc.stdint cimport int64_t, uint16_t, uint64_t

from fastinit._kernels cimport FI_MAXDIM, fi_block_elements, fi_plan

cnp.import_array()

# Elements per piece of parallel work (16 blocks).
cdef int64_t _PIECE_LEN = 16 * fi_block_elements
PIECE_LEN = _PIECE_LEN
# _dtypes' kind numbers, as C ints for the hot path.
cdef int KIND_FLOAT32 = _dtypes.FLOAT32.kind
cdef int KIND_FLOAT64 = _dtypes.FLOAT64.kind
cdef int KIND_UINT64 = _dtypes.UINT64.kind


def _as_index_tuple(value, name, ndim):
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}") from None
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must contain ints, got {type(v).__name__}")
    if len(items) != ndim:
        raise ValueError(f"{name} has {len(items)} dimensions but the array has {ndim}")
    if any(v < 0 for v in items):
        raise ValueError(f"{name} must be non-negative, got {items}")
    return tuple(int(v) for v in items)


def self_overlapping(shape, strides, itemsize):
    """Whether two distinct indices of an array of this layout address overlapping bytes.

    Sorting the dimensions of size > 1 by |stride|, the array does not overlap
    itself if each stride is at least the extent of all smaller-stride dimensions.
    This is exact for every layout numpy makes by slicing, transposing and
    reshaping; an exotic as_strided layout that interleaves without overlap is
    rejected too (conservative).
    """
    dims = sorted((abs(s), n) for s, n in zip(strides, shape) if n > 1)
    extent = itemsize
    for stride, size in dims:
        if stride < extent:
            return True
        extent = stride * (size - 1) + extent
    return False


cdef class Target:
    """A validated destination: an array, and where it lies in the global tensor.

    ``global_shape`` and ``global_offset`` say that ``out`` is the block of shape
    ``out.shape`` starting at ``global_offset`` of a virtual tensor of shape
    ``global_shape``; by default ``out`` is the whole tensor. With ``no_memory``,
    ``out`` stands for a tensor without storage (torch's meta device): it is checked
    for dtype and shard as usual, and the target has no elements to write.
    ``memory_target`` makes one from a memory description instead (a torch tensor's).
    """

    # (Its attributes are declared in _plan.pxd.)

    def __init__(self, out, global_shape=None, global_offset=None, bits_as=None,
                 bint no_memory=False):
        out = plain_array(out)
        cdef cnp.ndarray a = <cnp.ndarray>out
        cdef int typenum = cnp.PyArray_TYPE(a)
        if bits_as is not None:
            # A 16-bit integer view of float16 or bfloat16 memory.
            if typenum not in (cnp.NPY_INT16, cnp.NPY_UINT16) or bits_as not in (2, 3):
                raise TypeError("bits_as needs a 16-bit integer view and kind 2 or 3")
            self.kind = bits_as
        elif typenum == cnp.NPY_FLOAT32:
            self.kind = 0
        elif typenum == cnp.NPY_FLOAT64:
            self.kind = 1
        elif typenum == cnp.NPY_FLOAT16:
            self.kind = 2
        elif out.dtype.name == "bfloat16" and out.dtype.itemsize == 2:   # ml_dtypes
            self.kind = 3
        elif out.dtype.kind == "u" and out.dtype.itemsize == 8:   # raw outputs (random_raw_):
            self.kind = 4                                        # uint64, ulonglong, 'Q'
        else:
            raise TypeError(f"unsupported dtype {out.dtype}; {_dtypes.UNSUPPORTED}")
        if not cnp.PyArray_ISNOTSWAPPED(a):
            raise TypeError(f"unsupported dtype {out.dtype.str}: byte order is not native")
        if not no_memory and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError("output array is read-only")
        cdef int nd = cnp.PyArray_NDIM(a)
        if nd > FI_MAXDIM:      # the plan holds FI_MAXDIM dimensions (numpy's own limit)
            raise ValueError(f"arrays of more than {FI_MAXDIM} dimensions are not supported")
        cdef int k
        for k in range(nd):
            self.plan.shape[k] = cnp.PyArray_DIM(a, k)
            self.plan.strides[k] = cnp.PyArray_STRIDE(a, k)
        self._lay_out(out, <char *>cnp.PyArray_DATA(a), nd, <int>cnp.PyArray_ITEMSIZE(a),
                      no_memory, cnp.PyArray_IS_C_CONTIGUOUS(a), cnp.PyArray_ISALIGNED(a),
                      global_shape, global_offset)

    cdef int _lay_out(self, owner, char *data, int nd, int itemsize, bint no_memory,
                      bint contiguous, bint aligned, global_shape, global_offset) except -1:
        """The checks and the plan common to every target, its ``nd`` dimensions'
        shape and byte strides already in the plan: self-overlap, the shard, runs and
        pieces; ``owner`` is held while the target lives."""
        cdef fi_plan *pl = &self.plan
        cdef Py_ssize_t size = 0
        cdef int k, j
        if not no_memory:
            size = 1
            for k in range(nd):
                size *= pl.shape[k]
        if size > 1 and not contiguous and self_overlapping(
                [pl.shape[k] for k in range(nd)], [pl.strides[k] for k in range(nd)], itemsize):
            raise ValueError("output array overlaps itself (a zero or overlapping stride); "
                             "its elements cannot all receive values")
        pl.data = data
        if contiguous and size > 0 and cnp.PyArray_Check(owner):
            pl.data = self._typed_view(owner)
        pl.ndim = nd
        pl.itemsize = itemsize
        pl.contiguous = contiguous
        pl.aligned = aligned
        pl.stream = 0                   # set for each pass by the executor
        self.owner = owner
        self.size = size
        self.mem_lo = self.mem_hi = <size_t>pl.data
        if size > 0:
            self.mem_hi += pl.itemsize
            for k in range(nd):
                if pl.strides[k] < 0:
                    self.mem_lo += (pl.shape[k] - 1) * pl.strides[k]
                else:
                    self.mem_hi += (pl.shape[k] - 1) * pl.strides[k]

        if global_shape is None:
            if global_offset is not None:
                raise ValueError("global_offset needs global_shape")
            # The whole tensor: one run, starting at global index 0.
            pl.run_dims = 0
            pl.run_len = size
            pl.gbase = 0
        else:
            shape = tuple([pl.shape[k] for k in range(nd)])
            gshape = _as_index_tuple(global_shape, "global_shape", nd)
            offset = (0,) * nd if global_offset is None else _as_index_tuple(
                global_offset, "global_offset", nd)
            for k in range(nd):
                if offset[k] + shape[k] > gshape[k]:
                    raise ValueError(
                        f"the array (shape {shape}) at global_offset {offset} does not fit "
                        f"in global_shape {gshape} (dimension {k})")
            total = 1
            for g in gshape:
                total *= g
            if total >= 2**63:
                raise ValueError(f"global_shape {gshape} has too many elements")
            # Runs: the trailing dimensions that the array spans whole, plus one more.
            k = nd - 1
            while k > 0 and shape[k] == gshape[k]:
                k -= 1
            pl.run_dims = max(k, 0)
            run_len = 1
            for j in range(pl.run_dims, nd):
                run_len *= shape[j]
            pl.run_len = run_len
            gbase = 0
            step = 1
            for j in range(nd - 1, -1, -1):
                gbase += offset[j] * step
                if j < pl.run_dims:
                    pl.run_gstride[j] = step
                step *= gshape[j]
            pl.gbase = gbase
        pl.piece_len = _PIECE_LEN
        if size == 0:
            pl.pieces_per_run = 0
            pl.npieces = 0
        else:
            pl.pieces_per_run = (pl.run_len + _PIECE_LEN - 1) // _PIECE_LEN
            pl.npieces = (size // pl.run_len) * pl.pieces_per_run
        return 0

    def moved(self):
        """Whether the memory has moved since the target was made: its owner, a
        storage, has another data pointer (a torch ``resize_`` reallocated it), so
        the target's addresses are no longer its memory."""
        return self.owner_ptr != 0 and self.owner.data_ptr() != self.owner_ptr

    cdef char *_typed_view(self, out) except NULL:
        """Hold a contiguous target as a 1-D typed memoryview of its dtype (the kernels
        write through its data pointer; the held view keeps the buffer exported, so its
        owner cannot resize or free it during the fill)."""
        cdef float[::1] f32
        cdef double[::1] f64
        cdef uint16_t[::1] u16
        cdef uint64_t[::1] u64
        flat = out if cnp.PyArray_NDIM(<cnp.ndarray>out) == 1 else out.reshape(-1)
        if self.kind == KIND_FLOAT32:
            f32 = flat
            self.view = f32
            return <char *>&f32[0]
        if self.kind == KIND_FLOAT64:
            f64 = flat
            self.view = f64
            return <char *>&f64[0]
        if self.kind == KIND_UINT64:
            u64 = flat
            self.view = u64
            return <char *>&u64[0]
        u16 = flat.view(np.uint16)                      # float16 and bfloat16 bits
        self.view = u16
        return <char *>&u16[0]


def memory_target(storage, size_t address, shape, strides, int kind, global_shape=None,
                  global_offset=None, bint no_memory=False):
    """A Target for memory that is not a numpy array (a CPU torch tensor's): ``kind``
    values (a _dtypes kind) at ``address`` with ``shape`` and ``strides`` in elements,
    the layout checked as an array's is. ``storage`` (with a ``data_ptr()``) holds the
    memory: the target keeps it alive, and ``moved()`` tells when it was reallocated
    (nothing stops that, as a numpy export stops a resize)."""
    cdef Target t = Target.__new__(Target)
    cdef int nd = len(shape), k, itemsize = _dtypes.BY_KIND[kind].itemsize
    cdef int64_t expected = 1
    cdef bint contiguous = True, aligned = address % itemsize == 0
    if nd > FI_MAXDIM:
        raise ValueError(f"arrays of more than {FI_MAXDIM} dimensions are not supported")
    t.kind = kind
    for k in range(nd):
        t.plan.shape[k] = shape[k]
        t.plan.strides[k] = strides[k] * itemsize
    # C-contiguous as numpy says it: dimensions of one element have any stride, and an
    # array without elements is contiguous.
    for k in range(nd - 1, -1, -1):
        if t.plan.shape[k] != 1:
            if t.plan.strides[k] != expected * itemsize:
                contiguous = False
            expected *= t.plan.shape[k]
    if expected == 0:
        contiguous = True
    t._lay_out(storage, <char *>address, nd, itemsize, no_memory, contiguous, aligned,
               global_shape, global_offset)
    if t.size:
        t.owner_ptr = storage.data_ptr()
    return t


# Buffer formats a fill accepts from objects other than numpy arrays and tensors.
_BUFFER_DTYPES = ("float32", "float64", "float16", "uint64")


def plain_array(out):
    """``out`` as a plain numpy.ndarray on its memory: an ndarray subclass (np.matrix, a
    masked array, ...) viewed as its base class, a buffer-protocol object by
    ``_buffer_array``."""
    if not cnp.PyArray_Check(out):
        return _buffer_array(out)
    return out if type(out) is np.ndarray else out.view(np.ndarray)


def _buffer_array(obj):
    """A numpy view of an object that exports the buffer protocol (``memoryview``,
    ``array.array``, ...), of a dtype fastinit fills."""
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError("expected a numpy.ndarray, a CPU torch.Tensor or an object with the "
                        f"buffer protocol, got {type(obj).__name__}") from None
    array = np.asarray(view)
    if array.dtype.name not in _BUFFER_DTYPES:
        raise TypeError("expected a numpy.ndarray, a CPU torch.Tensor or a buffer of float16, "
                        f"float32 or float64 values, got a {type(obj).__name__} of format "
                        f"{view.format!r}")
    return array
