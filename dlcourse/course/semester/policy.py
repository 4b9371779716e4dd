"""The course's deadline, extensions and late schedule, as data (``policy.toml``).

::

    due = 2026-10-09T23:59:00+02:00   # a date, a time and a time zone

    [late]
    percent_per_day = 10     # of a notebook's score, per day late or part of one
    max_percent = 50         # never more: half the score is the floor
    zero_after_days = 7      # more days late than this scores 0 (optional)

    [extensions]
    ann = 2026-10-12T23:59:00+02:00   # ann's own due date
    ben = 3                           # or a number of days after the due date

A policy is read whole or refused: a file that is not TOML, a date without
a time zone, a negative penalty, an unknown setting or a student id that is
not one raises :class:`PolicyError` naming the line, and nothing is graded
with it. nbgrader applies it (see :mod:`.late`): the gradebook holds the due
date and each student's extension, nbgrader computes the seconds late from
the submission's ``timestamp.txt``, and :meth:`Policy.penalty` turns them
into the notebook's ``late_submission_penalty``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.course.grading.intake import is_student_id

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DAY = 86400.0
SETTINGS = {
    "": ("due", "late", "extensions"),
    "late": ("percent_per_day", "max_percent", "zero_after_days"),
}


class PolicyError(ValueError):
    """A policy file that cannot be applied: the message names the file, the
    line and what to write instead."""


@dataclass(frozen=True)
class Policy:
    """When the assignment is due, and what a late notebook loses."""

    due: dt.datetime  # aware
    percent_per_day: float = 0.0
    max_percent: float = 100.0
    zero_after_days: int | None = None
    extensions: dict[str, dt.timedelta] = field(default_factory=dict)  # student -> added time
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # student -> line

    # ------------------------------------------------------------ deadlines
    def due_for(self, student: str) -> dt.datetime:
        """``student``'s due date, their extension included."""
        return self.due + self.extensions.get(student, dt.timedelta())

    @property
    def due_utc(self) -> dt.datetime:
        """The due date as nbgrader's gradebook keeps it: naive, in UTC."""
        return naive_utc(self.due)

    # -------------------------------------------------------------- penalty
    def days_late(self, seconds_late: float) -> int:
        """Days late, a part of a day counting as one."""
        return math.ceil(seconds_late / DAY) if seconds_late > 0 else 0

    def zeroed(self, seconds_late: float) -> bool:
        return self.zero_after_days is not None and seconds_late > self.zero_after_days * DAY

    def penalty(self, score: float, seconds_late: float) -> float:
        """What a notebook scoring ``score``, ``seconds_late`` late, loses:
        never more than its score, and never more than ``max_percent`` of it
        until ``zero_after_days`` have passed."""
        if score <= 0 or seconds_late <= 0:
            return 0.0
        if self.zeroed(seconds_late):
            return float(score)
        percent = min(self.percent_per_day * self.days_late(seconds_late), self.max_percent)
        return min(float(score), score * percent / 100)  # 100 % of it is all of it, exactly

    # ---------------------------------------------------------- explaining
    def schedule(self) -> str:
        """The late schedule in words."""
        if self.percent_per_day == 0 and self.zero_after_days is None:
            return "no penalty for lateness"
        parts = []
        if self.percent_per_day:
            parts.append(
                f"{self.percent_per_day:g} % of the score per day late (a part of a day counts "
                f"as a day), at most {self.max_percent:g} %"
            )
        if self.zero_after_days is not None:
            parts.append(f"0 points when more than {self.zero_after_days} day(s) late")
        return "; ".join(parts)

    def deadline(self, student: str) -> str:
        """``student``'s due date in words, with their extension if any."""
        where = f"due {shown(self.due_for(student))}"
        if student in self.extensions:
            where += f" (an extension of {_span(self.extensions[student])} from {shown(self.due)})"
        return where

    def time_left(self, student: str, now: dt.datetime) -> str:
        """What a learner is told: their due date and the time left (or how
        late it is now, and what the schedule takes for that)."""
        left = self.due_for(student) - now
        where = self.deadline(student)
        if left > dt.timedelta():
            return f"{where}: {_span(left)} left"
        return f"{where}: {_span(-left)} ago; late work loses {self.schedule()}"

    def explain(self, student: str, submitted: dt.datetime | None, penalty: float) -> str:
        """What was applied to ``student``'s submission (made at ``submitted``,
        naive UTC as nbgrader records it) and why, in one line."""
        due = self.due_for(student)
        where = self.deadline(student)
        if submitted is None:
            return f"{where}; no submission time was recorded, so no late penalty"
        seconds = (submitted - naive_utc(due)).total_seconds()
        when = f"submitted {shown(submitted.replace(tzinfo=dt.timezone.utc))}"
        if seconds <= 0:
            return f"{where}; {when}, on time: no late penalty"
        late = f"{_span(dt.timedelta(seconds=seconds))} late"
        return f"{where}; {when}, {late}: {self.schedule()}; penalty {penalty:g} point(s)"

    def fingerprint(self, student: str) -> str:
        """What decides ``student``'s penalty (their due date and the
        schedule): a change regrades them."""
        data = [self.due_for(student).isoformat(), self.percent_per_day, self.max_percent,
                self.zero_after_days]  # fmt: skip
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:24]

    def check_students(self, known: set[str], path: Path) -> None:
        """Refuse an extension for a student the course does not know."""
        for student in sorted(set(self.extensions) - known):
            raise PolicyError(
                f"{path}, line {self.lines[student]}: an extension for {student!r}, who is not "
                "a student of this course (not in the gradebook, no submitted/ folder); check "
                f"the spelling, or add them first (nbgrader db student add {student})"
            )


def naive_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None)


def shown(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days} day(s)"] if days else []
    if hours or not days:
        parts.append(f"{hours} hour(s)")
    if not days and not hours:
        parts = [f"{rest // 60} minute(s)"]
    return " ".join(parts)


# ------------------------------------------------------------------ reading
def _line_of(text: str, table: str, key: str) -> int:
    """The line (from 1) where ``key`` is set in ``[table]`` (``""``: the top)."""
    current = ""
    pattern = re.compile(rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[([^\[\]]+)\]", line)
        if header:
            current = header.group(1).strip()
        elif current == table and pattern.match(line):
            return number
    return 1


class _Reader:
    def __init__(self, text: str, path: Path):
        self.text, self.path = text, path

    def fail(self, table: str, key: str, message: str) -> PolicyError:
        name = f"[{table}] {key}" if table else key
        line = _line_of(self.text, table, key)
        return PolicyError(f"{self.path}, line {line}: {name} {message}")

    def known(self, table: str, values: dict) -> None:
        for key in values:
            if key not in SETTINGS[table]:
                raise self.fail(
                    table, key, "is not a setting of the policy (it knows "
                    f"{', '.join(SETTINGS[table])}); check the spelling"
                )  # fmt: skip

    def moment(self, table: str, key: str, value: object) -> dt.datetime:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value
        if isinstance(value, dt.datetime):
            raise self.fail(
                table, key, f"= {value.isoformat()} has no time zone; add one, as in "
                f"{value.isoformat()}+02:00 or {value.isoformat()}Z (UTC)"
            )  # fmt: skip
        if isinstance(value, dt.date):
            raise self.fail(
                table, key, f"= {value.isoformat()} has no time of day; write it as in "
                f"{value.isoformat()}T23:59:00+02:00"
            )  # fmt: skip
        raise self.fail(
            table, key, f"= {value!r} is not a date and time; write it as TOML's "
            "date-time with a time zone, as in 2026-10-09T23:59:00+02:00 (no quotes)"
        )  # fmt: skip

    def number(self, table: str, key: str, value: object, top: float | None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise self.fail(table, key, f"= {value!r} is not a number")
        if value < 0:
            raise self.fail(table, key, f"= {value:g} is negative; it must be 0 or more")
        if top is not None and value > top:
            raise self.fail(table, key, f"= {value:g} is more than {top:g}")
        return float(value)


def parse(text: str, path: Path) -> Policy:
    """The policy in ``text`` (read from ``path``, named in errors), whole."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(
            f"{path}: not a policy file TOML can read: {error} (a date is written as in "
            "2026-10-09T23:59:00+02:00)"
        ) from None
    reader = _Reader(text, path)
    reader.known("", data)
    if "due" not in data:
        raise PolicyError(
            f"{path}: no due date; add a line such as due = 2026-10-09T23:59:00+02:00 at the top"
        )
    due = reader.moment("", "due", data["due"])
    late = data.get("late", {})
    if not isinstance(late, dict):
        raise reader.fail("", "late", "must be a table: a line [late] with its settings below")
    reader.known("late", late)
    per_day = reader.number("late", "percent_per_day", late.get("percent_per_day", 0), 100)
    most = reader.number("late", "max_percent", late.get("max_percent", 100), 100)
    zero_after = late.get("zero_after_days")
    if zero_after is not None:
        if isinstance(zero_after, bool) or not isinstance(zero_after, int):
            raise reader.fail("late", "zero_after_days", f"= {zero_after!r} is not whole days")
        reader.number("late", "zero_after_days", zero_after, None)
    granted = data.get("extensions", {})
    if not isinstance(granted, dict):
        raise reader.fail("", "extensions", "must be a table: [extensions], then student = date")
    extensions, lines = {}, {}
    for student, value in granted.items():
        if not is_student_id(student):
            raise reader.fail("extensions", student, "is not a student id (ASCII letters, "
                              "digits and . _ @ + -, starting with a letter or digit)")  # fmt: skip
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            extension = dt.timedelta(days=reader.number("extensions", student, value, None))
        else:
            extension = reader.moment("extensions", student, value) - due
        if extension < dt.timedelta():
            raise reader.fail("extensions", student, "is before the due date; an extension "
                              "gives more time, never less")  # fmt: skip
        extensions[student] = extension
        lines[student] = _line_of(text, "extensions", student)
    return Policy(due, per_day, most, zero_after, extensions, lines)


def read(path: Path) -> Policy | None:
    """The policy in ``path``; None if there is no such file (no deadline)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(f"{path}: cannot be read ({error})") from None
    return parse(text, path)
