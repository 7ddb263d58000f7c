"""The command line, run as users run it: ``python -m fastcalc ...`` in a subprocess.

Checks exit statuses, the shape of the printed tables, the JSON/PNG/CSV files written, that
``fit`` recovers known parameters, and that every malformed input gives one clear line on stderr
and exit status 2, never a traceback.
"""
import csv
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib not installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "fastcalc", *map(str, args)], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_usage_error(proc, *fragments):
    """Exit status 2, one clear line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and "error:" in lines[-1], proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


# ---------------------------------------------------------------------------------------------
# bench

@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """One tiny benchmark run of the derivatives area, with JSON and (if possible) PNG output."""
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--sizes", "tiny", "--only", "derivatives", "--json", out / "rows.json"]
    if HAVE_MATPLOTLIB:
        args += ["--plot", out / "ratios.png"]
    return run_cli(*args), out


def test_bench_prints_header_and_one_row_per_workload(tiny_bench):
    proc, _ = tiny_bench
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("fastcalc ") and "cores" in lines[0] and "threads" in lines[0]
    assert "numpy" in lines[1] and "scipy" in lines[1]
    header = next(line for line in lines if line.startswith("area"))
    for column in ("workload", "fastcalc", "reference", "ratio", "fastcalc err", "ref. err"):
        assert column in header
    rows = [line for line in lines if line.startswith("derivatives")]
    assert len(rows) == 5   # derivative central, richardson; gradient vectorized, compiled, Python
    assert any("approx_derivative" in row for row in rows)
    assert "[bench]" in proc.stderr and "[bench]" not in proc.stdout   # progress on stderr


def test_bench_json_holds_every_row_with_times_ratio_and_errors(tiny_bench):
    proc, out = tiny_bench
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "rows.json").read_text())
    assert data["mode"] == "tiny"
    assert {"cpu", "cores", "python", "numpy", "scipy", "fastcalc", "threads"} <= set(data["machine"])
    assert len(data["rows"]) == 5 and {r["area"] for r in data["rows"]} == {"derivatives"}
    timed = [r for r in data["rows"] if r["fastcalc_s"] is not None]
    assert timed, data["rows"]
    for row in timed:
        assert row["fastcalc_s"] > 0 and row["reference_s"] > 0
        assert row["ratio"] == pytest.approx(row["reference_s"] / row["fastcalc_s"])
        assert 0 <= row["fastcalc_error"] < 1e-5 and 0 <= row["reference_error"] < 1e-5


@needs_matplotlib
def test_bench_plot_writes_a_png(tiny_bench):
    proc, out = tiny_bench
    assert proc.returncode == 0, proc.stderr
    assert (out / "ratios.png").read_bytes()[:8] == PNG_MAGIC


def test_bench_runs_every_area_at_tiny_sizes(tmp_path):
    proc = run_cli("bench", "--sizes", "tiny", "--json", tmp_path / "all.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads((tmp_path / "all.json").read_text())["rows"]
    assert {r["area"] for r in rows} == {"derivatives", "hessian", "newton", "systems", "fitting",
                                         "gaussian_2d", "inference", "nist", "odr",
                                         "global",
                                         "compiled_models", "sparse",
                                         "block_newton"}
    assert not [r for r in rows if r["note"].startswith("FAILED")]


def test_bench_rejects_an_output_folder_that_does_not_exist(tmp_path):
    proc = run_cli("bench", "--sizes", "tiny", "--only", "newton", "--json",
                   tmp_path / "missing" / "rows.json")
    assert_usage_error(proc, "--json", "does not exist")
    assert "[bench] area" not in proc.stderr   # refused before any timing


def test_bench_rejects_an_unknown_area():
    assert_usage_error(run_cli("bench", "--only", "derivatives,warp"), "unknown area warp")


# ---------------------------------------------------------------------------------------------
# validate

def test_validate_passes_and_prints_the_table():
    proc = run_cli("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["area", "check", "reference", "error", "tolerance", "result"]
    assert sum("PASS" in line for line in lines) >= 10
    assert not any(" FAIL" in line for line in lines)
    assert lines[-1].endswith("skipped") and " 0 failed" in lines[-1]


def test_validate_exits_1_when_a_check_fails():
    # A deliberately wrong "routine" injected as an extra area: its failure must set the status.
    script = (
        "import sys\n"
        "from fastcalc.cli import _validate\n"
        "def checks_broken():\n"
        "    yield ('one plus one', 'exact 2', 1e-12, lambda: abs((1 + 1.5) - 2))\n"
        "    yield ('raises', 'exact', 1e-12, lambda: 1 / 0)\n"
        "_validate.CHECKS = {'broken': checks_broken}\n"
        "from fastcalc.cli import main\n"
        "sys.exit(main(['validate']))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("broken")]
    assert len(rows) == 2 and all(row.rstrip().endswith("FAIL") or "FAIL (" in row for row in rows)
    assert "ZeroDivisionError" in rows[1]
    assert "0 passed, 2 failed" in proc.stdout


def test_validate_fails_a_routine_that_is_not_implemented():
    # in process: parallel development once reported NotImplementedError as a skip
    from fastcalc.cli._validate import _run_one

    def stub():
        raise NotImplementedError("stub")
    check = _run_one("area", "stub", "exact", 1e-12, stub)
    assert check.outcome == "FAIL" and "NotImplementedError" in check.detail


# ---------------------------------------------------------------------------------------------
# fit: data files with known parameters

def gaussian(x, A, mu, sigma, c):
    return A * np.exp(-0.5 * ((x - mu) / sigma) ** 2) + c


TRUE = np.array([[10.0, -0.5, 1.0, 1.0], [5.0, 0.3, 0.7, 2.0], [8.0, 1.0, 1.5, 0.0]])
X = np.linspace(-5.0, 5.0, 81)
NOISE = 0.01


def noisy_datasets(seed=1):
    rng = np.random.default_rng(seed)
    return np.array([gaussian(X, *p) for p in TRUE]) + NOISE * rng.standard_normal((3, X.size))


def read_table(path):
    with open(path, newline="") as source:
        return list(csv.DictReader(source))


def assert_recovers_truth(rows, names=("0", "1", "2")):
    assert [r["dataset"] for r in rows] == list(names)
    for row, truth in zip(rows, TRUE):
        assert row["status"] == "0" and row["message"] == "converged"
        fitted = np.array([float(row[p]) for p in ("A", "mu", "sigma", "c")])
        stderr = np.array([float(row[f"{p}_stderr"]) for p in ("A", "mu", "sigma", "c")])
        assert np.all(stderr > 0) and np.all(stderr < 0.05)
        assert np.all(np.abs(fitted - truth) < 5 * stderr + 1e-3), (fitted, truth, stderr)
        assert 0.5 < float(row["redchi2"]) < 2.0   # sigma given = the true noise


def test_fit_csv_with_x_column_and_header_recovers_parameters(tmp_path):
    data = tmp_path / "peaks.csv"
    with open(data, "w") as out:
        out.write("x,left,middle,right\n")
        for i, x in enumerate(X):
            out.write(",".join(f"{v:.12g}" for v in [x, *noisy_datasets()[:, i]]) + "\n")
    proc = run_cli("fit", data, "--model", "gaussian", "--x-column", "--sigma", NOISE,
                   "--absolute-sigma", "--out", tmp_path / "fits.csv")
    assert proc.returncode == 0, proc.stderr
    rows = read_table(tmp_path / "fits.csv")
    assert list(rows[0]) == ["dataset", "A", "A_stderr", "mu", "mu_stderr", "sigma",
                             "sigma_stderr", "c", "c_stderr", "chi2", "redchi2", "status",
                             "message"]
    assert_recovers_truth(rows, names=("left", "middle", "right"))


def test_fit_npy_with_x_row_prints_the_table(tmp_path):
    data = tmp_path / "peaks.npy"
    np.save(data, np.vstack([X, noisy_datasets()]))
    proc = run_cli("fit", data, "--model", "gaussian", "--x-row", "--sigma", NOISE)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["dataset", "A", "A_stderr"]
    assert len(lines) == 2 + 3 and all(line.split()[-1] == "converged" for line in lines[2:])


def test_fit_datasets_by_columns_with_a_sigma_file_and_missing_values(tmp_path):
    Y = noisy_datasets()
    Y[1, 5] = np.nan   # a missing point: skipped, not fatal
    data = tmp_path / "columns.csv"
    np.savetxt(data, Y.T, delimiter=",")
    text = data.read_text().replace("nan", "")
    data.write_text(text)
    sigma = tmp_path / "sigma.csv"
    np.savetxt(sigma, np.full(X.size, NOISE))
    # x is the index 0..80 here: refit with the index as x and compare on that scale.
    proc = run_cli("fit", data, "--model", "gaussian", "--by", "columns", "--sigma", sigma,
                   "--absolute-sigma", "--out", tmp_path / "fits.csv")
    assert proc.returncode == 0, proc.stderr
    rows = read_table(tmp_path / "fits.csv")
    assert len(rows) == 3 and all(r["status"] == "0" for r in rows)
    step = X[1] - X[0]
    mu_index = np.array([float(r["mu"]) for r in rows])
    assert np.allclose(X[0] + step * mu_index, TRUE[:, 1], atol=0.02)


@needs_matplotlib
def test_fit_plot_draws_one_dataset(tmp_path):
    data = tmp_path / "peaks.npy"
    np.save(data, np.vstack([X, noisy_datasets()]))
    png = tmp_path / "one.png"
    proc = run_cli("fit", data, "--model", "gaussian", "--x-row", "--plot", 1, "--plot-out", png,
                   "--out", tmp_path / "fits.csv")
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_fit_a_dataset_with_too_few_points_is_named_and_exits_1(tmp_path):
    """Issue 13, 5a: a dataset of (almost) empty cells was reported as "singular matrix" and
    the command exited 0. Its row now says why, the others are fitted, and the exit status is
    1 (as validate's for a failed check), with a line on stderr naming the dataset."""
    Y = noisy_datasets()
    Y[1] = np.nan
    Y[1, :3] = TRUE[1, 0]               # 3 points for 4 parameters
    data = tmp_path / "peaks.csv"
    with open(data, "w") as out:
        out.write("x,left,middle,right\n")
        for i, x in enumerate(X):
            out.write(",".join("" if np.isnan(v) else f"{v:.12g}" for v in [x, *Y[:, i]]) + "\n")
    proc = run_cli("fit", data, "--model", "gaussian", "--x-column", "--sigma", NOISE,
                   "--absolute-sigma", "--out", tmp_path / "fits.csv")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "1 of 3 datasets not fitted (status != 0, see the message column): middle" in proc.stderr
    rows = read_table(tmp_path / "fits.csv")
    assert [r["dataset"] for r in rows] == ["left", "middle", "right"]
    assert rows[1]["status"] == "2" and rows[1]["message"] == (
        "zero derivative or singular matrix: too few points: 3 valid points for 4 free parameters")
    assert rows[0]["status"] == rows[2]["status"] == "0"
    # printed to stdout, the same reason and the same exit status
    proc = run_cli("fit", data, "--model", "gaussian", "--x-column")
    assert proc.returncode == 1 and "too few points: 3 valid points" in proc.stdout
    # every dataset fitted: exit 0
    np.savetxt(data, np.column_stack([X, noisy_datasets().T]), delimiter=",")
    assert run_cli("fit", data, "--model", "gaussian", "--x-column").returncode == 0


# ---------------------------------------------------------------------------------------------
# fit: malformed input -> exit 2, one clear line

@pytest.fixture
def good_csv(tmp_path):
    path = tmp_path / "good.csv"
    np.savetxt(path, np.column_stack([X, noisy_datasets().T]), delimiter=",")
    return path


@pytest.mark.parametrize("content, fragments", [
    ("1,2,3\n4,5\n7,8,9\n", ["line 2 has 2 fields, expected 3"]),
    ("x,a\n1,2\n3,oops\n", ["line 3, column 2", "'oops' is not a number"]),
    ("", ["empty"]),
    ("# only a comment\n\n", ["empty"]),
    ("x,a,b\n", ["no data rows"]),
])
def test_fit_malformed_csv(tmp_path, content, fragments):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert_usage_error(run_cli("fit", path, "--model", "line", "--x-column"), str(path),
                       *fragments)


def test_fit_missing_file(tmp_path):
    assert_usage_error(run_cli("fit", tmp_path / "nope.csv", "--model", "line"), "no such file")


def test_fit_unknown_model(good_csv):
    assert_usage_error(run_cli("fit", good_csv, "--model", "banana", "--x-column"),
                       "unknown model", "banana", "gaussian")


def test_fit_too_few_points(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("0,1\n1,2\n2,3\n")   # 3 points, gaussian has 4 parameters
    assert_usage_error(run_cli("fit", path, "--model", "gaussian", "--x-column"),
                       "3 points per dataset", "at least 4")


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((2, 3, 4)), "expected 1-D or 2-D"),
    (np.array(["a", "b"]), "expected real numbers"),
    (np.zeros((0,)), "empty"),
])
def test_fit_malformed_npy(tmp_path, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    assert_usage_error(run_cli("fit", path, "--model", "line"), fragment)


def test_fit_corrupt_npy(tmp_path):
    path = tmp_path / "corrupt.npy"
    path.write_bytes(b"not an npy file at all")
    assert_usage_error(run_cli("fit", path, "--model", "line"), "not a readable .npy")


def test_fit_missing_x_value(tmp_path):
    path = tmp_path / "nox.csv"
    path.write_text("0,1\n,2\n2,3\n3,4\n")
    assert_usage_error(run_cli("fit", path, "--model", "line", "--x-column"),
                       "x value 1 is missing")


@pytest.mark.parametrize("sigma, fragment", [
    ("-1", "--sigma must be a positive number"),
    ("0", "--sigma must be a positive number"),
])
def test_fit_bad_sigma_value(good_csv, sigma, fragment):
    assert_usage_error(run_cli("fit", good_csv, "--model", "gaussian", "--x-column",
                               f"--sigma={sigma}"), fragment)


def test_fit_sigma_file_of_the_wrong_shape(good_csv, tmp_path):
    sigma = tmp_path / "sigma.csv"
    np.savetxt(sigma, np.ones((5, 2)), delimiter=",")
    assert_usage_error(run_cli("fit", good_csv, "--model", "gaussian", "--x-column", "--sigma",
                               sigma), "does not match the data")


def test_fit_plot_index_out_of_range(good_csv, tmp_path):
    proc = run_cli("fit", good_csv, "--model", "gaussian", "--x-column", "--plot", 7,
                   "--plot-out", tmp_path / "p.png")
    assert_usage_error(proc, "--plot 7: no such dataset (there are 3")


def test_fit_unwritable_outputs(good_csv, tmp_path):
    missing = tmp_path / "missing"
    assert_usage_error(run_cli("fit", good_csv, "--model", "gaussian", "--x-column", "--out",
                               missing / "fits.csv"), "cannot write", "fits.csv")
    if HAVE_MATPLOTLIB:
        assert_usage_error(run_cli("fit", good_csv, "--model", "gaussian", "--x-column", "--plot",
                                   0, "--plot-out", missing / "p.png"), "cannot write", "p.png")


def test_fit_conflicting_layout_options(good_csv):
    assert_usage_error(run_cli("fit", good_csv, "--model", "line", "--x-column", "--by", "rows"),
                       "--x-column")
    assert_usage_error(run_cli("fit", good_csv, "--model", "line", "--x-column", "--x-row"),
                       "not allowed with")


def test_fit_argparse_errors_exit_2(good_csv):
    assert_usage_error(run_cli("fit", good_csv), "--model")              # required option
    assert_usage_error(run_cli("fit", good_csv, "--model", "line", "--plot", "two"), "invalid int")
    assert_usage_error(run_cli("frobnicate"), "invalid choice")
    assert_usage_error(run_cli(), "required")                            # no command


@needs_matplotlib
def test_fit_plot_out_of_an_unsupported_format_is_a_usage_error(good_csv, tmp_path):
    # matplotlib's "Format 'txt' is not supported" used to escape as a traceback (exit 1)
    proc = run_cli("fit", good_csv, "--model", "gaussian", "--x-column", "--plot", 0,
                   "--plot-out", tmp_path / "p.txt")
    assert_usage_error(proc, "p.txt", "unsupported image format 'txt'")
    assert not (tmp_path / "p.txt").exists()


@needs_matplotlib
def test_bench_plot_of_an_unsupported_format_is_refused_before_the_run(tmp_path):
    # it used to time every workload, then end in matplotlib's traceback (exit 1)
    proc = run_cli("bench", "--quick", "--only", "hessian", "--plot", tmp_path / "p.txt")
    assert_usage_error(proc, "--plot", "unsupported image format 'txt'")
    assert "[bench] area" not in proc.stderr and not (tmp_path / "p.txt").exists()


@pytest.mark.parametrize("name", ["poly100000000", "polynomial(100000000)", "Poly-99999999999"])
def test_fit_huge_polynomial_degree_is_checked_before_the_model_is_built(good_csv, name):
    # the 1e8 parameter names were built before the "N points but P parameters" check
    proc = run_cli("fit", good_csv, "--model", name, "--x-column", timeout=60)
    assert_usage_error(proc, "points per dataset", "need at least")


def test_version_is_the_package_metadata():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fastcalc {importlib.metadata.version('fastcalc')}"
