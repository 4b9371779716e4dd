"""Student HTML never runs (issue 11): make_inert on every class of vector, then
the pages nbgrader makes of an autograded notebook, loaded in Chromium.

An autograded notebook holds the student's markdown, metadata the student
wrote, and outputs the student's code produced from a kernel it controls.
The unit tests feed make_inert one vector class at a time and check what it
did to the data; the Chromium tests render a notebook holding every vector
and honest content through nbgrader's feedback and formgrade templates,
before and after make_inert, with the course's configuration and with plain
nbgrader's, and look at what ran.  The Chromium tests skip, saying why,
where Chromium or Playwright is missing.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest
from fixtures.browser import browser_context, chromium_path
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import InvalidNotebook
from nbconvert.filters.strings import strip_files_prefix
from nbformat import NotebookNode, from_dict
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from dlcourse.course.grading import inert
from dlcourse.course.grading.inert import clean_html, make_inert
from dlcourse.course.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_deep_learning", "02_chain_rule", "03_backpropagation")
MATHS = r"$f'(g(x))\,g'(x)$"


def js(name: str) -> str:
    """What every vector tries to run: a console marker, and a mark on the top
    window (which a frame of another origin cannot reach, hence the marker)."""
    return f"console.log('XSS:{name}');(top.__xss=top.__xss||[]).push('{name}')"


def png(width: int = 4, height: int = 3) -> str:
    """A real PNG, base64: a grey image of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    data = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    data += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


HONEST_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10">'
    '<rect width="20" height="10" fill="teal"/></svg>'
)
HONEST_MARKDOWN = {
    "prose and maths": f"## The chain rule\n\nThe derivative of $f(g(x))$ is {MATHS}, and\n\n"
    "$$\\frac{d}{dx} \\sin(x^2) = 2x \\cos(x^2).$$\n\nWith *emphasis*, **strength**, `code` "
    "and a < b & c > d.",
    "links and images": "See [the docs](https://numpy.org/doc/), [a section](#The-chain-rule), "
    '[a file](data/notes.md), <https://example.org> and ![a figure](figure.png "title").',
    "table": "| x | f(x) |\n|:--|--:|\n| 1 | 2.5 |\n| 2 | 4.0 |",
    "code and lists": "1. first\n2. second\n   - nested\n\n"
    "```python\ndef f(x):\n    return x**2\n```\n\n> a quote",
    "inline HTML a student may write": "Line<br>break, <b>bold</b>, <sub>sub</sub>, "
    '<span style="color: red">red</span>\n\n<div align="center">centred</div>',
}
PANDAS_TABLE = """<div>
<style scoped>
    .dataframe tbody tr th:only-of-type {
        vertical-align: middle;
    }
</style>
<table border="1" class="dataframe">
  <thead>
    <tr style="text-align: right;">
      <th></th>
      <th>loss</th>
    </tr>
  </thead>
  <tbody>
    <tr>
      <th>0</th>
      <td>0.25</td>
    </tr>
  </tbody>
</table>
</div>"""

# Markdown cells the student wrote: (source, what the report must name).
MARKDOWN_VECTORS: dict[str, tuple[str, str]] = {
    "script": (f"Hello <script>{js('script')}</script>", "<script> element"),
    "mixed-case-script": (f"<ScRiPt>{js('mixed-case-script')}</sCrIpT>", "<script> element"),
    "onerror": (f'<img src="missing.png" onerror="{js("onerror")}">', "onerror= attribute"),
    "onload-body": (f'<body onload="{js("onload-body")}">', "attributes for the page's <body>"),
    "onmouseover-html": (f'<html onmouseover="{js("html")}">', "attributes for the page's <html>"),
    "onmouseover": (f'<span onmouseover="{js("onmouseover")}">x</span>', "onmouseover= attribute"),
    "javascript-link": (f'<a href="javascript:{js("js-link")}">x</a>', "javascript: URL"),
    "vbscript-link": ('<a href="vbscript:msgbox(1)">x</a>', "vbscript: URL"),
    "data-html-link": (
        f'<a href="data:text/html,<script>{js("data-link")}</script>">x</a>',
        "data: URL",
    ),
    "srcdoc": (f'<iframe srcdoc="<script>{js("srcdoc")}</script>"></iframe>', "<iframe>"),
    "iframe": (
        f'<iframe src="data:text/html,<script>{js("iframe")}</script>"></iframe>',
        "<iframe",
    ),
    "object": (f'<object data="data:text/html,<script>{js("object")}</script>"></object>', "<obj"),
    "embed": (f'<embed src="data:text/html,<script>{js("embed")}</script>">', "<embed>"),
    "svg-onload": (f'<svg onload="{js("svg-onload")}"></svg>', "<svg> element"),
    "svg-script": (f"<svg><script>{js('svg-script')}</script></svg>", "<svg> element"),
    "svg-style-breakout": (
        f'<svg><style><img src="missing.png" onerror="{js("svg-style")}"></style></svg>',
        "onerror= attribute",
    ),
    "math-mxss": (
        f'<math><mtext><table><mglyph><style><img src="missing.png" onerror="{js("math")}">',
        "<math> element",
    ),
    "math-href": (f'<math href="javascript:{js("math-href")}">x</math>', "<math> element"),
    "meta-refresh": ('<meta http-equiv="refresh" content="0;url=/xss/meta-refresh">', "<meta>"),
    "base-href": ('<base href="/xss/base/"><img src="pixel.png">', "<base> element"),
    "form": (
        f'<form action="javascript:{js("form")}"><button formaction="javascript:{js("f")}">'
        "go</button></form>",
        "<form> element",
    ),
    "style-breakout": (
        f'<style>p {{ color: red }}</style><img src="missing.png" onerror="{js("style")}">',
        "<style> element",
    ),
    "css-request": ('<p style="background-image: url(/xss/css)">x</p>', "style= attribute"),
    "markdown-link": (f"[x](javascript:{js('md-link')})", "javascript: URL in href="),
    "markdown-autolink": (f"<javascript:{js('md-autolink')}>", "javascript: URL in href="),
    "markdown-reference": (f"[x][1]\n\n[1]: javascript:{js('md-ref')}", "javascript: URL"),
    "entity-obfuscated": (f'<a href="java&#x73;cript:{js("entity")}">x</a>', "javascript: URL"),
    "entity-obfuscated-markdown": (f"[x](java&#x73;cript:{js('md-entity')})", "javascript: URL"),
    "tab-obfuscated": (f'<a href="java\tscript:{js("tab")}">x</a>', "javascript: URL"),
    "files-prefix": (f'<a href="files/javascript:{js("files")}">x</a>', "javascript: URL"),
    "mermaid": (
        f'```mermaid\n<img src="missing.png" onerror="{js("mermaid")}">\n```',
        "onerror= attribute",
    ),
    "bootstrap-data": (
        '<a data-toggle="tooltip" data-html="true" title="<img src=x onerror=1>">x</a>',
        "data-toggle= attribute",
    ),
    "unclosed": (f'<div><img src="missing.png" onerror="{js("unclosed")}"', "onerror= attr"),
    "unbalanced": ("</div></div></div><b>outside the cell", "unbalanced tags"),
}


def released_notebook() -> NotebookNode:
    """A release in miniature: prose, a locked setup cell, an answer, a test."""

    def graded(cell: NotebookNode, grade_id: str, **flags: Any) -> NotebookNode:
        nbgrader = {"grade": False, "locked": False, "solution": False, "task": False}
        nbgrader.update(flags, grade_id=grade_id, schema_version=3, cell_type=cell.cell_type)
        cell.metadata = {"deletable": False, "nbgrader": nbgrader}
        return cell

    return new_notebook(
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        cells=[
            new_markdown_cell(HONEST_MARKDOWN["prose and maths"]),
            graded(new_code_cell("import numpy as np"), "setup", locked=True),
            graded(new_code_cell("def square(x):\n    ..."), "answer", solution=True),
            graded(new_code_cell("assert square(3) == 9"), "test_answer", grade=True, points=1),
        ],
    )


def honest_cells() -> list[NotebookNode]:
    """What an honest student's graded notebook adds: prose, a figure, text,
    tables, an SVG figure."""
    figure = new_code_cell("plt.plot(x, y)", execution_count=5)
    figure.outputs = [
        new_output("stream", name="stdout", text="training: loss 0.25 < 0.3\n"),
        new_output(
            "display_data",
            data={"image/png": png(40, 30), "text/plain": "<Figure size 640x480 with 1 Axes>"},
            metadata={"image/png": {"width": 40, "height": 30}},
        ),
        new_output("execute_result", data={"text/plain": "array([1, 2])"}, execution_count=5),
        new_output("display_data", data={"text/html": PANDAS_TABLE, "text/plain": "   loss"}),
        new_output("display_data", data={"image/svg+xml": HONEST_SVG, "text/plain": "<svg>"}),
    ]
    return [
        *(new_markdown_cell(source) for source in HONEST_MARKDOWN.values()),
        figure,
    ]


def autograded(*cells: NotebookNode) -> NotebookNode:
    nb = released_notebook()
    nb.cells.extend(cells)
    return nb


def render_markdown(cell: NotebookNode) -> str:
    """A markdown cell's HTML as nbgrader's templates make it."""
    context = {"cell": cell, "resources": {}}
    return strip_files_prefix(HTMLExporter().markdown2html(context, cell.source))


def is_inert(html: str) -> bool:
    """The course's clean_html filter returns inert HTML unchanged."""
    return clean_html(html) == html


# Markdown cells.


@pytest.mark.parametrize("name", MARKDOWN_VECTORS)
def test_markdown_vectors_are_neutralised(name: str) -> None:
    source, named = MARKDOWN_VECTORS[name]
    nb = autograded(new_markdown_cell(source))
    assert not is_inert(render_markdown(nb.cells[-1])), "the vector is not one"
    report = make_inert(nb, released_notebook())
    assert len(report) == 1 and report[0].startswith("cell 5: markdown with "), report
    assert named in report[0]
    assert is_inert(render_markdown(nb.cells[-1])), nb.cells[-1].source


@pytest.mark.parametrize("name", HONEST_MARKDOWN)
def test_honest_markdown_is_kept_byte_for_byte(name: str) -> None:
    nb = autograded(new_markdown_cell(HONEST_MARKDOWN[name]))
    assert make_inert(nb, released_notebook()) == []
    assert nb.cells[-1].source == HONEST_MARKDOWN[name]


def test_unsafe_markdown_keeps_what_the_student_meant() -> None:
    nb = autograded(
        new_markdown_cell(f"My answer is {MATHS}, <b>bold</b>.<script>{js('x')}</script>")
    )
    make_inert(nb, released_notebook())
    html = render_markdown(nb.cells[-1])
    assert "<b>bold</b>" in html and MATHS in html and "script" not in html


def test_markdown_that_cannot_render_is_shown_as_its_source() -> None:
    """A missing attachment makes nbconvert raise, which would lose the whole
    feedback page (and the formgrader page) for that notebook."""
    nb = autograded(new_markdown_cell("![plot](attachment:missing.png) my answer"))
    with pytest.raises(InvalidNotebook, match="missing attachment"):
        render_markdown(nb.cells[-1])
    report = make_inert(nb, released_notebook())
    assert report == [
        "cell 5: markdown with markdown that cannot be rendered "
        "(InvalidNotebook: missing attachment: missing.png): shown as its source"
    ]
    assert "my answer" in render_markdown(nb.cells[-1])


def test_markdown_that_would_stall_nbconverts_link_filter_is_removed() -> None:
    """nbconvert's strip_files_prefix, which every template applies to a
    markdown cell, is cubic in the brackets on a line: this cell would take it
    about 17 s, and a notebook of them hours, outside every time limit."""
    unit = "![["
    nb = autograded(new_markdown_cell(unit * 20_000), new_markdown_cell("[a](files/b.png) [c]"))
    assert inert.link_filter_work(unit * 20_000) > inert.MAX_LINK_FILTER_WORK
    report = make_inert(nb, released_notebook())
    assert report == [
        "cell 5: markdown with markdown that cannot be rendered (ValueError: brackets that "
        "nbconvert's link filter would take too long over): removed"
    ]
    assert nb.cells[-2].source == inert._UNRENDERABLE
    assert nb.cells[-1].source == "[a](files/b.png) [c]"  # honest links are kept


def test_attachments_must_be_base64_images() -> None:
    cell = new_markdown_cell("![a](attachment:good.png) ![b](attachment:bad.png)")
    cell.attachments = {
        "good.png": {"image/png": png()},
        "bad.png": {'image/png" onerror="alert(1)': "AAAA"},
        "page.html": {"text/html": base64.b64encode(b"<script>alert(1)</script>").decode()},
        "broken.png": {"image/png": '" onerror="alert(1)'},
    }
    nb = autograded(cell)
    report = make_inert(nb, released_notebook())
    assert set(nb.cells[-1].attachments) == {"good.png"}
    assert [line for line in report if "attachment" in line and "removed" in line] == [
        f"cell 5: attachment {name!r} not a base64 image: removed"
        for name in ("bad.png", "page.html", "broken.png")
    ]
    assert is_inert(render_markdown(nb.cells[-1]))


def test_raw_cells_are_sanitised() -> None:
    raw = new_raw_cell(f"<b>kept</b><script>{js('raw')}</script>")
    raw.metadata = {"raw_mimetype": "text/html"}
    nb = autograded(raw)
    report = make_inert(nb, released_notebook())
    assert nb.cells[-1].source == "<b>kept</b>" and nb.cells[-1].metadata == {}
    assert report == [
        "cell 5: metadata 'raw_mimetype': removed",
        "cell 5: raw cell with a <script> element: sanitised",
    ]


# Outputs.


def graded_outputs(*outputs: NotebookNode, count: Any = 1) -> tuple[NotebookNode, list[str]]:
    """The notebook with a code cell holding these outputs, after make_inert,
    and make_inert's report."""
    cell = new_code_cell("student_code()")
    cell.execution_count, cell.outputs = count, list(outputs)  # no validation: counts are forged
    nb = autograded(cell)
    return nb, make_inert(nb, released_notebook())


def display(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> NotebookNode:
    return new_output("display_data", data=data, metadata=metadata or {})


def test_html_output_is_sanitised() -> None:
    nb, report = graded_outputs(
        display({"text/html": f"<p>kept</p><script>{js('html')}</script>"}),
        display({"text/html": f'<p>also kept</p><img src="x.png" onerror="{js("unclosed")}"'}),
    )
    first, second = (output.data["text/html"] for output in nb.cells[-1].outputs)
    assert first == "<p>kept</p>" and second == "<p>also kept</p>"
    assert report[0] == "cell 5: output 1: text/html with a <script> element: sanitised"
    # unclosed, the tag takes in the page after it: the template's </div> becomes attributes
    assert report[1].startswith("cell 5: output 2: text/html with unbalanced tags, an onerror=")


def test_honest_html_output_survives() -> None:
    table = "<table>\n<tr><th>x</th><td>1.5</td></tr>\n</table>"
    nb, report = graded_outputs(display({"text/html": table}), display({"text/html": PANDAS_TABLE}))
    plain, pandas = (output.data["text/html"] for output in nb.cells[-1].outputs)
    assert plain == table
    assert "<style" not in pandas and "dataframe tbody" not in pandas  # its style sheet goes
    assert '<table border="1" class="dataframe">' in pandas and "<td>0.25</td>" in pandas
    assert report == ["cell 5: output 2: text/html with a <style> element: sanitised"]


def test_javascript_widgets_and_unknown_types_are_dropped() -> None:
    nb, report = graded_outputs(
        display({"application/javascript": js("js"), "text/plain": "<Javascript object>"}),
        display({"application/javascript": js("js-alone")}),
        display({"application/vnd.jupyter.widget-view+json": {"model_id": "</script>"}}),
        display({"text/vnd.mermaid": f"<img src=x onerror={js('mermaid')}>"}),
        display({"application/x-unknown": "<script>", "text/plain": "kept"}),
    )
    data = [output.data for output in nb.cells[-1].outputs]
    assert data == [
        {"text/plain": "<Javascript object>"},
        {"text/plain": "[removed by the grader: application/javascript]"},
        {"text/plain": "[removed by the grader: application/vnd.jupyter.widget-view+json]"},
        {"text/plain": "[removed by the grader: text/vnd.mermaid]"},
        {"text/plain": "kept"},
    ]
    removed = {  # a widget's view goes too, but without a note: honest notebooks have them
        1: "application/javascript",
        2: "application/javascript",
        4: "text/vnd.mermaid",
        5: "application/x-unknown",
    }
    assert report == [f"cell 5: output {n}: {mime} output: removed" for n, mime in removed.items()]


def test_a_progress_bars_widget_view_goes_quietly_and_its_text_stays() -> None:
    bar = {"application/vnd.jupyter.widget-view+json": {"model_id": "ab12"}, "text/plain": "50%"}
    nb, report = graded_outputs(display(bar))
    assert [output.data for output in nb.cells[-1].outputs] == [{"text/plain": "50%"}]
    assert report == []


def test_images_are_kept_only_if_strictly_base64() -> None:
    wrapped = "\n".join(png(40, 30)[i : i + 76] for i in range(0, len(png(40, 30)), 76)) + "\n"
    nb, report = graded_outputs(
        display({"image/png": png(), "text/plain": "fig"}),
        display({"image/jpeg": "/9j/4AAQSkZJRg==", "text/plain": "photo"}),
        display({"image/png": wrapped}),
        display({"image/png": f'" onerror="{js("png")}', "text/plain": "fig"}),
        display({"image/jpeg": "AAAA AAAA"}),
    )
    data = [output.data for output in nb.cells[-1].outputs]
    assert data[:3] == [
        {"image/png": png(), "text/plain": "fig"},
        {"image/jpeg": "/9j/4AAQSkZJRg==", "text/plain": "photo"},
        {"image/png": wrapped},
    ]
    assert data[3:] == [
        {"text/plain": "fig"},
        {"text/plain": "[removed by the grader: image/jpeg]"},
    ]
    assert report == [
        "cell 5: output 4: image/png output: removed",
        "cell 5: output 5: image/jpeg output: removed",
    ]


def test_svg_is_shown_as_an_img() -> None:
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js("svg")}"><script>x</script></svg>'
    nb, report = graded_outputs(
        display({"image/svg+xml": svg, "text/plain": "<svg>"}),
        display({"image/svg+xml": svg, "image/png": png()}),
    )
    alone, beside_png = (output.data for output in nb.cells[-1].outputs)
    encoded = alone["text/html"].removeprefix('<img src="data:image/svg+xml;base64,')
    assert base64.b64decode(encoded.removesuffix('">')).decode() == svg
    assert set(alone) == {"text/html", "text/plain"} and beside_png == {"image/png": png()}
    assert is_inert(alone["text/html"])
    assert report == [
        "cell 5: output 1: image/svg+xml output: shown as an <img>, where it cannot run script",
        "cell 5: output 2: image/svg+xml output: removed (the output has another image)",
    ]


def test_markdown_and_latex_outputs() -> None:
    latex = r"$$\href{javascript:alert(1)}{x}$$ </div><img src=x onerror=alert(1)>"
    nb, report = graded_outputs(
        display({"text/markdown": f"**kept** <script>{js('md')}</script>"}),
        display({"text/markdown": f"honest {MATHS}"}),
        display({"text/latex": latex}),
    )
    data = [output.data for output in nb.cells[-1].outputs]
    assert "script" not in data[0]["text/markdown"] and "kept" in data[0]["text/markdown"]
    # LaTeX is text: every template escapes it, and MathJax typesets it with its Safe extension
    assert data[1:] == [{"text/markdown": f"honest {MATHS}"}, {"text/latex": latex}]
    assert report == ["cell 5: output 1: text/markdown with a <script> element: sanitised"]


def test_output_metadata_keeps_only_numeric_sizes() -> None:
    nb, report = graded_outputs(
        display(
            {"image/png": png(), "text/html": "<b>x</b>"},
            {
                "image/png": {"width": f"1 onload={js('width')}", "height": 30, "alt": '">'},
                "width": 50.5,
                "text/html": {"isolated": True},
                "filenames": {"image/png": "javascript:alert(1)"},
            },
        )
    )
    assert nb.cells[-1].outputs[0].metadata == {"image/png": {"height": 30}, "width": 50.5}
    assert report == [
        "cell 5: output 1: metadata image/png.width, image/png.alt, text/html, filenames: removed"
    ]


def test_forged_execution_counts_are_cleared() -> None:
    forged = f'1</div><img src=x onerror="{js("count")}">'
    result = new_output("execute_result", data={"text/plain": "3"}, execution_count=7)
    result.execution_count = forged
    nb, report = graded_outputs(result, count=forged)
    cell = nb.cells[-1]
    assert cell.execution_count is None and cell.outputs[0].execution_count is None
    assert all("execution count '1</div>" in line for line in report) and len(report) == 2
    honest, honest_report = graded_outputs(
        new_output("execute_result", data={"text/plain": "3"}, execution_count=7), count=7
    )
    assert honest.cells[-1].execution_count == 7 and honest_report == []


def test_streams_and_errors_stay_text() -> None:
    nb, report = graded_outputs(
        new_output("stream", name="stdout", text=f"<script>{js('stream')}</script>"),
        new_output("stream", name='stdout" onload="x', text="x"),
        from_dict(
            {"output_type": "error", "ename": "E", "evalue": "<b>", "traceback": ["<img>", 3]}
        ),
        new_output("display_data", data={}, metadata={}),
    )
    outputs = nb.cells[-1].outputs
    assert outputs[0].text == f"<script>{js('stream')}</script>"  # templates escape streams
    assert outputs[1].name == "stdout"
    assert outputs[2].traceback == ["<img>", "3"]
    assert report == ["cell 5: output 2: stream name not stdout or stderr: stdout"]


def test_unknown_cells_outputs_and_fields_go() -> None:
    nb, report = graded_outputs(
        NotebookNode({"output_type": "shell", "html": "<script>"}),
        NotebookNode(
            {
                "output_type": "display_data",
                "data": {"text/plain": "x"},
                "metadata": {},
                "svg_filename": "javascript:alert(1)",
            }
        ),
    )
    nb.cells.append(NotebookNode({"cell_type": "widget", "source": "<script>", "metadata": {}}))
    nb.cells[-2].id = 'x"><script>'
    nb.cells[-2].html = "<script>"
    again = make_inert(nb, released_notebook())
    assert [cell.cell_type for cell in nb.cells[4:]] == ["code"]
    assert [output.output_type for output in nb.cells[-1].outputs] == ["display_data"]
    assert "svg_filename" not in nb.cells[-1].outputs[0]
    assert report == [
        "cell 5: output 1: output of unknown type 'shell': removed",
        "cell 5: output 2: field(s) 'svg_filename': removed",
    ]
    assert again == [
        "cell 5: field(s) 'html': removed",
        "cell 5: cell id not of nbformat's form: replaced",
        "cell 6: cell of unknown type 'widget': removed",
    ]


# Metadata.


def test_cell_metadata_is_the_release_or_nothing() -> None:
    forged_id = f'x"><img src=x onerror="{js("grade-id")}">'
    answer = new_code_cell("def square(x):\n    return x * x")
    answer.metadata = copy.deepcopy(released_notebook().cells[2].metadata)
    answer.metadata["nbgrader"].update(checksum="0" * 32, grade=True, points=100)
    answer.metadata["tags"] = ['"><script>']
    duplicate = new_code_cell("pass")
    duplicate.metadata = copy.deepcopy(answer.metadata)
    forged = new_markdown_cell("my notes")
    forged.metadata = {
        "nbgrader": {"grade": True, "grade_id": forged_id, "points": 1},
        "alt": '"><script>',
        "collapsed": False,
    }
    nb = released_notebook()
    nb.cells[2:3] = [answer, duplicate, forged]
    report = make_inert(nb, released_notebook())
    release = released_notebook().cells[2].metadata
    assert nb.cells[2].metadata == {
        **release,
        "nbgrader": {**release.nbgrader, "checksum": "0" * 32},
    }
    assert nb.cells[3].metadata == {} and nb.cells[4].metadata == {}
    assert report == [
        "cell 3: nbgrader metadata unlike the release's: restored",
        "cell 4: nbgrader metadata with an unknown or repeated grade id: removed",
        "cell 5: nbgrader metadata with an unknown or repeated grade id: removed",
        "cell 5: metadata 'alt': removed",
    ]


def test_notebook_metadata_is_the_release() -> None:
    nb = autograded()
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": '"><script>'}
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {"state": f"</script><script>{js('w')}"}
    }
    nb.metadata["title"] = "</title><script>"
    assert make_inert(nb, released_notebook()) == [
        "notebook metadata 'title': removed",
        "notebook metadata 'widgets': removed",
    ]
    assert nb.metadata == released_notebook().metadata


# Honest notebooks: the course's own.


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_course_notebooks_pass_unchanged(name: str) -> None:
    """The solutions (with their stored outputs: figures, prints) and the
    released notebooks: nothing to report, and nothing changed."""
    released = nbformat.read(Layout(ROOT).release / f"{name}.ipynb", 4)
    for folder in ("solutions", "notebooks"):
        nb = nbformat.read(ROOT / folder / "ch01" / f"{name}.ipynb", 4)
        before = copy.deepcopy(nb)
        assert make_inert(nb, released) == [], folder
        assert [(c.source, c.get("outputs")) for c in nb.cells] == [
            (c.source, c.get("outputs")) for c in before.cells
        ], folder


# Rendering: the exporters nbgrader builds, with the course's configuration.


def course_config(*, inert_filters: bool = True) -> Config:
    """nbgrader_config.py as nbgrader loads it; without its sanitising, plain
    nbgrader's."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    if not inert_filters:
        for key in ("sanitize_html", "filters"):
            del config.HTMLExporter[key]
    return config


def feedback_exporter(config: Config) -> HTMLExporter:
    """The exporter GenerateFeedback makes (its template settings and the
    course's preprocessors), less GetGrades, which needs a gradebook: see
    :func:`as_graded`."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    converter = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
    exporter = HTMLExporter(parent=converter, config=converter.config)
    for preprocessor in converter.preprocessors:
        if preprocessor.__name__ != "GetGrades":
            exporter.register_preprocessor(preprocessor)
    return exporter


def formgrade_exporter(config: Config) -> HTMLExporter:
    """The exporter FormgradeExtension makes for formgrader's pages."""
    from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension

    config = copy.deepcopy(config)
    config.merge(FormgradeExtension(config=config).build_extra_config())
    return HTMLExporter(config=config)


EXPORTERS: dict[str, tuple[Callable[[Config], HTMLExporter], dict[str, Any]]] = {
    "feedback": (
        feedback_exporter,
        {"nbgrader": {"notebook": "ch01", "score": 1, "max_score": 2, "late_penalty": 0}},
    ),
    "formgrade": (  # what formgrader's SubmissionHandler passes
        formgrade_exporter,
        {
            "assignment_id": "ch01",
            "notebook_id": "02_chain_rule",
            "submission_id": "abc",
            "index": 0,
            "total": 1,
            "base_url": "",
            "student": "s",
            "last_name": None,
            "first_name": None,
            "notebook_path": "autograded/s/ch01/02_chain_rule.ipynb",
        },
    ),
}


def as_graded(nb: NotebookNode) -> NotebookNode:
    """What GetGrades adds before the feedback template runs: scores."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader")
        if isinstance(nbgrader, dict):
            nbgrader.update(score=nbgrader.get("points", 0), points=nbgrader.get("points", 0))
            nbgrader["comment"] = ""
    return nb


@functools.cache
def exporter(template: str, course: bool) -> HTMLExporter:
    """One exporter per template and configuration, reused as formgrader does."""
    return EXPORTERS[template][0](course_config(inert_filters=course))


def render(template: str, nb: NotebookNode, folder: Path, *, course: bool = True) -> str:
    """The page the template makes of ``nb``, configured by the course's
    nbgrader_config.py or (``course=False``) by plain nbgrader's."""
    path = folder / "notebook.ipynb"
    nbformat.write(as_graded(nb), path)  # formgrader renders from the file, so do we
    resources = copy.deepcopy(EXPORTERS[template][1])
    return exporter(template, course).from_filename(str(path), resources=resources)[0]


def test_a_forged_field_no_longer_costs_the_whole_page(tmp_path: Path) -> None:
    """nbconvert validates a notebook before rendering it: a string execution
    count (which the classic template would write into the page unescaped)
    makes it refuse the notebook, so the student's feedback and formgrader's
    page for it fail.  After make_inert the notebook is valid and renders."""
    cell = new_code_cell("x = 1")
    result = new_output("execute_result", data={"text/plain": "1"}, execution_count=1)
    cell.outputs = [result, new_output("error", ename="E", evalue="v", traceback=[])]
    cell.execution_count = result.execution_count = f'1</div><img src=x onerror="{js("n")}">'
    cell.outputs[1].traceback = [3]
    cell.extra = "field"
    nb = autograded(cell)
    nb.extra = "field"
    for template in EXPORTERS:
        with pytest.raises(nbformat.ValidationError):
            render(template, nb, tmp_path)
    assert len(make_inert(nb, released_notebook())) == 4
    nbformat.validate(nb)
    for template in EXPORTERS:
        assert "onerror" not in render(template, nb, tmp_path)


@pytest.mark.parametrize("template", EXPORTERS)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_honest_pages_are_unchanged_by_the_course_sanitising(
    template: str, name: str, tmp_path: Path
) -> None:
    """Figures, test messages, maths: honest pages are byte for byte what
    plain nbgrader makes."""
    nb = nbformat.read(Layout(ROOT).solutions / f"{name}.ipynb", 4)
    course = render(template, nb, tmp_path)
    assert course == render(template, nb, tmp_path, course=False)
    assert "data:image/png;base64," in course


def test_the_course_filters_protect_a_notebook_make_inert_never_saw(tmp_path: Path) -> None:
    nb = autograded(new_markdown_cell(f"Hello <script>{js('script')}</script> world"))
    for template in EXPORTERS:
        html = render(template, nb, tmp_path)
        assert "Hello" in html and js("script") not in html, template
        assert js("script") in render(template, nb, tmp_path, course=False)


# Chromium.


def attack_notebook() -> NotebookNode:
    """Every vector that rendering survives, beside honest content."""
    cells = [*honest_cells()]
    cells += [
        new_markdown_cell(source)
        for name, (source, _) in MARKDOWN_VECTORS.items()
        if name != "unbalanced"  # it only moves the rest of the page, and would move the test's
    ]
    tagged = new_code_cell("x = 1", execution_count=1)
    tagged.metadata = {"tags": [f'"><img src=x onerror="{js("tags")}">'], "alt": '"><b>'}
    tagged.outputs = [
        new_output("stream", name="stdout", text=f'<img src=x onerror="{js("stream")}">'),
        new_output("error", ename="E", evalue="<b>", traceback=[f"<script>{js('tb')}</script>"]),
        display({"text/html": f"<script>{js('html')}</script>"}),
        display({"text/html": f'<img src="missing.png" onerror="{js("html-unclosed")}"'}),
        display({"application/javascript": js("javascript")}),
        display({"image/png": f'" onerror="{js("png-data")}'}),
        display(
            {"image/png": png(), "text/plain": "x"},
            {"image/png": {"width": f"4 onload={js('width')}"}},
        ),
        display(
            {"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js("svg")}"/>'}
        ),
        display({"text/markdown": f"<script>{js('markdown')}</script>"}),
        display({"text/latex": f'</div><img src=x onerror="{js("latex")}">'}),
        display(
            {
                "application/vnd.jupyter.widget-view+json": {
                    "model_id": "m",
                    "version_major": 2,
                    "x": f"</script><script>{js('view')}</script>",
                },
                "text/plain": "a widget",
            }
        ),
    ]
    forged = new_code_cell("pass")
    forged.metadata = {
        "nbgrader": {
            "grade": True,
            "solution": False,
            "locked": False,
            "points": 1,
            "grade_id": f'x"><img src=x onerror="{js("grade-id")}">',
        }
    }
    raw = new_raw_cell(f"<script>{js('raw')}</script>")
    raw.metadata = {"raw_mimetype": "text/html"}
    nb = autograded(*cells, tagged, forged, raw)
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "version_major": 2,
            "state": {"m": {"x": f"</script><script>{js('state')}</script>"}},
        }
    }
    return nb


# What a page holds that can run or load something: event handlers, addresses
# that are not the web's or an image's data, frames and scripts.
ACTIVE_FEATURES = """() => {
    const found = [];
    const urls = ["href", "src", "action", "formaction", "xlink:href", "data", "poster"];
    for (const el of document.querySelectorAll("*")) {
        for (const attribute of el.attributes) {
            const name = attribute.name.toLowerCase();
            if (name.startsWith("on") || name === "srcdoc") {
                found.push(`${el.tagName}[${name}=${attribute.value}]`);
            } else if (urls.includes(name)) {
                let scheme;
                try { scheme = new URL(attribute.value, document.baseURI).protocol; }
                catch (error) { scheme = "unparsable:"; }
                const image = el.tagName === "IMG" && scheme === "data:";
                if (!["http:", "https:", "mailto:"].includes(scheme) && !image) {
                    found.push(`${el.tagName}[${name}=${scheme}]`);
                }
            }
        }
        const active = ["SCRIPT", "IFRAME", "FRAME", "OBJECT", "EMBED", "BASE", "META", "FORM",
                        "LINK", "STYLE", "svg", "math"];
        if (active.includes(el.tagName)) {
            found.push(`${el.tagName}:${el.getAttribute("src") || el.getAttribute("href") || ""}`
                       + `:${el.textContent.slice(0, 60)}`);
        }
    }
    return found;
}"""
HONEST_IN_PAGE = """() => ({
    figures: [...document.querySelectorAll("img[src^='data:image/png']")]
        .map(i => i.complete && i.naturalWidth),
    svgs: [...document.querySelectorAll("img[src^='data:image/svg+xml']")]
        .map(i => i.complete && i.naturalWidth),
    text: document.body.innerText,
})"""


class Sentinel(SimpleHTTPRequestHandler):
    """Serves the pages, and answers requests a vector makes to /xss/ with
    nothing (a meta refresh to one leaves the page where it is)."""

    def do_GET(self) -> None:
        if self.path.startswith("/xss/"):
            self.send_response(204)
            self.end_headers()
        else:
            super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        """Requests are not news."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served on 127.0.0.1 as formgrader serves its pages: nbgrader's
    static files (jQuery, Bootstrap, formgrade.js) under /formgrader/static/."""
    chromium_path()
    import nbgrader.server_extensions.formgrader as formgrader

    (tmp_path / "formgrader").mkdir()
    os.symlink(Path(formgrader.__file__).parent / "static", tmp_path / "formgrader" / "static")
    handler = functools.partial(Sentinel, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()
    thread.join()


class Evidence:
    """What a page's vectors did: console markers and requests to /xss/, from
    the page and its frames."""

    def __init__(self, page: Any) -> None:
        self.seen: set[str] = set()
        page.on("console", self.console)
        page.on("request", self.request)

    def console(self, message: Any) -> None:
        if message.text.startswith("XSS:"):
            self.seen.add(message.text.removeprefix("XSS:"))

    def request(self, request: Any) -> None:
        if "/xss/" in request.url:
            self.seen.add("request " + urlsplit(request.url).path)


@pytest.mark.parametrize("template", EXPORTERS)
def test_no_vector_runs_in_chromium_after_make_inert(
    template: str, served: tuple[Path, str], capsys: pytest.CaptureFixture
) -> None:
    folder, url = served
    attack = attack_notebook()
    inert = copy.deepcopy(attack)
    make_inert(inert, released_notebook())
    honest = autograded(*honest_cells())
    make_inert(honest, released_notebook())
    pages = {}
    for config_name, course in (("course", True), ("plain nbgrader", False)):
        for state, nb in (("baseline", honest), ("before", attack), ("after", inert)):
            name = f"{config_name}-{state}.html".replace(" ", "-")
            (folder / name).write_text(render(template, nb, folder, course=course))
            pages[config_name, state] = name

    ran: dict[tuple[str, str], list[str]] = {}
    features: dict[tuple[str, str], list[str]] = {}
    honest_parts: dict[tuple[str, str], dict] = {}
    with browser_context() as (context, _watch):
        opened = {}
        for key, name in pages.items():  # all loading at once
            page = context.new_page()
            opened[key] = page, Evidence(page)
            page.goto(url + name)
        for key, (page, evidence) in opened.items():
            page.wait_for_load_state("networkidle")
            if page.url == url + pages[key]:
                evidence.seen.update(page.evaluate("() => window.__xss || []"))
            ran[key] = sorted(evidence.seen)
            features[key] = page.evaluate(ACTIVE_FEATURES)
            honest_parts[key] = page.evaluate(HONEST_IN_PAGE)

    with capsys.disabled():
        for (config_name, state), names in ran.items():
            print(f"\n  {template}, {config_name}, {state}: {len(names)} ran {' '.join(names)}")
    for config_name in ("course", "plain nbgrader"):
        before, after = ran[config_name, "before"], ran[config_name, "after"]
        assert before, (
            f"{config_name}: no vector ran even before make_inert: the test tests nothing"
        )
        assert after == [], f"{config_name}: ran after make_inert: {after}"
        assert ran[config_name, "baseline"] == []
        extra = set(features[config_name, "after"]) - set(features[config_name, "baseline"])
        assert not extra, f"{config_name}: the page can still run or load: {sorted(extra)}"
        shown = honest_parts[config_name, "after"]
        assert shown["figures"] and all(shown["figures"]), shown["figures"]
        assert shown["svgs"] and all(shown["svgs"]), shown["svgs"]
        assert MATHS in shown["text"] and "The chain rule" in shown["text"]
        assert "training: loss 0.25 < 0.3" in shown["text"]
    # plain nbgrader's pages run student script; the course's sanitising stops some, not all
    assert len(ran["plain nbgrader", "before"]) > len(ran["course", "before"])
