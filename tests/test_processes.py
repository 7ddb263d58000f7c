"""Worker processes: after fork, spawn or forkserver, every threaded kernel computes what the
parent computes and returns (GNU OpenMP's thread pool does not survive a fork: a child whose
first team waits for the parent's threads hangs forever).

Each pool runs in a subprocess of its own session, killed with its children after a timeout, so
a regression fails here instead of hanging the suite.
"""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 120       # seconds; each script takes a few on two busy cores

# Every kernel with a prange team, on problems large enough to start one (each kernel runs
# small problems on one thread).
WORKLOAD = """
import numpy as np
import fastcalc
from fastcalc._testfunctions import low_level

x = np.linspace(-3.0, 3.0, 32)
width = np.linspace(0.5, 1.5, 64)[:, None]
Y = 2.0 * np.exp(-0.5 * ((x - 0.2) / width) ** 2) + 0.01 * np.sin(7.0 * x + width)
a = np.linspace(1.0, 8.0, 4096)
systems = np.column_stack([np.linspace(0.5, 1.5, 64), np.linspace(-1.5, -0.5, 64)])


def run_all(n_threads):
    \"\"\"Threads the kernels use here (with n_threads=None), and the results of every kernel.\"\"\"
    rosenbrock = low_level("rosenbrock")
    results = [
        fastcalc.fit_batch(fastcalc.models.gaussian, x, Y, n_threads=n_threads).params,
        fastcalc.fit_batch(low_level("gaussian_model"), x, Y, p0=[2.0, 0.0, 1.0, 0.0],
                           n_threads=n_threads).params,
        fastcalc.newton(low_level("cube_root_eq"), np.full(a.size, 2.0), args=(a,),
                        n_threads=n_threads),
        fastcalc.newton_system(low_level("circle_exp_system"), systems,
                               n_threads=n_threads).x,
        fastcalc.gradient(rosenbrock, np.linspace(-1.0, 1.0, 1500), n_threads=n_threads),
        fastcalc.hessian(rosenbrock, np.linspace(-1.0, 1.0, 150), n_threads=n_threads),
    ]
    return fastcalc.get_num_threads(), [r.tobytes() for r in results]
"""

POOLS = WORKLOAD + """
import multiprocessing
import sys


def check(pool_results, expected, threads):
    for n_threads, (got_threads, got) in zip(REQUESTS, pool_results):
        assert got == expected, f"n_threads={n_threads}: results differ from the parent's"
        assert got_threads == threads, f"{got_threads} threads in the child, expected {threads}"


REQUESTS = [None, 1, 2, -1]

if __name__ == "__main__":
    method = sys.argv[1]
    context = multiprocessing.get_context(method)
    default = fastcalc.get_num_threads()
    if method == "fork":
        # no team in the parent yet: the children keep every thread
        with context.Pool(2) as pool:
            before = pool.map(run_all, REQUESTS)
    threads, expected = run_all(2)          # starts a team of two threads in the parent
    assert threads == default
    if method == "fork":
        check(before, expected, default)
    with context.Pool(2) as pool:
        after = pool.map(run_all, REQUESTS)
    # a forked child runs on one thread (the parent's team cannot be re-created there)
    check(after, expected, 1 if method == "fork" else default)
    print("ok")
"""

DASK = WORKLOAD + """
import dask
import dask.array as da
import fastcalc.dask as fdask

if __name__ == "__main__":
    run_all(2)                               # starts a team of two threads in the parent
    fit = fastcalc.fit_batch(fastcalc.models.gaussian, x, Y)
    roots = fastcalc.newton(low_level("cube_root_eq"), np.full(a.size, 2.0), args=(a,))
    # Dask's default start method is spawn (covered by the pools above); fork is the hazard
    with dask.config.set({"scheduler": "processes", "num_workers": 2,
                          "multiprocessing.context": "fork"}):
        lazy_fit = fdask.fit_batch(fastcalc.models.gaussian, x, da.from_array(Y, chunks=16),
                                   n_threads=None)
        lazy_roots = fdask.newton(fdask.compiled(low_level, "cube_root_eq"),
                                  da.from_array(np.full(a.size, 2.0), chunks=1024),
                                  args=(da.from_array(a, chunks=1024),), n_threads=None)
        assert lazy_fit.compute().params.tobytes() == fit.params.tobytes()
        assert lazy_roots.compute().x.tobytes() == roots.tobytes()
        assert dask.delayed(fastcalc.get_num_threads)().compute() == 1
    print("ok")
"""


def run_script(tmp_path, source, *args):
    """Run ``source`` as a script; on timeout kill it and every process it started, and fail."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    process = subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{' '.join(args)}: no answer after {TIMEOUT} s (a hang)")
    assert process.returncode == 0 and out.strip().endswith("ok"), out + err


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pools_compute_what_the_parent_computes(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    run_script(tmp_path, POOLS, method)


def test_dask_process_scheduler(tmp_path):
    pytest.importorskip("dask.array", reason="fastcalc.dask needs dask (pip install fastcalc[dask])")
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    run_script(tmp_path, DASK)

