/*
 * Where one fill writes: the plan the executor builds from a target and each piece
 * kernel reads. A plain struct, shared by the C kernels and the Cython executor.
 */
#ifndef FI_PLAN_H
#define FI_PLAN_H

#include <stdint.h>

#define FI_MAXDIM 64

/*
 * A plan describes where one fill writes: the local array (data, shape, byte
 * strides), how its elements map to global indices, and how the work is cut into
 * pieces. Local elements are grouped into runs of run_len consecutive global
 * indices (one run per multi-index of the first run_dims dimensions); each run is
 * cut into pieces of at most piece_len elements. Pieces are the unit of
 * parallel work.
 */
typedef struct fi_plan {
    char *data;
    int ndim;
    int itemsize;
    int contiguous;                 /* local array is C-contiguous */
    int aligned;                    /* data is aligned to the item size */
    int stream;                     /* use non-temporal stores */
    int64_t shape[FI_MAXDIM];
    int64_t strides[FI_MAXDIM];     /* bytes */
    int run_dims;
    int64_t run_len;
    uint64_t run_gstride[FI_MAXDIM];/* global index step per local index, dims < run_dims */
    uint64_t gbase;                 /* global index of the local element (0, ..., 0) */
    int64_t piece_len;
    int64_t pieces_per_run;
    int64_t npieces;
} fi_plan;

#endif /* FI_PLAN_H */
