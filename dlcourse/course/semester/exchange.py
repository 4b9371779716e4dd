"""The course's side of nbgrader's exchange: release, collect, release feedback.

Students fetch, submit and fetch feedback with nbgrader's own command and its
JupyterLab assignment list; the instructor's three steps run nbgrader's own
exchange classes (``nbgrader.exchange.default``) in this process, with the
course's configuration, after checking what nbgrader would only half say:
that the exchange folder exists and is world-writable with the sticky bit,
and that it holds this course (not one under another id).

``collect`` files each student's latest submission under
``submitted/<student>/ch01/``, where ``dlcourse grade`` grades it as it is.
A submission there that did not come from the exchange (an LMS download,
say) is never replaced. A submission's time is the one in its name and its
``timestamp.txt``, which its student wrote, unless its files changed later
than that (by more than :data:`SLACK`): then the latest change, which nobody
can set back, is its time, in the collected copy, and collect says so.
``release_feedback`` hands out a student's feedback
only when it is the feedback of the submission now collected (graded since
it was collected), keyed, as nbgrader does, by that submission's secret, so
that each student can fetch their own and nobody else's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from traitlets.config import Config

from dlcourse.course import nbgrader_cli
from dlcourse.course.grading import intake
from dlcourse.course.grading.ledger import Ledger
from dlcourse.course.layout import ASSIGNMENT, Layout

if TYPE_CHECKING:
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.abc import Exchange

MODE = 0o1777  # what nbgrader's exchange root must be: everyone writes, nobody removes another's
# how much later than its stated time a submission's files may have changed (nbgrader's
# submit writes them just after it takes the time) before that change is its time
SLACK = timedelta(minutes=5)


class ExchangeError(RuntimeError):
    """An exchange step cannot be done; the message says why and what to do."""


@dataclass
class Report:
    """What a step did, student by student, and what it did not do and why."""

    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def configured_root(layout: Layout) -> Path:
    """The exchange folder the course's ``nbgrader_config.py`` names (``c.Exchange.root``)."""
    from nbgrader.exchange.default import Exchange

    return Path(Exchange(config=nbgrader_cli.load_config(layout.root)).root)


def check_root(root: Path) -> None:
    """Refuse an exchange folder that is missing, not a folder, or not
    world-writable with the sticky bit (then any student could move the
    course's folder away and put one of their own in its place)."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise ExchangeError(
            f"the exchange folder {root} does not exist: create it, as root, with "
            f"`install -d -m 1777 {root}` (or pass the right folder with --exchange)"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ExchangeError(f"the exchange {root} is not a folder; give a folder with --exchange")
    mode = stat.S_IMODE(st.st_mode)
    if mode != MODE:
        raise ExchangeError(
            f"the exchange folder {root} has mode {mode:04o}; nbgrader's exchange must be "
            f"writable by everyone with the sticky bit (mode 1777): run, as its owner or root, "
            f"`chmod 1777 {root}`"
        )


def check_course(root: Path, course_id: str) -> Path:
    """The course's folder in the exchange, refusing one that is missing (a
    course id mismatch, or nothing released yet) or belongs to someone else."""
    course = root / course_id
    if not course.is_dir():
        others = sorted(p.name for p in root.iterdir() if p.is_dir())
        hint = (
            f"it holds {', '.join(others)}: is c.CourseDirectory.course_id in nbgrader_config.py "
            "the course id it was released under?"
            if others
            else "release the assignment first (`dlcourse exchange release`)"
        )
        raise ExchangeError(f"the exchange {root} has no course {course_id!r}; {hint}")
    owner = course.stat().st_uid
    if owner != os.geteuid():
        raise ExchangeError(
            f"{course} belongs to user id {owner}, not to you ({os.geteuid()}): run the "
            "instructor's steps as the user who released the course"
        )
    return course


@dataclass
class Step:
    """What one of nbgrader's exchange classes is made with, and what it logged."""

    config: Config
    coursedir: CourseDirectory
    log: logging.Logger
    messages: nbgrader_cli.Messages

    def make(self, kind: type) -> Exchange:
        from nbgrader.auth import Authenticator

        return kind(
            coursedir=self.coursedir,
            authenticator=Authenticator(config=self.config),
            config=self.config,
            log=self.log,
        )


@contextmanager
def _exchange(layout: Layout, root: Path, **coursedir: str) -> Iterator[Step]:
    """nbgrader's configuration, course directory and log for the course,
    with the exchange at ``root``; nbgrader's failures become
    :class:`ExchangeError` with what it logged."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import ExchangeError as NbgraderExchangeError

    nbgrader_cli.put_tools_on_path()
    config = nbgrader_cli.load_config(layout.root)
    config.Exchange.root = str(root)
    folder = CourseDirectory(config=config)
    folder.assignment_id = ASSIGNMENT
    for name, value in coursedir.items():
        setattr(folder, name, value)
    log = logging.getLogger(f"dlcourse.exchange.{id(folder)}")
    log.propagate = False
    messages = nbgrader_cli.Messages()
    log.addHandler(messages)
    try:
        yield Step(config, folder, log, messages)
    except NbgraderExchangeError as error:
        said = "\n".join(dict.fromkeys([*messages.lines, str(error)]))
        raise ExchangeError(f"nbgrader's exchange refused: {said}") from None
    finally:
        log.removeHandler(messages)


def release(layout: Layout, root: Path, force: bool = False) -> Path:
    """Put the learner notebooks (``notebooks/ch01``) into the exchange, where
    students fetch them; ``force`` replaces a release already there (what a
    student fetched is theirs and stays as it is). Returns the released folder."""
    from nbgrader.exchange.default import ExchangeReleaseAssignment

    check_root(root)
    if not layout.released_notebooks():
        raise ExchangeError(f"{layout.release} has no notebooks: run `dlcourse release` first")
    with _exchange(layout, root) as step:
        releasing = step.make(ExchangeReleaseAssignment)
        releasing.force = force
        releasing.start()
    return root / step.coursedir.course_id / "outbound" / ASSIGNMENT


def _from_exchange(folder: Path) -> bool:
    return (folder / intake.SECRET).is_file()


def collect(layout: Layout, root: Path) -> Report:
    """Each student's latest submission into ``submitted/<student>/ch01/``,
    replacing an earlier one collected from the exchange (which keeps every
    submission), never a folder put there by other means."""
    from nbgrader.exchange.default import ExchangeCollect

    check_root(root)
    course_id = nbgrader_cli.load_config(layout.root).CourseDirectory.course_id
    inbound = check_course(root, course_id) / "inbound"
    report = Report()
    folders: dict[str, list[Path]] = {}
    for folder in sorted(inbound.glob(f"*+{ASSIGNMENT}+*")):
        folders.setdefault(folder.name.rsplit("+", 3)[0], []).append(folder)
    for student, theirs in folders.items():
        if not intake.is_student_id(student):
            report.problems.append(
                f"{student!r}: not a valid student id; its submission was left in the exchange"
            )
            continue
        refused = {folder: _refused(folder, student) for folder in theirs}
        report.problems += [
            f"{student}: {folder.name!r} in the exchange's inbound is {why}; "
            "it was not collected (remove it from the exchange)"
            for folder, why in refused.items()
            if why
        ]
        if all(refused.values()):
            continue
        there = layout.submitted(student)
        if there.exists() and not _from_exchange(there):
            report.problems.append(
                f"{student}: {there} was not collected from the exchange (it has no "
                f"{intake.SECRET}); move it away to collect {student}'s submission"
            )
            continue
        with _gradebook_for_due_date(layout) as db_url, _exchange(
            layout, root, student_id=student, db_url=db_url
        ) as step:
            collecting = step.make(_owned(ExchangeCollect))
            collecting.update = True
            collecting.start()
            # nbgrader's warnings (a submission owned by another user than it names, say)
            report.problems += [f"{student}: {' '.join(m.split())}" for m in step.messages.lines]
        report.done.append(student)
    return report


def _refused(folder: Path, student: str) -> str | None:
    """Why ``folder``, in the exchange's inbound, is not a submission of
    ``student``'s to collect, or None. nbgrader's collect takes the folder
    with the latest time in its name, and only warns when its owner is not
    the student it names: anybody may write to inbound, so a folder named
    for a classmate with a time far ahead would replace their work."""
    import pwd

    from nbgrader.utils import parse_utc

    parts = folder.name.rsplit("+", 3)
    if len(parts) < 3 or parts[0] != student:
        return f"not named {student}+{ASSIGNMENT}+<time>"
    try:
        parse_utc(parts[2])
    except (ValueError, OverflowError):  # dateutil's ParserError is a ValueError
        return "named with no time nbgrader can read"
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    odd = _not_a_file(folder)
    if odd:
        return odd
    try:
        uid = pwd.getpwnam(student).pw_uid
    except KeyError:
        return None  # not a user of this machine: nbgrader's own owner check warns
    if info.st_uid != uid:
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = f"user id {info.st_uid}"
        return f"owned by {owner}, not by {student}"
    return None


def _entries(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Everything in ``folder``, with its own status (links not followed);
    what cannot be looked at is left out (collect could not copy it either)."""
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                yield Path(top) / name, (Path(top) / name).lstat()


def _not_a_file(folder: Path) -> str | None:
    """What in ``folder`` is neither a file nor a folder (a link, which
    nbgrader's copy would follow, to a file changed after the deadline or one
    only the instructor may read), or None."""
    for path, info in _entries(folder):
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            kind = "a link" if stat.S_ISLNK(info.st_mode) else "neither a file nor a folder"
            return f"holding {kind}, {path.relative_to(folder)}"
    return None


def _last_change(folder: Path) -> datetime:
    """When ``folder`` or anything in it last changed (its ctime, which no
    user can set back, unlike the time in a name, a file or an mtime), in UTC
    without a time zone, as nbgrader's times are."""
    latest = max([folder.lstat().st_ctime, *(info.st_ctime for _, info in _entries(folder))])
    return datetime.fromtimestamp(latest, timezone.utc).replace(tzinfo=None)


def _dated(stated: datetime, changed: datetime) -> datetime:
    """A submission's time: the one it states, unless its files changed later
    than :data:`SLACK` after it."""
    return changed if changed - stated > SLACK else stated


def _owned(kind: type) -> type:
    """nbgrader's collect, of the folders :func:`_refused` lets through only,
    each dated no earlier than its files last changed (less :data:`SLACK`).

    Once nbgrader has chosen a student's folder, and before it removes their
    earlier copy, the folder is copied with its links kept as links (nbgrader's
    copy would follow them) into a folder of the instructor's, and looked at
    again: a link made meanwhile, or a copy that fails, leaves the earlier copy
    as it is; a change until then dates it later (a ctime only ever grows).
    nbgrader copies that snapshot, which nobody else can change."""

    class OwnedCollect(kind):
        def start(self) -> None:
            with tempfile.TemporaryDirectory(prefix="dlcourse-collect-") as tmp:
                self.staging = Path(tmp)
                super().start()

        def init_src(self) -> None:
            self.stated: dict[str, datetime] = {}  # folder name -> the time it states
            try:
                super().init_src()
            except IndexError:  # the student's folders were all refused, or went since listed
                self.src_records = []
            self.src_records = [r for r in self.src_records if self._staged(r)]

        def _path_to_record(self, path: str) -> dict:
            if _refused(Path(path), self.coursedir.student_id):
                return {"username": self.coursedir.student_id, "refused": True}
            record = super()._path_to_record(path)
            self.stated[record["filename"]] = record["timestamp"]
            record["timestamp"] = _dated(record["timestamp"], _last_change(Path(path)))
            return record

        def _staged(self, record: dict) -> bool:
            """Snapshot the folder ``record`` names, and date it; or say why not."""
            from nbgrader.utils import ignore_patterns

            name, course = record["filename"], self.coursedir
            src = Path(self.inbound_path) / name
            try:
                shutil.copytree(src, self.staging / name, symlinks=True, ignore=ignore_patterns(
                    exclude=course.ignore, include=course.include,
                    max_file_size=course.max_file_size, log=self.log))  # fmt: skip
            except OSError as error:  # shutil.Error too: a file went while it was copied
                self.log.warning(f"{name!r} could not be copied ({error}): "
                                 "it was not collected")  # fmt: skip
                return False
            odd = _not_a_file(self.staging / name)
            if odd:
                self.log.warning(f"{name!r} was changed to {odd} while it was collected: "
                                 "it was not collected")  # fmt: skip
                return False
            record["timestamp"] = _dated(self.stated[name], _last_change(src))
            return True

        def do_copy(self, src: str, dest: str, log: logging.Logger | None = None) -> None:
            name = Path(src).name
            super().do_copy(str(self.staging / name), dest, log)
            stated = self.stated[name]
            dated = next(r["timestamp"] for r in self.src_records if r["filename"] == name)
            if dated != stated:
                when = dated.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
                (Path(dest) / intake.TIMESTAMP).write_text(when)
                self.log.warning(
                    f"{name!r} states it was submitted at {stated} UTC, but its "
                    f"files last changed at {when}: that is its submission time"
                )

        def _sort_by_timestamp(self, records: list[dict]) -> list[dict]:
            return super()._sort_by_timestamp([r for r in records if "refused" not in r])

    return OwnedCollect


@contextmanager
def _gradebook_for_due_date(layout: Layout) -> Iterator[str]:
    """The gradebook nbgrader's collect reads the due date from: the course's
    once grading made it, else an empty one of its own (nbgrader would
    create the course's, and grading needs to make it itself)."""
    if layout.gradebook.exists():
        yield f"sqlite:///{layout.gradebook}"
        return
    with tempfile.TemporaryDirectory(prefix="dlcourse-collect-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'gradebook.db'}"


def release_feedback(layout: Layout, root: Path) -> Report:
    """Each graded student's feedback pages into the exchange, for the
    submission now collected, where only that student can find them."""
    from nbgrader.exchange.default import ExchangeReleaseFeedback

    check_root(root)
    course_id = nbgrader_cli.load_config(layout.root).CourseDirectory.course_id
    check_course(root, course_id)
    report = Report()
    ledger = Ledger(layout)
    expected = intake.expected_notebooks(layout.release)
    with tempfile.TemporaryDirectory(prefix="dlcourse-feedback-") as tmp:
        staged = Path(tmp)
        for student in intake.students(layout.submitted_root)[0]:
            problem = _stage(layout, ledger, expected, student, staged)
            if problem:
                report.problems.append(f"{student}: {problem}")
            else:
                report.done.append(student)
        if report.done:
            with _exchange(layout, root, feedback_directory=str(staged)) as step:
                step.make(ExchangeReleaseFeedback).start()
    return report


def _stage(
    layout: Layout, ledger: Ledger, expected: dict[str, set[str]], student: str, staged: Path
) -> str:
    """Put ``student``'s feedback pages with their submission's timestamp and
    secret under ``staged/<student>/ch01/``, as nbgrader's release of feedback
    reads them; or say why not."""
    submitted = layout.submitted(student)
    if not _from_exchange(submitted):
        return f"not collected from the exchange (no {intake.SECRET}); no feedback to release"
    pages = sorted(layout.feedback(student).glob("*.html"))
    submission = intake.read_submission(layout.submitted_root, student, ASSIGNMENT, expected)
    if not pages or ledger.marker(student) != submission.digests:
        return "not graded since it was collected: run `dlcourse grade`, then release again"
    folder = staged / student / ASSIGNMENT
    folder.mkdir(parents=True)
    for page in pages:
        shutil.copyfile(page, folder / page.name)
    for name in (intake.TIMESTAMP, intake.SECRET):
        shutil.copyfile(submitted / name, folder / name)
    return ""


def student_config(layout: Layout, root: Path) -> str:
    """The ``nbgrader_config.py`` students' nbgrader needs to find the course:
    its id and the exchange (saved in a folder of their Jupyter config path)."""
    course_id = nbgrader_cli.load_config(layout.root).CourseDirectory.course_id
    return (
        f'"""nbgrader for the students of {course_id}: the course and its exchange '
        '(written by `dlcourse`)."""\n\n'
        "c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)\n"
        f"c.CourseDirectory.course_id = {course_id!r}\n"
        f"c.Exchange.root = {str(root)!r}\n"
    )
