# The Target of _plan.pyx, for the modules that read its plan.
from fastinit._kernels cimport fi_plan


cdef class Target:
    cdef fi_plan plan
    cdef readonly object array
    cdef readonly int kind          # a _dtypes kind (0 float32 ... 4 uint64)
    cdef readonly Py_ssize_t size
    cdef readonly size_t mem_lo, mem_hi     # the bytes it may write: [mem_lo, mem_hi)
    cdef readonly object view       # a contiguous target's 1-D typed memoryview

    cdef char *_typed_view(self, out) except NULL
