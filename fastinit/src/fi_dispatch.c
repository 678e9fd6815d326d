/*
 * The one translation unit that holds the fill kernels: every kernel registered in
 * fi_kernels.h, compiled into each instruction-set path (fi_path.inc), and the
 * tables the executor picks from at run time.
 */
#include "fi_dispatch.h"

#include "fi_kernels.h"

#define FI_NAME(NAME, BODY, PARAMS, FORMAT) #NAME,
const char *const fi_kernel_names[] = {FI_KERNELS(FI_NAME)};
#undef FI_NAME

#define FI_FORMAT(NAME, BODY, PARAMS, FORMAT) FORMAT,
const char *const fi_kernel_formats[] = {FI_KERNELS(FI_FORMAT)};
#undef FI_FORMAT

#define FI_SIZE(NAME, BODY, PARAMS, FORMAT) sizeof(PARAMS),
const size_t fi_kernel_param_sizes[] = {FI_KERNELS(FI_SIZE)};
#undef FI_SIZE

const int fi_nkernels = (int)(sizeof fi_kernel_names / sizeof fi_kernel_names[0]);

const char *const fi_path_names[FI_NPATHS] = {"baseline", "avx2", "avx512"};

#define FI_PATH_SUFFIX baseline
#define FI_PATH_ATTR
#include "fi_path.inc"

#ifdef FI_X86
#define FI_PATH_SUFFIX avx2
#define FI_PATH_ATTR __attribute__((target("avx2,f16c")))
#include "fi_path.inc"

#define FI_PATH_SUFFIX avx512
#define FI_PATH_ATTR __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,f16c")))
#include "fi_path.inc"
#endif

int fi_path_supported(int path)
{
    if (path == FI_PATH_BASELINE) return 1;
#ifdef FI_X86
    __builtin_cpu_init();
    const int f16c = __builtin_cpu_supports("f16c");
    if (path == FI_PATH_AVX2) return __builtin_cpu_supports("avx2") && f16c;
    if (path == FI_PATH_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && f16c;
#endif
    return 0;
}

const fi_piece_fn *fi_path_table(int path)
{
#ifdef FI_X86
    if (path == FI_PATH_AVX512) return fi_table_avx512;
    if (path == FI_PATH_AVX2) return fi_table_avx2;
#endif
    (void)path;
    return fi_table_baseline;
}
