/*
 * The registration list: every fill kernel (a distribution in one dtype), once.
 *
 *     X(name, piece function, parameter struct, parameter format)
 *
 * From it fi_dispatch.c makes the per-instruction-set tables, the names the Python
 * side looks kernels up by, and each kernel's parameter layout: Python's struct
 * format with a field name before each code, with which the executor packs a
 * request's parameters (checked against the struct's size at import).
 *
 * Adding a distribution: its kernel file (a header like fi_uniform.h: the parameter
 * struct and format, the piece functions), its #include and lines here, and the
 * Python method that makes its fill requests (fastinit/_generator.py).
 */
#ifndef FI_KERNELS_H
#define FI_KERNELS_H

#include "fi_constant.h"
#include "fi_normal.h"
#include "fi_trunc.h"
#include "fi_uniform.h"

#define FI_KERNELS(X) \
    X(uniform_float32, fi_uniform_f32_body, fi_uniform_params, FI_UNIFORM_FORMAT) \
    X(uniform_float64, fi_uniform_f64_body, fi_uniform_params, FI_UNIFORM_FORMAT) \
    X(uniform_float16, fi_uniform_f16_body, fi_uniform_params, FI_UNIFORM_FORMAT) \
    X(uniform_bfloat16, fi_uniform_bf16_body, fi_uniform_params, FI_UNIFORM_FORMAT) \
    X(normal_float32, fi_normal_f32_body, fi_normal_params, FI_NORMAL_FORMAT) \
    X(normal_float64, fi_normal_f64_body, fi_normal_params, FI_NORMAL_FORMAT) \
    X(normal_float16, fi_normal_f16_body, fi_normal_params, FI_NORMAL_FORMAT) \
    X(normal_bfloat16, fi_normal_bf16_body, fi_normal_params, FI_NORMAL_FORMAT) \
    X(trunc_normal_float32, fi_trunc_f32_body, fi_trunc_params, FI_TRUNC_FORMAT) \
    X(trunc_normal_float64, fi_trunc_f64_body, fi_trunc_params, FI_TRUNC_FORMAT) \
    X(trunc_normal_float16, fi_trunc_f16_body, fi_trunc_params, FI_TRUNC_FORMAT) \
    X(trunc_normal_bfloat16, fi_trunc_bf16_body, fi_trunc_params, FI_TRUNC_FORMAT) \
    X(constant, fi_constant_body, fi_constant_params, FI_CONSTANT_FORMAT) \
    X(raw_uint64, fi_raw_body, fi_raw_params, FI_RAW_FORMAT)

#endif /* FI_KERNELS_H */
