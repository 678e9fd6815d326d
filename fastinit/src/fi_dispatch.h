/*
 * Runtime dispatch: the fill kernels of fi_kernels.h, compiled once per instruction
 * set (baseline x86-64, AVX2, AVX-512, AVX-512 with VBMI, and with VBMI and BF16: one
 * translation unit each), and which of
 * those this CPU runs. Every path writes the same bits.
 */
#ifndef FI_DISPATCH_H
#define FI_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "fi_plan.h"

struct fi_cursor;

/* Fills piece `piece` of a plan with a kernel's parameters (its parameter struct). */
typedef void (*fi_piece_fn)(struct fi_cursor *, const fi_plan *, const void *, int64_t);

/* The kernels, by number: their names, parameter formats and parameter sizes. */
extern const int fi_nkernels;
extern const char *const fi_kernel_names[];
extern const char *const fi_kernel_formats[];
extern const size_t fi_kernel_param_sizes[];

enum {
    FI_PATH_BASELINE,
    FI_PATH_AVX2,
    FI_PATH_AVX512,
    FI_PATH_AVX512VBMI,
    FI_PATH_AVX512BF16,
    FI_NPATHS
};
extern const char *const fi_path_names[FI_NPATHS];

/* A path's rounding of float32 values to 16 bits (bf16: bfloat16, else float16),
 * n a multiple of 8: what its 16-bit fills write (nan_free set: as they round, for
 * values that are not NaN; else with NaN handled as specified), for the tests. */
typedef void (*fi_round16_fn)(const float *src, uint16_t *dst, int64_t n, int bf16, int nan_free);

/* What each path's translation unit (fi_path_<path>.c) exports: its kernels by
 * number and its 16-bit rounding. The AVX paths exist on x86-64 only. */
typedef struct {
    const fi_piece_fn *table;
    fi_round16_fn round16;
} fi_path;
extern const fi_path fi_path_baseline, fi_path_avx2, fi_path_avx512, fi_path_avx512vbmi,
    fi_path_avx512bf16;

/* The kernels compiled for a path, by number, and its 16-bit rounding. */
const fi_piece_fn *fi_path_table(int path);
fi_round16_fn fi_path_round16(int path);
/* Whether this CPU (and OS) can run a path. */
int fi_path_supported(int path);

#endif /* FI_DISPATCH_H */
