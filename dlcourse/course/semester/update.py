"""Errata without losing work: a new release merged into a learner's copy.

Cells are matched by nbgrader's ``grade_id`` (cells nbgrader does not mark,
by their cell id) and the merged notebook follows the new release's order:

* an **answer** (a solution cell) is kept byte for byte, with the new
  release's nbgrader metadata; an answer never started (its source still the
  starting code nbgrader checksummed) takes the new starting code, and an
  answer whose starting code the release changed is a *conflict*: kept as
  written, the new starting code set aside and reported;
* **locked cells and text** (tests, set-up code, markdown) take the new
  release; a learner's edit of one is a conflict, set aside and reported;
* a cell nbgrader does not mark and the learner never edited (its id is
  still the one made from its source, :func:`authoring.as_built`) takes the
  new release, or goes if the release dropped it; one the learner changed (a
  code cell they experimented in) is kept, with the new release's version
  set aside when the release changed it too; cells the learner added stay
  where they were;
* an **added exercise** appears; a **removed** one is set aside and reported.

Nothing is lost: the learner's notebooks are copied into a backup folder
before anything is written, each notebook is replaced whole (written to a
temporary file, then renamed over it), and everything set aside goes into a
notebook of its own next to the backup. A notebook that shares too few
exercises with the release (another course's, or another assignment's) is
refused, and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.utils import compute_checksum

from dlcourse.course import authoring

ASIDE = "set-aside"  # in the update's folder: what was set aside, a notebook per notebook
BACKUP = "backup"  # in the update's folder: the learner's notebooks as they were


class UpdateError(ValueError):
    """An update that cannot be made (nothing was written)."""


@dataclass
class Report:
    """What an update did to one notebook, a line per cell concerned."""

    notebook: str
    added: list[str] = field(default_factory=list)  # exercises new in this release
    removed: list[str] = field(default_factory=list)  # exercises the release no longer has
    conflicts: list[str] = field(default_factory=list)
    updated: int = 0  # locked cells and text that took the new release's version
    unmatched: int = 0  # cells the release does not have, kept where they were

    def lines(self) -> list[str]:
        out = [f"{self.notebook}: {self.updated} cell(s) of text and locked code updated"]
        if self.unmatched:
            out.append(f"{self.notebook}: {self.unmatched} cell(s) the release does not have "
                       "(yours, or ones it dropped) kept where they were")  # fmt: skip
        out += [f"{self.notebook}: new exercise {g}" for g in self.added]
        out += [f"{self.notebook}: exercise {g} is no longer in the release; your answer is set "
                "aside" for g in self.removed]  # fmt: skip
        out += [f"{self.notebook}: CONFLICT {c}" for c in self.conflicts]
        return out


def _grade_id(cell: NotebookNode) -> str | None:
    info = cell.get("metadata", {}).get("nbgrader")
    grade_id = info.get("grade_id") if isinstance(info, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def _is_answer(cell: NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def _untouched(cell: NotebookNode) -> bool:
    """Whether a cell nbgrader marked is as released (its checksum holds)."""
    recorded = cell.metadata["nbgrader"].get("checksum")
    try:
        return recorded is not None and compute_checksum(cell) == recorded
    except (AttributeError, KeyError, TypeError, ValueError):  # metadata a learner broke
        return False


RELEASED_METADATA = {"nbgrader", "deletable", "editable", "dlcourse"}  # what a release sets


def as_released(nb: NotebookNode) -> bool:
    """Whether a notebook's cells are as the course released them: every cell
    nbgrader marked as checksummed, every other as built (its id made from
    its source: a learner's own cell has another), no metadata but the
    release's (no tags, hidden input, attachments), and no cell run.  Cells
    moved or deleted, and the notebook's own metadata, it cannot tell."""
    return all(
        (_untouched(cell) if "nbgrader" in cell.metadata else authoring.as_built(cell))
        and cell.cell_type in ("markdown", "code")
        and not cell.get("attachments")
        and set(cell.metadata) <= (RELEASED_METADATA if "nbgrader" in cell.metadata else set())
        and (cell.cell_type != "code" or not (cell.outputs or cell.execution_count))
        for cell in nb.cells
    )


def _key(cell: NotebookNode, seen: set[str]) -> str | None:
    """The cell's key for matching: its grade id, else its cell id (a key seen
    already, as in a copied cell, matches nothing)."""
    grade_id = _grade_id(cell)
    key = f"grade:{grade_id}" if grade_id else (f"id:{cell['id']}" if cell.get("id") else None)
    if key is None or key in seen:
        return None
    seen.add(key)
    return key


def _same_course(mine: NotebookNode, new: NotebookNode, name: str) -> None:
    """Refuse a notebook that is not an earlier release of ``new``: at least
    half of its exercises and tests must be in the new release."""
    ids = {g for g in map(_grade_id, mine.cells) if g}
    shared = ids & {g for g in map(_grade_id, new.cells) if g}
    if not ids or len(shared) * 2 < len(ids):
        raise UpdateError(
            f"{name}: shares {len(shared)} of its {len(ids)} graded cells with the new release; "
            "it is not this course's notebook (another course, another assignment, or not an "
            "nbgrader notebook); nothing was changed"
        )


def _with_metadata(cell: NotebookNode, released: NotebookNode) -> NotebookNode:
    kept = nbformat.from_dict(cell)
    kept.metadata["nbgrader"] = dict(released.metadata["nbgrader"])
    return kept


def merge(mine: NotebookNode, new: NotebookNode, name: str
          ) -> tuple[NotebookNode, list[NotebookNode], Report]:  # fmt: skip
    """``mine`` (a learner's copy) merged with ``new`` (a release): the merged
    notebook, the cells set aside, and the report. ``mine`` is not changed."""
    _same_course(mine, new, name)
    report, aside = Report(name), []
    seen: set[str] = set()
    mine_by_key: dict[str, NotebookNode] = {}
    after: dict[str | None, list[NotebookNode]] = {}  # anchor key -> learner cells after it
    anchor: str | None = None
    new_keys = set()
    new_seen: set[str] = set()
    for cell in new.cells:
        new_keys.add(_key(cell, new_seen))
    for cell in mine.cells:
        key = _key(cell, seen)
        if key is not None and key in new_keys:
            mine_by_key[key], anchor = cell, key
        elif key is not None and key.startswith("grade:"):
            grade_id = key.removeprefix("grade:")
            if _is_answer(cell):
                report.removed.append(grade_id)
                aside.append(cell)
            elif not _untouched(cell):  # a locked cell the release dropped, edited: kept aside
                report.conflicts.append(f"{grade_id}: you changed this locked cell and the "
                                        "release removed it; your version is set aside")
                aside.append(cell)
            else:  # a locked cell the release dropped, as released
                report.updated += 1
        elif "nbgrader" not in cell.metadata and authoring.as_built(cell):
            report.updated += 1  # an earlier release's text that this one changed or dropped
        else:  # a cell the learner added (or copied): it stays, without nbgrader's metadata
            extra = nbformat.from_dict(cell)
            extra.get("metadata", {}).pop("nbgrader", None)
            after.setdefault(anchor, []).append(extra)
            report.unmatched += 1
    cells = list(after.get(None, []))
    new_seen.clear()
    for released in new.cells:
        key = _key(released, new_seen)
        cells.append(_merge_cell(mine_by_key.get(key) if key else None, released, report, aside))
        cells += after.get(key, [])
    merged = nbformat.from_dict(new)
    merged.cells = _unique_ids(cells)
    merged.metadata = nbformat.from_dict({**mine.metadata, **new.metadata})
    return merged, _unique_ids(aside), report


def _unique_ids(cells: list[NotebookNode]) -> list[NotebookNode]:
    """The cells, a repeated cell id made unique (nbformat refuses repeats)."""
    out, seen = [], set()
    for cell in cells:
        copy = nbformat.from_dict(cell)
        base, n = copy.get("id") or "cell", 1
        while copy.get("id") in seen or not copy.get("id"):
            copy["id"], n = f"{base}-{n}", n + 1
        seen.add(copy["id"])
        out.append(copy)
    return out


def _merge_cell(cell: NotebookNode | None, released: NotebookNode, report: Report,
                aside: list[NotebookNode]) -> NotebookNode:  # fmt: skip
    grade_id = _grade_id(released)
    if cell is None:
        if grade_id and _is_answer(released):
            report.added.append(grade_id)
        return nbformat.from_dict(released)
    if grade_id and _is_answer(released):
        if _untouched(cell):  # never started: the new starting code
            return nbformat.from_dict(released)
        if cell.metadata["nbgrader"].get("checksum") != released.metadata["nbgrader"].get(
            "checksum"
        ):
            report.conflicts.append(f"{grade_id}: the release changed this exercise's starting "
                                    "code; your answer is kept, the new starting code is set "
                                    "aside")  # fmt: skip
            aside.append(released)
        return _with_metadata(cell, released)
    if grade_id:  # locked: the release's, and an edit of it set aside
        if not _untouched(cell):
            report.conflicts.append(f"{grade_id}: you changed this locked cell; the release's "
                                    "version replaces it, yours is set aside")  # fmt: skip
            aside.append(cell)
        elif cell.source != released.source:
            report.updated += 1
        return nbformat.from_dict(released)
    if cell.source == released.source:
        return nbformat.from_dict(cell)  # as the learner ran it
    if authoring.as_built(cell):  # the earlier release's text, never edited: the new one
        report.updated += 1
        return nbformat.from_dict(released)
    if released.cell_type == "markdown" or cell.cell_type != released.cell_type:
        report.updated += 1
        aside.append(cell)  # text takes the release; an edit of it is not lost
        return nbformat.from_dict(released)
    report.conflicts.append(f"cell {released.get('id')}: you changed this cell and the release "
                            "has another version; yours is kept, the release's is set aside")
    aside.append(released)
    return nbformat.from_dict(cell)


# ------------------------------------------------------------- the files
def outbound(exchange: Path, course_id: str, assignment: str) -> Path:
    """Where nbgrader's exchange keeps a released assignment (``nbgrader
    release_assignment`` puts it there, ``fetch_assignment`` copies it)."""
    return exchange / course_id / "outbound" / assignment


def release_folder(folder: Path) -> Path:
    """``folder``, if it holds a release's notebooks."""
    if not folder.is_dir() or not any(folder.glob("*.ipynb")):
        raise UpdateError(
            f"no release at {folder}: give the folder of the new release's notebooks, or the "
            "exchange's root (its <course>/outbound/<assignment>/ must hold the notebooks)"
        )
    return folder


def _write_whole(nb: NotebookNode, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(nbformat.writes(nb) + "\n")
    os.replace(tmp, path)


def new_folder_beside(target: Path, what: str) -> Path:
    """A new folder next to ``target``, named for ``what`` it keeps and when:
    ``<target>-<what>-<UTC time>``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        folder = target.parent / f"{target.name}-{what}-{stamp}{f'-{n}' if n else ''}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise UpdateError(f"cannot make a folder for the backup next to {target}")


def update(target: Path, release: Path) -> tuple[list[str], Path]:
    """Merge the release in ``release`` (a folder of notebooks) into the
    learner's ``target``: a notebook, or an assignment folder as
    ``nbgrader fetch_assignment`` leaves it. Returns the report's lines and
    the folder that holds the backup and the cells set aside. Every notebook
    is merged before any is written; a refused one stops the update with
    nothing written."""
    new = {p.name: nbformat.read(p, as_version=4) for p in sorted(release.glob("*.ipynb"))}
    if target.is_dir():
        folder, names = target, sorted(new)
    elif target.is_file() and target.name in new:
        folder, names = target.parent, [target.name]
    else:
        raise UpdateError(
            f"{target}: not a notebook of the release ({', '.join(new)}) nor a folder of them"
        )
    planned, lines = {}, []
    for name in names:
        path = folder / name
        if not path.exists():
            planned[name] = (new[name], [])
            lines.append(f"{name}: new notebook in this release")
            continue
        try:
            mine = nbformat.read(path, as_version=4)
        except (OSError, ValueError, nbformat.ValidationError) as error:
            raise UpdateError(f"{path}: cannot be read as a notebook ({error}); nothing was "
                              "changed") from None  # fmt: skip
        merged, aside, report = merge(mine, new[name], name)
        planned[name] = (merged, aside)
        lines += report.lines()
    if target.is_dir():
        lines += [f"{p.name}: not in the release; left as it is"
                  for p in sorted(folder.glob("*.ipynb")) if p.name not in new]  # fmt: skip
    kept = new_folder_beside(folder, "update")  # never in what they submit
    (kept / BACKUP).mkdir()
    (kept / ASIDE).mkdir()
    for name in planned:
        if (folder / name).exists():
            shutil.copy2(folder / name, kept / BACKUP / name)
    for name, (merged, aside) in planned.items():
        if aside:
            shelf = nbformat.v4.new_notebook(cells=aside, metadata=merged.metadata)
            _write_whole(shelf, kept / ASIDE / name)
        _write_whole(merged, folder / name)
    (kept / "report.txt").write_text("\n".join(lines) + "\n")
    return lines, kept
