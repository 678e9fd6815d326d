# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parallel fills: where a fill writes (Target), and the OpenMP loop that writes it.

A fill is cut into pieces (see _kernels.h); pieces are shared among OpenMP threads
with the GIL released. Which thread writes a piece never changes what is written:
values depend only on the call seed and the global element index.
"""

import os
import warnings

import numpy as np

cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport INFINITY, isfinite, nextafter, nextafterf
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

from fastinit._kernels cimport (
    FI_BLOCK, FI_PATH_BASELINE, FI_CONSTANT_F32, FI_CONSTANT_F64, FI_MAXDIM, FI_NORMAL_F32,
    FI_NORMAL_F64, FI_NPATHS, FI_PATH_NAMES,
    FI_UNIFORM_F32, FI_UNIFORM_F64, fi_build_flags, fi_call_seed, fi_compiler, fi_cursor,
    fi_cursor_free, fi_cursor_new, fi_omp_max_threads, fi_openmp_enabled, fi_params,
    fi_path_supported, fi_path_table, fi_piece_fn, fi_plan, fi_store_fence,
    fi_stream_yardstick,
)

cnp.import_array()

# Elements per piece of parallel work (16 blocks).
cdef int64_t PIECE_LEN = 16 * FI_BLOCK
# Fills smaller than this many elements run on the calling thread only.
cdef int64_t PARALLEL_MIN = 4 * PIECE_LEN
# Fills of at least this many bytes bypass the caches with non-temporal stores.
cdef int64_t STREAM_MIN_BYTES = 8 << 20

cdef int _requested_threads = 0     # 0: follow OpenMP (OMP_NUM_THREADS, threadpoolctl)
cdef int _path = FI_PATH_BASELINE

# --------------------------------------------------------------------------------------
# Threads and instruction-set paths
# --------------------------------------------------------------------------------------

def set_num_threads(n):
    """Use ``n`` threads for fills; ``None`` restores the OpenMP default
    (all cores, or ``OMP_NUM_THREADS``)."""
    global _requested_threads
    if n is None:
        _requested_threads = 0
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"number of threads must be at least 1, got {n}")
    _requested_threads = min(int(n), 1 << 16)


def get_num_threads():
    """The number of threads a large fill uses (1 in a build without OpenMP)."""
    if not fi_openmp_enabled():
        return 1
    return _requested_threads if _requested_threads > 0 else fi_omp_max_threads()


def simd_paths():
    """The instruction-set paths this CPU can run, from baseline to widest."""
    return [FI_PATH_NAMES[p].decode() for p in range(FI_NPATHS) if fi_path_supported(p)]


def get_simd_path():
    """The instruction-set path the kernels use now."""
    return FI_PATH_NAMES[_path].decode()


def set_simd_path(name):
    """Use the kernels compiled for ``name`` (one of ``simd_paths()``).

    All paths write the same bits; this exists to test that, and to measure them.
    """
    global _path
    names = [FI_PATH_NAMES[p].decode() for p in range(FI_NPATHS)]
    if name not in names:
        raise ValueError(f"unknown SIMD path {name!r}; expected one of {names}")
    p = names.index(name)
    if not fi_path_supported(p):
        raise ValueError(f"this CPU cannot run the {name!r} path; it can run {simd_paths()}")
    _path = p


def _select_default_path():
    global _path
    forced = os.environ.get("FASTINIT_SIMD", "").strip().lower()
    if forced:
        try:
            set_simd_path(forced)
            return
        except ValueError as exc:
            warnings.warn(f"FASTINIT_SIMD ignored: {exc}", RuntimeWarning, stacklevel=2)
    for p in range(FI_NPATHS - 1, -1, -1):
        if fi_path_supported(p):
            _path = p
            return


_select_default_path()


def build_facts():
    """What the extension was built with: OpenMP, compiler and flags."""
    return {
        "openmp": bool(fi_openmp_enabled()),
        "compiler": fi_compiler.decode(),
        "flags": fi_build_flags.decode(),
        "block_elements": FI_BLOCK,
    }


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------

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


def _self_overlapping(a):
    """Whether two distinct indices of ``a`` address overlapping bytes.

    Sorting the dimensions of size > 1 by |stride|, the array does not overlap
    itself if each stride is at least the extent of all smaller-stride dimensions.
    This is exact for every layout numpy makes by slicing, transposing and
    reshaping; an exotic as_strided layout that interleaves without overlap is
    rejected too (conservative).
    """
    dims = sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1)
    extent = a.itemsize
    for stride, size in dims:
        if stride < extent:
            return True
        extent = stride * (size - 1) + extent
    return False


cdef class Target:
    """A validated destination: an array, and where it lies in the global tensor.

    ``global_shape`` and ``global_offset`` say that ``out`` is the block of shape
    ``out.shape`` starting at ``global_offset`` of a virtual tensor of shape
    ``global_shape``; by default ``out`` is the whole tensor.
    """

    cdef fi_plan plan
    cdef readonly object array
    cdef readonly int kind          # 0: float32, 1: float64
    cdef readonly Py_ssize_t size

    def __cinit__(self, out, global_shape=None, global_offset=None):
        if not cnp.PyArray_Check(out):
            raise TypeError(f"expected a numpy.ndarray, got {type(out).__name__}")
        cdef cnp.ndarray a = <cnp.ndarray>out
        cdef int typenum = cnp.PyArray_TYPE(a)
        if typenum == cnp.NPY_FLOAT32:
            self.kind = 0
        elif typenum == cnp.NPY_FLOAT64:
            self.kind = 1
        else:
            raise TypeError(f"unsupported dtype {out.dtype}; expected float32 or float64")
        if not cnp.PyArray_ISNOTSWAPPED(a):
            raise TypeError(f"unsupported dtype {out.dtype.str}: byte order is not native")
        if not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError("output array is read-only")
        cdef Py_ssize_t size = cnp.PyArray_SIZE(a)
        cdef int contiguous = cnp.PyArray_IS_C_CONTIGUOUS(a)
        if size > 1 and not contiguous and _self_overlapping(out):
            raise ValueError("output array overlaps itself (a zero or overlapping stride); "
                             "its elements cannot all receive values")
        cdef int nd = cnp.PyArray_NDIM(a)
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
        cdef int k, j
        cdef fi_plan *pl = &self.plan
        pl.data = <char *>cnp.PyArray_DATA(a)
        pl.ndim = nd
        pl.itemsize = <int>cnp.PyArray_ITEMSIZE(a)
        pl.contiguous = contiguous
        pl.aligned = cnp.PyArray_ISALIGNED(a)
        pl.stream = size * pl.itemsize >= STREAM_MIN_BYTES
        for k in range(nd):
            pl.shape[k] = dims[k]
            pl.strides[k] = cnp.PyArray_STRIDE(a, k)
        self.array = out
        self.size = size

        if global_shape is None:
            if global_offset is not None:
                raise ValueError("global_offset needs global_shape")
            # The whole tensor: one run, starting at global index 0.
            pl.run_dims = 0
            pl.run_len = size
            pl.gbase = 0
        else:
            shape = tuple(out.shape)
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
        pl.piece_len = PIECE_LEN
        if size == 0:
            pl.pieces_per_run = 0
            pl.npieces = 0
        else:
            pl.pieces_per_run = (pl.run_len + PIECE_LEN - 1) // PIECE_LEN
            pl.npieces = (size // pl.run_len) * pl.pieces_per_run

    @property
    def dtype(self):
        return self.array.dtype


# --------------------------------------------------------------------------------------
# The parallel loop
# --------------------------------------------------------------------------------------

cdef int _threads_for(const fi_plan *pl, Py_ssize_t size):
    if size < PARALLEL_MIN or not fi_openmp_enabled():
        return 1
    cdef int n = _requested_threads if _requested_threads > 0 else fi_omp_max_threads()
    if n > pl.npieces:
        n = <int>pl.npieces
    return n if n > 1 else 1


cdef void _run(int kernel, Target t, fi_params *pr) except *:
    cdef fi_plan *pl = &t.plan
    cdef const fi_plan *cpl = pl
    if pl.npieces == 0:
        return
    cdef fi_piece_fn fn = fi_path_table(_path)[kernel]
    cdef int nthreads = _threads_for(pl, t.size)
    cdef fi_cursor **cursors = <fi_cursor **>malloc(nthreads * sizeof(fi_cursor *))
    if cursors == NULL:
        raise MemoryError()
    cdef int i
    for i in range(nthreads):
        cursors[i] = fi_cursor_new()
    try:
        for i in range(nthreads):
            if cursors[i] == NULL:
                raise MemoryError()
        with nogil:
            _run_pieces(fn, cursors, cpl, pr, nthreads)
    finally:
        for i in range(nthreads):
            fi_cursor_free(cursors[i])
        free(cursors)


cdef void _run_pieces(fi_piece_fn fn, fi_cursor **cursors, const fi_plan *pl,
                      const fi_params *pr, int nthreads) noexcept nogil:
    cdef int64_t p
    cdef int64_t npieces = pl.npieces
    if nthreads == 1:
        for p in range(npieces):
            fn(cursors[0], pl, pr, p)
        fi_store_fence()
        return
    with parallel(num_threads=nthreads):
        for p in prange(npieces, schedule="dynamic"):
            fn(cursors[threadid()], pl, pr, p)
        fi_store_fence()


# --------------------------------------------------------------------------------------
# Fills
# --------------------------------------------------------------------------------------

def uniform(Target t, low, high, uint64_t k0, uint64_t k1, take_call):
    """Fill ``t`` with uniform values in [low, high) for key (k0, k1).

    ``take_call()`` is called once the arguments are known to be valid, and gives
    the call counter: a call that raises does not advance the generator.

    Raises RuntimeError, as torch's ``uniform_`` does, when low > high, when
    high - low exceeds the dtype's largest finite value, or when a bound is not
    finite in the target's dtype. Nothing is written then.
    """
    cdef double lo = low, hi = high
    cdef float lo_f, hi_f, r_f
    cdef double r
    cdef fi_params pr
    if not lo <= hi:
        raise RuntimeError(
            f"uniform_ expects to return a [from, to) range, but found from={low} > to={high}")
    # torch compares to - from, in double, with the dtype's largest finite value.
    if not (hi - lo) <= (FLT_MAX if t.kind == 0 else DBL_MAX):
        raise RuntimeError(
            f"uniform_ expects to-from <= std::numeric_limits<{t.dtype}>::max(), but found "
            f"to={high} and from={low} which result in to-from to exceed the limit")
    if t.kind == 0:
        lo_f = <float>lo
        hi_f = <float>hi
        r_f = hi_f - lo_f
        if not (isfinite(lo_f) and isfinite(hi_f) and isfinite(r_f)):
            raise RuntimeError(f"uniform_ bounds from={low}, to={high} overflow float32")
        pr.low_f, pr.range_f = lo_f, r_f
        pr.cap_f = nextafterf(hi_f, -INFINITY) if lo_f < hi_f else hi_f
        pr.sigma = fi_call_seed(k0, k1, take_call())
        _run(FI_UNIFORM_F32, t, &pr)
    else:
        r = hi - lo
        pr.low, pr.range = lo, r
        pr.cap = nextafter(hi, -INFINITY) if lo < hi else hi
        pr.sigma = fi_call_seed(k0, k1, take_call())
        _run(FI_UNIFORM_F64, t, &pr)


def normal(Target t, mean, std, uint64_t k0, uint64_t k1, take_call):
    """Fill ``t`` with mean + std * z, z standard normal (the Ziggurat of docs/stream.md).

    ValueError, before anything is written, for std < 0 (as torch: "normal expects
    std >= 0.0") and for a mean or std that is not finite in the target's dtype.
    ``take_call()`` gives the call counter once the arguments are valid.
    """
    cdef double m = mean, sd = std
    cdef float m_f, sd_f
    cdef fi_params pr
    if not isfinite(m) or not isfinite(sd):
        raise ValueError(f"normal expects a finite mean and std, got mean={mean}, std={std}")
    if sd < 0:
        raise ValueError(f"normal expects std >= 0.0, but found std {std}")
    if t.kind == 0:
        m_f, sd_f = <float>m, <float>sd
        if not (isfinite(m_f) and isfinite(sd_f)):
            raise ValueError(f"normal mean={mean}, std={std} overflow float32")
        pr.mean_f, pr.std_f, pr.value = m_f, sd_f, m_f
        pr.sigma = fi_call_seed(k0, k1, take_call())
        _run(FI_CONSTANT_F32 if sd_f == 0 else FI_NORMAL_F32, t, &pr)
    else:
        pr.mean, pr.std, pr.value = m, sd, m
        pr.sigma = fi_call_seed(k0, k1, take_call())
        _run(FI_CONSTANT_F64 if sd == 0 else FI_NORMAL_F64, t, &pr)


def constant(Target t, value):
    """Fill ``t`` with ``value`` (cast to its dtype)."""
    cdef fi_params pr
    pr.value = value
    _run(FI_CONSTANT_F32 if t.kind == 0 else FI_CONSTANT_F64, t, &pr)


def stream_yardstick(cnp.ndarray[cnp.float32_t, ndim=1, mode="c"] out, int nthreads):
    """Write 1.0 into a contiguous float32 array with the plainest OpenMP loop of
    non-temporal stores: the bench's measure of the machine's write bandwidth."""
    if not out.flags.writeable:
        raise ValueError("output array is read-only")
    cdef float *data = <float *>cnp.PyArray_DATA(out)
    cdef int64_t n = out.shape[0]
    with nogil:
        fi_stream_yardstick(data, n, nthreads if nthreads > 0 else 1)
