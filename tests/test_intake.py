"""Intake against what a student controls: the files and folders handed in,
the notebooks' JSON, and the archives an LMS hands out.

Pure Python: no sandbox, no root, no kernel. Every attack is tried as a class
(every kind of link, every place deep JSON can hide, every way a zip member
can escape), each time next to honest notebooks that must stay gradable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
import os
import socket
import stat
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlcourse.course.grading import intake
from dlcourse.course.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
RELEASE = Layout(ROOT).release
EXPECTED = intake.expected_notebooks(RELEASE)
NOTEBOOK = "02_chain_rule.ipynb"
OTHERS = sorted(set(EXPECTED) - {NOTEBOOK})
HONEST = {name: (RELEASE / name).read_bytes() for name in EXPECTED}
SOLVED = (Layout(ROOT).solutions / NOTEBOOK).read_bytes()  # gradable, and full marks


def released(name: str = NOTEBOOK) -> dict:
    return json.loads(HONEST[name])


def dumps(content: dict) -> bytes:
    return json.dumps(content, indent=1).encode()


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course with what a link could reach (solutions, a gradebook) and an
    honest student, ``honest``, whose notebooks a link could also reach."""
    (Layout(tmp_path).solutions).mkdir(parents=True)
    (Layout(tmp_path).solutions / NOTEBOOK).write_bytes(SOLVED)
    (tmp_path / "gradebook.db").write_bytes(b"SQLite format 3\0")
    hand_in(tmp_path, "honest")
    return tmp_path


def hand_in(course: Path, student: str, **files: bytes) -> Path:
    """``submitted/<student>/ch01/`` with the released notebooks, but ``files``."""
    folder = Layout(course).submitted(student)
    folder.mkdir(parents=True)
    for name, data in {**HONEST, **files}.items():
        (folder / name).write_bytes(data)
    return folder


def read(course: Path, student: str) -> intake.Submission:
    return intake.read_submission(course / "submitted", student, "ch01", EXPECTED)


def read_bytes(tmp_path: Path, data: bytes, name: str = NOTEBOOK) -> intake.Notebook:
    path = tmp_path / name
    path.write_bytes(data)
    return intake.read_notebook(path, EXPECTED[name])


# ------------------------------------------------------------------ links
def bind_socket(path: Path) -> None:
    # a Unix socket's path is limited to about 100 bytes: bind it from its folder
    cwd = Path.cwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path.name)
    finally:
        os.chdir(cwd)


# what to make at a path -> what the message says it is
ENTRIES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "symlink to the solutions": (
        lambda path, course: path.symlink_to(Layout(course).solutions / NOTEBOOK),
        "is a symbolic link; links are never followed",
    ),
    "relative symlink to another student's notebook": (
        lambda path, course: path.symlink_to(Path("../../honest/ch01") / NOTEBOOK),
        "is a symbolic link; links are never followed",
    ),
    "symlink to the gradebook": (
        lambda path, course: path.symlink_to(course / "gradebook.db"),
        "is a symbolic link; links are never followed",
    ),
    "symlink to /etc/passwd": (
        lambda path, course: path.symlink_to("/etc/passwd"),
        "is a symbolic link; links are never followed",
    ),
    "symlink to a folder": (
        lambda path, course: path.symlink_to(course / "solutions"),
        "is a symbolic link; links are never followed",
    ),
    "symlink to a pipe": (
        lambda path, course: (os.mkfifo(course / "pipe"), path.symlink_to(course / "pipe")),
        "is a symbolic link; links are never followed",
    ),
    "dangling symlink": (
        lambda path, course: path.symlink_to(course / "nowhere"),
        "is a symbolic link; links are never followed",
    ),
    "symlink to itself": (
        lambda path, course: path.symlink_to(path.name),
        "is a symbolic link; links are never followed",
    ),
    "hard link to the solutions": (
        lambda path, course: os.link(Layout(course).solutions / NOTEBOOK, path),
        "is a hard link (the same file as 1 other name(s)); links are never followed",
    ),
    "hard link to another student's notebook": (
        lambda path, course: os.link(Layout(course).submitted("honest") / NOTEBOOK, path),
        "is a hard link",
    ),
    "named pipe (would block a reader)": (
        lambda path, course: os.mkfifo(path),
        "is a named pipe (FIFO), not a file",
    ),
    "socket": (lambda path, course: bind_socket(path), "is a socket, not a file"),
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_a_notebook_that_is_a_link_or_not_a_file_is_refused_and_never_followed(
    course: Path, entry: str
) -> None:
    folder = hand_in(course, "zoe")
    (folder / NOTEBOOK).unlink()
    make, said = ENTRIES[entry]
    make(folder / NOTEBOOK, course)
    got = read(course, "zoe")
    assert NOTEBOOK not in got.notebooks
    assert sorted(got.notebooks) == OTHERS  # the honest ones are graded
    (problem,) = got.problems
    assert problem.startswith(f"{NOTEBOOK} {said}")
    assert problem.endswith(": submit the notebook itself; its exercises score 0")
    assert got.digests[NOTEBOOK]  # present, so resuming notices when it is replaced


def test_a_notebook_in_a_folder_of_the_same_name_is_refused(course: Path) -> None:
    folder = hand_in(course, "zoe")
    (folder / NOTEBOOK).unlink()
    (folder / NOTEBOOK).mkdir()
    (folder / NOTEBOOK / NOTEBOOK).write_bytes(SOLVED)
    got = read(course, "zoe")
    assert sorted(got.notebooks) == OTHERS
    assert got.problems == [
        f"{NOTEBOOK} is a folder, not a file: submit the notebook itself; its exercises score 0"
    ]


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_a_link_or_special_file_next_to_the_notebooks_is_reported_and_never_opened(
    course: Path, entry: str
) -> None:
    folder = hand_in(course, "zoe")
    make, said = ENTRIES[entry]
    make(folder / "data.csv", course)
    got = read(course, "zoe")
    assert sorted(got.notebooks) == sorted(EXPECTED)
    assert len(got.problems) == 1
    assert got.problems[0].startswith(f"data.csv {said}")
    assert got.problems[0].endswith(", and it is not part of ch01: ignored")


def test_other_extra_files_are_ignored_as_today(course: Path) -> None:
    folder = hand_in(course, "zoe")
    (folder / "notes.txt").write_text("my notes")
    (folder / ".ipynb_checkpoints").mkdir()
    got = read(course, "zoe")
    assert sorted(got.notebooks) == sorted(EXPECTED)
    assert got.problems == [
        ".ipynb_checkpoints is not part of ch01; ignored",
        "notes.txt is not part of ch01; ignored",
    ]


@pytest.mark.parametrize("level", ["student", "assignment"])
@pytest.mark.parametrize(
    "target", ["another student's folder", "the solutions", "a dangling path", "a file"]
)
def test_a_student_folder_that_is_a_link_refuses_the_submission(
    course: Path, level: str, target: str
) -> None:
    point = {
        "another student's folder": course / "submitted" / "honest",
        "the solutions": course / "solutions",
        "a dangling path": course / "nowhere",
        "a file": course / "gradebook.db",
    }[target]
    if level == "student":
        link, where = course / "submitted" / "zoe", "submitted/zoe"
    else:
        (course / "submitted" / "zoe").mkdir(parents=True)
        link, where = Layout(course).submitted("zoe"), "submitted/zoe/ch01"
        point = point / "ch01" if target != "a file" else point
    link.symlink_to(point)
    got = read(course, "zoe")
    assert got.notebooks == {} and got.digests == {}
    assert got.problems == [
        f"{where} is a symbolic link; links are never followed: the submission must be a real "
        "folder; all its exercises score 0"
    ]


def test_a_student_folder_that_is_a_file_refuses_the_submission(course: Path) -> None:
    (course / "submitted" / "zoe").write_bytes(SOLVED)
    got = read(course, "zoe")
    assert got.notebooks == {}
    assert got.problems == [
        "submitted/zoe is not a folder: the submission must be a real folder; all its exercises "
        "score 0"
    ]


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])  # /dev/zero would never end
def test_a_device_is_never_read(device: str) -> None:
    with pytest.raises(intake.Refused, match="is a device, not a file"):
        intake.read_notebook(Path(device), EXPECTED[NOTEBOOK])


def test_a_device_node_in_a_submission_is_refused(course: Path) -> None:
    folder = hand_in(course, "zoe")
    (folder / NOTEBOOK).unlink()
    try:
        os.mknod(folder / NOTEBOOK, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD (see test_a_device_is_never_read)")
    got = read(course, "zoe")
    assert sorted(got.notebooks) == OTHERS
    assert got.problems[0].startswith(f"{NOTEBOOK} is a device, not a file")


# Each swap happens after intake's lstat saw a plain file and before its open.
SWAPS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "symlink": (
        lambda path, course: path.symlink_to(Layout(course).solutions / NOTEBOOK),
        "is a symbolic link; links are never followed",
    ),
    "hard link": (
        lambda path, course: os.link(Layout(course).solutions / NOTEBOOK, path),
        "is a hard link",
    ),
    "named pipe": (lambda path, course: os.mkfifo(path), "is a named pipe (FIFO)"),
}


@pytest.mark.parametrize("swap", sorted(SWAPS))
def test_a_link_swapped_in_after_the_check_cannot_win(
    course: Path, swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = hand_in(course, "zoe")
    make, said = SWAPS[swap]
    real_stat = os.stat

    def stat_then_swap(path, *args, **kwargs):
        seen = real_stat(path, *args, **kwargs)
        if path == NOTEBOOK and not (folder / NOTEBOOK).is_symlink() and seen.st_nlink == 1:
            (folder / NOTEBOOK).unlink()
            make(folder / NOTEBOOK, course)
        return seen

    monkeypatch.setattr(os, "stat", stat_then_swap)
    got = read(course, "zoe")
    monkeypatch.undo()
    assert sorted(got.notebooks) == OTHERS
    assert got.problems[0].startswith(f"{NOTEBOOK} {said}"), got.problems


def test_fingerprints_of_refused_files_are_stable_and_change_when_the_file_does(
    course: Path,
) -> None:
    folder = hand_in(course, "zoe")
    (folder / NOTEBOOK).unlink()
    (folder / NOTEBOOK).symlink_to(Layout(course).solutions / NOTEBOOK)
    first, again = read(course, "zoe"), read(course, "zoe")
    assert first.digests == again.digests
    (folder / NOTEBOOK).unlink()
    (folder / NOTEBOOK).write_bytes(HONEST[NOTEBOOK])
    fixed = read(course, "zoe")
    assert fixed.digests[NOTEBOOK] != first.digests[NOTEBOOK]
    assert fixed.digests[NOTEBOOK] == hashlib.sha256(HONEST[NOTEBOOK]).hexdigest()
    assert fixed.notebooks[NOTEBOOK].digest == fixed.digests[NOTEBOOK]


# --------------------------------------------------------------- students
def test_students_are_the_real_folders_with_valid_ids(course: Path) -> None:
    submitted = course / "submitted"
    for student in ("zoe", "yan.li", "a-b_c+d@uni.edu"):
        (submitted / student).mkdir()
    (submitted / "copycat").symlink_to(submitted / "honest")
    (submitted / "outside").symlink_to(course / "solutions")
    (submitted / "README").write_text("not a student")
    for bad in (".hidden", "zo e", "zo\x1b[2Je", "-rf"):
        (submitted / bad).mkdir()
    os.mkdir(bytes(submitted) + b"/bad\xff")
    found, problems = intake.students(submitted)
    assert found == ["a-b_c+d@uni.edu", "honest", "yan.li", "zoe"]
    invalid = (
        ": not a valid student id (ASCII letters, digits and . _ @ + -, starting with a letter "
        "or digit): rename the folder; not graded"
    )
    linked = " is a symbolic link; links are never followed: make it a real folder; not graded"
    assert problems == [
        "submitted/-rf" + invalid,
        "submitted/.hidden" + invalid,
        "submitted/README is not a folder; ignored",
        "submitted/'bad\\udcff'" + invalid,
        "submitted/copycat" + linked,
        "submitted/outside" + linked,
        "submitted/'zo\\x1b[2Je'" + invalid,
        "submitted/zo e" + invalid,
    ]
    assert all("\n" not in p and "\x1b" not in p for p in problems)


def test_no_submitted_folder_means_no_students(tmp_path: Path) -> None:
    assert intake.students(tmp_path / "submitted") == ([], [])


@pytest.mark.parametrize("student", ["..", "../honest", "", ".hidden", "zo e", "a/b"])
def test_a_student_id_that_is_not_a_safe_folder_name_is_never_looked_up(
    course: Path, student: str
) -> None:
    got = read(course, student)
    assert got.notebooks == {} and len(got.problems) == 1
    assert "is not a valid student id" in got.problems[0]


def test_missing_folders_and_notebooks_keep_todays_messages(course: Path) -> None:
    assert read(course, "nobody").problems == ["no folder submitted/nobody/ch01/"] + [
        f"{name} is missing; its exercises score 0" for name in EXPECTED
    ]
    (Layout(course).submitted("empty")).mkdir(parents=True)
    assert read(course, "empty").problems == ["no notebooks in submitted/empty/ch01/"] + [
        f"{name} is missing; its exercises score 0" for name in EXPECTED
    ]
    folder = hand_in(course, "zoe")
    (folder / OTHERS[0]).unlink()
    got = read(course, "zoe")
    assert got.problems == [f"{OTHERS[0]} is missing; its exercises score 0"]
    assert sorted(got.digests) == sorted(got.notebooks) == [NOTEBOOK, OTHERS[1]]


# --------------------------------------------------------- malformed JSON
def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_placeholder(place: str, payload: bytes) -> bytes:
    """The released notebook with ``payload`` (raw JSON) in cell metadata or in a stored output."""
    content = released()
    code = next(c for c in content["cells"] if c["cell_type"] == "code")
    if place == "metadata":
        code["metadata"]["x"] = "@PAYLOAD@"
    else:
        code["outputs"] = [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"application/json": "@PAYLOAD@"},
            }
        ]
    return dumps(content).replace(b'"@PAYLOAD@"', payload)


# The JSON depth at the placeholder: notebook, cells, cell, metadata (4); or
# notebook, cells, cell, outputs, output, data (6).
ABOVE = {"metadata": 4, "output": 6}


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def cells_json(count: int) -> bytes:
    """A notebook of ``count`` empty raw cells, written directly (nbformat takes seconds)."""
    content = released()
    content["cells"] = ["@CELLS@"]
    cells = b",".join(
        b'{"cell_type":"raw","id":"c%d","metadata":{},"source":""}' % i for i in range(count)
    )
    return dumps(content).replace(b'"@CELLS@"', cells)


def replaced(old: bytes, new: bytes, name: str = NOTEBOOK) -> bytes:
    assert old in HONEST[name]
    return HONEST[name].replace(old, new, 1)


def edited(change: Callable[[dict], object]) -> bytes:
    content = released()
    change(content)
    return dumps(content)


def first_cell(content: dict) -> dict:
    return content["cells"][0]


MALFORMED: dict[str, tuple[bytes, str]] = {
    "200,000 deep": (nested(200_000), "nests its JSON 200,000 levels deep, more than 64"),
    "200,000 deep, never closed": (
        b"[" * 200_000,
        "not a readable notebook (its brackets do not match: truncated?)",
    ),
    "200,000 deep in cell metadata": (
        with_placeholder("metadata", nested(200_000)),
        "levels deep, more than 64",
    ),
    "200,000 deep in a stored output": (
        with_placeholder("output", nested(200_000)),
        "levels deep, more than 64",
    ),
    "one level too deep in cell metadata": (
        with_placeholder("metadata", nested(intake.MAX_DEPTH + 1 - ABOVE["metadata"])),
        f"nests its JSON {intake.MAX_DEPTH + 1} levels deep",
    ),
    "one level too deep in a stored output": (
        with_placeholder("output", nested(intake.MAX_DEPTH + 1 - ABOVE["output"])),
        f"nests its JSON {intake.MAX_DEPTH + 1} levels deep",
    ),
    "deep objects in strings' clothing": (
        with_placeholder("metadata", b'"\\\\"' + b'{"a":' * 100 + b"0" + b"}" * 100),
        "levels deep, more than 64",
    ),
    "100,000 cells": (cells_json(100_000), "has 100,000 cells, more than the 1,000"),
    "one cell too many": (cells_json(intake.MAX_CELLS + 1), "has 1,001 cells"),
    "too many JSON values": (
        with_placeholder("metadata", b"[" + b"0," * intake.MAX_JSON_VALUES + b"0]"),
        "holds over 2,000,000 JSON values",
    ),
    "not UTF-8": (b"\xff\xfe\x00 not a notebook", "is not UTF-8 text (byte 0)"),
    "a Latin-1 byte in a cell": (replaced(b"Chain Rule", b"Cha\xeene Rule"), "is not UTF-8 text"),
    "truncated": (HONEST[NOTEBOOK][:500], "is not a readable notebook (its brackets do not match"),
    "truncated by a byte": (HONEST[NOTEBOOK].rstrip()[:-1], "brackets do not match"),
    "empty": (b"", "is empty: save the notebook in JupyterLab"),
    "only spaces": (b" " * 1000, "is not a readable notebook (JSONDecodeError: Expecting value"),
    "a missing comma": (
        replaced(b'"cell_type": "markdown",', b'"cell_type": "markdown"'),
        "is not a readable notebook (JSONDecodeError: Expecting ',' delimiter: line 5",
    ),
    "a byte-order mark": (
        b"\xef\xbb\xbf" + HONEST[NOTEBOOK],
        "(JSONDecodeError: Unexpected UTF-8 BOM",
    ),
    "an unterminated string of escaped quotes": (
        b'"' + b'\\"' * 1_000_000,
        "is not a readable notebook (JSONDecodeError: Unterminated string",
    ),
    "NaN": (
        with_placeholder("metadata", b"NaN"),
        "is not a readable notebook (ValueError: NaN is not JSON)",
    ),
    "a lone surrogate": (
        with_placeholder("metadata", b'"\\ud800"'),
        "holds text that is not valid Unicode",
    ),
    "a JSON list": (b"[]", "(JSON, but with no nbformat version)"),
    "a JSON string": (b'"notebook"', "(JSON, but with no nbformat version)"),
    "null": (b"null", "(JSON, but with no nbformat version)"),
    "an empty object": (b"{}", "(JSON, but with no nbformat version)"),
    "nbformat 3": (
        edited(lambda c: c.update(nbformat=3)),
        "declares nbformat 3, nbformat_minor 5 (a notebook is format 4, minor 0 or more)",
    ),
    "nbformat as a string": (edited(lambda c: c.update(nbformat="4")), "nbformat '4', "),
    "nbformat as a float": (edited(lambda c: c.update(nbformat=4.0)), "nbformat 4.0, "),
    "nbformat as a list": (edited(lambda c: c.update(nbformat=[4])), "nbformat [4], "),
    "minor version as a string": (
        edited(lambda c: c.update(nbformat_minor="5")),
        "nbformat_minor '5' (",
    ),
    "minor version as a boolean": (
        edited(lambda c: c.update(nbformat_minor=True)),
        "nbformat_minor True (",
    ),
    "negative minor version": (edited(lambda c: c.update(nbformat_minor=-1)), "minor -1 ("),
    "no cells": (edited(lambda c: c.pop("cells")), "its list of cells is malformed"),
    "cells as an object": (edited(lambda c: c.update(cells={})), "its list of cells is malformed"),
    "a number as a cell": (
        edited(lambda c: c["cells"].append(1)),
        "its list of cells is malformed",
    ),
    "a list as a cell id": (
        edited(lambda c: first_cell(c).update(id=[1])),
        "its list of cells is malformed",
    ),
    "a cell without a type": (
        edited(lambda c: first_cell(c).pop("cell_type")),
        "is not a valid notebook (",
    ),
    "a number as a source": (
        edited(lambda c: first_cell(c).update(source=42)),
        "is not a valid notebook (",
    ),
    "metadata as a list": (
        edited(lambda c: first_cell(c).update(metadata=[])),
        "is not a valid notebook (",
    ),
    "a cell of type null (nbformat's validator trips on it)": (
        edited(lambda c: first_cell(c).update(cell_type=None)),
        "is not a valid notebook (nbformat's validator failed on it: TypeError)",
    ),
    "an unknown cell type": (
        edited(lambda c: first_cell(c).update(cell_type="exploit")),
        "is not a valid notebook (",
    ),
    "an empty notebook (another assignment's?)": (
        nbformat.writes(nbformat.v4.new_notebook()).encode(),
        "has none of this notebook's exercises: a notebook of another assignment?",
    ),
    "another notebook of the chapter": (
        HONEST[OTHERS[0]],
        "has none of this notebook's exercises: a notebook of another assignment?",
    ),
    "grade ids that are not strings": (
        edited(
            lambda c: [
                cell["metadata"]["nbgrader"].update(grade_id=["x"])
                for cell in c["cells"]
                if "nbgrader" in cell["metadata"]
            ]
        ),
        "has none of this notebook's exercises",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_costs_only_that_notebook(course: Path, case: str) -> None:
    data, said = MALFORMED[case]
    hand_in(course, "zoe", **{NOTEBOOK: data})
    got = read(course, "zoe")
    assert sorted(got.notebooks) == OTHERS
    assert got.digests[NOTEBOOK] == hashlib.sha256(data).hexdigest()
    (problem,) = got.problems
    assert problem.startswith(f"{NOTEBOOK} ") and problem.endswith("; its exercises score 0")
    assert said in problem, problem
    assert "\n" not in problem and len(problem) < 400


@pytest.mark.skipif(
    not hasattr(sys, "get_int_max_str_digits"), reason="Python has no limit on integer digits"
)
def test_an_integer_of_thousands_of_digits_costs_only_that_notebook(course: Path) -> None:
    hand_in(course, "zoe", **{NOTEBOOK: with_placeholder("metadata", b"9" * 5000)})
    got = read(course, "zoe")
    assert sorted(got.notebooks) == OTHERS
    assert "is not a readable notebook (ValueError: Exceeds the limit" in got.problems[0]


@pytest.mark.parametrize("place", sorted(ABOVE))
def test_json_exactly_max_depth_deep_is_accepted(tmp_path: Path, place: str) -> None:
    data = with_placeholder(place, nested(intake.MAX_DEPTH - ABOVE[place]))
    assert depth_of(json.loads(data)) == intake.MAX_DEPTH
    notebook = read_bytes(tmp_path, data)
    assert json.loads(notebook.data)["nbformat"] == 4


def test_max_cells_are_accepted(tmp_path: Path) -> None:
    content = json.loads(cells_json(intake.MAX_CELLS - len(released()["cells"])))
    content["cells"] = released()["cells"] + content["cells"]
    assert len(content["cells"]) == intake.MAX_CELLS
    assert len(nbformat.reads(read_bytes(tmp_path, dumps(content)).data, 4).cells) == 1000


@pytest.mark.parametrize("error", [MemoryError, RecursionError])
def test_memory_and_recursion_errors_never_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(intake.nbformat, "validate", fail)
    with pytest.raises(intake.Refused, match=f"could not be read \\({error.__name__}\\)"):
        read_bytes(tmp_path, HONEST[NOTEBOOK])


KEYS = st.sampled_from(
    [
        "cells",
        "cell_type",
        "source",
        "outputs",
        "metadata",
        "id",
        "nbgrader",
        "grade_id",
        "attachments",
        "execution_count",
        "nbformat",
        "nbformat_minor",
        "widgets",
        "x",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | KEYS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=3), inner),
    max_leaves=12,
)


@settings(
    max_examples=100,
    deadline=None,  # no timing in tests: the machine is shared
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(where=st.sampled_from(["notebook", "cell", "metadata", "cell key"]), value=JSON)
def test_any_json_anywhere_is_a_notebook_or_refused(
    tmp_path: Path, where: str, value: object
) -> None:
    content = released()
    cell = content["cells"][3]
    if where == "notebook":
        content = value
    elif where == "cell":
        content["cells"][3] = value
    elif where == "metadata":
        cell["metadata"] = value
    elif isinstance(value, dict):
        cell.update(value)
    try:
        read_bytes(tmp_path, json.dumps(content).encode())
    except intake.Refused as refused:
        assert "\n" not in str(refused)


# --------------------------------------------------- stored outputs, sizes
def png_output(size: int, seed: int) -> dict:
    image = hashlib.shake_256(str(seed).encode()).digest(size)  # incompressible, like a PNG
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": base64.b64encode(image).decode(), "text/plain": ["<Figure>"]},
    }


def test_tens_of_megabytes_of_stored_outputs_are_not_the_students_fault(tmp_path: Path) -> None:
    content = released()
    code = [c for c in content["cells"] if c["cell_type"] == "code"]
    for count, cell in enumerate(code, 1):
        cell["execution_count"] = count
        cell["metadata"].update(collapsed=False, scrolled=True)
        cell["outputs"] = [png_output(1_500_000, count)] if count <= 8 else []
    code[-1]["outputs"].append(
        {"output_type": "stream", "name": "stdout", "text": [f"step {i}\n" for i in range(10**5)]}
    )
    # an output nbformat's schema would reject: stripped, so it costs nothing
    code[-2]["outputs"].append({"output_type": "mystery", "payload": [1, 2]})
    content["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"x": 1}}
    data = dumps(content)
    assert len(data) > 12 * 2**20
    notebook = read_bytes(tmp_path, data)
    assert len(notebook.data) < 2**20
    assert notebook.digest == hashlib.sha256(data).hexdigest()
    graded = nbformat.reads(notebook.data, 4)
    nbformat.validate(graded)
    assert "widgets" not in graded.metadata
    for cell in graded.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert "collapsed" not in cell.metadata and "scrolled" not in cell.metadata
    assert [c.source for c in graded.cells] == [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in released()["cells"]
    ]
    assert [c.metadata.get("nbgrader") for c in graded.cells] == [
        c["metadata"].get("nbgrader") for c in released()["cells"]
    ]


def with_source_of(size: int) -> bytes:
    """The released notebook with a source cell making it exactly ``size`` bytes once
    written by nbformat (outputs stripped)."""
    content = released()
    content["cells"].append(nbformat.v4.new_code_cell("#", id="filler"))
    one = len(nbformat.writes(nbformat.from_dict(content)).encode())  # each "#" more is a byte
    content["cells"][-1]["source"] = "#" * (1 + size - one)
    content["cells"][-1]["outputs"] = [png_output(3 * 2**20, 0)]  # not counted
    return dumps(content)


def test_the_size_limit_applies_to_what_the_student_wrote(tmp_path: Path) -> None:
    limit = intake.MAX_NOTEBOOK_BYTES
    assert len(read_bytes(tmp_path, with_source_of(limit)).data) == limit
    with pytest.raises(intake.Refused) as refused:
        read_bytes(tmp_path, with_source_of(limit + 1))
    assert str(refused.value).startswith(
        f"{NOTEBOOK} is 5.0 MB, over the 5 MB limit (stored outputs not counted): "
    )


def test_a_file_over_max_file_bytes_is_not_even_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / NOTEBOOK
    with open(path, "wb") as file:
        file.truncate(intake.MAX_FILE_BYTES + 1)  # sparse: nothing on disk
    real_open = os.open

    def never_the_notebook(name, *args, **kwargs):
        assert name != NOTEBOOK, "opened a file over the limit"
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", never_the_notebook)
    with pytest.raises(
        intake.Refused, match=r"is 256\.0 MB, over the 256 MB a submitted file may be"
    ):
        intake.read_notebook(path, EXPECTED[NOTEBOOK])


def test_cell_ids_missing_or_repeated_are_repaired_not_refused(tmp_path: Path) -> None:
    content = released()
    content["cells"][0].pop("id")
    content["cells"][2]["id"] = content["cells"][1]["id"]
    graded = nbformat.reads(read_bytes(tmp_path, dumps(content)).data, 4)
    ids = [c.id for c in graded.cells]
    assert len(set(ids)) == len(ids)


# ---------------------------------------------------------- LMS downloads
def snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root`` -> its bytes, link target or kind (links never followed)."""
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                found[str(path)] = path.read_bytes()
            else:
                found[str(path)] = "folder" if path.is_dir() else "special"
    return found


def collect(course: Path, downloads: Path) -> tuple[list[str], list[str]]:
    return intake.collect(course / "submitted", downloads, "ch01", EXPECTED)


@pytest.fixture
def downloads(course: Path) -> Path:
    folder = course / "downloads"
    folder.mkdir()
    return folder


def write_zip(path: Path, members: dict[str | zipfile.ZipInfo, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_lms_downloads_are_filed_without_overwriting(course: Path, downloads: Path) -> None:
    with zipfile.ZipFile(downloads / "zoe_attempt1.zip", "w") as z:
        z.writestr("work/02_chain_rule.ipynb", HONEST[NOTEBOOK])
    (downloads / "yan_02_chain_rule.ipynb").write_bytes(HONEST[NOTEBOOK])
    (downloads / "readme.txt").write_text("hi")
    existing = Layout(course).submitted("yan") / NOTEBOOK
    existing.parent.mkdir(parents=True)
    existing.write_text("an earlier version")
    filed, problems = intake.collect(course / "submitted", downloads, "ch01", [NOTEBOOK])
    assert filed == ["submitted/zoe/ch01/02_chain_rule.ipynb"]
    assert existing.read_text() == "an earlier version"
    assert problems == [
        "readme.txt: neither a zip file nor a notebook; ignored",
        "yan_02_chain_rule.ipynb: submitted/yan/ch01/02_chain_rule.ipynb exists and differs; "
        "left as it is (move it away to replace it)",
    ]
    assert (Layout(course).submitted("zoe") / NOTEBOOK).read_bytes() == HONEST[NOTEBOOK]


def test_every_notebook_of_an_archive_is_filed_once(course: Path, downloads: Path) -> None:
    write_zip(
        downloads / "zoe.zip",
        {f"ch01/{name}": data for name, data in HONEST.items()}
        | {"ch01/notes.txt": b"notes", "__MACOSX/ch01/._02_chain_rule.ipynb": b"\0\5\26\7"},
    )
    (downloads / f"yan_{NOTEBOOK}").write_bytes(HONEST[NOTEBOOK])
    filed, problems = collect(course, downloads)
    assert problems == []
    assert filed == [f"submitted/yan/ch01/{NOTEBOOK}"] + [
        f"submitted/zoe/ch01/{name}" for name in EXPECTED
    ]
    assert collect(course, downloads) == ([], [])  # the same again: nothing to do
    assert os.stat(Layout(course).submitted("zoe") / NOTEBOOK).st_nlink == 1
    assert intake.read_submission(course / "submitted", "zoe", "ch01", EXPECTED).problems == []


def assert_nothing_written(before: dict[str, object], course: Path) -> None:
    after = snapshot(course)
    assert after == before, sorted(set(after) ^ set(before))


UNSAFE_MEMBERS = {
    "../02_chain_rule.ipynb": "climbs out of the archive's folder (..)",
    "a/../../02_chain_rule.ipynb": "climbs out of the archive's folder (..)",
    "ch01/../../../../tmp/02_chain_rule.ipynb": "climbs out of the archive's folder (..)",
    "../../outside.txt": "climbs out of the archive's folder (..)",
    "/tmp/02_chain_rule.ipynb": "has an absolute path",
    "//server/share/02_chain_rule.ipynb": "has an absolute path",
    "C:/Users/zoe/02_chain_rule.ipynb": "has a Windows drive in its path",
    "c:02_chain_rule.ipynb": "has a Windows drive in its path",
    "..\\..\\02_chain_rule.ipynb": "has a Windows path (backslashes)",
    "C:\\Windows\\02_chain_rule.ipynb": "has a Windows path (backslashes)",
    "\\\\server\\share\\x": "has a Windows path (backslashes)",
}


@pytest.mark.parametrize("member", list(UNSAFE_MEMBERS))
def test_an_archive_with_a_member_escaping_its_folder_is_refused_whole(
    course: Path, downloads: Path, member: str
) -> None:
    write_zip(downloads / "zoe.zip", {"ch01/01_deep_learning.ipynb": HONEST[OTHERS[0]]})
    with zipfile.ZipFile(downloads / "zoe.zip", "a") as archive:
        archive.writestr(zipfile.ZipInfo(member), SOLVED)  # a ZipInfo keeps the name as it is
    assert zipfile.ZipFile(downloads / "zoe.zip").namelist()[-1] == member
    before = snapshot(course)
    filed, problems = collect(course, downloads)
    assert filed == []
    assert problems == [
        f"zoe.zip: its member {member} {UNSAFE_MEMBERS[member]}; nothing filed from this "
        "archive (extract it by hand and check it); not filed"
    ]
    assert_nothing_written(before, course)


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        (stat.S_IFLNK, "is a symbolic link"),
        (stat.S_IFIFO, "is not a regular file (a device, pipe or socket)"),
        (stat.S_IFCHR, "is not a regular file (a device, pipe or socket)"),
        (stat.S_IFSOCK, "is not a regular file (a device, pipe or socket)"),
    ],
)
@pytest.mark.parametrize("member", [f"ch01/{NOTEBOOK}", "ch01/data"])
def test_an_archive_with_a_link_or_special_member_is_refused_whole(
    course: Path, downloads: Path, kind: int, said: str, member: str
) -> None:
    link = zipfile.ZipInfo(member)
    link.create_system = 3  # Unix, where external_attr holds the mode
    link.external_attr = (kind | 0o777) << 16
    write_zip(
        downloads / "zoe.zip",
        {"ch01/01_deep_learning.ipynb": HONEST[OTHERS[0]], link: b"../../solutions/ch01/x"},
    )
    before = snapshot(course)
    filed, problems = collect(course, downloads)
    assert filed == []
    assert problems == [
        f"zoe.zip: its member {member} {said}; nothing filed from this archive (extract it by "
        "hand and check it); not filed"
    ]
    assert_nothing_written(before, course)


def forged_zip(
    name: str,
    compressed: bytes,
    *,
    file_size: int,
    compress_size: int | None = None,
    crc: int = 0,
    flags: int = 0,
) -> bytes:
    """One deflated member with whatever sizes, CRC and flags it claims (zipfile
    would compute them honestly). Layout from PKWARE's APPNOTE: local header,
    data, central directory, end record."""
    encoded = name.encode()
    size = len(compressed) if compress_size is None else compress_size
    sizes = (crc, size, min(file_size, 0xFFFFFFFF))
    local = struct.pack(
        "<4s2B4HL2L2H", b"PK\3\4", 20, 0, flags, 8, 0, 0x21, *sizes, len(encoded), 0
    )
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\1\2", 20, 3, 20, 0, flags, 8, 0, 0x21, *sizes, len(encoded),
        0, 0, 0, 0, 0o100644 << 16, 0,
    )  # fmt: skip
    start = len(local) + len(encoded) + len(compressed)
    directory = central + encoded
    end = struct.pack("<4s4H2LH", b"PK\5\6", 0, 0, 1, 1, len(directory), start, 0)
    return local + encoded + compressed + directory + end


def zeros_deflated(size: int) -> bytes:
    """A real deflate stream of ``size`` zero bytes, made in milliseconds: one
    MiB of zeros compressed once (flushed, so it stands alone) and repeated."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    mebibyte = block.compress(bytes(2**20)) + block.flush(zlib.Z_FULL_FLUSH)
    return mebibyte * (size // 2**20) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


BOMB = zeros_deflated(2 * 2**30)


def test_the_bomb_is_real() -> None:
    assert len(BOMB) < 3 * 2**20
    stream = zlib.decompressobj(-15)
    assert stream.decompress(BOMB[: 100 * 2**10], 50 * 2**20) == bytes(50 * 2**20)


ZIP_BOMBS = {
    "declaring its 2 GB": (
        forged_zip(f"ch01/{NOTEBOOK}", BOMB, file_size=2 * 2**30),
        f"zoe.zip: its {NOTEBOOK} would expand to 2.0 GB, over the 256 MB a submitted file may be "
        "(a zip bomb?); nothing filed from this archive; not filed",
    ),
    "declaring 1,000 bytes": (
        forged_zip(f"ch01/{NOTEBOOK}", BOMB, file_size=1000),
        f"zoe.zip: its {NOTEBOOK} declares 1,000 bytes but holds {len(BOMB):,} compressed bytes: "
        "its sizes are forged (a zip bomb?); nothing filed from this archive; not filed",
    ),
    "declaring 1,000 bytes of 1,000": (
        forged_zip(f"ch01/{NOTEBOOK}", BOMB, file_size=1000, compress_size=1000),
        f"zoe.zip: {NOTEBOOK} could not be extracted (Bad CRC-32 for file "
        f"'ch01/{NOTEBOOK}'); not filed",
    ),
}


@pytest.mark.parametrize("bomb", list(ZIP_BOMBS))
def test_a_zip_bomb_is_refused_without_expanding_it(
    course: Path, downloads: Path, bomb: str
) -> None:
    data, said = ZIP_BOMBS[bomb]
    (downloads / "zoe.zip").write_bytes(data)
    assert zipfile.ZipFile(downloads / "zoe.zip").namelist() == [f"ch01/{NOTEBOOK}"]
    before = snapshot(course)
    assert collect(course, downloads) == ([], [said])
    assert_nothing_written(before, course)


def test_corrupt_lzma_and_bzip2_members_are_refused(course: Path, downloads: Path) -> None:
    for method, student in [(zipfile.ZIP_LZMA, "zoe"), (zipfile.ZIP_BZIP2, "yan")]:
        path = downloads / f"{student}.zip"
        with zipfile.ZipFile(path, "w", method) as archive:
            archive.writestr(f"ch01/{NOTEBOOK}", HONEST[NOTEBOOK])
        data = bytearray(path.read_bytes())
        start = 30 + len(f"ch01/{NOTEBOOK}") + 9  # past the local header (and lzma's properties)
        data[start : start + 64] = bytes(64)
        path.write_bytes(data)
    with pytest.raises((lzma.LZMAError, OSError)):  # what zipfile itself raises
        zipfile.ZipFile(downloads / "zoe.zip").read(f"ch01/{NOTEBOOK}")
    before = snapshot(course)
    filed, problems = collect(course, downloads)
    assert filed == [] and len(problems) == 2
    for student in ("yan", "zoe"):
        said = next(p for p in problems if p.startswith(f"{student}.zip: "))
        assert f"{NOTEBOOK} could not be extracted (" in said and said.endswith("; not filed")
    assert_nothing_written(before, course)


def test_an_archive_spanning_disks_is_refused(course: Path, downloads: Path) -> None:
    path = downloads / "zoe.zip"
    write_zip(path, {f"ch01/{NOTEBOOK}": HONEST[NOTEBOOK]})
    data = path.read_bytes()
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 2)  # a Zip64 locator: two disks
    path.write_bytes(data[:-22] + locator + data[-22:])
    with pytest.raises(zipfile.BadZipFile, match="span multiple disks"):
        zipfile.ZipFile(path)
    assert collect(course, downloads) == (
        [],
        ["zoe.zip is not a readable zip file (zipfiles that span multiple disks are not "
         "supported); not filed"],
    )


def test_an_archive_of_too_many_members_is_refused(course: Path, downloads: Path) -> None:
    write_zip(
        downloads / "zoe.zip",
        {f"ch01/{NOTEBOOK}": HONEST[NOTEBOOK]} | {f"f{i}": b"" for i in range(intake.MAX_MEMBERS)},
    )
    filed, problems = collect(course, downloads)
    assert filed == [] and len(problems) == 1
    assert problems[0].startswith("zoe.zip lists 1,001 files (")
    assert problems[0].endswith(
        "bytes of directory), more than the 1,000 an archive may hold: zip only the notebooks; "
        "not filed"
    )


def test_an_archive_whose_directory_is_too_large_is_refused_before_it_is_read(
    course: Path, downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_zip(downloads / "zoe.zip", {f"{i}" + "x" * 60_000: b"" for i in range(20)})

    def never(*args: object) -> None:
        raise AssertionError("zipfile read the whole directory")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", never)
    filed, problems = collect(course, downloads)
    assert filed == [] and len(problems) == 1
    assert problems[0].startswith("zoe.zip lists 20 files (1,200,")


def test_an_archive_forging_its_count_of_members_is_refused(course: Path, downloads: Path) -> None:
    path = downloads / "zoe.zip"
    write_zip(path, {f"ch01/{NOTEBOOK}": HONEST[NOTEBOOK]} | {f"f{i}": b"" for i in range(1500)})
    data = bytearray(path.read_bytes())
    data[-14:-10] = struct.pack("<2H", 1, 1)  # the end record's counts, this disk and in all
    path.write_bytes(data)
    assert collect(course, downloads) == (
        [],
        [
            "zoe.zip holds 1,501 files, more than the 1,000 an archive may hold: zip only the "
            "notebooks; not filed"
        ],
    )


def test_an_encrypted_notebook_is_refused(course: Path, downloads: Path) -> None:
    path = downloads / "zoe.zip"
    write_zip(path, {f"ch01/{NOTEBOOK}": HONEST[NOTEBOOK]})
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\3\4", 6), (b"PK\1\2", 8)):  # the flags, local and central
        at = data.index(signature) + offset
        data[at] |= 0x1
    path.write_bytes(data)
    assert collect(course, downloads) == (
        [],
        [
            f"zoe.zip: its {NOTEBOOK} is encrypted: zip it again without a password; nothing "
            "filed from this archive; not filed"
        ],
    )


def test_an_archive_holding_a_notebook_twice_is_refused(course: Path, downloads: Path) -> None:
    write_zip(downloads / "zoe.zip", {f"a/{NOTEBOOK}": HONEST[NOTEBOOK], f"b/{NOTEBOOK}": SOLVED})
    assert collect(course, downloads) == (
        [],
        [
            f"zoe.zip holds {NOTEBOOK} twice (a/{NOTEBOOK} and b/{NOTEBOOK}): which one is the "
            "submission? nothing filed from this archive; not filed"
        ],
    )


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"not a zip", "zoe.zip is not a readable zip file; not filed"),
        (b"", "zoe.zip is not a readable zip file; not filed"),
        (b"PK\5\6" + bytes(18), "zoe.zip: no notebook of ch01 inside"),
    ],
)
def test_an_archive_that_is_not_one_is_reported(
    course: Path, downloads: Path, data: bytes, said: str
) -> None:
    (downloads / "zoe.zip").write_bytes(data)
    assert collect(course, downloads) == ([], [said])


DOWNLOADS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "a symlink to the solutions": (
        lambda path, course: path.symlink_to(Layout(course).solutions / NOTEBOOK),
        "is a symbolic link; links are never followed",
    ),
    "a symlink to an archive elsewhere": (
        lambda path, course: (
            write_zip(course / "elsewhere.zip", {NOTEBOOK: SOLVED}),
            path.symlink_to(course / "elsewhere.zip"),
        ),
        "is a symbolic link; links are never followed",
    ),
    "a hard link to the solutions": (
        lambda path, course: os.link(Layout(course).solutions / NOTEBOOK, path),
        "is a hard link",
    ),
    "a named pipe": (lambda path, course: os.mkfifo(path), "is a named pipe (FIFO)"),
    "a folder": (lambda path, course: path.mkdir(), "is a folder, not a file"),
}


@pytest.mark.parametrize("suffix", [f"_{NOTEBOOK}", ".zip"])
@pytest.mark.parametrize("download", sorted(DOWNLOADS))
def test_a_download_that_is_a_link_or_not_a_file_is_refused(
    course: Path, downloads: Path, download: str, suffix: str
) -> None:
    make, said = DOWNLOADS[download]
    make(downloads / f"zoe{suffix}", course)
    before = snapshot(course)
    filed, problems = collect(course, downloads)
    assert filed == []
    assert len(problems) == 1
    assert problems[0].startswith(f"zoe{suffix} {said}")
    assert problems[0].endswith(": download the file itself; not filed")
    assert_nothing_written(before, course)


@pytest.mark.parametrize("student", ["..", ".", ".hidden", "", "zo\x1be", "zo e", "zo\ne", "-x"])
@pytest.mark.parametrize("form", ["loose", "zip"])
def test_a_student_id_that_is_not_a_safe_folder_name_is_refused(
    course: Path, downloads: Path, student: str, form: str
) -> None:
    if form == "loose":
        entry = f"{student}_{NOTEBOOK}"
        (downloads / entry).write_bytes(HONEST[NOTEBOOK])
    else:
        entry = f"{student}_attempt.zip"
        write_zip(downloads / entry, {NOTEBOOK: HONEST[NOTEBOOK]})
    before = snapshot(course)
    filed, problems = collect(course, downloads)
    assert filed == []
    assert len(problems) == 1 and "\n" not in problems[0] and "\x1b" not in problems[0]
    assert problems[0].endswith(
        "is not a valid student id (ASCII letters, digits and . _ @ + -, starting with a letter "
        "or digit); not filed"
    )
    assert_nothing_written(before, course)


@pytest.mark.parametrize("level", ["student", "assignment"])
def test_nothing_is_written_through_a_link_in_submitted(
    course: Path, downloads: Path, level: str
) -> None:
    outside = course / "outside"
    (outside / "ch01").mkdir(parents=True)
    if level == "student":
        (course / "submitted" / "zoe").symlink_to(outside)
        where = "submitted/zoe"
    else:
        (course / "submitted" / "zoe").mkdir()
        (Layout(course).submitted("zoe")).symlink_to(outside / "ch01")
        where = "submitted/zoe/ch01"
    (downloads / f"zoe_{NOTEBOOK}").write_bytes(HONEST[NOTEBOOK])
    before = snapshot(course)
    assert collect(course, downloads) == (
        [],
        [
            f"zoe_{NOTEBOOK}: {where} is a symbolic link; links are never followed: the "
            "submission must be a real folder; not filed"
        ],
    )
    assert_nothing_written(before, course)


@pytest.mark.parametrize("target", ["outside/new.ipynb", "solutions/ch01/" + NOTEBOOK])
def test_an_existing_link_in_place_of_the_notebook_is_left_and_never_written_through(
    course: Path, downloads: Path, target: str
) -> None:
    folder = Layout(course).submitted("zoe")
    folder.mkdir(parents=True)
    (course / "outside").mkdir()
    (folder / NOTEBOOK).symlink_to(course / target)
    (downloads / f"zoe_{NOTEBOOK}").write_bytes(HONEST[NOTEBOOK])
    before = snapshot(course)
    filed, problems = collect(course, downloads)
    assert filed == []
    assert problems == [
        f"zoe_{NOTEBOOK}: submitted/zoe/ch01/{NOTEBOOK} is a symbolic link; links are never "
        "followed: left as it is (remove it to file this one)"
    ]
    assert_nothing_written(before, course)
