"""`dlcourse book`: the course as an offline static site, built and read in
headless Chromium (skipped, saying why, where Chromium is missing)."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag

import nbformat
import pytest
from bs4 import BeautifulSoup
from fixtures.browser import artefacts_folder, browser_context

from dlcourse.course import appendix
from dlcourse.course import book as bookmod
from dlcourse.course.book import BookError, build_book
from dlcourse.course.cli import main
from dlcourse.course.layout import ASSIGNMENT, CONFIG, RELEASE, SOURCE, Layout

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["01_deep_learning", "02_chain_rule", "03_backpropagation"]
PAGES = ["index.html", *(f"{ASSIGNMENT}/{name}.html" for name in SECTIONS), "appendix_a.html"]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book as an instructor builds it: ``dlcourse book --out DIR``."""
    out = tmp_path_factory.mktemp("book") / "site"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["--root", str(ROOT), "book", "--out", str(out)]) == 0
    assert printed.getvalue() == f"the book: {out / 'index.html'}\n"
    return out


def text_of(path: Path) -> str:
    return BeautifulSoup(path.read_text(), "html.parser").get_text()


def secret_lines(kind: str) -> set[str]:
    """Distinctive lines of the solutions or hidden tests (``kind`` "SOLUTION"
    or "HIDDEN TESTS") that the learner notebooks do not have."""
    learner = "\n".join(
        cell.source
        for name in SECTIONS
        for cell in nbformat.read(Layout(ROOT).release / f"{name}.ipynb", 4).cells
    )
    lines: set[str] = set()
    for name in SECTIONS:
        solution = nbformat.read(Layout(ROOT).solutions / f"{name}.ipynb", 4)
        for cell in solution.cells:
            blocks = re.findall(rf"### BEGIN {kind}\n(.*?)### END {kind}", cell.source, re.S)
            for block in blocks:
                lines |= {
                    line.strip()
                    for line in block.splitlines()
                    if len(line.strip()) >= 20 and line.strip() not in learner
                }
    return lines


def no_execution(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 120) -> None:
    """Stands in for running a section where a test is about pages, not outputs."""


@pytest.mark.slow
def test_the_book_has_every_page_in_order(book: Path) -> None:
    assert sorted(str(p.relative_to(book)) for p in book.rglob("*.html")) == sorted(PAGES)
    index = (book / "index.html").read_text()
    for page in PAGES[1:]:
        assert f'href="{page}' in index, f"the index does not link to {page}"
    titles = [BeautifulSoup((book / p).read_text(), "html.parser").title.string for p in PAGES]
    assert titles[1:4] == ["1.1 Deep Learning", "1.2 Chain Rule", "1.3 Backpropagation"]
    assert titles[4] == "Appendix A: Answers to Exercises"


@pytest.mark.slow
def test_sections_are_the_learner_versions_with_their_outputs(book: Path) -> None:
    secrets = secret_lines("SOLUTION") | secret_lines("HIDDEN TESTS")
    assert len(secrets) > 20
    for name in SECTIONS:
        page = book / ASSIGNMENT / f"{name}.html"
        html, text = page.read_text(), text_of(page)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        leaked = sorted(line for line in secrets if line in text)
        assert not leaked, f"{page.name} shows solution or hidden-test lines: {leaked[:3]}"
        assert "raise NotImplementedError()" in text, "the answer cells should be the stubs"
        figures = BeautifulSoup(html, "html.parser").select('img[src^="data:image/png;base64,"]')
        assert figures, f"{page.name} has no figure"
        assert "Traceback" not in text, f"{page.name} shows an error"
    deep = text_of(book / ASSIGNMENT / "01_deep_learning.html")
    assert re.search(r"training:\s100%\s+150/150", deep), "progress bars show how they ended"
    assert not re.search(r"(?<!\d)0/150", deep), "a progress bar is shown as it started"
    backprop = text_of(book / ASSIGNMENT / "03_backpropagation.html")
    assert "Complete exercises 1.3.1 to 1.3.5 first" in backprop, "outputs must come from the stubs"


@pytest.mark.slow
def test_equations_are_mathml_and_the_book_needs_no_network(book: Path) -> None:
    chain = (book / ASSIGNMENT / "02_chain_rule.html").read_text()
    equation = BeautifulSoup(chain, "html.parser").find(id="eq-1.1")
    assert equation is not None and equation.find("math") is not None
    assert equation.find(class_="dl-equation-number").get_text() == "(1.1)"
    for page in PAGES:
        soup = BeautifulSoup((book / page).read_text(), "html.parser")
        prose = " ".join(cell.get_text() for cell in soup.select(".jp-RenderedMarkdown"))
        assert "$" not in prose, f"{page} has math left as LaTeX"
        assert not soup.find_all("script", src=True), f"{page} loads a script"
        remote = [
            tag.get("href") or tag.get("src")
            for tag in soup.find_all(["link", "img", "iframe", "source"])
            if re.match(r"(https?:)?//", tag.get("href") or tag.get("src") or "")
        ]
        assert not remote, f"{page} loads {remote}"


@pytest.mark.slow
def test_no_figure_is_shown_as_text(book: Path) -> None:
    for name in SECTIONS:
        outputs = BeautifulSoup((book / ASSIGNMENT / f"{name}.html").read_text(), "html.parser")
        text = " ".join(o.get_text() for o in outputs.select(".jp-OutputArea-output"))
        assert "<Figure size" not in text, f"{name}: a figure is shown as its text repr"


def test_without_answers_appendix_a_is_left_out_and_not_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookmod, "run_section", no_execution)
    out = tmp_path / "site"
    with contextlib.redirect_stdout(io.StringIO()):
        main(["--root", str(ROOT), "book", "--out", str(out), "--no-answers"])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.html")) == sorted(PAGES[:-1])
    index = (out / "index.html").read_text()
    assert "appendix_a" not in index
    assert "Appendix A: Answers to Exercises" in text_of(out / "index.html")
    last = BeautifulSoup((out / PAGES[-2]).read_text(), "html.parser")
    assert last.find("a", class_="next") is None, "the last section points to no next page"
    secrets = secret_lines("SOLUTION")
    for page in PAGES[:-1]:
        text = text_of(out / page)
        assert not [line for line in secrets if line in text], f"{page} shows an answer"


def test_while_appendix_a_is_withheld_the_book_leaves_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bookmod, "run_section", no_execution)
    course = tmp_path / "course"
    course.mkdir()
    for name in (CONFIG, SOURCE, RELEASE):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, course / name)
    appendix.build(course, answers=False)  # `dlcourse release --no-answers`
    out = tmp_path / "site"
    main(["--root", str(course), "book", "--out", str(out)])
    assert "Appendix A is withheld" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.html")) == sorted(PAGES[:-1])
    assert "Appendix A: Answers to Exercises" in text_of(out / "index.html")
    appendix.build(course, answers=True)
    build_book(course, out)  # once released, with its links back to the sections
    answers = BeautifulSoup((out / "appendix_a.html").read_text(), "html.parser")
    links = [a["href"] for a in answers.find_all("a", href=True)]
    assert f"{ASSIGNMENT}/01_deep_learning.html#1.1-Deep-Learning" in links, links


def test_rebuilds_a_book_but_never_overwrites_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookmod, "run_section", no_execution)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    with pytest.raises(BookError, match="not a book built by dlcourse"):
        build_book(ROOT, mine)
    assert (mine / "todo.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"], "no temporary folder left"
    out = tmp_path / "site"
    build_book(ROOT, out)
    (out / "stale.html").write_text("from an older build")
    build_book(ROOT, out, include_answers=False)
    assert not (out / "stale.html").exists() and not (out / "appendix_a.html").exists()
    with pytest.raises(BookError, match="contains the course"):
        build_book(ROOT, ROOT.parent)


def small_course(root: Path, index_text: str, cells: list[str] = ()) -> Path:
    """A course with one section (a heading, then ``cells`` as code cells),
    an index and an empty Appendix A, made here."""
    section = nbformat.v4.new_notebook()
    section.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    section.cells = [nbformat.v4.new_markdown_cell("# 1.1 Tiny\n\n$$a = b \\tag{1.1}$$")]
    section.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    (Layout(root).release).mkdir(parents=True)
    (root / "solutions").mkdir()
    nbformat.write(section, Layout(root).release / "01_tiny.ipynb")
    index = nbformat.v4.new_notebook()
    index.cells = [nbformat.v4.new_markdown_cell(index_text)]
    nbformat.write(index, Layout(root).index)
    nbformat.write(nbformat.v4.new_notebook(), Layout(root).appendix)
    return root


def as_exercise_test(path: Path, index: int) -> None:
    """Make cell ``index`` of the notebook at ``path`` a graded test cell."""
    nb = nbformat.read(path, 4)
    nb.cells[index].metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_tiny",
        "locked": True,
        "points": 1,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nbformat.write(nb, path)


@pytest.mark.slow
def test_a_section_runs_without_its_tests_and_shows_widgets_as_they_ended(tmp_path: Path) -> None:
    cells = [
        "print('hello from the section')",
        "raise AssertionError('a test cell must not run in the book')",
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='steps'):\n    pass",
    ]
    course = small_course(tmp_path / "course", "[Tiny](ch01/01_tiny.ipynb)", cells)
    as_exercise_test(Layout(course).release / "01_tiny.ipynb", 2)
    build_book(course, tmp_path / "site")
    page = BeautifulSoup(
        (tmp_path / "site" / ASSIGNMENT / "01_tiny.html").read_text(), "html.parser"
    )
    outputs = " ".join(o.get_text() for o in page.select(".jp-OutputArea-output"))
    assert "hello from the section" in outputs
    assert "Traceback" not in outputs and "AssertionError" not in outputs
    assert re.search(r"steps:\s+100%.*3/3", outputs), outputs
    assert page.select("progress") and page.find(id="eq-1.1") is not None


@pytest.mark.slow
def test_a_section_that_fails_stops_the_build(tmp_path: Path) -> None:
    course = small_course(tmp_path / "course", "[Tiny](ch01/01_tiny.ipynb)", ["1 / 0"])
    with pytest.raises(BookError, match=r"01_tiny.ipynb fails when run(?s:.*)ZeroDivisionError"):
        build_book(course, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_a_link_to_a_page_the_book_lacks_stops_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookmod, "run_section", no_execution)
    course = small_course(tmp_path / "course", "# Contents\n\n[gone](ch01/02_gone.ipynb#Top)")
    with pytest.raises(BookError, match=r"links to ch01/02_gone.ipynb, which is not a page"):
        build_book(course, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_a_course_without_released_notebooks_is_told_to_release(tmp_path: Path) -> None:
    with pytest.raises(BookError, match="dlcourse release"):
        build_book(tmp_path, tmp_path / "site")


@pytest.fixture
def served(book: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(book))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()
    thread.join()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not news."""


EQUATION_1_1 = """() => {
    const box = document.getElementById("eq-1.1");
    const math = box && box.querySelector("math");
    if (!math) return null;
    const fraction = math.querySelector("mfrac");
    const [top, bottom] = [...fraction.children].map(e => e.getBoundingClientRect());
    const rect = math.getBoundingClientRect();
    return {
        width: rect.width, height: rect.height,
        number: box.querySelector(".dl-equation-number").textContent,
        // laid out as MathML: the numerator sits above the denominator
        stacked: top.bottom <= bottom.top + 1,
    };
}"""


@pytest.mark.slow
def test_the_book_in_chromium(
    book: Path, served: str, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture
) -> None:
    shots = artefacts_folder(tmp_path_factory.getbasetemp() / "artefacts", "book")
    with capsys.disabled():
        print(f"\n  book screenshots: {shots}")
    with browser_context() as (context, watch):
        page = context.new_page()
        anchors: dict[str, set[str]] = {}
        links: dict[str, list[str]] = {}
        figures = 0
        for name in PAGES:
            response = page.goto(served + name)
            assert response is not None and response.ok, name
            anchors[page.url] = set(page.eval_on_selector_all("[id]", "es => es.map(e => e.id)"))
            links[name] = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
            images = page.eval_on_selector_all(
                "main img", "is => is.map(i => i.complete && i.naturalWidth)"
            )
            assert all(images), f"{name}: a figure did not load: {images}"
            figures += len(images)
            page.screenshot(path=shots / (name.replace("/", "_") + ".png"), full_page=False)

        assert figures >= 5, f"only {figures} figures in the book"

        for name, hrefs in links.items():
            internal = [h for h in hrefs if h.startswith(served)]
            assert internal, f"{name} links nowhere"
            for href in internal:
                target, fragment = urldefrag(href)
                if target not in anchors:
                    response = page.goto(target)
                    assert response is not None and response.ok, f"{name}: {href} is broken"
                    anchors[target] = set(
                        page.eval_on_selector_all("[id]", "es => es.map(e => e.id)")
                    )
                assert not fragment or fragment in anchors[target], (
                    f"{name}: {href} points to no heading on its page"
                )

        page.goto(served + f"{ASSIGNMENT}/02_chain_rule.html#eq-1.1")
        equation = page.evaluate(EQUATION_1_1)
        assert equation is not None, "equation (1.1) is missing"
        assert equation["number"] == "(1.1)"
        assert equation["width"] > 100 and equation["height"] > 20, equation
        assert equation["stacked"], "the fraction in (1.1) is not laid out as mathematics"
        assert page.locator("#eq-1\\.1").is_visible()
        page.locator("#eq-1\\.1").screenshot(path=shots / "equation_1.1.png")

        # read straight from the folder, as someone given the book would
        page.goto((book / "index.html").as_uri())
        page.click("text=1.2 Chain Rule")
        page.wait_for_url("**/02_chain_rule.html#1.2-Chain-Rule")
        assert page.evaluate(EQUATION_1_1)["stacked"]

    assert not watch.blocked, f"the book tried to reach other hosts: {watch.blocked}"
    assert not watch.console_errors and not watch.page_errors, (
        watch.console_errors + watch.page_errors
    )
