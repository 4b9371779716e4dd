"""The `dlcourse` command: the course for learners and instructors."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dlcourse.course.layout import WITHHELD_APPENDIX, Layout
from dlcourse.course.semester import commands

ROOT_HELP = "the course folder (default: the current folder, or the repository this package is in)"


def course_root(given: str | None) -> Path:
    """The course folder: ``--root``, else the current folder or the repository
    this package was installed from (whichever has nbgrader_config.py)."""
    candidates = [Path(given)] if given else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if (folder / "nbgrader_config.py").exists():
            return folder.resolve()
    raise SystemExit(
        f"dlcourse: no course here: {candidates[0]} has no nbgrader_config.py. Run the command "
        "in the course folder (the repository) or pass --root FOLDER."
    )


NO_NEWS = '{"fetchNews": "false"}\n'


def answer_no_to_news(config_dir: Path) -> None:
    """JupyterLab asks every new user whether to fetch Jupyter's news from the
    internet; in the course's own configuration the answer is no (a learner
    can change it under Settings). A settings file that exists is left alone."""
    path = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    path /= "notification.jupyterlab-settings"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NO_NEWS)


def cmd_lab(args: argparse.Namespace, extra: list[str]) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        raise SystemExit(
            "dlcourse lab: JupyterLab is not installed; pip install 'dlcourse[course]'."
        )
    from dlcourse.course import workspace

    layout = Layout.of(course_root(args.root))
    env = dict(os.environ)
    if "JUPYTER_CONFIG_DIR" not in env:  # the course's own configuration, kept in the course
        config = layout.instructor_jupyter_config if args.instructor else layout.jupyter_config
        env["JUPYTER_CONFIG_DIR"] = str(config)
        if "JUPYTERLAB_SETTINGS_DIR" not in env:
            answer_no_to_news(config)
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    top = layout.root if args.instructor else layout.workspace
    first = next(iter(layout.released_notebooks()), None)
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--LabApp.default_url=/lab/tree/{first.relative_to(top).as_posix()}"
        if first
        else "--LabApp.default_url=/lab",
        # The course reads nothing off the network: no news feed, no update check.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        # Kernels' channels encrypted (CurveZMQ) rather than plain-text TCP.
        "--KernelManager.transport_encryption=auto",
    ]
    if args.instructor:
        command.append(f"--ServerApp.root_dir={layout.root}")
    else:
        command += workspace.learner_options(layout)
        paths = [str(workspace.LEARNER_JUPYTER_PATH), env.get("JUPYTER_CONFIG_PATH", "")]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in paths if p)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    os.execve(sys.executable, command + extra, env)
    return 0


def cmd_release(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course import release

    root = course_root(args.root)
    lines = release.release(root, answers=args.answers)
    print("\n".join(lines) or "everything was up to date")
    if not Layout.of(root).answers_released:
        print(
            f"Appendix A is withheld in {WITHHELD_APPENDIX}, out of the learners' reach; "
            "`dlcourse release --answers` releases it into their workspace."
        )
    return 0


def cmd_check(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course import check
    from dlcourse.course.semester import deadlines, policy

    path = Path(args.notebook)
    if not path.is_file():
        raise SystemExit(f"dlcourse check: {path} is not a file; give the path of your notebook.")
    try:
        rows = check.check(path, timeout=args.timeout)
    except check.Unreadable as error:
        raise SystemExit(f"dlcourse check: {error}") from None
    if not rows:
        raise SystemExit(f"dlcourse check: {path} has no graded exercises.")
    print(check.table(rows))
    try:
        when = check.deadline(path)
    except (policy.PolicyError, deadlines.Unavailable) as error:
        when = f"The course's deadline cannot be read ({error}); ask your instructor."
    if when:
        print(when)
    return 0 if all(r.passed for r in rows) else 1


def cmd_grade(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course import grading
    from dlcourse.course.semester import ownership

    root = course_root(args.root)
    layout = Layout.of(root)
    if args.from_downloads:
        filed, problems = grading.collect(root, Path(args.from_downloads))
        for path in filed:
            print(f"filed {path}")
        for problem in problems:
            print(f"not filed: {problem}")
    options = grading.Options(
        workers=args.workers,
        timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
        grader_timeout=args.grader_timeout,
        memory_mb=args.memory,
        students=args.student,
        force=args.force,
        unsafe=args.unsafe,
        scheduler=args.scheduler,
    )
    bar = grading.ProgressBar()
    try:
        summary = grading.grade(root, options, bar)
    except grading.GradingError as error:
        raise SystemExit(f"dlcourse grade: {error}") from None
    finally:
        bar.close()
    ownership.hand_back(layout)  # graded by root in an instructor's course: theirs again
    print(
        f"graded {len(summary.graded)} student(s); {len(summary.skipped)} already graded "
        f"(--force to regrade)"
    )
    if summary.graded:
        print(
            f"gradebook: {layout.gradebook}; grades: {layout.grades_csv}; "
            f"feedback: {layout.feedback('<student>')}/"
        )
    if summary.problems:
        print("\nproblems:")
        for student, problems in sorted(summary.problems.items()):
            for problem in problems:
                print(f"  {student}: {problem}")
    return 0


def cmd_export(args: argparse.Namespace, extra: list[str]) -> int:
    from nbgrader.api import Gradebook

    from dlcourse.course import nbgrader_cli
    from dlcourse.course.semester import late, lms, policy

    nbgrader_cli.put_tools_on_path()  # the gradebook may run alembic
    layout = Layout.of(course_root(args.root))
    if not layout.gradebook.exists():
        raise SystemExit(f"dlcourse export: no gradebook at {layout.gradebook}; grade first")
    if args.format == "csv":
        to = Path(args.to) if args.to else layout.grades_csv
        with Gradebook(f"sqlite:///{layout.gradebook}") as gb:
            late.PolicyCsvExportPlugin(to=str(to), policy_file=str(layout.policy)).export(gb)
        print(f"grades: {to}")
        return 0
    if not args.roster:
        raise SystemExit(
            f"dlcourse export --format {args.format}: give the roster exported from the LMS "
            "(--roster FILE), so that its students are matched by the LMS's own ids"
        )
    plugin_class = {"canvas": lms.CanvasExportPlugin, "moodle": lms.MoodleExportPlugin}[args.format]
    settings = {"roster": args.roster, "to": args.to or str(layout.lms_grades(args.format)),
                "policy_file": str(layout.policy)}  # fmt: skip
    settings.update({k: v for k, v in (("match", args.match), ("title", args.title)) if v})
    plugin = plugin_class(**settings)
    try:
        with Gradebook(f"sqlite:///{layout.gradebook}") as gb:
            plugin.export(gb)
    except (lms.RosterError, late.StalePenalties, policy.PolicyError) as error:
        raise SystemExit(f"dlcourse export: {error}") from None
    print(f"grades for {args.format.capitalize()}: {plugin.to}")
    if plugin.unmatched:
        print(f"not in the roster, so not exported ({len(plugin.unmatched)}): "
              + ", ".join(plugin.unmatched))  # fmt: skip
    return 0


def cmd_update(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course import nbgrader_cli
    from dlcourse.course.layout import ASSIGNMENT
    from dlcourse.course.semester import update

    target = Path(args.target)
    if args.exchange:
        course_id = args.course or nbgrader_cli.load_config(
            course_root(args.root)).CourseDirectory.course_id  # fmt: skip
        release = update.outbound(Path(args.exchange), course_id, ASSIGNMENT)
    else:
        release = Path(args.release) if args.release else Layout.of(course_root(args.root)).release
    try:
        release = update.release_folder(release)
        if target.resolve() in (release.resolve(), *release.resolve().iterdir()):
            raise update.UpdateError(
                f"{target} is the release itself; give your own copy (the folder nbgrader "
                "fetch_assignment made, or a notebook in it)"
            )
        lines, kept = update.update(target, release)
    except update.UpdateError as error:
        raise SystemExit(f"dlcourse update: {error}") from None
    print("\n".join(lines))
    print(f"your notebooks as they were, and what was set aside: {kept}")
    return 1 if any("CONFLICT" in line for line in lines) else 0


def cmd_book(args: argparse.Namespace, extra: list[str]) -> int:
    from dlcourse.course import book

    root = course_root(args.root)
    out = Path(args.out) if args.out else root / "build" / "book"
    withheld = not Layout.of(root).answers_released
    if withheld:
        print(f"Appendix A is withheld ({WITHHELD_APPENDIX}): the book leaves it out too.")
    try:
        first = book.build_book(root, out, include_answers=not (args.no_answers or withheld))
    except book.BookError as error:
        raise SystemExit(f"dlcourse book: {error}") from None
    print(f"the book: {first}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # no abbreviations: whatever `dlcourse lab` does not know goes to JupyterLab as it is
    parser = argparse.ArgumentParser(
        prog="dlcourse",
        description="Chapter 1 of the deep-learning course: learn, release, grade.",
        allow_abbrev=False,
    )
    parser.add_argument("--root", help=ROOT_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser(
        "lab",
        help="open the learner's workspace in JupyterLab (other options go to JupyterLab)",
        allow_abbrev=False,
    )
    lab.add_argument(
        "--instructor",
        action="store_true",
        help="the whole course instead, with the solutions, formgrader and a terminal",
    )
    lab.set_defaults(run=cmd_lab)
    rel = sub.add_parser("release", help="regenerate notebooks/ and Appendix A from solutions/")
    answers = rel.add_mutually_exclusive_group()
    answers.add_argument(
        "--no-answers",
        dest="answers",
        action="store_false",
        default=None,
        help="withhold Appendix A from the learners' workspace, in this and later releases",
    )
    answers.add_argument(
        "--answers",
        dest="answers",
        action="store_true",
        default=None,
        help="release Appendix A into the learners' workspace (after the deadline)",
    )
    rel.set_defaults(run=cmd_release)
    chk = sub.add_parser("check", help="run a notebook and show which exercises pass")
    chk.add_argument("notebook")
    chk.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    chk.set_defaults(run=cmd_check)
    grd = sub.add_parser("grade", help="autograde submitted/<student>/ch01/ in parallel, confined")
    grd.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 1)),
        help="notebooks graded at once (default: the number of cores)",
    )
    grd.add_argument("--timeout", type=int, default=60, help="seconds per cell (default 60)")
    grd.add_argument(
        "--notebook-timeout",
        type=int,
        default=900,
        help="seconds per notebook, all its cells together (default 900)",
    )
    grd.add_argument(
        "--grader-timeout",
        type=int,
        default=300,
        help="seconds of the grader's own work per student, its kernels' time not counted "
        "(default 300)",
    )
    grd.add_argument("--memory", type=int, default=2048, help="MB per kernel (default 2048)")
    grd.add_argument("--student", action="append", help="grade only this student (repeatable)")
    grd.add_argument("--force", action="store_true", help="regrade students already graded")
    grd.add_argument(
        "--unsafe", action="store_true", help="grade even where student code cannot be confined"
    )
    grd.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786)",
    )
    grd.add_argument(
        "--from-downloads",
        metavar="DIR",
        help="first file LMS downloads (zips or <student>_<notebook>.ipynb) from DIR",
    )
    grd.set_defaults(run=cmd_grade)
    exp = sub.add_parser("export", help="write the grades for an LMS's import (or as CSV)")
    exp.add_argument("--format", choices=["canvas", "moodle", "csv"], default="csv")
    exp.add_argument("--roster", metavar="FILE", help="the class list exported from the LMS (CSV)")
    exp.add_argument(
        "--match",
        metavar="COLUMN",
        help="the roster's column holding nbgrader's student ids "
        "(default: 'SIS Login ID' for Canvas, 'Email address' for Moodle)",
    )
    exp.add_argument("--title", help="the assignment's name in the LMS (default: ch01)")
    exp.add_argument("--to", metavar="FILE", help="where to write (default: grades-<format>.csv)")
    exp.set_defaults(run=cmd_export)
    upd = sub.add_parser(
        "update", help="merge a new release (an erratum) into your notebooks, keeping your answers"
    )
    upd.add_argument("target", help="your notebook, or your assignment folder (as fetched)")
    source = upd.add_mutually_exclusive_group()
    source.add_argument(
        "--release", metavar="DIR", help="the new release's notebooks (default: the course's)"
    )
    source.add_argument(
        "--exchange",
        metavar="ROOT",
        help="an nbgrader exchange: the release is ROOT/<course>/outbound/ch01/",
    )
    upd.add_argument("--course", help="the course id in the exchange (default: the course's)")
    upd.set_defaults(run=cmd_update)
    bk = sub.add_parser("book", help="build the course as a static website that reads offline")
    bk.add_argument("--out", metavar="DIR", help="where to write it (default: build/book)")
    bk.add_argument(
        "--no-answers", action="store_true", help="leave Appendix A out (before the deadline)"
    )
    bk.set_defaults(run=cmd_book)
    commands.register(sub)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    return args.run(args, extra)


if __name__ == "__main__":
    sys.exit(main())
