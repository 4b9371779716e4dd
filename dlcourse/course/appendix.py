"""Appendix A (answers to the exercises) and the index, generated from the
notebook sources so that they can never disagree with them.

The answers are the solution cells themselves with nbgrader's markers
removed: exactly the code the autograder is tested to accept.  The index
holds the terms ``solutions/src/index.toml`` lists, each linked to every
section that teaches it: every section, exercises included, whose text names
the term or one of its other forms (``[also]``), as whole words, a plural
too.  The links are ones JupyterLab
resolves (a heading's anchor is its text with spaces as dashes), and an
entry ends with its ``[see_also]`` cross-references.

Appendix A is either released, next to the index in the learners' workspace,
or withheld in the instructor's folder (``dlcourse release --no-answers``),
where the learner's JupyterLab cannot reach it; the index links to it only
when it is released.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlcourse.course import authoring, placing
from dlcourse.course.layout import (
    APPENDIX,
    ASSIGNMENT,
    INDEX,
    RELEASE,
    WITHHELD_APPENDIX,
    Layout,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass
class Answer:
    grade_id: str
    notebook: str  # file name of the chapter notebook
    title: str  # the exercise's heading, e.g. "Exercise 1.1.1: a dense layer (1 point)"
    code: str  # the solution cell without nbgrader's markers
    explanation: str


def solution_code(source: str) -> str:
    """An answer cell's source without the BEGIN/END SOLUTION marker lines."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in MARKERS)


def headings(cells: list[nbformat.NotebookNode]) -> list[str]:
    """Markdown heading texts, in order."""
    found = []
    for cell in cells:
        if cell.cell_type == "markdown":
            found += re.findall(r"^#{1,6} +(.+?) *$", cell.source, flags=re.MULTILINE)
    return found


# Characters that would make a heading's rendered text differ from its source
# (inline markup, math, HTML) or a link to it ambiguous (#, %, quotes, which
# browsers and JupyterLab may escape or decode in a fragment).
_NOT_PLAIN = re.compile(r"[`*_$\\\[\]<>&#%\"]|[^\x20-\x7e]")


def _balanced(text: str) -> bool:
    """Parentheses in matched pairs, as Markdown needs them inside a link's target."""
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def anchor(heading: str) -> str:
    """The fragment JupyterLab gives a heading: the heading's rendered text
    (``textContent``) with each space replaced by a dash.  Only plain
    headings, whose text is their source, can be linked to; parentheses, as
    in "Exercise 1.1.1: a dense layer (1 point)", must come in pairs."""
    if _NOT_PLAIN.search(heading) or not _balanced(heading):
        raise ValueError(
            f"cannot link to the heading {heading!r}: a linked heading must be plain ASCII "
            "text without markup, math, HTML, #, % or quotes, and with its parentheses in "
            "pairs, so that its anchor is predictable and fits in a Markdown link."
        )
    return heading.replace(" ", "-")


def answers(root: Path) -> list[Answer]:
    """Every exercise's answer, in the order of the chapter."""
    return [
        Answer(e.id, e.notebook, e.heading, solution_code(e.answer), e.explanation)
        for source in authoring.sources(root)
        for e in source.exercises
    ]


def _section(notebook: str, root: Path) -> str:
    source = next(s for s in authoring.sources(root) if s.notebook == notebook)
    return headings(source.cells)[0]


def appendix_notebook(root: Path, where: Path = APPENDIX) -> nbformat.NotebookNode:
    """Appendix A, its links relative to ``where`` (relative to the course folder)."""
    cells = [
        authoring.md(r"""
# Appendix A: Answers to Exercises

One answer per exercise of Chapter 1, with a short explanation of why it is
right. Each answer is taken from the solution cells of the instructor
notebooks, and the test suite checks that the autograder gives every one of
them full marks. Other correct answers exist: the tests accept any
implementation whose results match within floating-point tolerance.
""")
    ]
    section = ""
    for number, item in enumerate(answers(root), start=1):
        if item.notebook != section:
            section = item.notebook
            title = _section(section, root)
            target = os.path.relpath(Path(RELEASE, ASSIGNMENT, section), where.parent)
            link = f"{Path(target).as_posix()}#{anchor(title)}"
            cells.append(authoring.md(f"## Section {title}\n\nExercises of [{title}]({link})."))
        cells.append(authoring.md(f"### A.{number} {item.title}\n\n{item.explanation}"))
        cells.append(authoring.code(item.code))
    return authoring.build(cells)


@dataclass
class Terms:
    """The index's terms, as ``solutions/src/index.toml`` declares them."""

    terms: list[str]
    also: dict[str, list[str]]  # term -> other forms the text names it by
    taught: dict[str, list[str]]  # term -> sections that teach it without naming it
    see_also: dict[str, list[str]]  # term -> related terms of the index


TABLES = ("also", "taught", "see_also")


def _strings(path: Path, table: dict, key: str) -> dict[str, list[str]]:
    value = table.get(key, {})
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in value.values()
    ):
        raise ValueError(f"{path}: [{key}] maps a term to a list of strings")
    return value


def read_terms(root: Path) -> Terms:
    """The index's terms from ``solutions/src/index.toml``, checked."""
    path = Layout.of(root).index_terms
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    unknown = sorted(set(table) - {"terms", *TABLES})
    if unknown:
        raise ValueError(
            f"{path}: unknown {', '.join(unknown)}; it has terms, "
            + ", ".join(f"[{key}]" for key in TABLES)
        )
    terms = table.get("terms", [])
    if not isinstance(terms, list) or not all(isinstance(s, str) and s for s in terms):
        raise ValueError(f"{path}: `terms` is a list of the index's terms, as strings")
    repeated = sorted({term for term in terms if terms.count(term) > 1})
    if repeated:
        raise ValueError(f"{path}: {', '.join(map(repr, repeated))} listed twice in `terms`")
    found = Terms(terms, *(_strings(path, table, key) for key in TABLES))
    for key in TABLES:
        for term, others in getattr(found, key).items():
            for name in (term, *others) if key == "see_also" else (term,):
                if name not in terms:
                    raise ValueError(
                        f"{path}: [{key}] names {name!r}, which is not a term of the index"
                    )
    return found


def _form(name: str) -> re.Pattern[str]:
    """A term's name as whole words (a plural too), wherever the text wraps its
    lines; a word of code or mathematics counts (``sigmoid_prime``, ``\\tanh``)."""
    words = r"\s+".join(re.escape(word) for word in name.split())
    plural = r"(?:s|es)?"
    if name.endswith("y"):  # boundary, boundaries
        words, plural = words[:-1], "(?:y|ies)"
    return re.compile(rf"(?<![a-z0-9-]){words}{plural}(?![a-z0-9-])", flags=re.IGNORECASE)


def sections(root: Path) -> list[tuple[str, str, str]]:
    """(notebook file, heading, its text up to the next heading), in the order
    of the chapter, exercises included."""
    found: list[tuple[str, str, str]] = []
    for source in authoring.sources(root):
        for cell in source.cells:
            if cell.cell_type != "markdown":
                continue
            for line in cell.source.splitlines():
                heading = re.match(r"^#{1,6} +(.+?) *$", line)
                if heading:
                    found.append((source.notebook, heading.group(1), heading.group(1)))
                elif found:
                    notebook, title, text = found[-1]
                    found[-1] = (notebook, title, f"{text}\n{line}")
    return found


def _place(
    root: Path, term: str, where: str, places: list[tuple[str, str, str]], exercises: dict[str, str]
) -> tuple[str, str]:
    """The section ``[taught]`` names: an exercise by its id (``exercises``: id
    -> heading), or a heading."""
    heading = exercises.get(where, where)
    found = {(notebook, title) for notebook, title, _ in places if title == heading}
    if len(found) != 1:
        why = "is in several notebooks" if found else "is neither an exercise's id nor a heading"
        raise ValueError(f"{Layout.of(root).index_terms}: [taught] {term!r}: {where!r} {why}")
    return found.pop()


def index_terms(root: Path) -> dict[str, list[tuple[str, str]]]:
    """term -> [(notebook file, heading)]: every section whose text names the
    term (or one of its other forms), and those ``[taught]`` adds, in the
    order of the chapter; terms in alphabetical order."""
    declared = read_terms(root)
    places = sections(root)
    exercises = {e.id: e.heading for s in authoring.sources(root) for e in s.exercises}
    order = [(notebook, heading) for notebook, heading, _ in places]
    terms: dict[str, list[tuple[str, str]]] = {}
    for term in declared.terms:
        forms = [_form(name) for name in (term, *declared.also.get(term, []))]
        found = {(n, h) for n, h, text in places if any(f.search(text) for f in forms)}
        found |= {
            _place(root, term, where, places, exercises) for where in declared.taught.get(term, [])
        }
        if not found:
            raise ValueError(
                f"{Layout.of(root).index_terms}: no section names the term {term!r}; add the "
                "form the text uses to [also], or the sections that teach it to [taught]"
            )
        terms[term] = sorted(found, key=order.index)
    return dict(sorted(terms.items(), key=lambda item: item[0].lower()))


def index_notebook(root: Path, answers: bool = True) -> nbformat.NotebookNode:
    """The contents and the index; Appendix A is linked only when ``answers``
    (it is then next to the index, in the learners' workspace)."""
    contents = []
    for source in authoring.sources(root):
        title = headings(source.cells)[0]
        contents.append(f"- [{title}]({ASSIGNMENT}/{source.name}.ipynb#{anchor(title)})")
    contents.append(
        f"- [Appendix A: Answers to Exercises]({APPENDIX.relative_to(INDEX.parent).as_posix()})"
        if answers
        else "- Appendix A: Answers to Exercises (your instructor releases it after the deadline)"
    )
    numbers = {  # "01_deep_learning.ipynb" -> "1.1", from the title "1.1 Deep Learning"
        f"{source.name}.ipynb": headings(source.cells)[0].split()[0]
        for source in authoring.sources(root)
    }
    terms = index_terms(root)
    see_also = read_terms(root).see_also
    lines = []
    for term, places in terms.items():
        groups: dict[str, list[str]] = {}  # notebook -> its headings for this term
        for notebook, heading in places:
            groups.setdefault(notebook, []).append(heading)
        texts = []
        for notebook, found in groups.items():
            links = ", ".join(
                f"[{heading}]({ASSIGNMENT}/{notebook}#{anchor(heading)})" for heading in found
            )
            number = numbers[notebook]  # "1.2 [The chain rule](...)", not "1.1 [1.1 Deep Learning]"
            texts.append(links if found[0].startswith(number + " ") else f"{number} {links}")
        also = ", ".join(f"*{other}*" for other in see_also.get(term, []))
        lines.append(f"- **{term}**: " + "; ".join(texts) + (f"; see also {also}" if also else ""))
    cells = [
        authoring.md("# Chapter 1: contents\n\n" + "\n".join(contents)),
        authoring.md(
            "# Index\n\nEach term links to the places that treat it, exercises included, "
            "section by section.\n\n" + "\n".join(lines)
        ),
    ]
    return authoring.build(cells)


def _pages(root: Path, answers: bool) -> list[tuple[Path, nbformat.NotebookNode]]:
    """Appendix A where ``answers`` puts it, and the index, as they should be."""
    where = APPENDIX if answers else WITHHELD_APPENDIX
    return [(where, appendix_notebook(root, where)), (INDEX, index_notebook(root, answers))]


def build(root: Path, answers: bool | None = None) -> list[str]:
    """Write Appendix A and the index; a line per path that changed.
    Appendix A goes to the learners' workspace if ``answers``, to the
    instructor's folder if not, and stays where it is if None (see
    :attr:`Layout.answers_released`); the other copy, if any, is removed.
    A copy someone changed is kept (:mod:`dlcourse.course.placing`)."""
    layout = Layout.of(root)
    if answers is None:
        answers = layout.answers_released
    lines = []
    for relative, nb in _pages(root, answers):
        lines += placing.put(layout, root / relative, nb, merge=False)
    return lines + placing.remove(layout, root / (WITHHELD_APPENDIX if answers else APPENDIX))


def stale(root: Path) -> list[str]:
    """Which of Appendix A and the index differ from what the sources give,
    Appendix A released or withheld as it is now; a copy in the other place
    is stale too."""
    answers = Layout.of(root).answers_released
    out = []
    for relative, nb in _pages(root, answers):
        path = root / relative
        if not path.exists() or path.read_text() != nbformat.writes(nb) + "\n":
            out.append(str(relative))
    other = WITHHELD_APPENDIX if answers else APPENDIX
    if (root / other).exists():
        out.append(str(other))
    return out
