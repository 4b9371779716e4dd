"""``dlcourse grade``: a class from ``submitted/`` to the gradebook, feedback and grades.csv.

1. **Intake** (:mod:`.intake`) reads every submission, never modifying or
   following anything, and turns it into a task, or a recorded problem.
2. **Workers** (:mod:`.dispatch`, :mod:`.worker`) grade students side by
   side, locally or on a Dask cluster, each in nbgrader with the verdicts
   computed outside the student's confined kernel (:mod:`.executor`,
   :mod:`.remote`, :mod:`.sandbox`), and return scores, graded notebooks and
   feedback as data.
3. **The ledger** (:mod:`.ledger`), in this process only, writes them into
   the gradebook and the course's folders and marks each student done;
   ``grades.csv`` is exported at the end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook

from dlcourse.course import nbgrader_cli
from dlcourse.course.grading import dispatch, events, intake, sandbox
from dlcourse.course.grading.ledger import Ledger
from dlcourse.course.layout import ASSIGNMENT, Layout
from dlcourse.course.semester import policy as course_policy

POLICY_DIGEST = "(late policy)"  # a marker's entry for the policy: never a file's name


class GradingError(RuntimeError):
    """Grading cannot start (the message says why and what to do)."""


@dataclass
class Options:
    workers: int = 2
    timeout: int = 60  # seconds per cell
    notebook_timeout: int = 900  # seconds per notebook
    grader_timeout: int = 300  # seconds of the grader's own work per student
    memory_mb: int = 2048
    students: list[str] | None = None
    force: bool = False
    unsafe: bool = False
    scheduler: str | None = None  # a Dask scheduler's address; None grades locally


@dataclass
class Summary:
    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # student -> a worker's wall time

    def add_problem(self, student: str, message: str) -> None:
        """Record a problem as one printable line: a message may quote what a
        student wrote (a cell id, an error), and a newline or a terminal escape
        in it must not forge a line or drive the instructor's terminal."""
        self.problems.setdefault(student, []).append(intake.one_line(message))


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


def template(layout: Layout) -> Path:
    """An empty gradebook that knows the assignment (notebooks, cells, points),
    made by nbgrader's ``generate_assignment`` and kept under
    ``.dlcourse/templates/`` (readable by root only: it holds the hidden
    tests) until the solutions or the configuration change."""
    digest = hashlib.sha256()
    for path in [layout.config, *sorted(p for p in layout.solutions.rglob("*") if p.is_file())]:
        digest.update(str(path.relative_to(layout.root)).encode() + b"\0" + path.read_bytes())
    cached = layout.templates / f"{digest.hexdigest()[:24]}.db"
    if cached.exists():
        return cached
    layout.templates.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.templates, 0o700)
    with tempfile.TemporaryDirectory(prefix="template-", dir=layout.templates) as tmp:
        made = nbgrader_cli.generate_assignment(layout, Path(tmp) / "course")
        made.gradebook.replace(cached)
    return cached


def policy(layout: Layout) -> course_policy.Policy | None:
    """The course's policy, read whole and checked against the class (the
    gradebook's students and submitted/'s folders), or GradingError."""
    try:
        read = course_policy.read(layout.policy)
        if read is not None and read.extensions:
            known = set(intake.students(layout.submitted_root)[0])
            if layout.gradebook.exists():
                nbgrader_cli.put_tools_on_path()  # an older gradebook is upgraded by alembic
                with Gradebook(f"sqlite:///{layout.gradebook}") as gb:
                    known |= {s.id for s in gb.students}
            read.check_students(known, layout.policy)
    except course_policy.PolicyError as error:
        raise GradingError(f"{error}. Nothing was graded.") from None
    return read


def bundle(layout: Layout, options: Options) -> events.Bundle:
    settings = events.Settings(
        timeout=options.timeout,
        notebook_timeout=options.notebook_timeout,
        grader_timeout=options.grader_timeout,
        memory_mb=options.memory_mb,
        confined=not options.unsafe,
    )
    return events.Bundle(
        config=layout.config.read_text(),
        gradebook=template(layout).read_bytes(),
        released={p.name: p.read_text() for p in layout.released_notebooks()},
        settings=settings,
        private=tuple(str(p) for p in layout.private()),
        course=str(layout.root),
        policy=layout.policy.read_text() if layout.policy.exists() else "",
    )


def plan(layout: Layout, ledger: Ledger, options: Options, summary: Summary
         ) -> tuple[list[events.Task], dict[str, dict[str, str]]]:  # fmt: skip
    """The tasks still to do, and each student's digests to mark when done:
    those of what they submitted and, under a policy, of what decides their
    late penalty, so that a changed due date or extension regrades them."""
    expected = intake.expected_notebooks(layout.release)
    found, problems = intake.students(layout.submitted_root)
    for problem in problems:
        summary.add_problem("(intake)", problem)
    wanted = options.students or found
    for student in sorted(set(wanted) - set(found)):
        summary.add_problem(student, f"no folder submitted/{student}/{ASSIGNMENT}/")
    tasks, digests = [], {}
    for student in sorted(set(wanted) & set(found)):
        submission = intake.read_submission(layout.submitted_root, student, ASSIGNMENT, expected)
        if ledger.policy is not None:
            submission.digests[POLICY_DIGEST] = ledger.policy.fingerprint(student)
        if not options.force and ledger.marker(student) == submission.digests:
            summary.skipped.append(student)
            continue
        digests[student] = submission.digests
        for problem in submission.problems:
            summary.add_problem(student, problem)
        notebooks = {name: nb.data for name, nb in submission.notebooks.items()}
        if notebooks:
            tasks.append(events.Task(student, notebooks, submission.timestamp))
    return tasks, digests


def grade(
    root: Path, options: Options, progress: Callable[[int, int, int], None] | None = None
) -> Summary:
    """Grade the class; ``progress(done, total, failures)`` is called as students finish."""
    layout = Layout.of(root)
    if options.workers < 1:
        raise GradingError(f"--workers must be at least 1, got {options.workers}")
    for flag, seconds in [("--timeout", options.timeout),
                          ("--notebook-timeout", options.notebook_timeout),
                          ("--grader-timeout", options.grader_timeout)]:  # fmt: skip
        if seconds < 1:
            raise GradingError(f"{flag} must be at least 1 second, got {seconds}")
    if options.scheduler is None and not options.unsafe:
        reason = sandbox.unavailable()
        if reason:
            raise GradingError(
                f"student code cannot be confined here: {reason}. Grading would run it with "
                "your rights (it could read solutions/ and rewrite the gradebook). Fix that, "
                "or pass --unsafe to grade anyway."
            )
    if not layout.released_notebooks():
        raise GradingError(f"{layout.release} has no notebooks: run `dlcourse release` first.")
    policy(layout)  # read whole and checked before any worker starts
    # local workers start now, importing nbgrader while this process prepares the run
    local = dispatch.LocalWorkers(options.workers) if options.scheduler is None else None
    try:
        return _grade(layout, options, progress, local)
    finally:
        if local is not None:
            local.close()


def _grade(layout: Layout, options: Options, progress: Callable[[int, int, int], None] | None,
           local: dispatch.LocalWorkers | None) -> Summary:  # fmt: skip
    ledger = Ledger(layout, policy(layout))
    summary = Summary()
    tasks, digests = plan(layout, ledger, options, summary)
    shared = bundle(layout, options)
    if not layout.gradebook.exists():
        shutil.copy2(template(layout), layout.gradebook)
    notebooks = sorted(shared.released)
    failures = done = 0
    for student in sorted(set(digests) - {t.student for t in tasks}):  # nothing gradable
        ledger.merge(events.TaskResult(student), notebooks)
        ledger.mark(student, digests[student])
        summary.graded.append(student)

    def on_result(task: events.Task, result: events.TaskResult | None, problem: str) -> None:
        nonlocal failures, done
        done += 1
        if result is None or result.retry:  # not recorded: the next run grades them again
            summary.add_problem(task.student, problem or result.retry)
            failures += 1
        else:
            ledger.merge(result, notebooks)
            ledger.mark(task.student, digests[task.student])
            summary.graded.append(task.student)
            summary.seconds[task.student] = result.seconds
            for message in result.problems:
                summary.add_problem(task.student, message)
            for cell, reason in result.review.items():
                summary.add_problem(task.student, f"{cell} needs manual grading: {reason}")
            failures += bool(result.problems or result.review)
        if progress:
            progress(done, len(tasks), failures)

    if local is not None:
        local.run(shared, tasks, on_result)
    else:
        dispatch.dask(str(options.scheduler), shared, tasks, on_result)
    summary.graded.sort()
    if summary.graded:
        ledger.export()
    return summary


def scores(root: Path) -> dict[str, dict[str, float]]:
    """student -> test cell -> score, read back from the gradebook."""
    return Ledger(Layout.of(root)).scores()


def collect(root: Path, downloads: Path) -> tuple[list[str], list[str]]:
    """File LMS downloads from ``downloads`` under ``submitted/`` (see :func:`intake.collect`)."""
    layout = Layout.of(root)
    names = [p.name for p in layout.released_notebooks()]
    return intake.collect(layout.submitted_root, downloads, ASSIGNMENT, names)
