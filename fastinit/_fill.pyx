# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parallel fills: where a fill writes (Target), and the OpenMP loop that writes it.

A fill is cut into pieces (fastinit/src/fi_layout.h); pieces are shared among OpenMP threads
with the GIL released. Which thread writes a piece never changes what is written:
values depend only on the call seed and the global element index.
"""

import math
import os
import struct
import threading
import warnings

import numpy as np

from fastinit import _dtypes
from fastinit._checks import ArgumentError, check

cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, isfinite, nextafter, nextafterf
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy


cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

from fastinit._kernels cimport (
    FI_MAXDIM, FI_NKERNELS, FI_NPATHS, FI_PATH_BASELINE, fi_block_elements, fi_build_flags,
    fi_compiler, fi_cursor, fi_cursor_bind, fi_cursor_free, fi_cursor_new,
    fi_kernel_formats, fi_kernel_names, fi_kernel_param_sizes, fi_omp_max_threads,
    fi_openmp_enabled, fi_path_names, fi_path_supported, fi_path_table, fi_piece_fn, fi_plan,
    fi_store_fence, fi_stream_yardstick,
)

cnp.import_array()

# Elements per piece of parallel work (16 blocks).
cdef int64_t PIECE_LEN = 16 * fi_block_elements
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
    """Use ``n`` threads for fills; ``None`` restores the default (see
    ``get_num_threads``)."""
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


def _cpus_available():
    """The CPUs this process may run on: its affinity mask where the OS has one."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


cdef int _fill_threads():
    """The threads a large fill uses now (see get_num_threads)."""
    if not fi_openmp_enabled() or _forked:
        return 1
    if _requested_threads > 0:
        return _requested_threads
    if "OMP_NUM_THREADS" in os.environ:     # the user's number, even beyond the CPUs
        return fi_omp_max_threads()
    return min(fi_omp_max_threads(), _cpus_available())


def get_num_threads():
    """The number of threads a large fill uses: the number set by ``set_num_threads``;
    by default OpenMP's (``OMP_NUM_THREADS``, or threadpoolctl's limit), capped at the
    CPUs this process may run on (its affinity mask: containers and ``taskset``) unless
    ``OMP_NUM_THREADS`` asks for more; 1 in a build without OpenMP and in a process
    made by fork() (use the spawn or forkserver start methods for parallel children)."""
    return _fill_threads()


def simd_paths():
    """The instruction-set paths this CPU can run, from baseline to widest."""
    return [fi_path_names[p].decode() for p in range(FI_NPATHS) if fi_path_supported(p)]


def get_simd_path():
    """The instruction-set path the kernels use now."""
    return fi_path_names[_path].decode()


def set_simd_path(name):
    """Use the kernels compiled for ``name`` (one of ``simd_paths()``).

    All paths write the same bits; this exists to test that, and to measure them.
    """
    global _path
    names = [fi_path_names[p].decode() for p in range(FI_NPATHS)]
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
        "block_elements": fi_block_elements,
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
            raise TypeError(f"unsupported dtype {out.dtype}; {_dtypes.UNSUPPORTED}")
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

# --------------------------------------------------------------------------------------
# Jobs and the parallel loop
# --------------------------------------------------------------------------------------

# The kernels of fastinit/src/fi_kernels.def by name: (number, the struct packing their
# parameters in their C struct's layout, the parameters' names in that order).
cdef enum:
    PARAMS_WORDS = 16           # room for any kernel's parameter struct, in uint64 words

KERNELS = {}
for _k in range(FI_NKERNELS):
    _fields = [f.split(":") for f in fi_kernel_formats[_k].decode().split()]
    _packer = struct.Struct("@" + "".join(code for _, code in _fields))
    # The format must describe the C struct: the same size once padded to 8 bytes.
    if not (-(-_packer.size // 8) * 8 == fi_kernel_param_sizes[_k] <= 8 * PARAMS_WORDS):
        raise ImportError(f"kernel {fi_kernel_names[_k].decode()}: its parameter format "
                          "does not describe its parameter struct")
    KERNELS[fi_kernel_names[_k].decode()] = (_k, _packer, tuple(name for name, _ in _fields))


cdef class Job:
    """One validated fill: its target, kernel and packed parameters."""

    cdef Target target
    cdef int kernel
    cdef uint64_t params[PARAMS_WORDS]


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


def submit(Target t, str kernel, dict params):
    """Fill ``t`` with the kernel named ``kernel`` (fastinit/src/fi_kernels.def) and
    ``params`` (by field name; fields the kernel does not have are ignored): now, or
    in order with the fills collected by ``collecting``."""
    number, packer, fields = KERNELS[kernel]
    cdef bytes packed = packer.pack(*[params[name] for name in fields])
    cdef Job job = Job.__new__(Job)
    job.target, job.kernel = t, number
    memcpy(job.params, <const char *>packed, len(packed))
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
    cdef const void **params = <const void **>malloc(n * sizeof(void *))
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
            params[i] = <const void *>job.params
            starts[i + 1] = starts[i] + job.target.plan.npieces
            elements += job.target.size
        if starts[n] == 0:
            return
        if elements >= PARALLEL_MIN:
            nthreads = <int>min(<int64_t>_fill_threads(), starts[n])
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
                            const void **params, const int64_t *starts, Py_ssize_t n,
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
                      const void **params, const int64_t *starts, Py_ssize_t n,
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

cdef int _float_kind(Target t) except -1:
    if t.kind == _dtypes.UINT64.kind:
        raise TypeError(f"unsupported dtype uint64; {_dtypes.UNSUPPORTED} (uint64 arrays take "
                        "random_raw_)")
    return t.kind


# --------------------------------------------------------------------------------------
# Fill requests: each checks a distribution's arguments against the target and gives
# (kernel name, parameters) for ``submit``; the caller adds the call seed ``sigma``.
# --------------------------------------------------------------------------------------

def uniform_request(Target t, low, high):
    """Uniform values in [low, high).

    Raises ArgumentError (a RuntimeError, as torch's ``uniform_``) when low > high, when
    high - low exceeds the dtype's largest finite value, or when a bound is not
    finite in the target's dtype. Nothing is written then. For float16 and
    bfloat16 the float32 values are capped below high rounded to the target, so
    that rounding to 16 bits keeps them below it.
    """
    cdef double lo = low, hi = high
    cdef float lo_f, hi_f, r_f, cap_f
    cdef int kind = _float_kind(t)
    dtype = _dtypes.BY_KIND[kind]
    check("uniform_", lo=lo, hi=hi, low=low, high=high, dtype=dtype)
    pr = dict(low=0.0, range=0.0, cap=0.0, low_f=0.0, range_f=0.0, cap_f=0.0)
    if kind == 1:
        pr["low"], pr["range"] = lo, hi - lo
        pr["cap"] = nextafter(hi, -INFINITY) if lo < hi else hi
    else:
        lo_f = <float>lo
        hi_f = <float>hi
        r_f = hi_f - lo_f
        if not (isfinite(lo_f) and isfinite(hi_f) and isfinite(r_f)):
            raise ArgumentError(f"uniform_ bounds from={low}, to={high} overflow float32")
        cap_f = nextafterf(hi_f, -INFINITY) if lo_f < hi_f else hi_f
        if kind >= 2:
            lo_k, hi_k = _dtypes.round_to(lo_f, kind), _dtypes.round_to(hi_f, kind)
            if not (math.isfinite(lo_k) and math.isfinite(hi_k)):
                raise ArgumentError(
                    f"uniform_ bounds from={low}, to={high} overflow {dtype.name}")
            below = _dtypes.next_toward(hi_k, kind, -math.inf) if lo_k < hi_k else hi_k
            cap_f = min(cap_f, <float>below)
        pr["low_f"], pr["range_f"], pr["cap_f"] = lo_f, r_f, cap_f
    return "uniform_" + dtype.name, pr


def normal_request(Target t, mean, std):
    """mean + std * z, z standard normal (the Ziggurat of docs/stream.md).

    ArgumentError (a ValueError and a RuntimeError, as torch raises), before anything
    is written, for std < 0 ("normal expects std >= 0.0") and for a mean or std that
    is not finite in the target's dtype.
    float16 and bfloat16 round the float32 values.
    """
    cdef double m = mean, sd = std
    cdef float m_f = <float>m, sd_f = <float>sd
    cdef int kind = _float_kind(t)
    check("normal_", m=m, sd=sd, mean=mean, std=std)
    if kind != 1 and not (isfinite(m_f) and isfinite(sd_f)):
        raise ArgumentError(f"normal mean={mean}, std={std} overflow float32")
    if sd == 0:
        return "constant", dict(bits=_dtypes.bits(m if kind == 1 else m_f, kind))
    return "normal_" + _dtypes.BY_KIND[kind].name, dict(mean=m, std=sd, mean_f=m_f, std_f=sd_f)


def _normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def trunc_normal_request(Target t, mean, std, a, b):
    """normal(mean, std) values conditioned on [a, b] (docs/stream.md).

    Exact rejection sampling from block-local streams: normal proposals when the
    interval holds more than 30% of the mass (as torch decides), uniform proposals
    on [a, b] otherwise, so narrow intervals and small std stay fast and exact.
    Values are mean + std * z rounded to the dtype and clipped to the values of the
    dtype inside [a, b], so they never leave [a, b].

    ArgumentError (a ValueError and a RuntimeError) for a > b, std < 0, non-finite
    arguments, or an [a, b] that holds no value of the dtype.
    std == 0 fills with mean clipped to [a, b].
    """
    cdef double m = mean, sd = std, lo = a, hi = b, alpha = 0.0, beta = 0.0
    cdef int kind = _float_kind(t)
    dtype = _dtypes.BY_KIND[kind]
    check("trunc_normal_", m=m, sd=sd, lo=lo, hi=hi, mean=mean, std=std, a=a, b=b)
    lo_k, hi_k = _dtypes.round_to(lo, kind), _dtypes.round_to(hi, kind)
    if lo_k < lo:
        lo_k = _dtypes.next_toward(lo_k, kind, math.inf)
    if hi_k > hi:
        hi_k = _dtypes.next_toward(hi_k, kind, -math.inf)
    if not lo_k <= hi_k:
        raise ArgumentError(f"[{a}, {b}] holds no {dtype.name} value")
    if sd > 0:
        alpha, beta = (lo - m) / sd, (hi - m) / sd
    if sd == 0 or lo == hi or (alpha == beta and not isfinite(alpha)):
        # No spread, or [a, b] beyond DBL_MAX standard deviations from the mean: the
        # value of the target nearest the mean inside [a, b].
        return "constant", dict(bits=_dtypes.bits(min(max(m, lo_k), hi_k), kind))
    mode, rate = _trunc_mode(alpha, beta)
    return "trunc_normal_" + dtype.name, dict(
        mean=m, std=sd, alpha=alpha, beta=beta, lo_clip=lo_k, hi_clip=hi_k, rate=rate,
        mode=mode)


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


def raw_request(Target t):
    """The stream's raw 64-bit outputs, into a uint64 target (float64's layout)."""
    if t.kind != 4:
        raise TypeError(f"random_raw_ fills uint64 arrays, not {_dtypes.BY_KIND[t.kind].name}")
    return "raw_uint64", {}


def constant(Target t, value):
    """Fill ``t`` with ``value`` rounded to its dtype (``constant_request``)."""
    submit(t, *constant_request(t, value))


def constant_request(Target t, value):
    """``value`` rounded to the target's dtype; ArgumentError for a finite value beyond
    the dtype's range (torch's check; see fastinit/_checks.py)."""
    cdef int kind = _float_kind(t)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"constant value must be a real number, got {type(value).__name__}")
    number = complex(value) if isinstance(value, complex) else complex(float(value), 0.0)
    check("constant_", v=number.real, imag=number.imag, dtype=_dtypes.BY_KIND[kind])
    return "constant", dict(bits=_dtypes.bits(number.real, kind))


def stream_yardstick(cnp.ndarray[cnp.float32_t, ndim=1, mode="c"] out, int nthreads):
    """Write 1.0 into a contiguous float32 array with the plainest OpenMP loop of
    non-temporal stores: the bench's measure of the machine's write bandwidth."""
    if not out.flags.writeable:
        raise ValueError("output array is read-only")
    cdef float *data = <float *>cnp.PyArray_DATA(out)
    cdef int64_t n = out.shape[0]
    with nogil:
        fi_stream_yardstick(data, n, 1 if _forked or nthreads < 1 else nthreads)
