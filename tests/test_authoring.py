"""Exercises declared once in the notebooks' percent-format sources: what the
notebook, Appendix A and the index make of a declaration, and the clear
error a malformed one gets (no kernel runs here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlcourse.course import appendix, authoring
from dlcourse.course.authoring import SourceError
from dlcourse.course.layout import Layout

ROOT = Path(__file__).resolve().parents[1]

INDEX = """
terms = ["layer", "weights and biases"]

[taught]
"weights and biases" = ["first"]
"""


@dataclass
class Declared:
    id: str
    title: str
    points: int
    intro: str = ""  # text before the exercise's heading, in the same cell


def source_text(section: str, exercises: list[Declared], total: int | None = None) -> str:
    """A notebook source as a course author writes it."""
    total = sum(e.points for e in exercises) if total is None else total
    parts = [
        f"# %% [markdown] total_points={total}\n# # {section} A Section\n#\n# About a layer.\n",
        '# %% locked="setup"\nimport math\n',
    ]
    for n, e in enumerate(exercises, start=1):
        intro = f"# {e.intro}\n#\n" if e.intro else ""
        parts += [
            f'# %% [markdown] exercise="{section}.{n}" id="{e.id}" points={e.points}\n'
            f"{intro}# ### Exercise: {e.title}\n#\n# Write `{e.id}()`, a layer.\n",
            f"# %% answer\ndef {e.id}():\n    ### BEGIN SOLUTION\n    return {n}\n"
            "    ### END SOLUTION\n",
            f"# %% tests\nassert {e.id}() == {n}\n",
            f"# %% [markdown] appendix\n# It returns {n}.\n",
        ]
    return "\n".join(parts)


def course(tmp_path: Path, sources: dict[str, str], index: str = INDEX) -> Path:
    folder = Layout.of(tmp_path).sources
    folder.mkdir(parents=True)
    for name, text in sources.items():
        (folder / name).write_text(text)
    Layout.of(tmp_path).index_terms.write_text(index)
    return tmp_path


TWO = [Declared("first", "a first one", 1), Declared("second", "the second", 3)]

titles = st.text(st.sampled_from("abcdefghij xyz,-"), min_size=1, max_size=30).filter(
    lambda t: t.strip() == t and "  " not in t
)
declarations = st.lists(
    st.builds(
        Declared,
        id=st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
        title=titles,
        points=st.integers(1, 9),
        intro=st.sampled_from(["", "## Exercises", "Some words before it."]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda d: d.id,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(exercises=declarations)
def test_an_exercise_declared_once_gives_its_heading_cells_answer_and_index_entry(
    tmp_path_factory: pytest.TempPathFactory, exercises: list[Declared]
) -> None:
    root = course(
        tmp_path_factory.mktemp("c"),
        {"01_section.py": source_text("1.4", exercises)},
        index='terms = ["layer"]',
    )
    (source,) = authoring.sources(root)
    nb = authoring.build(source.cells)
    answers = appendix.answers(root)
    terms = appendix.index_terms(root)
    assert [e.id for e in source.exercises] == [d.id for d in exercises]
    for n, (declared, exercise, answer) in enumerate(
        zip(exercises, source.exercises, answers, strict=True), start=1
    ):
        unit = "point" if declared.points == 1 else "points"
        heading = f"Exercise 1.4.{n}: {declared.title} ({declared.points} {unit})"
        assert exercise.heading == heading
        statement = [c for c in nb.cells if f"### {heading}" in c.source]
        assert len(statement) == 1 and statement[0].cell_type == "markdown"
        assert statement[0].source.startswith(f"{declared.intro}\n\n" if declared.intro else "###")
        assert "### Exercise:" not in statement[0].source
        cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        solution, test = cells[declared.id].metadata.nbgrader, cells[f"test_{declared.id}"]
        assert solution["solution"] and not solution["grade"]
        assert (
            test.metadata.nbgrader["grade"] and test.metadata.nbgrader["points"] == declared.points
        )
        assert nb.cells.index(statement[0]) < nb.cells.index(cells[declared.id])
        assert nb.cells.index(cells[declared.id]) < nb.cells.index(test)
        assert (answer.grade_id, answer.title) == (declared.id, heading)
        assert answer.code == f"def {declared.id}():\n    return {n}"
        assert answer.explanation == f"It returns {n}."
        # the exercise's statement names a layer: the index links the term to it
        assert ("01_section.ipynb", heading) in terms["layer"]
    assert all("It returns" not in c.source for c in nb.cells), "an appendix cell leaked"
    appendix_text = "\n".join(c.source for c in appendix.appendix_notebook(root).cells)
    assert all(f"A.{n} {e.heading}" in appendix_text for n, e in enumerate(source.exercises, 1))
    index = "\n".join(c.source for c in appendix.index_notebook(root).cells)
    for e in source.exercises:
        assert f"(ch01/01_section.ipynb#{appendix.anchor(e.heading)})" in index


def test_the_chapters_exercises_are_declared_once_and_agree_everywhere() -> None:
    sources = authoring.sources(ROOT)
    exercises = [e for s in sources for e in s.exercises]
    assert len(exercises) == 19
    answers = {a.grade_id: a for a in appendix.answers(ROOT)}
    linked = {place for places in appendix.index_terms(ROOT).values() for place in places}
    for source in sources:
        nb = authoring.build(source.cells)
        headings = appendix.headings(nb.cells)
        points = {
            c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"]
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        }
        assert points == {e.test_id: e.points for e in source.exercises}
        for e in source.exercises:
            assert headings.count(e.heading) == 1
            assert answers[e.id].title == e.heading and answers[e.id].notebook == source.notebook
            assert (source.notebook, e.heading) in linked, f"the index never links {e.heading}"
        text = source.path.read_text()
        assert not re.search(r"^# #+ Exercise \d", text, flags=re.MULTILINE), "a written heading"


def error_for(tmp_path: Path, sources: dict[str, str], index: str = INDEX) -> SourceError:
    root = course(tmp_path, sources, index)
    with pytest.raises(SourceError) as caught:
        authoring.sources(root)
    return caught.value


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    return lines[occurrence - 1]


VALID = source_text("1.1", TWO)
MALFORMED = {
    # name: (the source, what the error says, the line it names: a fragment of it, which one)
    "a duplicate id": (
        VALID.replace('id="second"', 'id="first"'),
        "the grade id 'first' is taken by an earlier cell",
        ('exercise="1.1.2"', 1),
    ),
    "a missing test cell": (
        VALID.replace("# %% tests\nassert first() == 1\n", ""),
        "exercise 1.1.1 (first) has no `# %% tests` cell before line",
        ('exercise="1.1.1"', 1),
    ),
    "a missing answer cell at the end": (
        VALID[: VALID.rindex("# %% answer")] + "# %% [markdown] appendix\n# words\n",
        "exercise 1.1.2 (second) has no `# %% answer` cell before the end of the file",
        ('exercise="1.1.2"', 1),
    ),
    "a missing appendix cell": (
        VALID.replace("# %% [markdown] appendix\n# It returns 2.\n", ""),
        "has no `# %% appendix` cell",
        ('exercise="1.1.2"', 1),
    ),
    "points that do not add up": (
        source_text("1.1", TWO, total=5),
        "the exercises add up to 4 points, but the first cell declares total_points=5",
        ("total_points", 1),
    ),
    "no total": (
        VALID.replace(" total_points=4", ""),
        "declares no total_points: its header should say `total_points=4`",
        ("# %% [markdown]", 1),
    ),
    "points of zero": (
        VALID.replace("points=3", "points=0"),
        "exercise 1.1.2 needs its points, a whole number of at least 1",
        ('exercise="1.1.2"', 1),
    ),
    "points as a string": (
        VALID.replace("points=3", 'points="3"'),
        "needs its points",
        ('exercise="1.1.2"', 1),
    ),
    "an id a locked cell has": (
        VALID.replace('id="second"', 'id="setup"'),
        "the grade id 'setup' is taken by an earlier cell",
        ('exercise="1.1.2"', 1),
    ),
    "an id that is no grade id": (
        VALID.replace('id="second"', 'id="Second one"'),
        "exercise 1.1.2's id is made of lower-case letters",
        ('exercise="1.1.2"', 1),
    ),
    "a number out of order": (
        VALID.replace('exercise="1.1.2"', 'exercise="1.1.3"'),
        "exercise 1.1.3 should be 1.1.2",
        ('exercise="1.1.3"', 1),
    ),
    "another section's number": (
        VALID.replace('exercise="1.1.1"', 'exercise="1.2.1"'),
        "exercise 1.2.1 should be 1.1.1",
        ('exercise="1.2.1"', 1),
    ),
    "a number that is not one": (
        VALID.replace('exercise="1.1.1"', 'exercise="first"'),
        'an exercise\'s number is a string like "1.1.1"',
        ('exercise="first"', 1),
    ),
    "no title": (
        VALID.replace("# ### Exercise: the second", "# ### the second"),
        "needs one line `### Exercise: <title>` (found 0)",
        ('exercise="1.1.2"', 1),
    ),
    "a heading written out": (
        VALID.replace("# About a layer.", "# ### Exercise 1.1.1: a first one (1 point)"),
        "an exercise's heading is written `### Exercise: <title>`",
        ("# %% [markdown] total", 1),
    ),
    "a tests cell before the answer": (
        VALID.replace("# %% answer\ndef first", "# %% tests\nx = 1\n\n# %% answer\ndef first"),
        "exercise 1.1.1: its test cell comes after its answer cell",
        ("# %% tests", 1),
    ),
    "an answer outside an exercise": (
        VALID.replace('# %% locked="setup"', "# %% answer"),
        "the `answer` cell belongs to an exercise: declare one before it",
        ("# %% answer", 1),
    ),
    "two answers": (
        VALID.replace("# %% tests\nassert first", "# %% answer\nx = 1\n\n# %% tests\nassert first"),
        "exercise 1.1.1 has an answer cell already",
        ("# %% answer", 2),
    ),
    "an answer without markers": (
        VALID.replace(
            "    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n", "    return 2\n"
        ),
        "answer 'second': the source needs BEGIN/END SOLUTION markers",
        ("# %% answer", 2),
    ),
    "a misspelt kind": (
        VALID.replace("# %% tests\nassert second", "# %% test\nassert second"),
        "unknown cell 'test'",
        ("# %% test", 2),
    ),
    "a key the kind does not take": (
        VALID.replace("# %% tests\nassert second", "# %% tests points=3\nassert second"),
        "this cell cannot have points in its header",
        ("# %% tests", 2),
    ),
    "metadata that is not JSON": (
        VALID.replace("points=3", "points=three"),
        "cannot read the header's metadata",
        ('exercise="1.1.2"', 1),
    ),
    "text before the first cell": (
        "import math\n" + VALID,
        "a notebook source starts with a cell marker",
        ("import math", 1),
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_declaration_is_refused_naming_the_file_and_line(
    tmp_path: Path, case: str
) -> None:
    text, message, (fragment, occurrence) = MALFORMED[case]
    error = error_for(tmp_path, {"01_section.py": text})
    path = Layout.of(tmp_path).sources / "01_section.py"
    line = line_of(text, fragment, occurrence)
    assert (error.path, error.line) == (path, line)
    assert str(error).startswith(f"{path}:{line}: ")
    assert message in str(error)


def test_two_notebooks_cannot_share_an_exercise_id(tmp_path: Path) -> None:
    second = source_text("1.2", [Declared("second", "again", 2)])
    error = error_for(tmp_path, {"01_one.py": VALID, "02_two.py": second})
    path = Layout.of(tmp_path).sources / "02_two.py"
    assert str(error).startswith(f"{path}:{line_of(second, 'exercise=')}: ")
    assert "the id 'second' is taken by exercise 1.1.2 in 01_one.ipynb" in str(error)


def test_a_term_links_to_every_section_that_names_it(tmp_path: Path) -> None:
    one = VALID.replace("# About a layer.", "# About a dense\n# layer.").replace(
        "# Write `second()`, a layer.", "# Write `second()`, for Dense Layers."
    )
    two = source_text("1.2", [Declared("third", "more", 2)]).replace("a layer.", "a dense layer.")
    two = two.replace("# Write `third()`", "# Mind the boundaries. Write `third()`")
    index = INDEX.replace('"layer"', '"dense layer", "boundary"')
    root = course(tmp_path, {"01_one.py": one, "02_two.py": two}, index)
    terms = appendix.index_terms(root)
    assert terms["dense layer"] == [
        ("01_one.ipynb", "1.1 A Section"),  # across a line
        ("01_one.ipynb", "Exercise 1.1.2: the second (3 points)"),  # a plural, capitals
        ("02_two.ipynb", "1.2 A Section"),
        ("02_two.ipynb", "Exercise 1.2.1: more (2 points)"),
    ]
    # "boundary" named as "boundaries"
    assert terms["boundary"] == [("02_two.ipynb", "Exercise 1.2.1: more (2 points)")]
    # named nowhere, taught in the exercise that [taught] names by its id
    assert terms["weights and biases"] == [
        ("01_one.ipynb", "Exercise 1.1.1: a first one (1 point)")
    ]


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ('terms = ["layer", "layer"]', "'layer' listed twice in `terms`"),
        ('terms = ["layer"]\n[see_also]\n"layer" = ["tensor"]', "[see_also] names 'tensor'"),
        (
            'terms = ["layer"]\n[also]\n"tensor" = ["x"]',
            "[also] names 'tensor', which is not a term",
        ),
        ('terms = ["tensor"]', "no section names the term 'tensor'"),
        ('terms = ["layer"]\n[taught]\n"layer" = ["nowhere"]', "'nowhere' is neither an exercise"),
        ('terms = ["layer"]\n[taught]\n"layer" = ["1.1 A Section"]', "is in several notebooks"),
        ('terms = ["layer"]\n[seealso]', "unknown seealso"),
        ('terms = "layer"', "`terms` is a list of the index's terms"),
        ("terms = [", "index.toml: "),
    ],
)
def test_a_malformed_index_is_refused(tmp_path: Path, index: str, message: str) -> None:
    two = source_text("1.1", [Declared("third", "more", 2)])
    root = course(tmp_path, {"01_one.py": VALID, "02_two.py": two}, index)
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        appendix.index_terms(root)
    assert str(Layout.of(root).index_terms) in str(caught.value)
