"""The semester's commands: `dlcourse exchange ...` (and `dlcourse hub ...`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _layout_and_exchange(args: argparse.Namespace) -> tuple:
    from dlcourse.course.cli import course_root
    from dlcourse.course.layout import Layout
    from dlcourse.course.semester import exchange

    layout = Layout.of(course_root(args.root))
    root = Path(args.exchange) if args.exchange else exchange.configured_root(layout)
    return layout, root.absolute()


def _print(report: object, what: str) -> None:
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
