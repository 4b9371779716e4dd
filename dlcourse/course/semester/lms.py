"""Grades for the learning-management system, as nbgrader export plugins.

An LMS imports grades from a CSV file of its own shape, keyed by its own
identity of each student. The instructor exports the class's roster from
the LMS (Canvas: Grades > Export; Moodle: Grades > Export > Plain text file)
and says which of its columns holds nbgrader's student id; every roster row
gets its identity columns back with the student's score:

* :class:`CanvasExportPlugin`: Canvas's gradebook import (``Student``, ``ID``,
  ``SIS User ID``, ``SIS Login ID``, ``Section``, then the assignment, with
  the ``Points Possible`` row);
* :class:`MoodleExportPlugin`: Moodle's grade import from CSV (the identity
  column, then the grade item).

A score is nbgrader's (after a late penalty, never below 0); a roster row
whose student nbgrader never saw is left blank, which both LMSs take as "no
change". Students of the gradebook missing from the roster are listed,
never dropped in silence; a roster that names a student twice is refused.
Both work as ``nbgrader export --exporter=dlcourse.course.semester.lms.CanvasExportPlugin
--CanvasExportPlugin.roster=roster.csv``, and as ``dlcourse export``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

from dlcourse.course.layout import ASSIGNMENT, LMS_GRADES
from dlcourse.course.semester import late

CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS = "    Points Possible"  # Canvas's own spelling, leading spaces included


class RosterError(ValueError):
    """A roster that cannot be matched to the gradebook."""


@dataclass
class Roster:
    """An LMS's class list: its column names and rows, and the column that
    holds nbgrader's student id."""

    columns: list[str]
    rows: list[dict[str, str]]
    match: str

    @classmethod
    def read(cls, path: Path, match: str) -> Roster:
        """The roster in ``path``: refused, with what to do, if ``match`` is
        not one of its columns or names a student twice (or not at all)."""
        try:
            text = path.read_text(encoding="utf-8-sig")  # Excel's byte-order mark
        except (OSError, UnicodeDecodeError) as error:
            raise RosterError(f"roster {path}: cannot be read ({error})") from None
        reader = csv.DictReader(io.StringIO(text))
        columns = list(reader.fieldnames or [])
        if match not in columns:
            raise RosterError(
                f"roster {path}: no column {match!r} (its columns: "
                f"{', '.join(repr(c) for c in columns) or 'none'}); name the column that holds "
                "nbgrader's student ids with --match"
            )
        # Canvas's export has a row of each assignment's points under its header
        rows = [r for r in reader if (r.get(columns[0]) or "").strip() != "Points Possible"]
        counts = Counter(filter(None, (row[match].strip() for row in rows)))
        twice = sorted(student for student, n in counts.items() if n > 1)
        if twice:
            raise RosterError(
                f"roster {path}: {match!r} repeats {', '.join(twice)}; each student must appear "
                "once (export the roster again, or fix these rows)"
            )
        return cls(columns, rows, match)

    def student(self, row: dict[str, str]) -> str:
        """The row's nbgrader student id ('' for none: the LMS's test student)."""
        return (row[self.match] or "").strip()

    def grade(self, row: dict[str, str], got: dict[str, float]) -> str:
        """The row's score as the LMS reads it: blank (no change) for a
        student the gradebook does not know."""
        student = self.student(row)
        return f"{got[student]:g}" if student in got else ""


def scores(gradebook: Gradebook, assignment: str) -> tuple[dict[str, float], float]:
    """Student id -> score (0 without a submission) of every student in the
    gradebook, and the assignment's maximum."""
    found = gradebook.find_assignment(assignment)
    out = {}
    for student in gradebook.students:
        try:
            submission = gradebook.find_submission(assignment, student.id)
        except MissingEntry:
            out[student.id] = 0.0
        else:
            out[student.id] = max(0.0, submission.score - submission.late_submission_penalty)
    return out, found.max_score


class _LmsExportPlugin(ExportPlugin):
    roster = Unicode("", help="the roster exported from the LMS (CSV)").tag(config=True)
    match = Unicode(help="the roster's column that holds nbgrader's student ids").tag(config=True)
    title = Unicode(
        "", help="the assignment's name in the LMS (default: nbgrader's)"
    ).tag(config=True)  # fmt: skip

    policy_file = Unicode("", help=late.POLICY_FILE_HELP).tag(config=True)

    default_to = ""  # the file written when --to is not given
    unmatched: list[str]  # after export(): graded students the roster does not name

    def _header_and_rows(
        self, roster: Roster, got: dict[str, float], maximum: float, title: str
    ) -> tuple[list[str], list[list[str]]]:
        raise NotImplementedError

    def export(self, gradebook: Gradebook) -> None:
        if not self.roster:
            raise RosterError(f"{type(self).__name__}: give the LMS's roster (--roster FILE)")
        roster = Roster.read(Path(self.roster), self.match)
        to = Path(self.to or self.default_to)
        if to.exists() and to.resolve() == Path(self.roster).resolve():
            raise RosterError(f"{to} is the roster: write the grades to another file (--to)")
        assignment = (self.assignment or [ASSIGNMENT])[0]
        try:
            got, maximum = scores(gradebook, assignment)
        except MissingEntry:
            raise RosterError(
                f"the gradebook has no assignment {assignment!r}: grade it first"
            ) from None
        if self.student:
            got = {s: v for s, v in got.items() if s in self.student}
        # an LMS file has no room to say a penalty is stale: refuse it (nbgrader #723)
        late.refuse_stale(gradebook, assignment, self.policy_file, list(self.student))
        header, rows = self._header_and_rows(roster, got, maximum, self.title or assignment)
        named = {roster.student(row) for row in roster.rows}
        self.unmatched = sorted(set(got) - named)
        for student in self.unmatched:
            self.log.warning("%s is in the gradebook but not in the roster: not exported", student)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        to.write_text(out.getvalue())


class CanvasExportPlugin(_LmsExportPlugin):
    """Canvas's gradebook import CSV (see the module's docstring)."""

    match = Unicode("SIS Login ID", help="the roster's column with nbgrader's ids").tag(config=True)
    default_to = LMS_GRADES.format("canvas")

    def _header_and_rows(
        self, roster: Roster, got: dict[str, float], maximum: float, title: str
    ) -> tuple[list[str], list[list[str]]]:
        missing = [c for c in CANVAS_IDENTITY if c not in roster.columns]
        if missing:
            raise RosterError(
                f"roster {self.roster}: Canvas needs the columns {', '.join(missing)} "
                "(export the roster from Canvas's gradebook: Export > Export Entire Gradebook)"
            )
        points = [CANVAS_POINTS, "", "", "", "", f"{maximum:g}"]
        rows = [[row[c] for c in CANVAS_IDENTITY] + [roster.grade(row, got)] for row in roster.rows]
        return [*CANVAS_IDENTITY, title], [points, *rows]


class MoodleExportPlugin(_LmsExportPlugin):
    """Moodle's grade import CSV: the identity column, then the grade item."""

    match = Unicode("Email address", help="the roster's column with nbgrader's ids").tag(
        config=True
    )
    default_to = LMS_GRADES.format("moodle")

    def _header_and_rows(
        self, roster: Roster, got: dict[str, float], maximum: float, title: str
    ) -> tuple[list[str], list[list[str]]]:
        rows = [[row[roster.match], roster.grade(row, got)] for row in roster.rows
                if roster.student(row)]  # fmt: skip
        return [roster.match, title], rows
