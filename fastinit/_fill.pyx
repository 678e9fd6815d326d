# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parallel fills: where a fill writes (Target), and the OpenMP loop that writes it.

A fill is cut into pieces (see _kernels.h); pieces are shared among OpenMP threads
with the GIL released. Which thread writes a piece never changes what is written:
values depend only on the call seed and the global element index.
"""

import math
import os
import threading
import warnings

import numpy as np

cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport INFINITY, isfinite, nextafter, nextafterf
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc


cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

from fastinit._kernels cimport (
    FI_BLOCK, FI_CONSTANT, FI_MAXDIM, FI_NORMAL, FI_NPATHS, FI_PATH_BASELINE, FI_PATH_NAMES,
    FI_RAW, FI_TRUNC, FI_UNIFORM, fi_build_flags, fi_call_seed, fi_compiler, fi_cursor,
    fi_cursor_bind, fi_cursor_free, fi_cursor_new, fi_omp_max_threads, fi_openmp_enabled,
    fi_params, fi_path_supported, fi_path_table, fi_piece_fn, fi_plan, fi_store_fence,
    fi_stream_yardstick,
)

cnp.import_array()

# Elements per piece of parallel work (16 blocks).
cdef int64_t PIECE_LEN = 16 * FI_BLOCK
# Fills smaller than this many elements run on the calling thread only.
cdef int64_t PARALLEL_MIN = 4 * PIECE_LEN
# Fills of more pieces than this run in rounds of this many pieces (per thread),
# checking for KeyboardInterrupt between rounds.
cdef int64_t ROUND_PIECES = 512
# Fills of at least this many bytes bypass the caches with non-temporal stores.
cdef int64_t STREAM_MIN_BYTES = 8 << 20

cdef int _requested_threads = 0     # 0: follow OpenMP (OMP_NUM_THREADS, threadpoolctl)
cdef bint _forked = False           # in a child made by fork(): OpenMP is off limits
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


def _after_fork_in_child():
    # GNU OpenMP's thread pool does not survive fork(): a child entering a parallel
    # region after its parent did would hang. Fills in a forked child run serially.
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads():
    """The number of threads a large fill uses: 1 in a build without OpenMP and in a
    process made by fork() (use the spawn or forkserver start methods for parallel
    children)."""
    if not fi_openmp_enabled() or _forked:
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
    ``global_shape``; by default ``out`` is the whole tensor. With ``no_memory``,
    ``out`` stands for a tensor without storage (torch's meta device): it is checked
    for dtype and shard as usual, and the target has no elements to write.
    """

    cdef fi_plan plan
    cdef readonly object array
    cdef readonly int kind          # 0: float32, 1: float64, 2: float16, 3: bfloat16, 4: uint64
    cdef readonly Py_ssize_t size
    cdef readonly size_t mem_lo, mem_hi     # the bytes it may write: [mem_lo, mem_hi)

    def __cinit__(self, out, global_shape=None, global_offset=None, bits_as=None,
                  bint no_memory=False):
        if not cnp.PyArray_Check(out):
            raise TypeError(f"expected a numpy.ndarray, got {type(out).__name__}")
        cdef cnp.ndarray a = <cnp.ndarray>out
        cdef int typenum = cnp.PyArray_TYPE(a)
        if bits_as is not None:
            # A 16-bit integer view of float16 or bfloat16 memory (a torch tensor's).
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
        elif typenum == cnp.NPY_UINT64:                 # raw outputs (random_raw_)
            self.kind = 4
        else:
            raise TypeError(f"unsupported dtype {out.dtype}; expected float16, bfloat16, "
                            "float32 or float64")
        if not cnp.PyArray_ISNOTSWAPPED(a):
            raise TypeError(f"unsupported dtype {out.dtype.str}: byte order is not native")
        if not no_memory and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError("output array is read-only")
        cdef Py_ssize_t size = 0 if no_memory else cnp.PyArray_SIZE(a)
        cdef int contiguous = cnp.PyArray_IS_C_CONTIGUOUS(a)
        if size > 1 and not contiguous and _self_overlapping(out):
            raise ValueError("output array overlaps itself (a zero or overlapping stride); "
                             "its elements cannot all receive values")
        cdef int nd = cnp.PyArray_NDIM(a)
        if nd > FI_MAXDIM:      # the plan holds FI_MAXDIM dimensions (numpy's own limit)
            raise ValueError(f"arrays of more than {FI_MAXDIM} dimensions are not supported")
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
    def kind_name(self):
        return KIND_NAMES[self.kind]


# --------------------------------------------------------------------------------------
# Jobs and the parallel loop
# --------------------------------------------------------------------------------------

cdef class Job:
    """One validated fill: its target, kernel and parameters."""

    cdef Target target
    cdef int kernel
    cdef fi_params params


class WriteJob:
    """Values computed in Python (eye_, dirac_, orthogonal_, sparse_'s zeros), written
    by ``write()`` into memory that ``target`` describes."""

    def __init__(self, Target target, write):
        self.target, self.write = target, write


_local = threading.local()   # .jobs: the list being collected on this thread, or None


def _overlap(Target t, Target u):
    return t.mem_lo < u.mem_hi and u.mem_lo < t.mem_hi


def _enqueue(job):
    """Run a job now, or add it to this thread's collection (see ``collecting``)."""
    jobs = getattr(_local, "jobs", None)
    if jobs is None:
        run_batch([job])
    else:
        jobs.append(job)


cdef _submit(Target t, int kernel, fi_params *pr):
    cdef Job job = Job.__new__(Job)
    job.target, job.kernel, job.params = t, kernel, pr[0]
    _enqueue(job)


def submit_write(Target target, write):
    """Write values computed in Python into ``target`` (now, or in order with the
    collected fills)."""
    _enqueue(WriteJob(target, write))


class collecting:
    """Within this context, this thread's fills are validated and take their calls
    as usual, but nothing is written until ``run()``: then every piece of every fill
    is shared among the threads in as few GIL-free loops as order allows. The bits
    are those of running them one by one. Leaving the context on an exception
    discards what was collected."""

    def __enter__(self):
        self.outer = getattr(_local, "jobs", None)
        self.jobs = _local.jobs = []
        return self

    def __exit__(self, exc_type, exc, tb):
        _local.jobs = self.outer
        if exc_type is not None:
            self.jobs = []
        return False

    def run(self):
        """Write what was collected; returns nothing."""
        jobs, self.jobs = self.jobs, []
        run_batch(jobs)


class immediate:
    """Within this context, fills are written at once, even inside ``collecting``:
    for scratch arrays an initializer allocates and reads back (they share no memory
    with the collected targets, so no collected fill has to run first)."""

    def __enter__(self):
        self.outer = getattr(_local, "jobs", None)
        _local.jobs = None
        return self

    def __exit__(self, exc_type, exc, tb):
        _local.jobs = self.outer
        return False


def run_batch(jobs):
    """Write ``jobs`` in order: consecutive fills in one parallel loop, except that a
    fill of memory an earlier fill of the loop writes starts a new loop, and Python
    writes run alone, after what precedes them."""
    group = []
    for job in jobs:
        if isinstance(job, WriteJob):
            run_jobs(group)
            group = []
            job.write()
            continue
        if any(_overlap((<Job>job).target, (<Job>other).target) for other in group):
            run_jobs(group)
            group = []
        group.append(job)
    run_jobs(group)


def run_jobs(list jobs):
    """Write the fills of ``jobs``: all their pieces in one parallel loop."""
    cdef Py_ssize_t n = len(jobs), i
    if n == 0:
        return
    cdef fi_piece_fn *fns = <fi_piece_fn *>malloc(n * sizeof(fi_piece_fn))
    cdef const fi_plan **plans = <const fi_plan **>malloc(n * sizeof(fi_plan *))
    cdef const fi_params **params = <const fi_params **>malloc(n * sizeof(fi_params *))
    cdef int64_t *starts = <int64_t *>malloc((n + 1) * sizeof(int64_t))
    cdef fi_cursor **cursors = NULL
    cdef int nthreads = 1, k
    cdef int64_t elements = 0, first, last, step
    cdef const fi_piece_fn *table = fi_path_table(_path)
    cdef Job job
    try:
        if fns == NULL or plans == NULL or params == NULL or starts == NULL:
            raise MemoryError()
        starts[0] = 0
        for i in range(n):
            job = <Job>jobs[i]
            fns[i] = table[job.kernel]
            plans[i] = &job.target.plan
            params[i] = &job.params
            starts[i + 1] = starts[i] + job.target.plan.npieces
            elements += job.target.size
        if starts[n] == 0:
            return
        if elements >= PARALLEL_MIN and fi_openmp_enabled() and not _forked:
            nthreads = _requested_threads if _requested_threads > 0 else fi_omp_max_threads()
            nthreads = <int>min(<int64_t>nthreads, starts[n])
        cursors = <fi_cursor **>calloc(nthreads, sizeof(fi_cursor *))
        if cursors == NULL:
            raise MemoryError()
        for k in range(nthreads):
            cursors[k] = fi_cursor_new()
            if cursors[k] == NULL:
                raise MemoryError()
        # Rounds of 512 pieces per thread (~10-60 ms): Ctrl-C stops a huge fill between rounds
        # (every thread has finished the first; values do not depend on the rounds).
        first = 0
        step = ROUND_PIECES * nthreads
        while first < starts[n]:
            last = first + step if first + step < starts[n] else starts[n]
            with nogil:
                _run_pieces(fns, plans, params, starts, n, cursors, nthreads, first, last)
            first = last
            if first < starts[n]:
                PyErr_CheckSignals()
    finally:
        if cursors != NULL:
            for k in range(nthreads):
                fi_cursor_free(cursors[k])
            free(cursors)
        free(fns)
        free(plans)
        free(params)
        free(starts)


cdef inline void _run_piece(const fi_piece_fn *fns, const fi_plan **plans,
                            const fi_params **params, const int64_t *starts, Py_ssize_t n,
                            fi_cursor *cursor, int64_t q) noexcept nogil:
    # The job of global piece q: the last with starts[job] <= q (binary search).
    cdef Py_ssize_t lo = 0, hi = n, mid
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if starts[mid] <= q:
            lo = mid
        else:
            hi = mid
    fi_cursor_bind(cursor, lo)
    fns[lo](cursor, plans[lo], params[lo], q - starts[lo])


cdef void _run_pieces(const fi_piece_fn *fns, const fi_plan **plans,
                      const fi_params **params, const int64_t *starts, Py_ssize_t n,
                      fi_cursor **cursors, int nthreads, int64_t first,
                      int64_t last) noexcept nogil:
    # Pieces [first, last) of the jobs' global piece numbering.
    cdef int64_t q
    if nthreads == 1:
        for q in range(first, last):
            _run_piece(fns, plans, params, starts, n, cursors[0], q)
        fi_store_fence()
        return
    with parallel(num_threads=nthreads):
        for q in prange(first, last, schedule="dynamic"):
            _run_piece(fns, plans, params, starts, n, cursors[threadid()], q)
        fi_store_fence()


# --------------------------------------------------------------------------------------
# Fills
# --------------------------------------------------------------------------------------

class ArgumentError(ValueError, RuntimeError):
    """A distribution parameter out of its domain (low > high, std < 0, NaN, ...).

    Both a ValueError, as numpy would raise, and a RuntimeError, as torch raises for
    the same calls, so either ``except`` clause catches it.
    """


KIND_NAMES = ("float32", "float64", "float16", "bfloat16", "uint64")
# The largest finite value of each kind, for torch's range checks.
KIND_MAX = (FLT_MAX, DBL_MAX, 65504.0, 3.3895313892515355e38)
# The names torch's overflow messages give each kind.
KIND_TORCH_NAMES = ("float", "double", "c10::Half", "c10::BFloat16")


def constant_value(value, int kind):
    """``value`` as a float to write into the kind, checked as torch's ``fill_``
    checks it: a finite value beyond the kind's largest finite value raises
    ArgumentError (a RuntimeError, torch's type) with torch's message; infinities
    and NaN are accepted. Not a number: TypeError."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"constant value must be a real number, got {type(value).__name__}")
    if isinstance(value, complex):
        if value.imag != 0:
            raise ArgumentError(f"value cannot be converted to type {KIND_TORCH_NAMES[kind]} "
                                "without overflow")
        value = value.real
    v = float(value)
    if math.isfinite(v) and abs(v) > KIND_MAX[kind]:
        raise ArgumentError(
            f"value cannot be converted to type {KIND_TORCH_NAMES[kind]} without overflow")
    return v


def round_to_kind(x, int kind):
    """``x`` rounded to nearest (even) in the kind's format, as a Python float.

    16-bit kinds round through float32, as the kernels do; beyond the kind's range,
    an infinity (without numpy's overflow warning)."""
    if kind == 1:
        return float(x)
    with np.errstate(over="ignore"):
        f = np.float32(x)
    if kind == 0:
        return float(f)
    if kind == 2:
        with np.errstate(over="ignore"):
            return float(np.float16(f))
    bits = int(f.view(np.uint32))
    if (bits & 0x7FFFFFFF) > 0x7F800000:
        return float("nan")
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return float(np.uint32(bits & 0xFFFFFFFF).view(np.float32))


def next_in_kind(x, int kind, direction):
    """The neighbour of ``x`` (a value of the kind) towards ``direction`` (+-inf)."""
    if kind == 1:
        return float(np.nextafter(x, direction))
    if kind == 0:
        return float(np.nextafter(np.float32(x), np.float32(direction)))
    if kind == 2:
        return float(np.nextafter(np.float16(x), np.float16(direction)))
    bits = int(np.float32(x).view(np.uint32)) >> 16        # bfloat16: step the top half
    if x == 0:
        bits = 0x0001 if direction > 0 else 0x8001
    elif (x > 0) == (direction > 0):
        bits += 1
    else:
        bits -= 1
    return float(np.uint32(bits << 16).view(np.float32))


def kind_bits(value, int kind):
    """The bit pattern of ``value`` in the kind's format, as an int."""
    if kind == 0:
        return int(np.float32(value).view(np.uint32))
    if kind == 1:
        return int(np.float64(value).view(np.uint64))
    if kind == 2:
        return int(np.float16(np.float32(value)).view(np.uint16))
    r = round_to_kind(value, 3)
    return int(np.float32(r).view(np.uint32)) >> 16 if r == r else 0x7FC0


cdef int _float_kind(Target t) except -1:
    if t.kind == 4:
        raise TypeError("unsupported dtype uint64; expected float16, bfloat16, float32 or "
                        "float64 (uint64 arrays take random_raw_)")
    return t.kind


def uniform(Target t, low, high, uint64_t k0, uint64_t k1, take_call):
    """Fill ``t`` with uniform values in [low, high) for key (k0, k1).

    ``take_call()`` is called once the arguments are known to be valid, and gives
    the call counter: a call that raises does not advance the generator.

    Raises ArgumentError (a RuntimeError, as torch's ``uniform_``) when low > high, when
    high - low exceeds the dtype's largest finite value, or when a bound is not
    finite in the target's dtype. Nothing is written then. For float16 and
    bfloat16 the float32 values are capped below high rounded to the target, so
    that rounding to 16 bits keeps them below it.
    """
    cdef double lo = low, hi = high
    cdef float lo_f, hi_f, r_f, cap_f
    cdef fi_params pr
    cdef int kind = _float_kind(t)
    if not lo <= hi:
        raise ArgumentError(
            f"uniform_ expects to return a [from, to) range, but found from={low} > to={high}")
    # torch compares to - from, in double, with the dtype's largest finite value.
    if not (hi - lo) <= KIND_MAX[kind]:
        raise ArgumentError(
            f"uniform_ expects to-from <= std::numeric_limits<{KIND_NAMES[kind]}>::max(), but "
            f"found to={high} and from={low} which result in to-from to exceed the limit")
    if kind == 1:
        pr.low, pr.range = lo, hi - lo
        pr.cap = nextafter(hi, -INFINITY) if lo < hi else hi
    else:
        lo_f = <float>lo
        hi_f = <float>hi
        r_f = hi_f - lo_f
        if not (isfinite(lo_f) and isfinite(hi_f) and isfinite(r_f)):
            raise ArgumentError(f"uniform_ bounds from={low}, to={high} overflow float32")
        cap_f = nextafterf(hi_f, -INFINITY) if lo_f < hi_f else hi_f
        if kind >= 2:
            lo_k, hi_k = round_to_kind(lo_f, kind), round_to_kind(hi_f, kind)
            if not (math.isfinite(lo_k) and math.isfinite(hi_k)):
                raise ArgumentError(
                    f"uniform_ bounds from={low}, to={high} overflow {KIND_NAMES[kind]}")
            below = next_in_kind(hi_k, kind, -math.inf) if lo_k < hi_k else hi_k
            cap_f = min(cap_f, <float>below)
        pr.low_f, pr.range_f, pr.cap_f = lo_f, r_f, cap_f
    pr.sigma = fi_call_seed(k0, k1, take_call())
    _submit(t, FI_UNIFORM + kind, &pr)


def normal(Target t, mean, std, uint64_t k0, uint64_t k1, take_call):
    """Fill ``t`` with mean + std * z, z standard normal (the Ziggurat of docs/stream.md).

    ArgumentError (a ValueError and a RuntimeError, as torch raises), before anything
    is written, for std < 0 ("normal expects std >= 0.0") and for a mean or std that
    is not finite in the target's dtype.
    ``take_call()`` gives the call counter once the arguments are valid. float16
    and bfloat16 round the float32 values.
    """
    cdef double m = mean, sd = std
    cdef fi_params pr
    cdef int kind = _float_kind(t)
    if not isfinite(m) or not isfinite(sd):
        raise ArgumentError(f"normal expects a finite mean and std, got mean={mean}, std={std}")
    if sd < 0:
        raise ArgumentError(f"normal expects std >= 0.0, but found std {std}")
    pr.mean, pr.std = m, sd
    pr.mean_f, pr.std_f = <float>m, <float>sd
    if kind != 1 and not (isfinite(pr.mean_f) and isfinite(pr.std_f)):
        raise ArgumentError(f"normal mean={mean}, std={std} overflow float32")
    pr.sigma = fi_call_seed(k0, k1, take_call())
    if sd == 0:
        pr.bits = kind_bits(pr.mean if kind == 1 else pr.mean_f, kind)
        _submit(t, FI_CONSTANT, &pr)
    else:
        _submit(t, FI_NORMAL + kind, &pr)


def _normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def trunc_normal(Target t, mean, std, a, b, uint64_t k0, uint64_t k1, take_call):
    """Fill ``t`` with normal(mean, std) values conditioned on [a, b] (docs/stream.md).

    Exact rejection sampling from block-local streams: normal proposals when the
    interval holds more than 30% of the mass (as torch decides), uniform proposals
    on [a, b] otherwise, so narrow intervals and small std stay fast and exact.
    Values are mean + std * z rounded to the dtype and clipped to the values of the
    dtype inside [a, b], so they never leave [a, b].

    ArgumentError (a ValueError and a RuntimeError) for a > b, std < 0, non-finite
    arguments, or an [a, b] that holds no value of the dtype.
    std == 0 fills with mean clipped to [a, b].
    """
    cdef double m = mean, sd = std, lo = a, hi = b
    cdef fi_params pr
    cdef int kind = _float_kind(t)
    if not (isfinite(m) and isfinite(sd) and isfinite(lo) and isfinite(hi)):
        raise ArgumentError(
            f"trunc_normal_ expects finite mean, std, a and b, got {mean}, {std}, {a}, {b}")
    if sd < 0:
        raise ArgumentError(f"trunc_normal_ expects std >= 0.0, but found std {std}")
    if lo > hi:
        raise ArgumentError(
            f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    lo_k, hi_k = round_to_kind(lo, kind), round_to_kind(hi, kind)
    if lo_k < lo:
        lo_k = next_in_kind(lo_k, kind, math.inf)
    if hi_k > hi:
        hi_k = next_in_kind(hi_k, kind, -math.inf)
    if not lo_k <= hi_k:
        raise ArgumentError(f"[{a}, {b}] holds no {KIND_NAMES[kind]} value")
    pr.mean, pr.std, pr.lo_clip, pr.hi_clip = m, sd, lo_k, hi_k
    if sd > 0:
        pr.alpha, pr.beta = (lo - m) / sd, (hi - m) / sd
    pr.sigma = fi_call_seed(k0, k1, take_call())
    if sd == 0 or lo == hi or (pr.alpha == pr.beta and not isfinite(pr.alpha)):
        # No spread, or [a, b] beyond DBL_MAX standard deviations from the mean: the
        # value of the target nearest the mean inside [a, b].
        pr.bits = kind_bits(min(max(m, lo_k), hi_k), kind)
        _submit(t, FI_CONSTANT, &pr)
        return
    pr.trunc_mode, pr.rate = _trunc_mode(pr.alpha, pr.beta)
    _submit(t, FI_TRUNC + kind, &pr)


def _trunc_mode(double alpha, double beta):
    """(mode, rate) for standardized bounds: normal proposals (0) when [alpha, beta]
    holds more than 30% of the mass (torch's threshold); for an interval within one
    tail, exponential proposals (2) when it is wider than Robert's (1995) bound,
    uniform proposals (1) otherwise (and for narrow intervals around 0). In the far
    tail, where the near end's square overflows, always exponential proposals at the
    rate of the near end (each is then accepted: no overflowing arithmetic)."""
    if _normal_cdf(beta) - _normal_cdf(alpha) > 0.3:
        return 0, 0.0
    if alpha >= 0 or beta <= 0:
        lo, hi = (alpha, beta) if alpha >= 0 else (-beta, -alpha)
        if lo * lo == math.inf:
            return 2, lo
        root = math.sqrt(lo * lo + 4.0)
        bound = 2.0 * math.sqrt(math.e) / (lo + root) * math.exp((lo * lo - lo * root) / 4.0)
        if hi - lo > bound:
            return 2, (lo + root) / 2.0
    return 1, 0.0


def raw(Target t, uint64_t k0, uint64_t k1, take_call):
    """Fill a uint64 target with the stream's raw 64-bit outputs (float64's layout)."""
    if t.kind != 4:
        raise TypeError(f"random_raw_ fills uint64 arrays, not {t.kind_name}")
    cdef fi_params pr
    pr.sigma = fi_call_seed(k0, k1, take_call())
    _submit(t, FI_RAW, &pr)


def constant(Target t, value):
    """Fill ``t`` with ``value`` rounded to its dtype; ArgumentError, before anything
    is written, for a finite value beyond the dtype's range (``constant_value``)."""
    cdef fi_params pr
    cdef int kind = _float_kind(t)
    pr.bits = kind_bits(constant_value(value, kind), kind)
    _submit(t, FI_CONSTANT, &pr)


def stream_yardstick(cnp.ndarray[cnp.float32_t, ndim=1, mode="c"] out, int nthreads):
    """Write 1.0 into a contiguous float32 array with the plainest OpenMP loop of
    non-temporal stores: the bench's measure of the machine's write bandwidth."""
    if not out.flags.writeable:
        raise ValueError("output array is read-only")
    cdef float *data = <float *>cnp.PyArray_DATA(out)
    cdef int64_t n = out.shape[0]
    with nogil:
        fi_stream_yardstick(data, n, 1 if _forked or nthreads < 1 else nthreads)
