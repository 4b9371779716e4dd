"""python -m benchmarks [--quick] [--out FILE]: time dlcourse against its peers.

Prints a table of median microseconds per SGD training step with the ratios
dlcourse / peer, then gradient-check, import, notebook and grading timings,
and writes it all, with the machine's details, to benchmarks/RESULTS.md,
closing with every target of the issues (the table in ``row_targets`` and the
constants below it), met or missed as measured in this run.
"""

from __future__ import annotations

import argparse
import operator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmarks import grading, suite

ROOT = Path(__file__).resolve().parents[1]


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.0f}"


def ratio(a: float, b: float | None) -> str:
    return "-" if b is None else f"{a / b:.2f}"


class Target(NamedTuple):
    """A target of the issues: ``measured <op> limit`` is met."""

    what: str
    op: str  # "<", "<=" or ">="
    limit: float

    def verdict(self, measured: float) -> str:
        met = {"<": operator.lt, "<=": operator.le, ">=": operator.ge}[self.op](
            measured, self.limit
        )
        return "met" if met else "missed"


def row_targets(row: suite.Row, dtype: str) -> dict[str, Target]:
    """The targets of one row: its ratios to hand-written numpy and PyTorch, and
    micrograd's to it, keyed by the measurement they apply to."""
    limit = 1.5 if row.batch == 8 else 1.05 if row.sizes[0] == 784 else 1.3
    return {
        "numpy": Target(f"{row.name}, {dtype}: dlcourse / hand-written numpy", "<=", limit),
        "torch": Target(f"{row.name}, {dtype}: dlcourse / PyTorch CPU", "<", 1.0),
        "micrograd": Target(f"{row.name}, {dtype}: micrograd / dlcourse", ">=", 10_000),
    }


DTYPES = (np.float64, np.float32)
IMPORT = Target("import dlcourse / import numpy (fresh interpreter)", "<=", 1.3)
THROUGHPUT = Target(
    "dlcourse grade --workers 2 / plain nbgrader (class-wide), submissions per minute", ">=", 2.0
)
PER_SUBMISSION = Target("a worker's wall time per submission / executing it once", "<=", 1.5)
LOCATE = Target("fast gradcheck naming a wrong element among 90,000 parameters, seconds", "<=", 5.0)


def verdict_line(target: Target, measured: float) -> str:
    # four significant digits, so that a ratio of 1.997 against ">= 2" does not show as 2
    shown = f"{measured:,.0f}" if measured >= 100 else f"{measured:.4g}"
    return (
        f"| {target.what} | {shown} | {target.op} {target.limit:,g} | {target.verdict(measured)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the smallest row only, briefly, nothing else (a smoke test)",
    )
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timing per row")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["grading"],
        help="leave out a slow section (grading: the throughput of dlcourse grade)",
    )
    args = parser.parse_args()
    rows = suite.ROWS[:1] if args.quick else suite.ROWS
    budget = 0.2 if args.quick else args.budget
    lines = [
        "# dlcourse benchmarks",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in suite.machine().items()),
        "",
        "Per-call costs here: "
        + "; ".join(f"{name} {us:.2f} µs" for name, us in suite.call_costs().items())
        + ".",
        "",
        "Median µs per SGD training step (forward, softmax cross-entropy, backward, update), "
        "every library single-threaded, "
        "implementations interleaved in one run (blocks of 10 timed calls, each after one "
        "untimed call); ratio = dlcourse / peer (below 1: dlcourse is faster).",
        "",
        "| network, batch | dtype | dlcourse | hand-written numpy | ratio | PyTorch CPU | ratio "
        "| micrograd | ratio | objects left to the GC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = ["| target | measured | limit | verdict |", "|---|---|---|---|"]
    for row in rows:
        for dtype in DTYPES:
            t = suite.time_row(row, dtype, budget)
            name = np.dtype(dtype).name
            goals = row_targets(row, name)
            verdicts.append(verdict_line(goals["numpy"], t["dlcourse"] / t["numpy"]))
            if "torch" in t:
                verdicts.append(verdict_line(goals["torch"], t["dlcourse"] / t["torch"]))
            if "micrograd" in t:
                verdicts.append(verdict_line(goals["micrograd"], t["micrograd"] / t["dlcourse"]))
            lines.append(
                f"| {row.name} | {name} | {fmt(t['dlcourse'])} | {fmt(t['numpy'])} "
                f"| {ratio(t['dlcourse'], t['numpy'])} | {fmt(t.get('torch'))} "
                f"| {ratio(t['dlcourse'], t.get('torch'))} | {fmt(t.get('micrograd'))} "
                f"| {ratio(t['dlcourse'], t.get('micrograd'))} | {t['cycles']:.0f} |"
            )
            print(lines[-1], flush=True)
    if not args.quick:
        wide = suite.ROWS[-1]
        alone = {np.dtype(d).name: suite.products_alone(wide, d, budget) for d in DTYPES}
        if all(alone.values()):
            lines += [
                "",
                f"Matrix products alone, {wide.name} (each layer's forward product, dW and, "
                "but for the first layer, dx), median µs: "
                + "; ".join(
                    f"{name} numpy {fmt(t['numpy'])}, PyTorch {fmt(t['torch'])} "
                    f"(numpy / PyTorch {ratio(t['numpy'], t['torch'])})"
                    for name, t in alone.items()
                )
                + ".",
            ]
        g = suite.gradcheck_times()
        lines += [
            "",
            f"Gradient check of a {g['parameters']:,.0f}-parameter MLP (check_module): "
            f"fast {g['fast']:.3f} s, sparse {g['sparse']:.3f} s, full {g['full']:.2f} s "
            f"(full / fast = {g['full'] / g['fast']:.0f}x).",
        ]
        located = suite.locate_time()
        lines += [
            "",
            f"Fast gradcheck of {located['parameters']:,.0f} parameters with one wrong element: "
            f"named in {located['seconds']:.3f} s and {located['evaluations']:.0f} evaluations "
            "of the function.",
        ]
        verdicts.append(verdict_line(LOCATE, located["seconds"]))
        imports = suite.import_times()
        lines += [
            "",
            f"Import (fresh interpreter, median): python alone {imports['python'] * 1e3:.0f} ms, "
            f"numpy {imports['numpy'] * 1e3:.0f} ms, dlcourse {imports['dlcourse'] * 1e3:.0f} ms.",
        ]
        verdicts.append(verdict_line(IMPORT, imports["dlcourse"] / imports["numpy"]))
        notebooks = suite.notebook_times(ROOT)
        lines += [
            "",
            "Notebooks, top to bottom: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in notebooks.items())
            + f"; together {sum(notebooks.values()):.1f} s.",
        ]
        if "grading" in args.skip:
            lines += ["", "Grading throughput: not measured in this run (--skip grading)."]
        else:
            g = grading.throughput(ROOT)
            confined = "kernels confined" if g.confined else "no sandbox here: --unsafe"
            lines += [
                "",
                f"Grading throughput, {grading.STUDENTS} submissions of three notebooks, per "
                f"minute ({confined}): "
                + ", ".join(f"{name} {rate:.1f}" for name, rate in g.rows.items())
                + f". Per submission: a worker's wall time {g.per_submission:.1f} s "
                f"(--workers 2); executing its notebooks once {g.execute_once:.1f} s.",
            ]
            lines += [
                f"Problems reported ({row}): {problems}" for row, problems in g.problems.items()
                if problems
            ]  # fmt: skip
            speedup = g.rows["dlcourse grade --workers 2"] / g.rows["plain nbgrader"]
            verdicts.append(verdict_line(THROUGHPUT, speedup))
            verdicts.append(verdict_line(PER_SUBMISSION, g.per_submission / g.execute_once))
        print("\n".join(lines[-9:]))
    met = sum(v.endswith("| met |") for v in verdicts)
    lines += ["", f"Targets: {met} of {len(verdicts) - 2} met.", "", *verdicts]
    print("\n".join(lines[-len(verdicts) - 2 :]))
    if not args.quick:
        args.out.write_text("\n".join(lines) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
