"""A semester on one machine, with real Unix users: one instructor, three students.

The instructor releases ch01 to nbgrader's exchange (``dlcourse exchange
release``); each student fetches it with nbgrader's own command, answers
(honestly, partly, or late) and submits; the instructor collects, root grades
(``dlcourse grade``, confined) and the instructor releases the feedback; each
student fetches theirs. The late student submits after the first round and
is collected, graded and given feedback in a second. Every student then has
their own feedback and nobody else's, the hidden tests are in nothing a
student got, and nothing a student submitted was lost.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from fixtures.unix_users import (
    ROOT,
    User,
    make_exchange,
    require_root,
    teachers_course,
    unix_users,
)

from dlcourse.course import appendix
from dlcourse.course.cli import main
from dlcourse.course.grading import sandbox
from dlcourse.course.layout import ASSIGNMENT, Layout

pytestmark = pytest.mark.slow
ANSWERS = {a.grade_id: a.code for a in appendix.answers(ROOT)}
STUDENTS = ("honest", "partial", "late")
PARTLY = "02_chain_rule.ipynb"  # the partial student answers this notebook only
DLCOURSE = [sys.executable, "-m", "dlcourse.course.cli"]


def hidden_lines() -> set[str]:
    """Every distinctive line of the hidden tests in the solution notebooks
    that the learner notebooks do not have (some are in visible tests too)."""
    found = set()
    for path in Layout(ROOT).solutions.glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS",
                                    cell.source, re.S):  # fmt: skip
                found |= {line.strip() for line in block.splitlines() if len(line.strip()) > 25}
    visible = {
        line.strip()
        for path in Layout(ROOT).released_notebooks()
        for cell in nbformat.read(path, 4).cells
        for line in cell.source.splitlines()
    }
    found -= visible | {line.strip() for code in ANSWERS.values() for line in code.splitlines()}
    assert found, "the solutions have hidden tests"
    return found


def answer(folder: Path, student: User, names: set[str] | None) -> None:
    """Write the answers into the student's fetched notebooks (``names``: only
    those notebooks), as their editor would, keeping them the student's."""
    for path in sorted(folder.glob("*.ipynb")):
        if names is not None and path.name not in names:
            continue
        nb = nbformat.read(path, 4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and meta.get("grade_id") in ANSWERS:
                cell.source = ANSWERS[meta["grade_id"]]
        nbformat.write(nb, path)
        os.chown(path, student.uid, student.gid)


def can_list(user: User, folder: Path) -> bool:
    return user.run("ls", str(folder), check=False).returncode == 0


@pytest.fixture(scope="module")
def semester() -> Iterator[dict]:
    require_root()
    if sandbox.unavailable():
        pytest.skip(f"grading needs the sandbox: {sandbox.unavailable()}")
    base = Path(tempfile.mkdtemp(prefix="dlcourse-semester-"))
    os.chmod(base, 0o755)  # the users' homes are in it
    try:
        with unix_users(base, ["teacher", *STUDENTS]) as accounts:
            yield _semester(base, accounts.users)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _semester(base: Path, users: dict[str, User]) -> dict:
    teacher = users["teacher"]
    exchange = make_exchange(base)
    course = teachers_course(teacher)
    os.chmod(course, 0o700)

    def instructor(*args: str) -> str:
        return teacher.run(*DLCOURSE, "--root", str(course), *args, cwd=course).stdout

    def root_grades() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--root", str(course), "grade", "--workers", "2", "--timeout", "30"]) == 0
        return out.getvalue()

    released = instructor("exchange", "release", "--exchange", str(exchange))
    student_config = base / "etc-jupyter"  # what /etc/jupyter is on a real machine
    student_config.mkdir(mode=0o755)
    (student_config / "nbgrader_config.py").write_text(
        instructor("exchange", "student-config")  # the exchange was given once, to release
    )
    os.chmod(student_config / "nbgrader_config.py", 0o644)
    paths = {"JUPYTER_CONFIG_PATH": str(student_config)}

    def nbgrader(student: User, *args: str) -> str:
        done = student.run(sys.executable, "-m", "nbgrader", *args, ASSIGNMENT, **paths)
        return done.stdout + done.stderr

    said: dict[str, list[str]] = {s: [] for s in STUDENTS}
    for name in STUDENTS:
        said[name].append(nbgrader(users[name], "fetch_assignment"))
    fetched = {name: users[name].home / ASSIGNMENT for name in STUDENTS}
    answer(fetched["honest"], users["honest"], None)
    answer(fetched["partial"], users["partial"], {PARTLY})
    for name in ("honest", "partial"):
        said[name].append(nbgrader(users[name], "submit"))
    first_collect = instructor("exchange", "collect")
    first_grade = root_grades()
    first_feedback = instructor("exchange", "feedback")
    layout = Layout(course)
    collected_once = {
        name: {p.name: p.read_bytes() for p in layout.submitted(users[name].name).iterdir()}
        for name in ("honest", "partial")
    }
    # the late student answers and submits after the first round
    answer(fetched["late"], users["late"], None)
    said["late"].append(nbgrader(users["late"], "submit"))
    second_collect = instructor("exchange", "collect")
    second_grade = root_grades()
    second_feedback = instructor("exchange", "feedback")
    for name in STUDENTS:
        said[name].append(nbgrader(users[name], "fetch_feedback"))
    return {
        "base": base,
        "users": users,
        "course": course,
        "layout": layout,
        "exchange": exchange,
        "released": released,
        "said": said,
        "fetched": fetched,
        "collect": (first_collect, second_collect),
        "grade": (first_grade, second_grade),
        "feedback": (first_feedback, second_feedback),
        "collected_once": collected_once,
        "export": instructor("export"),
    }


def scores(semester: dict) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{semester['layout'].gradebook}") as gb:
        return {
            name: gb.find_submission(ASSIGNMENT, semester["users"][name].name).score
            for name in STUDENTS
        }


def test_each_student_is_graded_on_what_they_submitted(semester: dict) -> None:
    got = scores(semester)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{semester['layout'].gradebook}") as gb:
        full = gb.find_assignment(ASSIGNMENT).max_score
    assert got["honest"] == got["late"] == full
    assert 0 < got["partial"] < full
    assert "graded 2 student(s)" in semester["grade"][0]
    assert "graded 1 student(s); 2 already graded" in semester["grade"][1]


def test_grading_takes_what_collect_gathered_without_complaint(semester: dict) -> None:
    for out in semester["grade"]:
        assert "problems:" not in out, out
    first, second = semester["collect"]
    users = semester["users"]
    assert f"collected: {users['honest'].name}" in first
    assert users["late"].name not in first
    assert f"collected: {users['late'].name}" in second


def test_each_student_gets_their_own_feedback_and_nobody_elses(semester: dict) -> None:
    layout, users = semester["layout"], semester["users"]
    pages: dict[str, dict[str, bytes]] = {}
    for name in STUDENTS:
        feedback = semester["fetched"][name] / "feedback"
        got = {p.name: p.read_bytes() for p in feedback.rglob("*.html")}
        mine = {p.name: p.read_bytes() for p in layout.feedback(users[name].name).glob("*.html")}
        assert got == mine and len(got) == len(layout.released_notebooks())
        pages[name] = got
    # the pages are the graded notebooks: the partial student's show what they left out
    for name in ("honest", "late"):
        differ = {n for n in pages[name] if pages[name][n] != pages["partial"][n]}
        assert differ == {n for n in pages[name] if n != PARTLY.replace(".ipynb", ".html")}


def test_no_student_can_look_into_the_others_work(semester: dict) -> None:
    exchange, users = semester["exchange"] / "dlcourse", semester["users"]
    for name in STUDENTS:
        student = users[name]
        assert not can_list(student, exchange / "feedback")
        assert not can_list(student, exchange / "inbound")
        assert not can_list(student, semester["course"])
        for other in STUDENTS:
            if other != name:
                assert not can_list(student, users[other].home)


def lines_of(path: Path) -> set[str]:
    """The lines a student can read in ``path``: a page's text (its code
    highlighted in tags), a notebook's or another file's lines."""
    text = path.read_text(errors="replace")
    if path.suffix == ".html":
        text = BeautifulSoup(text, "html.parser").get_text()
    elif path.suffix == ".ipynb":
        text = "\n".join(cell.source for cell in nbformat.reads(text, 4).cells)
    return {line.strip() for line in text.splitlines()}


def test_hidden_tests_are_in_nothing_a_student_got(semester: dict) -> None:
    hidden = hidden_lines()
    assert lines_of(Layout(ROOT).solutions / PARTLY) & hidden, "the check sees hidden tests"
    looked = 0
    for name in STUDENTS:
        home = semester["users"][name].home
        for path in home.rglob("*"):
            if path.is_file() and path.suffix in {".ipynb", ".html", ".py", ".txt"}:
                leaked = lines_of(path) & hidden
                assert not leaked, f"{path} holds hidden tests: {sorted(leaked)[:2]}"
                looked += path.suffix == ".html"
    assert looked == len(STUDENTS) * len(semester["layout"].released_notebooks())


def test_nothing_a_student_submitted_is_lost(semester: dict) -> None:
    layout, users = semester["layout"], semester["users"]
    for name, files in semester["collected_once"].items():  # the second round left them be
        now = {p.name: p.read_bytes() for p in layout.submitted(users[name].name).iterdir()}
        assert now == files
    inbound = semester["exchange"] / "dlcourse" / "inbound"
    for name in STUDENTS:
        submission = next(inbound.glob(f"{users[name].name}+{ASSIGNMENT}+*"))
        collected = layout.submitted(users[name].name)
        for path in submission.glob("*.ipynb"):
            assert path.read_bytes() == (collected / path.name).read_bytes()
            assert path.read_bytes() == (semester["fetched"][name] / path.name).read_bytes()


def test_the_instructor_keeps_their_course_after_root_graded(semester: dict) -> None:
    layout, teacher = semester["layout"], semester["users"]["teacher"]
    for path in [layout.gradebook, layout.grades_csv, *layout.feedback_root.rglob("*"),
                 *layout.markers.rglob("*")]:  # fmt: skip
        assert path.lstat().st_uid == teacher.uid, path
    assert "grades:" in semester["export"]
    rows = layout.grades_csv.read_text().splitlines()
    assert len(rows) == 1 + len(STUDENTS)


def test_students_get_nbgraders_own_word_for_each_step(semester: dict) -> None:
    for name in STUDENTS:
        fetch, submit, feedback = semester["said"][name]
        assert "Fetched as: dlcourse ch01" in fetch
        assert "Submitted as: dlcourse ch01" in submit
        assert "Fetched feedback" in feedback
    outbound = semester["exchange"] / "dlcourse" / "outbound" / ASSIGNMENT
    assert f"released: {outbound}" in semester["released"]
