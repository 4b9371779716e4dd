"""The learner's way through JupyterLab, in headless Chromium.

JupyterLab is started the way the README starts it (`dlcourse lab`), on
127.0.0.1 with a token and a free port, in a copy of the course so that
nothing the test types reaches the repository.  The test then does what a
learner does and saves a screenshot of every step; the folder is printed.
Skipped, saying why, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
from fixtures.browser import artefacts_folder, browser_context, chromium_path

from dlcourse.course.authoring import KERNEL
from dlcourse.course.layout import APPENDIX, ASSIGNMENT, CONFIG, INDEX, RELEASE, SOURCE, Layout

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/ch01/02_chain_rule.ipynb"
GRADING_PROGRESS = "grading_progress.ipynb"
SECRET = "dlcourse-not-for-learners"  # in every file of the course copy a learner must not reach
# What the solution notebooks hold and a learner's notebooks never do.
ANSWER_MARKS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")
WORKSPACE_TOP = {ASSIGNMENT, INDEX.name, APPENDIX.name}  # what a learner's file browser lists
CORRECT = """def chain_rule(f_prime, g, g_prime):
    def derivative(x):
        return f_prime(g(x)) * g_prime(x)
    return derivative"""
WRONG = """def chain_rule(f_prime, g, g_prime):
    def derivative(x):
        return f_prime(x) * g_prime(x)
    return derivative"""
HINT = "evaluate f' at g(x), not at x"  # the test cell's message for WRONG
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
pytestmark = pytest.mark.slow


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def open(self, path: str) -> str:
        return f"{self.url}lab/tree/{path}?token={self.token}"

    def api(self, endpoint: str, method: str = "GET") -> urllib.request.Request:
        """A request to the server's REST API, with the token."""
        return urllib.request.Request(
            f"{self.url}api/{endpoint}",
            headers={"Authorization": f"token {self.token}"},
            method=method,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command() -> list[str]:
    """`dlcourse lab`, from the console script next to this Python if installed."""
    script = Path(sys.executable).parent / "dlcourse"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dlcourse.course.cli"]


def wait_until_up(process: subprocess.Popen, lab: Lab) -> None:
    deadline = time.monotonic() + 120
    request, log = lab.api("status"), lab.log
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`dlcourse lab` exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within 120 s:\n{log.read_text()[-3000:]}")


def course_copy(folder: Path) -> Path:
    """A copy of the course (the learner's and the instructor's notebooks, the
    configuration) in ``folder``, with a gradebook and a submission that hold
    SECRET, as after grading; its path."""
    from nbgrader.api import Gradebook

    from dlcourse.course import nbgrader_cli

    nbgrader_cli.put_tools_on_path()  # a new gradebook runs alembic
    course = folder / "course"
    course.mkdir()
    for name in (CONFIG, SOURCE, RELEASE):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, course / name)
    layout = Layout.of(course)
    with Gradebook(f"sqlite:///{layout.gradebook}") as gradebook:
        gradebook.add_student(SECRET)
    submission = nbformat.read(ROOT / NOTEBOOK, 4)
    submission.cells.append(nbformat.v4.new_markdown_cell(SECRET))
    layout.submitted("alice").mkdir(parents=True)
    nbformat.write(submission, layout.submitted("alice") / Path(NOTEBOOK).name)
    return course


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium_path()  # skip before starting a server nobody will look at
    course = course_copy(tmp_path_factory.mktemp("lab"))
    # an instructor's notebook showing grading's progress (the calls grade() makes)
    instructor = nbformat.v4.new_notebook(metadata={"kernelspec": dict(KERNEL)})
    instructor.cells.append(
        nbformat.v4.new_code_cell(
            "from dlcourse.course.grading import ProgressBar\n"
            "bar = ProgressBar()\n"
            "for done in range(1, 4):\n"
            "    bar(done, 3, failures=1)\n"
            "bar.close()"
        )
    )
    nbformat.write(instructor, course / GRADING_PROGRESS)
    return course


@pytest.fixture(scope="module")
def lab(course: Path) -> Iterator[Lab]:
    """The learner's JupyterLab, as `./course lab` starts it."""
    with running_lab(course) as lab:
        yield lab


@pytest.fixture(scope="module")
def instructor_lab(course: Path) -> Iterator[Lab]:
    with running_lab(course, "--instructor") as lab:
        yield lab


@contextlib.contextmanager
def running_lab(course: Path, *options: str) -> Iterator[Lab]:
    """`dlcourse lab OPTIONS` on ``course``, on 127.0.0.1 with a token and a
    free port (JupyterLab's options, after dlcourse's); its log next to the
    course. Ended, with its kernels, when the block ends."""
    port, token = free_port(), secrets.token_hex(16)
    log = course.parent / f"jupyterlab{''.join(options)}.log"
    # The Jupyter state folders of conftest.py, under a temporary folder, but the
    # configuration `dlcourse lab` keeps in the course (here, the course's copy).
    env = dict(os.environ)
    del env["JUPYTER_CONFIG_DIR"]
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    command = [
        *lab_command(),
        "lab",
        *options,
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=course,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its kernels too are ended with it below
        )
    lab = Lab(f"http://127.0.0.1:{port}/", token, log)
    try:
        wait_until_up(process, lab)
        yield lab
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = artefacts_folder(tmp_path_factory.getbasetemp() / "artefacts", "jupyterlab")
    return folder


def open_notebook(page: Page, lab: Lab, path: str) -> Locator:
    """Open ``path`` in JupyterLab and wait until the page is connected to its
    kernel; the notebook's panel. The page is loaded again if it is not
    connected within a minute, up to three times."""
    for _ in range(3):
        page.goto(lab.open(path))
        panel = current_notebook(page)
        if connected(page, lab, path, seconds=60):
            return panel
    pytest.fail(f"no kernel of {path} was connected and idle after three loads: {sessions(lab)}")


def connected(page: Page, lab: Lab, path: str, seconds: float) -> bool:
    """Whether the page gets connected to the kernel of ``path``'s session
    within ``seconds``, as the server sees it (the page's indicator says idle
    before it is, and cells run then are lost); or within three times that
    while JupyterLab is still starting the notebook's kernel, which takes
    minutes on a loaded machine (a reload then would only start again).

    It waits in Playwright (``page.wait_for_timeout``), never in ``time.sleep``:
    every request of the page goes through the context's route handler, which
    Playwright's sync API runs only inside its own calls, so a page left alone
    asks the server for its kernel only when the test next calls Playwright."""
    start = time.monotonic()
    while (waited := time.monotonic() - start) < 3 * seconds:
        now = sessions(lab)
        kernels = [s["kernel"] for s in now if s["path"] == path]
        if any(k["connections"] and k["execution_state"] == "idle" for k in kernels):
            return True
        starting = any(
            s["kernel"]["execution_state"] == "starting"
            for s in now
            if s["path"] == path or s["name"] == Path(path).name
        )
        if waited > seconds and not starting:
            return False
        page.wait_for_timeout(500)
    return False


def sessions(lab: Lab) -> list[dict]:
    """The lab's sessions, from its REST API."""
    with urllib.request.urlopen(lab.api("sessions"), timeout=30) as response:
        return json.loads(response.read())


def current_notebook(page: Page) -> Locator:
    """The notebook in front, once its kernel is ready."""
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)
    return panel


def run_all(page: Page, panel: Locator) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    wait_idle(panel)


def wait_idle(panel: Locator) -> None:
    """Wait until the kernel has taken the work and finished it."""
    indicator = panel.locator(".jp-Notebook-ExecutionIndicator")
    # Playwright's TimeoutError if the work was over before we looked
    with contextlib.suppress(Exception):
        panel.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").wait_for(
            state="attached", timeout=5_000
        )
    indicator.and_(panel.locator("[data-status='idle']")).wait_for(
        state="attached", timeout=120_000
    )


def code_cell(panel: Locator, text: str) -> Locator:
    """The code cell whose source contains ``text``."""
    cell = panel.locator(".jp-CodeCell", has=panel.page.locator(".cm-content", has_text=text))
    assert cell.count() == 1, f"expected one cell with {text!r}, found {cell.count()}"
    return cell


def answer_and_test(page: Page, panel: Locator, answer: str) -> Locator:
    """Type ``answer`` into the chain rule's answer cell, run it and its test
    cell below (Shift+Enter twice, as a learner does); the test cell."""
    editor = code_cell(panel, "def chain_rule").locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(answer)
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    test = code_cell(panel, "chain_rule: visible tests passed")
    wait_idle(panel)
    test.locator(".jp-OutputArea-output").first.wait_for(state="attached", timeout=60_000)
    test.scroll_into_view_if_needed()
    return test


def test_a_learner_runs_answers_and_validates_a_section(
    lab: Lab, shots: Path, capsys: pytest.CaptureFixture
) -> None:
    with capsys.disabled():
        print(f"\n  JupyterLab screenshots: {shots}\n  JupyterLab log: {lab.log}")
    with browser_context((1400, 1000)) as (context, watch):
        page = context.new_page()
        page.goto(f"{lab.url}?token={lab.token}")  # the address `dlcourse lab` prints
        first = current_notebook(page)
        assert "1.1 Deep Learning" in (
            first.locator(".jp-RenderedMarkdown h1").first.text_content() or ""
        )
        page.locator(".jp-DirListing-item", has_text=Path(NOTEBOOK).name).dblclick()
        page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) h1", has_text="1.2 Chain Rule"
        ).wait_for()
        panel = current_notebook(page)
        page.screenshot(path=shots / "1-opened.png")

        equation = panel.locator(
            ".jp-RenderedMarkdown mjx-container[display='true']", has_text="(1.1)"
        )
        equation.wait_for(timeout=30_000)
        assert equation.locator("mjx-labels mjx-mtext").is_visible(), "(1.1) is not drawn"
        equation.screenshot(path=shots / "2-equation-1.1.png")

        run_all(page, panel)
        error = panel.locator(STDERR).first
        error.wait_for(state="attached", timeout=60_000)
        # text_content: JupyterLab leaves cells far from the view unrendered (no inner text)
        assert "NotImplementedError" in (error.text_content() or "")
        unanswered = code_cell(panel, "numerical_derivative: visible tests passed")
        assert unanswered.locator(STDERR).count() == 1, "the first exercise's test should fail"
        unanswered.scroll_into_view_if_needed()
        page.screenshot(path=shots / "3-run-all-stops-at-the-first-exercise.png")

        widths = panel.locator(".jp-OutputArea-output img").evaluate_all(
            "images => images.map(i => i.naturalWidth)"
        )
        assert len(widths) >= 3 and all(widths), f"figures: {widths}"
        figure = panel.locator(".jp-OutputArea-output img").first
        figure.scroll_into_view_if_needed()
        figure.screenshot(path=shots / "4-figure.png")

        test = answer_and_test(page, panel, CORRECT)
        assert "chain_rule: visible tests passed" in test.inner_text()
        assert test.locator(STDERR).count() == 0
        page.screenshot(path=shots / "5-correct-answer-passes.png")

        test = answer_and_test(page, panel, WRONG)
        message = test.locator(STDERR).inner_text()
        assert HINT in message and "chain_rule(cos, x^2, 2x)(x)" in message, message
        page.screenshot(path=shots / "6-wrong-answer-named.png")

        panel.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-item", has_text="Validate").click()
        verdict = page.locator(".jp-Dialog")
        verdict.wait_for(timeout=120_000)
        text = verdict.inner_text()
        page.screenshot(path=shots / "7-validate-verdict.png")
        assert "Validation Results" in text and "failed" in text, text
        assert HINT in text, "Validate should judge the notebook as the learner left it"
        assert "NotImplementedError" in text, "unanswered exercises should be reported"
        verdict.locator("button", has_text="OK").click()
        asked = page.locator(".jp-toast-button", has_text="No").count()
        assert asked == 0, "JupyterLab asked to fetch news: `dlcourse lab` turns news off"

    (shots / "console-errors.txt").write_text("\n".join(watch.console_errors))
    assert not watch.blocked, f"JupyterLab tried to reach other hosts: {watch.blocked}"
    assert not watch.page_errors, watch.page_errors


def test_training_shows_a_progress_widget(lab: Lab, shots: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    with browser_context((1400, 1000)) as (context, watch):
        page = context.new_page()
        for _ in range(3):  # a page JupyterLab shows idle may run nothing: load it again
            panel = open_notebook(page, lab, f"{ASSIGNMENT}/01_deep_learning.ipynb")
            run_all(page, panel)
            bar = panel.locator(".jp-OutputArea-output .widget-hprogress")
            with contextlib.suppress(PlaywrightTimeoutError):
                bar.first.wait_for(state="attached", timeout=60_000)
                break
        assert bar.count() >= 1, "no progress widget after three runs of the notebook"
        widget = panel.locator(".jp-OutputArea-output:has(.widget-hprogress)").first
        widget.scroll_into_view_if_needed()
        shown = widget.text_content() or ""
        assert "100%" in shown and "150/150" in shown, shown
        widget.screenshot(path=shots / "8-progress-widget.png")
        texts = panel.locator(".jp-OutputArea-output").evaluate_all(
            "outputs => outputs.map(o => o.textContent)"
        )
        garbage = [t for t in texts if "|" in t and "%" in t and "epoch" in t]
        assert not garbage, f"a progress bar is shown as text: {garbage}"
    assert not watch.blocked, f"JupyterLab tried to reach other hosts: {watch.blocked}"
    assert not watch.page_errors, watch.page_errors


def test_grading_shows_a_progress_widget(instructor_lab: Lab, shots: Path) -> None:
    with browser_context((1400, 1000)) as (context, watch):
        page = context.new_page()
        open_notebook(page, instructor_lab, GRADING_PROGRESS)
        # the workspace may bring back the sections opened before: act on this notebook
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)", has_text="ProgressBar")
        panel.locator(".jp-Cell").first.click()
        run_all(page, panel)
        widget = panel.locator(".jp-OutputArea-output:has(.widget-hprogress)").first
        widget.wait_for(state="attached", timeout=60_000)
        shown = widget.text_content() or ""
        assert "grading" in shown and "3/3" in shown and "problems=1" in shown, shown
        widget.screenshot(path=shots / "9-grading-progress-widget.png")
        assert panel.locator(STDERR).count() == 0
    assert not watch.blocked, f"JupyterLab tried to reach other hosts: {watch.blocked}"
    assert not watch.page_errors, watch.page_errors


def listing(page: Page) -> set[str]:
    """The names in the file browser, once it has listed its folder."""
    names = page.locator(".jp-FileBrowser .jp-DirListing-item .jp-DirListing-itemText")
    names.first.wait_for(timeout=60_000)
    return set(names.all_inner_texts())


def go_home(page: Page) -> set[str]:
    """Take the file browser to its top folder, and keep it there (JupyterLab
    may still be taking it to the folder of the notebook it opened, and draws
    the breadcrumbs and the listing at different times); what it lists once it
    has been in the top folder, listing the same names, for three looks in a row."""
    deadline = time.monotonic() + 60
    home = page.locator(".jp-FileBrowser .jp-BreadCrumbs-home")
    crumbs = page.locator(".jp-FileBrowser .jp-BreadCrumbs-item")
    looks: list[set[str]] = []
    while len(looks) < 3 or looks[-1] != looks[-2] or looks[-2] != looks[-3]:
        assert time.monotonic() < deadline, f"the file browser would not stay home: {looks}"
        if crumbs.count():
            home.click()
            looks.clear()
        else:
            names = listing(page)
            looks = [*looks, names] if not crumbs.count() else []
        page.wait_for_timeout(700)
    return looks[-1]


def test_the_learners_file_browser_reaches_only_the_workspace(lab: Lab, shots: Path) -> None:
    with browser_context((1400, 1000)) as (context, watch):
        page = context.new_page()
        page.goto(f"{lab.url}?token={lab.token}")
        current_notebook(page)
        assert go_home(page) == WORKSPACE_TOP
        page.screenshot(path=shots / "10-learner-file-browser.png")
        # the top folder has no parent to go up to
        crumbs = page.locator(".jp-FileBrowser .jp-BreadCrumbs-item").all_inner_texts()
        assert ".." not in crumbs and SOURCE not in crumbs, crumbs
        launcher = page.locator(".lm-TabBar-tab", has_text="Launcher")
        page.locator(".jp-FileBrowser-toolbar [data-command='launcher:create']").click()
        launcher.first.wait_for(timeout=30_000)
        cards = page.locator(".jp-LauncherCard").all_inner_texts()
        assert cards and not [c for c in cards if "Terminal" in c], cards
        menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        assert "Nbgrader" not in menus, f"the instructor's nbgrader menu is there: {menus}"
        for path in (
            f"../{SOURCE}/{ASSIGNMENT}/02_chain_rule.ipynb",
            f"%2e%2e/{SOURCE}/{ASSIGNMENT}/02_chain_rule.ipynb",
            f"{ASSIGNMENT}/../../{SOURCE}/{ASSIGNMENT}/02_chain_rule.ipynb",
            f"../submitted/alice/{ASSIGNMENT}/02_chain_rule.ipynb",
        ):
            page.goto(f"{lab.url}lab/tree/{path}?token={lab.token}")
            page.locator(".jp-FileBrowser .jp-DirListing-item").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)  # time for a document to open, if it were to
            shown = page.locator("#main").inner_text()
            assert not [m for m in (*ANSWER_MARKS, SECRET) if m in shown], path
            # what is open (the learner's notebooks, brought back from before) is theirs
            tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").evaluate_all(
                "tabs => tabs.map(t => t.title)"
            )
            opened = [line for t in tabs for line in t.splitlines() if line.startswith("Path:")]
            assert all(p.startswith(f"Path: {ASSIGNMENT}/") for p in opened), (path, tabs)
            assert go_home(page) == WORKSPACE_TOP, path
        page.screenshot(path=shots / "11-learner-asked-for-a-solution.png")
    assert not watch.blocked, f"JupyterLab tried to reach other hosts: {watch.blocked}"
    assert not watch.page_errors, watch.page_errors


def test_the_instructors_file_browser_has_the_whole_course(
    instructor_lab: Lab, shots: Path
) -> None:
    with browser_context((1400, 1000)) as (context, watch):
        page = context.new_page()
        page.goto(f"{instructor_lab.url}lab/tree/{SOURCE}?token={instructor_lab.token}")
        page.locator(".jp-FileBrowser .jp-DirListing-item", has_text=ASSIGNMENT).first.wait_for(
            timeout=60_000
        )
        page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()
        page.locator(".jp-FileBrowser .jp-DirListing-item", has_text="submitted").wait_for()
        assert {SOURCE, RELEASE, "submitted", "gradebook.db"} <= listing(page)
        assert "Nbgrader" in page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        page.screenshot(path=shots / "12-instructor-file-browser.png")
    assert not watch.page_errors, watch.page_errors
