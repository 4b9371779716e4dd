"""The grader's time limit on its own work for a student (grading/watchdog.py).

The grader runs what a student wrote through libraries no kernel limit
covers; a stall there, inside C code, holds Python's lock, so only the
system's timer can end the process. Each case runs in a process of its own,
which the watchdog may end; the limits are far from what the code takes, so
a busy machine changes no outcome.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dlcourse.course.grading import watchdog

# A regular expression that backtracks for 2**64 steps: a stall inside C, which
# no exception or signal handler interrupts, as a library's parser could stall
STALL = 're.match(r"(a+)+$", "a" * 64 + "b")'


def in_a_worker(code: str, reports: Path) -> subprocess.CompletedProcess:
    """``code`` in a new process with the watchdog reporting to ``reports``."""
    script = textwrap.dedent("""
        import re, sys, time
        from pathlib import Path
        from dlcourse.course.grading import watchdog
        watchdog.report_to(sys.argv[1])
        dog = watchdog.Watchdog(margin=0.5)
        dog.reports = watchdog.WATCHDOG.reports
    """) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script, str(reports)], capture_output=True, text=True, timeout=120
    )


def test_a_stall_past_the_budget_ends_the_worker_and_says_for_whom(tmp_path: Path) -> None:
    done = in_a_worker(f'with dog.student("ann", 0.5):\n    {STALL}\n', tmp_path)
    assert done.returncode == -signal.SIGALRM, done.stderr
    said = watchdog.reports(tmp_path)
    assert list(said) == ["ann"]
    assert "took longer than 0.5 s (--grader-timeout)" in said["ann"]
    assert "not graded" in said["ann"]
    assert list(tmp_path.iterdir()) == []  # read and removed


def test_time_waiting_for_a_kernel_is_not_charged_to_the_budget(tmp_path: Path) -> None:
    done = in_a_worker(
        """
        with dog.student("ann", 1.0):
            with dog.waiting(60, "cell 3"):
                time.sleep(2.5)  # the kernel's time, within its own limit
            with dog.waiting(60, "cell 4"):
                time.sleep(1.0)
        print("graded")
        """,
        tmp_path,
    )
    assert (done.returncode, done.stdout) == (0, "graded\n"), done.stderr
    assert list(tmp_path.iterdir()) == []  # no file says anything once the student is done


def test_a_wait_that_raises_gives_back_the_budget_and_a_wait_may_be_unlimited(
    tmp_path: Path,
) -> None:
    done = in_a_worker(
        f"""
        with dog.student("ivy", 1.0):
            try:
                with dog.waiting(60, "cell 1"):
                    raise RuntimeError("the kernel died")
            except RuntimeError:
                pass
            with dog.waiting(None, "cell 2"):  # no limit: nothing ends it
                time.sleep(1.5)
            {STALL}
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGALRM, done.stderr
    assert "took longer than 1 s" in watchdog.reports(tmp_path)["ivy"]


def test_a_wait_for_a_kernel_is_limited_by_its_own_limit(tmp_path: Path) -> None:
    done = in_a_worker(
        f"""
        with dog.student("ben", 600):
            with dog.waiting(0.5, "the test in cell 7"):
                {STALL}
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGALRM, done.stderr
    assert watchdog.reports(tmp_path) == {
        "ben": "the test in cell 7 went on 0.5 s past its 0.5 s limit, so its worker was "
        "stopped; not graded"
    }


def test_a_wait_inside_a_wait_gives_back_the_outer_limit(tmp_path: Path) -> None:
    done = in_a_worker(
        f"""
        with dog.student("cat", 600):
            with dog.waiting(0.5, "starting a kernel"):
                with dog.waiting(600, "cell 0"):
                    pass
                {STALL}
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGALRM, done.stderr
    assert "starting a kernel went on" in watchdog.reports(tmp_path)["cat"]


def test_the_budget_is_given_back_after_a_wait_and_still_holds(tmp_path: Path) -> None:
    done = in_a_worker(
        f"""
        with dog.student("dan", 1.0):
            with dog.waiting(60, "cell 0"):
                time.sleep(1.5)
            {STALL}
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGALRM, done.stderr
    assert "took longer than 1 s" in watchdog.reports(tmp_path)["dan"]


def test_nothing_is_limited_between_students_or_outside_a_worker(tmp_path: Path) -> None:
    done = in_a_worker(
        """
        with dog.waiting(0.1, "cell 0"):  # no student: not armed
            time.sleep(1.0)
        with dog.student("eve", 0.5):
            pass
        time.sleep(1.5)  # between students
        with dog.student("fay", 600):
            time.sleep(1.0)
        print("graded")
        """,
        tmp_path,
    )
    assert (done.returncode, done.stdout) == (0, "graded\n"), done.stderr


def test_a_worker_that_died_before_its_limit_is_not_said_to_be_over_it(tmp_path: Path) -> None:
    """Killed by something else (out of memory): its file's limit is still ahead."""
    ahead = {"student": "gus", "why": "over", "deadline": time.monotonic() + 60}
    (tmp_path / "101.json").write_text(json.dumps(ahead))
    (tmp_path / "102.json").write_text(json.dumps({**ahead, "student": "hal", "deadline": 0}))
    assert watchdog.reports(tmp_path) == {"hal": "over"}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["timeout", "notebook_timeout", "grader_timeout"])
def test_grading_refuses_a_time_limit_below_a_second(tmp_path: Path, flag: str) -> None:
    """nbclient takes a cell limit of 0 as none: refused, as every limit below 1 s."""
    from dlcourse.course import grading

    option = "--" + flag.replace("_", "-")
    with pytest.raises(grading.GradingError, match=f"{option} must be at least 1 second, got 0"):
        grading.grade(tmp_path, grading.Options(unsafe=True, **{flag: 0}))
