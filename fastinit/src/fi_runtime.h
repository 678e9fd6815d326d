/* OpenMP queries, huge-page advice, the bench's yardstick and build facts (fi_runtime.c). */
#ifndef FI_RUNTIME_H
#define FI_RUNTIME_H

#include <stdint.h>

int fi_openmp_enabled(void);
int fi_omp_max_threads(void);
void fi_omp_use_one_thread(void);
/* Writes 1.0 into n floats with the plainest OpenMP loop of non-temporal stores. */
void fi_stream_yardstick(float *a, int64_t n, int nthreads);
double fi_first_touch_yardstick(int64_t nbytes, int nthreads, int advise_huge);
/* Asks the OS to back the 2 MiB-aligned pages inside [addr, addr + nbytes) with
 * transparent huge pages; returns the bytes advised, 0 where the OS has no such
 * advice, or -errno. */
int64_t fi_advise_huge_pages(uintptr_t addr, int64_t nbytes);
extern const char *const fi_build_flags;
extern const char *const fi_compiler;

#endif /* FI_RUNTIME_H */
