"""Student-made HTML in an autograded notebook, made inert before anything renders it.

Formgrader renders an autograded notebook in the instructor's Jupyter origin,
so a script in it acts as the instructor (it can read the gradebook API and run
code through the kernels API); feedback pages go back to students.  What such
a notebook holds was written by the student: the markdown cells, the cell and
notebook metadata, and every output, which the student's code produced while
grading from a kernel it controls completely (any mime bundle, any metadata, a
forged execution count).  nbgrader's own templates, ``formgrade`` and
``feedback``, render markdown cells without nbconvert's ``sanitize_html``, and
the classic template nbconvert gives them writes execution counts and image
widths into the page unescaped.

So :func:`make_inert` works on the data, not on a template: it leaves only what
every template renders inertly, whichever template renders it and whether or
not it sanitises, and says what it changed.  Honest content passes through
byte for byte: HTML is kept as it is when sanitising it would change nothing,
and replaced by the sanitised copy otherwise.  "Would change nothing" is
decided by parsing both with an HTML5 parser (lexbor, through selectolax) as a
browser would, in a page that goes on after them, so unbalanced tags that would
swallow or escape the page around them count as a change.  The sanitiser is
ammonia (through nh3); what it returns is checked once more against the same
safelist before it is used, so a bug in either library alone does not let
markup through.

:func:`clean_html` and :func:`markdown2html` apply the same policy when a page
is rendered; ``nbgrader_config.py`` installs them as nbconvert's filters, so
formgrader is protected even for a notebook that never went through
:func:`make_inert`.
"""

from __future__ import annotations

import base64
import copy
import math
import re
import uuid
from collections.abc import Mapping
from functools import cache
from html import escape
from typing import Any

import nh3
from jinja2 import pass_context
from jinja2.runtime import Context
from nbconvert import HTMLExporter
from nbconvert.filters.strings import strip_files_prefix
from nbformat import NotebookNode, from_dict
from selectolax.lexbor import LexborHTMLParser

# Elements that HTML may keep: text structure, tables, lists, links and images.
TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "cite", "code", "col"}
    | {"colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption"}
    | {"figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li"}
    | {"mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "small", "span"}
    | {"strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead"}
    | {"tr", "u", "ul", "var", "wbr"}
)
# Elements removed with everything inside them, where keeping their text would
# show code or markup (a script's source, a style sheet, a frame's document).
REMOVED_WITH_CONTENT = frozenset(
    {"applet", "embed", "frame", "frameset", "iframe", "math", "noembed", "noframes"}
    | {"noscript", "object", "plaintext", "script", "select", "style", "svg", "template"}
    | {"textarea", "title", "xmp"}
)
# Attributes, by element ("*": on any).  No event handlers, no data-*, no name
# or target; id only on headings, whose anchors markdown makes from their text.
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"align", "class", "dir", "lang", "style", "title"},
    "a": {"href"},
    "col": {"span"},
    "colgroup": {"span"},
    "details": {"open"},
    "img": {"alt", "height", "src", "width"},
    "li": {"value"},
    "ol": {"start", "type"},
    "table": {"border"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
}
# What a style attribute may set (markdown tables align their columns with it).
STYLE_PROPERTIES = frozenset(
    {"background-color", "color", "font-style", "font-weight", "text-align"}
    | {"text-decoration", "vertical-align", "white-space"}
)
_STYLE_VALUE = re.compile(r"(?:[-\w\s#.,%]|(?:rgba?|hsla?)\([\d\s.,%]*\))+")
# Schemes a link may use; an image may also be inline data in one of these types,
# which a browser shows without running anything (an SVG <img> cannot run script).
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
IMAGE_DATA = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,(.*)", re.S | re.I)
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# Classes that make a third-party renderer parse the element's text as its own
# markup (mermaid draws diagrams from it): the text stays, the class goes.
RENDERER_CLASSES = frozenset({"mermaid"})

# Output data that is kept, and how: the rest is dropped.
KEPT_AS_TEXT = frozenset({"text/plain", "text/latex"})  # templates escape both
BASE64_IMAGES = frozenset({"image/png", "image/jpeg"})
ATTACHMENT_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/svg+xml"})
_BASE64 = re.compile(r"[A-Za-z0-9+/\n]*={0,2}\n*")
# Cell metadata that JupyterLab and the release write and no template renders.
BOOKKEEPING_METADATA = frozenset(
    {"collapsed", "deletable", "editable", "execution", "jupyter", "scrolled", "tags", "trusted"}
)
CELL_FIELDS = {
    "code": frozenset({"cell_type", "execution_count", "id", "metadata", "outputs", "source"}),
    "markdown": frozenset({"attachments", "cell_type", "id", "metadata", "source"}),
    "raw": frozenset({"attachments", "cell_type", "id", "metadata", "source"}),
}
_CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CHECKSUM = re.compile(r"[0-9a-f]{32}")
_WRAPPER = "<!DOCTYPE html><html><head></head><body><div>{}</div><p>end</p></body></html>"
# A widget's view needs the page to load the widget manager; a static page shows
# its text/plain instead. Honest notebooks have them (a progress bar).
QUIETLY_REMOVED = {"application/vnd.jupyter.widget-view+json"}
_UNRENDERABLE = "*(This markdown was removed by the grader: it could not be made inert.)*"
# The most steps (as link_filter_work counts them) nbconvert's strip_files_prefix
# may take on one cell's HTML: 0.01 s or less, as it makes 2.8e8 of them a second
# or more. Honest markdown, whose links are HTML by then, needs a few thousand.
MAX_LINK_FILTER_WORK = 3_000_000


def make_inert(nb: NotebookNode, released: NotebookNode) -> list[str]:
    """Neutralise, in place, everything student-made in the autograded ``nb``.

    ``released`` is the notebook as released to students: its metadata
    replaces ``nb``'s (the kernel reports ``language_info``, and the student
    controls the kernel), and each cell whose nbgrader grade id it knows gets
    the released cell's metadata back; other cells lose theirs.  Markdown and
    raw cells keep their source if it renders inertly, outputs keep what the
    safelist allows (see :func:`_inert_output`).  Returns one line per thing
    neutralised, such as ``"cell 7: markdown with a <script> element:
    sanitised"``, cells counted from 1; an honest notebook gives none.
    """
    changes: list[str] = []
    for key in sorted(set(nb) - {"cells", "metadata", "nbformat", "nbformat_minor"}):
        changes.append(f"notebook field {key!r}: removed")
        del nb[key]
    for key in sorted(set(nb.metadata) - set(released.metadata) - {"kernelspec", "language_info"}):
        changes.append(f"notebook metadata {key!r}: removed")
    nb.metadata = copy.deepcopy(released.metadata)
    release = _released_metadata(released)
    seen: set[str] = set()
    cells = []
    for number, cell in enumerate(nb.cells, start=1):
        notes = _inert_cell(cell, release, seen)
        changes += [f"cell {number}: {note}" for note in notes]
        if cell.get("cell_type") in CELL_FIELDS:
            minor = nb.get("nbformat_minor")
            if isinstance(minor, int) and minor >= 5 and "id" not in cell:
                cell["id"] = uuid.uuid4().hex[:12]  # nbformat 4.5 wants one on every cell
            cells.append(cell)
    nb.cells = cells
    return changes


def clean_html(html: str | bytes) -> str:
    """nbconvert's ``clean_html`` filter with this module's safelist.

    nbconvert's own keeps too little for honest output (no ``<p>``, ``<th>``
    or ``<img>``, so a pandas table would show as escaped tags).  Inert HTML is
    returned unchanged."""
    text = html.decode() if isinstance(html, bytes) else str(html)
    return _inert_html(text)[0]


@pass_context
def markdown2html(context: Context, source: str) -> str:
    """nbconvert's ``markdown2html`` filter, then made inert.

    nbgrader's templates render markdown cells with this filter and nothing
    after it, ignoring ``sanitize_html``; so formgrader stays safe even with a
    notebook :func:`make_inert` never saw.  Inert HTML is returned unchanged."""
    return _inert_html(_exporter().markdown2html(context, source))[0]


@cache
def _exporter() -> HTMLExporter:
    """An exporter with nbconvert's defaults, for its markdown renderer: the
    one nbgrader's templates call."""
    return HTMLExporter()


def _render_markdown(source: str, attachments: Mapping[str, Any]) -> str:
    """The HTML a template makes of a markdown cell (nbgrader's and nbconvert's
    pass it through ``strip_files_prefix``, which can turn a harmless relative
    link into another, so the check must see it after that).  Raises
    ValueError for HTML on which that filter would run for long (see
    :func:`link_filter_work`): every template that renders the cell would."""
    context = {"cell": {"attachments": attachments}, "resources": {}}
    html = _exporter().markdown2html(context, source)
    if link_filter_work(html) > MAX_LINK_FILTER_WORK:
        raise ValueError("brackets that nbconvert's link filter would take too long over")
    return strip_files_prefix(html)


def link_filter_work(html: str) -> int:
    """An upper bound of the steps ``strip_files_prefix`` takes on ``html``.
    Its pattern for markdown links, ``\\[(.*?)\\]\\(/?files/(.*?)\\)``, scans
    from each ``[`` (or ``![``) to the end of the line, and from each
    ``](files/`` it passes to the end of the line again: quadratic in the
    brackets on a line, cubic with those links (a line of 7,200 characters,
    ``[](files/`` repeated, takes it 7 s; a 5 MB notebook, hours)."""
    work = 0
    for line in html.split("\n"):  # the pattern's "." stops at a newline
        if (opened := line.count("[")) > 0:
            links = line.count("](files/") + line.count("](/files/")
            work += 2 * opened * len(line) * (1 + links)
    return work


# HTML: sanitising, and deciding whether sanitising changed anything.


def _inert_html(html: str) -> tuple[str, list[str]]:
    """``html`` itself if it is inert, else a sanitised copy, and what made it
    unsafe (empty when it was inert)."""
    clean = _sanitise(html)
    verified = not _violations(clean)
    if verified and _parsed(html) == _parsed(clean):
        return html, []
    found = _violations(html) or ["markup that sanitising rewrites"]
    if not verified:  # the sanitiser let through what the check does not: show it as text
        clean = f"<pre>{escape(html)}</pre>"
    return clean, found


def _sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes=ATTRIBUTES,
        attribute_filter=_filter_attribute,
        strip_comments=True,
        link_rel=None,
        url_schemes=set(LINK_SCHEMES | {"data"}),  # data: only for images: _filter_attribute
        filter_style_properties=set(STYLE_PROPERTIES),
    )


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    if name in ("href", "src"):
        return value if _url_allowed(tag, name, value) else None
    if name == "class":
        kept = [token for token in value.split() if token not in RENDERER_CLASSES]
        return value if len(kept) == len(value.split()) else " ".join(kept) or None
    return value


def _url_allowed(tag: str, name: str, value: str) -> bool:
    """Whether a link or image address is one of the safelist's, as written
    and after ``strip_files_prefix`` removes a leading ``files/``."""
    return _url_scheme_allowed(tag, name, value) and _url_scheme_allowed(
        tag, name, re.sub(r"^/?files/", "", value)
    )


def _url_scheme_allowed(tag: str, name: str, value: str) -> bool:
    # As a browser reads an address: spaces and controls around it and tabs
    # or newlines inside it do not count (so "java\tscript:" is javascript:).
    url = re.sub(r"[\t\n\r]", "", re.sub(r"^[\x00-\x20]+|[\x00-\x20]+$", "", value))
    scheme = _SCHEME.match(url)
    if scheme is None:
        return True  # relative: this page's own folder, or a fragment
    if tag == "img" and name == "src":
        data = IMAGE_DATA.fullmatch(url)
        return scheme[1].lower() in IMAGE_SCHEMES or bool(data and _is_base64(data[1]))
    return name == "href" and scheme[1].lower() in LINK_SCHEMES


def _page(html: str) -> LexborHTMLParser:
    """``html`` as a browser's HTML5 parser builds it inside a page, which goes
    on after it; a ``<body>`` or ``<html>`` tag in it adds its attributes to
    the page's own element, so the whole page is what counts."""
    return LexborHTMLParser(_WRAPPER.format(html))


def _parsed(html: str) -> str:
    """The page ``html`` makes, serialised, with style attributes written as
    the sanitiser writes them ("color: red;" as "color:red")."""
    page = _page(html)
    for node in page.css("[style]"):
        declarations = (d.partition(":") for d in (node.attrs["style"] or "").split(";"))
        node.attrs["style"] = ";".join(
            f"{name.strip()}:{value.strip()}" for name, _, value in declarations if name.strip()
        )
    return page.html or ""


def _violations(html: str) -> list[str]:
    """What in ``html`` the safelist does not allow, in words, each once."""
    page = _page(html)
    found: dict[str, None] = {}
    for element in (page.root, page.body):
        if element.attributes:
            found[f"attributes for the page's <{element.tag}>"] = None
    wrapper, *rest = page.body.iter(include_text=True)
    if wrapper.tag != "div" or [node.tag for node in rest] != ["p"] or rest[0].text() != "end":
        found["unbalanced tags"] = None
    for node in wrapper.traverse(include_text=False):
        if node is wrapper:
            continue
        if node.tag == "-comment":
            found["an HTML comment"] = None
            continue
        tag = node.tag or ""
        if tag not in TAGS:
            found[f"a <{tag}> element"] = None
            continue
        allowed = ATTRIBUTES["*"] | ATTRIBUTES.get(tag, set())
        for name, value in node.attributes.items():
            text = value or ""
            if name not in allowed:
                found[f"{'an' if name[:1] in 'aeiou' else 'a'} {name}= attribute"] = None
            elif name in ("href", "src") and not _url_allowed(tag, name, text):
                scheme = _SCHEME.match(re.sub(r"[\s\x00-\x1f]", "", text).removeprefix("files/"))
                found[f"a {scheme[1].lower() if scheme else 'disallowed'}: URL in {name}="] = None
            elif name == "class" and RENDERER_CLASSES & set(text.split()):
                found["a class a diagram renderer acts on"] = None
            elif name == "style" and not _style_allowed(text):
                found["a style= attribute beyond text styling"] = None
    return list(found)


def _style_allowed(style: str) -> bool:
    for declaration in filter(str.strip, style.split(";")):
        prop, colon, value = declaration.partition(":")
        if not colon or prop.strip().lower() not in STYLE_PROPERTIES:
            return False
        if not _STYLE_VALUE.fullmatch(value.strip()):
            return False
    return True


def _is_base64(data: object) -> bool:
    """Strictly base64 (newlines allowed, as older notebooks wrap it): nothing
    that could close the attribute a template writes it into."""
    if not isinstance(data, str) or not _BASE64.fullmatch(data):
        return False
    return len(data.replace("\n", "")) % 4 == 0


def _inert_markdown(source: str, attachments: Mapping[str, Any]) -> tuple[str, list[str], str]:
    """``source`` if it renders inertly, else a replacement that does; what
    made it unsafe; and how it was replaced.

    The replacement is, in order of preference, the sanitised HTML (which
    looks like what the student meant), the source shown as a code block
    (what the student wrote, as text), or a note; each is used only if it too
    renders inertly."""
    candidates: list[tuple[str, str]] = []
    try:
        clean, found = _inert_html(_render_markdown(source, attachments))
    except Exception as error:  # a template would fail the same way, losing the whole page
        found = [f"markdown that cannot be rendered ({type(error).__name__}: {str(error)[:80]})"]
    else:
        if not found:
            return source, [], ""
        candidates.append((clean, "sanitised"))
    fence = "`" * max(3, 1 + max(map(len, re.findall("`+", source)), default=0))
    candidates.append((f"{fence}\n{source}\n{fence}", "shown as its source"))
    for candidate, how in candidates:
        try:
            inert = not _inert_html(_render_markdown(candidate, {}))[1]
        except Exception:  # not renderable: try the next form
            inert = False
        if inert:
            return candidate, found, how
    return _UNRENDERABLE, found, "removed"


# Cells and outputs.


def _released_metadata(released: NotebookNode) -> dict[str, dict]:
    """Each released cell's metadata, by nbgrader grade id (the first of each)."""
    known: dict[str, dict] = {}
    for cell in released.cells:
        grade_id = _grade_id(cell)
        if grade_id is not None:
            known.setdefault(grade_id, cell.metadata)
    return known


def _grade_id(cell: Mapping[str, Any]) -> str | None:
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, Mapping) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, Mapping) else None
    return grade_id if isinstance(grade_id, str) else None


def _inert_cell(cell: NotebookNode, release: dict[str, dict], seen: set[str]) -> list[str]:
    """Neutralise one cell in place: fields, metadata, source, outputs.

    What nbformat's schema does not allow goes too: nbconvert validates the
    notebook before rendering, so one forged field would lose the whole page."""
    kind = cell.get("cell_type")
    if kind not in CELL_FIELDS:
        return [f"cell of unknown type {str(kind)[:40]!r}: removed"]
    notes = []
    extra = sorted(set(cell) - CELL_FIELDS[kind] - {"attachments"})
    if extra:
        notes.append(f"field(s) {', '.join(map(repr, extra))}: removed")
        for key in extra:
            del cell[key]
    notes += _restore_metadata(cell, release, seen)
    if "id" in cell and not (isinstance(cell.id, str) and _CELL_ID.fullmatch(cell.id)):
        notes.append("cell id not of nbformat's form: replaced")
        cell["id"] = uuid.uuid4().hex[:12]
    cell["source"] = _as_text(cell.get("source"))
    if kind == "code":
        if "attachments" in cell:
            del cell["attachments"]
            notes.append("attachments on a code cell: removed")
        notes += _inert_code(cell)
        return notes
    notes += _inert_attachments(cell)
    if kind == "markdown":
        source, found, how = _inert_markdown(cell.source, cell.get("attachments", {}))
        if found:
            cell.source = source
            notes.append(f"markdown with {', '.join(found)}: {how}")
    else:
        cell.source, found = _inert_html(cell.source)
        if found:
            notes.append(f"raw cell with {', '.join(found)}: sanitised")
    return notes


def _restore_metadata(cell: NotebookNode, release: dict[str, dict], seen: set[str]) -> list[str]:
    """The released cell's metadata for a cell with a released grade id (its
    first), none for other cells; notes what was more than bookkeeping.

    The nbgrader checksum stays as autograding left it: a test cell is graded
    with the hidden tests the release leaves out, so its checksum is the
    gradebook's, not the release's."""
    metadata = cell.get("metadata")
    student = dict(metadata) if isinstance(metadata, Mapping) else {"metadata": metadata}
    grade_id = _grade_id(cell)
    notes = []
    if grade_id in release and grade_id not in seen:
        seen.add(grade_id)
        cell["metadata"] = restored = copy.deepcopy(release[grade_id])
        graded = dict(student["nbgrader"])
        checksum = graded.pop("checksum", None)
        if isinstance(checksum, str) and _CHECKSUM.fullmatch(checksum):
            restored["nbgrader"]["checksum"] = checksum
        # (a test cell nbgrader put back for a student who deleted it lacks some keys)
        release_nbgrader = restored["nbgrader"]
        if any(
            key not in release_nbgrader or release_nbgrader[key] != value
            for key, value in graded.items()
        ):
            notes.append("nbgrader metadata unlike the release's: restored")
    else:
        cell["metadata"] = from_dict({})
        if "nbgrader" in student:
            notes.append("nbgrader metadata with an unknown or repeated grade id: removed")
    extra = sorted(set(student) - set(cell["metadata"]) - BOOKKEEPING_METADATA - {"nbgrader"})
    if extra:
        notes.append(f"metadata {', '.join(map(repr, extra))}: removed")
    return notes


def _inert_attachments(cell: NotebookNode) -> list[str]:
    """Attachments (images a markdown cell shows inline) whose type is an
    image's and whose data is strictly base64; the rest is dropped."""
    attachments = cell.get("attachments")
    if attachments is None:
        return []
    kept: dict[str, dict[str, str]] = {}
    dropped = []
    for name, bundle in attachments.items() if isinstance(attachments, Mapping) else ():
        good = {
            mime: data
            for mime, data in (bundle.items() if isinstance(bundle, Mapping) else ())
            if mime in ATTACHMENT_TYPES and _is_base64(data)
        }
        if good and len(good) == len(bundle):
            kept[str(name)] = good
        else:
            dropped.append(str(name)[:40])
    if not isinstance(attachments, Mapping):
        dropped.append("(not a mapping)")
    cell["attachments"] = from_dict(kept)
    return [f"attachment {name!r} not a base64 image: removed" for name in dropped]


def _inert_code(cell: NotebookNode) -> list[str]:
    notes = []
    if not _is_count(cell.get("execution_count")):
        notes.append(f"execution count {str(cell.get('execution_count'))[:40]!r}: cleared")
        cell["execution_count"] = None
    outputs = []
    for number, output in enumerate(cell.get("outputs") or [], start=1):
        kept, found = _inert_output(output)
        notes += [f"output {number}: {note}" for note in found]
        if kept is not None:
            outputs.append(kept)
    cell["outputs"] = outputs
    return notes


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _as_text(value: object) -> str:
    """Text as nbformat stores it: a string, or a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(map(str, value))
    return "" if value is None else str(value)


def _is_count(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _inert_output(output: Any) -> tuple[NotebookNode | None, list[str]]:
    """An output rebuilt from what its type may hold, and notes on the rest.

    Streams and errors are text, which every template escapes.  A display's
    data keeps text/plain and text/latex; PNG and JPEG images if their data is
    strictly base64; text/html and text/markdown if inert, else sanitised; SVG
    becomes an ``<img>`` in text/html, where a browser cannot run its scripts;
    everything else (application/javascript, widgets, unknown types) goes,
    and a bundle left empty says so in text/plain.  Metadata keeps only
    numeric image widths and heights."""
    kind = output.get("output_type") if isinstance(output, Mapping) else None
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        text = _as_text(output.get("text"))
        notes = [] if name == output.get("name") else ["stream name not stdout or stderr: stdout"]
        return from_dict({"output_type": "stream", "name": name, "text": text}), notes
    if kind == "error":
        traceback = output.get("traceback")
        error = {
            "output_type": "error",
            "ename": str(output.get("ename", "")),
            "evalue": str(output.get("evalue", "")),
            "traceback": [str(line) for line in traceback] if isinstance(traceback, list) else [],
        }
        return from_dict(error), []
    if kind not in ("display_data", "execute_result"):
        return None, [f"output of unknown type {str(kind)[:40]!r}: removed"]
    data, notes = _inert_data(output.get("data"))
    metadata, dropped = _inert_output_metadata(output.get("metadata"), data)
    if dropped:
        notes.append(f"metadata {', '.join(dropped)}: removed")
    fields = {"output_type": kind, "data": data, "metadata": metadata}
    if kind == "execute_result":
        count = output.get("execution_count")
        if not _is_count(count):
            notes.append(f"execution count {str(count)[:40]!r}: cleared")
            count = None
        fields["execution_count"] = count
    extra = sorted(set(output) - set(fields) - {"transient"})
    if extra:
        notes.append(f"field(s) {', '.join(map(repr, extra))}: removed")
    return from_dict(fields), notes


def _inert_data(data: Any) -> tuple[dict[str, Any], list[str]]:
    bundle = {
        mime: "".join(value) if isinstance(value, list) and all(map(_is_str, value)) else value
        for mime, value in (data.items() if isinstance(data, Mapping) else ())
    }  # nbformat may store text as a list of lines
    kept: dict[str, Any] = {}
    notes = []
    for mime, value in bundle.items():
        if (mime in KEPT_AS_TEXT and isinstance(value, str)) or (
            mime in BASE64_IMAGES and _is_base64(value)
        ):
            kept[mime] = value
        elif mime == "text/html" and isinstance(value, str):
            kept[mime], found = _inert_html(value)
            if found:
                notes.append(f"text/html with {', '.join(found)}: sanitised")
        elif mime == "text/markdown" and isinstance(value, str):
            kept[mime], found, how = _inert_markdown(value, {})
            if found:
                notes.append(f"text/markdown with {', '.join(found)}: {how}")
        elif mime in QUIETLY_REMOVED:
            continue  # an honest notebook's too (tqdm's bar): dropped without a note
        elif mime != "image/svg+xml" or not isinstance(value, str):
            notes.append(f"{str(mime)[:60]} output: removed")
    svg = bundle.get("image/svg+xml")
    if isinstance(svg, str):
        if BASE64_IMAGES & set(kept) or "text/html" in kept:
            notes.append("image/svg+xml output: removed (the output has another image)")
        else:
            encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
            kept["text/html"] = f'<img src="data:image/svg+xml;base64,{encoded}">'
            notes.append("image/svg+xml output: shown as an <img>, where it cannot run script")
    if bundle and not kept:
        kept["text/plain"] = f"[removed by the grader: {', '.join(map(str, bundle))[:200]}]"
    return kept, notes


def _inert_output_metadata(metadata: Any, data: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Numeric width and height (per image type, or for the whole output, as
    nbconvert's ``get_metadata`` reads them); the names of what else there was."""
    source = metadata if isinstance(metadata, Mapping) else {}
    kept: dict[str, Any] = {}
    dropped = []
    for key, value in source.items():
        if key in ("width", "height") and _is_size(value):
            kept[key] = value
        elif key in BASE64_IMAGES and key in data and isinstance(value, Mapping):
            sizes = {k: v for k, v in value.items() if k in ("width", "height") and _is_size(v)}
            if sizes:
                kept[key] = sizes
            dropped += [f"{key}.{k}" for k in value if k not in sizes]
        else:
            dropped.append(str(key)[:40])
    return kept, dropped


def _is_size(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
