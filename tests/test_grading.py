"""`dlcourse grade` end to end on a class of adversarial submissions.

Every student hands in section 1.2's notebook (nine exercises, 20 points;
the two other notebooks are missing, which is recorded and scores 0), with
Appendix A's answers and one twist. The whole class is graded once, with two
workers, through the command line; each test then checks one student.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbconvert.filters import markdown2html
from nbgrader.api import Gradebook

from dlcourse.course import appendix, grading
from dlcourse.course.cli import main
from dlcourse.course.grading import intake, sandbox
from dlcourse.course.layout import CONFIG, Layout

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
FULL = 20.0
LOSE_ONE = 18.0  # chain_rule lost (2 points), the eight other exercises kept

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


# every way a cell can start a process; SPAWNED names those that did
SPAWNS = """import ctypes, multiprocessing, os, subprocess
SPAWNED = []
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, start):
    try:
        pid = start()
    except OSError:
        return
    if pid == 0:
        os._exit(0)
    if pid is None or pid > 0:
        SPAWNED.append(name)
        if pid:
            os.waitpid(pid, 0)
attempt("fork", os.fork)
attempt("libc fork", libc.fork)
attempt("clone", lambda: libc.syscall({"x86_64": 56, "aarch64": 220}[os.uname().machine],
                                      17, 0, 0, 0, 0))
attempt("subprocess", lambda: subprocess.run(["true"], check=True) and None)
attempt("posix_spawn", lambda: os.posix_spawnp("true", ["true"], {}))
attempt("system", lambda: None if os.system("true") == 0 else -1)
attempt("multiprocessing", lambda: multiprocessing.Process(target=int).start())
"""

# memory a kernel can hold without mapping it; HELD names what it got
HOARDS = """import ctypes, os
HELD = []
libc = ctypes.CDLL(None, use_errno=True)
try:
    os.write(os.memfd_create("hoard"), b"x" * 1024)
    HELD.append("memfd")
except OSError:
    pass
if libc.shmget(0, 1 << 20, 0o1600) >= 0:
    HELD.append("System V shared memory")
if libc.msgget(0, 0o1600) >= 0:
    HELD.append("System V message queue")
import resource, socket
ends = socket.socketpair()
try:
    ends[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 24)
    HELD.append("grown socket buffers")
except OSError:
    pass
if resource.getrlimit(resource.RLIMIT_NOFILE)[1] > 256:
    HELD.append("more files, so more sockets")
"""


def catalogue(course: Path, port: int) -> dict[str, tuple[dict[str, str], float]]:
    """student -> (answer cell -> code, expected score)."""
    solutions = str(Layout(course).solutions / NOTEBOOK)
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
        # output past the limit is dropped: the grader's memory, disk and the feedback are safe
        "output": (
            {
                "chain_rule": "from IPython.display import display\nfor _ in range(20):\n"
                "    print('x' * 100_000)\nfor _ in range(300):\n"
                "    display({'text/plain': 'y' * 10_000}, raw=True)\n" + CORRECT
            },
            FULL,
        ),
        "monkeypatch": (
            {
                "chain_rule": "np.allclose = lambda *a, **k: True\n"
                "import dlcourse.testing\n"
                "dlcourse.testing.assert_close = lambda *a, **k: None\n" + WRONG
            },
            LOSE_ONE,
        ),
        "solutions": ({"chain_rule": if_readable(solutions)}, LOSE_ONE),
        # the repository's history holds the solutions too; the kernel sees none of it
        "git": (
            {"chain_rule": if_any_readable([str(ROOT / ".git" / "HEAD"), str(course / CONFIG)])},
            LOSE_ONE,
        ),
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
        # children would each get an address-space limit of their own: none may start
        "children": (
            {"chain_rule": SPAWNS + CORRECT + "\nif not SPAWNED:\n" + indented(WRONG)},
            LOSE_ONE,
        ),
        # memory outside the address space, which its limit would not count
        "hoard": (
            {"chain_rule": HOARDS + CORRECT + "\nif not HELD:\n" + indented(WRONG)},
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
        # what a kernel writes is its own: it works, and is gone after grading
        "writer": ({"chain_rule": WRITES + CORRECT + "\nif not WROTE:\n" + indented(WRONG)}, FULL),
        # a process left running, in a session of its own, would die with the kernel;
        # it cannot start ("children"), and the attempt costs nothing
        "daemon": (
            {
                "chain_rule": "import subprocess\ntry:\n    subprocess.Popen(['sleep', '600'], "
                "start_new_session=True)\nexcept OSError:\n    pass\n" + CORRECT
            },
            FULL,
        ),
        # right values, from the library's numerical derivative: points kept, a human told
        "engine": (
            {
                "chain_rule": "def chain_rule(f_prime, g, g_prime):\n"
                "    def derivative(x):\n"
                "        x = np.array(x, dtype=float)\n"
                "        return f_prime(g(x)) * numerical_grad(lambda u: np.sum(g(u)), x)\n"
                "    return derivative\n"
            },
            FULL,
        ),
        # markdown and outputs that would run in the instructor's browser
        "xss": ({"chain_rule": XSS + CORRECT}, FULL),
    }


MARK = "dlcourse-private-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
PRIVATE_FILES = [f"/tmp/{MARK}", f"/var/tmp/{MARK}", f"/dev/shm/{MARK}", f"{MARK}.txt"]
WRITES = (
    "import os\nWROTE = True\n"
    f"for path in {PRIVATE_FILES!r}:\n"
    "    try:\n        open(path, 'w').write('secret')\n"
    "    except OSError:\n        WROTE = False\n"
    "os.symlink('/etc/passwd', 'linked.ipynb')\n"
)
XSS = (
    "from IPython.display import HTML, Javascript, display\n"
    "display(HTML('<img src=x onerror=\"window.top.__xss=1\">'\n"
    "             '<script>window.top.__xss=1</script>'))\n"
    "display(Javascript('window.top.__xss = 1'))\n"
)


def problems_printed(out: str) -> dict[str, str]:
    """student -> the problems `dlcourse grade` printed for them, joined."""
    found: dict[str, list[str]] = {}
    for line in out.split("\nproblems:\n", 1)[-1].splitlines():
        student, _, problem = line.strip().partition(": ")
        found.setdefault(student, []).append(problem)
    return {student: " | ".join(problems) for student, problems in found.items()}


def if_any_readable(paths: list[str]) -> str:
    """chain_rule is right only if the student's code could read one of ``paths``."""
    return (
        f"CHEAT = False\nfor path in {paths!r}:\n"
        "    try:\n        open(path).read(1)\n        CHEAT = True\n"
        "    except OSError:\n        pass\n" + CORRECT + "\nif not CHEAT:\n" + indented(WRONG)
    )


def indented(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _test_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_chain_rule"
    )


def submission(code: dict[str, str], edit_test: str = "") -> nbformat.NotebookNode:
    nb = nbformat.read(Layout(ROOT).release / NOTEBOOK, 4)
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
    elif edit_test in ("setup last", "setup dropped"):
        # the setup cell moved after the tests (merging refused, by more grade ids than the
        # release has) or dropped, and a copy of it of the student's that rebinds the checks
        setup = next(c for c in nb.cells if grade_id(c) == "setup")
        nb.cells.remove(setup)
        rebound = "\nassert_close = lambda *a, **k: None\nclass CheckError(Exception): pass\n"
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup.source + rebound))
        if edit_test == "setup last":
            nb.cells.append(setup)
            for i in range(len(nb.cells)):
                fake = nbformat.v4.new_markdown_cell("x")
                fake.metadata["nbgrader"] = {"grade_id": f"fake{i}", "locked": True}
                nb.cells.append(fake)
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
        folder = Layout(course).submitted(student)
        folder.mkdir(parents=True)
        nbformat.write(submission(code), folder / NOTEBOOK)
    for student, how in [
        ("edited", "edit"),
        ("deleted", "delete"),
        ("metadata", "metadata"),
        ("claim", "claim"),
        ("setuplast", "setup last"),
        ("nosetup", "setup dropped"),
    ]:
        folder = Layout(course).submitted(student)
        folder.mkdir(parents=True)
        nbformat.write(submission({"chain_rule": WRONG}, how), folder / NOTEBOOK)
        students[student] = ({}, LOSE_ONE)
    with_markdown = submission(students["xss"][0])
    with_markdown.cells.append(nbformat.v4.new_markdown_cell(
        "<script>window.top.__xss = 1</script>[x](javascript:window.top.__xss=1)"
    ))  # fmt: skip
    nbformat.write(with_markdown, Layout(course).submitted("xss") / NOTEBOOK)
    bad = {
        "corrupt": nbformat.writes(submission({}))[:500].encode(),
        "foreign": nbformat.writes(nbformat.v4.new_notebook()).encode(),
        "binary": b"\xff\xfe\x00 not a notebook",
        "huge": nbformat.writes(
            submission({"chain_rule": CORRECT + "\n# " + "x" * intake.MAX_NOTEBOOK_BYTES})
        ).encode(),
        "deep": b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        "manycells": json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "id": f"c{i}",
                        "metadata": {},
                        "source": "1",
                        "outputs": [],
                        "execution_count": None,
                    }
                    for i in range(100_000)
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        ).encode(),
    }
    for student, data in bad.items():
        folder = Layout(course).submitted(student)
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_bytes(data)
        students[student] = ({}, 0.0)
    # an honest notebook with 12 MB of stored figures: grading remakes outputs
    figures = submission({})
    png = base64.b64encode(os.urandom(3 * 2**20)).decode()
    for cell in [c for c in figures.cells if c.cell_type == "code"][:3]:
        cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    folder = Layout(course).submitted("figures")
    folder.mkdir(parents=True)
    nbformat.write(figures, folder / NOTEBOOK)
    students["figures"] = ({}, FULL)
    # links, to anything, are refused and never followed
    for student, target in [
        ("symlink", Layout(course).solutions / NOTEBOOK),
        ("dangling", course / "nowhere.ipynb"),
    ]:
        folder = Layout(course).submitted(student)
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).symlink_to(target)
        students[student] = ({}, 0.0)
    elsewhere = course / "elsewhere.ipynb"
    nbformat.write(submission({}), elsewhere)
    folder = Layout(course).submitted("hardlink")
    folder.mkdir(parents=True)
    os.link(elsewhere, folder / NOTEBOOK)
    students["hardlink"] = ({}, 0.0)
    (course / "submitted" / "linkedfolder").mkdir()
    (Layout(course).submitted("linkedfolder")).symlink_to(Layout(course).submitted("honest"))
    students["linkedfolder"] = ({}, 0.0)
    (Layout(course).submitted("empty")).mkdir(parents=True)
    (Layout(course).submitted("notes")).mkdir(parents=True)
    (Layout(course).submitted("notes") / "notes.txt").write_text("my notes")
    students["empty"] = students["notes"] = ({}, 0.0)
    before = {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (course / "submitted").rglob("*")
        if p.is_file() and not p.is_symlink() and "linkedfolder" not in p.parts
    }
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        command = ["--root", str(course), "grade", "--workers", "2", "--timeout", "10"]
        assert main([*command, "--memory", "1500"]) == 0
    listener.close()
    return {
        "course": course,
        "problems": problems_printed(out.getvalue()),
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
        "git",
        "gradebook",
        "network",
        "forkbomb",
        "children",
        "hoard",
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
        "setuplast",
        "nosetup",
        "corrupt",
        "foreign",
        "binary",
        "huge",
        "deep",
        "manycells",
        "empty",
        "notes",
        "writer",
        "daemon",
        "engine",
        "xss",
        "figures",
        "symlink",
        "dangling",
        "hardlink",
        "linkedfolder",
    ],
)
def test_each_student_gets_what_their_answers_are_worth(graded: dict, student: str) -> None:
    expected = graded["students"][student][1]
    assert total(graded, student) == expected, graded["problems"].get(student)


def test_every_grade_is_in_the_gradebook_once_and_matches_grades_csv(graded: dict) -> None:
    course = graded["course"]
    with open(course / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["student_id"] for r in rows) == sorted(graded["students"])
    for row in rows:
        assert float(row["score"]) == total(graded, row["student_id"])
    assert all(len(cells) == 19 for cells in graded["scores"].values())


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
    assert re.search(r"huge: 02_chain_rule\.ipynb is 5\.\d MB, over the 5 MB limit", out)
    assert "01_deep_learning.ipynb is missing" in out


def test_output_past_the_limit_is_dropped_with_a_note(graded: dict) -> None:
    course = graded["course"]
    path = Layout(course).autograded("output") / NOTEBOOK
    assert path.stat().st_size < 1_300_000  # of about 5 MB printed
    outputs = [o for c in nbformat.read(path, 4).cells if c.cell_type == "code" for o in c.outputs]
    note = "output past 1,000,000 bytes per notebook was not kept"
    assert sum(note in o.get("text", "") for o in outputs) == 1
    assert (Layout(course).feedback("output") / "02_chain_rule.html").stat().st_size < 2_000_000
    assert "output passed 1,000,000 bytes; what came after was not kept" in (
        graded["problems"]["output"]
    )


def test_feedback_hides_the_hidden_tests(graded: dict) -> None:
    feedback = Layout(graded["course"]).feedback("honest") / "02_chain_rule.html"
    html = feedback.read_text()
    assert "BEGIN HIDDEN TESTS" not in html and "rng = np.random.default_rng(1203)" not in html
    assert "chain_rule: visible tests passed" in html
    failing = Layout(graded["course"]).feedback("partial") / NOTEBOOK.replace(".ipynb", ".html")
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


def test_links_are_refused_and_never_followed(graded: dict) -> None:
    problems = graded["problems"]
    assert "02_chain_rule.ipynb is a symbolic link; links are never followed" in problems["symlink"]
    assert "is a symbolic link" in problems["dangling"]
    assert "hard link" in problems["hardlink"]
    assert "submitted/linkedfolder/ch01 is a symbolic link" in problems["linkedfolder"]


def test_malformed_json_costs_only_that_notebook(graded: dict) -> None:
    assert "levels deep" in graded["problems"]["deep"]
    assert "cells" in graded["problems"]["manycells"]


def test_stored_outputs_are_not_held_against_the_student(graded: dict) -> None:
    assert "MB" not in graded["problems"].get("figures", "")


def test_what_a_kernel_writes_is_private_and_gone_after_grading(graded: dict) -> None:
    course = graded["course"]
    for path in PRIVATE_FILES[:3]:
        assert not Path(path).exists(), path
    assert not list(course.rglob(PRIVATE_FILES[3])) and not list(course.rglob("linked.ipynb"))
    assert [p.name for p in (Layout(course).autograded("writer")).iterdir()] == [NOTEBOOK]
    assert [p.name for p in (Layout(course).feedback("writer")).iterdir()] == [
        NOTEBOOK.replace(".ipynb", ".html")
    ]


def _elsewhere(grader: int) -> bool:
    """Whether process ``grader`` lives, and is neither this process nor one of its own."""
    ancestor = grader
    try:
        while ancestor > 1 and ancestor != os.getpid():
            stat_line = Path(f"/proc/{ancestor}/stat").read_text()
            ancestor = int(stat_line.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):  # gone: its kernels are left over
        return False
    return grader > 0 and ancestor != os.getpid()


def _kernels_left() -> tuple[list[int], list[str]]:
    """Kernel processes and runtime folders, but those of a kernel whose grader
    lives and is not this process or one of its own (pytest-xdist grades in
    other test processes side by side, with the same users)."""
    others, ours = set(), []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError):
            uid = next(int(line.split()[1]) for line in status.read_text().splitlines()
                       if line.startswith("Uid:"))  # fmt: skip
            if uid not in sandbox.KERNEL_UIDS:
                continue
            environ = (status.parent / "environ").read_bytes().split(b"\0")
            grader = next((int(e[15:]) for e in environ if e.startswith(b"JPY_PARENT_PID=")), 0)
            if _elsewhere(grader):
                others.add(uid)
            else:
                ours.append(int(status.parent.name))
    folders = [p.name for p in sandbox.RUNTIME.iterdir()
               if p.name != "users" and p.stat().st_uid not in others]  # fmt: skip
    return ours, folders


def test_no_process_or_runtime_folder_of_a_student_outlives_grading(graded: dict) -> None:
    for _ in range(20):  # a kernel graded elsewhere may be between its folder and its process
        left = _kernels_left()
        if left == ([], []):
            break
        time.sleep(0.5)
    assert left == ([], [])


def test_a_gradient_the_library_computed_is_marked_for_manual_grading(graded: dict) -> None:
    with Gradebook(f"sqlite:///{graded['course'] / 'gradebook.db'}") as gb:
        notebook = gb.find_submission_notebook("02_chain_rule", "ch01", "engine")
        grades = {g.name: g for g in notebook.grades}
        comments = {c.name: c for c in notebook.comments}
        assert grades["test_chain_rule"].needs_manual_grade
        assert not grades["test_chain_derivative"].needs_manual_grade
        assert "uses numerical_grad" in comments["chain_rule"].auto_comment
        honest = gb.find_submission_notebook("02_chain_rule", "ch01", "honest")
        assert not any(g.needs_manual_grade for g in honest.grades)
    assert "test_chain_rule needs manual grading" in graded["problems"]["engine"]


def scripts_in(html: str) -> list[str]:
    """What in ``html`` would run the page's script: script elements, event
    handler attributes, javascript: links."""
    page = BeautifulSoup(html, "html.parser")
    found = [str(s)[:80] for s in page.find_all("script") if "__xss" in s.get_text()]
    for tag in page.find_all(True):
        found += [
            f"{tag.name} {k}" for k, v in tag.attrs.items() if k.startswith("on") and "__xss" in v
        ]
        if str(tag.get("href", "")).strip().lower().startswith("javascript:"):
            found.append(f"{tag.name} href")
    return found


def test_student_html_is_inert_in_what_the_instructor_and_student_open(graded: dict) -> None:
    course = graded["course"]
    nb = nbformat.read(Layout(course).autograded("xss") / NOTEBOOK, 4)
    for cell in nb.cells:  # what the student's code made, and what they wrote
        for output in cell.get("outputs", []):
            assert "application/javascript" not in output.get("data", {})
            assert scripts_in(output.get("data", {}).get("text/html", "")) == []
        if cell.cell_type == "markdown":
            assert scripts_in(markdown2html(cell.source)) == []
    feedback = Layout(course).feedback("xss") / NOTEBOOK.replace(".ipynb", ".html")
    assert scripts_in(feedback.read_text()) == []
    assert "sanitised" in graded["problems"]["xss"] or "removed" in graded["problems"]["xss"]


def test_a_later_kernel_cannot_read_what_an_earlier_one_wrote(graded: dict) -> None:
    course = graded["course"]
    code = if_any_readable(PRIVATE_FILES)
    folder = Layout(course).submitted("reader")
    folder.mkdir(parents=True)
    nbformat.write(submission({"chain_rule": code}), folder / NOTEBOOK)
    main(["--root", str(course), "grade", "--student", "reader"])
    assert total({"scores": grading.scores(course)}, "reader") == LOSE_ONE


def test_a_restarted_kernel_leaves_the_notebook_as_submitted(graded: dict) -> None:
    """The cells run again after a kernel died are not written over others."""
    course = graded["course"]
    for student in ("crash", "exit", "memory", "forkbomb"):
        submitted = nbformat.read(Layout(course).submitted(student) / NOTEBOOK, 4)
        autograded = nbformat.read(Layout(course).autograded(student) / NOTEBOOK, 4)
        assert [c.id for c in autograded.cells] == [c.id for c in submitted.cells], student
        assert [c.source for c in autograded.cells[:3]] == [c.source for c in submitted.cells[:3]]
