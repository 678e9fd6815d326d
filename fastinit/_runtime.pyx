# cython: language_level=3
"""Where fills run: how many threads (OpenMP's default capped at the CPUs this process
may use, or the user's number; one in a child made by fork()), which instruction-set
path of the kernels, whether fresh memory is backed by huge pages, what the kernel
library was built with, and how fast this machine writes memory at all (the bench's
yardstick)."""

import os
import warnings

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uint16_t, uintptr_t

from fastinit._kernels cimport (
    FI_NPATHS, FI_PATH_BASELINE, fi_block_elements, fi_build_flags, fi_compiler,
    fi_advise_huge_pages, fi_omp_max_threads, fi_omp_use_one_thread, fi_openmp_enabled,
    fi_path_names, fi_path_round16,
    fi_path_supported, fi_stream_yardstick, fi_first_touch_yardstick,
)

cnp.import_array()

cdef int _requested_threads = 0     # 0: the default (see get_num_threads)
cdef bint _forked = False           # in a child made by fork(): OpenMP is off limits
cdef bint _pool_started = False     # this process has run a parallel fill
cdef int _path = FI_PATH_BASELINE


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


def pool_started():
    """Note that a fill ran on OpenMP threads (the executor calls this)."""
    global _pool_started
    _pool_started = True


def _after_fork_in_child():
    # GNU OpenMP's thread pool does not survive fork(): a child entering a parallel
    # region after its parent did would hang. Fills in a forked child run serially,
    # and once the parent has run a parallel fill, the process's one OpenMP runtime
    # (torch's too) is told to use one thread, so torch's parallel ops in the child
    # run instead of hanging.
    global _forked
    _forked = True
    if _pool_started:
        fi_omp_use_one_thread()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _cpus_available():
    """The CPUs this process may run on: its affinity mask where the OS has one."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fill_threads():
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
    return fill_threads()


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


# Fresh memory (a materialized model, fastinit.empty) at least this large is advised
# to be backed by transparent huge pages before its first write.
HUGE_PAGE_MIN_BYTES = 4 << 20


def _thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.find("[") + 1:text.find("]")] if "[" in text else None


def _returns_free_memory_to_host():
    """A virtio balloon with free page reporting (feature bit 5): the guest hands
    freed 2 MiB blocks back to its host, so the next huge page of such memory is
    faulted in again on the host, slower than 512 small pages (measured)."""
    base = "/sys/bus/virtio/devices"
    try:
        devices = os.listdir(base)
    except OSError:
        return False
    for d in devices:
        try:
            with open(f"{base}/{d}/device") as f:
                if int(f.read(), 16) != 5:
                    continue
            with open(f"{base}/{d}/features") as f:
                features = f.read().strip()
        except (OSError, ValueError):
            continue
        if len(features) > 5 and features[5] == "1":
            return True
    return False


def _huge_page_decision():
    """(advise, reason): FASTINIT_HUGEPAGES=1 or 0 decides; otherwise ("auto") advise
    where the kernel takes madvise advice and freed memory stays with this machine."""
    setting = os.environ.get("FASTINIT_HUGEPAGES", "auto").strip().lower()
    if setting in ("0", "off", "no", "false"):
        return False, "off: FASTINIT_HUGEPAGES=0"
    if setting in ("1", "on", "yes", "true"):
        return True, "on: FASTINIT_HUGEPAGES=1"
    if setting != "auto":
        warnings.warn(f"FASTINIT_HUGEPAGES={setting!r} ignored: use 1, 0 or auto",
                      RuntimeWarning, stacklevel=2)
    mode = _thp_mode()
    if mode not in ("madvise", "always"):
        return False, f"off: transparent huge pages are {mode or 'not available'} here"
    if _returns_free_memory_to_host():
        return False, ("off: this virtual machine returns freed memory to its host "
                       "(free page reporting), so huge pages fault slower here; "
                       "FASTINIT_HUGEPAGES=1 forces them")
    return True, f"on: transparent huge pages in {mode} mode"


_advise_huge_pages, huge_pages_reason = _huge_page_decision()


def advise_huge_pages(address, nbytes):
    """Advise the OS to back fresh memory [address, address + nbytes) with huge pages
    before its first write (when the policy above says so and it is large enough).
    Returns the bytes advised."""
    if not _advise_huge_pages or nbytes < HUGE_PAGE_MIN_BYTES:
        return 0
    cdef int64_t done = fi_advise_huge_pages(<uintptr_t>address, <int64_t>nbytes)
    return max(int(done), 0)         # advice the OS refuses costs nothing but speed


def build_facts():
    """What the extension was built with: OpenMP, compiler and flags."""
    return {
        "openmp": bool(fi_openmp_enabled()),
        "compiler": fi_compiler.decode(),
        "flags": fi_build_flags.decode(),
        "block_elements": fi_block_elements,
        "huge_pages": huge_pages_reason,
    }




def path_index():
    """The number of the instruction-set path in use (for the kernel tables)."""
    return _path


def round_to_16bit(cnp.ndarray[cnp.float32_t, ndim=1, mode="c"] src,
                   cnp.ndarray[cnp.uint16_t, ndim=1, mode="c"] out, bint bfloat16,
                   bint nan_free=False):
    """Round float32 values to float16 or bfloat16 bits (docs/stream.md, section 7)
    with the conversion the current path's 16-bit fills use (for the tests, which
    hold every path to the specification on every float32). With ``nan_free`` it
    rounds as the fills do, without the NaN handling that their values, never NaN,
    do not need: exact for every other value, unspecified for a NaN."""
    if out.shape[0] != src.shape[0] or src.shape[0] % 8:
        raise ValueError("src and out need the same length, a multiple of 8")
    cdef int64_t n = src.shape[0]
    with nogil:
        fi_path_round16(_path)(<const float *>cnp.PyArray_DATA(src),
                               <uint16_t *>cnp.PyArray_DATA(out), n, bfloat16, nan_free)


def forked():
    """Whether this process was made by fork() after fastinit was imported (its fills
    then run on one thread: GNU OpenMP's pool does not survive fork)."""
    return bool(_forked)


def stream_yardstick(cnp.ndarray[cnp.float32_t, ndim=1, mode="c"] out, int nthreads):
    """Write 1.0 into a contiguous float32 array with the plainest OpenMP loop of
    non-temporal stores: the bench's measure of the machine's write bandwidth."""
    if not out.flags.writeable:
        raise ValueError("output array is read-only")
    cdef float *data = <float *>cnp.PyArray_DATA(out)
    cdef int64_t n = out.shape[0]
    cdef int threads = 1 if _forked or nthreads < 1 else nthreads
    with nogil:
        fi_stream_yardstick(data, n, threads)


def first_touch_yardstick(nbytes, int nthreads):
    """Seconds the stream yardstick's loop takes to write ``nbytes`` into memory mapped
    fresh for it (every page faulted in on first write, huge pages advised when
    materialize would advise them), on ``nthreads`` threads: what allocating and
    filling a model cannot beat on this machine. None where it cannot be measured
    (not Linux, or the memory cannot be mapped)."""
    cdef int64_t n = int(nbytes)
    cdef int threads = 1 if _forked or nthreads < 1 else nthreads
    cdef int advise = 1 if _advise_huge_pages and n >= HUGE_PAGE_MIN_BYTES else 0
    cdef double seconds
    with nogil:
        seconds = fi_first_touch_yardstick(n, threads, advise)
    return None if seconds < 0 else seconds
