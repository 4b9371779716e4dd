"""The course as a static book: HTML pages that read offline, from a folder
or any static web server.

Pages, in reading order: the index (contents and terms), Chapter 1's three
sections and, unless left out for a release before the deadline, Appendix A.

- The sections are the learner versions (``notebooks/ch01``: answers are
  stubs, hidden tests are gone), run top to bottom in a fresh kernel when
  the book is built, so that their figures and printed results are the ones
  a learner sees.  Exercise test cells are shown but not run: on the stubs
  they could only show a ``NotImplementedError``.  Outputs are never taken
  from the solution notebooks, since a cell after an exercise may compute
  with the solution.
- Links between notebooks (``02_chain_rule.ipynb#The-chain-rule``) become
  links between pages; a link to a page the book does not have stops the
  build, and links to a left-out Appendix A become plain text.
- Mathematics is converted to MathML when the book is built (latex2mathml),
  which browsers render natively: no script, nothing fetched from a CDN, and
  the pages also work when opened as files.  (The alternative, shipping a
  copy of MathJax with every book, means JavaScript, a wait before the
  mathematics appears, and 12 MB of MathJax 2 from the one PyPI package
  that carries it.)  ``\\tag{1.1}`` becomes the equation's number, shown at
  the right margin, and the anchor ``eq-1.1``.  A few gaps of latex2mathml
  are worked around below; the browser test checks that (1.1) is laid out.
- A progress bar (a Jupyter widget, which needs a live kernel) is shown as
  the state it ended in.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import nbformat
from jinja2 import DictLoader, pass_context
from latex2mathml.converter import convert as latex_to_mathml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from dlcourse.course import appendix, authoring
from dlcourse.course.layout import ASSIGNMENT, INDEX, RELEASE, Layout

MARKER = ".dlcourse-book"  # marks a folder as a book this module built, safe to replace
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}<link rel="icon" href="data:,">{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block extra_css -%}
<style type="text/css">
main { max-width: 60rem; margin: 0 auto; }
.dl-nav { display: flex; gap: 1.5em; max-width: 60rem; margin: 0.5em auto; padding: 0.5em 0;
          font-family: var(--jp-ui-font-family); border-bottom: 1px solid #ddd; }
.dl-nav.bottom { border-bottom: none; border-top: 1px solid #ddd; }
.dl-nav .next { margin-left: auto; }
.dl-equation { display: flex; align-items: center; margin: 0.8em 0; }
.dl-equation math { flex: 1; }
.dl-equation-number { padding-left: 1em; }
.dl-widget { display: flex; align-items: center; gap: 0.5em;
             font-family: var(--jp-code-font-family); }
.dl-widget progress { width: 12em; }
</style>
{%- endblock extra_css -%}
{%- macro nav(where) -%}
<nav class="dl-nav {{ where }}">
<a class="contents" href="{{ resources.book.contents }}">Contents</a>
{%- if resources.book.previous %}
<a class="previous" href="{{ resources.book.previous[0] }}">
&larr; {{ resources.book.previous[1] | e }}</a>
{%- endif %}
{%- if resources.book.next %}
<a class="next" href="{{ resources.book.next[0] }}">{{ resources.book.next[1] | e }} &rarr;</a>
{%- endif %}
</nav>
{%- endmacro -%}
{%- block body_header -%}
{{ super() }}
{{ nav("top") }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ nav("bottom") }}
{{ super() }}
{%- endblock body_footer -%}
"""


class BookError(RuntimeError):
    """The book cannot be built as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Page:
    source: PurePosixPath  # the notebook, relative to the course root
    output: PurePosixPath  # the page, relative to the book's folder
    execute: bool  # run it (a chapter section) or show it as it is


def pages(root: Path, include_answers: bool) -> list[Page]:
    """The book's pages in reading order."""
    found = [Page(PurePosixPath(INDEX.as_posix()), PurePosixPath("index.html"), False)]
    release = Layout.of(root).release
    sections = sorted(release.glob("[0-9]*.ipynb"))
    if not sections:
        raise BookError(f"{release} has no notebooks: run `dlcourse release` first.")
    for path in sections:
        found.append(
            Page(
                PurePosixPath(RELEASE, ASSIGNMENT, path.name),
                PurePosixPath(ASSIGNMENT, path.stem + ".html"),
                True,
            )
        )
    if include_answers:
        found.append(Page(_appendix(root), PurePosixPath("appendix_a.html"), False))
    for page in found:
        if not (root / page.source).is_file():
            raise BookError(f"{root / page.source} is missing: run `dlcourse release` first.")
    return found


def _appendix(root: Path) -> PurePosixPath:
    """Appendix A, relative to the course folder, released or withheld."""
    return PurePosixPath(Layout.of(root).appendix.relative_to(Layout.of(root).root).as_posix())


def _relative(target: PurePosixPath, page: PurePosixPath) -> str:
    return PurePosixPath(os.path.relpath(target, page.parent)).as_posix()


class Links:
    """Rewrites a notebook's links to the pages of the book."""

    def __init__(self, book: list[Page], left_out: set[PurePosixPath], page: Page) -> None:
        self.pages = {p.source: p.output for p in book}
        self.left_out = left_out
        self.page = page

    def target(self, url: str) -> str | None:
        """The page-relative URL for a link, or None where the link must go
        (it points into a left-out page)."""
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path:
            return url  # another site, mail, or a fragment on this page
        source = PurePosixPath(os.path.normpath(self.page.source.parent / parts.path))
        if source in self.left_out:
            return None
        if source not in self.pages:
            raise BookError(
                f"{self.page.source} links to {parts.path}, which is not a page of the book "
                f"(pages: {', '.join(str(s) for s in self.pages)}); fix the link in its source."
            )
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        return _relative(self.pages[source], self.page.output) + fragment


_TAG = re.compile(r"\\tag\{([^{}]*)\}")
_MATHRM_LETTER = re.compile(r"\\mathrm\{([A-Za-z])\}")
_TEXT = re.compile(r"\\text\{((?:[^{}\\]|\\.)*)\}")
_PRIMED = re.compile(r"<msup>(<mi>[^<]*</mi>)<mi>(&#x0203[234];)</mi></msup>")


def _tex_for_latex2mathml(tex: str) -> str:
    """Work around two of latex2mathml's gaps: a single letter in \\mathrm
    comes out italic, and escapes such as \\_ stay escaped inside \\text."""
    tex = _MATHRM_LETTER.sub(r"\\text{\1}", tex)
    return _TEXT.sub(lambda m: "\\text{" + re.sub(r"\\([_%&#$])", r"\1", m.group(1)) + "}", tex)


def _mathml_as_tex_sets_it(markup: str) -> str:
    """Two more of latex2mathml's gaps: it writes f' as a superscript prime,
    which browsers raise a second time (the prime glyph is already raised),
    and a slash as an operator with space around it, which TeX does not."""
    markup = _PRIMED.sub(r'\1<mo lspace="0" rspace="0">\2</mo>', markup)
    return markup.replace("<mo>&#x0002F;</mo>", '<mo lspace="0" rspace="0">&#x0002F;</mo>')


def mathml(tex: str, display: bool, where: str) -> str:
    """LaTeX as MathML; a display equation with ``\\tag{n}`` gets its number."""
    number = None
    if display:
        tags = _TAG.findall(tex)
        if len(tags) > 1:
            raise BookError(f"{where}: one \\tag per equation, found {tags} in {tex!r}")
        if tags:
            number = tags[0].strip()
            tex = _TAG.sub("", tex)
    try:
        markup = latex_to_mathml(
            _tex_for_latex2mathml(tex.strip()), display="block" if display else "inline"
        )
    except Exception as error:  # latex2mathml raises many kinds on malformed LaTeX
        raise BookError(f"{where}: cannot convert the LaTeX {tex!r} to MathML: {error}") from None
    markup = _mathml_as_tex_sets_it(markup)
    if not display:
        return markup
    if number is None:
        return f'<span class="dl-equation">{markup}</span>'
    label = html.escape(number)
    return (
        f'<span class="dl-equation" id="eq-{label}">{markup}'
        f'<span class="dl-equation-number">({label})</span></span>'
    )


class BookRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer with MathML for math and book links."""

    def __init__(self, links: Links, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.links = links

    def _where(self) -> str:
        return str(self.links.page.source)

    def inline_math(self, body: str) -> str:
        return mathml(body, display=False, where=self._where())

    def block_math(self, body: str) -> str:
        return mathml(body, display=True, where=self._where())

    def latex_environment(self, name: str, body: str) -> str:
        return mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True, where=self._where())

    def link(self, text: str, url: str, title: str | None = None) -> str:
        target = self.links.target(url)
        return text if target is None else super().link(text, target, title)


class BookExporter(HTMLExporter):
    """nbconvert's JupyterLab-style HTML, with nothing loaded from the network."""

    def __init__(self, links: Links, **kwargs: Any) -> None:
        super().__init__(
            template_name="lab",
            template_file="dlcourse_book.html.j2",
            extra_loaders=[DictLoader({"dlcourse_book.html.j2": TEMPLATE})],
            **kwargs,
        )
        self.links = links

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        cell = context.get("cell", {})
        renderer = BookRenderer(
            self.links,
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
        )
        return MarkdownWithMath(renderer=renderer).render(source)


def _is_test(cell: nbformat.NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("grade"))


def run_section(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 120) -> None:
    """Run every cell but the exercises' tests in a fresh kernel, in place;
    widgets' final states are stored in the notebook's metadata."""
    client = NotebookClient(
        nb,
        config=authoring.kernel_config(),
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(cwd)}},
        record_timing=False,
        store_widget_state=True,
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and _is_test(cell):
                cell.outputs = []
                cell.execution_count = None
            else:
                client.execute_cell(cell, index)
        client.set_widgets_metadata()


def _widget_html(model_id: str, state: dict[str, Any]) -> str:
    """A widget drawn as it ended: boxes, labels and progress bars; any other
    widget as its class name."""
    model = state.get(model_id, {}).get("state", {})
    name = model.get("_model_name", "")
    if name in ("HBoxModel", "VBoxModel"):
        children = [c.removeprefix("IPY_MODEL_") for c in model.get("children", [])]
        inner = "".join(_widget_html(c, state) for c in children)
        direction = "row" if name == "HBoxModel" else "column"
        return f'<div class="dl-widget" style="flex-direction: {direction}">{inner}</div>'
    if name in ("HTMLModel", "LabelModel"):
        value = model.get("value", "")
        return f"<span>{value if name == 'HTMLModel' else html.escape(value)}</span>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        value, top = model.get("value", 0), model.get("max", 100)
        return f'<progress value="{value}" max="{top}"></progress>'
    return f"<span>[{html.escape(name.removesuffix('Model') or 'widget')}]</span>"


def freeze_widgets(nb: nbformat.NotebookNode) -> None:
    """Replace widget outputs by HTML of their final state, in place (a
    static page has no kernel to draw them, and their text fallback is the
    state they started in)."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view:
                output.data = {"text/html": _widget_html(view["model_id"], state)}
    nb.metadata.pop("widgets", None)


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    return next(iter(appendix.headings(nb.cells)), fallback)


def _navigation(book: list[Page], titles: list[str], number: int) -> dict[str, Any]:
    """Links from page ``number`` to the contents and the pages either side."""
    page = book[number]

    def link(other: int) -> tuple[str, str] | None:
        if not 0 <= other < len(book):
            return None
        return _relative(book[other].output, page.output), titles[other]

    return {
        "contents": _relative(book[0].output, page.output),
        "previous": link(number - 1),
        "next": link(number + 1),
    }


def _refuse_foreign(out: Path) -> None:
    """Stop unless ``out`` is free: missing, empty, or a book built here before."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise BookError(
            f"{out} exists and is not a book built by dlcourse; choose another folder "
            "(--out) or remove it yourself."
        )


def _replace(built: Path, out: Path) -> None:
    """Put the freshly built book at ``out``, replacing only a previous book."""
    _refuse_foreign(out)
    if out.exists():
        shutil.rmtree(out)
    built.rename(out)


def build_book(root: Path, out: Path, include_answers: bool = True) -> Path:
    """Build the course at ``root`` as a static site in ``out``; the path of
    its first page (``out/index.html``).

    ``include_answers=False`` leaves Appendix A out (links to it become plain
    text), for a release before the deadline.  ``out`` may not exist yet or
    hold an earlier book; anything else there is never overwritten.
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    if out == root or root.is_relative_to(out):
        raise BookError(f"{out} contains the course; build the book in a folder of its own.")
    _refuse_foreign(out)
    book = pages(root, include_answers)
    left_out = set() if include_answers else {_appendix(root)}
    notebooks = [nbformat.read(root / page.source, as_version=4) for page in book]
    titles = [_title(nb, page.source.stem) for nb, page in zip(notebooks, book)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dlcourse-book-", dir=out.parent) as tmp:
        built = Path(tmp) / "book"
        for number, (page, nb) in enumerate(zip(book, notebooks)):
            folder = (root / page.source).parent
            if page.execute:
                try:
                    run_section(nb, folder)
                except CellExecutionError as error:
                    raise BookError(
                        f"{page.source} fails when run top to bottom (exercise tests aside); "
                        f"fix it and run `dlcourse release`:\n{error}"
                    ) from None
                freeze_widgets(nb)
            nb.metadata["title"] = titles[number]
            exporter = BookExporter(
                Links(book, left_out, page),
                # a page shown as it is was never run: no empty "In [ ]:" prompts
                exclude_input_prompt=not page.execute,
                exclude_output_prompt=not page.execute,
            )
            body, _ = exporter.from_notebook_node(
                nb,
                resources={
                    "metadata": {"name": titles[number], "path": str(folder)},
                    "book": _navigation(book, titles, number),
                },
            )
            target = built / page.output
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")
        (built / MARKER).write_text("Built by `dlcourse book`; rebuilding replaces this folder.\n")
        _replace(built, out)
    return out / book[0].output
