"""The course's notebooks against each other and against nbgrader.

(The solution notebooks' own outputs are checked by nbval: see pyproject.toml.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from fixtures.wrong_answers import WRONG_ANSWERS
from nbgrader.api import Gradebook
from nbgrader.validator import Validator

from dlcourse.course import appendix, release
from dlcourse.course.authoring import ASSIGNMENT

ROOT = Path(__file__).resolve().parents[1]
RELEASED = sorted((ROOT / "notebooks" / ASSIGNMENT).glob("*.ipynb"))
NAMES = ["01_deep_learning.ipynb", "02_chain_rule.ipynb", "03_backpropagation.ipynb"]


def graded_cells(nb: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get(kind)]


def test_the_chapter_has_three_notebooks_and_fourteen_exercises() -> None:
    assert [p.name for p in RELEASED] == NAMES
    tests = [c for p in RELEASED for c in graded_cells(nbformat.read(p, 4), "grade")]
    assert len(tests) == 14
    assert len(appendix.answers(ROOT)) == 14


def test_released_notebooks_and_appendix_are_current() -> None:
    assert release.stale(ROOT) == [], "run `dlcourse release` and commit the result"


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_released_notebook_runs_and_every_test_fails_on_the_stubs(path: Path) -> None:
    nb = nbformat.read(path, 4)
    assert "### BEGIN" not in nbformat.writes(nb), "solutions or hidden tests leaked"
    failed = Validator(validate_all=True).validate(str(path)).get("failed", [])
    expected = [c.source.strip() for c in graded_cells(nb, "grade")]
    assert [f["source"] for f in failed] == expected, "a non-exercise cell failed, or a test passed"
    assert all("NotImplementedError" in f["raw_error"] for f in failed)
    assert Validator(invert=True).validate(str(path)) == {}


def test_index_links_resolve_to_headings() -> None:
    index = nbformat.read(ROOT / appendix.INDEX, 4)
    links = re.findall(r"\]\(([^)#]+)#([^)]+)\)", "\n".join(c.source for c in index.cells))
    assert len(links) > 30
    for target, fragment in links:
        nb = nbformat.read(ROOT / "notebooks" / target, 4)
        anchors = {appendix.anchor(h) for h in appendix.headings(nb.cells)}
        assert fragment in anchors, f"{target}#{fragment} is not a heading"
    text = "\n".join(c.source for c in index.cells)
    assert "**deep learning**" in text  # the book's own index entry


def injected(released: Path, code: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(released, 4)
    for cell in graded_cells(nb, "solution"):
        cell.source = code[cell.metadata["nbgrader"]["grade_id"]]
    return nb


def submissions() -> dict[str, dict[str, str]]:
    """Student -> (answer cell -> code): Appendix A's answers, and students who
    each make at most one typical mistake per exercise."""
    answers = {a.grade_id: a.code for a in appendix.answers(ROOT)}
    students = {"answers": answers}
    used: dict[str, int] = {}
    for grade_id, what, old, new in WRONG_ANSWERS:
        assert old in answers[grade_id], f"fixture {what!r} no longer matches Appendix A"
        n = used[grade_id] = used.get(grade_id, 0) + 1
        students.setdefault(f"mistakes{n}", dict(answers))[grade_id] = answers[grade_id].replace(
            old, new
        )
    return students


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=release.tool_environment(),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="session")
def autograded(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, tuple[float, float]]]:
    """Autograde every student of :func:`submissions` with plain nbgrader;
    student -> test cell -> (score, max score)."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy2(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    assert nbgrader(course, "generate_assignment", ASSIGNMENT).returncode == 0
    for student, code in submissions().items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for path in RELEASED:
            nbformat.write(injected(path, code), folder / path.name)
    result = nbgrader(course, "autograde", ASSIGNMENT, "--create")
    assert result.returncode == 0, result.stdout + result.stderr
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in submissions():
            for name in NAMES:
                nb = gb.find_submission_notebook(name[:-6], ASSIGNMENT, student)
                for grade in nb.grades:
                    scores.setdefault(student, {})[grade.name] = (grade.score, grade.max_score)
    return scores


def test_appendix_answers_get_full_marks(autograded: dict) -> None:
    scores = autograded["answers"]
    assert len(scores) == 14
    lost = {cell: s for cell, s in scores.items() if s[0] != s[1]}
    assert lost == {}


def test_each_mistake_costs_its_exercise_and_nothing_else(autograded: dict) -> None:
    mistaken = {}
    for grade_id, what, _, _ in WRONG_ANSWERS:
        mistaken.setdefault(grade_id, []).append(what)
    for student, code in submissions().items():
        if student == "answers":
            continue
        wrong = {g for g in code if code[g] != submissions()["answers"][g]}
        for cell, (score, max_score) in autograded[student].items():
            exercise = cell.removeprefix("test_")
            if exercise in wrong:
                assert score == 0, f"{student}: {mistaken[exercise]} still scored on {cell}"
            else:
                assert score == max_score, (
                    f"{student}: {cell} lost points for another exercise's mistake"
                )
