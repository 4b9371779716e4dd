"""Generated notebooks put in place without losing anyone's work.

`dlcourse release` writes the learner notebooks, Appendix A and the index
into the learners' workspace, where a learner may have worked (the README's
``./course lab`` opens it).  A notebook there is replaced only while it is as
the course released it (:func:`dlcourse.course.semester.update.as_released`),
and a copy of it is kept in the course's state (the order of its cells is
one thing that test cannot see).
Anyone else's is kept: a learner notebook gets the new release merged in, as
``dlcourse update`` merges an erratum (answers kept, the notebook as it was
backed up beside the assignment's folder); any other file, or one the merge
refuses, is moved aside whole.  What is moved aside from the workspace stays
in it, beside the assignment's folder (never in it: that folder is what the
exchange hands out); the instructor's files, and Appendix A when it is
withheld, go to the course's state.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from dlcourse.course import authoring
from dlcourse.course.layout import Layout
from dlcourse.course.semester import update

ASIDE = "before-release"


def put(layout: Layout, path: Path, nb: nbformat.NotebookNode, *, merge: bool) -> list[str]:
    """Write ``nb`` at ``path``; a line per thing done, none if it was there.
    ``merge``: ``path`` is a learner notebook, into which someone's work is merged."""
    shown = path.relative_to(layout.root)
    text = nbformat.writes(nb) + "\n"
    if path.is_symlink():
        why = "a symbolic link, which is not followed"
    elif not path.exists():
        authoring.write(nb, path)
        return [f"updated {shown}"]
    elif not path.is_file():
        why = "not a file"
    elif path.read_bytes() == text.encode():
        return []
    elif _as_released(path):  # a copy in the state all the same: cells moved or deleted
        copy = _copy_to_state(layout, path)
        authoring.write(nb, path)
        return [f"updated {shown} (the earlier file: {copy})"]
    elif merge:
        with tempfile.TemporaryDirectory(prefix="dlcourse-release-") as tmp:
            authoring.write(nb, Path(tmp) / path.name)
            try:
                lines, kept = update.update(path, Path(tmp))
            except update.UpdateError as error:  # said for `dlcourse update`, which writes nothing
                why = str(error).removesuffix("; nothing was changed")
            else:
                return [
                    f"updated {shown}, keeping the work in it (it was not as released):",
                    *(f"  {line}" for line in lines),
                    f"  as it was, and what was set aside: {kept.relative_to(layout.root)}",
                ]
    else:
        why = "changed since it was released"
    aside = _move_aside(layout, path, keep_in_workspace=True)
    authoring.write(nb, path)
    return [f"updated {shown}; the file there ({why}) is kept as {aside}"]


def remove(layout: Layout, path: Path) -> list[str]:
    """Remove a generated notebook (Appendix A's other copy); one someone
    changed is moved to the course's state, out of the learners' workspace."""
    shown = path.relative_to(layout.root)
    if not path.exists() and not path.is_symlink():
        return []
    if not path.is_symlink() and _as_released(path):
        path.unlink()
        return [f"{shown} (removed)"]
    return [f"{shown} (removed; changed since it was released, it is kept as "
            f"{_move_aside(layout, path, keep_in_workspace=False)})"]  # fmt: skip


def _as_released(path: Path) -> bool:
    try:
        return update.as_released(nbformat.read(path, as_version=4))
    except (OSError, ValueError, nbformat.ValidationError):  # not a notebook
        return False


def _state_folder(layout: Layout, path: Path) -> Path:
    """A new folder in the course's state for ``path``, named for its folder."""
    layout.state.mkdir(exist_ok=True)
    return update.new_folder_beside(layout.state / path.parent.name, ASIDE)


def _copy_to_state(layout: Layout, path: Path) -> Path:
    copy = _state_folder(layout, path) / path.name
    shutil.copy2(path, copy)
    return copy.relative_to(layout.root)


def _move_aside(layout: Layout, path: Path, keep_in_workspace: bool) -> Path:
    """Move ``path`` (a link itself, not what it points to) into a new folder;
    its path relative to the course."""
    if keep_in_workspace and path.is_relative_to(layout.workspace):
        folder = update.new_folder_beside(layout.release, ASIDE)
    else:
        folder = _state_folder(layout, path)
    path.rename(folder / path.name)
    return (folder / path.name).relative_to(layout.root)
