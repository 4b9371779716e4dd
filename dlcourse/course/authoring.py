"""Writing the course's notebooks from reviewable Jupytext sources.

Each chapter notebook is written in ``solutions/src/<name>.py``, a Python
file in Jupytext's percent format: a line ``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell (its lines commented with ``# ``), and
``key=value`` pairs after the marker (JSON values) are the cell's metadata.
Ruff lints the sources like the rest of the code.  What a cell is for is
said in its header:

``# %% [markdown] total_points=20``
    The notebook's first cell, whose first heading is its title, e.g.
    ``# 1.2 Chain Rule``: the section's number is its first word.  The
    notebook's exercises must add up to ``total_points``.

``# %% [markdown] exercise="1.2.3" id="chain_rule" points=2``
    An exercise, declared once: its number (the section's, then 1, 2, ... in
    order), its id (the grade id of its answer cell; its test cell's is
    ``test_<id>``) and its points.  The cell's line ``### Exercise: <title>``
    becomes the heading, ``### Exercise 1.2.3: the chain rule (2 points)``;
    text before and after that line is kept as it is.
``# %% answer`` (``# %% answer gradient=true``)
    The exercise's answer cell, after its declaration: the solution between
    ``### BEGIN SOLUTION`` and ``### END SOLUTION``.  ``gradient=true`` says
    that the answer computes a gradient by hand (see :func:`answer`).
``# %% tests``
    The exercise's locked, graded test cell, after its answer; it is worth the
    exercise's points.
``# %% [markdown] appendix``
    Why the exercise's answer is right, for Appendix A; not in the notebook.
``# %% locked="setup"``
    A code cell that nbgrader restores at grading time, for setup the tests
    rely on; its grade id is the value.

Every exercise has one answer cell, then one test cell, and one appendix
cell, before the next exercise's declaration; grade ids are unique in a
notebook, and exercise ids in the chapter.  Other cells are the notebook's
own, in order.  For example::

    # %% [markdown] exercise="1.1.1" id="dense" points=1
    # ### Exercise: a dense layer
    #
    # Write `dense(x, W, b)` returning `x @ W + b`.

    # %% answer
    def dense(x, W, b):
        ### BEGIN SOLUTION
        return x @ W + b
        ### END SOLUTION

    # %% tests
    assert_close(dense(x, W, b), x @ W + b, name="dense(x, W, b)")

    # %% [markdown] appendix
    # `x @ W` multiplies each row of `x` by `W`; `b` broadcasts over the rows.

The heading, the answer cell and the test cell (:func:`read_source`),
Appendix A's entry and the index's links (:mod:`dlcourse.course.appendix`,
whose terms are in ``solutions/src/index.toml``) all come from the
declaration, and a declaration that is malformed or incomplete stops the
build with :class:`SourceError`, naming the file and line.

:func:`build` turns a source's cells into an nbgrader instructor notebook
(cell metadata, stable cell ids), :func:`execute` runs it so that its
outputs are stored for nbval, and :func:`normalise` strips what changes from
run to run, so a change to a notebook reads as a small diff.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import jupytext
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


class SourceError(ValueError):
    """A notebook source that cannot be built, with the file and line to fix."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = path, line


@dataclass
class Exercise:
    """An exercise as its source declares it, with its answer and explanation."""

    id: str
    number: str  # "1.2.3"
    title: str  # "the chain rule"
    points: int
    notebook: str  # file name of the chapter notebook, "02_chain_rule.ipynb"
    line: int  # of its declaration in the source
    answer: str = ""  # the answer cell's source, markers included
    gradient: bool = False
    tests: str = ""
    explanation: str = ""

    @property
    def heading(self) -> str:
        """``Exercise 1.2.3: the chain rule (2 points)``."""
        unit = "point" if self.points == 1 else "points"
        return f"Exercise {self.number}: {self.title} ({self.points} {unit})"

    @property
    def test_id(self) -> str:
        return f"test_{self.id}"


@dataclass
class Source:
    """One chapter notebook's source file, read."""

    name: str
    path: Path
    cells: list[NotebookNode]  # the instructor notebook's cells
    exercises: list[Exercise]

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"


CELL_MARKER = re.compile(r"^\s*#\s*%%+(\s|$)")
TITLE_LINE = re.compile(r"^### Exercise: (\S.*?) *$", re.MULTILINE)
WRITTEN_HEADING = re.compile(r"^#{1,6} +Exercise \d", re.MULTILINE)
NUMBER = re.compile(r"^(\d+\.\d+)\.([1-9]\d*)$")
GRADE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# what each kind of cell may say in its header; jupytext's own bookkeeping aside
KEYS = {
    ("markdown", None): set(),
    ("markdown", "exercise"): {"exercise", "id", "points"},
    ("markdown", "appendix"): {"title"},
    ("code", None): set(),
    ("code", "answer"): {"title", "gradient"},
    ("code", "tests"): {"title"},
    ("code", "locked"): {"locked"},
}
JUPYTEXT_KEYS = {"lines_to_next_cell"}


def _kind(cell: NotebookNode) -> str | None:
    meta = cell.metadata
    if cell.cell_type == "markdown" and "exercise" in meta:
        return "exercise"
    if "locked" in meta and cell.cell_type == "code":
        return "locked"
    return meta.get("title")


class _Reader:
    """Reads one source: its cells in order, an exercise at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text()
        self.notebook = jupytext.reads(text, fmt="py:percent")
        self.lines = [n for n, line in enumerate(text.splitlines(), 1) if CELL_MARKER.match(line)]
        if not self.lines or self.lines[0] != 1:
            self.fail(1, "a notebook source starts with a cell marker, `# %%` or `# %% [markdown]`")
        if len(self.lines) != len(self.notebook.cells):
            self.fail(
                1,
                f"jupytext reads {len(self.notebook.cells)} cells but the file has "
                f"{len(self.lines)} lines starting with `# %%`: a string must not have "
                "a line that looks like a cell marker",
            )
        self.exercises: list[Exercise] = []
        self.grade_ids: set[str] = set()
        self.current: Exercise | None = None
        self.cells: list[NotebookNode] = []

    def fail(self, line: int, message: str) -> NoReturn:
        raise SourceError(self.path, line, message)

    def read(self) -> Source:
        cells = self.notebook.cells
        if cells[0].cell_type != "markdown":
            self.fail(1, "the first cell is the notebook's title, a markdown cell")
        first = cells[0].metadata.pop("total_points", None)
        titles = re.findall(r"^# +(\S+) ", cells[0].source, flags=re.MULTILINE)
        if not titles:
            self.fail(1, "the first cell starts with the title, e.g. `# 1.2 Chain Rule`")
        self.section = titles[0]
        for line, cell in zip(self.lines, cells):
            self.cell(line, cell)
        self.close("the end of the file")
        total = sum(e.points for e in self.exercises)
        if self.exercises and first != total:
            declared = "no total_points" if first is None else f"total_points={first!r}"
            self.fail(
                1,
                f"the exercises add up to {total} points, but the first cell declares "
                f"{declared}: its header should say `total_points={total}`",
            )
        return Source(self.path.stem, self.path, self.cells, self.exercises)

    def cell(self, line: int, cell: NotebookNode) -> None:
        for key in JUPYTEXT_KEYS:
            cell.metadata.pop(key, None)
        kind = _kind(cell)
        allowed = KEYS.get((cell.cell_type, kind))
        if allowed is None:
            self.fail(
                line,
                f"unknown cell {kind!r}: a code cell may be `answer`, `tests` or "
                '`locked="grade id"`, a markdown cell an exercise or `appendix`',
            )
        bad = sorted(set(cell.metadata) - allowed)
        if bad:
            if "incorrectly_encoded_metadata" in bad:
                self.fail(
                    line,
                    "cannot read the header's metadata "
                    f"{cell.metadata['incorrectly_encoded_metadata']!r}: write "
                    'key=value with JSON values, e.g. id="dense" points=2',
                )
            self.fail(line, f"this cell cannot have {', '.join(bad)} in its header")
        if kind == "exercise":
            self.declare(line, cell)
        elif kind in ("answer", "tests", "appendix"):
            self.part(line, cell, kind)
        else:
            if cell.cell_type == "markdown":
                if WRITTEN_HEADING.search(cell.source):
                    self.fail(
                        line,
                        "an exercise's heading is written `### Exercise: <title>`, in "
                        'a cell declared `# %% [markdown] exercise="1.2.3" id=... '
                        "points=...`",
                    )
                self.cells.append(md(cell.source))
            else:
                locked = cell.metadata.get("locked")
                if locked is not None:
                    self.grade_id(line, locked, "a locked cell's grade id")
                self.cells.append(code(cell.source, locked))

    def grade_id(self, line: int, grade_id: object, what: str) -> None:
        """``grade_id`` is new in this notebook (nbgrader needs each once)."""
        if not isinstance(grade_id, str) or not GRADE_ID.match(grade_id):
            self.fail(
                line,
                f"{what} is made of lower-case letters, digits and underscores, e.g. "
                f'"chain_rule" (got {grade_id!r})',
            )
        if grade_id in self.grade_ids:
            self.fail(line, f"the grade id {grade_id!r} is taken by an earlier cell")
        self.grade_ids.add(grade_id)

    def declare(self, line: int, cell: NotebookNode) -> None:
        self.close(f"line {line}")
        meta = cell.metadata
        number, grade_id, points = meta.get("exercise"), meta.get("id"), meta.get("points")
        found = NUMBER.match(number) if isinstance(number, str) else None
        expected = f"{self.section}.{len(self.exercises) + 1}"
        if not found:
            self.fail(
                line, f'exercise={number!r}: an exercise\'s number is a string like "{expected}"'
            )
        if number != expected:
            self.fail(
                line,
                f"exercise {number} should be {expected}: exercises are numbered "
                f"by section ({self.section}), in order from 1",
            )
        self.grade_id(line, grade_id, f"exercise {number}'s id")
        self.grade_id(line, f"test_{grade_id}", f"exercise {number}'s test cell's grade id")
        if not isinstance(points, int) or isinstance(points, bool) or points < 1:
            self.fail(
                line,
                f"exercise {number} needs its points, a whole number of at least 1, "
                f"e.g. points=2 (got {points!r})",
            )
        titles = TITLE_LINE.findall(cell.source)
        if len(titles) != 1:
            self.fail(
                line,
                f"exercise {number}: its cell needs one line `### Exercise: <title>` "
                f"(found {len(titles)})",
            )
        if WRITTEN_HEADING.search(cell.source):
            self.fail(
                line,
                f"exercise {number}: its heading comes from the declaration; write "
                "only `### Exercise: <title>`",
            )
        self.current = Exercise(
            grade_id, number, titles[0], points, f"{self.path.stem}.ipynb", line
        )
        self.exercises.append(self.current)
        heading = f"### {self.current.heading}"
        self.cells.append(md(TITLE_LINE.sub(lambda _: heading, cell.source)))

    def part(self, line: int, cell: NotebookNode, kind: str) -> None:
        exercise = self.current
        if exercise is None:
            self.fail(
                line,
                f"the `{kind}` cell belongs to an exercise: declare one before it, "
                '`# %% [markdown] exercise="1.2.3" id=... points=...`',
            )
        if kind == "answer":
            if exercise.answer:
                self.fail(line, f"exercise {exercise.number} has an answer cell already")
            exercise.answer, exercise.gradient = cell.source, bool(cell.metadata.get("gradient"))
            try:
                self.cells.append(answer(exercise.id, cell.source, gradient=exercise.gradient))
            except ValueError as error:
                self.fail(line, str(error))
        elif kind == "tests":
            if not exercise.answer:
                self.fail(
                    line, f"exercise {exercise.number}: its test cell comes after its answer cell"
                )
            if exercise.tests:
                self.fail(line, f"exercise {exercise.number} has a test cell already")
            exercise.tests = cell.source
            self.cells.append(tests(exercise.test_id, exercise.points, cell.source))
        else:
            if exercise.explanation:
                self.fail(line, f"exercise {exercise.number} has an appendix cell already")
            exercise.explanation = cell.source.strip()

    def close(self, where: str) -> None:
        """The exercise before ``where`` must be complete."""
        exercise, self.current = self.current, None
        if exercise is None:
            return
        for part, cell in [
            ("answer", exercise.answer),
            ("tests", exercise.tests),
            ("appendix", exercise.explanation),
        ]:
            if not cell:
                self.fail(
                    exercise.line,
                    f"exercise {exercise.number} ({exercise.id}) has no "
                    f"`# %% {part}` cell before {where}",
                )


def read_source(path: Path) -> Source:
    """A notebook source, read and checked (:class:`SourceError` if malformed)."""
    return _Reader(Path(path)).read()


def sources(root: Path) -> list[Source]:
    """Every chapter notebook source under ``root/solutions/src``, in order;
    no two exercises share an id."""
    found = [read_source(p) for p in sorted(Layout.of(root).sources.glob("[0-9]*.py"))]
    first: dict[str, Exercise] = {}
    for source in found:
        for exercise in source.exercises:
            other = first.setdefault(exercise.id, exercise)
            if other is not exercise:
                raise SourceError(
                    source.path,
                    exercise.line,
                    f"the id {exercise.id!r} is taken by exercise {other.number} "
                    f"in {other.notebook}",
                )
    return found


def _source_id(source: str) -> str:
    return "c" + hashlib.sha1(source.encode()).hexdigest()[:8]


def as_built(cell: NotebookNode) -> bool:
    """Whether a cell nbgrader does not mark still has the source :func:`build`
    gave it: its id is made from that source (and a repeat's, with ``-n``)."""
    return str(cell.get("id", "")).split("-")[0] == _source_id(cell.get("source", ""))


def build(cells: list[NotebookNode]) -> NotebookNode:
    """A notebook of ``cells`` (an instructor notebook, for a source's cells),
    without outputs, with stable cell ids."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    seen: set[str] = set()
    for cell in cells:
        cell = nbformat.from_dict(cell)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        base = grade_id or _source_id(cell.source)
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
