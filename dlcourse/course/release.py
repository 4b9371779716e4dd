"""From the notebook sources to what learners open.

``solutions/src/*.py`` -> ``solutions/ch01/*.ipynb`` (instructor notebooks,
executed so that nbval can compare their outputs) -> ``notebooks/ch01/*.ipynb``
(the learner versions, made by ``nbgrader generate_assignment`` in a
temporary copy of the course) -> Appendix A and the index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from dlcourse.course import appendix, authoring
from dlcourse.course.authoring import ASSIGNMENT


class ReleaseError(RuntimeError):
    """nbgrader could not generate the learner notebooks."""


def tool_environment() -> dict[str, str]:
    """The environment for running nbgrader: this Python's bin/ first on PATH
    (nbgrader runs ``alembic`` as a command)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    return env


def build_solutions(root: Path, execute: bool = True) -> list[str]:
    """Write ``solutions/ch01/*.ipynb`` from their sources; the paths that changed."""
    changed = []
    folder = root / "solutions" / ASSIGNMENT
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
        course = Path(tmp)
        shutil.copy2(root / "nbgrader_config.py", course)
        shutil.copytree(root / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
        result = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force"],
            cwd=course,
            env=tool_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        released = sorted((course / "notebooks" / ASSIGNMENT).glob("*.ipynb"))
        if result.returncode != 0 or not released:
            raise ReleaseError(
                "nbgrader generate_assignment failed:\n" + result.stdout + result.stderr
            )
        return {p.name: authoring.normalise(nbformat.read(p, as_version=4)) for p in released}


def release(root: Path) -> list[str]:
    """Rebuild everything learners and instructors read from the sources:
    solution notebooks, learner notebooks, Appendix A and the index.
    Returns the paths that changed."""
    changed = build_solutions(root)
    for name, nb in generate(root).items():
        path = root / "notebooks" / ASSIGNMENT / name
        if authoring.write(nb, path):
            changed.append(str(path.relative_to(root)))
    changed += appendix.build(root)
    return changed


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
        path = root / "solutions" / ASSIGNMENT / f"{source.name}.ipynb"
        built = authoring.build(source.cells)
        if not path.exists() or _without_outputs(nbformat.read(path, 4)) != _without_outputs(built):
            out.append(str(path.relative_to(root)))
    for name, nb in generate(root).items():
        path = root / "notebooks" / ASSIGNMENT / name
        if not path.exists() or path.read_text() != nbformat.writes(nb) + "\n":
            out.append(str(path.relative_to(root)))
    out += appendix.stale(root)
    return out
