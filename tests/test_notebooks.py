"""The course's notebooks against each other and against nbgrader.

(The solution notebooks' own outputs are checked by nbval: see pyproject.toml.)
"""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag

import mistune
import nbformat
import pytest
from fixtures.students import CORRECT_STUDENTS, EARLIER_RELEASE, submissions, write_class
from fixtures.wrong_answers import HINTS, WRONG_ANSWERS
from nbgrader.api import Gradebook
from nbgrader.validator import Validator

from dlcourse.course import appendix, nbgrader_cli, release
from dlcourse.course.layout import (
    APPENDIX,
    ASSIGNMENT,
    CONFIG,
    INDEX,
    RELEASE,
    SOURCE,
    WITHHELD_APPENDIX,
    Layout,
)

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = Layout.of(ROOT)
RELEASED = LAYOUT.released_notebooks()
NAMES = ["01_deep_learning.ipynb", "02_chain_rule.ipynb", "03_backpropagation.ipynb"]
def graded_cells(nb: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get(kind)]


def test_the_chapter_has_three_notebooks_and_nineteen_exercises() -> None:
    assert [p.name for p in RELEASED] == NAMES
    tests = [c for p in RELEASED for c in graded_cells(nbformat.read(p, 4), "grade")]
    assert len(tests) == 19
    assert len(appendix.answers(ROOT)) == 19


def test_the_earlier_release_has_the_graded_cells_of_this_one() -> None:
    def graded(nb: nbformat.NotebookNode) -> list[tuple]:
        return [
            (m["grade_id"], m["solution"], m["grade"], m.get("points"))
            for c in nb.cells
            if (m := c.metadata.get("nbgrader", {})).get("solution") or m.get("grade")
        ]

    for path in RELEASED:
        earlier = nbformat.read(EARLIER_RELEASE / path.with_suffix(".json").name, 4)
        assert graded(earlier) == graded(nbformat.read(path, 4)), path.name


def test_released_notebooks_and_appendix_are_current() -> None:
    assert release.stale(ROOT) == [], "run `dlcourse release` and commit the result"
    assert LAYOUT.answers_released, "the course as committed is for self-study: Appendix A out"


def test_appendix_a_withheld_stays_out_of_the_workspace_until_released(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    for name in (CONFIG, SOURCE, RELEASE):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, course / name)
    layout = Layout.of(course)

    def index_text() -> str:
        return "\n".join(c.source for c in nbformat.read(course / INDEX, 4).cells)

    lines = appendix.build(course, answers=False)
    assert [line.split(" (the earlier file: ")[0] for line in lines] == [
        f"updated {WITHHELD_APPENDIX}",
        f"updated {INDEX}",
        f"{APPENDIX} (removed)",
    ]
    assert not layout.answers_released and layout.appendix == course / WITHHELD_APPENDIX
    assert not (course / APPENDIX).exists() and "appendix_a" not in index_text()
    assert "Appendix A: Answers to Exercises (your instructor releases it" in index_text()
    withheld = nbformat.read(course / WITHHELD_APPENDIX, 4)
    targets = [u for c in withheld.cells for u in link_targets(c.source) if ".ipynb" in u]
    assert targets and all((course / SOURCE / urldefrag(u)[0]).is_file() for u in targets)
    assert appendix.build(course) == [], "a later release keeps it withheld"
    assert release.stale(course) == []
    # released after the deadline
    lines = appendix.build(course, answers=True)
    assert [line.split(" (the earlier file: ")[0] for line in lines] == [
        f"updated {APPENDIX}",
        f"updated {INDEX}",
        f"{WITHHELD_APPENDIX} (removed)",
    ]
    assert layout.answers_released and not (course / WITHHELD_APPENDIX).exists()
    assert (course / APPENDIX).read_bytes() == (ROOT / APPENDIX).read_bytes()
    assert (course / INDEX).read_bytes() == (ROOT / INDEX).read_bytes()
    assert appendix.build(course) == []
    (course / WITHHELD_APPENDIX).write_bytes((course / APPENDIX).read_bytes())
    assert set(appendix.stale(course)) == {str(APPENDIX), str(INDEX), str(WITHHELD_APPENDIX)}


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_released_notebook_runs_and_every_test_fails_on_the_stubs(path: Path) -> None:
    nb = nbformat.read(path, 4)
    assert "### BEGIN" not in nbformat.writes(nb), "solutions or hidden tests leaked"
    failed = Validator(validate_all=True).validate(str(path)).get("failed", [])
    expected = [c.source.strip() for c in graded_cells(nb, "grade")]
    assert [f["source"] for f in failed] == expected, "a non-exercise cell failed, or a test passed"
    assert all("NotImplementedError" in f["raw_error"] for f in failed)
    assert Validator(invert=True).validate(str(path)) == {}


def jupyterlab_anchor(heading: str) -> str:
    """The id JupyterLab gives a rendered heading: its text content, spaces as dashes."""
    text = re.sub(r"<[^>]+>", "", mistune.html(heading))
    return html.unescape(text).strip().replace(" ", "-")


def link_targets(markdown: str) -> list[str]:
    """The targets of the links in ``markdown``, as a Markdown parser reads them."""
    found, pending = [], list(mistune.create_markdown(renderer=None)(markdown))
    while pending:
        token = pending.pop(0)
        if token["type"] == "link":
            found.append(token["attrs"]["url"])
        pending[:0] = token.get("children", [])
    return found


@pytest.mark.parametrize("page", [appendix.INDEX, appendix.APPENDIX], ids=lambda p: p.name)
def test_links_resolve_to_headings(page: Path) -> None:
    nb = nbformat.read(ROOT / page, 4)
    links = [url for c in nb.cells for url in link_targets(c.source) if ".ipynb" in url]
    assert len(links) >= (70 if page == appendix.INDEX else 3)
    linked_exercises = 0
    for url in links:
        target, fragment = urldefrag(url)
        path = (ROOT / page).parent / target
        assert path.exists(), f"{page} links to {target}, which does not exist"
        if fragment:
            anchors = {
                jupyterlab_anchor(h) for h in appendix.headings(nbformat.read(path, 4).cells)
            }
            assert fragment in anchors, f"{page}: {target}#{fragment} is not a heading"
            linked_exercises += fragment.startswith("Exercise-")
    if page == appendix.INDEX:
        assert linked_exercises >= 19, "the index should send readers to the exercises too"


def test_an_index_term_links_to_every_place_that_treats_it() -> None:
    terms = appendix.index_terms(ROOT)
    assert sorted({n for n, _ in terms["sigmoid"]}) == NAMES  # 1.1's exercise, 1.2 and 1.3
    assert ("01_deep_learning.ipynb", "Depth and initialisation") in terms["vanishing gradients"]
    assert ("02_chain_rule.ipynb", "Long chains and vanishing gradients") in terms[
        "vanishing gradients"
    ]
    assert terms["deep learning"][0] == ("01_deep_learning.ipynb", "1.1 Deep Learning")
    with pytest.raises(ValueError, match="parentheses in pairs"):
        appendix.anchor("Exercise 1: a dense layer (1 point")
    assert appendix.anchor("Exercise 1: a (dense) layer (1 point)") == (
        "Exercise-1:-a-(dense)-layer-(1-point)"
    )


def test_the_index_keeps_the_books_entry_and_the_issues_terms() -> None:
    text = "\n".join(c.source for c in nbformat.read(ROOT / appendix.INDEX, 4).cells)
    for term in [
        "deep learning",  # the book's own index entry
        "layer",
        "nonlinearity",
        "chain rule",
        "derivative",
        "numerical gradient",
        "computational graph",
        "backpropagation",
        "gradient descent",
        "vanishing gradients",
        # the book's terms issue 12 names
        "loss function",
        "hidden layer",
        "shallow network",
        "deep network",
        "artificial neural network",
        "equation (1.1)",
        "weights and biases",
        "Jacobian",
        "vector-Jacobian product",
        "forward mode",
        "reverse mode",
        "softmax",
        "one-hot",
        "log-sum-exp",
        "minibatch",
        "He initialisation",
        "LeCun initialisation",
        "Glorot (Xavier) initialisation",
        "exploding gradients",
        "gradient checking",
    ]:
        assert f"**{term}**" in text, f"the index has no entry {term!r}"
    assert "- **chain rule**: " in text and "; see also *equation (1.1)*, *multivariable" in text


def test_exercises_are_numbered_by_section_everywhere() -> None:
    for name in NAMES:
        section = "1." + name[1]  # "02_chain_rule.ipynb" -> "1.2"
        found = [h for h in appendix.headings(nbformat.read(LAYOUT.release / name, 4).cells)
                 if h.startswith("Exercise ")]  # fmt: skip
        assert found and all(h.startswith(f"Exercise {section}.") for h in found), found
    titles = [a.title for a in appendix.answers(ROOT)]
    assert titles[0].startswith("Exercise 1.1.1: ") and titles[-1].startswith("Exercise 1.3.6: ")


def test_solution_notebooks_write_nothing_to_stderr() -> None:
    for name in NAMES:
        nb = nbformat.read(LAYOUT.solutions / name, 4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                assert output.get("name") != "stderr", (
                    f"{name}: {cell.source[:60]!r} wrote to stderr"
                )
                assert output.output_type != "error", f"{name}: {cell.source[:60]!r} failed"


@dataclass
class Graded:
    scores: dict[str, tuple[float, float]]  # test cell -> (score, max score)
    errors: dict[str, dict]  # test cell -> its error output


@pytest.fixture(scope="session")
def autograded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Graded]:
    """Autograde every student of :func:`submissions` with plain nbgrader."""
    layout = nbgrader_cli.generate_assignment(LAYOUT, tmp_path_factory.mktemp("c") / "course")
    course = layout.root
    students = submissions()
    write_class(RELEASED, layout.submitted)
    result = nbgrader_cli.run(course, "autograde", ASSIGNMENT, "--create")
    assert result.returncode == 0, result.stdout
    graded = {student: Graded({}, {}) for student in students}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            for name in NAMES:
                # a kernel that died leaves no autograded notebook (and a 0 in the gradebook)
                path = layout.autograded(student) / name
                assert path.exists(), f"{student}'s {name} was not graded:\n{result.stdout}"
                for cell in graded_cells(nbformat.read(path, 4), "grade"):
                    cell_id = cell.metadata["nbgrader"]["grade_id"]
                    for output in cell.outputs:
                        if output.output_type == "error":
                            graded[student].errors[cell_id] = output
                nb = gb.find_submission_notebook(name[:-6], ASSIGNMENT, student)
                for grade in nb.grades:
                    graded[student].scores[grade.name] = (grade.score, grade.max_score)
    return graded


@pytest.mark.parametrize("student", CORRECT_STUDENTS)
def test_correct_answers_get_full_marks(autograded: dict[str, Graded], student: str) -> None:
    scores = autograded[student].scores
    assert len(scores) == 19
    lost = {
        cell: autograded[student].errors.get(cell) for cell, s in scores.items() if s[0] != s[1]
    }
    assert lost == {}


def test_each_mistake_costs_its_exercise_and_nothing_else(autograded: dict[str, Graded]) -> None:
    for student, (_, mistakes) in submissions().items():
        for cell, (score, max_score) in autograded[student].scores.items():
            exercise = cell.removeprefix("test_")
            if exercise in mistakes:
                assert score == 0, f"{student}: {mistakes[exercise]!r} still scored on {cell}"
            else:
                assert score == max_score, (
                    f"{student}: {cell} lost points for another exercise's mistake: "
                    f"{autograded[student].errors.get(cell)}"
                )


def test_a_failing_test_says_what_is_wrong(autograded: dict[str, Graded]) -> None:
    assert set(HINTS) <= {what for _, what, _, _ in WRONG_ANSWERS}
    unhelpful = []
    for student, (_, mistakes) in submissions().items():
        for exercise, what in mistakes.items():
            error = autograded[student].errors[f"test_{exercise}"]
            assert error.evalue.strip(), f"{what!r} fails {exercise} with a bare {error.ename}"
            assert "HIDDEN" not in error.evalue
            if HINTS.get(what, "") not in error.evalue:
                unhelpful.append(f"{what!r} lacks the hint {HINTS[what]!r}:\n{error.evalue}")
    assert not unhelpful, "\n\n".join(unhelpful)
