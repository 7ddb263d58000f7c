"""NIST StRD fits: fastcalc.fit against scipy.optimize.curve_fit, same problems, same run.

Run with ``pytest benchmarks/bench_nist.py --benchmark-only`` (timings) or ``--benchmark-disable``
(smoke test). Every timed fit starts from NIST's Start 2; both fitters get the same Jacobian
information: the problem's analytic Jacobian ("analytic": fastcalc ``jac=``, MINPACK lmder) or
their own finite differences ("fd": both defaults, MINPACK lmdif). ``extra_info`` records the min
LRE reached and the evaluation counts, so a time is never reported for a wrong answer unnoticed.
``test_lre_table`` times the full 27 x 2 table for each fitter and prints it.
"""
import pytest

from fastcalc import nist

REPRESENTATIVE = ("Misra1a", "Thurber", "MGH09", "Bennett5")


@pytest.fixture(scope="module")
def problems():
    # the data ships with the package: missing files are a broken install, not a skip
    return {p.name: p for p in nist.load_all()}


def _fitter(name, jacobian):
    analytic = jacobian == "analytic"
    if name == "fastcalc":
        return lambda problem, p0: nist.fastcalc_fitter(
            problem, p0, jac=problem.jac if analytic else None)
    return lambda problem, p0: nist.curve_fit_fitter(problem, p0, use_jac=analytic)


@pytest.mark.parametrize("fitter", ["fastcalc", "curve_fit"])
@pytest.mark.parametrize("jacobian", ["analytic", "fd"])
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_fit_start2(benchmark, problems, name, jacobian, fitter):
    problem = problems[name]
    function = _fitter(fitter, jacobian)
    p0 = problem.start(2)
    benchmark.group = f"nist {name} start 2, {jacobian} jacobian"
    outcome = benchmark(function, problem, p0)
    benchmark.extra_info["min_lre"] = round(problem.min_lre(outcome["params"]), 2)
    benchmark.extra_info["nfev"] = outcome["nfev"]
    benchmark.extra_info["nit"] = outcome["nit"]


@pytest.mark.parametrize("fitter", ["fastcalc", "curve_fit"])
@pytest.mark.parametrize("jacobian", ["analytic", "fd"])
def test_lre_table(benchmark, problems, jacobian, fitter):
    function = _fitter(fitter, jacobian)
    label = f"{fitter}/{jacobian}"
    benchmark.group = f"nist full table (27 problems x 2 starts), {jacobian} jacobian"
    rows = benchmark.pedantic(nist.score_all, args=(function, list(problems.values())),
                              kwargs={"label": label}, rounds=3, iterations=1)
    counts = nist.summarize(rows)
    benchmark.extra_info.update({f"solved_start{s}": counts[(label, s)] for s in (1, 2)})
    print("\n" + nist.format_table(rows))
