"""Small seeded data sets for the chapter, and a minibatch iterator.

Every generator takes a ``seed`` and returns the same arrays for the same
seed.  Features are float64 arrays of shape (N, D), one row per example;
class labels are int64 arrays of shape (N,) with values 0..K-1.

* ``spirals``, ``xor``, ``circles``: 2-D classification, X (N, 2), y (N,).
* ``regression_curve``: 1-D regression, x (N, 1), y (N, 1).
* ``digits``: the 8x8 handwritten digits shipped with the package (no
  network), X (N, 64) in [0, 1], y (N,) in 0..9.
* ``batches``: minibatches (X_batch, y_batch) over the rows of X and y.
* ``train_test_split``: a seeded random split of the rows.

The module needs numpy only.  Bad arguments raise ``ValueError`` naming the
function and the argument, what was passed and what to pass instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from numbers import Integral, Real

import numpy as np

__all__ = [
    "Seed",
    "batches",
    "circles",
    "digits",
    "regression_curve",
    "spirals",
    "train_test_split",
    "xor",
]

#: A seed for ``np.random.default_rng``: an int, a Generator (used as is, so it
#: advances with every call) or None (fresh entropy, a different result each time).
Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(name: str, condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"{name}: {message}")


def _check_int(name: str, arg: str, value: object, minimum: int) -> None:
    ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= minimum
    _check(name, ok, f"{arg} must be an integer >= {minimum}, got {value!r}.")


def _check_noise(name: str, noise: object) -> None:
    ok = isinstance(noise, Real) and math.isfinite(noise) and noise >= 0
    _check(name, ok, f"noise must be a finite number >= 0 (0 for none), got {noise!r}.")


def spirals(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (the CS231n example).

    Returns X float64 of shape (N, 2) and y int64 of shape (N,) with
    N = n_per_class * n_classes; y holds the arm of each point, 0..n_classes-1,
    in blocks of n_per_class.  ``noise`` is the standard deviation of the
    random angle added to each point (radians).  No straight line separates
    the arms, so a network needs nonlinear layers.
    """
    _check_int("spirals", "n_per_class", n_per_class, 1)
    _check_int("spirals", "n_classes", n_classes, 2)
    _check_noise("spirals", noise)
    rng = _rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    y = np.repeat(np.arange(n_classes), n_per_class)
    angle = y * (2 * np.pi / n_classes) + radius * 4.0 + rng.standard_normal(y.size) * noise
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, y.astype(np.int64)


def xor(n: int = 200, noise: float = 0.1, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian blobs centred on (+-1, +-1); the label is the XOR of the two signs.

    Returns X float64 of shape (n, 2) and y int64 of shape (n,): y is 1 for
    the blobs at (1, -1) and (-1, 1), 0 for (1, 1) and (-1, -1).  Each point
    picks its blob at random; ``noise`` is the standard deviation of the
    blobs.  The classic problem that a single linear layer cannot solve.
    """
    _check_int("xor", "n", n, 4)
    _check_noise("xor", noise)
    rng = _rng(seed)
    corners = rng.choice([-1.0, 1.0], size=(n, 2))
    X = corners + rng.standard_normal((n, 2)) * noise
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return X, y


def circles(
    n: int = 200, noise: float = 0.1, factor: float = 0.5, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles, the inner one labelled 1.

    Returns X float64 of shape (n, 2) and y int64 of shape (n,): y alternates
    0, 1, 0, 1, ...; points with y = 0 lie on the unit circle and points with
    y = 1 on the circle of radius ``factor``, both at random angles, plus
    Gaussian noise of standard deviation ``noise`` on each coordinate.
    """
    _check_int("circles", "n", n, 2)
    _check_noise("circles", noise)
    _check(
        "circles",
        isinstance(factor, Real) and 0 < factor < 1,
        f"factor (the inner radius) must lie strictly between 0 and 1, got {factor!r}.",
    )
    rng = _rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 1, factor, 1.0)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    return X + rng.standard_normal((n, 2)) * noise, y


def regression_curve(
    n: int = 100, noise: float = 0.1, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy smooth curve ``y = sin(x) + 0.3 x`` for 1-D regression.

    Returns x float64 of shape (n, 1), drawn uniformly from [-3, 3] and
    sorted ascending, and y float64 of shape (n, 1) with Gaussian noise of
    standard deviation ``noise`` added.
    """
    _check_int("regression_curve", "n", n, 2)
    _check_noise("regression_curve", noise)
    rng = _rng(seed)
    x = np.sort(rng.uniform(-3, 3, n))[:, None]
    return x, np.sin(x) + 0.3 * x + rng.standard_normal((n, 1)) * noise


@lru_cache(maxsize=1)
def _digits_file() -> tuple[np.ndarray, np.ndarray]:
    """The shipped arrays, read once: images uint8 (1797, 64) in 0..16, labels uint8 (1797,).

    Both are read-only, so the cached copy cannot be changed by accident.
    """
    path = resources.files("dlcourse").joinpath("datasets").joinpath("digits.npz")
    try:
        with path.open("rb") as f, np.load(f) as archive:
            images, labels = archive["images"], archive["labels"]
    except FileNotFoundError:
        raise FileNotFoundError(
            "digits: dlcourse/datasets/digits.npz is missing from the installed package; "
            "reinstall dlcourse (the wheel ships it as package data)."
        ) from None
    for array in (images, labels):
        array.setflags(write=False)
    return images, labels


def digits(
    split: str | None = None, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits (1,797 images; see dlcourse/datasets/README.md).

    Returns X float64 of shape (N, 64), each row an 8x8 image read row by row
    with pixel intensities scaled from 0..16 to [0, 1], and y int64 of shape
    (N,) with the digit, 0..9.

    ``split=None`` gives all N = 1797 images in the file's order.  ``"train"``
    and ``"test"`` give the two parts of a seeded *random* (not stratified)
    split made by ``train_test_split``: the test part has
    round(1797 * test_fraction) images, the train part the rest, and the same
    ``test_fraction`` and ``seed`` (an int) always give the same two
    complementary, disjoint parts.  The file is read once and cached; every
    call returns new arrays, so changing them does not affect later calls.
    """
    _check(
        "digits",
        split is None or split in ("train", "test"),
        f"split must be None (all images), 'train' or 'test', got {split!r}.",
    )
    _check_fraction("digits", test_fraction)
    _check(
        "digits",
        isinstance(seed, Integral) and not isinstance(seed, bool),
        f"seed must be an int, so that the 'train' and 'test' calls draw the same split; "
        f"got {seed!r}.",
    )
    images, labels = _digits_file()
    X, y = images / 16.0, labels.astype(np.int64)  # new arrays, never views of the cache
    if split is None:
        return X, y
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction, seed)
    return (X_train, y_train) if split == "train" else (X_test, y_test)


def _check_fraction(name: str, test_fraction: object) -> None:
    _check(
        name,
        isinstance(test_fraction, Real) and 0 < test_fraction < 1,
        f"test_fraction must lie strictly between 0 and 1 (e.g. 0.2), got {test_fraction!r}.",
    )


def _rows(name: str, X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    _check(name, X.ndim >= 1 and y.ndim >= 1, "X and y must be arrays with one row per example.")
    _check(
        name,
        len(X) == len(y),
        f"X has {len(X)} rows but y has {len(y)}; they need one label per row.",
    )
    return X, y


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the rows of X (N, ...) and y (N, ...) and split them in two.

    Returns (X_train, X_test, y_train, y_test): X_test (M, ...) and y_test
    (M, ...) hold M = round(N * test_fraction) rows (at least 1 and at most
    N - 1), X_train (N - M, ...) and y_train (N - M, ...) the others.  The
    split is random, not stratified; the rows are copies (fancy indexing),
    not views.
    """
    X, y = _rows("train_test_split", X, y)
    _check_fraction("train_test_split", test_fraction)
    n = len(X)
    _check("train_test_split", n >= 2, f"need at least 2 rows to split, got {n}.")
    order = _rng(seed).permutation(n)
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def batches(
    X: np.ndarray, y: np.ndarray, batch_size: int = 32, shuffle: bool = True, seed: Seed = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Minibatches (X_batch, y_batch) that cover every row of X and y exactly once.

    X has shape (N, ...) and y shape (N, ...); each X_batch has shape
    (B, ...) and y_batch (B, ...) with B = batch_size, except the last batch,
    which holds the remaining N % batch_size rows when that is not 0.  With
    ``shuffle`` the rows come in a random order drawn from ``seed`` (an int,
    a Generator that advances with each call so every epoch differs, or None
    for fresh entropy); without it they come in order.  The arguments are
    checked at the call, before the first batch is asked for.
    """
    X, y = _rows("batches", X, y)
    _check_int("batches", "batch_size", batch_size, 1)
    n = len(X)
    order = _rng(seed).permutation(n) if shuffle else np.arange(n)
    return _iterate(X, y, order, int(batch_size))


def _iterate(
    X: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield X[rows], y[rows]
