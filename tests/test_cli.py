"""The `dlcourse` command's learner-facing parts."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import appendix
from dlcourse.course.cli import answer_no_to_news, main
from dlcourse.course.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Layout(ROOT).release / "02_chain_rule.ipynb"


def test_check_on_the_unanswered_notebook(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(NOTEBOOK)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 9 and out.count("NotImplementedError: not answered yet") == 9
    assert "total                        0  of 20, if the hidden tests pass too" in out
    assert "Visible tests only: when your instructor grades, hidden tests" in out


def test_check_on_an_answered_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = {a.grade_id: a.code for a in appendix.answers(ROOT)}
    nb = nbformat.read(NOTEBOOK, 4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    answered = tmp_path / NOTEBOOK.name
    nbformat.write(nb, answered)
    before = answered.read_bytes()
    assert main(["check", str(answered)]) == 0
    out = capsys.readouterr().out
    assert "points  visible tests  message" in out
    assert out.count("  pass  ") == 9
    assert "total                       20  of 20, if the hidden tests pass too" in out
    assert answered.read_bytes() == before  # the learner's file is not touched


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="is not a file"):
        main(["check", str(tmp_path / "missing.ipynb")])
    with pytest.raises(SystemExit, match=r"has no nbgrader_config\.py"):
        main(["--root", str(tmp_path), "release"])
    with pytest.raises(SystemExit):
        main(["check", str(NOTEBOOK), "--bogus"])
    assert "unrecognised arguments: --bogus" in capsys.readouterr().err


def test_book_and_grade_refuse_clearly(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("not a book")
    with pytest.raises(SystemExit, match="is not a book built by dlcourse"):
        main(["book", "--out", str(tmp_path)])
    assert (tmp_path / "mine.txt").read_text() == "not a book"
    with pytest.raises(SystemExit, match="--workers must be at least 1"):
        main(["grade", "--workers", "0", "--unsafe"])


def test_lab_answers_no_to_news_once_and_keeps_a_learners_choice(tmp_path: Path) -> None:
    settings = tmp_path / "lab/user-settings/@jupyterlab/apputils-extension"
    settings /= "notification.jupyterlab-settings"
    answer_no_to_news(tmp_path)
    assert json.loads(settings.read_text()) == {"fetchNews": "false"}
    settings.write_text('{"fetchNews": "true"}')  # the learner said yes in Settings
    answer_no_to_news(tmp_path)
    assert json.loads(settings.read_text()) == {"fetchNews": "true"}
