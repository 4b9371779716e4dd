"""`dlcourse release` never loses what someone made in the learners' workspace:
a notebook as the last release wrote it is replaced, anyone's work is merged
with the new release (as `dlcourse update` merges an erratum) and kept as it
was beside it, and what is not a notebook of the release is moved aside."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from test_authoring import TWO, course, source_text

from dlcourse.course import release
from dlcourse.course.cli import main
from dlcourse.course.layout import CONFIG, Layout

ROOT = Path(__file__).resolve().parents[1]
NAME = "01_first.ipynb"


def revise(root: Path, about: str) -> None:
    """The author changes the section's text in the source."""
    source = Layout.of(root).sources / "01_first.py"
    source.write_text(source_text("1.1", TWO).replace("About a layer.", about))


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = course(tmp_path_factory.mktemp("course"), {"01_first.py": source_text("1.1", TWO)})
    shutil.copy(ROOT / CONFIG, root / CONFIG)
    release.release(root)
    return root


@pytest.fixture
def root(released: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "course"
    shutil.copytree(released, copy)
    return copy


def cells(path: Path) -> dict[str, nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    return {c.metadata.get("nbgrader", {}).get("grade_id", c.id): c for c in nb.cells}


def test_a_release_as_the_last_one_wrote_it_is_replaced(root: Path) -> None:
    revise(root, "About two layers.")
    assert release.release(root)[:1] == ["updated solutions/ch01/01_first.ipynb"]
    notebook = Layout.of(root).release / NAME
    assert any("About two layers." in c.source for c in cells(notebook).values())
    assert not list(notebook.parent.parent.glob("ch01-update-*"))


def test_a_learners_answers_and_runs_are_kept_and_the_release_merged_in(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = Layout.of(root).release / NAME
    nb = nbformat.read(notebook, as_version=4)
    mine = "def first():\n    return 1  # my answer"
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "first":
            cell.source = mine
    nb.cells.append(nbformat.v4.new_code_cell("trying = first()"))
    nbformat.write(nb, notebook)
    before = notebook.read_text()
    revise(root, "About three layers.")
    assert main(["--root", str(root), "release"]) == 0
    out = capsys.readouterr().out
    assert f"updated notebooks/ch01/{NAME}, keeping the work in it" in out
    merged = cells(notebook)
    assert merged["first"].source == mine
    assert any("About three layers." in c.source for c in merged.values())
    assert any(c.source == "trying = first()" for c in merged.values())
    (kept,) = notebook.parent.parent.glob("ch01-update-*")
    assert (kept / "backup" / NAME).read_text() == before
    assert f"as it was, and what was set aside: notebooks/{kept.name}" in out


def test_without_a_record_a_release_is_replaced_and_a_copy_kept(root: Path) -> None:
    # a fresh clone: the committed release, and no record of which release wrote it
    Layout.of(root).released_record.unlink()
    notebook = Layout.of(root).release / NAME
    before = notebook.read_text()
    revise(root, "About four layers.")
    lines = release.release(root)
    assert f"updated notebooks/ch01/{NAME} (the earlier one: .dlcourse/before-release/{NAME})" in (
        lines
    )
    assert (Layout.of(root).state / "before-release" / NAME).read_text() == before
    assert any("About four layers." in c.source for c in cells(notebook).values())
    # ... but a notebook someone ran is theirs, record or not
    Layout.of(root).released_record.unlink()
    nb = nbformat.read(notebook, as_version=4)
    run = next(c for c in nb.cells if c.cell_type == "code")
    run.outputs = [nbformat.v4.new_output("stream", text="what I saw\n")]
    run.execution_count = 1
    nbformat.write(nb, notebook)
    revise(root, "About five layers.")
    assert any("keeping the work in it" in line for line in release.release(root))
    (kept,) = notebook.parent.parent.glob("ch01-update-*")
    assert "what I saw" in (kept / "backup" / NAME).read_text()


@pytest.mark.parametrize("text", ["not a notebook", '{"cells": "none of these"}'])
def test_a_file_that_is_no_notebook_of_the_release_is_moved_aside_whole(
    root: Path, text: str
) -> None:
    notebook = Layout.of(root).release / NAME
    notebook.write_text(text)
    revise(root, "About six layers.")
    lines = release.release(root)
    aside = notebook.with_name("01_first.before-release.ipynb")
    assert any(f"moved to notebooks/ch01/{aside.name}" in line for line in lines)
    assert aside.read_text() == text
    assert any("About six layers." in c.source for c in cells(notebook).values())
