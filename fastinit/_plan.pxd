# The Target of _plan.pyx, for the modules that read its plan.
from fastinit._kernels cimport fi_plan


cdef class Target:
    cdef fi_plan plan
    cdef readonly object owner      # what holds the memory, kept alive with the target
    cdef size_t owner_ptr           # a storage owner's data_ptr() when made (see moved())
    cdef readonly int kind          # a _dtypes kind (0 float32 ... 4 uint64)
    cdef readonly Py_ssize_t size
    cdef readonly size_t mem_lo, mem_hi     # the bytes it may write: [mem_lo, mem_hi)
    cdef readonly object view       # a contiguous target's 1-D typed memoryview

    cdef int _lay_out(self, owner, char *data, int nd, int itemsize, bint no_memory,
                      bint contiguous, bint aligned, global_shape, global_offset) except -1
    cdef char *_typed_view(self, out) except NULL
