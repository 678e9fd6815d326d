/*
 * What the kernel library offers the Cython modules: plans, cursors, the kernels by
 * path, the deterministic exp and log, and the run-time queries. The kernels
 * themselves are compiled once, into the library (fi_dispatch.c and its headers).
 */
#ifndef FI_API_H
#define FI_API_H

#include <stdint.h>

#include "fi_detmath.h"
#include "fi_dispatch.h"
#include "fi_plan.h"
#include "fi_runtime.h"

extern const int64_t fi_block_elements;     /* FI_BLOCK of fi_stream.h */

typedef struct fi_cursor fi_cursor;
fi_cursor *fi_cursor_new(void);
void fi_cursor_free(fi_cursor *c);
void fi_cursor_bind(fi_cursor *c, int64_t job);

/* Orders this thread's non-temporal stores before anything that follows. */
void fi_store_fence(void);

#endif /* FI_API_H */
