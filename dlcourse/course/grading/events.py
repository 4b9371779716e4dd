"""What crosses process boundaries while grading, as plain data.

* The executor (inside nbgrader, in a worker) reports faults as
  :class:`Event` lines in a JSON file it is handed, never through a log.
* A worker (a local process or a Dask worker on another machine) receives a
  :class:`Task` and a :class:`Bundle` and returns a :class:`TaskResult`;
  all three pickle, and none holds a path on the instructor's machine that a
  worker must read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# What the executor reports, by kind; each event says which cell and why.
CELL_FAILED = "cell_failed"  # a student cell killed or hung its kernel: skipped, kernel restarted
CELL_TIMEOUT = "cell_timeout"  # a student cell ran over the time limit and was interrupted
TEST_BROKEN = "test_broken"  # the kernel died or hung while a test called into it: the test fails
OUT_OF_TIME = "out_of_time"  # the notebook used up its time: its remaining cells were not run
GAVE_UP = "gave_up"  # the kernel kept dying: the notebook could not be graded
OUTPUT_DROPPED = "output_dropped"  # the student's cells printed past the limit: the rest dropped
NO_KERNEL = "no_kernel"  # the grader could not start a kernel: not the student's fault, not graded
KINDS = (CELL_FAILED, CELL_TIMEOUT, TEST_BROKEN, OUT_OF_TIME, GAVE_UP, OUTPUT_DROPPED, NO_KERNEL)


@dataclass(frozen=True)
class Event:
    kind: str
    notebook: str  # file name
    cell: int | None  # index in the notebook
    cause: str

    def message(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "the notebook"
        consequence = {
            CELL_FAILED: "that cell was skipped",
            CELL_TIMEOUT: "that cell was interrupted",
            TEST_BROKEN: "this test scores 0",
            OUT_OF_TIME: "the cells after it were not run",
            GAVE_UP: "its exercises score 0",
            OUTPUT_DROPPED: "what came after was not kept",
            NO_KERNEL: "not graded; run dlcourse grade again to retry",
        }[self.kind]
        return f"{self.notebook}: {where}: {self.cause}; {consequence}"


class EventLog:
    """The executor's end: appends events to a JSON-lines file."""

    def __init__(self, path: Path, notebook: str):
        self.path, self.notebook = path, notebook

    def report(self, kind: str, cell: int | None, cause: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with open(self.path, "a") as out:
            out.write(json.dumps(asdict(Event(kind, self.notebook, cell, cause))) + "\n")


def read_events(path: Path) -> list[Event]:
    """The worker's end: every event the executor wrote (none if no file)."""
    if not path.exists():
        return []
    return [Event(**json.loads(line)) for line in path.read_text().splitlines() if line]


@dataclass(frozen=True)
class Settings:
    """How kernels run, as the instructor asked."""

    timeout: int = 60  # seconds per cell
    notebook_timeout: int = 900  # seconds per notebook, all cells together
    memory_mb: int = 2048
    confined: bool = True
    # seconds of the grader's own work per student, its waits for kernels not counted
    grader_timeout: int = 300


@dataclass(frozen=True)
class Bundle:
    """Everything a worker needs that is the same for every student: the
    course's nbgrader configuration, an empty gradebook that knows the
    assignment (with the hidden tests), the released notebooks, and what
    kernels must not see on a machine that holds the course (its private
    paths, hidden; the course folder, covered)."""

    config: str  # nbgrader_config.py's text
    gradebook: bytes
    released: dict[str, str]  # notebook file name -> released notebook (JSON)
    settings: Settings
    private: tuple[str, ...] = ()
    course: str = ""  # the course folder: kernels see none of it
    policy: str = ""  # policy.toml's text (the deadline and late schedule), "" without one


@dataclass(frozen=True)
class Task:
    student: str
    notebooks: dict[str, bytes]  # file name -> the notebook as submitted, stored outputs stripped
    timestamp: str | None = None  # nbgrader's timestamp.txt, if the submission has one


@dataclass
class NotebookResult:
    grades: dict[str, tuple[float, float]]  # test cell -> (score, max score)
    autograded: str  # the graded notebook (JSON), made inert
    feedback: str = ""  # its feedback page (HTML), hidden tests removed
    late_penalty: float = 0.0  # what nbgrader's AssignLatePenalties took off its score


@dataclass
class TaskResult:
    student: str
    notebooks: dict[str, NotebookResult] = field(default_factory=dict)  # graded ones only
    problems: list[str] = field(default_factory=list)
    # why the grader, not the student, kept this result from being complete: it is
    # reported and not recorded, so that the next run grades the student again
    retry: str = ""
    # test cell -> why a human should look at the answer it grades
    review: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # wall time the worker spent
    timestamp: str | None = None  # nbgrader's timestamp.txt of what was graded, if any
