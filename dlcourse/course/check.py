"""The learner's self-check: run a notebook and say, exercise by exercise,
what passes and what fails, before handing it in.

Only the visible tests can run here: the released notebook has no hidden
tests (nbgrader puts them back when the instructor grades), so the table says
that its points are those of the visible tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.utils import get_username

from dlcourse.course import authoring
from dlcourse.course.layout import CONFIG, Layout
from dlcourse.course.semester import deadlines, policy


@dataclass
class Row:
    exercise: str
    points: float
    passed: bool
    message: str


class Unreadable(ValueError):
    """A file that is not a notebook."""


def check(path: Path, timeout: int = 120) -> list[Row]:
    """Run a copy of the notebook at ``path`` (the file is not changed) and
    return one row per graded test cell, in order."""
    try:
        nb = nbformat.read(path, as_version=4)
    except (ValueError, nbformat.ValidationError) as error:
        raise Unreadable(
            f"{path} cannot be read as a notebook ({error}). If JupyterLab still has it open, "
            "save it again there; else start again from the release's copy."
        ) from None
    client = NotebookClient(
        nb,
        config=authoring.kernel_config(),
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()
    rows = []
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader", {})
        if not grading.get("grade") or cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        if errors and errors[0].ename == "NotImplementedError" and not errors[0].evalue:
            message = (
                "NotImplementedError: not answered yet (replace `raise NotImplementedError()` in "
                "its answer cell with your code)"
            )
        elif errors:
            message = f"{errors[0].ename}: {errors[0].evalue}".strip()
        elif stderr:
            message = "wrote to stderr (the grader counts that as a failure): " + stderr[0].text
        else:
            message = ""
        name = grading["grade_id"].removeprefix("test_")
        rows.append(Row(name, float(grading.get("points", 0)), not message, message))
    return rows


NOTE = (
    "Visible tests only: when your instructor grades, hidden tests on other inputs run too,\n"
    "and an exercise that passes here but fails them loses its points."
)


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table with a total, saying that only the
    visible tests ran."""
    width = max([len(r.exercise) for r in rows] + [8])
    lines = [f"{'exercise':<{width}}  points  visible tests  message"]
    for r in rows:
        first = r.message.splitlines()[0] if r.message else ""
        verdict = "pass" if r.passed else "FAIL"
        lines.append(f"{r.exercise:<{width}}  {r.points:>6g}  {verdict:<13}  {first}")
    earned = sum(r.points for r in rows if r.passed)
    total = sum(r.points for r in rows)
    lines.append(f"{'total':<{width}}  {earned:>6g}  of {total:g}, if the hidden tests pass too")
    lines.append(NOTE)
    return "\n".join(lines)


def deadline(notebook: Path, now: dt.datetime | None = None, student: str | None = None) -> str:
    """The deadline of the course ``notebook`` is in, for ``student`` (default:
    this user, as nbgrader's exchange names them), and the time left; "" when
    the course sets none. The course is the nearest folder above the notebook
    with nbgrader_config.py; in a student's server of the course's hub, where
    there is none with a policy.toml (the notebooks were fetched into their
    home), it is the hub's deadline service, which answers for this hub user
    only. A policy
    that cannot be read raises :class:`policy.PolicyError`, a service that
    cannot answer :class:`deadlines.Unavailable`."""
    folder = next((p for p in Path(notebook).resolve().parents if (p / CONFIG).exists()), None)
    local = Layout.of(folder).policy if folder else None
    if local is not None and (local.exists() or not deadlines.in_hub_session()):
        read = policy.read(local)
        student = student or get_username()
    elif deadlines.in_hub_session():
        student, read = deadlines.ask()
    else:
        return ""
    if read is None:
        return ""
    now = now or dt.datetime.now(dt.timezone.utc)
    return "Deadline: " + read.time_left(student, now)
