"""From the notebook sources to what learners open.

``solutions/src/*.py`` (Jupytext percent files, read by :mod:`dlcourse.course.authoring`)
-> ``solutions/ch01/*.ipynb`` (instructor notebooks,
executed so that nbval can compare their outputs) -> ``notebooks/ch01/*.ipynb``
(the learner versions, made by ``nbgrader generate_assignment`` in a
temporary copy of the course) -> Appendix A and the index.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from dlcourse.course import appendix, authoring, nbgrader_cli, placing
from dlcourse.course.layout import Layout


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
    (None). Returns a line per path that changed; a notebook someone worked
    in is never overwritten (:mod:`dlcourse.course.placing`)."""
    lines = [f"updated {path}" for path in build_solutions(root)]
    layout = Layout.of(root)
    for name, nb in generate(root).items():
        lines += placing.put(layout, layout.release / name, nb, merge=True)
    return lines + appendix.build(root, answers)


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
