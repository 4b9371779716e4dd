"""The one seam between the course's tooling and nbgrader.

Release, grading, the tests and the benchmarks all reach nbgrader through
here: its configuration for a course folder, ``generate_assignment`` into a
folder of one's choice (in this process: nbgrader is imported once), and, for
what must run as nbgrader's own command, the environment and a runner.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from traitlets.config import Config, PyFileConfigLoader

from dlcourse.course.layout import ASSIGNMENT, CONFIG, Layout


class NbgraderError(RuntimeError):
    """nbgrader failed; the message holds what it said."""


def tool_environment() -> dict[str, str]:
    """The environment for running nbgrader's commands: this Python's bin/
    first on PATH (nbgrader runs ``alembic`` as a command)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    return env


def put_tools_on_path() -> None:
    """Put this Python's bin/ first on this process's PATH, as an absolute
    path, for nbgrader run in this process: it runs ``alembic`` as a command,
    after changing the working folder."""
    tools = str(Path(sys.executable).parent.absolute())
    if os.environ.get("PATH", "").split(os.pathsep)[0] != tools:
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def run(
    course: Path, *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course`` as its own command, in its own
    process group so that it can be stopped whole."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env or tool_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def load_config(folder: Path) -> Config:
    """The nbgrader configuration of the course in ``folder``, rooted there."""
    config = PyFileConfigLoader(CONFIG, path=str(folder)).load_config()
    config.CourseDirectory.root = str(folder)
    return config


class Messages(logging.Handler):
    """Keeps the messages of an nbgrader converter's log records at ``level``
    and above: what to say when it gives up (its exceptions only say "see the
    log")."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def generate_assignment(layout: Layout, into: Path) -> Layout:
    """``nbgrader generate_assignment`` of the course's assignment, in a new
    course folder ``into`` holding a copy of the configuration and the
    solutions: the learner notebooks and a gradebook that knows the
    assignment (notebooks, cells, points, hidden tests) are made there, and
    the course itself is left alone."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    put_tools_on_path()
    target = Layout.of(into)
    target.solutions.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(layout.config, target.config)
    shutil.copytree(layout.solutions, target.solutions)
    config = load_config(target.root)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = ASSIGNMENT
    log = logging.getLogger(f"dlcourse.nbgrader.{id(target)}")
    log.propagate = False
    messages = Messages()
    log.addHandler(messages)
    converter = GenerateAssignment(coursedir=coursedir, config=config, log=log)
    converter.force = True
    try:
        converter.start()
    except NbGraderException:
        raise NbgraderError(
            "nbgrader generate_assignment failed:\n" + "\n".join(messages.lines)
        ) from None
    finally:
        log.removeHandler(messages)
    if not target.released_notebooks():
        raise NbgraderError("nbgrader generate_assignment made no notebooks")
    return target
