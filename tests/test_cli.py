"""The `dlcourse` command's learner-facing parts."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import appendix, workspace
from dlcourse.course.cli import answer_no_to_news, main
from dlcourse.course.layout import CONFIG, WITHHELD_APPENDIX, Layout

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
    for n, text in enumerate(["{", '{"cells": "none of these"}']):
        (tmp_path / f"broken{n}.ipynb").write_text(text)
        with pytest.raises(SystemExit, match=r"broken\d\.ipynb cannot be read as a notebook"):
            main(["check", str(tmp_path / f"broken{n}.ipynb")])
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


def small_course(root: Path) -> Layout:
    """A course folder with the configuration and the learner's notebooks."""
    layout = Layout.of(root)
    layout.release.mkdir(parents=True)
    shutil.copy2(ROOT / CONFIG, layout.config)
    for path in Layout(ROOT).released_notebooks():
        shutil.copy2(path, layout.release)
    return layout


def lab_command(
    monkeypatch: pytest.MonkeyPatch, root: Path, *arguments: str
) -> tuple[list[str], dict[str, str]]:
    """What `dlcourse --root ROOT lab ARGUMENTS` would run, and its environment."""
    started = []
    monkeypatch.setattr(os, "execve", lambda _, command, env: started.append((command, env)))
    monkeypatch.delenv("JUPYTER_CONFIG_DIR", raising=False)
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    main(["--root", str(root), "lab", *arguments])
    [(command, env)] = started
    return command, env


def test_lab_opens_the_learners_workspace_and_passes_other_arguments_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = small_course(tmp_path)
    extra = ["--port", "8890", "--instr", "--ServerApp.root_dir=/elsewhere"]
    command, env = lab_command(monkeypatch, tmp_path, *extra)
    assert command[-len(extra) :] == extra, "JupyterLab's arguments come last, as given"
    ours = command[: -len(extra)]
    assert f"--ServerApp.root_dir={layout.workspace}" in ours
    assert "--LabApp.default_url=/lab/tree/ch01/01_deep_learning.ipynb" in ours
    assert "--ServerApp.terminals_enabled=False" in ours
    assert "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=False" in ours
    assert env["JUPYTER_CONFIG_DIR"] == str(layout.jupyter_config)
    assert env["JUPYTER_CONFIG_PATH"] == str(workspace.LEARNER_JUPYTER_PATH)


def test_lab_instructor_opens_the_whole_course(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = small_course(tmp_path)
    command, env = lab_command(monkeypatch, tmp_path, "--no-browser", "--instructor")
    assert f"--ServerApp.root_dir={layout.root}" in command
    assert "--LabApp.default_url=/lab/tree/notebooks/ch01/01_deep_learning.ipynb" in command
    assert command[-1] == "--no-browser"
    assert not [c for c in command if "terminals" in c or "jpserver_extensions" in c]
    assert env["JUPYTER_CONFIG_DIR"] == str(layout.instructor_jupyter_config)
    assert "JUPYTER_CONFIG_PATH" not in env


def test_the_learners_hidden_plugins_are_nbgraders() -> None:
    """The plugin names the learner's JupyterLab disables are those nbgrader
    ships (a renamed plugin would come back)."""
    config = workspace.LEARNER_JUPYTER_PATH / "labconfig" / "page_config.json"
    hidden = json.loads(config.read_text())["disabledExtensions"]
    shipped = Path(sys.prefix, "share", "jupyter", "labextensions", "@jupyter", "nbgrader")
    code = "".join(p.read_text() for p in shipped.glob("static/*.js"))
    assert hidden and all(f'"{plugin}"' in code for plugin in hidden), hidden
    assert '"@jupyter/nbgrader:validate-assignment"' in code, "Validate stays"


def test_release_withholds_or_releases_appendix_a_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dlcourse.course import release

    asked = []
    monkeypatch.setattr(release, "release", lambda root, answers: asked.append(answers) or [])
    small_course(tmp_path)
    for flags in ([], ["--no-answers"], ["--answers"]):
        main(["--root", str(tmp_path), "release", *flags])
    assert asked == [None, False, True]
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "release", "--answers", "--no-answers"])
    (tmp_path / WITHHELD_APPENDIX).parent.mkdir()
    (tmp_path / WITHHELD_APPENDIX).write_text("{}")
    main(["--root", str(tmp_path), "release"])
    assert "`dlcourse release --answers` releases it" in capsys.readouterr().out
