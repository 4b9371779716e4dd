"""What was graded, and the one writer of the course's gradebook and folders.

Workers return results as data; only :class:`Ledger`, in the instructor's
process, writes ``gradebook.db``, ``autograded/``, ``feedback/`` and
``grades.csv``, and marks a student done (with the digests of what was
graded) once all of it is written. Interrupting loses at most the students
under way; running again grades only what is not marked, or changed since.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning

from dlcourse.course.grading.events import TaskResult
from dlcourse.course.layout import ASSIGNMENT, Layout
from dlcourse.course.semester import late
from dlcourse.course.semester.policy import Policy


def flag(gb: Gradebook, student: str, notebook: str, reasons: dict[str, str]) -> None:
    """Mark the test cells in ``reasons`` for manual grading, each reason shown
    on its answer's comment (formgrader's comment box, the feedback page)."""
    submission = gb.find_submission_notebook(notebook, ASSIGNMENT, student)
    for grade in submission.grades:
        if grade.name in reasons:
            grade.needs_manual_grade = True
    for comment in submission.comments:
        reason = reasons.get(f"test_{comment.name}")
        if reason is not None:
            comment.auto_comment = reason


def _write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, replacing a file (never following a
    link someone put there: the link itself is replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


class Ledger:
    def __init__(self, layout: Layout, policy: Policy | None = None):
        self.layout, self.policy = layout, policy

    def _gradebook(self) -> Gradebook:
        return Gradebook(f"sqlite:///{self.layout.gradebook}")

    # ------------------------------------------------------------- resuming
    def marker(self, student: str) -> dict | None:
        """The digests of what was graded for ``student``; None if never graded."""
        path = self.layout.markers / f"{student}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def mark(self, student: str, digests: dict[str, str]) -> None:
        _write(self.layout.markers / f"{student}.json", json.dumps(digests, indent=1))

    # -------------------------------------------------------------- writing
    def merge(self, result: TaskResult, notebooks: list[str]) -> None:
        """One student's scores into the gradebook (a notebook that was not
        graded scores 0), with the due date, their extension, the time of the
        submission and each notebook's late penalty as graded (0 when on
        time, so that none is ever left from an earlier run), their graded
        notebooks and feedback pages into ``autograded/`` and ``feedback/``,
        where an earlier run's page of a notebook not graded now is removed."""
        student = result.student
        with self._gradebook() as gb, warnings.catch_warnings():
            # nbgrader's own submission code trips SQLAlchemy 2's autoflush warning
            warnings.simplefilter("ignore", SAWarning)
            gb.update_or_create_student(student)
            try:
                gb.find_submission(ASSIGNMENT, student)
            except MissingEntry:
                gb.update_or_create_submission(ASSIGNMENT, student)
            late.record(gb, ASSIGNMENT, student, self.policy)
            when = parse_utc(result.timestamp) if result.timestamp else None
            gb.update_or_create_submission(ASSIGNMENT, student, timestamp=when)
            for name in notebooks:
                graded = result.notebooks.get(name)
                got = graded.grades if graded else {}
                stem = name.removesuffix(".ipynb")
                notebook = gb.find_submission_notebook(stem, ASSIGNMENT, student)
                notebook.late_submission_penalty = graded.late_penalty if graded else 0.0
                for grade in notebook.grades:
                    if grade.cell_type == "code" and grade.max_score:
                        grade.auto_score = got.get(grade.name, (0.0, grade.max_score))[0]
                        grade.needs_manual_grade = False
                flag(gb, student, stem, result.review)
            gb.db.commit()
        for name in notebooks:  # a page from an earlier run must not contradict this one
            graded = result.notebooks.get(name)
            page = self.layout.feedback(student) / (name.removesuffix(".ipynb") + ".html")
            if graded is None:
                (self.layout.autograded(student) / name).unlink(missing_ok=True)
            else:
                _write(self.layout.autograded(student) / name, graded.autograded)
            if graded is not None and graded.feedback:
                _write(page, graded.feedback)
            else:
                page.unlink(missing_ok=True)

    def export(self) -> None:
        """``grades.csv`` from the gradebook, by nbgrader's CSV exporter, with
        the late policy applied to each student in words."""
        exporter = late.PolicyCsvExportPlugin(
            to=str(self.layout.grades_csv), policy_file=str(self.layout.policy)
        )
        with self._gradebook() as gb:
            exporter.export(gb)

    def scores(self) -> dict[str, dict[str, float]]:
        """student -> test cell -> score, read back from the gradebook."""
        out: dict[str, dict[str, float]] = {}
        with self._gradebook() as gb:
            for submission in gb.assignment_submissions(ASSIGNMENT):
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        out.setdefault(submission.student_id, {})[grade.name] = grade.score
        return out
