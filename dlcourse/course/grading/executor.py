"""The only code of the grader's that runs inside nbgrader: its execution step.

:class:`ConfinedExecute` replaces nbgrader's ``Execute`` preprocessor. The
student's cells run in a (confined) kernel as usual. A test cell never does:
its source, read from the gradebook (never from the submission), runs in
this process against a :class:`remote.TrustedNamespace` whose unknown names
are the student's objects in the kernel, reached through
:mod:`dlcourse.course.grading.remote`. Its outputs, and so nbgrader's score,
are this process's. The setup cells (locked, not graded) run on both sides:
in the kernel where the submission has them, and here, every one of the
gradebook's before the first cell, so the tests have their own numpy,
``assert_close`` and library whatever the submission did to its copies.

A kernel that dies or hangs in a cell costs that cell: the kernel is
replaced, the cells that ran before are run again, and grading goes on. Every
such fault is reported as an :class:`events.Event` in the file the worker
hands over (``events_file``), never through nbgrader's log.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute
from traitlets import Any as AnyTrait
from traitlets import Bool, Integer, Unicode

from dlcourse.course.grading import events, remote
from dlcourse.course.grading.kernels import Kernel
from dlcourse.course.grading.watchdog import WATCHDOG

FORK_LIMIT = 16  # processes a cell may leave behind before its kernel is replaced
# kernel messages that add to a notebook's stored output (widgets keep comm state)
OUTPUTS = {"stream", "display_data", "execute_result", "error", "update_display_data",
           "comm_open", "comm_msg"}  # fmt: skip


class ForkBomb(RuntimeError):
    pass


def merge_streams(outputs: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """A cell's outputs with each stream (stdout, stderr) in one piece where it
    first appeared, however the kernel's flushes cut it up, so that grading a
    notebook twice gives the same pages; on each line, what a carriage return
    overwrote is dropped, as a terminal shows it. Linear in the text (nbclient's
    own merging is quadratic in a line's length)."""
    merged: list[nbformat.NotebookNode] = []
    streams: dict[str, nbformat.NotebookNode] = {}
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") in streams:
            streams[output["name"]]["text"] += output["text"]
        else:
            merged.append(output)
            if output.get("output_type") == "stream":
                streams[output["name"]] = output
    for output in streams.values():
        lines = output["text"].split("\n")
        for i, line in enumerate(lines):
            cut = line.rfind("\r", 0, len(line) - 1)  # the last \r that a character follows
            if cut >= 0:
                lines[i] = line[cut + 1 :]
        output["text"] = "\n".join(lines)
    for i in range(len(merged) - 1):  # the kernel's streams are not ordered: stdout first
        if [(o.get("output_type"), o.get("name")) for o in merged[i : i + 2]] == [
            ("stream", "stderr"), ("stream", "stdout")
        ]:  # fmt: skip
            merged[i], merged[i + 1] = merged[i + 1], merged[i]
    return merged


def _message(failure: BaseException | None) -> str:
    """A failed test's message, at most 4,000 characters; one that cannot be
    read (the student's object would not say) is said to be so."""
    if failure is None:
        return ""
    try:
        return str(failure)[:4000]
    except Exception as error:
        return f"(the message could not be read: {type(error).__name__})"


class ConfinedExecute(Execute):
    """nbgrader's execution step with the verdicts taken out of the kernel
    (see the module's docstring)."""

    launcher = AnyTrait(None, help="a kernels.Launcher: starts the student's kernels").tag(
        config=True
    )
    events_file = Unicode("", help="where to report faults, one JSON event per line").tag(
        config=True
    )
    notebook_timeout = Integer(900, help="seconds for the whole notebook").tag(config=True)
    max_restarts = Integer(3, help="kernel restarts per notebook before giving up").tag(config=True)
    # nbclient's merging of a cell's streams is off: its pattern for carriage returns
    # takes time quadratic in a line's length (minutes for a 600 kB line); each cell's
    # streams are merged by merge_streams instead
    coalesce_streams = Bool(False, help="nbclient's merging of streams (quadratic)").tag(
        config=True
    )
    max_output_bytes = Integer(
        1_000_000, help="bytes of output the student's cells of a notebook may leave; "
        "what comes after is dropped, with a note"
    ).tag(config=True)  # fmt: skip

    def preprocess(
        self, nb: nbformat.NotebookNode, resources: dict, km: Any = None
    ) -> tuple[nbformat.NotebookNode, dict]:
        tests, setup = self._trusted_sources(resources["nbgrader"])
        name = resources["nbgrader"]["notebook"] + ".ipynb"
        self.events = events.EventLog(Path(self.events_file), name)
        self.namespace = remote.TrustedNamespace(__name__="__main__")
        self.channel: remote.Channel | None = None
        self.kernel: Kernel | None = None
        self.restarts = 0
        self.done: list[int] = []  # student cells that ran, to run again after a restart
        self.deadline = time.monotonic() + self.notebook_timeout
        self.output_bytes = 0
        seen: set[str] = set()
        out_of_time = False
        try:
            try:
                self._start_kernel(nb, resources)
            except Exception as error:  # before any student code ran: the grader's fault
                why = f"{type(error).__name__}: {error!s:.300}"
                self.events.report(events.NO_KERNEL, None, f"no kernel could be started ({why})")
                raise
            # the tests' own names, before any test and wherever the submission put (or
            # dropped, or copied) its setup cells: every setup source of the gradebook's
            for source in setup.values():
                self._run_trusted_setup(source)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in tests:
                    cell.outputs = []
                    if grade_id not in seen:  # a duplicate never runs anywhere
                        seen.add(grade_id)
                        self._run_test(cell, tests[grade_id], index)
                    continue
                if not out_of_time and time.monotonic() > self.deadline:
                    out_of_time = True  # the tests still run, and fail on what is missing
                    self.events.report(
                        events.OUT_OF_TIME, index,
                        f"the notebook ran over its {self.notebook_timeout} s limit",
                    )  # fmt: skip
                if not out_of_time:
                    self._run_student(cell, index)
        finally:
            self._stop_kernel()
        return nb, self.resources

    @staticmethod
    def _trusted_sources(info: dict) -> tuple[dict[str, str], dict[str, str]]:
        """Test cells and setup cells, grade id -> source, from the gradebook."""
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            solutions = {c.name for c in notebook.solution_cells}
            graded = {c.name for c in notebook.grade_cells if c.cell_type == "code"} - solutions
            tests, setup = {}, {}
            for cell in notebook.source_cells:
                if cell.name in graded:
                    tests[cell.name] = cell.source
                elif cell.locked and cell.cell_type == "code" and cell.name not in solutions:
                    setup[cell.name] = cell.source
        return tests, setup

    # ----------------------------------------------------------- the kernel
    def _start_kernel(self, nb: nbformat.NotebookNode, resources: dict) -> None:
        # each step of a kernel's start within the start-up limit
        with WATCHDOG.waiting(self.startup_timeout, "starting a kernel"):
            self.kernel = self.launcher.start()
        NotebookClient.__init__(self, nb, self.kernel.km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        # the kernel's first imports may take a while on a busy machine
        saved, self.timeout = self.timeout, max(self.timeout or 0, self.startup_timeout)
        try:
            with WATCHDOG.waiting(self.startup_timeout + self.timeout, "a new kernel's reply"):
                self.start_new_kernel_client()
                info = self.wait_for_reply(self.kc.kernel_info())
            if info is not None:
                nb.metadata["language_info"] = info["content"].get("language_info", {})
            self._connect()
        finally:
            self.timeout = saved

    def _stop_kernel(self) -> None:
        if self.channel is not None:
            self.channel.sock.close()
            self.channel = None
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
            self.kc = None
        if self.kernel is not None:
            with WATCHDOG.waiting(self.startup_timeout, "stopping a kernel"):
                self.kernel.close()
            self.kernel = None

    def _connect(self) -> None:
        """Start the kernel's end of the channel (before any student code runs)."""
        assert self.kernel is not None
        path = str(self.kernel.runtime / "grader.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            if self.kernel.uid is not None:
                os.chown(path, self.kernel.uid, self.kernel.uid)
            listener.listen(1)
            listener.settimeout(self.startup_timeout)
            code = (
                "import dlcourse.course.grading.remote as _dlcourse_remote\n"
                f"_dlcourse_remote.serve_in_thread({path!r}, get_ipython().user_ns)\n"
                "del _dlcourse_remote"
            )
            # its reply, then its connection: each within the start-up limit
            with WATCHDOG.waiting(2 * self.startup_timeout, "connecting a new kernel"):
                reply = self.wait_for_reply(self.kc.execute(code, silent=True, store_history=False))
                if reply is None or reply["content"]["status"] != "ok":
                    content = reply["content"] if reply else {}
                    why = f"{content.get('ename', 'no reply')}: {content.get('evalue', '')}"
                    raise RuntimeError(f"the kernel could not connect to the grader ({why})")
                sock, _ = listener.accept()
        finally:
            listener.close()
        self.channel = remote.Channel(sock, trusted=True)
        self.namespace.channel = self.channel

    def _cell_limit(self) -> float:
        """How long a cell may make the grader wait: its time limit, or the
        notebook's for cells without one (nbclient takes 0 or less as none)."""
        return self.timeout if self.timeout and self.timeout > 0 else self.notebook_timeout

    def _death_cause(self, error: BaseException) -> str:
        if isinstance(error, ForkBomb):
            return str(error)
        if isinstance(error, CellTimeoutError):
            return f"the cell ran over the {self.timeout} s limit and could not be interrupted"
        status = self.kernel.exit_status() if self.kernel is not None else None
        if status is not None and status < 0:
            return f"the kernel was killed by {signal.Signals(-status).name}"
        if status is not None:
            return f"the kernel died (exit status {status}: os._exit, or memory over the limit)"
        return f"the kernel stopped answering ({type(error).__name__})"

    def _restart(self, index: int | None) -> None:
        """A fresh kernel with the student's cells so far run again."""
        if self.restarts >= self.max_restarts:
            cause = f"the kernel died {self.restarts + 1} times"
            self.events.report(events.GAVE_UP, index, cause)
            raise DeadKernelError(f"{cause}; gave up")
        self.restarts += 1
        self._stop_kernel()
        try:
            self._start_kernel(self.nb, self.resources)
        except (RuntimeError, OSError, TimeoutError) as error:
            self.events.report(
                events.CELL_FAILED, index, f"the restarted kernel failed ({error!s:.200})"
            )
            self._restart(index)
            return
        # the cells that ran before, again: each ran within the limit once, but a
        # busy machine gets the kernel's start-up allowance for them
        saved, self.timeout = self.timeout, max(self.timeout or 0, self.startup_timeout)
        try:
            for done in self.done:
                if time.monotonic() > self.deadline:  # the cells left are not run either
                    break
                # nbclient stores the cell it ran at its index: the replay's copy goes
                # there, and the cell as first run (its id, its outputs) comes back
                original = self.nb.cells[done]
                try:
                    with WATCHDOG.waiting(self._cell_limit(), f"running cell {done} again"):
                        self.execute_cell(nbformat.from_dict(original), done, store_history=False)
                except (DeadKernelError, CellTimeoutError, RuntimeError):
                    self._restart(index)
                    return
                finally:
                    self.nb.cells[done] = original
        finally:
            self.timeout = saved

    def process_message(
        self, msg: dict, cell: nbformat.NotebookNode, cell_index: int
    ) -> nbformat.NotebookNode | None:
        """nbclient's handling of a kernel message, with the notebook's output
        kept within ``max_output_bytes``: a student who prints gigabytes must not
        fill the grader's memory, the gradebook's folders or the feedback."""
        if msg["msg_type"] in OUTPUTS:
            before = self.output_bytes
            self.output_bytes += len(json.dumps(msg["content"], default=str))
            if self.output_bytes > self.max_output_bytes:
                if before <= self.max_output_bytes:  # the first message past the limit
                    limit = f"{self.max_output_bytes:,} bytes"
                    note = f"[dlcourse grade: output past {limit} per notebook was not kept]\n"
                    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=note))
                    self.events.report(events.OUTPUT_DROPPED, cell_index, f"output passed {limit}")
                return None
        return super().process_message(msg, cell, cell_index)

    # ------------------------------------------------------------ the cells
    def _run_trusted_setup(self, source: str) -> None:
        self.namespace.channel = None  # setup code names nothing of the student's
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                exec(compile(source, "<setup>", "exec"), self.namespace)
        finally:
            self.namespace.channel = self.channel

    def _run_test(self, cell: nbformat.NotebookNode, source: str, index: int) -> None:
        if self.channel is None or self.channel.broken:
            self._restart(index)
        self.code_cells_executed += 1
        cell.execution_count = self.code_cells_executed
        self.namespace.forget()  # the student's names as the cells so far left them
        out, err = io.StringIO(), io.StringIO()
        assert self.channel is not None and self.kernel is not None
        self.channel.deadline = time.monotonic() + (self.timeout or 60)
        self.channel.warnings_left = remote.MAX_WARNINGS
        failure: BaseException | None = None
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            try:
                with WATCHDOG.waiting(self.timeout or 60, f"the test in cell {index}"):
                    exec(compile(source, f"<test {index}>", "exec"), self.namespace)
            except Exception as error:  # the test failed, whatever the reason
                failure = error
            # read while the deadline holds: a KeyError's message is the repr of its key,
            # which may be the student's object
            name, message = type(failure).__name__, _message(failure)
        self.channel.deadline = None
        if self.kernel.reap() > FORK_LIMIT:
            self.channel.broken = "the student's code left processes behind"
        for warning in caught:
            err.write(f"{warning.category.__name__}: {warning.message}\n")
        for stream, text in (("stdout", out.getvalue()), ("stderr", err.getvalue())):
            limit = self.max_output_bytes  # the student's objects, printed by the test
            if len(text) > limit:
                text = f"{text[:limit]}\n[output cut at {limit} characters]\n"
            if text:
                cell.outputs.append(nbformat.v4.new_output("stream", name=stream, text=text))
        if failure is not None:
            if isinstance(failure, remote.ChannelBroken):
                name = "GradingError"
                self.events.report(events.TEST_BROKEN, index, message)
                message = f"{message}; this test scores 0"
            cell.outputs.append(
                nbformat.v4.new_output(
                    "error", ename=name, evalue=message, traceback=[f"{name}: {message}"]
                )
            )

    def _run_student(self, cell: nbformat.NotebookNode, index: int) -> None:
        if self.channel is None or self.channel.broken:
            self._restart(index)
        assert self.kernel is not None
        started = time.monotonic()
        try:
            with WATCHDOG.waiting(self._cell_limit(), f"cell {index}"):
                self.execute_cell(cell, index, store_history=True)
            cell.outputs = merge_streams(cell.outputs)
            left = self.kernel.reap()
            if left > FORK_LIMIT:
                raise ForkBomb(f"the cell left {left} processes behind (a fork bomb?)")
        except (DeadKernelError, CellTimeoutError, RuntimeError) as error:
            why = self._death_cause(error)
            cell.outputs.append(
                nbformat.v4.new_output(
                    "error",
                    ename="DeadKernelError",
                    evalue=f"{why}; the grader skipped this cell and restarted the kernel",
                    traceback=[f"DeadKernelError: {why}"],
                )
            )
            self.events.report(events.CELL_FAILED, index, why)
            self._restart(index)
            return
        if self.timeout and time.monotonic() - started >= self.timeout:
            self.events.report(
                events.CELL_TIMEOUT, index, f"the cell ran over the {self.timeout} s limit"
            )
        self.done.append(index)
