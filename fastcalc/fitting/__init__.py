"""Chi-squared fitting: one dataset or millions, Levenberg-Marquardt or gradient descent.

The subpackage: ``_fit`` (fit, fit_batch), ``_linear`` (chi2, linear_fit, polyfit), ``_problem``
(the validated inputs), built from ``_model_spec`` (model kind, names, jac), ``_validate``
(argument checks, per-dataset statuses) and ``_layout`` (data rows, x, sigma, p0); ``_dispatch``
(groups, threads, kernel calls); ``_estimators``, ``_results``, ``_inference``, ``_intervals``.
The kernels are ``_kernel`` (Cython; ``_estimator.pxd``: the estimator switch inside it).
``sigma_x=`` (errors in x: orthogonal distance regression) runs ``_odr`` and its kernels
``_odr_kernel`` (the corrections to x eliminated point by point; the notes are there).

``chi2``, ``linear_fit`` and ``polyfit`` are closed-form / linear least squares. ``fit`` and
``fit_batch`` minimise ``chi2 = sum(((y - model(x, *p)) / sigma) ** 2)`` for a built-in model
(:mod:`fastcalc.models`), a compiled model callable or a Python callable.

Estimators
    ``cost="poisson"`` minimises the Poisson deviance instead (counts), and ``loss=`` applies a
    robust loss to the squared weighted residuals, as ``scipy.optimize.least_squares``. Both run
    in the same kernels as iteratively reweighted least squares (``fastcalc.fitting._estimator``:
    residuals and Jacobian rows rescaled at each accepted point, the step accepted on the true
    cost), so everything below holds for them with "chi2" read as "cost". ``result.chi2`` is
    Pearson's chi-squared for every estimator; ``cost``, ``aic``, ``bic`` and ``pvalue`` are
    reported too. A Poisson fit from a built-in model's guess whose mean is <= 0 where there
    are counts (a guess made for least squares) first fits least squares with weights
    ``1/sqrt(max(y, 1))``, then the likelihood from there.

Algorithm (``method="lm"``)
    Levenberg-Marquardt with MINPACK's parameter scaling: ``D = diag(column norms of J)``, never
    decreasing, and the damped step ``min ||r - J dp||^2 + lam ||D dp||^2``, solved from the normal
    equations by Cholesky when every pivot keeps at least 1e-8 of its diagonal and otherwise by a
    Householder QR of ``J`` and of the small augmented matrix ``[R; sqrt(lam) D]`` (stable on
    ill-conditioned problems such as the NIST StRD set). The step is controlled by a trust
    radius ``delta`` on ``||D dp||`` as in MINPACK's lmder: ``delta = ||D p0||`` at the start (1
    if that is 0); each trial takes the Gauss-Newton step (``lam = 0``) when it lies within
    ``1.1 delta``, else the ``lam`` that brings ``||D dp||`` to ``delta`` (to 0.1 %, by Moré's
    safeguarded Newton iteration, a few solves of the small system). With the ratio ``rho`` of
    actual to predicted chi2 reduction: ``rho <= 0.25`` halves ``delta`` (to at most
    ``5 ||D dp||``), a Gauss-Newton step or ``rho >= 0.75`` sets ``delta = 2 ||D dp||``, and the
    step is accepted when ``rho >= 1e-4``.
Stopping (``tol`` = ``(ftol, xtol, gtol)``, or one number for all three; default 1e-12 each)
    * chi2 test: the actual and the predicted relative reductions of chi2 are both <= ftol, or
      the Gauss-Newton step from the current point is predicted to remove <= ftol of chi2 (it is
      then not taken);
    * step test: an accepted step has ``||D dp|| <= xtol ||D p||``, or the trust radius has
      shrunk to ``delta <= xtol ||D p||``;
    * gradient test: the cosine of the angle between the residual vector and every Jacobian column
      is <= gtol (projected on active bounds).
    At the exit a Gauss-Newton step is computed once more: if it would still move some parameter
    by more than 1e-4 of its value and remove more than 1e-8 of chi2, the point is not a minimum;
    LM then restarts from it with fresh scaling and trust radius (at most 3 times) and otherwise
    reports ``MAX_ITERATIONS`` (1) instead of success. On the NIST StRD problems (default
    settings, analytic or finite-difference Jacobian) this solves 27/27 from both starts at
    LRE >= 5.0 (analytic) / 4.6 (finite differences), in 1656 iterations in all (analytic).
Linear algebra
    Cholesky of the damped normal equations is used when every pivot keeps >= 1e-8 of its
    diagonal (about 1.7x faster than QR on small problems); otherwise Householder QR. Both give
    the same NIST scores; the QR fallback keeps the covariance accurate when J is ill-conditioned.
Bounds
    Box bounds by projection: a parameter on a bound whose step points outward is held there and the
    step is solved again for the others; a step crossing a bound is clipped to it, and the predicted
    reduction is that of the clipped step. The covariance is that of the unconstrained problem at
    the solution.
Python-callable models
    ``fit_batch`` advances groups of at most 1280 datasets in lock step (fewer for large
    models, so that one call's values stay in cache): one broadcast model call per round
    evaluates every dataset's trial point and, stacked below, its forward-difference points
    (each free parameter shifted in its own block of rows), whose columns become the Jacobian
    when the step is accepted (with ``jac``: one model call and one ``jac`` call), the algebra
    per dataset in C. Groups run
    on ``n_threads`` threads (NumPy and the algebra release the GIL), each computed exactly as on
    one thread, so a Python model must be thread-safe there (pure NumPy functions are); use
    ``n_threads=1`` for one that is not.
Gradient descent (``method="gd"``)
    ``p += alpha D^-2 J^T r`` (gradient descent on chi2, preconditioned by the same scaling), with
    an adaptive step: ``alpha`` grows 1.5x after a step that lowers chi2 and halves (the step being
    rejected) otherwise. Same stopping tests. Its default iteration budget is ``maxiter=20000``
    (LM: ``200 * (n_free + 1)``); it is much slower than LM and exists for teaching and comparison.
Scale of the data
    The fit does not depend on the scale of ``y`` (or of ``y / sigma``): data of extreme scale
    (``|y / sigma|`` beyond about 1e+-60) are fitted with the weights divided by a power of two,
    so ``y * 2**k`` gives the parameters proportional to ``y`` times ``2**k`` for any
    representable scale. ``chi2`` and the covariance are reported for the data as given; when
    they leave the double range (e.g. y ~ 1e200: chi2 ~ 1e400) they are inf or 0. ``stderr``
    is scaled back on its own (from the covariance of the Jacobian with its columns divided
    by powers of two), so it stays finite where only its variance is not: with built-in
    models, ``y * 2**k`` gives ``stderr`` times ``2**k`` bitwise, as the parameters. A sigma
    so small that ``1/sigma`` overflows (below 2**-1000, down to the smallest subnormal) is
    the same case: the kernels form that dataset's weights divided by a power of two, for
    every estimator.
Statuses (per dataset)
    0 converged; 1 iteration budget exhausted or stalled away from a minimum; 2 too few points,
    no initial guess possible or singular Jacobian at the solution (covariance inf); 3 non-finite
    model value at the start, or non-finite Jacobian, or (fit_batch) invalid inputs of the
    dataset's own, such as x outside the model's domain; 5 a compiled model returned non-zero at the
    start or in its Jacobian. (A trial step where the model is not finite is simply rejected.)
"""
from ._fit import batch_residuals, fit, fit_batch
from ._global import fit_global
from ._global_results import GlobalFitResult
from ._layout import python_x_per_dataset
from ._linear import chi2, linear_fit, polyfit
from ._model_spec import is_builtin, is_named_compiled, param_names
from ._results import BatchFitResult, FitResult

__all__ = ["BatchFitResult", "FitResult", "chi2", "fit", "fit_batch", "linear_fit", "polyfit",
           "GlobalFitResult", "fit_global"]
# Not in __all__, the interface of fastcalc.dask: batch_residuals, is_builtin,
# is_named_compiled, param_names, python_x_per_dataset.
