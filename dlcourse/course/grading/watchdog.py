"""A time limit on the grader's own work for each student, in a worker process.

The executor limits what kernels do (per cell, per notebook), but the work
the grader itself does with a submission runs what the student wrote through
libraries that no limit covers: merging it into the release, nbgrader's
preprocessors, making its HTML inert, its feedback page (regular expressions,
markdown, HTML parsers). One pathological cell there could keep a worker busy
for hours. So each student gets a budget of the grader's own seconds
(``--grader-timeout``). Time spent waiting for a kernel is not charged to it,
but each such wait is itself limited: to what the executor allows it, and
:data:`MARGIN` more.

A worker past either limit has no way back: the stall may be inside C code,
which holds Python's lock, so no thread or signal handler of the worker's
would run. So the watchdog keeps the kernel's interval timer set to the
current limit, and ``SIGALRM``, left at its default action, ends the process
when it passes, with no Python involved. Beforehand it keeps, in the folder
the instructor's process gave it, a small JSON file saying for whom, until
when and why; the pool sees its worker die, finds the file past its time,
reports that student and grades the others again (:mod:`dispatch`). A worker
with no folder (a Dask worker) just ends: Dask reschedules the task and in
the end gives it up as lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARGIN = 30.0  # seconds a kernel wait may run past its own limit (an interrupt, a slow exit)


class Watchdog:
    """One per worker process: :meth:`student` arms it for a student's
    grading, :meth:`waiting` marks a wait for a kernel inside it."""

    def __init__(self, margin: float = MARGIN) -> None:
        self.margin = margin
        self.reports: Path | None = None  # where to say why beforehand
        self._student = ""
        self._deadline: float | None = None  # monotonic; None: not armed, or a wait with no limit
        self._why = ""
        self._left = 0.0  # the budget left when the current wait began
        self._waits = 0  # waits under way, nested

    @contextmanager
    def student(self, name: str, budget: float) -> Iterator[None]:
        """Grade ``name`` inside: the grader's own work may take ``budget``
        seconds, waits for a kernel not counted."""
        self._student, self._waits = name, 0
        self._why = (
            f"the grader's own work on this submission (converting, checking and rendering "
            f"it, its kernels' time not counted) took longer than {budget:g} s "
            "(--grader-timeout), so its worker was stopped; not graded. Look at what it "
            "holds that the grader cannot process (a huge or odd cell), or raise the limit"
        )
        self._set(time.monotonic() + budget)
        try:
            yield
        finally:
            self._student = ""
            self._set(None)

    @contextmanager
    def waiting(self, limit: float | None, what: str) -> Iterator[None]:
        """A wait for a kernel, allowed ``limit`` seconds (None: unlimited)
        and :attr:`margin` more, not charged to the student's budget."""
        if not self._student:  # not grading: nothing to limit
            yield
            return
        outer = self._deadline, self._why
        if not self._waits:
            self._left = (self._deadline or 0.0) - time.monotonic()
        self._waits += 1
        try:
            self._why = (
                f"{what} went on {self.margin:g} s past its {limit} s limit, so its worker was "
                "stopped; not graded"
            )
            self._set(None if limit is None else time.monotonic() + limit + self.margin)
            yield
        finally:
            self._waits -= 1
            self._why = outer[1]
            # an outer wait goes on with its own limit; the grader's work with what is left
            self._set(outer[0] if self._waits else time.monotonic() + self._left)

    def _set(self, deadline: float | None) -> None:
        """The timer, and the file that says why it ended the process, to
        ``deadline``. The timer is off while the file changes, so it never
        ends the process while the file says something else; a file that
        cannot be written only leaves the cause unsaid."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._deadline = deadline
        if self.reports is not None:
            report = self.reports / f"{os.getpid()}.json"
            with contextlib.suppress(OSError):
                if deadline is None:
                    report.unlink(missing_ok=True)
                else:
                    part = report.with_suffix(".part")
                    part.write_text(json.dumps({"student": self._student, "why": self._why,
                                                "deadline": deadline}))  # fmt: skip
                    part.replace(report)  # whole, or as it was
        if deadline is not None:
            signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-3))


WATCHDOG = Watchdog()  # this process's


def report_to(folder: str) -> None:
    """A local worker's start: keep the file that says why in ``folder``, and
    let ``SIGALRM`` end the process (its default, made sure of)."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    WATCHDOG.reports = Path(folder)


def reports(folder: Path) -> dict[str, str]:
    """student -> why, for every worker that the watchdog ended, as its file in
    ``folder`` says; the files of workers that died of something else (their
    limit still ahead) are not. Every file is removed: call this once the
    workers that wrote them are gone."""
    said, now = {}, time.monotonic()  # the system's monotonic clock: the workers' too
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text())
        if report["deadline"] <= now:
            said[report["student"]] = report["why"]
        path.unlink()
    return said
