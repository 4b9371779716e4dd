"""Grading a class on nbgrader: in parallel, confined, resumable, fault-tolerant.

nbgrader does the grading (sanitising with OverwriteCells, which restores
locked and deleted test cells and the cells' metadata from the gradebook;
scoring with SaveAutoGrades; the gradebook, feedback and export); this module
runs it safely and at scale, and moves the verdicts out of the student's reach.

1. **Check the input.** Every ``submitted/<student>/ch01/*.ipynb`` is read,
   never modified: a missing, empty, oversized, non-UTF-8, truncated or foreign
   notebook becomes a recorded problem for that student, and the rest of the
   class is graded.
2. **Grade in parallel.** Each student is a task: a scratch course holding
   a copy of the submission and a private copy of an empty gradebook (made
   once by ``nbgrader generate_assignment`` and cached), graded by one
   ``nbgrader autograde`` in its own process, its kernels confined by
   :mod:`dlcourse.course.grading.sandbox`. Workers never touch the real gradebook.
   (If that run loses the submission, as nbgrader does when one notebook
   fails beyond recovery, each notebook is graded again on its own.)
3. **Verdicts outside the kernel.** nbgrader's execution step is replaced by
   :class:`ConfinedExecute`: the student's cells run in the kernel, but a test
   cell never does. Its source, read from the gradebook, runs in nbgrader's
   own process, with its own numpy, ``assert_close`` and library (the setup
   cells run on both sides); the names it does not define are looked up in
   the kernel and come back as plain data (numbers, arrays) or as handles
   whose calls and operators are again requests to the kernel
   (:mod:`dlcourse.course.grading.remote`). The kernel belongs to the student: code
   there can rebind ``assert_close``, patch numpy or ``dlcourse.gradcheck``,
   rewrite the cells it is sent, swallow exceptions or forge the kernel's
   replies. None of that reaches the test, which only ever sees what the
   student's functions return; and the hidden tests' code never enters the
   kernel (only the inputs they pass).
4. **One writer.** As tasks finish, the main process copies their scores
   into ``gradebook.db`` (and the graded notebooks into ``autograded/``), then
   marks the student done with the hashes of what was graded. Interrupting
   loses at most the tasks under way; running again grades only what is not
   done (or what changed since), unless ``force``.
5. **Faults are results.** A cell that overruns its time is interrupted and
   fails; a kernel that dies in a cell (``os._exit``, a segfault, the memory
   limit) is restarted, the cells before it are run again and grading goes
   on, so the student loses what depends on that cell and is told why; a
   kernel that keeps dying loses the rest of that notebook, reported. Never a
   silent 0.
6. **Feedback and export** are nbgrader's (``generate_feedback`` with hidden
   tests and tracebacks removed, ``export`` to ``grades.csv``).

Limits: data crosses the channel by copy, so an exercise whose answer must
mutate its arguments in place cannot be graded this way; a test may only use
names of its own, of the setup cells, and the student's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import Execute
from sqlalchemy.exc import SAWarning
from traitlets import Integer, Unicode

from dlcourse.course.authoring import ASSIGNMENT
from dlcourse.course.grading import remote, sandbox
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
    notebooks: dict[str, Path]  # file name (e.g. "01_deep_learning.ipynb") -> the submitted file


@dataclass
class TaskResult:
    task: Task
    # notebook -> test cell -> (score, max score); a notebook that could not be graded is absent
    grades: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    autograded: dict[str, Path] = field(default_factory=dict)  # notebook -> graded copy


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


def restore_metadata(nb: nbformat.NotebookNode, released: Path) -> nbformat.NotebookNode:
    """The submission with every cell's nbgrader metadata as released (by grade
    id), and none on cells whose grade id the assignment does not know.

    nbgrader's OverwriteCells does this too, but crashes on some tampering (a
    solution cell marked as graded), which would cost the whole notebook."""
    known = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
        for c in nbformat.read(released, 4).cells
        if "grade_id" in c.metadata.get("nbgrader", {})
    }
    seen: set[str] = set()
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in known and grade_id not in seen:
            seen.add(grade_id)
            cell.metadata["nbgrader"] = dict(known[grade_id])
        else:
            cell.get("metadata", {}).pop("nbgrader", None)
    return nb


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


def make_template(course: Course) -> Path:
    """An empty gradebook that knows the assignment (notebooks, cells, points),
    made by ``nbgrader generate_assignment`` and kept under ``.dlcourse/templates/``
    (readable by root only: it holds the hidden tests) until the solutions or
    the configuration change."""
    sources = [course.root / "nbgrader_config.py"]
    sources += sorted(p for p in (course.root / "solutions" / ASSIGNMENT).rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(course.root)).encode() + b"\0" + path.read_bytes())
    cache = course.state / "templates"
    cached = cache / f"{digest.hexdigest()[:24]}.db"
    if cached.exists():
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o700)
    into = Path(tempfile.mkdtemp(prefix="template-", dir=cache))
    try:
        shutil.copy2(course.root / "nbgrader_config.py", into)
        shutil.copytree(course.root / "solutions" / ASSIGNMENT, into / "solutions" / ASSIGNMENT)
        result = nbgrader(into, "generate_assignment", ASSIGNMENT, "--force")
        if result.returncode != 0:
            raise GradingError("nbgrader generate_assignment failed:\n" + result.stdout[-3000:])
        (into / "gradebook.db").replace(cached)
    finally:
        shutil.rmtree(into, ignore_errors=True)
    return cached


SCRATCH_CONFIG = """
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades,
)
from dlcourse.course.grading import ConfinedExecute
c.Autograde.autograde_preprocessors = [
    ConfinedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
    AssignLatePenalties, CheckCellMetadata,
]
c.Execute.timeout = {timeout}
c.Execute.kernel_name = {kernel!r}
c.ConfinedExecute.kernel_uid = {uid}
c.ConfinedExecute.rpc_dir = {runtime!r}
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
        """Grade a student's notebooks in a scratch course, all in one nbgrader
        run; never raises for a fault of the student's. A notebook nbgrader
        gives up on scores 0, with the cause. If the run loses the whole
        submission (as nbgrader may when one notebook fails), each notebook
        is graded again on its own, so that one cannot cost the others."""
        result = self._attempt(task, slot)
        if len(task.notebooks) == 1 or result.grades:
            return result
        combined = TaskResult(task)
        for name, path in task.notebooks.items():
            single = self._attempt(Task(task.student, {name: path}), slot)
            combined.grades.update(single.grades)
            combined.autograded.update(single.autograded)
            combined.problems += single.problems
        return combined

    def _attempt(self, task: Task, slot: int) -> TaskResult:
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
        folder = scratch / "submitted" / task.student / ASSIGNMENT
        folder.mkdir(parents=True)
        cells = 0
        for name, path in task.notebooks.items():
            released = self.course.root / "notebooks" / ASSIGNMENT / name
            nb = restore_metadata(nbformat.read(path, 4), released)
            cells += len(nb.cells)
            nbformat.write(nb, folder / name)
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
                self.course.state / "templates",
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
            config.write(
                SCRATCH_CONFIG.format(
                    timeout=self.options.timeout,
                    kernel=kernel,
                    uid=self.users.uid(slot) if self.confined else -1,
                    runtime=str(runtime),
                )
            )
            if self.confined:
                config.write(IPC_CONFIG.format(runtime=str(runtime)))
        only = []
        if len(task.notebooks) == 1:
            only = ["--notebook", next(iter(task.notebooks)).removesuffix(".ipynb")]
        names = ", ".join(task.notebooks)
        try:
            log = nbgrader(
                scratch,
                "autograde",
                ASSIGNMENT,
                "--student",
                task.student,
                *only,
                "--create",
                "--force",
                env=env,
                timeout=60 * len(task.notebooks) + cells * (self.options.timeout + 5),
            ).stdout
        except subprocess.TimeoutExpired:
            return TaskResult(task, problems=[f"{names}: grading took too long and was stopped"])
        result = TaskResult(task)
        graded = scratch / "autograded" / task.student / ASSIGNMENT
        if not graded.exists():
            if len(task.notebooks) == 1:  # otherwise run() grades them one by one
                result.problems.append(f"{names}: {_cause(log)}")
            return result
        with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
            for name in task.notebooks:
                if not (graded / name).exists():  # nbgrader gave up on this one
                    result.problems.append(f"{name}: {_cause(log)}")
                    continue
                nb = gb.find_submission_notebook(
                    name.removesuffix(".ipynb"), ASSIGNMENT, task.student
                )
                result.grades[name] = {g.name: (g.score, g.max_score) for g in nb.grades}
                result.autograded[name] = graded / name
        result.problems += [
            line.split(PROBLEM_MARK, 1)[1].strip()
            for line in log.splitlines()
            if PROBLEM_MARK in line
        ]
        if "Timeout waiting for execute reply" in log:
            result.problems.append(f"{names}: a cell ran over the {self.options.timeout} s limit")
        return result


FORK_LIMIT = 16  # processes a cell may leave behind before its kernel is replaced


class ForkBomb(RuntimeError):
    pass


PROBLEM_MARK = "DLCOURSE-PROBLEM: "  # how the executor reports a fault through nbgrader's log


class ConfinedExecute(Execute):
    """nbgrader's execution step with the verdicts taken out of the kernel.

    The student's cells run in the (confined) kernel as usual. A test cell
    never does: its source, read from the gradebook (never from the
    submission), runs in this process against a :class:`remote.TrustedNamespace`
    whose unknown names are the student's objects in the kernel, reached
    through :mod:`dlcourse.course.grading.remote`. Its outputs, and so nbgrader's
    score, are this process's. The setup cells (locked, not graded) run on both
    sides, so the tests have their own numpy, ``assert_close`` and library.

    A kernel that dies or hangs in a cell costs that cell: the kernel is
    restarted, the cells that ran before are run again, and grading goes on;
    the cause is reported through nbgrader's log.
    """

    kernel_uid = Integer(-1, help="the kernel's user, whose processes die with it").tag(config=True)
    rpc_dir = Unicode("", help="a folder the kernel can reach for the grader's socket").tag(
        config=True
    )
    max_restarts = Integer(3, help="kernel restarts per notebook before giving up").tag(config=True)

    def preprocess(
        self, nb: nbformat.NotebookNode, resources: dict, km: Any = None
    ) -> tuple[nbformat.NotebookNode, dict]:
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        tests, setup = self._trusted_sources(resources["nbgrader"])
        self.notebook_name = resources["nbgrader"]["notebook"]
        self.namespace = remote.TrustedNamespace(__name__="__main__")
        self.channel: remote.Channel | None = None
        self.restarts = 0
        self.done: list[str] = []  # student cells that ran, to run again after a restart
        folder = Path(self.rpc_dir or tempfile.mkdtemp(prefix="dlcourse-rpc-"))
        self.socket_path = str(folder / "grader.sock")
        seen: set[str] = set()
        try:
            with self.setup_kernel():
                info = self.wait_for_reply(self.kc.kernel_info())
                nb.metadata["language_info"] = info["content"]["language_info"]
                self._connect()
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                    if grade_id in tests:
                        cell.outputs = []
                        if grade_id not in seen:  # a duplicate never runs anywhere
                            seen.add(grade_id)
                            self._run_test(cell, tests[grade_id], index)
                        continue
                    if grade_id in setup:
                        self._run_trusted_setup(setup[grade_id])
                    self._run_student(cell, index)
        finally:
            if self.channel is not None:
                self.channel.sock.close()
        return nb, self.resources

    @staticmethod
    def _trusted_sources(info: dict) -> tuple[dict[str, str], dict[str, str]]:
        """Test cells and setup cells, grade id -> source, from the gradebook."""
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            solutions = {c.name for c in notebook.solution_cells}
            graded = {c.name for c in notebook.grade_cells if c.cell_type == "code"} - solutions
            tests, setup = {}, {}
            for cell in notebook.source_cells:
                if cell.name in graded:
                    tests[cell.name] = cell.source
                elif cell.locked and cell.cell_type == "code" and cell.name not in solutions:
                    setup[cell.name] = cell.source
        return tests, setup

    def _problem(self, text: str) -> None:
        self.log.warning(f"{PROBLEM_MARK}{self.notebook_name}.ipynb: {text}")

    def _connect(self) -> None:
        """Start the kernel's end of the channel (before any student code runs)."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            if self.kernel_uid >= 0:
                os.chown(self.socket_path, self.kernel_uid, self.kernel_uid)
            listener.listen(1)
            listener.settimeout(self.startup_timeout)
            code = (
                "import dlcourse.course.grading.remote as _dlcourse_remote\n"
                f"_dlcourse_remote.serve_in_thread({self.socket_path!r}, get_ipython().user_ns)\n"
                "del _dlcourse_remote"
            )
            # the kernel's first import of numpy and dlcourse may take a while on a busy machine
            saved, self.timeout = self.timeout, max(self.timeout or 0, self.startup_timeout)
            try:
                reply = self.wait_for_reply(self.kc.execute(code, silent=True, store_history=False))
            finally:
                self.timeout = saved
            if reply is None or reply["content"]["status"] != "ok":
                raise RuntimeError(f"the kernel could not connect to the grader: {reply}")
            sock, _ = listener.accept()
        finally:
            listener.close()
        self.channel = remote.Channel(sock, trusted=True)
        self.namespace.channel = self.channel

    def _run_trusted_setup(self, source: str) -> None:
        self.namespace.channel = None  # setup code names nothing of the student's
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                exec(compile(source, "<setup>", "exec"), self.namespace)
        finally:
            self.namespace.channel = self.channel

    def _run_test(self, cell: nbformat.NotebookNode, source: str, index: int) -> None:
        if self.channel is None or self.channel.broken:
            self._restart("before a test")
        self.code_cells_executed += 1
        cell.execution_count = self.code_cells_executed
        out, err = io.StringIO(), io.StringIO()
        assert self.channel is not None
        self.channel.deadline = time.monotonic() + (self.timeout or 60)
        failure: BaseException | None = None
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            try:
                exec(compile(source, f"<test {index}>", "exec"), self.namespace)
            except Exception as error:  # the test failed, whatever the reason
                failure = error
        self.channel.deadline = None
        if self._reap() > FORK_LIMIT:
            self.channel.broken = "the student's code left processes behind"
        for warning in caught:
            err.write(f"{warning.category.__name__}: {warning.message}\n")
        if out.getvalue():
            cell.outputs.append(
                nbformat.v4.new_output("stream", name="stdout", text=out.getvalue())
            )
        if err.getvalue():
            cell.outputs.append(
                nbformat.v4.new_output("stream", name="stderr", text=err.getvalue())
            )
        if failure is not None:
            name = type(failure).__name__
            message = str(failure)
            if isinstance(failure, remote.ChannelBroken):
                name = "GradingError"
                message = f"{message}; this test scores 0"
                self._problem(f"test cell {index}: {message}")
            cell.outputs.append(
                nbformat.v4.new_output(
                    "error", ename=name, evalue=message, traceback=[f"{name}: {message}"]
                )
            )

    def _run_student(self, cell: nbformat.NotebookNode, index: int) -> None:
        if self.channel is None or self.channel.broken:
            self._restart(f"before cell {index}")
        try:
            self.execute_cell(cell, index, store_history=True)
            left = self._reap()
            if left > FORK_LIMIT:
                raise ForkBomb(f"the cell left {left} processes behind (a fork bomb?)")
        except (DeadKernelError, CellTimeoutError, RuntimeError) as error:
            why = self._death_cause(error)
            cell.outputs.append(
                nbformat.v4.new_output(
                    "error",
                    ename="DeadKernelError",
                    evalue=f"{why}; the grader skipped this cell and restarted the kernel",
                    traceback=[f"DeadKernelError: {why}"],
                )
            )
            self._problem(f"cell {index}: {why}; that cell was skipped")
            self._restart(f"after cell {index}")
            return
        self.done.append(cell.source)

    def _reap(self) -> int:
        """Processes a cell started do not outlive it; how many there were.
        (Killed children stay zombies, counted against the process limit,
        until the kernel waits for them: after a fork bomb only a new kernel
        can start threads again.)"""
        process = getattr(self.km.provisioner, "process", None) if self.km else None
        if self.kernel_uid >= 0 and process is not None:
            return _kill_user(self.kernel_uid, spare=process.pid)
        return 0

    def _death_cause(self, error: BaseException) -> str:
        if isinstance(error, ForkBomb):
            return str(error)
        if isinstance(error, CellTimeoutError):
            return f"the cell ran over the {self.timeout} s limit and could not be interrupted"
        status = None
        with contextlib.suppress(Exception):
            status = run_sync(self.km.provisioner.poll)()
        if status is not None and status < 0:
            return f"the kernel was killed by {signal.Signals(-status).name}"
        if status is not None:
            return f"the kernel died (exit status {status}: os._exit, or memory over the limit)"
        return f"the kernel stopped answering ({type(error).__name__})"

    def _restart(self, when: str) -> None:
        """A fresh kernel with the student's cells so far run again."""
        if self.restarts >= self.max_restarts:
            raise DeadKernelError(f"the kernel died {self.restarts + 1} times; gave up {when}")
        self.restarts += 1
        if self.channel is not None:
            self.channel.sock.close()
            self.channel = None
        self._cleanup_kernel()
        if self.kernel_uid >= 0:
            _kill_user(self.kernel_uid)
        self.km = self.create_kernel_manager()
        try:
            self.start_new_kernel()
            self.start_new_kernel_client()
            self._connect()
        except (RuntimeError, OSError) as error:
            self._problem(f"the restarted kernel failed ({error!s:.200}); trying again")
            self._restart(when)
            return
        for source in self.done:
            replay = nbformat.v4.new_code_cell(source)
            try:
                self.execute_cell(replay, 0, store_history=False)
            except (DeadKernelError, CellTimeoutError, RuntimeError):
                self._restart(when)
                return


def _kill_user(uid: int, spare: int | None = None) -> int:
    """Kill every process of ``uid`` but ``spare`` (a kernel's forks outliving
    the cell that made them, or the kernel); how many there were."""
    found = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            owner = next(
                line for line in status.read_text().splitlines() if line.startswith("Uid:")
            )
            pid = int(status.parent.name)
            if int(owner.split()[1]) == uid and pid != spare:
                found += 1
                os.kill(pid, signal.SIGKILL)
        except (OSError, StopIteration, ValueError):
            continue  # the process ended meanwhile
    return found


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
    """Write one task's scores into the course gradebook (the only writer); a
    notebook that could not be graded scores 0."""
    task = result.task
    with Gradebook(f"sqlite:///{course.db}") as gb, warnings.catch_warnings():
        # nbgrader's own submission code trips SQLAlchemy 2's autoflush warning
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(task.student)
        try:
            gb.find_submission(ASSIGNMENT, task.student)
        except MissingEntry:
            gb.update_or_create_submission(ASSIGNMENT, task.student)
        for notebook in task.notebooks:
            got = result.grades.get(notebook, {})
            name = notebook.removesuffix(".ipynb")
            for grade in gb.find_submission_notebook(name, ASSIGNMENT, task.student).grades:
                if grade.cell_type == "code" and grade.max_score:
                    grade.auto_score = got.get(grade.name, (0.0, grade.max_score))[0]
                    grade.needs_manual_grade = False
        gb.db.commit()
    for notebook, graded in result.autograded.items():
        target = course.root / "autograded" / task.student / ASSIGNMENT / notebook
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(graded, target)


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
        gradable = {}
        for name, grade_ids in expected.items():
            if name not in files:
                summary.add_problem(student, f"{name} is missing; its exercises score 0")
                continue
            problem = check_submission(files[name], grade_ids)
            if problem:
                summary.add_problem(student, problem + "; its exercises score 0")
            else:
                gradable[name] = files[name]
        if gradable:
            tasks.append(Task(student, gradable))
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


class ProgressBar:
    """:func:`grade`'s progress as a tqdm bar (students done of all, problems so
    far, time left): a widget in JupyterLab, a line of text in a terminal.
    Pass it as ``progress`` and close it when grading ends."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(desc="grading", unit="student", file=sys.stdout)

    def __call__(self, done: int, total: int, failures: int) -> None:
        self.bar.total = total
        self.bar.set_postfix(problems=failures, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


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
        template = make_template(course)
        if not course.db.exists():
            shutil.copy2(template, course.db)
        mplconfig = _warm_matplotlib(base / "matplotlib")
        grader = Grader(course, options, base, template, mplconfig)
        for student in set(digests) - {t.student for t in tasks}:  # nothing gradable
            _record_zeros(course, student)
            course.mark(student, digests[student])
        _run_all(grader, tasks, options.workers, course, summary, digests, progress)
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
                    if result.problems:
                        failures += 1
                        for problem in result.problems:
                            summary.add_problem(task.student, problem)
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
