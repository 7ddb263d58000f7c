"""Thread counts for the ``prange`` kernels: the process-wide controls and fork safety.

A kernel's team size is, in order of precedence: its explicit ``n_threads``; the innermost
:func:`num_threads` block of the calling thread; :func:`set_num_threads`; the OpenMP default of
the calling thread (``omp_get_max_threads``, which follows ``OMP_NUM_THREADS`` and
``threadpoolctl.threadpool_limits``). ``n_threads=-1`` means the same as None.

Fork: GNU OpenMP keeps its threads in a pool that a forked child inherits without the threads,
so the child's first team of more than one thread waits for them forever, and the pool cannot
be re-created. A process forked after this one started a team therefore runs every kernel on one
thread, whatever ``n_threads`` asks (as PyTorch does). The mark is conservative: it is set
whenever a kernel is given more than one thread, even if it then runs a small problem on one.

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

from cpython.contextvars cimport get_value

import contextlib
import contextvars
import numbers
import os

HAVE_OPENMP = bool(FASTCALC_HAVE_OPENMP)

# Asking OpenMP for far more threads than cores can fail to start them (and abort the process);
# results do not depend on the thread count, so larger requests are capped here.
OVERSUBSCRIPTION = 4

# omp_get_num_procs asks the kernel for the CPU affinity (microseconds): once, at import.
cdef int _most = OVERSUBSCRIPTION * omp_get_num_procs()

# 0 stands for "not set" in both settings.
cdef int _process_setting = 0
cdef object _block_setting = contextvars.ContextVar("fastcalc_num_threads", default=0)

cdef bint _team_started = False        # a kernel of this process was given several threads
cdef bint _forked_after_team = False   # this process was forked from one where that happened


def _after_fork_in_child():
    global _forked_after_team
    _forked_after_team = _forked_after_team or _team_started


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int _checked(object n, str name) except -1:
    """``n`` validated: a positive int, or -1 or None (returned as 0: the next setting down)."""
    if n is None:
        return 0
    # the type first: comparing an array (or other object) with -1 need not give a bool
    if type(n) is not int and (isinstance(n, bool) or not isinstance(n, numbers.Integral)):
        raise TypeError(f"{name} must be a positive int, -1 or None, got {n!r}")
    if n == -1:
        return 0
    if n < 1:
        raise ValueError(f"{name} must be a positive int, -1 or None, got {n}")
    return _most if n > _most else <int>n


cdef int _requested(object n_threads) except -1:
    """The thread count that ``n_threads`` and the settings ask for (1 without OpenMP)."""
    cdef int n = _checked(n_threads, "n_threads")
    if n == 0:
        n = get_value(_block_setting, 0)
    if n == 0:
        n = _process_setting
    if n == 0:
        n = min(omp_get_max_threads(), _most)
    return n if FASTCALC_HAVE_OPENMP else 1


cdef int _team_size(object n_threads) except -1:
    """The requested count, or 1 in a child forked after its parent started a team."""
    cdef int n = _requested(n_threads)
    return 1 if _forked_after_team else n


cdef int resolve_threads(object n_threads) except -1:
    """Validate ``n_threads`` (None, -1 or a positive int) and return a kernel's team size.

    See the module docstring for the order of precedence and the rule after a fork.
    """
    global _team_started
    cdef int n = _team_size(n_threads)
    if n > 1:
        _team_started = True
    return n


def n_threads_for(n_threads):
    """Validate ``n_threads`` and return the count it asks for: workers for Python threads.

    Unlike a kernel's team (:func:`resolve_threads`), Python threads are started afresh in a
    forked child, so the rule after a fork does not apply.
    """
    return _requested(n_threads)


def get_num_threads():
    """Number of threads a compiled kernel uses here with ``n_threads=None``.

    That is the innermost :func:`num_threads` block, else :func:`set_num_threads`, else the
    OpenMP default of the calling thread (``OMP_NUM_THREADS``, or a
    ``threadpoolctl.threadpool_limits`` block: both apply); 1 without OpenMP, and 1 in a
    process forked after its parent ran a kernel on several threads.

    Returns
    -------
    int

    Examples
    --------
    >>> import fastcalc
    >>> fastcalc.get_num_threads() >= 1
    True
    >>> with fastcalc.num_threads(1):
    ...     fastcalc.get_num_threads()
    1
    """
    return _team_size(None)


# the older name, used for the machine description of the benchmark
max_threads = get_num_threads


def set_num_threads(n):
    """Set the number of threads of every kernel called with ``n_threads=None``, process-wide.

    Parameters
    ----------
    n : int or None
        A positive count; None or -1 returns to the OpenMP default (all cores unless
        ``OMP_NUM_THREADS`` or threadpoolctl limit them). Counts above four per core are capped
        there (results do not depend on the thread count).

    Returns
    -------
    int or None
        The previous setting (None: the OpenMP default).

    Notes
    -----
    In worker processes that share the cores (a ``multiprocessing`` pool, Dask worker processes)
    call ``set_num_threads(1)`` in each worker (e.g. in the pool's ``initializer``): the workers
    are the parallelism. A forked child inherits the parent's setting; a spawned one does not.
    An explicit ``n_threads`` argument and a :func:`num_threads` block take precedence.

    Examples
    --------
    >>> import fastcalc
    >>> previous = fastcalc.set_num_threads(1)
    >>> fastcalc.get_num_threads()
    1
    >>> fastcalc.set_num_threads(previous)
    1
    """
    global _process_setting
    cdef int count = _checked(n, "n")
    previous = _process_setting or None
    _process_setting = count
    return previous


@contextlib.contextmanager
def num_threads(n):
    """Within a ``with`` block, run kernels called with ``n_threads=None`` on ``n`` threads.

    The block concerns the calling thread only (it is a context variable), so concurrent
    threads may each have their own; it takes precedence over :func:`set_num_threads`, and an
    explicit ``n_threads`` argument over both.

    Parameters
    ----------
    n : int or None
        A positive count; None or -1 falls back to :func:`set_num_threads` and the OpenMP
        default inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcalc
    >>> with fastcalc.num_threads(1):
    ...     r = fastcalc.fit_batch(fastcalc.models.line, np.arange(4.0),
    ...                            [[1.0, 3.0, 5.0, 7.0]] * 3)
    >>> r.params
    array([[1., 2.], [1., 2.], [1., 2.]])
    """
    token = _block_setting.set(_checked(n, "n"))
    try:
        yield
    finally:
        _block_setting.reset(token)
