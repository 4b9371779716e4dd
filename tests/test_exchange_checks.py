"""The exchange's and the hub's refusals, and what collect and feedback leave alone.

No Unix users here (tests/test_semester_exchange.py has them): one course
copy, an exchange folder, and nbgrader's own layout of a submission in it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
from traitlets.config import PyFileConfigLoader

from dlcourse.course.cli import main
from dlcourse.course.grading import intake
from dlcourse.course.layout import ASSIGNMENT, CONFIG, RELEASE, SOURCE, Layout
from dlcourse.course.semester import deadlines, exchange, exchange_record, hub, ownership

ROOT = Path(__file__).resolve().parents[1]
NBGRADER_TIME = "%Y-%m-%d %H:%M:%S.%f UTC"  # as nbgrader's submit writes a time


@pytest.fixture
def course(tmp_path: Path) -> Layout:
    folder = tmp_path / "course"
    folder.mkdir()
    shutil.copy2(ROOT / CONFIG, folder / CONFIG)
    shutil.copytree(ROOT / SOURCE / ASSIGNMENT, folder / SOURCE / ASSIGNMENT)
    shutil.copytree(ROOT / RELEASE / ASSIGNMENT, folder / RELEASE / ASSIGNMENT)
    return Layout.of(folder)


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    folder = tmp_path / "exchange"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    return folder


def submit(root: Path, student: str, layout: Layout, stamp: str | None = None) -> Path:
    """A submission in nbgrader's layout of the inbound folder, as `nbgrader submit`
    makes it: dated now, unless ``stamp`` says otherwise."""
    stamp = stamp or datetime.now(timezone.utc).strftime(NBGRADER_TIME)
    folder = root / "dlcourse" / "inbound" / f"{student}+{ASSIGNMENT}+{stamp}+abcdef"
    shutil.copytree(layout.release, folder)
    (folder / intake.TIMESTAMP).write_text(stamp)
    (folder / intake.SECRET).write_text(f"secret of {student}")
    return folder


def test_a_missing_exchange_says_how_to_make_it(tmp_path: Path, course: Layout) -> None:
    with pytest.raises(exchange.ExchangeError, match=r"does not exist: .*install -d -m 1777"):
        exchange.release(course, tmp_path / "nowhere")


def test_an_exchange_that_is_a_file_is_refused(tmp_path: Path, course: Layout) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(exchange.ExchangeError, match="is not a folder"):
        exchange.collect(course, tmp_path / "file")


@pytest.mark.parametrize("mode", [0o755, 0o777, 0o1755, 0o3777, 0o700])
def test_an_exchange_without_mode_1777_is_refused(shared: Path, course: Layout, mode: int) -> None:
    os.chmod(shared, mode)
    with pytest.raises(exchange.ExchangeError, match=rf"mode {mode:04o}.*chmod 1777"):
        exchange.release(course, shared)
    assert not (shared / "dlcourse").exists()


def test_a_course_id_mismatch_names_the_courses_there(shared: Path, course: Layout) -> None:
    (shared / "other101").mkdir()
    for step in (exchange.collect, exchange.release_feedback):
        with pytest.raises(exchange.ExchangeError, match="no course 'dlcourse'; it holds other101"):
            step(course, shared)


def test_nothing_released_yet_says_release_first(shared: Path, course: Layout) -> None:
    with pytest.raises(exchange.ExchangeError, match="release the assignment first"):
        exchange.collect(course, shared)


def test_a_course_folder_of_another_user_is_refused(shared: Path, course: Layout) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the course's folder to another user")
    exchange.release(course, shared)
    os.chown(shared / "dlcourse", 54321, 54321)
    with pytest.raises(exchange.ExchangeError, match="belongs to user id 54321"):
        exchange.collect(course, shared)


def test_release_needs_the_learner_notebooks(shared: Path, course: Layout) -> None:
    shutil.rmtree(course.release)
    course.release.mkdir()
    with pytest.raises(exchange.ExchangeError, match="run `dlcourse release` first"):
        exchange.release(course, shared)


def test_releasing_twice_needs_force(shared: Path, course: Layout) -> None:
    released = exchange.release(course, shared)
    assert sorted(p.name for p in released.iterdir()) == [
        p.name for p in course.released_notebooks()
    ]
    with pytest.raises(exchange.ExchangeError, match="add --force"):
        exchange.release(course, shared)
    assert exchange.release(course, shared, force=True) == released


def test_collect_takes_only_folders_their_student_owns_and_can_date(
    shared: Path, course: Layout, capsys: pytest.CaptureFixture
) -> None:
    """Anybody may write into inbound, and nbgrader's collect takes the folder
    with the latest time in its name, only warning when its owner is not the
    student it names: a folder named for a classmate and dated ahead, owned by
    another user, is left there and reported (in a line that no terminal escape
    in its name can blank), a folder whose name holds no time is reported
    instead of ending the whole collect, and each student's own work is taken."""
    if os.geteuid() != 0:
        pytest.skip("handing folders to other users (chown) needs root")
    victim, attacker = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")

    def owned_by(folder: Path, user: pwd.struct_passwd) -> Path:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        return folder

    course_cli = ["--root", str(course.root), "exchange"]
    main([*course_cli, "release", "--exchange", str(shared)])  # records the exchange
    own = owned_by(submit(shared, "nobody", course), victim)
    ahead = f"nobody+{ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+x\x1b[1G\x1b[2K"
    shutil.copytree(own, own.with_name(ahead))
    (own.with_name(ahead) / intake.SECRET).write_text("forged")
    owned_by(own.with_name(ahead), attacker)
    for name in (f"nobody+{ASSIGNMENT}+not a time+zz", f"zed+{ASSIGNMENT}+never+zz"):
        shutil.copytree(own, own.with_name(name))
        owned_by(own.with_name(name), victim)
    capsys.readouterr()
    main([*course_cli, "collect"])
    printed = capsys.readouterr().out
    assert (course.submitted("nobody") / intake.SECRET).read_text() == "secret of nobody"
    assert not course.submitted("zed").exists()
    assert "collected: nobody" in printed and "\x1b" not in printed, printed
    assert f"{ahead!r} in the exchange's inbound is owned by daemon, not by nobody" in printed
    assert printed.count("is named with no time nbgrader can read") == 2, printed
    assert own.with_name(ahead).exists(), "a folder in the exchange is reported, never removed"


def test_a_submission_is_dated_no_earlier_than_its_files_last_changed(
    shared: Path, course: Layout
) -> None:
    """The time in a submission's name and its timestamp.txt is its student's
    to write, and so is every file's mtime: a submission dated before the
    deadline, with files made after it, is dated when they were last changed
    (their ctime, which nobody can set back), in the collected copy, and
    collect says so. One dated when it was made keeps its own time."""
    exchange.release(course, shared)
    honest = submit(shared, "alice", course)
    early = datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    backdated = submit(shared, "bob", course, early.strftime(NBGRADER_TIME))
    for path in [*backdated.rglob("*"), backdated]:
        os.utime(path, (early.timestamp(), early.timestamp()), follow_symlinks=False)
    before = time.time()
    report = exchange.collect(course, shared)
    assert report.done == ["alice", "bob"]
    stated = (honest / intake.TIMESTAMP).read_text()
    assert (course.submitted("alice") / intake.TIMESTAMP).read_text() == stated
    dated = datetime.strptime((course.submitted("bob") / intake.TIMESTAMP).read_text(),
                              NBGRADER_TIME).replace(tzinfo=timezone.utc)  # fmt: skip
    assert before - 60 < dated.timestamp() <= before
    assert (backdated / intake.TIMESTAMP).read_text() == early.strftime(NBGRADER_TIME)
    said = [p for p in report.problems if "states it was submitted at" in p]
    assert len(said) == 1 and said[0].startswith(f"bob: {backdated.name!r} states it was "
                                                 "submitted at 2026-01-05 10:00:00 UTC")
    assert not [p for p in report.problems if p.startswith("alice: ") and "states" in p]


def test_a_submission_holding_a_link_is_not_collected(
    shared: Path, course: Layout, tmp_path: Path
) -> None:
    """nbgrader's copy follows links: to a file the student changes after the
    deadline (the link's own time stays early), or to one only the instructor
    may read. A submission with a link in it is reported and left."""
    exchange.release(course, shared)
    folder = submit(shared, "bob", course)
    notebook = next(folder.glob("*.ipynb"))
    elsewhere = tmp_path / notebook.name
    notebook.rename(elsewhere)
    notebook.symlink_to(elsewhere)
    report = exchange.collect(course, shared)
    assert report.done == [] and not course.submitted("bob").exists()
    assert report.problems == [
        f"bob: {folder.name!r} in the exchange's inbound is holding a link, {notebook.name}; "
        "it was not collected (remove it from the exchange)"
    ]


def test_what_changes_while_a_submission_is_collected_is_caught(
    shared: Path, course: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between collect's look at a folder and its copy, its student may edit it
    (on the first look, as inotify tells): a file edited dates the submission
    later; a file made a link, or one that cannot be copied, costs only that
    submission, and the student's earlier copy stays as it was."""
    from nbgrader.exchange.default.collect import ExchangeCollect

    monkeypatch.setattr(exchange, "SLACK", timedelta(seconds=1))
    exchange.release(course, shared)
    for student in ("bob", "carol"):
        (submit(shared, student, course) / intake.SECRET).write_text(f"{student}'s first")
    exchange.collect(course, shared)
    edited, linked, gone = (submit(shared, name, course) for name in ("alice", "bob", "carol"))
    time.sleep(2)
    original = ExchangeCollect.init_src

    def meanwhile(self: ExchangeCollect) -> None:  # collect looks, one student at a time
        original(self)
        if self.coursedir.student_id == "alice":
            notebook = next(edited.glob("*.ipynb"))
            notebook.write_text(notebook.read_text() + " ")
        elif self.coursedir.student_id == "bob":
            target = next(linked.glob("*.ipynb"))
            target.rename(target.with_suffix(".moved"))
            target.symlink_to(target.with_suffix(".moved"))
        else:
            fifo = next(gone.glob("*.ipynb"))
            fifo.unlink()
            os.mkfifo(fifo)  # which no copy reads

    monkeypatch.setattr(ExchangeCollect, "init_src", meanwhile)
    report = exchange.collect(course, shared)
    stated = (edited / intake.TIMESTAMP).read_text()
    assert (course.submitted("alice") / intake.TIMESTAMP).read_text() > stated
    assert any(p.startswith("alice: ") and "that is its submission time" in p
               for p in report.problems)  # fmt: skip
    assert any(p.startswith(f"bob: {linked.name!r} was changed to holding a link")
               and p.endswith("it was not collected") for p in report.problems), report.problems
    assert any(p.startswith(f"carol: {gone.name!r} could not be copied") for p in report.problems)
    for student in ("bob", "carol"):
        assert (course.submitted(student) / intake.SECRET).read_text() == f"{student}'s first"


def test_a_folder_refused_while_collecting_is_not_collected(
    shared: Path, course: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that passes collect's own look but is refused by the time
    nbgrader lists inbound (it went, or changed hands, in between) is not
    collected, and the collect goes on."""
    exchange.release(course, shared)
    submit(shared, "alice", course)
    looks = iter([None])
    monkeypatch.setattr(exchange, "_refused", lambda *_: next(looks, "owned by someone else"))
    report = exchange.collect(course, shared)
    assert not course.submitted("alice").exists()
    said = f"alice: No submissions of '{ASSIGNMENT}' for course 'dlcourse' to collect"
    assert report.problems == [said]


def test_collect_never_replaces_a_submission_from_elsewhere(shared: Path, course: Layout) -> None:
    exchange.release(course, shared)
    bobs = [submit(shared, student, course) for student in ("alice", "bob")][1]
    lms = course.submitted("alice")
    lms.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), lms / "02_chain_rule.ipynb")
    before = (lms / "02_chain_rule.ipynb").read_bytes()
    report = exchange.collect(course, shared)
    assert report.done == ["bob"]
    about_alice = [p for p in report.problems if p.startswith("alice: ")]
    assert len(about_alice) == 1 and "move it away" in about_alice[0]
    # nbgrader's own warning, in one line: the submission is this user's, not bob's
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert [p for p in report.problems if p.startswith("bob: ")] == [
        f"bob: {bobs} claims to be submitted "
        f"by bob but is owned by {me}; cheating attempt? you may disable this warning by "
        "unsetting the option CollectApp.check_owner"
    ]
    assert [p.name for p in lms.iterdir()] == ["02_chain_rule.ipynb"]
    assert (lms / "02_chain_rule.ipynb").read_bytes() == before
    got = sorted(p.name for p in course.submitted("bob").iterdir())
    assert got == sorted([*(p.name for p in course.released_notebooks()), intake.TIMESTAMP,
                          intake.SECRET])  # fmt: skip
    assert not course.gradebook.exists(), "collect leaves the gradebook to grading"


def test_a_student_id_that_is_not_one_is_left_in_the_exchange(shared: Path, course: Layout) -> None:
    exchange.release(course, shared)
    submit(shared, ".hidden", course)
    report = exchange.collect(course, shared)
    assert report.done == [] and "not a valid student id" in report.problems[0]
    assert not course.submitted_root.exists()


def test_feedback_waits_for_grading(shared: Path, course: Layout) -> None:
    exchange.release(course, shared)
    submit(shared, "bob", course)
    exchange.collect(course, shared)
    report = exchange.release_feedback(course, shared)
    assert report.done == []
    assert report.problems == [
        "bob: not graded since it was collected: run `dlcourse grade`, then release again"
    ]
    assert not (shared / "dlcourse" / "feedback").exists()


def test_the_command_line_says_what_is_wrong(tmp_path: Path, course: Layout) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit, match=r"^dlcourse exchange release: the exchange folder"):
        main(["--root", str(course.root), "exchange", "release", "--exchange", str(missing)])
    assert not course.exchange_record.exists()  # an exchange that cannot be used is not kept


def test_students_config_names_the_course_and_the_exchange(
    tmp_path: Path, shared: Path, course: Layout, capsys: pytest.CaptureFixture
) -> None:
    main(["--root", str(course.root), "exchange", "release", "--exchange", str(shared)])
    capsys.readouterr()
    main(["--root", str(course.root), "exchange", "student-config"])
    (tmp_path / "students").mkdir()
    (tmp_path / "students" / CONFIG).write_text(capsys.readouterr().out)
    config = PyFileConfigLoader(CONFIG, path=str(tmp_path / "students")).load_config()
    assert config.CourseDirectory.course_id == "dlcourse"
    assert config.Exchange.root == str(shared)


def test_the_exchange_is_given_once_and_a_different_one_is_refused(
    tmp_path: Path, shared: Path, course: Layout, capsys: pytest.CaptureFixture
) -> None:
    other = tmp_path / "other-exchange"
    other.mkdir()
    os.chmod(other, 0o1777)
    course_cli = ["--root", str(course.root), "exchange"]
    for step in ("collect", "feedback", "student-config"):  # not before it is recorded
        with pytest.raises(SystemExit, match=f"{step}: the course's exchange is .*release to"):
            main([*course_cli, step, "--exchange", str(shared)])
    assert not course.exchange_record.exists()
    main([*course_cli, "release", "--exchange", str(shared)])
    assert exchange_record.recorded(course.root) == shared
    assert exchange.configured_root(course) == shared  # what nbgrader's own commands read too
    main([*course_cli, "collect"])  # no --exchange: the recorded one
    main([*course_cli, "collect", "--exchange", str(shared) + "/"])  # the same, spelled otherwise
    assert "0 submission(s)" in capsys.readouterr().out
    for step in ("release", "collect", "feedback", "student-config"):
        with pytest.raises(SystemExit, match=(
            rf"{step}: the course's exchange is {shared} \(recorded in "
            rf"{course.exchange_record} when it was released\), not {other}: leave out"
        )):  # fmt: skip
            main([*course_cli, step, "--exchange", str(other)])
    assert exchange_record.recorded(course.root) == shared
    with pytest.raises(SystemExit, match="recorded in"):
        main(["--root", str(course.root), "hub", "config", "--config", str(tmp_path / "hub"),
              "--exchange", str(other), "--group", "root"])  # fmt: skip
    assert not (tmp_path / "hub").exists()


def test_an_exchange_set_in_nbgrader_config_is_not_overridden(
    tmp_path: Path, shared: Path, course: Layout
) -> None:
    fixed = tmp_path / "fixed"
    text = course.config.read_text().replace(
        'c.Exchange.root = str(recorded(root) or root / ".dlcourse" / "exchange")',
        f"c.Exchange.root = {str(fixed)!r}",
    )
    assert text != course.config.read_text()
    course.config.write_text(text)
    with pytest.raises(SystemExit, match=rf"sets c.Exchange.root to {fixed} itself"):
        main(["--root", str(course.root), "exchange", "release", "--exchange", str(shared)])
    assert not course.exchange_record.exists()


def test_root_hands_grading_back_to_the_course_owner(course: Layout) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to change owners")
    owner = 54321
    os.chown(course.root, owner, owner)
    elsewhere = course.root.parent / "elsewhere"
    elsewhere.write_text("not the course's")
    course.gradebook.write_text("")
    course.grades_csv.write_text("")
    (course.markers).mkdir(parents=True)
    (course.markers / "bob.json").write_text("{}")
    course.templates.mkdir()
    (course.templates / "t.db").write_text("")
    course.feedback("bob").mkdir(parents=True)
    (course.feedback("bob") / "02_chain_rule.html").write_text("")
    (course.feedback("bob") / "link.html").symlink_to(elsewhere)
    assert ownership.hand_back(course) == owner
    for path in [course.gradebook, course.grades_csv, course.state, course.markers / "bob.json",
                 *course.feedback_root.rglob("*")]:  # fmt: skip
        assert path.lstat().st_uid == owner, path
    assert (course.templates / "t.db").stat().st_uid == 0, "the hidden tests stay root's"
    assert elsewhere.stat().st_uid == 0, "a link is changed, never followed"


def test_hub_config_refuses_a_group_that_does_not_exist(
    tmp_path: Path, shared: Path, course: Layout
) -> None:
    settings = hub.Settings(course=str(course.root), exchange=str(shared), group="no-such-group")
    with pytest.raises(hub.HubError, match="no Unix group 'no-such-group': create it"):
        hub.write(settings, tmp_path / "hub")


def test_hub_check_finds_what_changed(tmp_path: Path, shared: Path, course: Layout) -> None:
    folder = tmp_path / "hub"
    settings = hub.Settings(course=str(course.root), exchange=str(shared), group="root")
    hub.write(settings, folder)
    assert stat.S_IMODE(os.stat(folder / hub.STATE).st_mode) == 0o700
    problems = hub.check(folder)
    ignorable = ("cannot be entered by other users", "is not on PATH", "cannot be read")
    assert [p for p in problems if not any(i in p for i in ignorable)] == []
    with open(folder / hub.HUB_CONFIG, "a") as config:
        config.write("c.Spawner.cmd = ['something-else']\n")
    config_text = course.config.read_text().replace('course_id = "dlcourse"', 'course_id = "x1"')
    course.config.write_text(config_text)
    os.chmod(shared, 0o755)
    problems = hub.check(folder)
    assert any(f"{folder / hub.HUB_CONFIG} is not what" in p for p in problems)
    assert any(f"{folder / hub.STUDENT_CONFIG} is not what" in p for p in problems)
    assert any("mode 0755" in p for p in problems)


def test_hub_check_without_a_configuration_says_how_to_write_one(tmp_path: Path) -> None:
    with pytest.raises(hub.HubError, match="dlcourse hub config --config"):
        hub.check(tmp_path)
    (tmp_path / hub.SETTINGS).write_text("{not json")
    with pytest.raises(hub.HubError, match="is not dlcourse's hub settings"):
        hub.check(tmp_path)


def test_hub_check_on_the_command_line_fails_with_the_problems(
    tmp_path: Path, shared: Path, course: Layout, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "hub"
    hub.write(hub.Settings(course=str(course.root), exchange=str(shared), group="root"), folder)
    os.chmod(shared, 0o777)
    assert main(["--root", str(course.root), "hub", "check", "--config", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"problem: the exchange folder {shared} has mode 0777" in out
    assert "the hub is ready" not in out


def test_hub_config_never_overwrites_a_file_it_did_not_write(
    tmp_path: Path, shared: Path, course: Layout
) -> None:
    folder = tmp_path / "hub"
    settings = hub.Settings(course=str(course.root), exchange=str(shared), group="root")
    folder.mkdir()
    (folder / hub.HUB_CONFIG).write_text("c.JupyterHub.port = 1234  # the admin's own\n")
    with pytest.raises(hub.HubError, match="exists and is not what `dlcourse hub config` wrote"):
        hub.write(settings, folder)
    assert (folder / hub.HUB_CONFIG).read_text() == "c.JupyterHub.port = 1234  # the admin's own\n"
    (folder / hub.HUB_CONFIG).unlink()
    hub.write(settings, folder)
    hub.write(hub.Settings(**{**settings.__dict__, "port": 9000}), folder)  # its own: rewritten
    assert "9000" in (folder / hub.HUB_CONFIG).read_text()
    with open(folder / hub.HUB_CONFIG, "a") as config:
        config.write("c.Spawner.mem_limit = '2G'\n")
    edited = (folder / hub.HUB_CONFIG).read_text()
    with pytest.raises(hub.HubError, match="it is kept"):
        hub.write(settings, folder)
    assert (folder / hub.HUB_CONFIG).read_text() == edited


def test_the_hub_runs_the_deadline_service_as_the_courses_owner_for_every_student(
    tmp_path: Path, shared: Path, course: Layout
) -> None:
    folder = tmp_path / "hub"
    settings = hub.Settings(course=str(course.root), exchange=str(shared), group="root", port=8100)
    hub.write(settings, folder)
    config = PyFileConfigLoader(hub.HUB_CONFIG, path=str(folder)).load_config()
    (service,) = config.JupyterHub.services
    assert service["name"] == deadlines.SERVICE
    assert service["user"] == pwd.getpwuid(course.root.stat().st_uid).pw_name
    assert service["url"] == "http://127.0.0.1:8103"  # after the hub's three ports
    assert service["command"][-2:] == ["--course", str(course.root)]
    access = f"access:services!service={deadlines.SERVICE}"
    assert config.JupyterHub.extra_user_scopes == {access}
    assert access in config.Spawner.server_token_scopes
    assert config.Spawner.environment[deadlines.URL_VARIABLE] == (
        f"http://127.0.0.1:8103/services/{deadlines.SERVICE}/{deadlines.ROUTE}"
    )


def test_hub_check_finds_a_policy_the_deadline_service_cannot_use(
    tmp_path: Path, shared: Path, course: Layout
) -> None:
    folder = tmp_path / "hub"
    hub.write(hub.Settings(course=str(course.root), exchange=str(shared), group="root"), folder)
    course.policy.write_text("due = 2026-10-09T23:59:00+02:00\n\n[extensions]\nann = soon\n")
    problems = hub.check(folder)
    assert any("cannot tell the students their deadline" in p and "line 4" in p for p in problems)
    course.policy.write_text("due = 2026-10-09T23:59:00+02:00\n")
    assert not any("cannot tell the students" in p for p in hub.check(folder))
    os.chmod(course.policy, 0o000)
    if os.geteuid() == 0:  # root reads it anyway; the service runs as the owner
        assert any(f"{course.policy} cannot be read by" in p for p in hub.check(folder))


def test_hub_config_needs_the_course_folder(tmp_path: Path, shared: Path) -> None:
    settings = hub.Settings(course=str(tmp_path / "no-course"), exchange=str(shared), group="root")
    with pytest.raises(hub.HubError, match="does not exist: give the course's folder"):
        hub.write(settings, tmp_path / "hub")


def test_hub_config_records_the_exchange_for_the_release_after_it(
    tmp_path: Path, shared: Path, course: Layout, capsys: pytest.CaptureFixture
) -> None:
    main(["--root", str(course.root), "hub", "config", "--config", str(tmp_path / "hub"),
          "--exchange", str(shared), "--group", "root"])  # fmt: skip
    assert exchange_record.recorded(course.root) == shared
    assert course.exchange_record.stat().st_uid == course.root.stat().st_uid  # the owner's
    main(["--root", str(course.root), "exchange", "release"])
    assert f"released: {shared / 'dlcourse' / 'outbound' / ASSIGNMENT}" in capsys.readouterr().out
