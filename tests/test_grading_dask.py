"""`dlcourse grade --scheduler` on a Dask cluster: the same grades as locally.

A `LocalCluster` of worker processes grades a small class and must agree
with local grading; a scheduler and workers started as separate commands on
loopback keep grading when a worker is killed in the middle of a student,
who is then graded once, elsewhere; and a worker that cannot confine kernels
refuses its tasks. Runs where the sandbox can be set up, or with --unsafe
where it cannot (the refusal test needs the sandbox).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import appendix, grading
from dlcourse.course.grading import sandbox
from dlcourse.course.layout import CONFIG, RELEASE, SOURCE, Layout

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_chain_rule.ipynb"
ANSWERS = {a.grade_id: a.code for a in appendix.answers(ROOT)}
FULL = sum(  # section 1.2's points
    c.metadata["nbgrader"].get("points", 0)
    for c in nbformat.read(Layout(ROOT).release / NOTEBOOK, 4).cells
    if c.metadata.get("nbgrader", {}).get("grade")
)
CORRECT = ANSWERS["chain_rule"]
WRONG = CORRECT.replace("f_prime(g(x))", "f_prime(x)")
UNSAFE = sandbox.unavailable() is not None
pytestmark = pytest.mark.slow


def make_class(into: Path, students: dict[str, dict[str, str]]) -> Path:
    into.mkdir(parents=True)
    for name in (CONFIG, SOURCE, RELEASE):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, into / name)
    layout = Layout.of(into)
    for student, code in students.items():
        nb = nbformat.read(layout.release / NOTEBOOK, 4)
        for cell in nb.cells:
            info = cell.metadata.get("nbgrader", {})
            if info.get("solution"):
                cell.source = code.get(info["grade_id"], ANSWERS[info["grade_id"]])
        layout.submitted(student).mkdir(parents=True)
        nbformat.write(nb, layout.submitted(student) / NOTEBOOK)
    return into


CLASS = {
    "honest": {},
    "partial": {"chain_rule": WRONG},
    "crash": {"chain_rule": "import os\nos._exit(3)"},
}


def graded_files(root: Path) -> dict[str, str]:
    """The feedback pages, by path: what a student sees (but the prompts'
    execution counts: where a kernel died in a cell, whether the cell got its
    count first is a race, locally as on a cluster)."""
    return {
        str(p.relative_to(root)): re.sub(r"In\s\[[^]]*\]", "In [ ]", p.read_text())
        for p in sorted((root / "feedback").rglob("*"))
        if p.is_file()
    }


def test_a_dask_cluster_grades_as_the_local_workers_do(tmp_path: Path) -> None:
    local = make_class(tmp_path / "local", CLASS)
    remote = make_class(tmp_path / "remote", CLASS)
    here = grading.grade(local, grading.Options(workers=2, unsafe=UNSAFE))
    seen: list[tuple[int, int, int]] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:  # fmt: skip
        there = grading.grade(
            remote,
            grading.Options(scheduler=cluster.scheduler_address, unsafe=UNSAFE),
            lambda done, total, failures: seen.append((done, total, failures)),
        )
    assert grading.scores(remote) == grading.scores(local)
    assert there.problems == here.problems and there.graded == here.graded
    assert graded_files(remote) == graded_files(local)
    rows = [sorted((root / "grades.csv").read_text().splitlines()) for root in (remote, local)]
    assert rows[0] == rows[1]  # in the order results came back
    assert seen[-1] == (3, 3, 1)  # progress as locally: three done, the crash a problem


@contextlib.contextmanager
def started(command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def _children(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for status in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(status.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    child = int(status.parent.name)
                    if child not in found:
                        found.add(child)
                        todo.append(child)
    return found


def _kill_the_busy_worker(workers: list[subprocess.Popen], killed: list[int]) -> None:
    """SIGKILL the first worker seen running a kernel (a student half graded)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        for process in workers:
            if any("ipykernel" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")
                   for c in _children(process.pid) if Path(f"/proc/{c}/cmdline").exists()):
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)
                return
        time.sleep(0.2)


def test_a_worker_killed_mid_student_costs_a_retry_elsewhere(tmp_path: Path) -> None:
    students = {f"s{k}": {"chain_rule": "import time\ntime.sleep(3)\n" + CORRECT}
                for k in range(4)}  # fmt: skip
    root = make_class(tmp_path / "class", students)
    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(scheduler_file)]  # fmt: skip
    worker = [dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
              "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]  # fmt: skip
    with (
        started(scheduler, tmp_path / "scheduler.log"),
        started(worker, tmp_path / "worker-1.log") as first,
        started(worker, tmp_path / "worker-2.log") as second,
    ):
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = distributed.Client(scheduler_file=str(scheduler_file), timeout=60)
        address.wait_for_workers(2, timeout=120)
        killed: list[int] = []
        killer = threading.Thread(target=_kill_the_busy_worker, args=([first, second], killed))
        killer.start()
        summary = grading.grade(
            root, grading.Options(scheduler=address.scheduler.address, unsafe=UNSAFE)
        )
        killer.join()
        address.close()
    assert killed, "no worker was seen grading"
    assert sorted(summary.graded) == sorted(students), summary.problems
    scores = {s: sum(cells.values()) for s, cells in grading.scores(root).items()}
    assert set(scores.values()) == {FULL}, (scores, summary.problems)
    rows = (root / "grades.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[3] for row in rows) == sorted(students)  # each graded once


@pytest.mark.skipif(UNSAFE, reason=f"needs the sandbox: {sandbox.unavailable()}")
def test_a_worker_that_cannot_confine_kernels_refuses_its_tasks(tmp_path: Path) -> None:
    root = make_class(tmp_path / "class", {"honest": {}})
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        client.run(_no_sandbox)
        summary = grading.grade(root, grading.Options(scheduler=cluster.scheduler_address))
    refused = [p for p in summary.problems["honest"] if "cannot confine kernels" in p]
    assert refused and "no namespaces on this worker" in refused[0] and "--unsafe" in refused[0]
    assert summary.graded == []


def _no_sandbox() -> None:
    sandbox.unavailable = lambda: "no namespaces on this worker"
