"""The course's policy (:mod:`.policy`) applied through nbgrader's own machinery.

* :func:`record` puts the due date and a student's extension into a
  gradebook, where nbgrader's ``SubmittedAssignment.total_seconds_late``
  reads them with the submission's ``timestamp.txt``.
* :class:`LatePolicyPlugin` is nbgrader's late-submission plugin
  (``c.AssignLatePenalties.plugin_class``): autograde's
  ``AssignLatePenalties`` resets each notebook's ``late_submission_penalty``
  and asks it for the penalty of the seconds late nbgrader computed.
* :class:`LateNote` (a ``GenerateFeedback`` preprocessor) opens every
  feedback page with what was applied and why; :class:`PolicyCsvExportPlugin`
  is nbgrader's CSV export with that line as a last column, ``late_policy``.

All three read the policy file named by ``policy_file`` (nbgrader_config.py
sets it to the course's ``policy.toml``); without the file nothing is late.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin, LateSubmissionPlugin
from traitlets import Bool, Unicode

from dlcourse.course.semester.policy import Policy, naive_utc, read, shown

POLICY_FILE_HELP = "the course's policy file (TOML): due date, extensions, late schedule"


def _read(policy_file: str) -> Policy | None:
    """The policy in ``policy_file``; None if it is not set or not there."""
    return read(Path(policy_file)) if policy_file else None


def record(gb: Gradebook, assignment: str, student: str, policy: Policy | None) -> None:
    """The policy's due date (None without one) and ``student``'s extension
    into the gradebook, which must know the assignment and the student."""
    gb.update_or_create_assignment(assignment, duedate=policy.due_utc if policy else None)
    extension = policy.extensions.get(student) if policy else None
    gb.update_or_create_submission(assignment, student, extension=extension)


class StalePenalties(RuntimeError):
    """Grades whose late penalties were computed for due dates the policy no
    longer gives; the message names the students and says to grade again."""


def stale(gb: Gradebook, assignment: str, policy: Policy | None) -> list[str]:
    """The students whose submission was graded against another due date
    than ``policy`` gives them now (changed since, not graded again): their
    penalty in the gradebook is not the policy's."""
    out = []
    for student in gb.students:
        try:
            submission = gb.find_submission(assignment, student.id)
        except MissingEntry:
            continue
        if submission.duedate != (naive_utc(policy.due_for(student.id)) if policy else None):
            out.append(student.id)
    return sorted(out)


def refuse_stale(gb: Gradebook, assignment: str, policy_file: str, students: list[str]) -> None:
    """Raise :class:`StalePenalties` if any of ``students`` (all: empty) was
    graded under another due date than ``policy_file`` gives them now."""
    if not policy_file:
        return  # no course policy: nbgrader's own due dates stand
    found = [s for s in stale(gb, assignment, _read(policy_file)) if not students or s in students]
    if found:
        raise StalePenalties(
            f"{policy_file} gives {', '.join(found)} another due date than the one they were "
            "graded against, so their late penalties in the gradebook are stale: run "
            "`dlcourse grade` (it grades them again under the policy as it is), then export"
        )


class LatePolicyPlugin(LateSubmissionPlugin):
    """nbgrader's late-submission plugin that applies the course's schedule."""

    policy_file = Unicode("", help=POLICY_FILE_HELP).tag(config=True)

    def late_submission_penalty(
        self, student_id: str, score: float, total_seconds_late: float
    ) -> float | None:
        policy = _read(self.policy_file)
        return policy.penalty(score, total_seconds_late) if policy else None


def explanation(gb: Gradebook, assignment: str, student: str, policy: Policy | None) -> str:
    """What the gradebook applied to ``student``'s submission and why."""
    if policy is None:
        return "no deadline set"
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return f"{policy.deadline(student)}; nothing submitted"
    penalty = submission.late_submission_penalty or 0.0
    if submission.duedate != naive_utc(policy.due_for(student)):  # not graded since it changed
        graded = shown(submission.duedate.replace(tzinfo=dt.timezone.utc)) \
            if submission.duedate else "none"  # fmt: skip
        return (f"graded against an earlier due date ({graded}), penalty {penalty:g} point(s); "
                "run dlcourse grade to apply the policy as it is now")  # fmt: skip
    return policy.explain(student, submission.timestamp, penalty)


class LateNote(Preprocessor):
    """Feedback opens with a note of the late policy applied and why."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled
    policy_file = Unicode("", help=POLICY_FILE_HELP).tag(config=True)

    def preprocess(
        self, nb: nbformat.NotebookNode, resources: dict[str, Any]
    ) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
        policy = _read(self.policy_file)
        if policy is None:
            return nb, resources
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            line = explanation(gb, info["assignment"], info["student"], policy)
        note = nbformat.v4.new_markdown_cell(f"**Deadline and late policy.** {line}.")
        nb.cells.insert(0, note)
        return nb, resources


class PolicyCsvExportPlugin(CsvExportPlugin):
    """nbgrader's grades.csv, with a last column ``late_policy`` saying for
    each student what was applied and why."""

    policy_file = Unicode("", help=POLICY_FILE_HELP).tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        super().export(gradebook)
        policy = _read(self.policy_file)
        path = Path(self.to or "grades.csv")
        with path.open(newline="") as rows:
            reader = csv.DictReader(rows)
            table = list(reader)
        columns = [*(reader.fieldnames or []), "late_policy"]
        for row in table:
            row["late_policy"] = explanation(gradebook, row["assignment"], row["student_id"],
                                             policy)  # fmt: skip
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)

