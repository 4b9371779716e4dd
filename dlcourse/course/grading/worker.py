"""One student's grading, in a long-lived worker process.

:func:`grade` runs in a worker (a local process, or a Dask worker on another
machine) that imported nbgrader once. It takes a :class:`events.Task` and the
course's :class:`events.Bundle` and returns a :class:`events.TaskResult`,
data only: nothing here writes the course's gradebook or its folders.

For each student it makes a scratch course folder (the course's
``nbgrader_config.py``, a copy of the empty gradebook, the submission:
about a millisecond) and runs nbgrader's own converters in this process:
``Autograde`` one notebook at a time, so that a notebook nbgrader gives up on
costs only itself, with :class:`executor.ConfinedExecute` as its execution
step, then ``GenerateFeedback``. The scores are read back from the scratch
gradebook, the graded notebooks and feedback pages are made inert and
returned, and the scratch folder is removed.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.converters.base import NbGraderException
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from dlcourse.course.grading import events, inert, ledger, review, sandbox
from dlcourse.course.grading.executor import ConfinedExecute
from dlcourse.course.grading.kernels import Launcher
from dlcourse.course.grading.watchdog import WATCHDOG
from dlcourse.course.layout import ASSIGNMENT, CONFIG, Layout
from dlcourse.course.nbgrader_cli import Messages, load_config, put_tools_on_path
from dlcourse.course.semester import late, update
from dlcourse.course.semester.policy import read as read_policy

_process: dict[str, Path] = {}  # this worker process's own folders, made on first use


def _folders() -> tuple[Path, Path]:
    """(a private folder for scratch courses, a matplotlib configuration with
    the font cache built), made once per worker process."""
    if not _process:
        sweep()
        base = Path(tempfile.mkdtemp(prefix="dlcourse-worker-"))
        mplconfig = base / "matplotlib"
        mplconfig.mkdir()
        subprocess.run(
            [sys.executable, "-c", "import matplotlib.font_manager"],
            env={**os.environ, "MPLCONFIGDIR": str(mplconfig)},
            check=True,
            capture_output=True,
        )
        _process.update(base=base, mplconfig=mplconfig)
        # removed when the process ends (a pool's worker, or a Dask worker)
        multiprocessing.util.Finalize(
            None, shutil.rmtree, args=(base,), kwargs={"ignore_errors": True}, exitpriority=10
        )
    return _process["base"], _process["mplconfig"]


def sweep() -> None:
    """End what a grader on this machine that died left behind (kernels,
    their processes and runtime folders), if kernels are confined here."""
    if os.geteuid() == 0 and sandbox.RUNTIME.is_dir():
        sandbox.sweep()


def _config(folder: Path, bundle: events.Bundle, launcher: Launcher, events_file: Path) -> Config:
    """The course's nbgrader configuration for a scratch course in ``folder``,
    with the execution step replaced by the confined one."""
    config = load_config(folder)
    steps = list(
        config.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default())
    )
    config.Autograde.autograde_preprocessors = [
        ConfinedExecute if step is Execute else step for step in steps
    ]
    config.Execute.timeout = bundle.settings.timeout
    config.ConfinedExecute.launcher = launcher
    config.ConfinedExecute.events_file = str(events_file)
    config.ConfinedExecute.notebook_timeout = bundle.settings.notebook_timeout
    return config


def ready() -> None:
    """Make this worker process's folders now, before its first student."""
    _folders()


def receive(bundle: events.Bundle) -> events.Bundle:
    """The course's bundle, as a Dask task's result (see :func:`dispatch.dask`)."""
    return bundle


class WorkerRefused(RuntimeError):
    """This worker cannot grade as asked (it cannot confine kernels)."""


_one_at_a_time = threading.Lock()  # nbgrader's converters change the working folder


def grade(bundle: events.Bundle, task: events.Task) -> events.TaskResult:
    """Grade one student's notebooks (see the module's docstring); never
    raises for a fault of the student's. Tasks given to one process at once
    (a Dask worker with several threads) run one after the other, each within
    the grader's time limit (:mod:`watchdog`)."""
    if bundle.settings.confined:
        reason = sandbox.unavailable()
        if reason:
            raise WorkerRefused(
                f"the worker on {socket.gethostname()} cannot confine kernels: {reason}; "
                "start it as root where `unshare` works, or grade with --unsafe"
            )
    with _one_at_a_time:
        _folders()  # this process's, made once: not the student's to pay for
        budget = bundle.settings.grader_timeout
        with WATCHDOG.student(task.student, budget), warnings.catch_warnings():
            # what nbgrader and nbformat warn about while grading (SQLAlchemy's autoflush,
            # cells restored without ids) is not the instructor's to act on; a test
            # cell's own warnings are recorded by the executor, as output of that cell
            warnings.simplefilter("ignore")
            return _grade(bundle, task)


def _grade(bundle: events.Bundle, task: events.Task) -> events.TaskResult:
    started = time.monotonic()
    put_tools_on_path()
    base, mplconfig = _folders()
    folder = Path(tempfile.mkdtemp(prefix="course-", dir=base))
    log = logging.getLogger(f"dlcourse.grading.nbgrader.{folder.name}")
    log.propagate = False
    errors = Messages(logging.ERROR)
    log.addHandler(errors)
    try:
        (folder / CONFIG).write_text(bundle.config)
        Layout(folder).gradebook.write_bytes(bundle.gradebook)
        _deadline(folder, bundle, task.student)
        submitted = Layout(folder).submitted(task.student)
        submitted.mkdir(parents=True)
        for name, data in task.notebooks.items():
            nb = nbformat.reads(data.decode(), as_version=4)
            released = nbformat.reads(bundle.released[name], as_version=4)
            nbformat.write(restore_metadata(as_released(nb, released, name), released),
                           submitted / name)  # fmt: skip
        if task.timestamp is not None:
            (submitted / "timestamp.txt").write_text(task.timestamp)
        hide = [Path(p) for p in bundle.private] + [base]
        limits = sandbox.Limits(memory_mb=bundle.settings.memory_mb)
        cover = [Path(bundle.course)] if bundle.course else []
        launcher = Launcher(bundle.settings.confined, limits, hide, mplconfig, cover)
        result = events.TaskResult(task.student, timestamp=task.timestamp)
        for name in task.notebooks:
            _autograde(folder, bundle, launcher, task.student, name, result, log, errors)
        graded = Layout(folder).autograded(task.student)
        for name, notebook in result.notebooks.items():
            nb = nbformat.reads(notebook.autograded, as_version=4)
            released = nbformat.reads(bundle.released[name], as_version=4)
            result.review.update(review.needs_review(nb, released))
            result.problems += [f"{name}: {line}" for line in inert.make_inert(nb, released)]
            notebook.autograded = nbformat.writes(nb)
            (graded / name).write_text(notebook.autograded)
        _feedback(folder, bundle, task.student, result, log)
    finally:
        log.removeHandler(errors)
        shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def _deadline(folder: Path, bundle: events.Bundle, student: str) -> None:
    """The course's policy into the scratch course: its file, for nbgrader's
    late-submission plugin and the feedback's note, and the due date and the
    student's extension in the gradebook, for nbgrader's seconds late."""
    policy = None
    if bundle.policy:
        path = Layout(folder).policy
        path.write_text(bundle.policy)
        policy = read_policy(path)
    with Gradebook(f"sqlite:///{Layout(folder).gradebook}") as gb:
        gb.update_or_create_student(student)
        late.record(gb, ASSIGNMENT, student, policy)


def as_released(
    nb: nbformat.NotebookNode, released: nbformat.NotebookNode, name: str
) -> nbformat.NotebookNode:
    """The submission merged into the release it is graded by, as `dlcourse
    update` merges (:mod:`dlcourse.course.semester.update`): answers as
    written, the release's cells around them, so that a notebook made before
    an erratum is graded as one made after it (an exercise added since scores
    0, one removed is not graded). A submission too unlike the release to be
    merged is graded as it is."""
    try:
        return update.merge(nb, released, name)[0]
    except update.UpdateError:
        return nb


def restore_metadata(
    nb: nbformat.NotebookNode, released: nbformat.NotebookNode
) -> nbformat.NotebookNode:
    """The submission with every cell's nbgrader metadata as released (by
    grade id), and none on cells whose grade id the assignment does not know
    or that repeat one. nbgrader's OverwriteCells does this too, but crashes
    on some tampering (a solution cell marked as graded), which would cost
    the whole notebook."""
    known = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
        for c in released.cells
        if "grade_id" in c.metadata.get("nbgrader", {})
    }
    seen: set[str] = set()
    for cell in nb.cells:
        info = cell.get("metadata", {}).get("nbgrader")
        grade_id = info.get("grade_id") if isinstance(info, dict) else None
        if isinstance(grade_id, str) and grade_id in known and grade_id not in seen:
            seen.add(grade_id)
            cell.metadata["nbgrader"] = dict(known[grade_id])
        else:
            cell.get("metadata", {}).pop("nbgrader", None)
    return nb


def _coursedir(folder: Path, config: Config, student: str, notebook: str) -> CourseDirectory:
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id, coursedir.student_id, coursedir.notebook_id = (
        ASSIGNMENT,
        student,
        notebook,
    )
    return coursedir


def _autograde(
    folder: Path,
    bundle: events.Bundle,
    launcher: Launcher,
    student: str,
    name: str,
    result: events.TaskResult,
    log: logging.Logger,
    errors: Messages,
) -> None:
    """Autograde one notebook into ``result``; a notebook nbgrader gives up on
    scores 0, with the cause."""
    stem = name.removesuffix(".ipynb")
    events_file = folder / f"{stem}.events"
    config = _config(folder, bundle, launcher, events_file)
    converter = Autograde(
        coursedir=_coursedir(folder, config, student, stem), config=config, log=log
    )
    converter.force = True
    converter.create_student = True
    errors.lines.clear()
    failed = False
    try:
        converter.start()
    except NbGraderException:
        failed = True
    reported = events.read_events(events_file)
    result.problems += [event.message() for event in reported]
    result.retry = next((e.message() for e in reported if e.kind == events.NO_KERNEL), result.retry)
    path = Layout(folder).autograded(student) / name
    if failed or not path.exists():
        if not any(event.kind in (events.GAVE_UP, events.NO_KERNEL) for event in reported):
            why = next((m for m in errors.lines if "Traceback" not in m), "no reason given")
            result.problems.append(
                f"{name}: nbgrader could not grade it ({why[:300]}); its exercises score 0"
            )
        return
    with Gradebook(f"sqlite:///{Layout(folder).gradebook}") as gb:
        submission = gb.find_submission_notebook(stem, ASSIGNMENT, student)
        grades = {g.name: (g.score, g.max_score) for g in submission.grades}
        penalty = submission.late_submission_penalty or 0.0
    result.notebooks[name] = events.NotebookResult(grades, path.read_text(), late_penalty=penalty)


def _feedback(
    folder: Path, bundle: events.Bundle, student: str, result: events.TaskResult,
    log: logging.Logger,
) -> None:  # fmt: skip
    """nbgrader's feedback pages for the graded notebooks, into ``result``."""
    if not result.notebooks:
        return
    config = load_config(folder)
    with Gradebook(f"sqlite:///{Layout(folder).gradebook}") as gb:
        for name in result.notebooks:
            ledger.flag(gb, student, name.removesuffix(".ipynb"), result.review)
        gb.db.commit()
    converter = GenerateFeedback(
        coursedir=_coursedir(folder, config, student, "*"), config=config, log=log
    )
    converter.force = True
    try:
        converter.start()
    except NbGraderException:
        result.problems.append("feedback could not be generated for this student")
        return
    pages = Layout(folder).feedback(student)
    for name, notebook in result.notebooks.items():
        page = pages / (name.removesuffix(".ipynb") + ".html")
        if page.exists():
            notebook.feedback = page.read_text()
