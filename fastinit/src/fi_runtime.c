/*
 * The run-time environment the executor asks about: OpenMP (guarded, so that a
 * serial build compiles and imports), huge-page advice for fresh memory, the
 * write-bandwidth yardstick of the bench, and what the library was built with.
 */
#include "fi_runtime.h"

#include "fi_common.h"

#if defined(__linux__)
#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

int fi_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int64_t fi_advise_huge_pages(uintptr_t addr, int64_t nbytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21;
    uintptr_t lo = (addr + huge - 1) & ~(huge - 1);
    uintptr_t hi = (addr + (uintptr_t)nbytes) & ~(huge - 1);
    if (nbytes <= 0 || hi <= lo)
        return 0;
    if (madvise((void *)lo, hi - lo, MADV_HUGEPAGE) != 0)
        return -(int64_t)errno;
    return (int64_t)(hi - lo);
#else
    (void)addr;
    (void)nbytes;
    return 0;
#endif
}

int fi_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* One thread for every later parallel region of this process's OpenMP runtime (a
 * child made by fork(), whose inherited thread pool is unusable). */
void fi_omp_use_one_thread(void)
{
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
}

/* The bench's yardstick of write bandwidth: the plainest OpenMP loop of
 * non-temporal stores of a constant over a float32 array (cache lines split
 * statically among the threads). fastinit's fills are measured against it. */
void fi_stream_yardstick(float *a, int64_t n, int nthreads)
{
#ifdef FI_X86
    int64_t head = (int64_t)(((16 - ((uintptr_t)a & 15)) & 15) / sizeof(float));
    if (head > n) head = n;
    for (int64_t i = 0; i < head; i++) a[i] = 1.0f;
    float *body = a + head;
    const int64_t vectors = (n - head) / 4;
    if (nthreads > 1) {
        #pragma omp parallel num_threads(nthreads)
        {
            #pragma omp for schedule(static)
            for (int64_t i = 0; i < vectors; i++) _mm_stream_ps(body + 4 * i, _mm_set1_ps(1.0f));
            _mm_sfence();
        }
    } else {
        for (int64_t i = 0; i < vectors; i++) _mm_stream_ps(body + 4 * i, _mm_set1_ps(1.0f));
        _mm_sfence();
    }
    for (int64_t i = head + 4 * vectors; i < n; i++) a[i] = 1.0f;
#else
    (void)nthreads;
    for (int64_t i = 0; i < n; i++) a[i] = 1.0f;
#endif
}

/* The first-touch yardstick of the models bench: seconds to write nbytes into
 * freshly mapped memory (never touched: every page faults in during the write)
 * with the stream yardstick's loop on nthreads threads, huge pages advised first if
 * asked (as materialize does). The mapping is returned to the OS afterwards, not
 * timed. -1 if the memory cannot be mapped. */
double fi_first_touch_yardstick(int64_t nbytes, int nthreads, int advise_huge)
{
#if defined(__linux__)
    void *p = mmap(NULL, (size_t)nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1.0;
    if (advise_huge)
        fi_advise_huge_pages((uintptr_t)p, nbytes);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fi_stream_yardstick((float *)p, nbytes / (int64_t)sizeof(float), nthreads);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    munmap(p, (size_t)nbytes);
    return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
#else
    (void)nbytes;
    (void)nthreads;
    (void)advise_huge;
    return -1.0;
#endif
}

/* Build facts for fastinit.build_info(); setup.py defines FI_BUILD_FLAGS. */
#ifndef FI_BUILD_FLAGS
#define FI_BUILD_FLAGS "unknown"
#endif
#if defined(__clang__)
#define FI_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define FI_COMPILER "gcc " __VERSION__
#else
#define FI_COMPILER "unknown"
#endif
const char *const fi_build_flags = FI_BUILD_FLAGS;
const char *const fi_compiler = FI_COMPILER;
