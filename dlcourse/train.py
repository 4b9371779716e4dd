"""A training loop with a progress bar and a per-epoch history."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dlcourse import nn
from dlcourse.data import batches
from dlcourse.optim import SGD, Optimizer
from dlcourse.tensor import Tensor, no_grad

LossFn = Callable[[Tensor, np.ndarray], Tensor]
LOSSES: dict[str, LossFn] = {"cross_entropy": nn.cross_entropy, "mse": nn.mse_loss}


@dataclass
class History:
    """Per-epoch metrics; accuracy lists stay empty for regression.

    ``stopped`` says why training ended early ('' when it ran every epoch).
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    stopped: str = ""

    def last(self) -> dict[str, float]:
        """The final value of every metric that was recorded."""
        return {
            name: values[-1]
            for name, values in vars(self).items()
            if isinstance(values, list) and values
        }


def accuracy(logits: Tensor | np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest logit is at the true label."""
    scores = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    return float(np.mean(scores.argmax(axis=1) == np.asarray(labels)))


def evaluate(
    model: nn.Module, X: np.ndarray, y: np.ndarray, loss: str | LossFn
) -> tuple[float, float | None]:
    """(loss, accuracy) of ``model`` on a whole data set; accuracy is None for 'mse'."""
    loss_fn = _loss_fn(loss)
    with no_grad():
        out = model(Tensor(X))
        value = loss_fn(out, y).item()
    return value, (accuracy(out, y) if loss_fn is nn.cross_entropy else None)


def _loss_fn(loss: str | LossFn) -> LossFn:
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"fit: unknown loss {loss!r}; use one of {sorted(LOSSES)} or a function.")
    return LOSSES[loss]


def fit(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    epochs: int = 100,
    batch_size: int = 32,
    loss: str | LossFn = "cross_entropy",
    optimizer: Optimizer | None = None,
    lr: float = 0.1,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on (X, y) with minibatches and return the history.

    ``optimizer`` defaults to ``SGD(model.parameters(), lr)``.  The metrics
    of every epoch are measured on the whole training set (and on
    ``validation``, a pair (X_val, y_val), if given) after the epoch.  The
    progress bar is tqdm's: a widget in JupyterLab, text on stdout elsewhere.

    A run that diverges (the training loss becomes inf or NaN, typically a
    learning rate that is too large) stops after that epoch, says so on
    stdout and in ``history.stopped``; numpy's overflow warnings, which
    would otherwise pour out of every operation, are kept quiet.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "fit shows its progress with tqdm, which is not installed: pip install tqdm "
            "(it comes with dlcourse[course])."
        ) from None

    if epochs < 1:
        raise ValueError(f"fit: epochs must be at least 1, got {epochs}.")
    loss_fn = _loss_fn(loss)
    optimizer = optimizer or SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = History()
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress, file=sys.stdout)
    with np.errstate(over="ignore", invalid="ignore"), bar:
        for epoch in bar:
            for xb, yb in batches(X, y, batch_size=batch_size, shuffle=True, seed=rng):
                optimizer.zero_grad()
                loss_fn(model(Tensor(xb)), yb).backward()
                optimizer.step()
            train_loss, train_acc = evaluate(model, X, y, loss_fn)
            history.loss.append(train_loss)
            if train_acc is not None:
                history.accuracy.append(train_acc)
            if validation is not None:
                val_loss, val_acc = evaluate(model, *validation, loss_fn)
                history.val_loss.append(val_loss)
                if val_acc is not None:
                    history.val_accuracy.append(val_acc)
            bar.set_postfix(history.last(), refresh=False)
            if not np.isfinite(train_loss):
                history.stopped = (
                    f"diverged: the training loss is {train_loss} after epoch {epoch + 1} of "
                    f"{epochs}; lower the learning rate (it is {optimizer.lr:g})"
                )
                break
    if history.stopped:
        print(f"fit: stopped early, {history.stopped}.")
    return history
