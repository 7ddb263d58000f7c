# Built-in fit models: the C interface shared by _models.pyx (implementations) and fitting/_kernel.pyx
# (the Levenberg-Marquardt / gradient-descent kernels that call them without the GIL).

# Model values, and (when jac != NULL) the analytic Jacobian d model / d params.
#   x:   (x_dim, npts) row-major; x_dim is 1, or 2 for gaussian_2d (row 0 = x, row 1 = y)
#   p:   (nparams,)
#   out: (npts,) model values
#   jac: NULL, or (npts, nparams) row-major
# Returns 0 on success, non-zero when the parameters give no finite value (e.g. tau == 0).
ctypedef int (*model_eval_t)(int npts, const double *x, int nparams, const double *p,
                             double *out, double *jac) noexcept nogil

# Initial guess from data. Points whose y is NaN are missing and must be ignored.
# Writes p0 (nparams,); returns 0 on success, non-zero when no guess is possible (too few points).
ctypedef int (*model_guess_t)(int npts, const double *x, const double *y, int nparams,
                              double *p0) noexcept nogil

cdef struct ModelKernel:
    model_eval_t evaluate
    model_guess_t guess
    int nparams
    int x_dim

# The kernel of built-in model `model_id` (a models.ModelId value); nparams is needed only
# by polynomial(deg), whose nparams = deg + 1.
cdef ModelKernel model_kernel(int model_id, int nparams) noexcept nogil
