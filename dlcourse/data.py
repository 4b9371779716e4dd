"""Small seeded data sets for the chapter, and a minibatch iterator.

Every generator takes a ``seed`` and returns the same arrays for the same
seed.  Features are float64 arrays of shape (N, D) (one row per example);
class labels are int64 arrays of shape (N,).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from importlib import resources

import numpy as np

Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(name: str, condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"{name}: {message}")


def spirals(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class: X (N, 2), y (N,) with N = n_per_class * n_classes.

    No straight line separates them, so a network needs nonlinear layers.
    """
    _check("spirals", n_classes >= 2, f"n_classes must be at least 2, got {n_classes}.")
    _check("spirals", n_per_class >= 1, f"n_per_class must be positive, got {n_per_class}.")
    _check("spirals", noise >= 0, f"noise must be >= 0, got {noise}.")
    rng = _rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    y = np.repeat(np.arange(n_classes), n_per_class)
    angle = y * (2 * np.pi / n_classes) + radius * 4.0 + rng.standard_normal(y.size) * noise
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, y.astype(np.int64)


def xor(n: int = 200, noise: float = 0.1, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four blobs around (+-1, +-1); the label is 1 where the two signs differ.

    X (n, 2), y (n,).  The classic problem that a single linear layer cannot solve.
    """
    _check("xor", n >= 4, f"n must be at least 4, got {n}.")
    _check("xor", noise >= 0, f"noise must be >= 0, got {noise}.")
    rng = _rng(seed)
    corners = rng.choice([-1.0, 1.0], size=(n, 2))
    X = corners + rng.standard_normal((n, 2)) * noise
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return X, y


def circles(
    n: int = 200, noise: float = 0.1, factor: float = 0.5, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: X (n, 2); y (n,) is 1 on the inner circle (radius ``factor``)."""
    _check("circles", n >= 2, f"n must be at least 2, got {n}.")
    _check("circles", 0 < factor < 1, f"factor (inner radius) must lie in (0, 1), got {factor}.")
    _check("circles", noise >= 0, f"noise must be >= 0, got {noise}.")
    rng = _rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 1, factor, 1.0)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    return X + rng.standard_normal((n, 2)) * noise, y


def regression_curve(
    n: int = 100, noise: float = 0.1, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy smooth curve ``y = sin(x) + 0.3 x``: x (n, 1) sorted in [-3, 3], y (n, 1)."""
    _check("regression_curve", n >= 2, f"n must be at least 2, got {n}.")
    _check("regression_curve", noise >= 0, f"noise must be >= 0, got {noise}.")
    rng = _rng(seed)
    x = np.sort(rng.uniform(-3, 3, n))[:, None]
    return x, np.sin(x) + 0.3 * x + rng.standard_normal((n, 1)) * noise


@lru_cache(maxsize=1)
def _digits_file() -> tuple[np.ndarray, np.ndarray]:
    with (
        resources.files("dlcourse").joinpath("datasets/digits.npz").open("rb") as f,
        np.load(f) as archive,
    ):
        return archive["images"], archive["labels"]


def digits(
    split: str | None = None, test_fraction: float = 0.2, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits (1,797 images; see dlcourse/datasets/README.md).

    Returns X (N, 64) in [0, 1] (pixel intensity / 16) and y (N,) in 0..9.
    ``split=None`` gives all images; ``"train"`` or ``"test"`` give the two
    parts of a seeded random split with ``test_fraction`` of the images in
    the test part (the same ``seed`` gives complementary parts).
    """
    _check(
        "digits",
        split in (None, "train", "test"),
        f"split must be None, 'train' or 'test', got {split!r}.",
    )
    images, labels = _digits_file()
    X, y = images / 16.0, labels.astype(np.int64)
    if split is None:
        return X, y
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction, seed)
    return (X_train, y_train) if split == "train" else (X_test, y_test)


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: Seed = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the rows and split them: (X_train, X_test, y_train, y_test)."""
    _same_rows("train_test_split", X, y)
    _check(
        "train_test_split",
        0 < test_fraction < 1,
        f"test_fraction must lie in (0, 1), got {test_fraction}.",
    )
    order = _rng(seed).permutation(len(X))
    n_test = max(1, round(len(X) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def _same_rows(name: str, X: np.ndarray, y: np.ndarray) -> None:
    _check(
        name,
        len(X) == len(y),
        f"X has {len(X)} rows but y has {len(y)}; they need one label per row.",
    )


def batches(
    X: np.ndarray, y: np.ndarray, batch_size: int = 32, shuffle: bool = True, seed: Seed = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Minibatches (X_batch, y_batch) covering every row once; the last one may be smaller.

    With ``shuffle`` the rows come in a random order drawn from ``seed`` (an
    int, a Generator that advances with each epoch, or None for a fresh one).
    """
    _same_rows("batches", X, y)
    _check("batches", batch_size >= 1, f"batch_size must be at least 1, got {batch_size}.")
    n = len(X)
    order = _rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        yield X[rows], y[rows]
