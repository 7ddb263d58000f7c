"""Thread-count resolution for the ``prange`` kernels.

OpenMP is optional: when the extension is built without it, ``omp_get_max_threads`` is replaced
by a stub that reports one thread and every ``prange`` loop runs serially.
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTCALC_HAVE_OPENMP 1
    #else
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_num_procs(void) { return 1; }
    #define FASTCALC_HAVE_OPENMP 0
    #endif
    """
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int FASTCALC_HAVE_OPENMP

import numbers

HAVE_OPENMP = bool(FASTCALC_HAVE_OPENMP)


def max_threads():
    """Number of threads a kernel uses when ``n_threads`` is None (1 without OpenMP)."""
    return omp_get_max_threads()


# Asking OpenMP for far more threads than cores can fail to start them (and abort the process);
# results do not depend on the thread count, so larger requests are capped here.
OVERSUBSCRIPTION = 4


cdef int resolve_threads(object n_threads) except -1:
    """Validate ``n_threads`` (None, or a positive int; -1 means all) and return a thread count.

    The count is at most ``OVERSUBSCRIPTION`` times the number of processors, and 1 without
    OpenMP.
    """
    if n_threads is None:
        return omp_get_max_threads()
    # the type first: comparing an array (or other object) with -1 need not give a bool
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be a positive int, -1 or None, got {n_threads!r}")
    if n_threads == -1:
        return omp_get_max_threads()
    if n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, -1 or None, got {n_threads}")
    if not FASTCALC_HAVE_OPENMP:
        return 1
    return <int>min(int(n_threads), OVERSUBSCRIPTION * omp_get_num_procs())


def n_threads_for(n_threads):
    """Python view of :func:`resolve_threads`, for wrappers and tests."""
    return resolve_threads(n_threads)
