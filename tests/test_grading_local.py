"""Grading's logic that needs no root: it runs everywhere.

Resuming, one notebook's failure costing only itself, the refusal to grade
unconfined without --unsafe, the ledger and the events: kernels are
confined where the sandbox can be set up and run with --unsafe where it
cannot, which changes nothing these tests look at. (The adversarial
catalogue, which needs the sandbox, is tests/test_grading.py.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from fixtures.correct_answers import ALTERNATIVES
from fixtures.students import submissions, write_class
from fixtures.wrong_answers import WRONG_ANSWERS
from hypothesis import given
from hypothesis import strategies as st
from nbclient.client import _RGX_CARRIAGERETURN
from nbgrader.api import Gradebook

from dlcourse.course import appendix, grading
from dlcourse.course.cli import main
from dlcourse.course.grading import dispatch, events, kernels, run, sandbox, worker
from dlcourse.course.grading.executor import ConfinedExecute, merge_streams
from dlcourse.course.grading.ledger import Ledger
from dlcourse.course.layout import ASSIGNMENT, CONFIG, RELEASE, SOURCE, Layout

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_chain_rule.ipynb"
BACKPROP = "03_backpropagation.ipynb"
ANSWERS = {a.grade_id: a.code for a in appendix.answers(ROOT)}
FULL = 20.0  # section 1.2's nine exercises
UNSAFE = sandbox.unavailable() is not None


def course(into: Path) -> Layout:
    into.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, SOURCE, RELEASE):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, into / name)
    return Layout.of(into)


def answered(path: Path, code: dict[str, str] | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(path, 4)
    for cell in nb.cells:
        info = cell.metadata.get("nbgrader", {})
        if info.get("solution"):
            cell.source = (code or {}).get(info["grade_id"], ANSWERS[info["grade_id"]])
    return nb


def total(root: Path, student: str) -> float:
    return sum(score or 0 for score in grading.scores(root)[student].values())


@pytest.mark.slow
def test_interrupted_grading_finishes_on_the_next_run(tmp_path: Path) -> None:
    layout = course(tmp_path)
    for student in ("a", "b", "c"):
        layout.submitted(student).mkdir(parents=True)
        nbformat.write(answered(layout.release / NOTEBOOK), layout.submitted(student) / NOTEBOOK)

    def interrupt(done: int, total: int, failures: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grading.grade(tmp_path, grading.Options(workers=1, unsafe=UNSAFE), interrupt)
    assert [s for s in grading.scores(tmp_path) if total(tmp_path, s) == FULL] != [], (
        grading.scores(tmp_path)
    )
    marked = sorted(p.stem for p in layout.markers.glob("*.json"))
    assert len(marked) == 1
    summary = grading.grade(tmp_path, grading.Options(workers=2, unsafe=UNSAFE))
    assert sorted(summary.graded) == sorted({"a", "b", "c"} - set(marked))
    assert all(total(tmp_path, s) == FULL for s in "abc")
    assert json.loads((layout.markers / "a.json").read_text())


@pytest.mark.slow
def test_a_notebook_that_keeps_killing_its_kernel_costs_only_itself(tmp_path: Path) -> None:
    """More deaths than the executor restarts the kernel for: nbgrader gives up
    on that notebook; the student's other notebooks keep their points."""
    layout = course(tmp_path)
    layout.submitted("dies").mkdir(parents=True)
    for path in layout.released_notebooks():
        every_answer_dies = {
            cell.metadata["nbgrader"]["grade_id"]: "import os\nos._exit(1)"
            for cell in nbformat.read(path, 4).cells
            if cell.metadata.get("nbgrader", {}).get("solution") and path.name == NOTEBOOK
        }
        nbformat.write(answered(path, every_answer_dies), layout.submitted("dies") / path.name)
    summary = grading.grade(tmp_path, grading.Options(workers=1, timeout=20, unsafe=UNSAFE))
    got = grading.scores(tmp_path)["dies"]
    problems = summary.problems["dies"]
    assert len(got) == 19 and sum(got.values()) == 44 - FULL, problems  # 1.2 lost, not 1.1, 1.3
    assert problems and all(p.startswith(f"{NOTEBOOK}: ") for p in problems), problems
    assert any("kernel died" in p for p in problems), problems


@pytest.mark.slow
def test_a_gradient_is_judged_by_its_cost_and_the_engine_by_a_human(tmp_path: Path) -> None:
    """Point 5 of issue 12 through ``dlcourse grade``, on section 1.3: central
    differences of the answer's own forward pass lose linear_backward's
    points to the cost check, with its hint; an answer that calls the
    library's engine keeps them and is marked for manual grading; answers
    that return objects whose len() is right and whose iteration yields
    nothing lose theirs (the grader sees a proxy, never a list); the
    reference answers get full marks."""
    layout = course(tmp_path)
    old, new = next(
        (o, n) for _, what, o, n in WRONG_ANSWERS if what.startswith("gradients by central")
    )
    engine = next(code for _, what, code in ALTERNATIVES if what.startswith("the library's engine"))
    liar = {  # objects whose len() is right and whose iteration yields nothing
        grade_id: ANSWERS[grade_id].replace(o, n)
        for grade_id, what, o, n in WRONG_ANSWERS
        if what.endswith("in an object whose len() is right")
    }
    assert set(liar) == {"mlp_loss_and_grads", "sgd_step"}
    students = {
        "honest": {},
        "numerical": {"linear_backward": ANSWERS["linear_backward"].replace(old, new)},
        "engine": {"linear_backward": engine},
        "liar": liar,
    }
    for student, code in students.items():
        layout.submitted(student).mkdir(parents=True)
        submission = answered(layout.release / BACKPROP, code)
        nbformat.write(submission, layout.submitted(student) / BACKPROP)
    summary = grading.grade(tmp_path, grading.Options(workers=2, unsafe=UNSAFE))
    got = grading.scores(tmp_path)
    assert sum(got["honest"].values()) == sum(got["engine"].values()) == 17, summary.problems
    assert got["numerical"]["test_linear_backward"] == 0
    assert sum(got["numerical"].values()) == 17 - 3, summary.problems
    assert got["liar"]["test_mlp_loss_and_grads"] == got["liar"]["test_sgd_step"] == 0
    assert sum(got["liar"].values()) == 17 - 4 - 1, summary.problems
    graded = nbformat.read(layout.autograded("numerical") / BACKPROP, 4)
    cell = next(
        c for c in graded.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_linear_backward"
    )  # fmt: skip
    error = next(o for o in cell.outputs if o.output_type == "error")
    assert "central differences cost two forward passes" in error.evalue, error.evalue
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        for student in students:
            notebook = gb.find_submission_notebook(BACKPROP[:-6], ASSIGNMENT, student)
            manual = {g.name for g in notebook.grades if g.needs_manual_grade}
            assert manual == ({"test_linear_backward"} if student == "engine" else set()), student


@pytest.mark.slow
def test_dlcourse_grade_scores_the_whole_class_as_plain_nbgrader_does(tmp_path: Path) -> None:
    """Every correct answer (Appendix A's, the other ones, each alternative,
    work begun in an earlier release) gets full marks, and each typical
    mistake costs its exercise and nothing else, through the confined grader
    as through plain nbgrader (tests/test_notebooks.py): the channel between
    the tests and the kernel must fail nothing that plain Python accepts."""
    layout = course(tmp_path)
    write_class(layout.released_notebooks(), layout.submitted)
    summary = grading.grade(tmp_path, grading.Options(workers=2, unsafe=UNSAFE))
    students = submissions()
    assert sorted(summary.graded) == sorted(students), summary.problems
    wrong = []
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        for student, (_, mistakes) in students.items():
            for name in [p.stem for p in layout.released_notebooks()]:
                for grade in gb.find_submission_notebook(name, ASSIGNMENT, student).grades:
                    exercise = grade.name.removeprefix("test_")
                    deserved = 0 if exercise in mistakes else grade.max_score
                    if grade.score != deserved:
                        why = mistakes.get(exercise, "a correct answer")
                        wrong.append(f"{student} {grade.name}: {grade.score} ({why})")
    assert not wrong, "\n".join(wrong + [f"{s}: {p}" for s, p in summary.problems.items()])


def test_refuses_without_a_sandbox_unless_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "unavailable", lambda: "no namespaces here")
    with pytest.raises(grading.GradingError, match=r"no namespaces here.*--unsafe"):
        grading.grade(ROOT, grading.Options())


def test_events_travel_as_json_lines_and_read_back(tmp_path: Path) -> None:
    log = events.EventLog(tmp_path / "nb.events", NOTEBOOK)
    log.report(events.CELL_FAILED, 17, "the kernel died (exit status 3)")
    log.report(events.OUT_OF_TIME, 20, "the notebook ran over its 900 s limit")
    read = events.read_events(tmp_path / "nb.events")
    assert [e.kind for e in read] == [events.CELL_FAILED, events.OUT_OF_TIME]
    assert read[0].message() == (
        f"{NOTEBOOK}: cell 17: the kernel died (exit status 3); that cell was skipped"
    )
    assert events.read_events(tmp_path / "none.events") == []
    with pytest.raises(ValueError, match="unknown event kind"):
        log.report("made_up", None, "")


def test_the_ledger_writes_whole_files_and_replaces_links(tmp_path: Path) -> None:
    layout = course(tmp_path)
    shutil.copy2(run.template(layout), layout.gradebook)
    secret = tmp_path / "secret.txt"
    secret.write_text("the instructor's")
    layout.autograded("zoe").mkdir(parents=True)
    (layout.autograded("zoe") / NOTEBOOK).symlink_to(secret)  # someone's trap
    graded = events.NotebookResult({"test_chain_rule": (2.0, 2.0)}, "{}", "<html></html>")
    result = events.TaskResult("zoe", {NOTEBOOK: graded}, review={"test_chain_rule": "look"})
    ledger = Ledger(layout)
    ledger.merge(result, [p.name for p in layout.released_notebooks()])
    assert secret.read_text() == "the instructor's"
    assert not (layout.autograded("zoe") / NOTEBOOK).is_symlink()
    assert (layout.autograded("zoe") / NOTEBOOK).read_text() == "{}"
    assert (layout.feedback("zoe") / "02_chain_rule.html").read_text() == "<html></html>"
    scores = ledger.scores()["zoe"]
    assert scores["test_chain_rule"] == 2.0 and scores["test_dense"] == 0.0  # not graded: 0
    ledger.mark("zoe", {NOTEBOOK: "abc"})
    assert ledger.marker("zoe") == {NOTEBOOK: "abc"} and ledger.marker("yan") is None


@pytest.mark.slow
def test_lms_downloads_file_only_what_is_safe_and_grade_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`dlcourse grade --from-downloads`: an honest archive is filed and graded;
    archives escaping their folder, holding a link or a bomb are refused, and
    nothing is written outside submitted/."""
    from test_intake import ZIP_BOMBS

    layout = course(tmp_path / "course")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    honest = nbformat.writes(answered(layout.release / NOTEBOOK)).encode()
    with zipfile.ZipFile(downloads / "ann.zip", "w") as archive:
        archive.writestr(f"work/{NOTEBOOK}", honest)
    with zipfile.ZipFile(downloads / "ben.zip", "w") as archive:
        archive.writestr(f"../../{NOTEBOOK}", honest)
    with zipfile.ZipFile(downloads / "cat.zip", "w") as archive:
        link = zipfile.ZipInfo(NOTEBOOK)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    (downloads / "dan.zip").write_bytes(ZIP_BOMBS["declaring its 2 GB"][0])
    before = {p for p in tmp_path.rglob("*") if "submitted" not in p.parts}
    command = ["--root", str(layout.root), "grade", "--from-downloads", str(downloads)]
    assert main(command + (["--unsafe"] if UNSAFE else [])) == 0
    out = capsys.readouterr().out
    assert f"filed submitted/ann/ch01/{NOTEBOOK}" in out
    for student in ("ben", "cat", "dan"):
        assert f"not filed: {student}.zip: " in out
        assert not layout.submitted(student).exists()
    written = {p for p in tmp_path.rglob("*") if "submitted" not in p.parts} - before
    assert all(layout.root in p.parents for p in written)  # the course's own results only
    assert not any(p.name == NOTEBOOK for p in written if "autograded" not in p.parts)
    assert total(layout.root, "ann") == FULL


def test_a_timestamp_nbgrader_cannot_read_is_taken_as_unknown(tmp_path: Path) -> None:
    from dlcourse.course.grading import intake

    layout = course(tmp_path)
    layout.submitted("zoe").mkdir(parents=True)
    nbformat.write(answered(layout.release / NOTEBOOK), layout.submitted("zoe") / NOTEBOOK)
    expected = intake.expected_notebooks(layout.release)
    for text, kept in [("2026-12-01 10:00:00.000000 UTC", True), ("next tuesday-ish", False)]:
        (layout.submitted("zoe") / "timestamp.txt").write_text(text)
        found = intake.read_submission(layout.submitted_root, "zoe", "ch01", expected)
        assert (found.timestamp == text) is kept
        assert kept or any("not a timestamp" in p for p in found.problems)
        assert NOTEBOOK in found.notebooks


def test_nbgrader_metadata_of_any_shape_is_restored_from_the_release() -> None:
    from dlcourse.course.grading.worker import restore_metadata

    released = nbformat.read(Layout.of(ROOT).release / NOTEBOOK, 4)
    nb = answered(Layout.of(ROOT).release / NOTEBOOK)
    nb.cells[0].metadata["nbgrader"] = "x"
    nb.cells[1].metadata["nbgrader"] = {"grade_id": ["a", "list"]}
    restore_metadata(nb, released)
    assert "nbgrader" not in nb.cells[0].metadata and "nbgrader" not in nb.cells[1].metadata


class KillsItsWorker:
    """A task's argument that ends the worker process unpickling it."""

    def __reduce__(self) -> tuple:
        return (os._exit, (1,))


@pytest.mark.slow
def test_a_worker_process_that_dies_costs_only_its_own_student(tmp_path: Path) -> None:
    """The student graded beside the one whose worker died is graded again
    alone, and in full; only the one that kills a worker by itself is reported."""
    layout = course(tmp_path)
    honest = nbformat.writes(answered(layout.release / NOTEBOOK)).encode()
    tasks = [events.Task(s, {NOTEBOOK: honest}) for s in ("ann", "ben", "cat")]
    tasks.insert(1, events.Task("killer", {NOTEBOOK: KillsItsWorker()}))  # beside ann
    outcome = graded_by_two_workers(run.bundle(layout, grading.Options(unsafe=UNSAFE)), tasks)
    assert outcome["killer"][0] is None
    assert "its process died, grading it alone" in outcome["killer"][1]
    assert_full_marks(outcome, ["ann", "ben", "cat"])


def graded_by_two_workers(
    bundle: events.Bundle, tasks: list[events.Task]
) -> dict[str, tuple[events.TaskResult | None, str]]:
    """student -> (result, problem), as a pool of two local workers gave them,
    each student once."""
    reported: list[tuple[str, events.TaskResult | None, str]] = []
    workers = dispatch.LocalWorkers(2)
    try:
        workers.run(bundle, tasks, lambda t, got, why: reported.append((t.student, got, why)))
    finally:
        workers.close()
    assert sorted(student for student, _, _ in reported) == sorted(t.student for t in tasks)
    return {student: (got, why) for student, got, why in reported}


def assert_full_marks(outcome: dict, students: list[str]) -> None:
    for student in students:
        result, problem = outcome[student]
        assert problem == "" and result is not None and not result.retry, (student, problem)
        assert sum(s for s, _ in result.notebooks[NOTEBOOK].grades.values()) == FULL


# A step of nbgrader's that never ends for one student, as a library could stall on
# what a student wrote: a regular expression backtracking for 2**64 steps, in C
STALLS = """
import re
from nbgrader.converters import Autograde
from nbgrader.preprocessors import NbGraderPreprocessor

class Stall(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        if resources["nbgrader"]["student"] == "stalls":
            re.match(r"(a+)+$", "a" * 64 + "b")
        return nb, resources

c.Autograde.autograde_preprocessors = [*Autograde.autograde_preprocessors.default(), Stall]
"""


@pytest.mark.slow
def test_a_worker_stalled_past_the_grader_timeout_costs_only_its_own_student(
    tmp_path: Path,
) -> None:
    """The stalled worker ends itself and says for whom; that student is
    reported, and the one graded beside it, whose kernel is still busy then
    (for longer than the grader's limit, which its kernel's time is not
    charged to), is graded again, in full."""
    layout = course(tmp_path)
    nb = answered(layout.release / NOTEBOOK)
    honest = nbformat.writes(nb).encode()
    nb.cells.insert(1, nbformat.v4.new_code_cell("import time\ntime.sleep(25)"))
    slow = nbformat.writes(nb).encode()
    tasks = [events.Task("stalls", {NOTEBOOK: honest}), events.Task("ann", {NOTEBOOK: slow})]
    tasks += [events.Task(s, {NOTEBOOK: honest}) for s in ("ben", "cat")]
    shared = run.bundle(layout, grading.Options(unsafe=UNSAFE, grader_timeout=20))
    shared = dataclasses.replace(shared, config=shared.config + STALLS)
    outcome = graded_by_two_workers(shared, tasks)
    assert outcome["stalls"][0] is None
    assert "took longer than 20 s (--grader-timeout)" in outcome["stalls"][1]
    assert_full_marks(outcome, ["ann", "ben", "cat"])


class InProcess:
    """Workers for a test: each task graded in this process, so that what the
    test patches holds there."""

    def run(self, bundle: events.Bundle, tasks: list[events.Task], on_result: Callable) -> None:
        for task in tasks:
            on_result(task, worker.grade(bundle, task), "")


def test_a_kernel_the_grader_cannot_start_is_reported_and_graded_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = course(tmp_path)
    layout.submitted("zoe").mkdir(parents=True)
    nbformat.write(answered(layout.release / NOTEBOOK), layout.submitted("zoe") / NOTEBOOK)

    def no_room(self: kernels.Launcher) -> kernels.Kernel:
        raise RuntimeError("no kernel users free")

    monkeypatch.setattr(kernels.Launcher, "start", no_room)
    summary = run._grade(layout, grading.Options(unsafe=True), None, InProcess())
    assert summary.graded == [] and ledger_marker(layout, "zoe") is None
    said = " | ".join(summary.problems["zoe"])
    assert "no kernel could be started (RuntimeError: no kernel users free)" in said
    assert "not graded; run dlcourse grade again to retry" in said
    assert not any(p.startswith(NOTEBOOK) and "score 0" in p for p in summary.problems["zoe"])
    monkeypatch.undo()
    again = run._grade(layout, grading.Options(unsafe=True), None, InProcess())
    assert again.graded == ["zoe"] and total(layout.root, "zoe") == FULL


def ledger_marker(layout: Layout, student: str) -> dict | None:
    return Ledger(layout).marker(student)


def test_a_notebook_no_longer_graded_leaves_no_page_of_an_earlier_run(tmp_path: Path) -> None:
    layout = course(tmp_path)
    shutil.copy2(run.template(layout), layout.gradebook)
    names = [p.name for p in layout.released_notebooks()]
    graded = events.NotebookResult({"test_chain_rule": (2.0, 2.0)}, "{}", "<p>2 of 2</p>")
    ledger = Ledger(layout)
    ledger.merge(events.TaskResult("zoe", {NOTEBOOK: graded}), names)
    page = layout.feedback("zoe") / "02_chain_rule.html"
    assert page.exists() and (layout.autograded("zoe") / NOTEBOOK).exists()
    ledger.merge(events.TaskResult("zoe"), names)  # graded again: this notebook could not be
    assert not page.exists() and not (layout.autograded("zoe") / NOTEBOOK).exists()
    assert ledger.scores()["zoe"]["test_chain_rule"] == 0.0


def test_cells_run_again_after_a_restart_stop_at_the_notebooks_deadline(tmp_path: Path) -> None:
    executor = ConfinedExecute()
    executor.events = events.EventLog(tmp_path / "nb.events", NOTEBOOK)
    executor.nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1") for _ in "abc"])
    executor.resources, executor.done, executor.restarts = {}, [0, 1, 2], 0
    executor._stop_kernel = lambda: None  # type: ignore[method-assign]
    executor._start_kernel = lambda nb, resources: None  # type: ignore[method-assign]
    ran: list[int] = []
    executor.execute_cell = lambda cell, index, **kw: ran.append(index)  # type: ignore[method-assign]
    executor.deadline = time.monotonic() + 3600
    executor._restart(3)
    assert ran == [0, 1, 2]
    ran.clear()
    executor.deadline = time.monotonic() - 1  # used up: nothing more runs
    executor._restart(3)
    assert ran == []


def test_a_problem_is_one_printable_line_whatever_it_quotes() -> None:
    summary = run.Summary()
    summary.add_problem("zoe", "cell 'a\nyan: all good\x1b]0;owned\x07' failed; é kept")
    assert summary.problems["zoe"] == ["cell 'a\\nyan: all good\\x1b]0;owned\\x07' failed; é kept"]


def test_a_runtime_that_cannot_be_prepared_leaves_no_mount_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted: list[str] = []
    monkeypatch.setattr(sandbox, "RUNTIME", tmp_path / "run")
    monkeypatch.setattr(sandbox, "_mount", lambda _source, target, *_: mounted.append(target))
    monkeypatch.setattr(sandbox, "_umount", mounted.remove)
    with pytest.raises(FileNotFoundError):  # no font cache to copy: preparing it fails
        sandbox.make_runtime(os.getuid(), tmp_path / "missing", disk_mb=8)
    assert mounted == [] and list((tmp_path / "run").iterdir()) == []


def stream(name: str, text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name=name, text=text)


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.text("ab\r\n", max_size=12))))
def test_streams_merge_as_nbclients_merging_does(pieces: list[tuple[str, str]]) -> None:
    """The grader merges a cell's streams itself, in time linear in the text,
    as nbclient's merging (whose pattern is quadratic in a line's length) would."""
    merged = merge_streams([stream(name, text) for name, text in pieces])
    texts = {}
    for name, text in pieces:
        texts[name] = texts.get(name, "") + text
    assert {o.name: o.text for o in merged} == {
        name: _RGX_CARRIAGERETURN.sub("", text) for name, text in texts.items()
    }
    order = list(dict.fromkeys(name for name, _ in pieces))
    assert [o.name for o in merged] == sorted(order, key=lambda name: name != "stdout")


def test_outputs_other_than_streams_keep_their_place() -> None:
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<figure>"})
    merged = merge_streams([stream("stdout", "a\rb"), figure, stream("stdout", "c")])
    assert [o.output_type for o in merged] == ["stream", "display_data"]
    assert merged[0].text == "bc"
