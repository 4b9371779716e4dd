"""Writing the course's notebooks from reviewable Python sources.

Each chapter notebook is described in ``solutions/src/<name>.py`` as a list
``CELLS`` of cells made with :func:`md`, :func:`code`, :func:`answer` and
:func:`tests`, and a dict ``EXPLANATIONS`` (grade id -> why the answer is
right) for Appendix A.  :func:`build` turns a source's cells into an nbgrader
instructor notebook (cell metadata, stable cell ids), :func:`execute` runs
it so that its outputs are stored for nbval, and :func:`normalise` strips
what changes from run to run, so a change to a notebook reads as a small diff.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from traitlets.config import Config

from dlcourse.course.layout import Layout

KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _nbgrader(
    grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float = 0
) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def md(text: str) -> NotebookNode:
    """A markdown cell (leading and trailing blank lines removed)."""
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(source: str, locked: str | None = None) -> NotebookNode:
    """A code cell; ``locked`` gives it a grade id and makes nbgrader restore it
    at grading time (for setup that tests rely on)."""
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    if locked:
        cell.metadata.update(_nbgrader(locked, grade=False, solution=False, locked=True))
    return cell


def answer(grade_id: str, source: str, *, gradient: bool = False) -> NotebookNode:
    """An exercise's answer cell: the solution sits between
    ``### BEGIN SOLUTION`` and ``### END SOLUTION``. ``gradient`` declares
    that the answer computes a gradient, by hand: grading marks an answer
    that hands the work to the library's engine or to finite differences for
    manual grading (see :mod:`dlcourse.course.grading.review`)."""
    if "### BEGIN SOLUTION" not in source or "### END SOLUTION" not in source:
        raise ValueError(f"answer {grade_id!r}: the source needs BEGIN/END SOLUTION markers.")
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.metadata.update(_nbgrader(grade_id, grade=False, solution=True, locked=False))
    if gradient:
        cell.metadata["dlcourse"] = {"gradient": True}
    return cell


def tests(grade_id: str, points: float, source: str) -> NotebookNode:
    """A locked, graded test cell worth ``points``; hidden tests sit between
    ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``."""
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.metadata.update(
        _nbgrader(grade_id, grade=True, solution=False, locked=True, points=points)
    )
    return cell


@dataclass
class Source:
    """One chapter notebook's source file, loaded."""

    name: str
    cells: list[NotebookNode]
    explanations: dict[str, str]
    module: ModuleType


def load_source(path: Path) -> Source:
    spec = importlib.util.spec_from_file_location(f"dlcourse_notebook_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the notebook source {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Source(path.stem, list(module.CELLS), dict(module.EXPLANATIONS), module)


def sources(root: Path) -> list[Source]:
    """Every chapter notebook source under ``root/solutions/src``, in order."""
    return [load_source(p) for p in sorted(Layout.of(root).sources.glob("[0-9]*.py"))]


def build(cells: list[NotebookNode]) -> NotebookNode:
    """A notebook of ``cells`` (an instructor notebook, for a source's cells),
    without outputs, with stable cell ids."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    seen: set[str] = set()
    for cell in cells:
        cell = nbformat.from_dict(cell)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        base = grade_id or "c" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
        cell_id, n = base, 1
        while cell_id in seen:
            n += 1
            cell_id = f"{base}-{n}"
        seen.add(cell_id)
        cell["id"] = cell_id
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def kernel_config() -> Config:
    """Configuration for the kernels the course's tools start: their TCP
    channels encrypted with CurveZMQ (which ipykernel's kernelspec offers), so
    the kernel has no plain-text warning to print on the terminal."""
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def execute(nb: NotebookNode, cwd: Path, timeout: int = 120) -> NotebookNode:
    """Run every cell in a fresh kernel (in ``cwd``), storing the outputs."""
    NotebookClient(
        nb,
        config=kernel_config(),
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        record_timing=False,
    ).execute()
    return normalise(nb)


def normalise(nb: NotebookNode) -> NotebookNode:
    """Drop widget ids and volatile metadata and join consecutive prints to
    the same stream, in place.  Execution counts stay:
    a run from the top numbers the cells the same way every time, and nbval
    needs them to tell an executed cell from one never run."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            merged: list[NotebookNode] = []
            for output in cell.outputs:
                # a widget's random model id; its text/plain fallback stays
                output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
                # how prints split into stream messages depends on timing
                last = merged[-1] if merged else None
                if (
                    last
                    and output.output_type == last.output_type == "stream"
                    and output.name == last.name
                ):
                    last.text += output.text
                else:
                    merged.append(output)
            cell.outputs = merged
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write(nb: NotebookNode, path: Path) -> bool:
    """Write ``nb`` to ``path``; True if the file changed."""
    text = nbformat.writes(nb) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True
