"""After `dlcourse grade`, nbgrader's formgrader is a real client, in headless Chromium.

A small class is graded (an honest student, one who lost an exercise, one
whose gradient came from the library, one whose notebook holds HTML meant to
run in the instructor's browser), then the instructor's JupyterLab is started
on the course as the README starts it, and the test reads formgrader's pages
as an instructor does: every student's score, the submission marked for
manual grading with its reason, and the hostile submission, whose HTML must
not run. Skipped, saying why, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
from fixtures.browser import Watch, artefacts_folder, browser_context, chromium_path
from test_browser import Lab, running_lab

from dlcourse.course import appendix, grading
from dlcourse.course.grading import sandbox
from dlcourse.course.layout import CONFIG, RELEASE, SOURCE, Layout

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_chain_rule.ipynb"
ANSWERS = {a.grade_id: a.code for a in appendix.answers(ROOT)}
CORRECT = ANSWERS["chain_rule"]
ENGINE = (
    "def chain_rule(f_prime, g, g_prime):\n"
    "    def derivative(x):\n"
    "        x = np.array(x, dtype=float)\n"
    "        return f_prime(g(x)) * numerical_grad(lambda u: np.sum(g(u)), x)\n"
    "    return derivative\n"
)
HOSTILE_CODE = (
    "from IPython.display import HTML, Javascript, display\n"
    "display(HTML('<img src=x onerror=\"window.top.__xss = 1\">'))\n"
    "display(Javascript('window.top.__xss = 1'))\n" + CORRECT
)
HOSTILE_MARKDOWN = (
    "<script>window.top.__xss = 1</script><img src=x onerror='window.top.__xss = 1'>\n\n"
    "[click](javascript:window.top.__xss=1)"
)
STUDENTS = {
    "honest": ({}, 20.0),
    "partial": ({"chain_rule": CORRECT.replace("f_prime(g(x))", "f_prime(x)")}, 18.0),
    "engine": ({"chain_rule": ENGINE}, 20.0),
    "hostile": ({"chain_rule": HOSTILE_CODE}, 20.0),
}
pytestmark = pytest.mark.slow


def submission(code: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / RELEASE / "ch01" / NOTEBOOK, 4)
    for cell in nb.cells:
        info = cell.metadata.get("nbgrader", {})
        if info.get("solution"):
            cell.source = code.get(info["grade_id"], ANSWERS[info["grade_id"]])
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium_path()  # skip before grading a class nobody will look at
    root = tmp_path_factory.mktemp("formgrader") / "course"
    root.mkdir()
    for name in (CONFIG, SOURCE, RELEASE):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, root / name)
    layout = Layout.of(root)
    for student, (code, _) in STUDENTS.items():
        nb = submission(code)
        if student == "hostile":
            nb.cells.append(nbformat.v4.new_markdown_cell(HOSTILE_MARKDOWN))
        layout.submitted(student).mkdir(parents=True)
        nbformat.write(nb, layout.submitted(student) / NOTEBOOK)
    unsafe = sandbox.unavailable() is not None
    grading.grade(root, grading.Options(workers=2, unsafe=unsafe))
    return root


@pytest.fixture(scope="module")
def lab(course: Path) -> Iterator[Lab]:
    with running_lab(course, "--instructor") as lab:
        yield lab


def api(lab: Lab, path: str) -> object:
    request = urllib.request.Request(
        f"{lab.url}formgrader/api/{path}", headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def instructor(lab: Lab) -> Iterator[tuple[Page, Watch]]:
    """A browser page logged in to the instructor's JupyterLab (formgrader's
    scripts call its API with the page's credentials)."""
    with browser_context() as (context, watch):
        context.set_extra_http_headers({"Authorization": f"token {lab.token}"})
        yield context.new_page(), watch


def test_formgrader_shows_every_students_score(lab: Lab, tmp_path: Path) -> None:
    shots = artefacts_folder(tmp_path, "formgrader")
    with instructor(lab) as (page, watch):
        page.goto(f"{lab.url}formgrader/gradebook/ch01/02_chain_rule")
        page.get_by_text("Show All Names").click(timeout=60_000)
        for student, (_, points) in STUDENTS.items():
            row = page.locator("tr", has_text=student).first
            row.wait_for(timeout=60_000)
            assert f"{points:g} / 20" in row.inner_text(), (student, row.inner_text())
        page.screenshot(path=shots / "1-gradebook.png", full_page=True)
        for student in STUDENTS:  # the check mark in "Needs Manual Grade?"
            flags = page.locator("tr", has_text=student).first.locator(".needs-manual-grade span")
            assert flags.count() == (student == "engine"), student
        assert not watch.blocked


def test_formgrader_shows_the_reason_an_answer_needs_manual_grading(lab: Lab) -> None:
    notebooks = api(lab, "submitted_notebooks/ch01/02_chain_rule")
    engine = next(n for n in notebooks if n["student"] == "engine")
    assert engine["needs_manual_grade"]
    assert not next(n for n in notebooks if n["student"] == "honest")["needs_manual_grade"]
    with instructor(lab) as (page, _):
        page.goto(f"{lab.url}formgrader/submissions/{engine['id']}")
        box = page.locator("textarea[placeholder*='numerical_grad']")
        box.first.wait_for(timeout=60_000)
        assert "not backpropagation by hand" in box.first.get_attribute("placeholder")


def test_student_html_never_runs_in_formgrader(lab: Lab, tmp_path: Path) -> None:
    shots = artefacts_folder(tmp_path, "formgrader")
    notebooks = api(lab, "submitted_notebooks/ch01/02_chain_rule")
    hostile = next(n for n in notebooks if n["student"] == "hostile")
    with instructor(lab) as (page, _):
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{lab.url}formgrader/submissions/{hostile['id']}")
        page.locator("text=chain_rule: visible tests passed").first.wait_for(timeout=60_000)
        page.locator("a", has_text="click").first.click(timeout=10_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=shots / "2-hostile-submission.png", full_page=True)
        assert page.evaluate("window.top.__xss") is None
        assert dialogs == []
