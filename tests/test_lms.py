"""Grades for the LMS: Canvas's and Moodle's import files, golden, from a
gradebook of four students (one late, one without a submission, one the
roster does not know), through the plugins, `nbgrader export` and `dlcourse
export`."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from dlcourse.course import nbgrader_cli
from dlcourse.course.cli import main
from dlcourse.course.layout import CONFIG, Layout
from dlcourse.course.semester import lms

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A gradebook: ann 30.5 of 32 with a late penalty of 2, ben 32, cat
    without a submission, dan graded but not in any roster."""
    nbgrader_cli.put_tools_on_path()  # a new gradebook runs alembic
    with Gradebook(f"sqlite:///{Layout(tmp_path).gradebook}") as gb:
        gb.add_assignment("ch01")
        gb.add_notebook("02_chain_rule", "ch01")
        gb.add_grade_cell("test_all", "02_chain_rule", "ch01", max_score=32, cell_type="code")
        for student in ("ann", "ben", "cat", "dan"):
            gb.add_student(student)
        for student, score in [("ann", 30.5), ("ben", 32.0), ("dan", 12.0)]:
            with warnings.catch_warnings():  # nbgrader's own code trips SQLAlchemy's autoflush
                warnings.simplefilter("ignore", SAWarning)
                gb.add_submission("ch01", student)
            gb.find_grade("test_all", "02_chain_rule", "ch01", student).auto_score = score
        gb.find_submission_notebook("02_chain_rule", "ch01", "ann").late_submission_penalty = 2.0
        gb.db.commit()
    for name in ("canvas_roster.csv", "moodle_roster.csv"):
        shutil.copy2(GOLDEN / name, tmp_path / name)
    (tmp_path / CONFIG).write_text("")  # a course folder: nbgrader's defaults
    return tmp_path


def export(plugin: lms._LmsExportPlugin, course: Path) -> None:
    with Gradebook(f"sqlite:///{Layout(course).gradebook}") as gb:
        plugin.export(gb)


def test_canvas_gets_its_gradebook_import_file(course: Path) -> None:
    to = course / "out.csv"
    plugin = lms.CanvasExportPlugin(
        roster=str(course / "canvas_roster.csv"), to=str(to), title="Chapter 1 (1042)"
    )
    export(plugin, course)
    assert to.read_text() == (GOLDEN / "canvas.csv").read_text()
    assert plugin.unmatched == ["dan"]


def test_moodle_gets_its_grade_import_file(course: Path) -> None:
    to = course / "out.csv"
    plugin = lms.MoodleExportPlugin(roster=str(course / "moodle_roster.csv"), to=str(to),
                                    match="Username")  # fmt: skip
    export(plugin, course)
    assert to.read_text() == (GOLDEN / "moodle.csv").read_text()
    assert plugin.unmatched == ["dan"]


def test_nbgrader_export_takes_the_plugins(course: Path) -> None:
    done = nbgrader_cli.run(
        course,
        "export",
        "--exporter=dlcourse.course.semester.lms.CanvasExportPlugin",
        "--CanvasExportPlugin.roster=canvas_roster.csv",
        "--CanvasExportPlugin.title=Chapter 1 (1042)",
    )
    assert done.returncode == 0, done.stdout
    assert (course / "grades-canvas.csv").read_text() == (GOLDEN / "canvas.csv").read_text()
    assert "dan is in the gradebook but not in the roster" in done.stdout


def test_dlcourse_export_lists_who_the_roster_does_not_name(
    course: Path, capsys: pytest.CaptureFixture
) -> None:
    roster = str(course / "moodle_roster.csv")
    assert main(["--root", str(course), "export", "--format", "moodle", "--roster", roster,
                 "--match", "Username"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"grades for Moodle: {Layout(course).lms_grades('moodle')}" in out
    assert "not in the roster, so not exported (1): dan" in out
    assert Layout(course).lms_grades("moodle").read_text() == (GOLDEN / "moodle.csv").read_text()
    assert main(["--root", str(course), "export", "--format", "csv"]) == 0
    assert Layout(course).grades_csv.read_text().startswith("assignment,duedate,timestamp,")


@pytest.mark.parametrize(
    ("roster", "match", "said"),
    [
        (
            "First name,Username\nAnn,ann\nAnna,ann\nBen,ben\nBenny,ben\nCat,cat\n",
            "Username",
            "'Username' repeats ann, ben; each student must appear once",
        ),
        (
            "First name,Login\nAnn,ann\n",
            "Username",
            "no column 'Username' (its columns: 'First name', 'Login'); name the column",
        ),
        ("", "Username", "no column 'Username' (its columns: none)"),
    ],
)
def test_a_roster_that_cannot_be_matched_is_refused_and_nothing_written(
    course: Path, roster: str, match: str, said: str
) -> None:
    (course / "roster.csv").write_text(roster)
    to = course / "out.csv"
    with pytest.raises(lms.RosterError, match=said.replace("(", r"\(").replace(")", r"\)")):
        export(lms.MoodleExportPlugin(roster=str(course / "roster.csv"), to=str(to), match=match),
               course)  # fmt: skip
    assert not to.exists()


def test_canvas_needs_its_identity_columns(course: Path) -> None:
    (course / "roster.csv").write_text("Student,SIS Login ID\nAnn,ann\n")
    with pytest.raises(lms.RosterError, match=r"Canvas needs the columns ID, SIS User ID, Section"):
        export(lms.CanvasExportPlugin(roster=str(course / "roster.csv"), to="x.csv"), course)


def test_the_roster_is_never_written_over(course: Path, capsys: pytest.CaptureFixture) -> None:
    roster = course / "canvas_roster.csv"
    before = roster.read_text()
    command = ["--root", str(course), "export", "--format", "canvas", "--roster", str(roster)]
    with pytest.raises(SystemExit, match="is the roster: write the grades to another file"):
        main([*command, "--to", str(roster)])
    assert roster.read_text() == before
    with pytest.raises(SystemExit, match=r"give the roster exported from the LMS \(--roster"):
        main(["--root", str(course), "export", "--format", "canvas"])
