# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The executor: fill requests become jobs, and jobs are written by the kernels in one
GIL-free OpenMP loop over all their pieces (in rounds, so that Ctrl-C can stop a huge
fill), now or, for a Batch (init_all's plan), all at once. Which thread writes a piece never
changes what is written: values depend only on the call seed and the global index."""

import bisect
import contextvars
import operator
import struct

from fastinit import _runtime
from fastinit._plan import PIECE_LEN

from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from fastinit._kernels cimport (
    fi_cursor, fi_cursor_bind, fi_cursor_free, fi_cursor_new, fi_kernel_formats, fi_nkernels,
    fi_kernel_names, fi_kernel_param_sizes, fi_path_table, fi_piece_fn, fi_plan, fi_store_fence,
)
from fastinit._plan cimport Target


cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

# Fills smaller than this many elements run on the calling thread only.
cdef int64_t PARALLEL_MIN = 4 * PIECE_LEN
# Fills of more pieces than this run in rounds of this many pieces (per thread),
# checking for KeyboardInterrupt between rounds.
cdef int64_t ROUND_PIECES = 512
# A parallel loop that writes at least this many bytes bypasses the caches with
# non-temporal stores, in all of its fills: what it writes does not stay in the cache
# anyway, and plain stores would first read each line from memory. Per loop, not per
# fill, so that init_all's mid-sized tensors (GPT-2's 7 MB attention matrices) are
# streamed too: on the Zen 3 machine, GPT-2's 148 tensors in one init_all went from
# 1.11 to 1.08 times one uniform fill of the same bytes.
cdef int64_t STREAM_MIN_BYTES = 8 << 20


# The kernels of fastinit/src/fi_kernels.h by name: (number, the struct packing their
# parameters in their C struct's layout, the parameters' names in that order).
cdef enum:
    PARAMS_WORDS = 16           # room for any kernel's parameter struct, in uint64 words

KERNELS = {}
for _k in range(fi_nkernels):
    _fields = [f.split(":") for f in fi_kernel_formats[_k].decode().split()]
    _packer = struct.Struct("@" + "".join(code for _, code in _fields))
    # The format must describe the C struct: the same size once padded to 8 bytes.
    if not (-(-_packer.size // 8) * 8 == fi_kernel_param_sizes[_k] <= 8 * PARAMS_WORDS):
        raise ImportError(f"kernel {fi_kernel_names[_k].decode()}: its parameter format "
                          "does not describe its parameter struct")
    KERNELS[fi_kernel_names[_k].decode()] = (_k, _packer,
                                             operator.itemgetter(*[name for name, _ in _fields]))


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


# The Batch collecting this thread's (this context's) fills, or None.
_collecting = contextvars.ContextVar("fastinit_batch", default=None)


cdef bint _disjoint(list jobs):
    """Whether no two of ``jobs`` write the same memory (an empty target writes
    none): their byte ranges in address order, each starting at or past the end of
    the one before (if two overlap, so do two neighbours in that order)."""
    cdef Target t
    spans = []
    for job in jobs:
        t = (<Job>job).target
        if t.mem_lo < t.mem_hi:
            spans.append((t.mem_lo, t.mem_hi))
    spans.sort()
    cdef Py_ssize_t k
    for k in range(1, len(spans)):
        if spans[k][0] < spans[k - 1][1]:
            return False
    return True


def fill_groups(list fills):
    """The parallel loops that write ``fills`` (Jobs, in order): runs of consecutive
    fills of distinct memory, a fill of memory that an earlier fill of its run writes
    starting the next run. A plan's fills are nearly always of distinct memory, which
    ``_disjoint`` finds in O(n log n), one loop; otherwise each run's byte ranges are
    kept disjoint in address order, and each fill is checked against them by a binary
    search. (Checking each fill against every one before it took 1.7 s for 20,000.)"""
    if _disjoint(fills):
        return [fills] if fills else []
    cdef Target t
    cdef Py_ssize_t i
    groups, group, los, his = [], [], [], []
    for job in fills:
        t = (<Job>job).target
        if t.mem_lo < t.mem_hi:
            i = bisect.bisect_right(los, t.mem_lo)
            if (i > 0 and his[i - 1] > t.mem_lo) or (i < len(los) and los[i] < t.mem_hi):
                groups.append(group)
                group, los, his, i = [], [], [], 0
            los.insert(i, t.mem_lo)
            his.insert(i, t.mem_hi)
        group.append(job)
    groups.append(group)
    return groups


def _enqueue(job):
    """Run a job now, or keep it in the batch being collected if it writes memory of
    that batch's targets (see ``Batch``)."""
    batch = _collecting.get()
    target = (<Job>job).target if isinstance(job, Job) else job.target
    if batch is not None and batch.holds(target):
        batch.jobs.append(job)
    elif isinstance(job, WriteJob):
        job.write()
    else:
        run_jobs([job])


def submit(Target t, str kernel, dict params):
    """Fill ``t`` with the kernel named ``kernel`` (fastinit/src/fi_kernels.h) and
    ``params`` (by field name; fields the kernel does not have are ignored): now, or
    in order with the fills of the Batch being collected."""
    number, packer, fields = KERNELS[kernel]
    values = fields(params)
    cdef bytes packed = packer.pack(*values) if isinstance(values, tuple) else packer.pack(values)
    cdef Job job = Job.__new__(Job)
    job.target, job.kernel = t, number
    memcpy(job.params, <const char *>packed, len(packed))
    _enqueue(job)


def submit_write(Target target, write):
    """Write values computed in Python into ``target`` (now, or in order with the
    fills of the Batch being collected)."""
    _enqueue(WriteJob(target, write))


class Batch:
    """The fills of a set of targets, collected and then written together.

    ``hold(targets)`` adds targets (their byte ranges) to the batch. Within ``with
    batch:``, fills are checked and take their calls as usual, but those that write
    memory of the held targets are only kept; others (an initializer's own scratch
    arrays) run at once. ``run()`` then writes the kept fills, every piece of every
    fill shared among the threads in as few GIL-free loops as order allows: the bits
    of running them one by one. Leaving the block on an exception discards them.
    """

    def __init__(self):
        # The union of the held targets' byte ranges as disjoint intervals in address
        # order, so that ``holds`` is a binary search however many targets a plan has.
        self._los, self._his = [], []
        self.jobs = []

    def hold(self, targets):
        """Add ``targets`` (Targets) to those whose fills the batch keeps."""
        cdef Target t
        cdef Py_ssize_t i, j
        los, his = self._los, self._his
        for t in targets:
            if not t.size:
                continue
            lo, hi = t.mem_lo, t.mem_hi
            # Intervals [i, j) overlap or touch [lo, hi): they become one with it.
            i = bisect.bisect_left(his, lo)
            j = bisect.bisect_right(los, hi)
            if i < j:
                lo, hi = min(lo, los[i]), max(hi, his[j - 1])
            los[i:j] = [lo]
            his[i:j] = [hi]

    def holds(self, Target t):
        """Whether ``t`` writes memory of the held targets."""
        return self._holds_range(t.mem_lo, t.mem_hi)

    def _holds_range(self, lo, hi):
        i = bisect.bisect_right(self._his, lo)     # the first interval ending past lo
        return i < len(self._los) and self._los[i] < hi

    def __enter__(self):
        self._token = _collecting.set(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        _collecting.reset(self._token)
        if exc_type is not None:
            self.jobs = []
        return False

    def run(self):
        """Write what was kept; returns nothing."""
        jobs, self.jobs = self.jobs, []
        run_batch(jobs)

    def write_before(self, memory):
        """Write the kept fills up to the last one that writes ``memory`` (a byte
        range [lo, hi), or None), in order; the later ones stay kept. Code that is
        about to write ``memory`` itself then sees every earlier fill of it done."""
        if memory is None:
            return
        lo, hi = memory
        if not self._holds_range(lo, hi):      # no kept fill can write it (the usual case)
            return
        cdef Py_ssize_t last
        for last in range(len(self.jobs) - 1, -1, -1):        # the last that writes it
            job = self.jobs[last]
            t = (<Job>job).target if isinstance(job, Job) else job.target
            if t.mem_lo < hi and lo < t.mem_hi:
                jobs, self.jobs = self.jobs[:last + 1], self.jobs[last + 1:]
                run_batch(jobs)
                return

    def paused(self):
        """A block in which fills run at once, not kept (a callable's own fills)."""
        return _Paused()


class _Paused:
    def __enter__(self):
        self._token = _collecting.set(None)

    def __exit__(self, *exc):
        _collecting.reset(self._token)
        return False


def run_batch(jobs):
    """Write ``jobs`` in order: consecutive fills in one parallel loop, except that a
    fill of memory an earlier fill of the loop writes starts a new loop, and Python
    writes run alone, after what precedes them. RuntimeError, nothing written, if the
    memory of a fill has moved since it was kept (code that ran meanwhile, an
    init_all callable, reallocated a tensor)."""
    for job in jobs:
        if isinstance(job, Job) and (<Job>job).target.moved():
            raise RuntimeError("the memory of a pending fill was reallocated before it was "
                               "written (a tensor of the plan was resized by code that ran "
                               "in between, such as an init_all callable); resize tensors "
                               "before initializing them")
    fills = []                            # the fills since the last Python write
    for job in jobs:
        if isinstance(job, WriteJob):
            _run_fills(fills)
            fills = []
            job.write()
            continue
        fills.append(job)
    _run_fills(fills)


def _run_fills(list fills):
    for group in fill_groups(fills):
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
    cdef int64_t elements = 0, nbytes = 0, first, last, step
    cdef const fi_piece_fn *table = fi_path_table(_runtime.path_index())
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
            nbytes += job.target.size * job.target.plan.itemsize
        if starts[n] == 0:
            return
        for i in range(n):
            (<Job>jobs[i]).target.plan.stream = nbytes >= STREAM_MIN_BYTES
        if elements >= PARALLEL_MIN:
            nthreads = <int>min(<int64_t>_runtime.fill_threads(), starts[n])
            if nthreads > 1:
                _runtime.pool_started()
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
                try:
                    PyErr_CheckSignals()
                except KeyboardInterrupt as stop:
                    if hasattr(stop, "add_note"):
                        stop.add_note(f"fastinit: stopped after {first} of {starts[n]} "
                                      f"pieces; the target is partly written and its "
                                      f"generator call is taken")
                    raise
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
