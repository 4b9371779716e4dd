"""The data sets: shapes, labels, determinism, the digits file, minibatches."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse import data

GENERATORS = {
    "spirals": lambda seed: data.spirals(n_per_class=50, n_classes=3, seed=seed),
    "xor": lambda seed: data.xor(n=150, seed=seed),
    "circles": lambda seed: data.circles(n=150, seed=seed),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_classification_sets(name: str) -> None:
    X, y = GENERATORS[name](0)
    assert X.shape == (150, 2) and X.dtype == np.float64
    assert y.shape == (150,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(y.max() + 1)) and y.max() >= 1
    again, other = GENERATORS[name](0), GENERATORS[name](1)
    assert np.array_equal(X, again[0]) and np.array_equal(y, again[1])
    assert not np.array_equal(X, other[0])


def test_regression_curve() -> None:
    x, y = data.regression_curve(n=80, seed=3)
    assert x.shape == y.shape == (80, 1)
    assert np.all(np.diff(x[:, 0]) >= 0) and x.min() >= -3 and x.max() <= 3


def test_digits() -> None:
    X, y = data.digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 1 and set(np.unique(y)) == set(range(10))
    X_train, _ = data.digits(split="train")
    X_test, _ = data.digits(split="test")
    assert len(X_test) == round(0.2 * 1797) and len(X_train) + len(X_test) == 1797
    rows = {r.tobytes() for r in X_train}
    assert sum(r.tobytes() in rows for r in X_test) < 10  # only the few duplicate images overlap
    X[:] = -1  # a caller scribbling on its copy does not reach the cached file
    assert data.digits()[0].min() == 0


def test_batches_cover_every_row_once() -> None:
    X, y = np.arange(23.0).reshape(23, 1), np.arange(23)
    for shuffle in (False, True):
        parts = list(data.batches(X, y, batch_size=5, shuffle=shuffle, seed=0))
        assert [len(xb) for xb, _ in parts] == [5, 5, 5, 5, 3]
        seen = np.concatenate([yb for _, yb in parts])
        assert sorted(seen) == list(range(23))
        assert all(np.array_equal(xb[:, 0], yb) for xb, yb in parts)
    first = np.concatenate([yb for _, yb in data.batches(X, y, seed=1)])
    assert np.array_equal(first, np.concatenate([yb for _, yb in data.batches(X, y, seed=1)]))


def test_bad_input_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="n_classes must be at least 2"):
        data.spirals(n_classes=1)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        data.xor(noise=-1)
    with pytest.raises(ValueError, match="split must be None, 'train' or 'test'"):
        data.digits(split="validation")
    with pytest.raises(ValueError, match="X has 3 rows but y has 2"):
        list(data.batches(np.zeros((3, 1)), np.zeros(2)))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(data.batches(np.zeros((3, 1)), np.zeros(3), batch_size=0))
