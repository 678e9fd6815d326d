/*
 * What the executor picks kernels by: the registered kernels' names, parameter
 * formats and sizes (fi_kernels.h), which instruction-set paths this CPU runs, and
 * each path's table (compiled in fi_path_<path>.c).
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

const char *const fi_path_names[FI_NPATHS] = {"baseline", "avx2", "avx512", "avx512vbmi",
                                              "avx512bf16"};

int fi_path_supported(int path)
{
    if (path == FI_PATH_BASELINE) return 1;
#ifdef FI_EMULATE_AVX512           /* fi_emulate.h: every CPU runs them, emulated */
    if (path == FI_PATH_AVX512 || path == FI_PATH_AVX512VBMI || path == FI_PATH_AVX512BF16)
        return 1;
#endif
#ifdef FI_X86
    __builtin_cpu_init();
    const int f16c = __builtin_cpu_supports("f16c");
    if (path == FI_PATH_AVX2) return __builtin_cpu_supports("avx2") && f16c;
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                       f16c;
    if (path == FI_PATH_AVX512) return avx512;
    const int vbmi = avx512 && __builtin_cpu_supports("avx512vbmi");
    if (path == FI_PATH_AVX512VBMI) return vbmi;
    if (path == FI_PATH_AVX512BF16) return vbmi && __builtin_cpu_supports("avx512bf16");
#endif
    return 0;
}

static const fi_path *fi_path_of(int path)
{
#ifdef FI_X86
    if (path == FI_PATH_AVX512BF16) return &fi_path_avx512bf16;
    if (path == FI_PATH_AVX512VBMI) return &fi_path_avx512vbmi;
    if (path == FI_PATH_AVX512) return &fi_path_avx512;
    if (path == FI_PATH_AVX2) return &fi_path_avx2;
#endif
    (void)path;
    return &fi_path_baseline;
}

const fi_piece_fn *fi_path_table(int path) { return fi_path_of(path)->table; }

fi_round16_fn fi_path_round16(int path) { return fi_path_of(path)->round16; }
