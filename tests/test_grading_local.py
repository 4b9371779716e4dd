"""Grading's logic that needs no root: it runs everywhere.

Resuming, one notebook's failure costing only itself, the refusal to grade
unconfined without --unsafe, the ledger and the events: kernels are
confined where the sandbox can be set up and run with --unsafe where it
cannot, which changes nothing these tests look at. (The adversarial
catalogue, which needs the sandbox, is tests/test_grading.py.)
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import appendix, grading
from dlcourse.course.cli import main
from dlcourse.course.grading import events, run, sandbox
from dlcourse.course.grading.ledger import Ledger
from dlcourse.course.layout import CONFIG, RELEASE, SOURCE, Layout

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_chain_rule.ipynb"
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
