"""`dlcourse release` never loses what someone made in the learners' workspace:
a notebook as the course released it is replaced, anyone's work in a learner
notebook is merged with the new release (as `dlcourse update` merges an
erratum) and kept as it was beside the assignment's folder, and any other
file the release would replace or remove is moved aside whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from test_authoring import TWO, course, source_text

from dlcourse.course import appendix, release
from dlcourse.course.cli import main
from dlcourse.course.layout import APPENDIX, CONFIG, INDEX, Layout

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


def texts(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells]


def edit(path: Path, change: str) -> str:
    """A learner's edit of ``path``; the file as it is afterwards."""
    nb = nbformat.read(path, as_version=4)
    cell = {
        "answer": lambda: next(c for c in nb.cells if c.get("id") == "first"),
        "text": lambda: next(c for c in nb.cells if c.cell_type == "markdown"),
    }
    if change == "added cell":
        nb.cells.append(nbformat.v4.new_code_cell("trying = first()"))
    elif change == "run":
        code = next(c for c in nb.cells if c.cell_type == "code")
        code.outputs = [nbformat.v4.new_output("stream", text="what I saw\n")]
        code.execution_count = 1
    else:
        cell[change]().source += "\n# my note"
    nbformat.write(nb, path)
    return path.read_text()


def test_a_release_as_released_is_replaced_and_nothing_is_kept_aside(root: Path) -> None:
    for about in ("About two layers.", "About three layers."):
        revise(root, about)
        lines = release.release(root)
        (line,) = [x for x in lines if x.startswith(f"updated notebooks/ch01/{NAME}")]
        copy = line.removeprefix(f"updated notebooks/ch01/{NAME} (the earlier file: ")[:-1]
        assert copy.startswith(".dlcourse/ch01-before-release-") and (root / copy).is_file()
        assert any(about in text for text in texts(Layout.of(root).release / NAME))
    assert release.stale(root) == []
    assert sorted(p.name for p in (root / "notebooks").iterdir()) == [
        "appendix_a.ipynb",
        "ch01",
        "index.ipynb",
    ]


@pytest.mark.parametrize("change", ["answer", "text", "added cell", "run"])
def test_a_learners_work_is_kept_and_the_release_merged_in(
    root: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = Layout.of(root).release / NAME
    before = edit(notebook, change)
    revise(root, "About four layers.")
    main(["--root", str(root), "release"])
    out = capsys.readouterr().out
    assert f"updated notebooks/ch01/{NAME}, keeping the work in it" in out
    (kept,) = (root / "notebooks").glob("ch01-update-*")
    assert (kept / "backup" / NAME).read_text() == before
    assert f"as it was, and what was set aside: notebooks/{kept.name}" in out
    merged = nbformat.read(notebook, as_version=4)
    if change == "answer":
        assert "# my note" in next(c for c in merged.cells if c.get("id") == "first").source
    elif change == "added cell":
        assert "trying = first()" in [c.source for c in merged.cells]
    # the release's new text is in, and so is the learner's edit of the old (in the notebook
    # or, where both changed one cell, set aside beside it)
    assert any("About four layers." in c.source for c in merged.cells)
    everything = nbformat.writes(merged) + "".join(p.read_text() for p in kept.rglob("*.ipynb"))
    assert "# my note" in everything or change in ("added cell", "run")


def test_an_unchanged_cell_of_a_merged_notebook_takes_the_new_release(root: Path) -> None:
    notebook = Layout.of(root).release / NAME
    edit(notebook, "answer")
    revise(root, "About five layers.")
    release.release(root)
    revise(root, "About six layers.")
    release.release(root)  # merged again: the learner's answer is still there
    merged = texts(notebook)
    assert "About six layers." in "".join(merged) and "About five layers." not in "".join(merged)
    assert any("# my note" in text for text in merged)


@pytest.mark.parametrize(
    "content", [b"not a notebook", b'{"cells": "none of these"}', b"\xff\xfe not UTF-8"]
)
def test_a_file_that_is_no_notebook_of_the_release_is_moved_aside_whole(
    root: Path, content: bytes
) -> None:
    notebook = Layout.of(root).release / NAME
    notebook.write_bytes(content)
    revise(root, "About seven layers.")
    line = next(line for line in release.release(root) if f"notebooks/ch01/{NAME}" in line)
    (aside,) = (root / "notebooks").glob(f"ch01-before-release-*/{NAME}")
    assert f"is kept as {aside.relative_to(root)}" in line
    assert aside.read_bytes() == content
    assert any("About seven layers." in text for text in texts(notebook))
    assert Layout.of(root).released_notebooks() == [notebook]


def test_a_folder_where_a_notebook_goes_is_moved_aside(root: Path) -> None:
    notebook = Layout.of(root).release / NAME
    notebook.unlink()
    (notebook / "mine.txt").parent.mkdir()
    (notebook / "mine.txt").write_text("mine")
    revise(root, "About ten layers.")
    line = next(x for x in release.release(root) if f"notebooks/ch01/{NAME}" in x)
    assert "(not a file) is kept as" in line and notebook.is_file()
    (aside,) = (root / "notebooks").glob(f"ch01-before-release-*/{NAME}/mine.txt")
    assert aside.read_text() == "mine"


def test_a_link_in_the_workspace_is_not_written_through(root: Path, tmp_path: Path) -> None:
    notebook = Layout.of(root).release / NAME
    elsewhere = tmp_path / "elsewhere.ipynb"
    elsewhere.write_bytes(notebook.read_bytes())
    notebook.unlink()
    notebook.symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    revise(root, "About eight layers.")
    line = next(line for line in release.release(root) if f"notebooks/ch01/{NAME}" in line)
    assert "a symbolic link, which is not followed" in line
    assert elsewhere.read_bytes() == before and not notebook.is_symlink()
    (aside,) = (root / "notebooks").glob(f"ch01-before-release-*/{NAME}")
    assert aside.is_symlink()


def test_the_index_and_appendix_a_someone_annotated_are_kept(root: Path) -> None:
    for page in (INDEX, APPENDIX):
        edit(root / page, "text")
    nb = nbformat.read(Layout.of(root).release / NAME, as_version=4)
    nb.cells[0].metadata["tags"] = ["mine"]  # cell metadata a learner set (tags, hidden input)
    nbformat.write(nb, Layout.of(root).release / NAME)
    revise(root, "About nine layers.")
    lines = release.release(root)
    kept = sorted((root / "notebooks").glob("ch01-before-release-*/*.ipynb"))
    assert [p.name for p in kept] == ["appendix_a.ipynb", "index.ipynb"]
    assert all("# my note" in p.read_text() for p in kept)
    assert all(any(f"updated {page}; the file there" in line for line in lines)
               for page in (INDEX, APPENDIX))  # fmt: skip
    assert any(f"updated notebooks/ch01/{NAME}, keeping the work in it" in x for x in lines)
    # withholding Appendix A removes it from the workspace: an annotated one goes to the state
    edit(root / APPENDIX, "text")
    lines = appendix.build(root, answers=False)
    (withheld,) = Layout.of(root).state.glob("notebooks-before-release-*/appendix_a.ipynb")
    assert "# my note" in withheld.read_text() and not (root / APPENDIX).exists()
    assert f"{APPENDIX} (removed; changed since it was released, it is kept as " in lines[-1]



def test_withholding_appendix_a_moves_a_link_there_and_leaves_its_target(
    root: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "mine.ipynb"
    elsewhere.write_bytes((root / APPENDIX).read_bytes())
    (root / APPENDIX).unlink()
    (root / APPENDIX).symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    lines = appendix.build(root, answers=False)
    assert f"{APPENDIX} (removed; changed since it was released, it is kept as " in lines[-1]
    (moved,) = Layout.of(root).state.glob("notebooks-before-release-*/appendix_a.ipynb")
    assert moved.is_symlink() and elsewhere.read_bytes() == before
    assert not (root / APPENDIX).exists() and not (root / APPENDIX).is_symlink()


def test_a_merge_refused_says_why_without_claiming_nothing_changed(root: Path) -> None:
    notebook = Layout.of(root).release / NAME
    notebook.write_text("{not json")
    revise(root, "About eleven layers.")
    line = next(x for x in release.release(root) if f"notebooks/ch01/{NAME}" in x)
    assert "cannot be read as a notebook" in line and "nothing was changed" not in line
