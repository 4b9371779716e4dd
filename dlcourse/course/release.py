"""From the notebook sources to what learners open.

``solutions/src/*.py`` (Jupytext percent files, read by :mod:`dlcourse.course.authoring`)
-> ``solutions/ch01/*.ipynb`` (instructor notebooks,
executed so that nbval can compare their outputs) -> ``notebooks/ch01/*.ipynb``
(the learner versions, made by ``nbgrader generate_assignment`` in a
temporary copy of the course) -> Appendix A and the index.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import nbformat

from dlcourse.course import appendix, authoring, nbgrader_cli
from dlcourse.course.layout import Layout
from dlcourse.course.semester import update


def build_solutions(root: Path, execute: bool = True) -> list[str]:
    """Write ``solutions/ch01/*.ipynb`` from their sources; the paths that changed."""
    changed = []
    folder = Layout.of(root).solutions
    for source in authoring.sources(root):
        nb = authoring.build(source.cells)
        if execute:
            folder.mkdir(parents=True, exist_ok=True)
            authoring.execute(nb, folder)
        path = folder / f"{source.name}.ipynb"
        if authoring.write(nb, path):
            changed.append(str(path.relative_to(root)))
    return changed


def generate(root: Path) -> dict[str, nbformat.NotebookNode]:
    """The learner notebooks nbgrader makes from ``solutions/ch01``, by file name."""
    with tempfile.TemporaryDirectory(prefix="dlcourse-release-") as tmp:
        made = nbgrader_cli.generate_assignment(Layout.of(root), Path(tmp) / "course")
        return {
            p.name: authoring.normalise(nbformat.read(p, as_version=4))
            for p in made.released_notebooks()
        }


def release(root: Path, answers: bool | None = None) -> list[str]:
    """Rebuild everything learners and instructors read from the sources:
    solution notebooks, learner notebooks, Appendix A and the index.
    ``answers`` releases Appendix A into the learners' workspace (True),
    withholds it in the instructor's folder (False) or leaves it where it is
    (None). Returns a line per path that changed, and per notebook of
    someone's that was kept (:func:`_replace`)."""
    lines = [f"updated {path}" for path in build_solutions(root)]
    layout = Layout.of(root)
    record = _released(layout)
    for name, nb in generate(root).items():
        path = layout.release / name
        text = nbformat.writes(nb) + "\n"
        if path.exists() and path.read_text() == text:
            continue
        lines += _replace(layout, path, nb, record.get(name))
        record[name] = _digest(path.read_text())
        layout.state.mkdir(exist_ok=True)
        layout.released_record.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    lines += [f"updated {path}" for path in appendix.build(root, answers)]
    return lines


def _released(layout: Layout) -> dict[str, str]:
    """The digest of each learner notebook as the last release wrote it."""
    try:
        record = json.loads(layout.released_record.read_text())
    except (OSError, ValueError):  # none yet (a fresh clone), or unreadable: trust nothing
        return {}
    return record if isinstance(record, dict) else {}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _replace(layout: Layout, path: Path, nb: nbformat.NotebookNode, digest: str | None
             ) -> list[str]:  # fmt: skip
    """Put the new release ``nb`` at ``path`` without losing what someone made there.

    A notebook as the last release wrote it is replaced.  So is one no
    release on this machine wrote that looks as released (a fresh clone's),
    with a copy kept in the course's state.  Any other is someone's (a
    learner worked in the workspace): its answers and edits are merged with
    the new release as ``dlcourse update`` merges an erratum, its earlier
    version kept beside it; one the merge refuses (not this course's) is
    moved aside whole.
    """
    shown = path.relative_to(layout.root)
    if not path.exists() or _digest(path.read_text()) == digest:
        authoring.write(nb, path)
        return [f"updated {shown}"]
    if digest is None and _looks_released(path):
        # a release no record tells of (a fresh clone's): replaced, a copy kept in case
        copy = layout.state / "before-release" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
        authoring.write(nb, path)
        return [f"updated {shown} (the earlier one: {copy.relative_to(layout.root)})"]
    with tempfile.TemporaryDirectory(prefix="dlcourse-release-") as tmp:
        authoring.write(nb, Path(tmp) / path.name)
        try:
            merged, kept = update.update(path, Path(tmp))
        except update.UpdateError as error:
            aside = path.with_name(f"{path.stem}.before-release{path.suffix}")
            n = 1
            while aside.exists():
                aside, n = path.with_name(f"{path.stem}.before-release-{n}{path.suffix}"), n + 1
            path.rename(aside)
            authoring.write(nb, path)
            return [f"updated {shown}; the notebook there was not this release's ({error}): "
                    f"moved to {aside.relative_to(layout.root)}"]  # fmt: skip
    return [
        f"updated {shown}, keeping the work in it (not what the last release wrote):",
        *(f"  {line}" for line in merged),
        f"  as it was, and what was set aside: {kept.relative_to(layout.root)}",
    ]


def _looks_released(path: Path) -> bool:
    try:
        return update.as_released(nbformat.read(path, as_version=4))
    except (OSError, ValueError, nbformat.ValidationError):  # not a notebook
        return False


def _without_outputs(nb: nbformat.NotebookNode) -> str:
    copy = nbformat.from_dict(nb)
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nbformat.writes(copy)


def stale(root: Path) -> list[str]:
    """Committed files that a fresh release would change (outputs of the
    solution notebooks aside, which nbval checks)."""
    out = []
    for source in authoring.sources(root):
        path = Layout.of(root).solutions / f"{source.name}.ipynb"
        built = authoring.build(source.cells)
        if not path.exists() or _without_outputs(nbformat.read(path, 4)) != _without_outputs(built):
            out.append(str(path.relative_to(root)))
    for name, nb in generate(root).items():
        path = Layout.of(root).release / name
        if not path.exists() or path.read_text() != nbformat.writes(nb) + "\n":
            out.append(str(path.relative_to(root)))
    out += appendix.stale(root)
    return out
