"""The benchmark suite runs (on its smallest row) and its peers agree; nothing is timed here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import suite

ROOT = Path(__file__).resolve().parents[1]


def test_peers_compute_the_same_loss() -> None:
    first = suite.losses_agree(suite.ROWS[0], np.float64, include_micrograd=True)
    assert {"dlcourse", "numpy"} <= set(first)


def test_a_training_step_leaves_nothing_for_the_garbage_collector() -> None:
    params, x, y = suite.problem(suite.ROWS[1], np.float64)
    assert suite.cyclic_garbage(suite.dlcourse_step(params, x, y)) == 0


def test_quick_run_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "| 64-16-16-10, batch 8 | float64 |" in result.stdout
