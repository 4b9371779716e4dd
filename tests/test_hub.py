"""The course's JupyterHub, as `dlcourse hub config` writes it, in headless Chromium.

A real hub on this machine: JupyterHub with configurable-http-proxy, PAM
logins of real Unix users (made by the test, removed after), each student's
JupyterLab started as them by LocalProcessSpawner from this environment, and
nbgrader's exchange shared between the instructor and the students. The
instructor releases ch01 (`dlcourse exchange release`); a student logs in,
sees ch01 in nbgrader's assignment list, fetches it, validates a notebook they
answered and runs `dlcourse check` on it in a notebook. Each student learns
their own deadline from the hub's deadline service (`dlcourse check` in their
server), with their extension, and nothing of the other's. Skipped, saying
why, where root, configurable-http-proxy (npm) or Chromium is missing;
`.ci/run` installs them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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
from dlcourse.course.semester import deadlines, hub

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

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
        with unix_users(
            base, ["teacher", "student", "other"], grouped=("student", "other")
        ) as accounts:
            yield _deploy(base, accounts.users, accounts.group)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def policy_text(due: dt.datetime, extensions: dict[str, str]) -> str:
    granted = "".join(f"{name} = {value}\n" for name, value in extensions.items())
    return f"due = {due.isoformat()}\n\n[late]\npercent_per_day = 10\n\n[extensions]\n{granted}"


def write_policy(course: Path, teacher: User, text: str) -> None:
    """``policy.toml`` as the instructor writes it: theirs, in their closed course folder."""
    path = Layout(course).policy
    path.write_text(text)
    os.chown(path, teacher.uid, teacher.gid)
    os.chmod(path, 0o600)


def _deploy(base: Path, users: dict[str, User], group: str) -> dict:
    teacher, student, other = users["teacher"], users["student"], users["other"]
    exchange = make_exchange(base)
    course = teachers_course(teacher)
    due = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=2)
    write_policy(course, teacher, policy_text(due, {student.name: "3"}))
    teacher.run(*DLCOURSE, "--root", str(course), "exchange", "release",
                "--exchange", str(exchange), cwd=course)  # fmt: skip
    port = free_ports(4)
    config = base / "hub"
    written = subprocess.run(
        exposed.command(*DLCOURSE, "--root", str(course), "hub", "config", "--config",
                        str(config), "--group", group, "--port", str(port)),
        capture_output=True, text=True,
    )  # fmt: skip
    password = secrets.token_urlsafe(12)
    for user in (student, other):
        subprocess.run(["chpasswd"], input=f"{user.name}:{password}", text=True, check=True)
    return {
        "base": base,
        "course": course,
        "config": config,
        "written": written,
        "url": f"http://127.0.0.1:{port}",
        "student": student,
        "other": other,
        "teacher": teacher,
        "due": due,
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


@pytest.fixture(scope="module")
def live(deployment: dict) -> Iterator[dict]:
    """The deployment's hub, running (once for the module's tests)."""
    assert deployment["written"].returncode == 0, deployment["written"].stdout
    log = deployment["base"] / "jupyterhub.log"
    with running_hub(deployment["config"] / hub.HUB_CONFIG, log) as process:
        wait_for_hub(deployment["url"], process, log)
        yield {**deployment, "log": log}


def test_a_student_logs_in_fetches_ch01_and_validates(
    live: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    deployment, student = live, live["student"]
    shots = artefacts_folder(tmp_path_factory.mktemp("hub"), "hub")
    with browser_context() as (context, watch):
        page = context.new_page()
        page.goto(f"{deployment['url']}/hub/login")
        page.fill("#username_input", student.name)
        page.fill("#password_input", deployment["password"])
        page.screenshot(path=shots / "1-login.png")
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{student.name}/lab**", timeout=240_000)
        page.locator("#jp-main-dock-panel").wait_for(timeout=120_000)
        page.screenshot(path=shots / "2-lab.png")
        # the students' JupyterLab: no instructor's tools, no news prompt
        lab = json.loads(page.locator("#jupyter-config-data").text_content())
        for plugin in hub.STUDENT_DISABLED:
            assert plugin in lab["disabledExtensions"], lab["disabledExtensions"]
        assert "@jupyter/nbgrader:assignment-list" not in lab["disabledExtensions"]

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
        page.locator(".nbgrader-SuccessDialog button").click()

        # In a notebook of their own, `dlcourse check` tells them their deadline
        # (from the hub's deadline service: the course folder is closed to them).
        page.locator('#jp-menu-panel div.lm-MenuBar-itemLabel:text("File")').click()
        page.locator('#jp-mainmenu-file li[data-command="launcher:create"]').click()
        page.locator('.jp-Launcher-section:has-text("Notebook") .jp-LauncherCard').first.click()
        cell = run_first_cell(page, f"!dlcourse check {ASSIGNMENT}/{ANSWERED}.ipynb")
        said = cell.locator(".jp-OutputArea-output").filter(has_text="Deadline: due")
        try:
            said.first.wait_for(timeout=240_000)
        finally:
            page.screenshot(path=shots / "7-deadline.png")
        assert "(an extension of" in said.first.inner_text()  # theirs: the policy extends it
        page.locator("#jp-right-stack").wait_for(state="attached")  # the right sidebar's panels
        assert page.locator("#nbgrader-create_assignemnt").count() == 0  # nbgrader's id, sic
        assert page.get_by_title("Nbgrader Create Assignment").count() == 0
        assert page.get_by_text("official Jupyter news").count() == 0
    assert not watch.blocked, watch.blocked
    print(f"screenshots: {shots}")


def run_first_cell(page: Page, command: str) -> Locator:
    """Type ``command`` into the open notebook's first cell and run it; the cell.
    Under load JupyterLab sometimes shows a kernel as idle before the page is
    connected to it, and then runs nothing (the prompt stays "[ ]"): the page
    is loaded again then, up to three times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for _ in range(3):
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(
            timeout=120_000
        )  # the notebook's kernel has started
        cell = page.locator(".jp-Notebook .jp-Cell").first
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+A")
        page.keyboard.type(command)
        cell.locator(".cm-content").filter(has_text=command).wait_for(timeout=30_000)
        page.keyboard.press("Shift+Enter")
        started = cell.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[[*0-9]+\]"))
        try:
            started.wait_for(timeout=30_000)
            return cell
        except PlaywrightTimeoutError:
            page.reload()
    pytest.fail(f"JupyterLab ran nothing of {command!r} after three loads of the page")


def hub_api(url: str, path: str, token: str = "", body: dict | None = None) -> tuple[int, dict]:
    """A request to the hub's REST API (or a service): status and JSON answer."""
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        with error:
            text = error.read()
        return error.code, json.loads(text) if text else {}


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the login's answer, not the spawn page it sends a browser to


def log_in(live: dict, user: User) -> None:
    """``user`` logs in to the hub's login form (which makes them a hub user)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _Stay)
    with opener.open(f"{live['url']}/hub/login", timeout=30) as page:
        page.read()
    xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
    form = {"username": user.name, "password": live["password"], "_xsrf": xsrf}
    with pytest.raises(urllib.error.HTTPError) as moved:
        opener.open(f"{live['url']}/hub/login?_xsrf={xsrf}",
                    data=urllib.parse.urlencode(form).encode(), timeout=60)  # fmt: skip
    with moved.value as answer:
        assert answer.code == 302, answer.read()


def users_token(live: dict, user: User) -> str:
    """A token of ``user``'s own, as they get one with their password (the hub's API)."""
    log_in(live, user)
    status, made = hub_api(live["url"], f"/hub/api/users/{user.name}/tokens", body={
        "auth": {"username": user.name, "password": live["password"]}, "note": "test",
    })  # fmt: skip
    assert status == 201, made
    return made["token"]


def server_environment(live: dict, user: User) -> dict[str, str]:
    """What JupyterHub gave ``user``'s JupyterLab (and so its terminals and
    kernels) of the hub's and the course's settings; their server is started
    first if it is not running."""
    def servers() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                mine = proc.stat().st_uid == user.uid
                if mine and b"jupyterhub-singleuser" in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except (OSError, ValueError):
                continue
        return found

    if not servers():
        token = users_token(live, user)
        status, said = hub_api(live["url"], f"/hub/api/users/{user.name}/server", token, {})
        assert status in (201, 202), said
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status, model = hub_api(live["url"], f"/hub/api/users/{user.name}", token)
            if model.get("servers", {}).get("", {}).get("ready"):
                break
            time.sleep(1)
    (pid,) = servers()
    variables = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    env = dict(v.decode().split("=", 1) for v in variables if b"=" in v)
    keep = ("JUPYTERHUB_", "DLCOURSE_", "JUPYTER_CONFIG_PATH")
    return {name: value for name, value in env.items() if name.startswith(keep)} | {"PID": str(pid)}


def shown_due(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def test_each_student_sees_their_own_deadline_and_nobody_elses(live: dict) -> None:
    student, other, teacher = live["student"], live["other"], live["teacher"]
    course, due = live["course"], live["due"]
    env = server_environment(live, student)
    pid = env.pop("PID")
    assert deadlines.URL_VARIABLE in env and deadlines.TOKEN_VARIABLE in env
    folder = student.home / ASSIGNMENT
    if not folder.exists():  # the browser test fetched it, unless it ran alone
        student.run("nbgrader", "fetch_assignment", ASSIGNMENT, **env)
    notebook = folder / f"{ANSWERED}.ipynb"

    # In their JupyterLab's terminal: their due date, with their 3-day extension.
    checked = student.run(*DLCOURSE, "check", str(notebook), check=False, **env)
    assert (
        f"Deadline: due {shown_due(due + dt.timedelta(days=3))} (an extension of 3 day(s) "
        f"from {shown_due(due)}): 4 day(s) " in checked.stdout
    ), checked.stdout + checked.stderr

    # The instructor moves the due date and extends more: seen at once, nothing re-released.
    moved = due + dt.timedelta(days=1)
    write_policy(course, teacher, policy_text(moved, {student.name: "5"}))
    asked = student.run(sys.executable, "-c", "from dlcourse.course import check; "
                        f"print(check.deadline({str(notebook)!r}))", **env)  # fmt: skip
    assert asked.stdout.startswith(
        f"Deadline: due {shown_due(moved + dt.timedelta(days=5))} (an extension of 5 day(s)"
    ), asked.stdout

    # The other student: the course's due date, and nothing of the first's extension,
    # however they ask (their own token; no token; the first student's name in the request).
    url = env[deadlines.URL_VARIABLE]
    token = users_token(live, other)
    others = {deadlines.URL_VARIABLE: url, deadlines.TOKEN_VARIABLE: token}
    for query in ("", f"?student={student.name}", f"?user={student.name}"):
        status, said = hub_api(url, query, token)
        assert status == 200, said
        assert said["student"] == other.name and said["policy"]["extension_seconds"] is None
        assert deadlines.from_answer(said)[1].due == moved
        assert student.name not in json.dumps(said)
    assert hub_api(url, "")[0] == 403
    assert hub_api(url, "", "not-a-token")[0] == 403
    theirs = other.run(sys.executable, "-c", "from dlcourse.course import check; "
                       f"print(check.deadline({str(other.home)!r}))",
                       **others)  # fmt: skip
    assert theirs.stdout.strip().startswith(f"Deadline: due {shown_due(moved)}: 2 day(s) ")
    assert "extension" not in theirs.stdout
    # Nor by another way: the policy is the instructor's, the first's token is in their
    # server's environment, which only they (and root) can read.
    assert other.run("cat", str(Layout(course).policy), check=False).returncode != 0
    assert other.run("cat", f"/proc/{pid}/environ", check=False).returncode != 0

    # A policy that cannot be read: the student is told so, never its error (which
    # names the line of another student's extension).
    write_policy(course, teacher, policy_text(moved, {student.name: "soon"}))
    status, said = hub_api(url, "", token)
    assert status == 503 and student.name not in json.dumps(said), said
    broken = other.run(sys.executable, "-c", "from dlcourse.course import check; "
                       f"print(check.deadline({str(other.home)!r}))",
                       check=False, **others)  # fmt: skip
    assert "policy.toml cannot be read just now" in broken.stderr
    assert student.name not in broken.stderr
    checked = subprocess.run(
        exposed.command(*DLCOURSE, "hub", "check", "--config", str(live["config"])),
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 1 and "line 7" in checked.stdout, checked.stdout
    write_policy(course, teacher, policy_text(moved, {student.name: "5"}))
