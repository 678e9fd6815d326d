# Cython declarations of the C kernel library (fastinit/src/fi_api.h) and of the
# header-only engine (fastinit/src/fi_engine.h).
from libc.stdint cimport int64_t, uint16_t, uint64_t, uintptr_t


cdef extern from "fi_engine.h" nogil:
    const uint64_t FI_JUMP[4]
    const uint64_t FI_LONG_JUMP[4]
    uint64_t fi_mix64(uint64_t z)
    uint64_t fi_xoshiro_next(uint64_t *s)
    void fi_xoshiro_fill_raw(uint64_t *s, uint64_t *out, int64_t n)
    void fi_xoshiro_jump(uint64_t *s, const uint64_t *poly)
    uint64_t fi_call_seed(uint64_t k0, uint64_t k1, uint64_t counter)


cdef extern from "fi_api.h" nogil:
    enum:
        FI_MAXDIM
        FI_PATH_BASELINE
        FI_NPATHS

    const int64_t fi_block_elements
    double fi_exp(double a)
    double fi_log(double u)

    ctypedef struct fi_cursor:
        pass
    fi_cursor *fi_cursor_new()
    void fi_cursor_free(fi_cursor *c)
    void fi_cursor_bind(fi_cursor *c, int64_t job)

    ctypedef struct fi_plan:
        char *data
        int ndim
        int itemsize
        int contiguous
        int aligned
        int stream
        int64_t shape[64]
        int64_t strides[64]
        int run_dims
        int64_t run_len
        uint64_t run_gstride[64]
        uint64_t gbase
        int64_t piece_len
        int64_t pieces_per_run
        int64_t npieces

    ctypedef void (*fi_piece_fn)(fi_cursor *, const fi_plan *, const void *, int64_t)
    const int fi_nkernels
    const char *const fi_kernel_names[]
    const char *const fi_kernel_formats[]
    const size_t fi_kernel_param_sizes[]
    const char *const fi_path_names[]
    const fi_piece_fn *fi_path_table(int path)
    int fi_path_supported(int path)
    ctypedef void (*fi_round16_fn)(const float *, uint16_t *, int64_t, int, int)
    fi_round16_fn fi_path_round16(int path)
    void fi_store_fence()

    void fi_stream_yardstick(float *a, int64_t n, int nthreads)
    double fi_first_touch_yardstick(int64_t nbytes, int nthreads, int advise_huge)
    int64_t fi_advise_huge_pages(uintptr_t addr, int64_t nbytes)
    int fi_openmp_enabled()
    int fi_omp_max_threads()
    void fi_omp_use_one_thread()
    const char *fi_build_flags
    const char *fi_compiler
