# The codes of fastcalc._status.Status (DESIGN section 7) for kernels, which return them per
# problem without touching Python; tests/test_status.py checks that the two agree.
cdef enum:
    SUCCESS = 0
    MAX_ITERATIONS = 1
    SINGULAR = 2
    NON_FINITE = 3
    OUT_OF_BOUNDS = 4
    CALLBACK_ERROR = 5
