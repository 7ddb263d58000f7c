# The one place kernels call user functions (DESIGN section 3).

# C signatures of compiled callables; kernels cast UserFunction.c_function to one of these.
ctypedef double (*scalar_field_t)(int n, double *x, void *user_data) noexcept nogil
ctypedef int (*vector_field_t)(int n, double *x, int m, double *out, void *user_data) noexcept nogil
ctypedef double (*elementwise_t)(double x, int k, double *p, void *user_data) noexcept nogil
ctypedef int (*model_t)(int npts, double *x, int nparams, double *params, double *out,
                        void *user_data) noexcept nogil
# a fit model that also writes its Jacobian, row-major (npts, nparams), when jac is not NULL
ctypedef int (*model_jac_t)(int npts, double *x, int nparams, double *params, double *out,
                            double *jac, void *user_data) noexcept nogil
# A block of n elementwise equations: fx[i] = f(x[i]; p[i*k:(i+1)*k]) and (dfx not NULL) its
# derivative; 0 = success, non-zero = the block failed.
ctypedef int (*block_equations_t)(int n, const double *x, int k, const double *p, double *fx,
                                  double *dfx, void *user_data) noexcept nogil

cpdef enum FunctionKind:
    PYTHON = 0
    VECTORIZED = 1
    COMPILED = 2

cdef class UserFunction:
    cdef readonly int kind           # a FunctionKind
    cdef readonly str signature      # a role of _SIGNATURES (compiled only)
    cdef readonly object function    # the callable as given (numba cfuncs: the LowLevelCallable)
    cdef readonly tuple args
    cdef readonly str name           # argument name used in error messages
    cdef void *c_function            # compiled only
    cdef void *user_data             # compiled only
    cdef object _owner               # keeps the LowLevelCallable (and its capsule) alive

    cpdef object scalar_values(self, const double[:, ::1] points)
    cpdef object vector_values(self, const double[:, ::1] points, int m=*)
