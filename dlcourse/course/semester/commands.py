"""The semester's commands: `dlcourse exchange ...` and `dlcourse hub ...`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcourse.course.layout import Layout
    from dlcourse.course.semester.exchange import Report


def _layout_and_exchange(args: argparse.Namespace) -> tuple[Layout, Path]:
    from dlcourse.course.cli import course_root
    from dlcourse.course.layout import Layout
    from dlcourse.course.semester import exchange

    layout = Layout.of(course_root(args.root))
    root = Path(args.exchange) if args.exchange else exchange.configured_root(layout)
    return layout, root.absolute()


def _print(report: Report, what: str) -> None:
    for student in report.done:
        print(f"{what}: {student}")
    for problem in report.problems:
        print(f"  {problem}")


def cmd_exchange(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course.semester import exchange

    layout, root = _layout_and_exchange(args)
    try:
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
            layout, root = _layout_and_exchange(args)
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
        help="the exchange folder (default: c.Exchange.root in nbgrader_config.py)",
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
        help="config: the exchange shared by everyone (default: c.Exchange.root in "
        "nbgrader_config.py)",
    )
    hb.add_argument(
        "--group",
        default="students",
        help="config: the Unix group whose members may log in (default: students)",
    )
    hb.add_argument("--ip", default="127.0.0.1", help="config: the address to serve on")
    hb.add_argument("--port", type=int, default=8000, help="config: the port (default 8000)")
    hb.set_defaults(run=cmd_hub)
