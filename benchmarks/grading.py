"""Grading throughput: `dlcourse grade` against plain nbgrader, in one run.

Every row grades the same class (``STUDENTS`` honest submissions of the three
notebooks, Appendix A's answers) from a fresh copy of the course, doing the
same work: the gradebook, the graded notebooks, feedback for every student
and ``grades.csv``. Plain nbgrader is run as an instructor runs it, one
command for the class at each step (``generate_assignment``, ``autograde``,
``generate_feedback``, ``export``); ``dlcourse grade`` runs as a command too
(a fresh interpreter, so it pays its own imports), locally with one and two
workers, and on a Dask cluster of two local worker processes started
beforehand. ``execute once`` is the time to run one submission's notebooks
top to bottom in fresh kernels, as a learner would.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

STUDENTS = 6
_GRADE = """
import json, sys
from pathlib import Path
from dlcourse.course import grading
root, workers, scheduler, unsafe, out = sys.argv[1:]
summary = grading.grade(Path(root), grading.Options(
    workers=int(workers), scheduler=scheduler or None, unsafe=unsafe == "1"))
Path(out).write_text(json.dumps({"seconds": summary.seconds, "problems": summary.problems}))
"""


@dataclass
class Result:
    rows: dict[str, float]  # row -> submissions per minute
    per_submission: float  # a worker's mean wall time per submission, --workers 2 (s)
    execute_once: float  # one submission's notebooks, run once (s)
    confined: bool
    problems: dict[str, list[str]]  # what grading reported, by row: empty when all went well


def make_class(root: Path, into: Path, students: int = STUDENTS) -> Path:
    """A copy of the course with ``students`` honest submissions."""
    import nbformat

    from dlcourse.course import appendix
    from dlcourse.course.layout import CONFIG, RELEASE, SOURCE, Layout

    answers = {a.grade_id: a.code for a in appendix.answers(root)}
    into.mkdir(parents=True)
    for name in (CONFIG, SOURCE, RELEASE):
        source = root / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, into / name)
    layout = Layout.of(into)
    for k in range(students):
        folder = layout.submitted(f"student{k}")
        folder.mkdir(parents=True)
        for path in layout.released_notebooks():
            nb = nbformat.read(path, 4)
            for cell in nb.cells:
                info = cell.metadata.get("nbgrader", {})
                if info.get("solution"):
                    cell.source = answers[info["grade_id"]]
            nbformat.write(nb, folder / path.name)
    return into


def _plain_nbgrader(course: Path) -> float:
    from dlcourse.course import nbgrader_cli
    from dlcourse.course.layout import ASSIGNMENT

    start = time.perf_counter()
    for command in (
        ["generate_assignment", ASSIGNMENT, "--force"],
        ["autograde", ASSIGNMENT, "--create"],
        ["generate_feedback", ASSIGNMENT],
        ["export", "--to", "grades.csv"],
    ):
        result = nbgrader_cli.run(course, *command)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader {command[0]} failed:\n{result.stdout[-2000:]}")
    return time.perf_counter() - start


def _dlcourse(course: Path, workers: int, scheduler: str, unsafe: bool) -> tuple[float, dict]:
    from dlcourse.course import nbgrader_cli

    out = course / "summary.json"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _GRADE, str(course), str(workers), scheduler, str(int(unsafe)),
         str(out)],
        env=nbgrader_cli.tool_environment(),
        check=True,
        capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start, json.loads(out.read_text())


def execute_once(course: Path) -> float:
    """One submission's notebooks, each in a fresh kernel, top to bottom."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    from dlcourse.course.layout import Layout

    folder = Layout.of(course).submitted("student0")
    config = Config()  # Unix sockets, as JupyterLab's kernels would rather not use plain TCP
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(course / "kernel-ipc")
    start = time.perf_counter()
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        resources = {"metadata": {"path": str(folder)}}
        NotebookClient(nb, timeout=120, resources=resources, config=config).execute()
    return time.perf_counter() - start


def throughput(root: Path) -> Result:
    from distributed import LocalCluster

    from dlcourse.course.grading import sandbox

    unsafe = sandbox.unavailable() is not None
    rows: dict[str, float] = {}
    problems: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-") as tmp:
        once = execute_once(make_class(root, Path(tmp) / "once", 1))
        seconds = _plain_nbgrader(make_class(root, Path(tmp) / "nbgrader"))
        rows["plain nbgrader"] = STUDENTS / seconds * 60
        per_submission = 0.0
        for workers in (1, 2):
            course = make_class(root, Path(tmp) / f"workers{workers}")
            seconds, summary = _dlcourse(course, workers, "", unsafe)
            rows[f"dlcourse grade --workers {workers}"] = STUDENTS / seconds * 60
            problems[f"--workers {workers}"] = summary["problems"]
            if workers == 2:
                per_submission = statistics.mean(summary["seconds"].values())
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:  # fmt: skip
            course = make_class(root, Path(tmp) / "dask")
            seconds, summary = _dlcourse(course, 2, cluster.scheduler_address, unsafe)
            rows["dlcourse grade --scheduler (2 local Dask workers)"] = STUDENTS / seconds * 60
            problems["--scheduler"] = summary["problems"]
    return Result(rows, per_submission, once, not unsafe, problems)
