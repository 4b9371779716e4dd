"""`dlcourse grade` end to end on a class of adversarial submissions.

Every student hands in section 1.2's notebook (four exercises, 2 points each;
the two other notebooks are missing, which is recorded and scores 0), with
Appendix A's answers and one twist. The whole class is graded once, with two
workers, through the command line; each test then checks one student.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import socket
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import appendix, grading
from dlcourse.course.cli import main
from dlcourse.course.grading import intake, sandbox

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_chain_rule.ipynb"
ANSWERS = {a.grade_id: a.code for a in appendix.answers(ROOT)}
CORRECT = ANSWERS["chain_rule"]
WRONG = CORRECT.replace("f_prime(g(x)) * g_prime(x)", "f_prime(x) * g_prime(x)")
# right values, but exp overflows (and warns) for large negative x: the test's
# np.errstate(over="raise") must reach the kernel, where the student's code runs
OVERFLOWS = ANSWERS["activation_derivatives"].replace(
    "s = 0.5 * (1.0 + np.tanh(0.5 * x))", "s = 1.0 / (1.0 + np.exp(-x))"
)
assert ANSWERS["activation_derivatives"] != OVERFLOWS
FULL = 8.0
LOSE_ONE = 6.0  # one exercise lost (2 points), the three others kept

if sandbox.unavailable():
    pytest.skip(f"grading tests need the sandbox: {sandbox.unavailable()}", allow_module_level=True)


def if_readable(path: str) -> str:
    """chain_rule is right only if the student's code could read ``path``."""
    return (
        f"try:\n    open({path!r}).read(1)\n    CHEAT = True\nexcept OSError:\n    CHEAT = False\n"
        + CORRECT
        + "\nif not CHEAT:\n"
        + "\n".join("    " + line for line in WRONG.splitlines())
    )


def catalogue(course: Path, port: int) -> dict[str, tuple[dict[str, str], float]]:
    """student -> (answer cell -> code, expected score)."""
    solutions = str(course / "solutions" / "ch01" / NOTEBOOK)
    return {
        "honest": ({}, FULL),
        "partial": ({"chain_rule": WRONG}, LOSE_ONE),
        "overflow": ({"activation_derivatives": OVERFLOWS}, LOSE_ONE),
        "loop": ({"chain_rule": "while True:\n    pass"}, LOSE_ONE),
        "memory": ({"chain_rule": "hog = bytearray(8 * 1024 ** 3)\n" + CORRECT}, LOSE_ONE),
        "exit": ({"chain_rule": "import sys\nsys.exit(1)\n" + CORRECT}, LOSE_ONE),
        "stderr": (
            {"chain_rule": "import sys\nprint('noise ' * 1000, file=sys.stderr)\n" + CORRECT},
            FULL,
        ),
        "output": ({"chain_rule": "print('x' * 3_000_000)\n" + CORRECT}, FULL),
        "monkeypatch": (
            {
                "chain_rule": "np.allclose = lambda *a, **k: True\n"
                "import dlcourse.gradcheck\n"
                "dlcourse.gradcheck.assert_close = lambda *a, **k: None\n" + WRONG
            },
            LOSE_ONE,
        ),
        "solutions": ({"chain_rule": if_readable(solutions)}, LOSE_ONE),
        "gradebook": (
            {
                "chain_rule": f"try:\n    open({str(course / 'gradebook.db')!r}, 'w')"
                "\nexcept OSError:\n    pass\n" + CORRECT
            },
            FULL,
        ),
        "network": (
            {
                "chain_rule": "import socket\ntry:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), 2)\n"
                "    OPEN = True\nexcept OSError:\n    OPEN = False\n"
                + CORRECT
                + "\nif not OPEN:\n"
                + "\n".join("    " + line for line in WRONG.splitlines())
            },
            LOSE_ONE,
        ),
        "forkbomb": (
            {
                "chain_rule": "import os, time\nwhile True:\n    if os.fork() == 0:\n"
                "        time.sleep(60)\n        os._exit(0)\n"
            },
            LOSE_ONE,
        ),
        "nan": (
            {
                "chain_rule": CORRECT.replace(
                    "return f_prime(g(x)) * g_prime(x)", "return np.nan * x"
                )
            },
            LOSE_ONE,
        ),
        "shape": (
            {
                "chain_derivative": ANSWERS["chain_derivative"].replace(
                    "return derivative", "return float(np.sum(derivative))"
                )
            },
            LOSE_ONE,
        ),
        "mutates": (
            {
                "numerical_derivative": ANSWERS["numerical_derivative"].replace(
                    "return (f(x + h)", "x *= 0\n    return (f(x + h)"
                )
            },
            LOSE_ONE,
        ),
        "crash": ({"chain_rule": "import os\nos._exit(3)"}, LOSE_ONE),
        # a function that never returns costs its test; the kernel is replaced for the rest
        "hangs": (
            {
                "chain_rule": "def chain_rule(f_prime, g, g_prime):\n"
                "    def derivative(x):\n        while True:\n            pass\n"
                "    return derivative"
            },
            LOSE_ONE,
        ),
        # the test's own names are the grader's: rebinding them in the notebook changes nothing
        "rebind": ({"chain_rule": "assert_close = lambda *a, **k: None\n" + WRONG}, LOSE_ONE),
        # the kernel is the student's: rewriting what it runs, or what it reports, changes nothing
        "transformer": (
            {
                "chain_rule": "get_ipython().input_transformers_cleanup.append(\n"
                "    lambda lines: ['pass\\n'] if 'assert_close' in ''.join(lines) else lines)\n"
                + WRONG
            },
            LOSE_ONE,
        ),
        "swallow": (
            {
                "chain_rule": "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)\n"
                + WRONG
            },
            LOSE_ONE,
        ),
        "unhooked": (
            {
                "chain_rule": "import sys\nsys.settrace(None)\n"
                "np.testing.assert_allclose = lambda *a, **k: None\n"
                "__builtins__.AssertionError = type('Never', (Exception,), {})\n" + WRONG
            },
            LOSE_ONE,
        ),
    }


def _test_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_chain_rule"
    )


def submission(code: dict[str, str], edit_test: str = "") -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / "notebooks" / "ch01" / NOTEBOOK, 4)
    for cell in nb.cells:
        grading_meta = cell.metadata.get("nbgrader", {})
        if grading_meta.get("solution"):
            cell.source = code.get(grading_meta["grade_id"], ANSWERS[grading_meta["grade_id"]])
    if edit_test == "edit":
        cell = next(
            c
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") == "test_chain_rule"
        )
        cell.source = "pass"
    elif edit_test == "metadata":  # the answer cell made a test worth 100, the test unlocked
        answer = next(
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "chain_rule"
        )
        answer.metadata["nbgrader"].update(grade=True, points=100, solution=False, locked=True)
        test = _test_cell(nb)
        test.metadata["nbgrader"].update(points=100, locked=False, grade=False)
        test.source = "pass"
    elif edit_test == "claim":  # a cell of the student's wearing the test's metadata
        fake = nbformat.v4.new_code_cell("print('all good')")
        fake.metadata["nbgrader"] = dict(_test_cell(nb).metadata["nbgrader"])
        nb.cells = [c for c in nb.cells if c is not _test_cell(nb)] + [fake]
    elif edit_test == "delete":
        nb.cells = [
            c
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") != "test_chain_rule"
        ]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    course = tmp_path_factory.mktemp("class")
    for name in ("nbgrader_config.py", "solutions", "notebooks"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, course / name)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    students = catalogue(course, listener.getsockname()[1])
    for student, (code, _) in students.items():
        folder = course / "submitted" / student / "ch01"
        folder.mkdir(parents=True)
        nbformat.write(submission(code), folder / NOTEBOOK)
    for student, how in [
        ("edited", "edit"),
        ("deleted", "delete"),
        ("metadata", "metadata"),
        ("claim", "claim"),
    ]:
        folder = course / "submitted" / student / "ch01"
        folder.mkdir(parents=True)
        nbformat.write(submission({"chain_rule": WRONG}, how), folder / NOTEBOOK)
        students[student] = ({}, LOSE_ONE)
    bad = {
        "corrupt": nbformat.writes(submission({}))[:500].encode(),
        "foreign": nbformat.writes(nbformat.v4.new_notebook()).encode(),
        "binary": b"\xff\xfe\x00 not a notebook",
        "huge": b" " * (intake.MAX_NOTEBOOK_BYTES + 1),
    }
    for student, data in bad.items():
        folder = course / "submitted" / student / "ch01"
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_bytes(data)
        students[student] = ({}, 0.0)
    (course / "submitted" / "empty" / "ch01").mkdir(parents=True)
    (course / "submitted" / "notes" / "ch01").mkdir(parents=True)
    (course / "submitted" / "notes" / "ch01" / "notes.txt").write_text("my notes")
    students["empty"] = students["notes"] = ({}, 0.0)
    before = {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (course / "submitted").rglob("*")
        if p.is_file()
    }
    assert (
        main(
            [
                "--root",
                str(course),
                "grade",
                "--workers",
                "2",
                "--timeout",
                "10",
                "--memory",
                "1500",
            ]
        )
        == 0
    )
    listener.close()
    return {
        "course": course,
        "students": students,
        "before": before,
        "scores": grading.scores(course),
    }


def total(graded: dict, student: str) -> float:
    return sum(score or 0 for score in graded["scores"][student].values())


@pytest.mark.parametrize(
    "student",
    [
        "honest",
        "partial",
        "loop",
        "memory",
        "exit",
        "stderr",
        "output",
        "monkeypatch",
        "solutions",
        "gradebook",
        "network",
        "forkbomb",
        "nan",
        "shape",
        "mutates",
        "crash",
        "hangs",
        "rebind",
        "transformer",
        "swallow",
        "unhooked",
        "edited",
        "deleted",
        "metadata",
        "claim",
        "corrupt",
        "foreign",
        "binary",
        "huge",
        "empty",
        "notes",
    ],
)
def test_each_student_gets_what_their_answers_are_worth(graded: dict, student: str) -> None:
    expected = graded["students"][student][1]
    assert total(graded, student) == expected


def test_every_grade_is_in_the_gradebook_once_and_matches_grades_csv(graded: dict) -> None:
    course = graded["course"]
    with open(course / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["student_id"] for r in rows) == sorted(graded["students"])
    for row in rows:
        assert float(row["score"]) == total(graded, row["student_id"])
    assert all(len(cells) == 14 for cells in graded["scores"].values())


def test_submissions_are_never_modified(graded: dict) -> None:
    for path, digest in graded["before"].items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_problems_are_reported_with_their_cause(
    graded: dict, capsys: pytest.CaptureFixture
) -> None:
    course = graded["course"]
    main(["--root", str(course), "grade", "--student", "crash", "--student", "huge", "--force"])
    out = capsys.readouterr().out
    assert "crash: 02_chain_rule.ipynb: cell " in out
    assert "the kernel died (exit status 3" in out
    assert "huge: 02_chain_rule.ipynb is 5.0 MB, over the 5 MB limit" in out
    assert "01_deep_learning.ipynb is missing" in out


def test_feedback_hides_the_hidden_tests(graded: dict) -> None:
    feedback = graded["course"] / "feedback" / "honest" / "ch01" / "02_chain_rule.html"
    html = feedback.read_text()
    assert "BEGIN HIDDEN TESTS" not in html and "rng = np.random.default_rng(1203)" not in html
    assert "chain_rule: visible tests passed" in html
    failing = (
        graded["course"] / "feedback" / "partial" / "ch01" / NOTEBOOK.replace(".ipynb", ".html")
    )
    html = failing.read_text()
    # the failing test's message stays; the traceback quoting the test's code does not
    assert "chain_rule(cos, x^2, 2x)(x) is wrong at index" in html
    assert "at g(x), not at x" in html  # the hint
    assert "Cell In[" not in html and "gradcheck.py" not in html


def test_running_again_grades_nothing_new(graded: dict, capsys: pytest.CaptureFixture) -> None:
    main(["--root", str(graded["course"]), "grade"])
    out = capsys.readouterr().out
    assert "graded 0 student(s)" in out
    assert grading.scores(graded["course"]) == graded["scores"]


def test_interrupted_grading_finishes_on_the_next_run(tmp_path: Path) -> None:
    for name in ("nbgrader_config.py", "solutions", "notebooks"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp_path / name)
    for student in ("a", "b", "c"):
        folder = tmp_path / "submitted" / student / "ch01"
        folder.mkdir(parents=True)
        nbformat.write(submission({}), folder / NOTEBOOK)

    def interrupt(done: int, total: int, failures: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grading.grade(tmp_path, grading.Options(workers=1), interrupt)
    first = grading.scores(tmp_path)
    assert len([s for s in first if total({"scores": first}, s) == FULL]) == 1
    marked = sorted(p.stem for p in (tmp_path / ".dlcourse" / "graded").glob("*.json"))
    assert len(marked) == 1
    summary = grading.grade(tmp_path, grading.Options(workers=2))
    assert sorted(summary.graded) == sorted({"a", "b", "c"} - set(marked))
    assert all(total({"scores": grading.scores(tmp_path)}, s) == FULL for s in "abc")
    assert json.loads((tmp_path / ".dlcourse" / "graded" / "a.json").read_text())


def test_a_notebook_that_keeps_killing_its_kernel_costs_only_itself(tmp_path: Path) -> None:
    """More deaths than the executor restarts the kernel for: nbgrader gives up
    on that notebook; the student's other notebooks keep their points."""
    for name in ("nbgrader_config.py", "solutions", "notebooks"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp_path / name)
    folder = tmp_path / "submitted" / "dies" / "ch01"
    folder.mkdir(parents=True)
    for path in sorted((ROOT / "notebooks" / "ch01").glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = (
                    "import os\nos._exit(1)" if path.name == NOTEBOOK else ANSWERS[grade_id]
                )
        nbformat.write(nb, folder / path.name)
    summary = grading.grade(tmp_path, grading.Options(workers=1, timeout=20))
    got = grading.scores(tmp_path)["dies"]
    assert len(got) == 14 and sum(got.values()) == 32 - FULL  # 1.1 and 1.3 in full, 1.2 lost
    problems = summary.problems["dies"]
    assert problems and all(p.startswith(f"{NOTEBOOK}: ") for p in problems), problems
    assert any("kernel died" in p for p in problems), problems


def test_refuses_without_a_sandbox_unless_unsafe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "unavailable", lambda: "no namespaces here")
    with pytest.raises(grading.GradingError, match=r"no namespaces here.*--unsafe"):
        grading.grade(ROOT, grading.Options())
