"""The course's JupyterHub, as `dlcourse hub config` writes it, in headless Chromium.

A real hub on this machine: JupyterHub with configurable-http-proxy, PAM
logins of real Unix users (made by the test, removed after), each student's
JupyterLab started as them by LocalProcessSpawner from this environment, and
nbgrader's exchange shared between the instructor and the students. The
instructor releases ch01 (`dlcourse exchange release`); a student logs in,
sees ch01 in nbgrader's assignment list, fetches it and validates a notebook
they answered. Skipped, saying why, where root, configurable-http-proxy
(npm) or Chromium is missing; `.ci/run` installs them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from fixtures import exposed
from fixtures.browser import artefacts_folder, browser_context, chromium_path
from fixtures.unix_users import (
    ROOT,
    User,
    make_exchange,
    require_root,
    teachers_course,
    unix_users,
)

from dlcourse.course import appendix
from dlcourse.course.layout import ASSIGNMENT, Layout
from dlcourse.course.semester import hub

pytestmark = pytest.mark.slow
ANSWERED = "02_chain_rule"  # the notebook the student answers, then validates
DLCOURSE = [sys.executable, "-m", "dlcourse.course.cli"]


def free_ports(count: int) -> int:
    """A port with the ``count - 1`` after it free too (the hub uses three)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    held = stack.enter_context(socket.socket())
                    held.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise RuntimeError("no free ports")


def wait_for_hub(url: str, process: subprocess.Popen, log: Path) -> None:
    """Until the hub answers its health check (or has died, saying why)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"JupyterHub exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/hub/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"JupyterHub did not answer at {url} within 180 s:\n{log.read_text()}")


@contextlib.contextmanager
def running_hub(config: Path, log: Path) -> Iterator[subprocess.Popen]:
    """JupyterHub, as root, where the students can run this checkout's Python."""
    proxy = Path(str(shutil.which(hub.PROXY))).parent
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(proxy), env["PATH"]])
    with open(log, "w") as out:
        process = subprocess.Popen(
            exposed.command(
                str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)
            ),
            cwd=config.parent / hub.STATE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the hub stops the students' servers first
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def answer(path: Path, student: User) -> None:
    answers = {a.grade_id: a.code for a in appendix.answers(ROOT)}
    nb = nbformat.read(path, 4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    nbformat.write(nb, path)
    os.chown(path, student.uid, student.gid)


@pytest.fixture(scope="module")
def deployment() -> Iterator[dict]:
    require_root()
    pytest.importorskip("jupyterhub", reason="JupyterHub is missing (pip install -e '.[hub]')")
    chromium_path()
    if shutil.which(hub.PROXY) is None:
        pytest.skip(f"{hub.PROXY} is not installed (npm install -g {hub.PROXY}; .ci/run does this)")
    base = Path(tempfile.mkdtemp(prefix="dlcourse-hub-"))
    os.chmod(base, 0o755)
    try:
        with unix_users(base, ["teacher", "student"], grouped=("student",)) as accounts:
            yield _deploy(base, accounts.users, accounts.group)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _deploy(base: Path, users: dict[str, User], group: str) -> dict:
    teacher, student = users["teacher"], users["student"]
    exchange = make_exchange(base)
    course = teachers_course(teacher)
    teacher.run(*DLCOURSE, "--root", str(course), "exchange", "release",
                "--exchange", str(exchange), cwd=course)  # fmt: skip
    port = free_ports(3)
    config = base / "hub"
    written = subprocess.run(
        exposed.command(*DLCOURSE, "--root", str(course), "hub", "config", "--config",
                        str(config), "--exchange", str(exchange), "--group", group,
                        "--port", str(port)),
        capture_output=True, text=True,
    )  # fmt: skip
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{student.name}:{password}", text=True, check=True)
    return {
        "base": base,
        "course": course,
        "config": config,
        "written": written,
        "url": f"http://127.0.0.1:{port}",
        "student": student,
        "teacher": teacher,
        "password": password,
    }


def test_dlcourse_writes_a_hub_that_checks_out(deployment: dict) -> None:
    written = deployment["written"]
    assert written.returncode == 0, written.stdout + written.stderr
    assert "the hub is ready" in written.stdout
    config = deployment["config"]
    assert {p.name for p in config.iterdir()} == {hub.HUB_CONFIG, hub.SETTINGS, "jupyter",
                                                   hub.STATE}  # fmt: skip
    assert os.stat(config / hub.STATE).st_mode & 0o077 == 0


def test_a_student_logs_in_fetches_ch01_and_validates(
    deployment: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config, student = deployment["config"], deployment["student"]
    assert deployment["written"].returncode == 0
    shots = artefacts_folder(tmp_path_factory.mktemp("hub"), "hub")
    log = deployment["base"] / "jupyterhub.log"
    with running_hub(config / hub.HUB_CONFIG, log) as process, browser_context() as (
        context,
        watch,
    ):
        wait_for_hub(deployment["url"], process, log)
        page = context.new_page()
        page.goto(f"{deployment['url']}/hub/login")
        page.fill("#username_input", student.name)
        page.fill("#password_input", deployment["password"])
        page.screenshot(path=shots / "1-login.png")
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{student.name}/lab**", timeout=240_000)
        page.locator("#jp-main-dock-panel").wait_for(timeout=120_000)
        page.screenshot(path=shots / "2-lab.png")

        page.locator('#jp-menu-panel div.lm-MenuBar-itemLabel:text("Nbgrader")').click()
        page.locator(
            '#jp-mainmenu-nbgrader li[data-command="nbgrader:open-assignment-list"]'
        ).click()
        released = page.locator("#released_assignments_list > .list_item")
        released.first.wait_for(timeout=60_000)
        assert released.count() == 1
        assert released.first.locator(".item_name").inner_text() == ASSIGNMENT
        assert released.first.locator(".item_course").inner_text() == "dlcourse"
        page.screenshot(path=shots / "3-released.png")
        released.first.locator(".item_status button").click()
        fetched = page.locator("#fetched_assignments_list > .list_item")
        fetched.first.wait_for(timeout=60_000)
        page.screenshot(path=shots / "4-fetched.png")

        folder = student.home / ASSIGNMENT
        released_names = {p.name for p in Layout(deployment["course"]).released_notebooks()}
        assert {p.name for p in folder.glob("*.ipynb")} == released_names
        assert all(p.stat().st_uid == student.uid for p in folder.iterdir())
        answer(folder / f"{ANSWERED}.ipynb", student)

        page.locator(f'#fetched_assignments_list a:text("{ASSIGNMENT}")').click()
        page.locator(f"#nbgrader-dlcourse-{ASSIGNMENT}.collapse.in").wait_for(timeout=30_000)
        page.screenshot(path=shots / "5-notebooks.png")
        notebooks = page.locator(f"#nbgrader-dlcourse-{ASSIGNMENT} .list_item")
        listed = page.locator("#fetched_assignments_list").inner_html()
        (shots / "5-notebooks.html").write_text(listed)
        row = notebooks.filter(has_text=ANSWERED)
        row.locator('.item_status button:text("Validate")').click()
        page.locator(".nbgrader-SuccessDialog").wait_for(timeout=180_000)
        page.screenshot(path=shots / "6-validated.png")
    assert not watch.blocked, watch.blocked
    print(f"screenshots: {shots}")
