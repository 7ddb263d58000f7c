# Ctrl-C inside nogil kernels: every few rounds the calling thread (OpenMP thread 0) takes the
# GIL and runs Python's signal handlers; an exception they raise (KeyboardInterrupt) stays set
# on that thread and a shared flag tells every thread to stop. The checks never change the
# arithmetic, so results stay identical.

cdef extern from *:
    """
    static int fastcalc_flag_read(int *flag) { return *(volatile int *)flag; }
    static void fastcalc_flag_set(int *flag) { *(volatile int *)flag = 1; }
    """
    int flag_read "fastcalc_flag_read" (int *flag) noexcept nogil
    void flag_set "fastcalc_flag_set" (int *flag) noexcept nogil

cdef extern from "Python.h":
    # declared without an exception clause: the exception is kept set, raised after the loop
    int check_signals_keep_error "PyErr_CheckSignals" () noexcept


cdef inline bint interrupted(int *flag, bint calling_thread) noexcept nogil:
    """True once a signal handler raised; only the calling thread runs the handlers."""
    if calling_thread and not flag_read(flag):
        with gil:
            if check_signals_keep_error() != 0:
                flag_set(flag)
    return flag_read(flag) != 0


cdef inline int raise_pending_error() except -1:
    """Propagate the exception left set by a signal handler."""
    return -1
