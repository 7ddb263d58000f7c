cdef int resolve_threads(object n_threads) except -1
