"""fastcalc's batch routines over Dask arrays: millions of fits or equations on a cluster.

:func:`fit_batch` and :func:`newton` take Dask arrays (one dataset per row of ``Y``, one equation
per element of ``x0``) and build a lazy graph with ONE call of the in-memory routine
(:func:`fastcalc.fit_batch`, :func:`fastcalc.newton`) per chunk. Nothing runs until ``compute()``;
every field of the lazy result is a Dask array, and ``result.compute()`` returns exactly the
in-memory result object that the in-memory routine would give on the whole input. Datasets and
equations are independent, so the answers do not depend on the chunking or the scheduler.
:func:`fit_global` is the exception: its datasets share parameters, so it computes its Dask
inputs and fits them all on one machine.

This module needs Dask (``pip install fastcalc[dask]``, which also installs ``distributed``);
the rest of fastcalc never imports it.

Schedulers
----------
The compiled kernels run without the GIL, so the default threaded scheduler runs one chunk per
core: on 2 cores, 2 Dask threads fit 64-point Gaussians 1.9 times as fast as 1 thread (process
CPU time / wall time 1.94-1.99; ``benchmarks/bench_dask.py``). Each chunk runs its kernel on one
thread (``n_threads=1``, the default here): Dask supplies the parallelism. Letting every chunk
also start one OpenMP thread per core (``n_threads=None``) used the same CPU time and was no
faster on 2 cores, and on a many-core machine it starts cores x cores threads; use it only
when each machine runs a single one-thread worker.

Python models hold the GIL while they run: for them prefer worker processes (a ``distributed``
cluster with ``threads_per_worker=1``). Vectorized NumPy functions in :func:`newton` release it
inside NumPy and still gain from threads.

Chunk size
----------
Chunk along the datasets only (the columns of ``Y`` are merged into one chunk if needed). Each
chunk costs Dask and the in-memory call about 0.7 ms, while a 64-point Gaussian fit takes 8 to
11 microseconds of CPU: 2e3 datasets per chunk cost 5 % more CPU than one in-memory call, and
in 1e6-fit runs on 2 cores chunks of 1e5 beat chunks of 2e4 (4.9 s against 5.5 s; in memory
4.2 s). Use 5e4 to 1e5 datasets per chunk, with at least a few chunks per core; a NumPy ``Y``
is split into ``DEFAULT_FIT_CHUNK`` (5e4) rows. Batch Newton on scalar equations costs about
60 ns per element (compiled): use 1e5 to 1e6 elements per chunk (1e4 costs 65 % more CPU than
1e5); the default for a NumPy ``x0`` is 5e5. Measured with ``benchmarks/bench_dask.py``.

Running on a cluster
--------------------
Connect a ``distributed`` client; the same code then runs on the cluster::

    from distributed import Client
    client = Client("tcp://scheduler:8786")          # or Client(LocalCluster(...))
    Y = dask.array.from_zarr("spectra.zarr")          # (N, m), chunked along N
    lazy = fastcalc.dask.fit_batch(fastcalc.models.gaussian, x, Y)
    lazy.params.to_zarr("params.zarr")                # results stay distributed, or
    result = lazy.compute()                           # gather a BatchFitResult

Load the data on the workers (``from_zarr``, ``from_delayed``...) rather than wrapping a large
in-memory array, which would travel inside the graph. Only ``params``, ``cov``, ``chi2``,
``dof``, ``nit``, ``nfev`` and ``status`` come back with ``compute()``; the residuals, as large as
``Y``, are fetched on first access (or with ``compute(residuals=True)``).

The workers need fastcalc installed. The model, function and arguments are pickled to them:
built-in models and importable Python functions travel as they are, but a compiled callable
(``scipy.LowLevelCallable``, numba ``cfunc``) holds a raw C pointer that cannot leave its process.
Describe it with :func:`compiled` instead, e.g.
``compiled(LowLevelCallable.from_cython, my_module, "my_model")``: each worker process builds it
once, where it runs. Passing the callable itself works with the threaded and synchronous
schedulers; ``compute()`` with any other scheduler raises a ``TypeError`` saying so.
"""
import threading

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.local
    import dask.threaded
    from dask.base import tokenize
except ImportError as exc:  # tested by simulating a missing dask
    raise ImportError("fastcalc.dask requires dask; install it with "
                      "'pip install fastcalc[dask]'") from exc

__all__ = ["DaskBatchFitResult", "DaskNewtonResult", "compiled", "fit_batch", "newton",
           "fit_global"]

# Datasets per chunk when a NumPy Y is given (see "Chunk size" in the module docstring).
DEFAULT_FIT_CHUNK = 50_000
# Equations per chunk when a NumPy x0 is given.
DEFAULT_NEWTON_CHUNK = 500_000


# --------------------------------------------------------------------------------------------
# Compiled callables: built inside each process, never pickled.

_built_lock = threading.Lock()
_built: dict = {}   # token -> compiled callable built in this process


class compiled:
    """A compiled callable described by how to build it, so it can be sent to worker processes.

    A ``scipy.LowLevelCallable`` wraps a raw C function pointer, which is meaningless in another
    process and cannot be pickled. ``compiled(factory, *args, **kwargs)`` stores the recipe
    instead; each process that runs a chunk calls ``factory(*args, **kwargs)`` once and reuses
    the result. ``factory`` and its arguments must be picklable (a module-level function, a
    module, strings...).

    Parameters
    ----------
    factory : callable
        Returns the compiled callable, e.g. ``scipy.LowLevelCallable.from_cython`` or a function
        that builds a numba ``cfunc`` and returns it.
    *args, **kwargs
        Passed to ``factory``.

    Examples
    --------
    >>> from fastcalc._testfunctions import low_level
    >>> recipe = compiled(low_level, "rosenbrock")
    >>> recipe
    compiled(low_level, 'rosenbrock')
    >>> recipe.build().signature
    'double (int, double *, void *)'
    """

    def __init__(self, factory, *args, **kwargs):
        if not callable(factory):
            raise TypeError(f"compiled: factory must be callable, got {type(factory).__name__}")
        self.factory = factory
        self.args = args
        self.kwargs = kwargs
        self._token = tokenize(factory, args, kwargs)

    def build(self):
        """The compiled callable, built once per process."""
        built = _built.get(self._token)
        if built is None:
            with _built_lock:
                built = _built.get(self._token)
                if built is None:
                    built = self.factory(*self.args, **self.kwargs)
                    _built[self._token] = built
        return built

    def __dask_tokenize__(self):
        return ("fastcalc.dask.compiled", self._token)

    def __repr__(self):
        name = getattr(self.factory, "__name__", repr(self.factory))
        parts = [name] + [repr(a) for a in self.args]
        parts += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"compiled({', '.join(parts)})"


def _is_compiled_object(value):
    """True for callables that hold a C pointer: LowLevelCallable or numba cfunc."""
    cls = type(value)
    if cls.__name__ == "LowLevelCallable" and cls.__module__.startswith("scipy"):
        return True
    return (cls.__module__.startswith("numba") and hasattr(value, "ctypes")
            and hasattr(value, "address"))


class _ThisProcessOnly:
    """Carries a compiled callable through the graph; refuses to be pickled (with a clear error)."""

    def __init__(self, function, name):
        self.function = function
        self.name = name

    def build(self):
        return self.function

    def error(self):
        return TypeError(
            f"fastcalc.dask: {self.name} is a compiled callable ({type(self.function).__name__}), "
            "which holds a C pointer and cannot be sent to another process. Describe it with "
            "fastcalc.dask.compiled(factory, *args) so each worker builds it, e.g. "
            "compiled(scipy.LowLevelCallable.from_cython, module, 'name'), or use the threaded "
            "or synchronous scheduler.")

    def __reduce__(self):
        raise self.error()

    def __dask_tokenize__(self):
        return ("fastcalc.dask.this-process", id(self.function))


def _portable(value, name):
    """Wrap compiled callables so they travel safely through a Dask graph."""
    if isinstance(value, compiled):
        return value
    if _is_compiled_object(value) or _is_compiled_object(getattr(value, "function", None)):
        # (a models.compiled model holds one too)
        return _ThisProcessOnly(value, name)
    return value


def _process_bound(*values):
    return [v for v in values if isinstance(v, _ThisProcessOnly)]


def _local(value):
    """Inside a task: the callable to hand to the in-memory routine."""
    if isinstance(value, (compiled, _ThisProcessOnly)):
        return value.build()
    return value


# --------------------------------------------------------------------------------------------
# Shared graph machinery: one in-memory call per chunk, each result field a Dask array.

def _fields_of_block(result, names):
    """Inside a task: the fields of an in-memory result, as a dict of arrays."""
    return {name: np.asarray(getattr(result, name)) for name in names}


def _pick(block, name):
    return block[name]


def _field_array(blocks, name, dtype, trailing=(), function=_pick):
    """Dask array of one field, taken by ``function(block, name)`` from each chunk's dict."""
    ndim = blocks.ndim + len(trailing)
    return blocks.map_blocks(
        function, name, dtype=dtype, chunks=blocks.chunks + tuple((n,) for n in trailing),
        new_axis=list(range(blocks.ndim, ndim)) or None, meta=np.empty((0,) * ndim, dtype=dtype),
        name=f"{name}-{blocks.name}")


def _assemble(blocks, parts, name):
    """Field ``name`` of every chunk's dict (``parts``, in block order) in one array."""
    first = np.asarray(parts[0][name])
    out = np.empty(blocks.shape + first.shape[blocks.ndim:], dtype=first.dtype)
    starts = [np.cumsum((0,) + chunks) for chunks in blocks.chunks]
    for index, part in zip(np.ndindex(*blocks.numblocks), parts):
        out[tuple(slice(s[k], s[k + 1]) for s, k in zip(starts, index))] = part[name]
    return out


def _as_dask(value, name, chunks):
    if isinstance(value, da.Array):
        return value
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{name} must be an array, got {type(value).__name__}") from exc
    return da.from_array(array, chunks=chunks)


_IN_PROCESS_SCHEDULERS = (dask.threaded.get, dask.local.get_sync)


class _LazyBatchResult:
    """A lazy batch result: one task per chunk returns a dict of that chunk's fields; each field
    is exposed as a Dask array; compute() fetches the chunk dicts directly (one task per chunk)."""

    def __init__(self, blocks, process_bound=()):
        self._blocks = blocks            # object Dask array: one dict of fields per chunk
        # compiled callables that only work in this process (_ThisProcessOnly)
        self._process_bound = tuple(process_bound)
        self._arrays = self._fields_from(blocks)

    def _fields_from(self, blocks):
        raise NotImplementedError

    def _with_blocks(self, blocks):
        return type(self)(blocks, self._process_bound)

    def _check_scheduler(self, compute_kwargs):
        """Fail early, with the clear message, when compiled callables would be pickled."""
        if not self._process_bound:
            return
        scheduler = dask.base.get_scheduler(scheduler=compute_kwargs.get("scheduler"),
                                            get=compute_kwargs.get("get"),
                                            collections=[self._blocks])
        if scheduler not in _IN_PROCESS_SCHEDULERS:
            raise self._process_bound[0].error()

    def _fetch(self, names, extra=(), **compute_kwargs):
        """Run the chunk tasks (and the collections ``extra`` in the same pass); return the
        fields ``names`` assembled over the chunks, and the computed ``extra``."""
        self._check_scheduler(compute_kwargs)
        # optimize_graph=False keeps the task keys shared with ``extra`` (no second run)
        parts = list(self._blocks.to_delayed(optimize_graph=False).ravel())
        parts, *others = dask.compute(parts, *extra, **compute_kwargs)
        return {name: _assemble(self._blocks, parts, name) for name in names}, others

    def __getattr__(self, name):
        arrays = self.__dict__.get("_arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._arrays))

    @property
    def fields(self):
        """The names of the result fields (each a Dask array)."""
        return tuple(self._arrays)

    def persist(self, **compute_kwargs):
        """Run every chunk and keep the results in (cluster) memory: returns a lazy result
        whose fields no longer need the fits (or solves) to run again."""
        self._check_scheduler(compute_kwargs)
        (blocks,) = dask.persist(self._blocks, **compute_kwargs)
        return self._with_blocks(blocks)

    def __repr__(self):
        return (f"<{type(self).__name__}: {self._blocks.shape} problems in "
                f"{self._blocks.npartitions} chunks; fields {', '.join(self._arrays)}>")


def _spare_letters(used):
    """Index letters for blockwise that are not in ``used``."""
    return iter(c for c in "abcdefghklmnopqrstuvwxyz" if c not in used)


def _batch_input(value, name, shared_ndim, rows, letters, per_dataset=None):
    """A blockwise (array, index) pair for ``value``: split like ``Y`` when it has one row per
    dataset (``shared_ndim + 1`` dimensions, or as ``per_dataset`` says), else passed whole to
    every chunk (a single row included: the in-memory routine broadcasts it)."""
    if value is None:
        return [None, None]
    if not isinstance(value, da.Array):
        value = np.asarray(value)
    n_total = sum(rows)
    if per_dataset is None:
        per_dataset = (value.ndim == shared_ndim + 1
                       and not (value.shape[0] == 1 and n_total != 1))
    else:
        shared_ndim = value.ndim - 1 if per_dataset else value.ndim
    if not per_dataset:
        if isinstance(value, da.Array):
            return [value.rechunk(-1), "".join(next(letters) for _ in range(value.ndim))]
        return [value, None]           # the in-memory routine checks its shape
    if value.shape[0] != n_total:
        raise ValueError(f"{name} has {value.shape[0]} rows but there are {n_total} datasets; "
                         f"give {name} with {shared_ndim} dimension(s) (shared) or one row per "
                         f"dataset")
    chunks = (rows,) + (-1,) * shared_ndim
    if isinstance(value, da.Array):
        value = value.rechunk(chunks)
    else:
        value = da.from_array(value, chunks=chunks)
    return [value, "i" + "".join(next(letters) for _ in range(shared_ndim))]


def _is_python_model(model):
    from fastcalc.fitting import is_builtin, is_named_compiled
    return (callable(model) and not isinstance(model, compiled)
            and not _is_compiled_object(model) and not is_builtin(model)
            and not is_named_compiled(model))


def _check_known(array, name):
    if any(np.isnan(n) for n in array.shape):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")


def _fit_block(Y, x, sigma, p0, sigma_x=None, *, model, options):
    from fastcalc.fitting import fit_batch as in_memory_fit_batch
    result = in_memory_fit_batch(_local(model), x, Y, p0, sigma=sigma, sigma_x=sigma_x,
                                 **options)
    fields = _fields_of_block(result, _FIT_CORE[:-2])
    if sigma_x is not None:     # ODR: the x corrections, and residuals at x + delta
        fields["delta"] = result.delta
        fields["odr_residuals"] = result.residuals
    # what the fit minimised, per dataset (the same for all), for the derived statistics
    fields["nfree"] = np.full(len(result), result.nfree, dtype=np.intc)
    fields["estimator"] = np.full(len(result), result.estimator, dtype=object)
    return fields


def _derived_fit_field(block, name):
    """redchi2, success, message, aic, bic or pvalue of one chunk, derived exactly as
    BatchFitResult does."""
    from fastcalc.fitting import BatchFitResult
    return np.asarray(getattr(_batch_fit_result(BatchFitResult, block, (), None, "lm"), name))


def _batch_fit_result(cls, values, param_names, residuals_of, method):
    """The in-memory BatchFitResult from the core fields (the arrays its constructor takes)."""
    return cls(*(values[n] for n in _FIT_CORE[:7]), param_names, residuals_of, method,
               values["input_error"], stderr=values["stderr"], cost=values["cost"],
               estimator=values["estimator"][0], nfree=int(values["nfree"][0]),
               delta=values.get("delta"))


def _residuals_block(Y, x, sigma, p0, params, *, model, options):
    # y - model(x, params) exactly as the in-memory BatchFitResult computes it, from the fitted
    # params: no refit
    from fastcalc.fitting import batch_residuals
    return batch_residuals(_local(model), x, Y, p0, params, sigma=sigma, **options)


def _residuals_array(params, inputs, model, options):
    """The lazy residuals (N, m) from the lazy fitted ``params``: one task per chunk."""
    return da.blockwise(
        _residuals_block, "ij", *inputs, params, "iz", dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64), concatenate=True,
        token="residuals-fastcalc-fit-batch", model=model, options=options)


def _param_names(model, p0):
    """Names of the fit parameters, known before anything runs (they fix the result shapes)."""
    from fastcalc.fitting import param_names
    if isinstance(model, compiled):
        model = model.build()     # (once per process; a models.compiled model names them)
    if _is_compiled_object(model):
        if p0 is None:
            raise ValueError("p0 is required for a compiled model")
        return tuple(f"p{k}" for k in range(np.shape(p0)[-1] if np.ndim(p0) else 1))
    return param_names(model, p0)


# The fields each chunk's fit returns (the BatchFitResult constructor's arrays), and those derived
# from them, as (dtype, trailing shape) given the number of parameters P. The residuals (N, m)
# are a separate lazy field, computed from params without refitting.
_FIT_CORE = ("params", "cov", "chi2", "dof", "nit", "nfev", "status", "input_error", "stderr",
             "cost", "nfree", "estimator")


def _fit_core_specs(P):
    return {"params": (np.float64, (P,)), "cov": (np.float64, (P, P)), "chi2": (np.float64, ()),
            "dof": (np.intc, ()), "nit": (np.intc, ()), "nfev": (np.intc, ()),
            "status": (np.intc, ()), "input_error": (object, ()),
            # the kernels' own: finite where its variance in cov is beyond the double range
            "stderr": (np.float64, (P,)), "cost": (np.float64, ()), "nfree": (np.intc, ()),
            "estimator": (object, ())}


def _fit_derived_specs(P):
    return {"redchi2": (np.float64, ()), "success": (np.bool_, ()), "message": (object, ()),
            "aic": (np.float64, ()), "bic": (np.float64, ()), "pvalue": (np.float64, ())}


class DaskBatchFitResult(_LazyBatchResult):
    """Lazy result of :func:`fastcalc.dask.fit_batch`.

    Every field of a ``BatchFitResult`` is a Dask array over the datasets: ``params`` and
    ``stderr`` ``(N, p)``, ``cov`` ``(N, p, p)``, ``chi2``, ``redchi2``, ``cost``, ``aic``,
    ``bic``, ``pvalue``, ``dof``, ``nit``, ``nfev``, ``status``, ``success``, ``message``,
    ``nfree``, ``estimator`` ``(N,)`` and ``residuals`` ``(N, m)`` (with ``sigma_x``, also
    ``delta`` ``(N, m)``, and the residuals at ``x + delta`` come from the fits themselves);
    ``param_names`` and ``method`` are plain attributes. Computing any subset of fields runs
    each chunk's fit once. ``compute()`` returns the in-memory ``BatchFitResult``; ``persist()``
    keeps the fitted chunks in memory (or on the cluster) for repeated use.

    Examples
    --------
    >>> import numpy as np, dask, dask.array as da
    >>> import fastcalc.dask
    >>> x = np.arange(5.0)
    >>> Y = da.from_array(np.vstack([1.0 + 2.0 * x, np.full(5, np.nan), 3.0 - x]), chunks=2)
    >>> lazy = fastcalc.dask.fit_batch(fastcalc.models.line, x, Y)
    >>> lazy
    <DaskBatchFitResult: (3,) problems in 2 chunks; fields params, cov, ...>
    >>> with dask.config.set(scheduler="synchronous"):
    ...     fitted = lazy.persist()
    ...     print(fitted.status.compute())
    ...     print(fitted.message[1].compute())
    [0 2 0]
    zero derivative or singular matrix: too few points: 0 valid points for 2 free parameters
    """

    def __init__(self, blocks, process_bound=(), *, param_names, method, residual_inputs,
                 odr_points=None):
        self.param_names = tuple(param_names)
        self.method = method
        self._residual_inputs = residual_inputs     # (inputs, model, options)
        self._odr_points = odr_points               # m with sigma_x, else None
        super().__init__(blocks, process_bound)

    def _fields_from(self, blocks):
        P = len(self.param_names)
        fields = {name: _field_array(blocks, name, dtype, trailing)
                  for name, (dtype, trailing) in _fit_core_specs(P).items()}
        fields.update({name: _field_array(blocks, name, dtype, trailing, _derived_fit_field)
                       for name, (dtype, trailing) in _fit_derived_specs(P).items()})
        if self._odr_points is None:
            fields["residuals"] = _residuals_array(fields["params"], *self._residual_inputs)
        else:
            trailing = (self._odr_points,)
            fields["delta"] = _field_array(blocks, "delta", np.float64, trailing)
            fields["residuals"] = _field_array(blocks, "odr_residuals", np.float64, trailing)
        return fields

    def _with_blocks(self, blocks):
        return type(self)(blocks, self._process_bound, param_names=self.param_names,
                          method=self.method, residual_inputs=self._residual_inputs,
                          odr_points=self._odr_points)

    def compute(self, *, residuals=False, **compute_kwargs):
        """Run the graph and return the in-memory ``fastcalc.BatchFitResult``.

        Parameters
        ----------
        residuals : bool, default False
            Also compute the residuals ``(N, m)`` now, in the same pass. Otherwise (as in memory)
            they are computed on first access to ``result.residuals``: from the graph, whose
            fits then run again unless the lazy result was persisted.
        **compute_kwargs
            Passed to ``dask.compute`` (``scheduler=``, ``num_workers=``...).
        """
        from fastcalc.fitting import BatchFitResult
        if self._odr_points is not None:    # the chunks return delta and residuals anyway
            values, _ = self._fetch(_FIT_CORE + ("delta", "odr_residuals"), **compute_kwargs)
            return _batch_fit_result(BatchFitResult, values, self.param_names,
                                     _ComputedResiduals(values["odr_residuals"]), self.method)
        extra = (self._arrays["residuals"],) if residuals else ()
        values, others = self._fetch(_FIT_CORE, extra, **compute_kwargs)
        if residuals:
            residuals_of = _ComputedResiduals(others[0])
        else:
            residuals_of = _ResidualsFromGraph(self._arrays["residuals"], compute_kwargs)
        return _batch_fit_result(BatchFitResult, values, self.param_names, residuals_of,
                                 self.method)


class _ComputedResiduals:
    """``residuals_of`` of a BatchFitResult whose residuals were computed with it."""

    def __init__(self, residuals):
        self.residuals = residuals

    def __call__(self, params, rows=None):
        return self.residuals if rows is None else self.residuals[rows]


class _ResidualsFromGraph:
    """``residuals_of`` of a BatchFitResult: computes the residuals from the Dask graph when
    first asked for (only the chunks holding ``rows``)."""

    def __init__(self, residuals, compute_kwargs):
        self.residuals = residuals
        self.compute_kwargs = compute_kwargs

    def __call__(self, params, rows=None):
        wanted = self.residuals if rows is None else self.residuals[np.asarray(rows)]
        return wanted.compute(**self.compute_kwargs)


def fit_batch(model, x, Y, p0=None, *, sigma=None, n_threads=1, sigma_x=None, **kwargs):
    """Fit ``model`` to every row of a Dask array ``Y``: one in-memory fit_batch call per chunk.

    The lazy counterpart of :func:`fastcalc.fit_batch`, with the same arguments and results:
    ``fit_batch(model, x, Y).compute()`` equals ``fastcalc.fit_batch(model, x, Y.compute())``
    field for field, whatever the chunks.

    Parameters
    ----------
    model
        A built-in model from :mod:`fastcalc.models`, a Python callable ``model(x, *params)``
        (called with ``(n, 1)`` parameter columns), or a compiled model. To run a compiled model
        in worker processes describe it with :func:`compiled`.
    x : array_like or dask array
        ``(m,)`` shared by all datasets (``(2, m)`` for ``gaussian_2d``), or one row per dataset
        ``(N, m)`` (``(N, 2, m)``), split like ``Y``.
    Y : dask array or array_like, shape (N, m)
        One dataset per row; NaN marks a missing point. Only the rows should be chunked: the
        columns are merged into one chunk if needed (``Y.rechunk({1: -1})``). A NumPy array is
        split into chunks of ``DEFAULT_FIT_CHUNK`` rows.
    p0 : array_like or dask array, optional
        ``(p,)`` shared or ``(N, p)`` per dataset; omitted for built-in models (guessed per
        dataset).
    sigma : array_like or dask array, optional
        ``(m,)`` shared or ``(N, m)`` per dataset.
    sigma_x : array_like or dask array, optional
        Errors in x: orthogonal distance regression (:func:`fastcalc.fit_batch`), a scalar,
        ``(m,)`` shared or ``(N, m)`` per dataset (split like ``Y``). The result has ``delta``.
    n_threads : int or None, default 1
        Threads used by each chunk's kernel. The default 1 lets Dask run one chunk per core;
        ``None`` uses the worker's process-wide setting (:func:`fastcalc.get_num_threads`: every
        core unless limited), for one single-threaded worker per machine.
    **kwargs
        Passed to :func:`fastcalc.fit_batch` (``absolute_sigma``, ``method``, ``bounds``,
        ``fixed``, ``maxiter``, ``tol``, ``x_per_dataset``, ``cost``, ``loss``, ``f_scale``). For a Python model the layout of
        ``x`` (per dataset or shared) is decided once from the shapes of the whole ``x`` and
        ``Y``, as the in-memory routine would, and passed to every chunk. ``progress`` is not accepted: use Dask's progress
        bars (``dask.diagnostics.ProgressBar``, ``distributed.progress``).

    Returns
    -------
    DaskBatchFitResult
        Every field a Dask array; ``.compute()`` gives the ``BatchFitResult``.

    Raises
    ------
    ValueError
        ``Y`` is not 2-D, is empty or has unknown chunk sizes; a per-dataset argument has the
        wrong number of rows; ``p0`` is needed and missing. Errors of the fits themselves (a
        Python model that raises, inconsistent shapes) are raised by ``compute()``. Bad datasets
        never fail the graph: they get a status.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import fastcalc.dask
    >>> x = np.linspace(0.0, 1.0, 8)
    >>> Y = da.from_array(np.outer([1.0, 2.0, 3.0, 4.0], x) + 0.5, chunks=(2, 8))
    >>> lazy = fastcalc.dask.fit_batch(fastcalc.models.line, x, Y)
    >>> lazy.params
    dask.array<params-..., shape=(4, 2), dtype=float64, chunksize=(2, 2), chunktype=numpy.ndarray>
    >>> result = lazy.compute(scheduler="synchronous")
    >>> result
    BatchFitResult(4 datasets, 4 converged, params ('a', 'b'))
    >>> result.params.round(6)
    array([[0.5, 1. ],
           [0.5, 2. ],
           [0.5, 3. ],
           [0.5, 4. ]])
    """
    if "progress" in kwargs:
        raise TypeError("fit_batch: progress is not supported over Dask; use "
                        "dask.diagnostics.ProgressBar or distributed.progress")
    if np.ndim(Y) != 2:      # (before chunking a NumPy Y by rows)
        raise ValueError(f"Y must be 2-D (one dataset per row), got shape {np.shape(Y)}")
    Y = _as_dask(Y, "Y", chunks=(DEFAULT_FIT_CHUNK, -1))
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (one dataset per row), got shape {Y.shape}")
    _check_known(Y, "Y")
    if Y.shape[0] == 0 or Y.shape[1] == 0:
        raise ValueError(f"Y is empty (shape {Y.shape}): there is nothing to fit")
    if Y.numblocks[1] != 1:
        Y = Y.rechunk({1: -1})
    rows = Y.chunks[0]
    param_names = _param_names(model, p0)
    letters = _spare_letters("ijz")
    inputs = [Y, "ij"]
    x_per_dataset = kwargs.get("x_per_dataset")
    if _is_python_model(model):
        # decided once from the whole Y, never per chunk (whose row count would change the
        # in-memory auto-detection), and passed to every chunk's fit and residuals
        from fastcalc.fitting import python_x_per_dataset
        x_per_dataset = python_x_per_dataset(np.shape(x), Y.shape[0], Y.shape[1], True,
                                              x_per_dataset)
        kwargs = dict(kwargs, x_per_dataset=x_per_dataset)
    inputs += _batch_input(x, "x", 1 if getattr(model, "x_dim", 1) == 1 else 2, rows, letters,
                           x_per_dataset)
    inputs += _batch_input(sigma, "sigma", 1, rows, letters)
    inputs += _batch_input(p0, "p0", 1, rows, letters)
    if sigma_x is not None:     # _fit_block's fifth argument
        inputs += _batch_input(sigma_x, "sigma_x", 1, rows, letters)
    model = _portable(model, "model")
    options = dict(kwargs, n_threads=n_threads)
    blocks = da.blockwise(
        _fit_block, "i", *inputs, dtype=object, meta=np.empty((0,), dtype=object),
        concatenate=True, token="fastcalc-fit-batch", model=model, options=options)
    return DaskBatchFitResult(blocks, _process_bound(model), param_names=param_names,
                              method=kwargs.get("method", "lm"),
                              residual_inputs=(inputs, model, options),
                              odr_points=None if sigma_x is None else Y.shape[1])


class _ArraySlot:
    """Marks, in the args of a chunk task, a per-element argument given as a block."""

    def __repr__(self):
        return "<block>"


_ARRAY_SLOT = _ArraySlot()


def _elementwise_input(value, name, x0):
    """(literal or slot, extra blockwise inputs) for a per-element argument of newton."""
    if not isinstance(value, da.Array) and np.ndim(value) == 0:
        return value, []
    array = _as_dask(value, name, chunks=x0.chunks if np.shape(value) == x0.shape else -1)
    try:
        array = da.broadcast_to(array, x0.shape)
    except ValueError as exc:
        raise ValueError(f"{name} of shape {array.shape} does not broadcast to x0's shape "
                         f"{x0.shape}") from exc
    return _ARRAY_SLOT, [array.rechunk(x0.chunks), _elementwise_index(x0)]


def _elementwise_index(x0):
    return "abcdefghij"[:x0.ndim]


def _fill(layout, blocks):
    """Replace the slots of ``layout`` by the next blocks, in order."""
    return tuple(next(blocks) if isinstance(item, _ArraySlot) else item for item in layout)


def _newton_block(x0, *blocks, f, fprime, fprime2, args_layout, bracket_layout, options):
    from fastcalc.roots import newton as in_memory_newton
    blocks = iter(blocks)
    args = _fill(args_layout, blocks)
    bracket = None if bracket_layout is None else _fill(bracket_layout, blocks)
    result = in_memory_newton(_local(f), x0, _local(fprime), args=args, fprime2=_local(fprime2),
                              bracket=bracket, full_output=True, **options)
    return _fields_of_block(result, _NEWTON_CORE)


# The fields each chunk's solve returns; converged, success and message derive from status.
_NEWTON_CORE = {"x": np.float64, "fun": np.float64, "status": np.intp, "nit": np.intp,
                "nfev": np.intp}


def _converged(block, name):
    return block["status"] == 0


def _messages(block, name):
    from fastcalc._status import messages_of
    return messages_of(block["status"])


class DaskNewtonResult(_LazyBatchResult):
    """Lazy result of :func:`fastcalc.dask.newton`: the fields of the in-memory batch result
    (``x``, ``fun``, ``status``, ``converged``, ``nit``, ``nfev``, ``message``), each a Dask
    array shaped like ``x0``; ``root`` and ``success`` are aliases of ``x`` and ``converged``.
    ``compute()`` returns the in-memory ``scipy.optimize.OptimizeResult``.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import fastcalc.dask
    >>> c = da.from_array(np.array([8.0, 27.0, np.nan]), chunks=2)
    >>> lazy = fastcalc.dask.newton(lambda x, c: x**3 - c, da.full(3, 2.0, chunks=2), args=(c,))
    >>> lazy.success
    dask.array<converged-..., shape=(3,), dtype=bool, chunksize=(2,), chunktype=numpy.ndarray>
    >>> result = lazy.compute(scheduler="synchronous")
    >>> result.x[:2], result.status
    (array([2., 3.]), array([0, 0, 3]))
    """

    def _fields_from(self, blocks):
        fields = {name: _field_array(blocks, name, dtype) for name, dtype in _NEWTON_CORE.items()}
        fields["converged"] = _field_array(blocks, "converged", np.bool_, (), _converged)
        fields["message"] = _field_array(blocks, "message", object, (), _messages)
        return fields

    @property
    def root(self):
        """Alias of ``x``."""
        return self._arrays["x"]

    @property
    def success(self):
        """Alias of ``converged``."""
        return self._arrays["converged"]

    def compute(self, **compute_kwargs):
        """Run the graph and return the in-memory result, as ``fastcalc.newton(...,
        full_output=True)`` gives it.

        Keyword arguments (``scheduler=``, ``num_workers=``...) are passed to ``dask.compute``.
        """
        from scipy.optimize import OptimizeResult
        from fastcalc._status import messages_of
        values, _ = self._fetch(tuple(_NEWTON_CORE), **compute_kwargs)
        converged = values["status"] == 0
        return OptimizeResult(x=values["x"], root=values["x"], fun=values["fun"],
                              status=values["status"], converged=converged, success=converged,
                              nit=values["nit"], nfev=values["nfev"],
                              message=messages_of(values["status"]))


def newton(f, x0, fprime=None, *, args=(), fprime2=None, bracket=None, n_threads=1, **kwargs):
    """Solve ``f(x, *args) = 0`` for every element of a Dask array ``x0``, one chunk per call.

    The lazy counterpart of the elementwise batch :func:`fastcalc.newton` (always with its full
    output): ``newton(f, x0).compute()`` equals ``fastcalc.newton(f, x0.compute(),
    full_output=True)``.

    Parameters
    ----------
    f : callable or compiled callable
        Vectorized elementwise ``f(x, *args)``, or a compiled elementwise function
        ``double f(double x, int k, double *p, void *user_data)``; to run a compiled function in
        worker processes describe it with :func:`compiled`.
    x0 : dask array or array_like
        Initial guesses, any shape with at least one dimension. A NumPy array is split into
        chunks of ``DEFAULT_NEWTON_CHUNK`` elements.
    fprime, fprime2 : callable or compiled callable, optional
        First (and second: Halley) derivative, like ``f``; finite differences when omitted.
    args : tuple, optional
        Extra arguments of ``f``; an array (NumPy or Dask) is one parameter per element: it is
        broadcast to ``x0``'s shape and split like ``x0``. Scalars are shared.
    bracket : (lower, upper), optional
        Safeguarding bracket; each bound a scalar or an array per element like ``args``.
    n_threads : int or None, default 1
        Threads used by each chunk's kernel (compiled functions); see :func:`fit_batch`.
    **kwargs
        Passed to :func:`fastcalc.newton` (``tol``, ``rtol``, ``ftol``, ``maxiter``, ``method``).
        ``full_output`` is ignored: the lazy result always carries every field.

    Returns
    -------
    DaskNewtonResult
        Every field a Dask array shaped like ``x0``; ``.compute()`` gives the in-memory result.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import fastcalc.dask
    >>> c = da.from_array(np.array([1.0, 2.0, 4.0, 9.0]), chunks=2)
    >>> lazy = fastcalc.dask.newton(lambda x, c: x * x - c, da.ones(4, chunks=2),
    ...                             lambda x, c: 2.0 * x, args=(c,))
    >>> lazy.x
    dask.array<x-..., shape=(4,), dtype=float64, chunksize=(2,), chunktype=numpy.ndarray>
    >>> result = lazy.compute(scheduler="synchronous")
    >>> result.x
    array([1.        , 1.41421356, 2.        , 3.        ])
    >>> result.converged
    array([ True,  True,  True,  True])
    """
    if "full_output" in kwargs:
        kwargs.pop("full_output")   # the lazy result always carries every field
    x0 = _as_dask(x0, "x0", chunks=DEFAULT_NEWTON_CHUNK)
    if x0.ndim == 0:
        raise ValueError("x0 must have at least one dimension; use fastcalc.newton for one "
                         "equation")
    _check_known(x0, "x0")
    if x0.size == 0:
        raise ValueError(f"x0 is empty (shape {x0.shape}): there is nothing to solve")
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    index = _elementwise_index(x0)
    inputs = [x0, index]
    args_layout = []
    for k, value in enumerate(args):
        item, extra = _elementwise_input(value, f"args[{k}]", x0)
        args_layout.append(item)
        inputs += extra
    bracket_layout = None
    if bracket is not None:
        if len(bracket) != 2:
            raise ValueError("bracket must be a pair (lower, upper)")
        bracket_layout = []
        for name, value in zip(("bracket[0]", "bracket[1]"), bracket):
            item, extra = _elementwise_input(value, name, x0)
            bracket_layout.append(item)
            inputs += extra
    f, fprime, fprime2 = (_portable(v, name) for v, name in
                          ((f, "f"), (fprime, "fprime"), (fprime2, "fprime2")))
    blocks = da.blockwise(
        _newton_block, index, *inputs, dtype=object, meta=np.empty((0,) * x0.ndim, dtype=object),
        token="fastcalc-newton", f=f, fprime=fprime, fprime2=fprime2,
        args_layout=tuple(args_layout),
        bracket_layout=None if bracket_layout is None else tuple(bracket_layout),
        options=dict(kwargs, n_threads=n_threads))
    return DaskNewtonResult(blocks, _process_bound(f, fprime, fprime2))


# --------------------------------------------------------------------------------------------
# Global fits: every dataset in every iteration, so on one machine.

def fit_global(model, x, Y, p0=None, *, sigma=None, **kwargs):
    """:func:`fastcalc.fit_global` on Dask (or NumPy) inputs: computes them, then fits in this
    process, and returns the in-memory :class:`fastcalc.fitting.GlobalFitResult`.

    A global fit is not chunked: every iteration needs every dataset (the shared parameters'
    normal equations sum over all of them), so a distributed version would gather the
    per-chunk reductions once per iteration (tens of round trips), and its memory is small
    anyway (the data plus O(N k^2)). The Dask arrays among ``x``, ``Y``, ``sigma`` and ``p0``
    are computed together (one graph, on the active scheduler or ``distributed`` client), and
    the fit runs on this machine's threads (``n_threads``); the result is exactly that of
    :func:`fastcalc.fit_global` on the computed arrays. ``model`` may be a :class:`compiled`
    recipe, built here.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from fastcalc import models
    >>> x = np.linspace(-3, 3, 30)
    >>> Y = np.array([models.gaussian(x, a, 0.5, 0.8, 0.1) for a in (1.0, 2.0, 3.0, 4.0)])
    >>> r = fit_global(models.gaussian, x, da.from_array(Y, chunks=2), shared=["mu", "sigma"])
    >>> r.shared.round(6).tolist()
    [0.5, 0.8]
    """
    import dask

    from .fitting import fit_global as fit_global_in_memory
    x, Y, p0, sigma = dask.compute(x, Y, p0, sigma)
    return fit_global_in_memory(_local(model), x, Y, p0, sigma=sigma, **kwargs)
