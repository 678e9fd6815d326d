/*
 * Runtime dispatch: the fill kernels of fi_kernels.h, compiled once per instruction
 * set (baseline x86-64, AVX2, AVX-512: one translation unit each), and which of
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

enum { FI_PATH_BASELINE, FI_PATH_AVX2, FI_PATH_AVX512, FI_NPATHS };
extern const char *const fi_path_names[FI_NPATHS];

/* Each path's kernels, by number (fi_path_<path>.c; the AVX tables on x86-64 only). */
extern const fi_piece_fn fi_table_baseline[], fi_table_avx2[], fi_table_avx512[];

/* The kernels compiled for a path, by number. */
const fi_piece_fn *fi_path_table(int path);
/* A path's rounding of float32 values to 16 bits (bf16: bfloat16, else float16),
 * n a multiple of 8: what its 16-bit fills write, exposed for the tests. */
typedef void (*fi_round16_fn)(const float *, uint16_t *, int64_t, int);
void fi_round16_baseline(const float *src, uint16_t *dst, int64_t n, int bf16);
void fi_round16_avx2(const float *src, uint16_t *dst, int64_t n, int bf16);
void fi_round16_avx512(const float *src, uint16_t *dst, int64_t n, int bf16);
fi_round16_fn fi_path_round16(int path);
/* Whether this CPU (and OS) can run a path. */
int fi_path_supported(int path);

#endif /* FI_DISPATCH_H */
