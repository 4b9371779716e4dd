"""Deadlines, extensions and the late schedule (policy.toml): read whole or
refused naming the line, the schedule's properties, and grading with it
through nbgrader's AssignLatePenalties: grades.csv and feedback say what
was applied and why, and a changed due date or extension regrades."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import warnings
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbgrader.api import Gradebook
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning
from test_grading_local import NOTEBOOK, UNSAFE, answered, course

from dlcourse.course import check, grading, nbgrader_cli
from dlcourse.course.cli import main
from dlcourse.course.layout import ASSIGNMENT, Layout
from dlcourse.course.semester import late
from dlcourse.course.semester.policy import DAY, Policy, PolicyError, parse

POLICY = """\
# the course's deadline
due = 2026-10-09T23:59:00+02:00

[late]
percent_per_day = 10
max_percent = 50
zero_after_days = 7

[extensions]
ann = 2026-10-12T23:59:00+02:00
ben = 3
"""
UTC = dt.timezone.utc


def test_a_policy_reads_into_due_dates_and_extensions() -> None:
    policy = parse(POLICY, Path("policy.toml"))
    assert policy.due == dt.datetime(2026, 10, 9, 21, 59, tzinfo=UTC)
    assert policy.due_for("ann") == policy.due_for("ben") == policy.due + dt.timedelta(days=3)
    assert policy.due_for("cat") == policy.due
    assert (policy.percent_per_day, policy.max_percent, policy.zero_after_days) == (10, 50, 7)


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        (("+02:00\n\n[late]", "\n\n[late]"), 2, "has no time zone"),
        (("due = 2026-10-09T23:59:00+02:00", 'due = "next friday"'), 2, "not a date and time"),
        (("due = 2026-10-09", "due = 2026-13-09"), 2, "TOML can read"),
        (("percent_per_day = 10", "percent_per_day = -10"), 5, "negative"),
        (("max_percent = 50", "max_percent = -1.5"), 6, "negative"),
        (("zero_after_days = 7", "zero_after_days = -2"), 7, "negative"),
        (("zero_after_days = 7", "zero_after_days = 1.5"), 7, "not whole days"),
        (("max_percent = 50", "max_percent = 150"), 6, "more than 100"),
        (("max_percent = 50", 'max_percent = "half"'), 6, "not a number"),
        (("max_percent", "max_pct"), 6, "not a setting"),
        (("ben = 3", "ben = -3"), 11, "negative"),
        (("ben = 3", "ben = 2026-09-01T00:00:00Z"), 11, "before the due date"),
        (("ben = 3", '"../ben" = 3'), 11, "not a student id"),
        (("ben = 3", "ben = 3\nben = 4"), 12, "TOML can read"),
    ],
)
def test_a_bad_policy_is_refused_naming_its_line(change: tuple[str, str], line: int,
                                                 says: str) -> None:  # fmt: skip
    text = POLICY.replace(*change)
    assert text != POLICY
    with pytest.raises(PolicyError) as error:
        parse(text, Path("policy.toml"))
    assert f"line {line}" in str(error.value)
    assert says in str(error.value)


def test_a_policy_without_a_due_date_is_refused() -> None:
    with pytest.raises(PolicyError, match="no due date"):
        parse("[late]\npercent_per_day = 10\n", Path("policy.toml"))


def test_an_extension_for_a_student_the_course_does_not_know_names_its_line() -> None:
    policy = parse(POLICY, Path("policy.toml"))
    policy.check_students({"ann", "ben", "cat"}, Path("policy.toml"))
    with pytest.raises(PolicyError, match=r"line 10: an extension for 'ann', who is not"):
        policy.check_students({"ben"}, Path("policy.toml"))


# ---------------------------------------------------------------- properties
schedules = st.builds(
    Policy,
    due=st.just(dt.datetime(2026, 10, 9, tzinfo=UTC)),
    percent_per_day=st.floats(0, 100),
    max_percent=st.floats(0, 100),
    zero_after_days=st.none() | st.integers(0, 30),
)
scores = st.floats(0, 100)
lateness = st.floats(-40 * DAY, 40 * DAY)


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(schedules, scores, lateness, st.floats(0, 40 * DAY))
def test_a_later_submission_never_scores_more(policy: Policy, score: float, early: float,
                                              more: float) -> None:  # fmt: skip
    later = early + more
    assert score - policy.penalty(score, later) <= score - policy.penalty(score, early)


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(schedules, scores, lateness, st.floats(0, 40 * DAY))
def test_an_extension_never_lowers_a_score(policy: Policy, score: float, late_by: float,
                                           extension: float) -> None:  # fmt: skip
    assert policy.penalty(score, late_by - extension) <= policy.penalty(score, late_by)


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(schedules, scores, lateness)
def test_a_penalty_is_never_below_the_floor_the_policy_states(policy: Policy, score: float,
                                                              late_by: float) -> None:  # fmt: skip
    kept = score - policy.penalty(score, late_by)
    assert 0 <= kept <= score
    if not policy.zeroed(late_by):
        assert kept >= score * (1 - policy.max_percent / 100) - 1e-9


def test_the_schedule_counts_a_part_of_a_day_as_a_day_and_zeroes_after_n_days() -> None:
    policy = parse(POLICY, Path("policy.toml"))
    assert policy.penalty(10, 1) == pytest.approx(1)
    assert policy.penalty(10, DAY + 1) == pytest.approx(2)
    assert policy.penalty(10, 6 * DAY) == pytest.approx(5)  # capped at 50 %
    assert policy.penalty(10, 7 * DAY) == pytest.approx(5)
    assert policy.penalty(10, 7 * DAY + 1) == 10
    assert policy.penalty(10, 0) == policy.penalty(10, -DAY) == 0


# ---------------------------------------------------------------- grading
def submit(layout: Layout, student: str, when: str) -> None:
    folder = layout.submitted(student)
    folder.mkdir(parents=True)
    nbformat.write(answered(layout.release / NOTEBOOK), folder / NOTEBOOK)
    (folder / "timestamp.txt").write_text(when)


def rows(layout: Layout) -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO(layout.grades_csv.read_text()))}


def penalties(layout: Layout) -> dict[str, float]:
    with Gradebook(f"sqlite:///{layout.gradebook}") as gb:
        submissions = gb.assignment_submissions(ASSIGNMENT)
        return {s.student.id: s.late_submission_penalty for s in submissions}


@pytest.mark.slow
def test_grading_applies_the_policy_and_regrades_when_it_changes(tmp_path: Path) -> None:
    """ann is a day and a bit late, ben on time; then ann gets two days more
    and her penalty goes; then the due date moves a week back and both lose
    half. grades.csv and feedback say each time what was applied and why."""
    layout = course(tmp_path)
    submit(layout, "ann", "2026-10-11 10:00:00 UTC")
    submit(layout, "ben", "2026-10-09 10:00:00 UTC")
    layout.policy.write_text("due = 2026-10-10T00:00:00Z\n[late]\npercent_per_day = 10\n")
    options = grading.Options(workers=1, unsafe=UNSAFE)
    assert grading.grade(tmp_path, options).graded == ["ann", "ben"]
    full = float(rows(layout)["ben"]["raw_score"])
    assert penalties(layout) == pytest.approx({"ann": 0.2 * full, "ben": 0.0})
    ann, ben = rows(layout)["ann"], rows(layout)["ben"]
    assert float(ann["score"]) == pytest.approx(0.8 * full)
    assert ann["duedate"].startswith("2026-10-10 00:00")
    assert "1 day(s) 10 hour(s) late" in ann["late_policy"]
    assert "10 % of the score per day" in ann["late_policy"]
    assert "on time: no late penalty" in ben["late_policy"]
    page = (layout.feedback("ann") / NOTEBOOK.replace(".ipynb", ".html")).read_text()
    assert "Deadline and late policy." in page and "1 day(s) 10 hour(s) late" in page
    assert grading.grade(tmp_path, options).skipped == ["ann", "ben"]  # nothing changed

    layout.policy.write_text(layout.policy.read_text() + "[extensions]\nann = 2\n")
    assert grading.grade(tmp_path, options).graded == ["ann"]  # only hers changed
    assert penalties(layout) == {"ann": 0.0, "ben": 0.0}
    assert "an extension of 2 day(s)" in rows(layout)["ann"]["late_policy"]
    page = (layout.feedback("ann") / NOTEBOOK.replace(".ipynb", ".html")).read_text()
    assert "on time: no late penalty" in page

    layout.policy.write_text("due = 2026-10-01T00:00:00Z\n[late]\npercent_per_day = 10\n"
                             "max_percent = 50\n")  # fmt: skip
    assert grading.grade(tmp_path, options).graded == ["ann", "ben"]
    assert penalties(layout) == pytest.approx({"ann": 0.5 * full, "ben": 0.5 * full})

    layout.policy.unlink()  # no deadline: nothing is late, nothing stale is kept
    assert grading.grade(tmp_path, options).graded == ["ann", "ben"]
    assert penalties(layout) == {"ann": 0.0, "ben": 0.0}
    assert rows(layout)["ann"]["late_policy"] == "no deadline set"


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("due = 2026-10-10\n", "line 1: due = 2026-10-10 has no time of day"),
        ("due = 2026-10-10T00:00:00Z\n[late]\npercent_per_day = -5\n", "line 3"),
        ("due = 2026-10-10T00:00:00Z\n[extensions]\nzed = 2\n", "line 3: an extension for 'zed'"),
    ],
)
def test_nothing_is_graded_with_a_policy_that_cannot_be_read(tmp_path: Path, policy: str,
                                                             says: str) -> None:  # fmt: skip
    layout = course(tmp_path)
    submit(layout, "ann", "2026-10-11 10:00:00 UTC")
    layout.policy.write_text(policy)
    with pytest.raises(grading.GradingError, match="Nothing was graded") as error:
        grading.grade(tmp_path, grading.Options(workers=1, unsafe=True))
    assert says in str(error.value)
    assert not layout.gradebook.exists() and not layout.markers.exists()


def test_the_late_plugin_is_nbgraders_and_reads_the_course_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    plugin = late.LatePolicyPlugin(policy_file=str(path))
    assert plugin.late_submission_penalty("ann", 10.0, DAY) is None  # no policy, no penalty
    assert late.LatePolicyPlugin().late_submission_penalty("ann", 10.0, DAY) is None  # none set
    path.write_text(POLICY)
    assert plugin.late_submission_penalty("ann", 10.0, DAY) == pytest.approx(1.0)
    path.write_text(POLICY.replace("= 10", "= -10"))
    with pytest.raises(PolicyError, match="line 5"):
        plugin.late_submission_penalty("ann", 10.0, DAY)


# ---------------------------------------------------------------- the learner
def test_check_tells_the_learner_their_deadline_and_the_time_left(tmp_path: Path) -> None:
    notebook = tmp_path / "notebooks" / "ch01" / NOTEBOOK
    notebook.parent.mkdir(parents=True)
    (tmp_path / "nbgrader_config.py").write_text("")
    assert check.deadline(notebook) == ""  # the course sets no deadline
    (tmp_path / "policy.toml").write_text(POLICY)
    before = dt.datetime(2026, 10, 8, 18, 59, tzinfo=UTC)
    assert check.deadline(notebook, before, "cat") == (
        "Deadline: due 2026-10-09 21:59 UTC: 1 day(s) 3 hour(s) left"
    )
    assert check.deadline(notebook, before, "ann").startswith(
        "Deadline: due 2026-10-12 21:59 UTC (an extension of 3 day(s) from 2026-10-09 21:59 UTC)"
        ": 4 day(s) 3 hour(s) left"
    )
    after = dt.datetime(2026, 10, 10, 0, 59, tzinfo=UTC)
    assert check.deadline(notebook, after, "cat") == (
        "Deadline: due 2026-10-09 21:59 UTC: 3 hour(s) ago; late work loses 10 % of the score "
        "per day late (a part of a day counts as a day), at most 50 %; 0 points when more than "
        "7 day(s) late"
    )


@pytest.mark.slow
def test_dlcourse_check_prints_the_deadline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    layout = course(tmp_path)
    layout.policy.write_text(POLICY)
    main(["check", str(layout.release / NOTEBOOK)])
    assert "Deadline: due 2026-10-" in capsys.readouterr().out
    layout.policy.write_text("due = soon\n")
    main(["check", str(layout.release / NOTEBOOK)])
    assert "The course's deadline cannot be read" in capsys.readouterr().out


def test_the_readmes_policy_reads_as_it_says() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Deadlines, extensions and errata")[1].split("\n## ")[0]
    example = section.split("```toml\n")[1].split("```")[0]
    assert parse(example, Path("README.md")) == parse(POLICY, Path("policy.toml"))


@pytest.fixture
def gradebook(tmp_path: Path) -> Layout:
    """A course whose gradebook has ann two days late (penalty 2 of 10), ben
    on time and cat without a submission, under POLICY with ann's extension."""
    layout = Layout.of(tmp_path)
    shutil.copy2(Path(__file__).resolve().parents[1] / "nbgrader_config.py", layout.config)
    layout.policy.write_text(POLICY)
    policy = parse(POLICY, layout.policy)
    nbgrader_cli.put_tools_on_path()
    with Gradebook(f"sqlite:///{layout.gradebook}") as gb:
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook("02_chain_rule", ASSIGNMENT)
        gb.add_grade_cell("test_all", "02_chain_rule", ASSIGNMENT, max_score=10, cell_type="code")
        for student, when in [("ann", "2026-10-14 20:00:00"), ("ben", "2026-10-09 10:00:00")]:
            gb.add_student(student)
            with warnings.catch_warnings():  # nbgrader's own code trips SQLAlchemy's autoflush
                warnings.simplefilter("ignore", SAWarning)
                late.record(gb, ASSIGNMENT, student, policy)
                gb.update_or_create_submission(ASSIGNMENT, student, timestamp=parse_utc(when))
            gb.find_grade("test_all", "02_chain_rule", ASSIGNMENT, student).auto_score = 10
        gb.add_student("cat")
        gb.find_submission_notebook("02_chain_rule", ASSIGNMENT, "ann").late_submission_penalty = 2
        gb.db.commit()
    return layout


def test_grades_csv_says_what_was_applied_and_why(gradebook: Layout) -> None:
    assert main(["--root", str(gradebook.root), "export", "--format", "csv"]) == 0
    got = rows(gradebook)
    assert got["ann"]["late_submission_penalty"] == "2.0" and got["ann"]["score"] == "8.0"
    assert got["ann"]["late_policy"] == (
        "due 2026-10-12 21:59 UTC (an extension of 3 day(s) from 2026-10-09 21:59 UTC); "
        "submitted 2026-10-14 20:00 UTC, 1 day(s) 22 hour(s) late: 10 % of the score per day "
        "late (a part of a day counts as a day), at most 50 %; 0 points when more than 7 day(s) "
        "late; penalty 2 point(s)"
    )
    assert got["ben"]["late_policy"] == (
        "due 2026-10-12 21:59 UTC (an extension of 3 day(s) from 2026-10-09 21:59 UTC); "
        "submitted 2026-10-09 10:00 UTC, on time: no late penalty"
    )
    assert got["cat"]["late_policy"] == "due 2026-10-09 21:59 UTC; nothing submitted"
    assert list(got["ann"])[-1] == "late_policy"  # nbgrader's columns first, as nbgrader has them


def test_nbgrader_export_in_the_course_says_it_too(gradebook: Layout) -> None:
    done = nbgrader_cli.run(gradebook.root, "export")
    assert done.returncode == 0, done.stdout
    assert "on time: no late penalty" in rows(gradebook)["ben"]["late_policy"]


def test_grades_csv_never_passes_a_penalty_off_under_a_policy_it_was_not_graded_by(
    gradebook: Layout,
) -> None:
    gradebook.policy.write_text(POLICY.replace("2026-10-09T23:59", "2026-10-02T23:59"))
    assert main(["--root", str(gradebook.root), "export", "--format", "csv"]) == 0
    got = rows(gradebook)
    assert got["ben"]["late_policy"] == (  # 3 days after the due date: moved
        "graded against an earlier due date (2026-10-12 21:59 UTC), penalty 0 point(s); "
        "run dlcourse grade to apply the policy as it is now"
    )
    assert got["ann"]["late_policy"].startswith("due 2026-10-12 21:59 UTC")  # a date: unmoved


@pytest.mark.parametrize("lms", ["canvas", "moodle"])
def test_an_lms_export_refuses_penalties_of_a_due_date_the_policy_no_longer_gives(
    gradebook: Layout, lms: str
) -> None:
    """grades.csv says per row that a penalty is stale; an LMS file cannot, so the
    export is refused, naming the students, until grading catches up (#723)."""
    roster = Path(__file__).resolve().parent / "golden" / f"{lms}_roster.csv"
    cli = ["--root", str(gradebook.root), "export", "--format", lms, "--roster", str(roster)]
    cli += ["--match", "SIS Login ID" if lms == "canvas" else "Username"]
    assert main(cli) == 0  # graded under the policy as it is
    gradebook.lms_grades(lms).unlink()
    moved = POLICY.replace("2026-10-09T23:59", "2026-10-02T23:59")  # ben's date moves, ann's not
    gradebook.policy.write_text(moved)
    with pytest.raises(SystemExit, match=r"gives ben another due date .* run `dlcourse grade`"):
        main(cli)
    assert not gradebook.lms_grades(lms).exists()  # nothing half-right written
    done = nbgrader_cli.run(gradebook.root, "export", f"--exporter=dlcourse.course.semester.lms."
                            f"{lms.capitalize()}ExportPlugin",
                            f"--{lms.capitalize()}ExportPlugin.roster={roster}")  # fmt: skip
    assert done.returncode != 0 and "another due date" in done.stdout + done.stderr
    # what `dlcourse grade` records
    with Gradebook(f"sqlite:///{gradebook.gradebook}") as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        late.record(gb, ASSIGNMENT, "ben", parse(moved, gradebook.policy))
        late.record(gb, ASSIGNMENT, "ann", parse(moved, gradebook.policy))
    assert main(cli) == 0


def test_a_penalty_is_stale_for_a_moved_due_date_and_for_a_removed_policy(
    gradebook: Layout,
) -> None:
    with Gradebook(f"sqlite:///{gradebook.gradebook}") as gb:
        assert late.stale(gb, ASSIGNMENT, parse(POLICY, gradebook.policy)) == []
        later = parse(POLICY.replace("ben = 3", "ben = 4"), gradebook.policy)
        assert late.stale(gb, ASSIGNMENT, later) == ["ben"]  # an extension changed
        assert late.stale(gb, ASSIGNMENT, None) == ["ann", "ben"]  # the policy is gone
