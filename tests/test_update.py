"""Errata without losing work: `dlcourse update` merges a new release into a
learner's copy by grade id, from the course's release folder or an nbgrader
exchange's outbound folder, and a submission made against either release
grades correctly.

The erratum is made as an instructor would: section 1.2's solution notebook
gets a retitled heading, a new exercise, one exercise removed and one whose
starting code changed, and nbgrader generates the new release from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat import NotebookNode
from test_grading_local import ANSWERS, NOTEBOOK, UNSAFE, answered, course, total

from dlcourse.course import authoring, grading, nbgrader_cli, release
from dlcourse.course.cli import main
from dlcourse.course.layout import Layout
from dlcourse.course.semester.update import ASIDE, BACKUP, UpdateError, merge, update

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "notebooks" / "ch01" / NOTEBOOK
ADDED, REMOVED, RESTARTED = "square", "circuit_backward", "chain_derivative"
SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"


def by_id(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def erratum(root: Path) -> None:
    """The erratum into the course at ``root``: solutions, then the release."""
    path = Layout.of(root).solutions / NOTEBOOK
    nb = nbformat.read(path, 4)
    nb.cells[0].source = nb.cells[0].source.replace("# 1.2 Chain Rule", "# 1.2 The Chain Rule")
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                not in (REMOVED, f"test_{REMOVED}")]  # fmt: skip
    cell = by_id(nb)[RESTARTED]
    cell.source = cell.source.replace('"""', '"""(corrected) ', 1)
    meta = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}
    test = {**meta, "grade": True, "locked": True, "solution": False, "points": 1}
    at = nb.cells.index(by_id(nb)["test_numerical_derivative"]) + 1
    nb.cells[at:at] = [
        nbformat.v4.new_code_cell(SQUARE, metadata={"nbgrader": {**meta, "grade_id": ADDED}}),
        nbformat.v4.new_code_cell("assert square(3) == 9",
                                  metadata={"nbgrader": {**test, "grade_id": f"test_{ADDED}"}}),
    ]  # fmt: skip
    nbformat.write(nb, path)
    for name, made in release.generate(root).items():
        authoring.write(made, Layout.of(root).release / name)


@pytest.fixture(scope="module")
def new_course(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    layout = course(tmp_path_factory.mktemp("erratum"))
    erratum(layout.root)
    return layout


@pytest.fixture
def new(new_course: Layout) -> NotebookNode:
    return nbformat.read(new_course.release / NOTEBOOK, 4)


ODD = {  # answers as learners write them: CRLF, tabs, trailing blanks, no final newline
    "numerical_derivative": ANSWERS["numerical_derivative"].replace("\n", "\r\n") + "  \t",
    "chain_rule": "# mine\n" + ANSWERS["chain_rule"] + "\n\n\n",
}


def learner(tmp_path: Path, code: dict[str, str] | None = None) -> Path:
    """A learner's assignment folder as `nbgrader fetch_assignment` leaves it,
    section 1.2 answered (against the old release)."""
    folder = tmp_path / "learner" / "ch01"
    shutil.copytree(OLD.parent, folder)
    nbformat.write(answered(OLD, {**ANSWERS, **ODD, **(code or {})}), folder / NOTEBOOK)
    return folder


# ---------------------------------------------------------------- merging
def test_an_update_keeps_answers_byte_for_byte_and_takes_the_new_text(
    tmp_path: Path, new: NotebookNode, new_course: Layout
) -> None:
    folder = learner(tmp_path)
    before = (folder / NOTEBOOK).read_bytes()
    mine = nbformat.read(folder / NOTEBOOK, 4)
    lines, kept = update(folder, new_course.release)
    merged = nbformat.read(folder / NOTEBOOK, 4)
    cells, old_cells = by_id(merged), by_id(mine)
    for grade_id in set(ANSWERS) & set(cells) - {ADDED}:
        if cells[grade_id].metadata["nbgrader"]["solution"] and grade_id in old_cells:
            assert cells[grade_id].source == old_cells[grade_id].source
    assert cells["numerical_derivative"].source == ODD["numerical_derivative"]
    assert merged.cells[0].source.startswith("# 1.2 The Chain Rule")  # text: the new release's
    assert cells[ADDED].source == by_id(new)[ADDED].source  # the new exercise, to answer
    assert REMOVED not in cells and f"test_{REMOVED}" not in cells
    assert [c.metadata["nbgrader"]["grade_id"] for c in merged.cells if "nbgrader" in c.metadata] \
        == [c.metadata["nbgrader"]["grade_id"] for c in new.cells if "nbgrader" in c.metadata]
    assert f"{NOTEBOOK}: new exercise {ADDED}" in lines
    assert any(f"exercise {REMOVED} is no longer in the release" in line for line in lines)
    assert any(f"CONFLICT {RESTARTED}: the release changed" in line for line in lines)
    assert (kept / BACKUP / NOTEBOOK).read_bytes() == before  # the learner's file, as it was
    aside = nbformat.read(kept / ASIDE / NOTEBOOK, 4)
    assert ANSWERS[REMOVED] in [c.source for c in aside.cells]  # the removed exercise's answer
    assert by_id(new)[RESTARTED].source in [c.source for c in aside.cells]
    assert (kept / "report.txt").read_text().splitlines() == lines
    assert kept.parent == folder.parent  # outside the folder nbgrader submits


answers = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200)


@settings(max_examples=30, deadline=None,  # no timing in tests: the machine is shared
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers, answers)
def test_any_answer_survives_an_update(new: NotebookNode, first: str, second: str) -> None:
    mine = answered(OLD, {**ANSWERS, "numerical_derivative": first, "chain_rule": second})
    merged, _, _ = merge(nbformat.reads(nbformat.writes(mine), 4), new, NOTEBOOK)
    cells = by_id(nbformat.reads(nbformat.writes(merged), 4))  # as written and read back
    started = {g: c.source for g, c in by_id(mine).items()}
    for grade_id, code in [("numerical_derivative", first), ("chain_rule", second)]:
        if started[grade_id] != by_id(nbformat.read(OLD, 4))[grade_id].source:
            assert cells[grade_id].source == code


def test_an_answer_never_started_takes_the_new_starting_code(new: NotebookNode) -> None:
    mine = nbformat.read(OLD, 4)  # as released: nothing answered
    merged, aside, report = merge(mine, new, NOTEBOOK)
    assert by_id(merged)[RESTARTED].source == by_id(new)[RESTARTED].source
    assert report.conflicts == [] and report.removed == [REMOVED]
    # set aside: the removed exercise; the earlier release's text, never edited (its id is
    # still made from its source), is nobody's work and simply takes the new release's
    assert [c.source for c in aside] == [by_id(mine)[REMOVED].source]
    assert merged.cells[0].source == new.cells[0].source != mine.cells[0].source


def test_an_edited_locked_cell_takes_the_release_and_is_set_aside(new: NotebookNode) -> None:
    mine = answered(OLD)
    by_id(mine)["test_chain_rule"].source += "\nprint('I passed')"
    merged, aside, report = merge(mine, new, NOTEBOOK)
    assert by_id(merged)["test_chain_rule"].source == by_id(new)["test_chain_rule"].source
    assert by_id(mine)["test_chain_rule"].source in [c.source for c in aside]
    said = "test_chain_rule: you changed this locked cell"
    assert any(c.startswith(said) for c in report.conflicts)


def test_cells_a_learner_added_or_changed_stay_where_they_were(new: NotebookNode) -> None:
    mine = answered(OLD)
    at = mine.cells.index(by_id(mine)["chain_rule"]) + 1
    mine.cells.insert(at, nbformat.v4.new_code_cell("my_scratch = 1"))
    plain = next(i for i, c in enumerate(mine.cells) if c.cell_type == "code"
                 and "nbgrader" not in c.metadata)  # fmt: skip
    mine.cells[plain].source += "\nprint('trying')"
    merged, aside, report = merge(mine, new, NOTEBOOK)
    sources = [c.source for c in merged.cells]
    assert sources[sources.index(by_id(merged)["chain_rule"].source) + 1] == "my_scratch = 1"
    assert mine.cells[plain].source in sources
    released = next(c for c in new.cells if c.get("id") == mine.cells[plain].id)
    assert released.source in [c.source for c in aside]
    assert any(c.startswith(f"cell {released.id}: you changed this cell") for c in report.conflicts)
    assert report.unmatched == 1


@pytest.mark.parametrize("other", ["03_backpropagation.ipynb", "no nbgrader"])
def test_an_update_against_another_courses_notebook_is_refused(
    tmp_path: Path, new_course: Layout, other: str
) -> None:
    folder = tmp_path / "ch01"
    folder.mkdir()
    if other == "no nbgrader":
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]),
                       folder / NOTEBOOK)  # fmt: skip
    else:  # another notebook's exercises under this name
        shutil.copy2(OLD.parent / other, folder / NOTEBOOK)
    before = (folder / NOTEBOOK).read_bytes()
    with pytest.raises(UpdateError, match="not this course's notebook"):
        update(folder / NOTEBOOK, new_course.release)
    assert (folder / NOTEBOOK).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ch01"]  # no backup: nothing done


def test_update_refuses_what_it_cannot_read(tmp_path: Path, new_course: Layout) -> None:
    folder = learner(tmp_path)
    for text in ("{not json", '{"cells": "JSON, but no notebook"}'):
        (folder / NOTEBOOK).write_text(text)
        with pytest.raises(UpdateError, match="cannot be read as a notebook"):
            update(folder, new_course.release)
        assert (folder / NOTEBOOK).read_text() == text
    with pytest.raises(UpdateError, match="not a notebook of the release"):
        update(folder / "nothing.ipynb", new_course.release)


# ---------------------------------------------------------------- the command
def test_dlcourse_update_takes_the_release_from_an_exchange(
    tmp_path: Path, new_course: Layout, capsys: pytest.CaptureFixture
) -> None:
    """The exchange as nbgrader 0.9.6 lays it out: <root>/<course_id>/outbound/<assignment>/."""
    exchange = tmp_path / "exchange"
    shutil.copytree(new_course.release, exchange / "dlcourse" / "outbound" / "ch01")
    folder = learner(tmp_path)
    (folder / "01_deep_learning.ipynb").unlink()  # a notebook the learner lost: it comes back
    (folder / "mine.ipynb").write_text("{}")  # not the release's: left alone
    code = main(["--root", str(new_course.root), "update", str(folder), "--exchange",
                 str(exchange)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "CONFLICT" in out  # a conflict is never resolved in silence
    assert "01_deep_learning.ipynb: new notebook in this release" in out
    assert "mine.ipynb: not in the release; left as it is" in out
    assert (folder / "mine.ipynb").read_text() == "{}"
    assert ADDED in by_id(nbformat.read(folder / NOTEBOOK, 4))
    with pytest.raises(SystemExit, match="no release at"):
        main(["--root", str(new_course.root), "update", str(folder), "--exchange",
              str(exchange), "--course", "another"])  # fmt: skip


def test_dlcourse_update_refuses_the_release_itself(new_course: Layout) -> None:
    with pytest.raises(SystemExit, match="is the release itself"):
        main(["--root", str(new_course.root), "update", str(new_course.release / NOTEBOOK)])


# ---------------------------------------------------------------- grading
@pytest.mark.slow
def test_a_submission_against_either_release_grades_correctly(new_course: Layout,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """old: answered against the old release, never updated; updated: the
    same, merged, with the new exercise answered. Both are graded by the new
    release: the old one loses only the new exercise's point."""
    layout = course(tmp_path / "course")
    shutil.rmtree(layout.root / "solutions")
    shutil.copytree(new_course.root / "solutions", layout.root / "solutions")
    shutil.rmtree(layout.release)
    shutil.copytree(new_course.release, layout.release)
    old = learner(tmp_path / "old")
    updated = learner(tmp_path / "updated")
    update(updated, layout.release)
    nb = nbformat.read(updated / NOTEBOOK, 4)
    by_id(nb)[ADDED].source = "def square(x):\n    return x * x"
    nbformat.write(nb, updated / NOTEBOOK)
    for student, folder in [("old", old), ("updated", updated)]:
        layout.submitted(student).mkdir(parents=True)
        shutil.copy2(folder / NOTEBOOK, layout.submitted(student) / NOTEBOOK)
    summary = grading.grade(layout.root, grading.Options(workers=1, unsafe=UNSAFE))
    assert summary.graded == ["old", "updated"], summary.problems
    full = sum(c.metadata["nbgrader"].get("points", 0) for c in by_id(nbformat.read(
        layout.release / NOTEBOOK, 4)).values())  # fmt: skip
    assert total(layout.root, "updated") == full
    assert total(layout.root, "old") == full - 1
    assert json.loads((layout.submitted("old") / NOTEBOOK).read_text())  # a submission untouched


@pytest.mark.slow
def test_a_class_receives_an_erratum_through_nbgraders_exchange(tmp_path: Path) -> None:
    """The README's steps with nbgrader's own exchange: the instructor
    releases, the learner fetches and answers, the instructor releases an
    erratum (`release_assignment --force`), the learner runs `dlcourse update`."""
    layout = course(tmp_path / "course")
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)  # nbgrader's exchange is writable by every user
    home = tmp_path / "home"
    home.mkdir()
    root = f"--Exchange.root={exchange}"
    released = nbgrader_cli.run(layout.root, "release_assignment", "ch01", root)
    assert released.returncode == 0, released.stdout
    fetched = nbgrader_cli.run(home, "fetch_assignment", "ch01", "--course=dlcourse", root)
    assert fetched.returncode == 0, fetched.stdout
    nbformat.write(answered(home / "ch01" / NOTEBOOK, {**ANSWERS, **ODD}), home / "ch01" / NOTEBOOK)
    mine = nbformat.read(home / "ch01" / NOTEBOOK, 4)
    erratum(layout.root)
    again = nbgrader_cli.run(layout.root, "release_assignment", "ch01", "--force", root)
    assert again.returncode == 0, again.stdout
    # the learner, who has no course folder: the course is named
    assert main(["update", str(home / "ch01"), "--exchange", str(exchange),
                 "--course", "dlcourse"]) == 1  # fmt: skip
    merged = by_id(nbformat.read(home / "ch01" / NOTEBOOK, 4))
    assert merged["numerical_derivative"].source == by_id(mine)["numerical_derivative"].source
    assert ADDED in merged and REMOVED not in merged


def test_dlcourse_update_of_one_notebook_from_a_release_folder(
    tmp_path: Path, new_course: Layout, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy2(OLD, folder / NOTEBOOK)  # nothing answered yet: nothing to conflict with
    (folder / "03_backpropagation.ipynb").write_text("{}")  # not asked about: left alone
    assert main(["--root", str(new_course.root), "update", str(folder / NOTEBOOK), "--release",
                 str(new_course.release)]) == 0  # fmt: skip
    assert "CONFLICT" not in capsys.readouterr().out
    assert (folder / "03_backpropagation.ipynb").read_text() == "{}"
    assert by_id(nbformat.read(folder / NOTEBOOK, 4)).keys() == by_id(
        nbformat.read(new_course.release / NOTEBOOK, 4)).keys()  # fmt: skip
    backups = list(tmp_path.glob(f"mine-update-*/{BACKUP}/*"))  # beside the folder, not in it
    assert [p.read_bytes() for p in backups] == [OLD.read_bytes()]
