"""Finding and checking submissions: ``submitted/<student>/ch01/*.ipynb``.

Every notebook is read, never modified; a missing, empty, oversized,
non-UTF-8, truncated or foreign notebook becomes a recorded problem for
that student, and the rest of the class is graded.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 5 * 1024 * 1024


class Refused(Exception):
    """A notebook that cannot be graded; the message says why."""


@dataclass(frozen=True)
class Notebook:
    name: str
    data: bytes
    digest: str


@dataclass
class Submission:
    student: str
    notebooks: dict[str, Notebook] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def expected_notebooks(release_folder: Path) -> dict[str, set[str]]:
    """Released notebook name -> the grade ids of its test cells."""
    found = {}
    for path in sorted(release_folder.glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        found[path.name] = {
            c.metadata["nbgrader"]["grade_id"]
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        }
    return found


def students(submitted: Path) -> tuple[list[str], list[str]]:
    if not submitted.exists():
        return [], []
    return sorted(p.name for p in submitted.iterdir() if p.is_dir()), []


def read_notebook(path: Path, grade_ids: set[str]) -> Notebook:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        raise Refused(f"{path.name} is empty")
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Refused(
            f"{path.name} is {len(data) / 2**20:.1f} MB, over the "
            f"{MAX_NOTEBOOK_BYTES // 2**20} MB limit"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(
            f"{path.name} is not UTF-8 text (byte {error.start}): not a notebook file"
        ) from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several kinds for broken JSON
        raise Refused(
            f"{path.name} is not a readable notebook ({type(error).__name__}: {str(error)[:120]})"
        ) from None
    ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])}
    if not grade_ids & ids:
        raise Refused(
            f"{path.name} has none of this notebook's exercises: a notebook of another assignment?"
        )
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return Notebook(path.name, nbformat.writes(nb).encode(), digest)


def read_submission(
    submitted: Path, student: str, assignment: str, expected: dict[str, set[str]]
) -> Submission:
    folder = submitted / student / assignment
    found = Submission(student)
    files = {p.name: p for p in folder.iterdir()} if folder.is_dir() else {}
    if not any(name.endswith(".ipynb") for name in files):
        found.problems.append(f"no notebooks in submitted/{student}/{assignment}/")
    for name in sorted(set(files) - set(expected) - {"timestamp.txt"}):
        found.problems.append(f"{name} is not part of {assignment}; ignored")
    for name, grade_ids in expected.items():
        if name not in files:
            found.problems.append(f"{name} is missing; its exercises score 0")
            continue
        found.digests[name] = hashlib.sha256(files[name].read_bytes()).hexdigest()
        try:
            found.notebooks[name] = read_notebook(files[name], grade_ids)
        except Refused as refused:
            found.problems.append(f"{refused}; its exercises score 0")
    return found


def collect(
    submitted: Path, downloads: Path, assignment: str, names: Iterable[str]
) -> tuple[list[str], list[str]]:
    """File LMS-style downloads under ``submitted/<student>/ch01/``.

    Accepts ``<student>.zip`` (or ``<student>_anything.zip``) holding the
    notebooks, and loose ``<student>_<notebook>.ipynb`` files.  An existing
    different submission is never overwritten.  Returns (filed, problems).
    """
    names = set(names)
    filed, problems = [], []

    def put(student: str, name: str, data: bytes, source: str) -> None:
        target = submitted / student / assignment / name
        if target.exists():
            if target.read_bytes() != data:
                problems.append(
                    f"{source}: submitted/{student}/{assignment}/{name} exists and "
                    "differs; left as it is (move it away to replace it)"
                )
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        filed.append(f"submitted/{student}/{assignment}/{name}")

    for path in sorted(Path(downloads).iterdir()):
        if path.suffix == ".zip":
            student = path.stem.split("_")[0]
            try:
                with zipfile.ZipFile(path) as archive:
                    members = [m for m in archive.namelist() if Path(m).name in names]
                    if not members:
                        problems.append(f"{path.name}: no notebook of {assignment} inside")
                    for member in members:
                        put(student, Path(member).name, archive.read(member), path.name)
            except zipfile.BadZipFile:
                problems.append(f"{path.name}: not a readable zip file")
        elif path.suffix == ".ipynb":
            match = next((n for n in names if path.name.endswith("_" + n)), None)
            if match is None:
                problems.append(
                    f"{path.name}: expected <student>_<notebook>.ipynb with a "
                    f"notebook of {assignment}"
                )
                continue
            put(path.name[: -len(match) - 1], match, path.read_bytes(), path.name)
        else:
            problems.append(f"{path.name}: neither a zip file nor a notebook; ignored")
    return filed, problems
