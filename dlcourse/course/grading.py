"""Grading a class on nbgrader: in parallel, confined, resumable, fault-tolerant.

nbgrader does the grading itself (sanitising with OverwriteCells, executing,
scoring the test cells); this module runs it safely and at scale:

1. **Check the input.** Every ``submitted/<student>/ch01/*.ipynb`` is read,
   never modified: a missing, empty, oversized, non-UTF-8, truncated or foreign
   notebook becomes a recorded problem for that student, and the rest of the
   class is graded.
2. **Grade in parallel.** Each (student, notebook) is a task: a scratch
   course holding a copy of the submission and a private copy of an empty
   gradebook made by ``nbgrader generate_assignment``, graded by ``nbgrader
   autograde`` in its own process, its kernel confined by
   :mod:`dlcourse.course.sandbox`. Workers never touch the real gradebook.
3. **One writer.** As tasks finish, the main process copies their scores
   into ``gradebook.db`` (and the graded notebooks into ``autograded/``), then
   marks the student done with the hashes of what was graded. Interrupting
   loses at most the tasks under way; running again grades only what is not
   done (or what changed since), unless ``force``.
4. **Faults are results.** A notebook whose kernel died or overran its time
   gets zero for its exercises, and the cause is recorded and reported: a dead
   kernel costs the student that notebook, never the whole submission, and is
   never a silent 0.
5. **Feedback and export** are nbgrader's (``generate_feedback`` with hidden
   tests removed, ``export`` to ``grades.csv``).

What this does not yet guarantee: verdicts are still computed inside the
student's kernel, so code that patches the test helpers at run time can fake
a pass; nbgrader's OverwriteCells restores edited or deleted test cells, but
nothing yet recomputes verdicts outside the kernel.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from dlcourse.course import sandbox
from dlcourse.course.authoring import ASSIGNMENT
from dlcourse.course.release import tool_environment

MAX_NOTEBOOK_BYTES = 5 * 1024 * 1024
KERNEL_UIDS = range(62000, 63000)  # unprivileged users for kernels, one per worker


class KernelUsers:
    """A block of kernel users reserved for this run (lock files), so that two
    grading runs on one machine never share, or kill, each other's kernels."""

    def __init__(self, count: int):
        self.locks: list[int] = []
        for first in range(KERNEL_UIDS.start, KERNEL_UIDS.stop - count, count):
            locks = [self._lock(uid) for uid in range(first, first + count)]
            if all(lock is not None for lock in locks):
                self.locks, self.first = locks, first
                return
            for lock in locks:
                if lock is not None:
                    os.close(lock)
        raise GradingError("no free kernel users: too many grading runs at once")

    @staticmethod
    def _lock(uid: int) -> int | None:
        path = Path(tempfile.gettempdir()) / f"dlcourse-kernel-user-{uid}.lock"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def uid(self, slot: int) -> int:
        return self.first + slot

    def release(self) -> None:
        for lock in self.locks:
            os.close(lock)


class GradingError(RuntimeError):
    """Grading cannot start (the message says why and what to do)."""


@dataclass
class Options:
    workers: int = 2
    timeout: int = 60  # seconds per cell
    memory_mb: int = 2048
    students: list[str] | None = None
    force: bool = False
    unsafe: bool = False


@dataclass
class Task:
    student: str
    notebook: str  # file name, e.g. "01_deep_learning.ipynb"
    path: Path  # the submitted file


@dataclass
class TaskResult:
    task: Task
    grades: dict[str, tuple[float, float]] = field(default_factory=dict)  # test cell -> score
    problem: str = ""
    autograded: Path | None = None


@dataclass
class Summary:
    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add_problem(self, student: str, message: str) -> None:
        self.problems.setdefault(student, []).append(message)


def expected_notebooks(root: Path) -> dict[str, set[str]]:
    """Released notebook name -> the grade ids of its test cells."""
    found = {}
    for path in sorted((root / "notebooks" / ASSIGNMENT).glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        found[path.name] = {
            c.metadata["nbgrader"]["grade_id"]
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        }
    return found


def check_submission(path: Path, grade_ids: set[str]) -> str:
    """Why ``path`` cannot be graded as a notebook of this assignment ('' if it can)."""
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty"
    if size > MAX_NOTEBOOK_BYTES:
        return (
            f"{path.name} is {size / 2**20:.1f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return f"{path.name} is not UTF-8 text (byte {error.start}): not a notebook file"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several kinds for broken JSON
        return (
            f"{path.name} is not a readable notebook ({type(error).__name__}: {str(error)[:120]})"
        )
    ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])}
    if not grade_ids & ids:
        return (
            f"{path.name} has none of this notebook's exercises: a notebook of another assignment?"
        )
    return ""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Course:
    """The instructor's course folder (the repository)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.state = self.root / ".dlcourse"
        self.markers = self.state / "graded"
        self.db = self.root / "gradebook.db"

    def students(self) -> list[str]:
        submitted = self.root / "submitted"
        return (
            sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.exists() else []
        )

    def marker(self, student: str) -> dict | None:
        """The digests of what was graded for ``student``; None if never graded."""
        path = self.markers / f"{student}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def mark(self, student: str, digests: dict[str, str]) -> None:
        self.markers.mkdir(parents=True, exist_ok=True)
        path = self.markers / f"{student}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(digests, indent=1))
        tmp.replace(path)


def nbgrader(
    course: Path, *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run an nbgrader command in ``course``; its own process group, so it can be stopped whole."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env or tool_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def make_template(course: Course, into: Path) -> Path:
    """An empty gradebook that knows the assignment (notebooks, cells, points)."""
    into.mkdir(parents=True)
    shutil.copy2(course.root / "nbgrader_config.py", into)
    shutil.copytree(course.root / "solutions" / ASSIGNMENT, into / "solutions" / ASSIGNMENT)
    result = nbgrader(into, "generate_assignment", ASSIGNMENT, "--force")
    if result.returncode != 0:
        raise GradingError("nbgrader generate_assignment failed:\n" + result.stdout[-3000:])
    return into / "gradebook.db"


SCRATCH_CONFIG = """
c.Execute.timeout = {timeout}
c.Execute.kernel_name = {kernel!r}
"""
# Unix sockets and the connection file in the kernel's own runtime folder (the
# defaults are a relative path and the system's temporary folder).
IPC_CONFIG = """
c.KernelManager.transport = "ipc"
c.KernelManager.connection_file = {runtime!r} + "/kernel.json"
c.KernelManager.ip = {runtime!r} + "/kernel-ipc"
"""


class Grader:
    def __init__(
        self, course: Course, options: Options, base: Path, template_db: Path, mplconfig: Path
    ):
        self.course, self.options, self.base = course, options, base
        self.template_db, self.mplconfig = template_db, mplconfig
        self.confined = not options.unsafe
        self.users = KernelUsers(options.workers)

    def run(self, task: Task, slot: int) -> TaskResult:
        """Grade one notebook of one student in a scratch course; never raises for
        a fault of the student's."""
        # the kernel's runtime folder, at a short path: a Unix socket's path may
        # not exceed 107 bytes
        runtime = Path(tempfile.mkdtemp(prefix="dlcourse-kernel-"))
        try:
            return self._run(task, slot, runtime)
        finally:
            if self.confined:
                _kill_user(self.users.uid(slot))  # whatever the kernel left running
            shutil.rmtree(runtime, ignore_errors=True)

    def _run(self, task: Task, slot: int, runtime: Path) -> TaskResult:
        scratch = Path(tempfile.mkdtemp(prefix=f"{task.student}-", dir=self.base))
        os.chmod(scratch, 0o700)
        shutil.copy2(self.course.root / "nbgrader_config.py", scratch)
        shutil.copy2(self.template_db, scratch / "gradebook.db")
        target = scratch / "submitted" / task.student / ASSIGNMENT / task.notebook
        target.parent.mkdir(parents=True)
        shutil.copyfile(task.path, target)
        env = tool_environment()
        kernel = "python3"
        if self.confined:
            kernel = sandbox.KERNEL_NAME
            uid = self.users.uid(slot)
            os.chown(runtime, uid, uid)
            hidden = [
                self.course.root / name
                for name in ("solutions", "submitted", "autograded", "feedback", "gradebook.db")
            ]
            hidden += [
                self.course.markers,
                scratch / "gradebook.db",
                scratch / "submitted",
            ]
            spec = sandbox.write_kernelspec(
                scratch / "jupyter",
                hidden,
                uid,
                sandbox.Limits(memory_mb=self.options.memory_mb),
                self.mplconfig,
            )
            env.update(JUPYTER_PATH=str(spec), JUPYTER_RUNTIME_DIR=str(runtime))
        with open(scratch / "nbgrader_config.py", "a") as config:
            config.write(SCRATCH_CONFIG.format(timeout=self.options.timeout, kernel=kernel))
            if self.confined:
                config.write(IPC_CONFIG.format(runtime=str(runtime)))
        name = task.notebook.removesuffix(".ipynb")
        cells = len(nbformat.read(task.path, 4).cells)
        try:
            log = nbgrader(
                scratch,
                "autograde",
                ASSIGNMENT,
                "--student",
                task.student,
                "--notebook",
                name,
                "--create",
                "--force",
                env=env,
                timeout=60 + cells * (self.options.timeout + 5),
            ).stdout
        except subprocess.TimeoutExpired:
            return TaskResult(
                task, problem=f"{task.notebook}: grading took too long and was stopped"
            )
        graded = scratch / "autograded" / task.student / ASSIGNMENT / task.notebook
        if not graded.exists():
            return TaskResult(task, problem=f"{task.notebook}: {_cause(log)}")
        result = TaskResult(task, autograded=graded)
        with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
            for grade in gb.find_submission_notebook(name, ASSIGNMENT, task.student).grades:
                result.grades[grade.name] = (grade.score, grade.max_score)
        timeouts = log.count("CellTimeoutError") + log.count("Timeout waiting for execute reply")
        if timeouts:
            result.problem = f"{task.notebook}: a cell ran over the {self.options.timeout} s limit"
        return result


def _kill_user(uid: int) -> None:
    """Kill every process of ``uid`` (a kernel's forks outliving it)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            owner = next(
                line for line in status.read_text().splitlines() if line.startswith("Uid:")
            )
            if int(owner.split()[1]) == uid:
                os.kill(int(status.parent.name), signal.SIGKILL)
        except (OSError, StopIteration, ValueError):
            continue  # the process ended meanwhile


def _cause(log: str) -> str:
    """A one-line reason from nbgrader's log for a notebook it could not grade."""
    lowered = log.lower()
    if "kernel died" in lowered or "deadkernelerror" in lowered:
        return (
            "the kernel died while running the notebook (a crash, os._exit, or memory "
            "over the limit); its exercises score 0"
        )
    if "timeout" in lowered:
        return "a cell ran over the time limit and the kernel could not be stopped; scored 0"
    tail = [line for line in log.splitlines() if "ERROR" in line or "Error" in line][-3:]
    return "nbgrader could not grade it: " + (" | ".join(tail) or log[-300:])


def merge(course: Course, result: TaskResult) -> None:
    """Write one task's scores into the course gradebook (the only writer)."""
    task = result.task
    name = task.notebook.removesuffix(".ipynb")
    with Gradebook(f"sqlite:///{course.db}") as gb, warnings.catch_warnings():
        # nbgrader's own submission code trips SQLAlchemy 2's autoflush warning
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(task.student)
        try:
            gb.find_submission(ASSIGNMENT, task.student)
        except MissingEntry:
            gb.update_or_create_submission(ASSIGNMENT, task.student)
        for grade in gb.find_submission_notebook(name, ASSIGNMENT, task.student).grades:
            if grade.cell_type == "code" and grade.max_score:
                grade.auto_score = result.grades.get(grade.name, (0.0, grade.max_score))[0]
                grade.needs_manual_grade = False
        gb.db.commit()
    if result.autograded is not None:
        target = course.root / "autograded" / task.student / ASSIGNMENT / task.notebook
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.autograded, target)


def plan(course: Course, options: Options, summary: Summary) -> tuple[list[Task], dict]:
    """The tasks still to do, and each student's digests to mark when done."""
    expected = expected_notebooks(course.root)
    wanted = options.students or course.students()
    missing_students = sorted(set(wanted) - set(course.students()))
    for student in missing_students:
        summary.add_problem(student, f"no folder submitted/{student}/{ASSIGNMENT}/")
    tasks, digests = [], {}
    for student in sorted(set(wanted) - set(missing_students)):
        folder = course.root / "submitted" / student / ASSIGNMENT
        files = {p.name: p for p in folder.iterdir()} if folder.exists() else {}
        if not any(name.endswith(".ipynb") for name in files):
            summary.add_problem(student, f"no notebooks in submitted/{student}/{ASSIGNMENT}/")
        current = {name: _digest(files[name]) for name in expected if name in files}
        if not options.force and course.marker(student) == current:
            summary.skipped.append(student)
            continue
        digests[student] = current
        for name in sorted(set(files) - set(expected)):
            summary.add_problem(student, f"{name} is not part of {ASSIGNMENT}; ignored")
        for name, grade_ids in expected.items():
            if name not in files:
                summary.add_problem(student, f"{name} is missing; its exercises score 0")
                continue
            problem = check_submission(files[name], grade_ids)
            if problem:
                summary.add_problem(student, problem + "; its exercises score 0")
            else:
                tasks.append(Task(student, name, files[name]))
    return tasks, digests


def _record_zeros(course: Course, student: str) -> None:
    """Make sure a student with nothing gradable still has a submission (all zeros)."""
    with Gradebook(f"sqlite:///{course.db}") as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(student)
        try:
            gb.find_submission(ASSIGNMENT, student)
        except MissingEntry:
            gb.update_or_create_submission(ASSIGNMENT, student)


def grade(
    root: Path, options: Options, progress: Callable[[int, int, int], None] | None = None
) -> Summary:
    """Grade the class; ``progress(done, total, failures)`` is called as tasks finish."""
    course = Course(root)
    reason = sandbox.unavailable()
    if reason and not options.unsafe:
        raise GradingError(
            f"student code cannot be confined here: {reason}. Grading would run it with your "
            "rights (it could read solutions/ and rewrite the gradebook). Fix that, or pass "
            "--unsafe to grade anyway."
        )
    if options.workers < 1:
        raise GradingError(f"--workers must be at least 1, got {options.workers}")
    summary = Summary()
    tasks, digests = plan(course, options, summary)
    course.state.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="grading-", dir=course.state))
    os.chmod(base, 0o711)
    grader = None
    try:
        template = make_template(course, base / "template")
        os.chmod(template.parent, 0o700)  # it holds the hidden tests
        if not course.db.exists():
            shutil.copy2(template, course.db)
        mplconfig = _warm_matplotlib(base / "matplotlib")
        grader = Grader(course, options, base, template, mplconfig)
        remaining = {s: sum(t.student == s for t in tasks) for s in digests}
        for student, count in remaining.items():
            if count == 0:
                _record_zeros(course, student)
                course.mark(student, digests[student])
        _run_all(grader, tasks, options.workers, course, summary, remaining, digests, progress)
    finally:
        if grader is not None:
            grader.users.release()
        shutil.rmtree(base, ignore_errors=True)
    graded = sorted(digests)
    summary.graded = graded
    if graded:
        _feedback_and_export(course, summary)
    return summary


def _run_all(
    grader: Grader,
    tasks: list[Task],
    workers: int,
    course: Course,
    summary: Summary,
    remaining: dict[str, int],
    digests: dict,
    progress: Callable | None,
) -> None:
    free_slots = list(range(workers))
    failures = 0
    done = 0
    queue = list(tasks)
    running: dict[Future, tuple[Task, int]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            while queue or running:
                while queue and free_slots:
                    task, slot = queue.pop(0), free_slots.pop()
                    running[pool.submit(grader.run, task, slot)] = (task, slot)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task, slot = running.pop(future)
                    free_slots.append(slot)
                    result = future.result()
                    merge(course, result)
                    if result.problem:
                        failures += 1
                        summary.add_problem(task.student, result.problem)
                    remaining[task.student] -= 1
                    if remaining[task.student] == 0:
                        course.mark(task.student, digests[task.student])
                    done += 1
                    if progress:
                        progress(done, len(tasks), failures)
        except BaseException:
            queue.clear()
            raise


def _warm_matplotlib(folder: Path) -> Path:
    """A matplotlib config folder with the font cache built, for the kernels."""
    folder.mkdir()
    subprocess.run(
        [sys.executable, "-c", "import matplotlib.font_manager"],
        env={**os.environ, "MPLCONFIGDIR": str(folder)},
        check=True,
        capture_output=True,
    )
    return folder


def _feedback_and_export(course: Course, summary: Summary) -> None:
    result = nbgrader(course.root, "generate_feedback", ASSIGNMENT, "--force")
    if result.returncode != 0:
        summary.add_problem(
            "(feedback)", "nbgrader generate_feedback failed: " + result.stdout[-500:]
        )
    result = nbgrader(course.root, "export", "--to", str(course.root / "grades.csv"))
    if result.returncode != 0:
        summary.add_problem("(export)", "nbgrader export failed: " + result.stdout[-500:])


def scores(root: Path) -> dict[str, dict[str, float]]:
    """student -> test cell -> score, read back from the gradebook."""
    out: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        for submission in gb.assignment_submissions(ASSIGNMENT):
            for notebook in submission.notebooks:
                for g in notebook.grades:
                    out.setdefault(submission.student_id, {})[g.name] = g.score
    return out


# ------------------------------------------------------------- collecting
def collect(root: Path, downloads: Path, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """File LMS-style downloads under ``submitted/<student>/ch01/``.

    Accepts ``<student>.zip`` (or ``<student>_anything.zip``) holding the
    notebooks, and loose ``<student>_<notebook>.ipynb`` files.  An existing
    different submission is never overwritten.  Returns (filed, problems).
    """
    names = set(names)
    filed, problems = [], []

    def put(student: str, name: str, data: bytes, source: str) -> None:
        target = Path(root) / "submitted" / student / ASSIGNMENT / name
        if target.exists():
            if target.read_bytes() != data:
                problems.append(
                    f"{source}: submitted/{student}/{ASSIGNMENT}/{name} exists and "
                    "differs; left as it is (move it away to replace it)"
                )
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        filed.append(f"submitted/{student}/{ASSIGNMENT}/{name}")

    for path in sorted(Path(downloads).iterdir()):
        if path.suffix == ".zip":
            student = path.stem.split("_")[0]
            try:
                with zipfile.ZipFile(path) as archive:
                    members = [m for m in archive.namelist() if Path(m).name in names]
                    if not members:
                        problems.append(f"{path.name}: no notebook of {ASSIGNMENT} inside")
                    for member in members:
                        put(student, Path(member).name, archive.read(member), path.name)
            except zipfile.BadZipFile:
                problems.append(f"{path.name}: not a readable zip file")
        elif path.suffix == ".ipynb":
            match = next((n for n in names if path.name.endswith("_" + n)), None)
            if match is None:
                problems.append(
                    f"{path.name}: expected <student>_<notebook>.ipynb with a "
                    f"notebook of {ASSIGNMENT}"
                )
                continue
            put(path.name[: -len(match) - 1], match, path.read_bytes(), path.name)
        else:
            problems.append(f"{path.name}: neither a zip file nor a notebook; ignored")
    return filed, problems
