"""The semester's commands: `dlcourse exchange ...` and `dlcourse hub ...`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcourse.course.layout import Layout
    from dlcourse.course.semester.exchange import Report


def _layout_and_exchange(args: argparse.Namespace, record: bool = False) -> tuple[Layout, Path]:
    """The course and its exchange: the one its nbgrader configuration names
    (recorded by the first ``--exchange``); a ``--exchange`` that differs is
    refused, except, where ``record``, the first one, which is recorded."""
    from dlcourse.course.cli import course_root
    from dlcourse.course.layout import Layout
    from dlcourse.course.semester import exchange, exchange_record

    layout = Layout.of(course_root(args.root))
    configured = exchange.configured_root(layout).absolute()
    if not args.exchange:
        return layout, configured
    given = Path(args.exchange).absolute()
    if _same(given, configured):
        return layout, given
    earlier = exchange_record.recorded(layout.root)
    if earlier is None and record:
        exchange.check_root(given)  # record only an exchange that can be used
        exchange_record.record(layout.root, given)
        if _same(exchange.configured_root(layout), given):
            return layout, given
        layout.exchange_record.unlink()
        raise exchange.ExchangeError(
            f"{layout.config} sets c.Exchange.root to {configured} itself, so the exchange "
            f"{given} cannot be recorded for the course: set it there, or give --exchange "
            f"{configured}"
        )
    if earlier is not None:
        raise exchange.ExchangeError(
            f"the course's exchange is {configured} (recorded in {layout.exchange_record} when "
            f"it was released), not {given}: leave out --exchange; to move the course to "
            f"{given}, delete that file and release again with --exchange {given}"
        )
    raise exchange.ExchangeError(
        f"the course's exchange is {configured} (c.Exchange.root in {layout.config}), not "
        f"{given}: release to {given} first (`dlcourse exchange release --exchange {given}` "
        "records it for the course), or leave out --exchange"
    )


def _same(one: Path, other: Path) -> bool:
    return os.path.realpath(one) == os.path.realpath(other)


def _print(report: Report, what: str) -> None:
    from dlcourse.course.grading import intake

    for student in report.done:
        print(f"{what}: {student}")
    for problem in report.problems:  # they quote the exchange's folder names, which students make
        print(f"  {intake.one_line(problem)}")


def cmd_exchange(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course.semester import exchange

    try:
        layout, root = _layout_and_exchange(args, record=args.step == "release")
        if args.step == "release":
            print(f"released: {exchange.release(layout, root, force=args.force)}")
        elif args.step == "collect":
            report = exchange.collect(layout, root)
            _print(report, "collected")
            print(f"{len(report.done)} submission(s) in {layout.submitted_root}; "
                  "`dlcourse grade` grades them")  # fmt: skip
        elif args.step == "feedback":
            report = exchange.release_feedback(layout, root)
            _print(report, "feedback released")
        else:
            print(exchange.student_config(layout, root), end="")
    except exchange.ExchangeError as error:
        raise SystemExit(f"dlcourse exchange {args.step}: {error}") from None
    return 0


def cmd_hub(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course.semester import exchange, hub

    folder = Path(args.config)
    try:
        if args.step == "config":
            layout, root = _layout_and_exchange(args, record=True)
            settings = hub.Settings(
                course=str(layout.root), exchange=str(root), group=args.group,
                ip=args.ip, port=args.port,
            )  # fmt: skip
            for path in hub.write(settings, folder):
                print(f"wrote {path}")
        problems = hub.check(folder)
    except (hub.HubError, exchange.ExchangeError) as error:
        raise SystemExit(f"dlcourse hub {args.step}: {error}") from None
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        return 1
    print(f"the hub is ready: as root, `jupyterhub -f {folder.absolute() / hub.HUB_CONFIG}`")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the semester's commands to `dlcourse`'s parser."""
    ex = sub.add_parser(
        "exchange",
        help="nbgrader's exchange: release ch01, collect submissions, release feedback",
    )
    ex.add_argument(
        "step",
        choices=["release", "collect", "feedback", "student-config"],
        help="release: notebooks/ch01 to the students; collect: their latest submissions into "
        "submitted/; feedback: the graded students' feedback to them; student-config: print "
        "the nbgrader_config.py students need",
    )
    ex.add_argument(
        "--exchange",
        metavar="DIR",
        help="the exchange folder: given once, to the first release, which records it for "
        "the course (default: the recorded one, c.Exchange.root in nbgrader_config.py)",
    )
    ex.add_argument(
        "--force", action="store_true", help="release: replace a release already in the exchange"
    )
    ex.set_defaults(run=cmd_exchange)
    hb = sub.add_parser(
        "hub", help="write (config) or check (check) a JupyterHub for the course's students"
    )
    hb.add_argument("step", choices=["config", "check"])
    hb.add_argument(
        "--config",
        metavar="DIR",
        default="/etc/jupyterhub",
        help="the hub's configuration folder (default: /etc/jupyterhub)",
    )
    hb.add_argument(
        "--exchange",
        metavar="DIR",
        help="config: the exchange shared by everyone (default: the one the course was "
        "released to, c.Exchange.root in nbgrader_config.py)",
    )
    hb.add_argument(
        "--group",
        default="students",
        help="config: the Unix group whose members may log in (default: students)",
    )
    hb.add_argument("--ip", default="127.0.0.1", help="config: the address to serve on")
    hb.add_argument(
        "--port",
        type=int,
        default=8000,
        help="config: the port for browsers (default 8000; the next three, on 127.0.0.1, are "
        "the hub's API, the proxy's and the deadline service's)",
    )
    hb.set_defaults(run=cmd_hub)
