"""Deep networks learn: the chapter's claims, checked on real data inside the normal test run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dlcourse import data, nn, optim
from dlcourse.train import History, accuracy, evaluate, fit


def test_mlp_fits_the_spirals() -> None:
    X, y = data.spirals(n_per_class=100, n_classes=3, seed=0)
    model = nn.MLP([2, 64, 64, 3], rng=0)
    history = fit(
        model,
        X,
        y,
        epochs=150,
        batch_size=32,
        optimizer=optim.Adam(model.parameters(), lr=0.01),
        progress=False,
    )
    assert len(history.loss) == 150 and history.loss[-1] < history.loss[0]
    assert history.accuracy[-1] >= 0.97


def test_mlp_reads_handwritten_digits() -> None:
    X_train, y_train = data.digits(split="train")
    X_test, y_test = data.digits(split="test")
    model = nn.MLP([64, 128, 10], rng=0)
    history = fit(
        model,
        X_train,
        y_train,
        epochs=20,
        batch_size=64,
        optimizer=optim.Adam(model.parameters(), lr=3e-3),
        validation=(X_test, y_test),
        progress=False,
    )
    assert history.val_accuracy[-1] >= 0.95
    _, test_accuracy = evaluate(model, X_test, y_test, "cross_entropy")
    assert test_accuracy == history.val_accuracy[-1]


def test_regression_with_mse() -> None:
    x, y = data.regression_curve(n=100, seed=0)
    model = nn.MLP([1, 32, 32, 1], activation="tanh", rng=0)
    history = fit(
        model,
        x,
        y,
        epochs=200,
        batch_size=20,
        loss="mse",
        optimizer=optim.Adam(model.parameters(), lr=0.01),
        progress=False,
    )
    assert history.accuracy == [] and history.loss[-1] < 0.1 * history.loss[0]


def test_progress_bar_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = data.xor(n=40, seed=0)
    history = fit(nn.MLP([2, 8, 2], rng=0), X, y, epochs=3, progress=True)
    captured = capsys.readouterr()
    assert "training" in captured.out and "3/3" in captured.out
    assert captured.err == ""
    assert set(history.last()) == {"loss", "accuracy"}


def test_accuracy_and_errors() -> None:
    assert accuracy(np.array([[0.1, 0.9], [2.0, 1.0]]), np.array([1, 1])) == 0.5
    model = nn.MLP([2, 2], rng=0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fit(model, np.zeros((4, 2)), np.zeros(4, dtype=int), loss="hinge")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        fit(model, np.zeros((4, 2)), np.zeros(4, dtype=int), epochs=0)
    assert History().last() == {}


def test_a_diverging_run_stops_quietly_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = data.regression_curve(n=100, seed=0)
    model = nn.MLP([1, 32, 32, 1], activation="relu", rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings would land on stderr
        history = fit(model, x, y, epochs=50, loss="mse", lr=5.0, progress=False)
    assert 1 <= len(history.loss) < 50 and not np.isfinite(history.loss[-1])
    assert history.stopped.startswith("diverged") and "learning rate (it is 5)" in history.stopped
    captured = capsys.readouterr()
    assert "fit: stopped early, diverged" in captured.out and captured.err == ""
