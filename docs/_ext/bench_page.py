"""Write the benchmark page's table, machine description and plot from a ``bench --json`` file.

The JSON is what ``python -m fastcalc bench --json PATH`` writes: ``mode``, ``sizes``,
``machine`` and one entry per workload in ``rows`` (``area``, ``workload``, ``size``,
``fastcalc_s``, ``reference``, ``reference_s``, ``ratio``, ``fastcalc_error``,
``reference_error``, ``metric``, ``note``).
"""
import json


def seconds(value):
    """``1.23 s``, ``45.6 ms``, ``789 us``; ``-`` for a missing time."""
    if value is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def ratio(value):
    if not value:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"


def number(value):
    return "-" if value is None else f"{value:.2g}"


def machine_text(report):
    m, mode = report["machine"], report["mode"]
    libraries = ", ".join(f"{name} {m[name]}" for name in
                          ("numpy", "scipy", "numdifftools", "lmfit") if m.get(name))
    load = (f"; load average {m['load_average']} at the start"
            if m.get("load_average") is not None else "")
    return (f"Measured in ``{mode}`` mode with fastcalc {m['fastcalc']} on {m['cpu']}, "
            f"{m['cores']} cores, {m['threads']} threads, OpenMP "
            f"{'on' if m['openmp'] else 'off'} ({m['platform']}); Python {m['python']}, "
            f"{libraries}{load}.\n")


def table_text(report):
    head = ["workload", "size", "fastcalc", "reference", "ref. time", "ratio",
            "err fastcalc / ref", "metric"]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    rows = [head] + [
        [f"{r['area']}: {r['workload']}", r["size"], seconds(r["fastcalc_s"]),
         r["reference"] or "-", seconds(r["reference_s"]), ratio(r["ratio"]),
         f"{number(r['fastcalc_error'])} / {number(r['reference_error'])}", r["metric"] or "-"]
        for r in report["rows"]]
    for row in rows:
        lines.append(f"   * - {_escape(row[0])}")
        lines += [f"     - {_escape(cell)}" for cell in row[1:]]
    notes = [f"{i}. {r['workload']}: {_escape(r['note'])}"
             for i, r in enumerate(report["rows"], 1) if r["note"]]
    if notes:
        lines += ["", "Notes (by row number):", ""] + notes
    return "\n".join(lines) + "\n"


def _escape(text):
    return str(text).replace("*", r"\*").replace("`", r"\`").replace("|", r"\|")


def write_plot(report, path):
    """A horizontal bar chart of the speed-up ratios (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in report["rows"] if r["ratio"]]
    labels = [f"{r['area']}: {r['workload']} ({r['size']})\nvs {r['reference']}" for r in timed]
    ratios = [r["ratio"] for r in timed]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(timed) + 1.6))
    y = list(range(len(timed)))[::-1]
    ax.barh(y, ratios, height=0.6, color=["tab:green" if q >= 1 else "tab:red" for q in ratios])
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, q in zip(y, ratios):
        ax.text(q, yi, f" {ratio(q)}", va="center", fontsize=8)
    if ratios:
        ax.set_xlim(min(0.5, min(ratios) / 2), max(ratios) * 4)
    ax.set_xlabel("speed-up over the reference (log scale; > 1: fastcalc faster)")
    m = report["machine"]
    ax.set_title(f"fastcalc {m['fastcalc']} ({report['mode']} sizes): {m['cpu']}, "
                 f"{m['cores']} cores, {m['threads']} threads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_bench_page(json_path, folder):
    """Write ``bench_machine.inc``, ``bench_table.inc`` and ``bench.png`` into ``folder``."""
    report = json.loads(json_path.read_text(encoding="utf-8"))
    folder.mkdir(exist_ok=True)
    (folder / "bench_machine.inc").write_text(machine_text(report), encoding="utf-8")
    (folder / "bench_table.inc").write_text(table_text(report), encoding="utf-8")
    plot = folder / "bench.png"
    if not plot.exists() or plot.stat().st_mtime < json_path.stat().st_mtime:
        write_plot(report, plot)
