"""The data sets: shapes, labels, determinism, the digits file, splits, minibatches, errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dlcourse import data

Pair = tuple[np.ndarray, np.ndarray]

# each makes 150 points from a seed
CLASSIFIERS: dict[str, Callable[[int], Pair]] = {
    "spirals": lambda seed: data.spirals(n_per_class=50, n_classes=3, seed=seed),
    "xor": lambda seed: data.xor(n=150, seed=seed),
    "circles": lambda seed: data.circles(n=150, seed=seed),
}
ALL: dict[str, Callable[[int], Pair]] = {
    **CLASSIFIERS,
    "regression_curve": lambda seed: data.regression_curve(n=150, seed=seed),
}


def _same(a: Pair, b: Pair) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classification_sets(name: str) -> None:
    X, y = CLASSIFIERS[name](0)
    assert X.shape == (150, 2) and X.dtype == np.float64 and np.all(np.isfinite(X))
    assert y.shape == (150,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(y.max() + 1)) and y.max() >= 1


@pytest.mark.parametrize("name", sorted(ALL))
def test_same_seed_same_data_other_seed_other_data(name: str) -> None:
    first, again, other = ALL[name](0), ALL[name](0), ALL[name](1)
    assert _same(first, again)
    assert not np.array_equal(first[0], other[0])


def test_spirals_labels_run_over_every_class() -> None:
    X, y = data.spirals(n_per_class=7, n_classes=5, seed=2)
    assert X.shape == (35, 2) and y.shape == (35,)
    assert np.array_equal(np.bincount(y), [7] * 5)
    assert np.all(np.hypot(X[:, 0], X[:, 1]) <= 1.0 + 1e-12)  # noise turns, never stretches
    gen = np.random.default_rng(4)
    assert not _same(data.spirals(seed=gen), data.spirals(seed=gen))  # a Generator advances


def test_xor_label_is_the_xor_of_the_signs() -> None:
    X, y = data.xor(n=400, noise=0.1, seed=0)
    assert np.array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(np.int64))
    quadrants = {(bool(a), bool(b)) for a, b in X > 0}
    assert len(quadrants) == 4
    X0, y0 = data.xor(n=8, noise=0, seed=0)
    assert set(np.abs(X0).ravel()) == {1.0} and np.array_equal(y0, X0[:, 0] != X0[:, 1])


def test_circles_inner_is_label_one() -> None:
    X, y = data.circles(n=200, noise=0.0, factor=0.3, seed=0)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 1], 0.3)
    np.testing.assert_allclose(radius[y == 0], 1.0)
    assert np.bincount(y).tolist() == [100, 100]


def test_regression_curve() -> None:
    x, y = data.regression_curve(n=80, seed=3)
    assert x.shape == y.shape == (80, 1) and x.dtype == y.dtype == np.float64
    assert np.all(np.diff(x[:, 0]) >= 0) and x.min() >= -3 and x.max() <= 3
    x0, y0 = data.regression_curve(n=50, noise=0, seed=3)
    np.testing.assert_allclose(y0, np.sin(x0) + 0.3 * x0)
    assert np.abs(y - (np.sin(x) + 0.3 * x)).std() < 0.2  # noise 0.1 on top of the curve


def test_digits_all() -> None:
    X, y = data.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 1 and set(np.unique(y)) == set(range(10))
    assert np.array_equal(X * 16, np.round(X * 16))  # the 17 grey levels 0..16
    assert np.bincount(y).min() >= 170  # about 180 images of each digit


def _row_keys(X: np.ndarray) -> list[bytes]:
    return sorted(row.tobytes() for row in X)


def test_digits_train_test_split() -> None:
    X, y = data.digits()
    X_train, y_train = data.digits(split="train")
    X_test, y_test = data.digits(split="test")
    assert X_test.shape == (round(0.2 * 1797), 64) and y_test.shape == (len(X_test),)
    assert len(X_train) == len(y_train) == 1797 - len(X_test)
    assert X_train.dtype == X_test.dtype == np.float64 and y_train.dtype == np.int64
    # the 1797 images are all different, so the rows identify them: disjoint, and together all
    assert not set(_row_keys(X_train)) & set(_row_keys(X_test))
    assert _row_keys(np.vstack([X_train, X_test])) == _row_keys(X)
    both = np.column_stack([np.vstack([X_train, X_test]), np.concatenate([y_train, y_test])])
    assert _row_keys(both) == _row_keys(np.column_stack([X, y]))  # labels travel with images
    assert _same(data.digits(split="test"), (X_test, y_test))
    assert not np.array_equal(data.digits(split="test", seed=1)[1], y_test)
    assert len(data.digits(split="test", test_fraction=0.5)[0]) == round(0.5 * 1797)


def test_digits_cache_cannot_be_corrupted() -> None:
    for split in (None, "train", "test"):
        X, y = data.digits(split=split)
        X[:] = -1
        y[:] = -1
    X, y = data.digits()
    assert X.min() == 0 and y.min() == 0 and data.digits(split="train")[0].min() == 0
    images, labels = data._digits_file()
    assert not images.flags.writeable and not labels.flags.writeable


def test_train_test_split_partitions_the_rows() -> None:
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_fraction=0.3, seed=2)
    assert X_test.shape == (3, 2) and X_train.shape == (7, 2)
    assert sorted(np.concatenate([y_train, y_test])) == list(range(10))
    assert np.array_equal(X_train[:, 0], 2 * y_train) and np.array_equal(X_test[:, 0], 2 * y_test)
    # never an empty part
    assert len(data.train_test_split(X, y, test_fraction=0.01)[1]) == 1
    assert len(data.train_test_split(X, y, test_fraction=0.99)[0]) == 1


def _collect(parts: list[Pair]) -> np.ndarray:
    return np.concatenate([yb for _, yb in parts])


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_row_once(shuffle: bool) -> None:
    X, y = np.arange(23.0).reshape(23, 1), np.arange(23)
    parts = list(data.batches(X, y, batch_size=5, shuffle=shuffle, seed=0))
    assert [len(xb) for xb, _ in parts] == [5, 5, 5, 5, 3]
    seen = _collect(parts)
    assert sorted(seen) == list(range(23))
    assert np.array_equal(seen, np.arange(23)) != shuffle
    assert all(np.array_equal(xb[:, 0], yb) for xb, yb in parts)


def test_batches_seeding() -> None:
    X, y = np.zeros((40, 3)), np.arange(40)
    one, again, two = (_collect(list(data.batches(X, y, seed=s))) for s in (1, 1, 2))
    assert np.array_equal(one, again) and not np.array_equal(one, two)
    gen = np.random.default_rng(0)
    epoch1, epoch2 = (_collect(list(data.batches(X, y, seed=gen))) for _ in range(2))
    assert not np.array_equal(epoch1, epoch2) and sorted(epoch2) == list(range(40))
    assert [len(xb) for xb, _ in data.batches(X, y, batch_size=100)] == [40]
    assert list(data.batches(np.zeros((0, 3)), np.zeros(0))) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: data.spirals(n_classes=1), "spirals: n_classes must be an integer >= 2, got 1"),
        (lambda: data.spirals(n_per_class=2.5), "n_per_class must be an integer >= 1, got 2.5"),
        (lambda: data.xor(noise=-1), "xor: noise must be a finite number >= 0"),
        (lambda: data.xor(n=2), "xor: n must be an integer >= 4, got 2"),
        (lambda: data.circles(noise=float("nan")), "noise must be a finite number >= 0"),
        (lambda: data.circles(factor=1.5), "factor .* must lie strictly between 0 and 1"),
        (lambda: data.regression_curve(n=1), "n must be an integer >= 2, got 1"),
        (
            lambda: data.digits(split="validation"),
            "split must be None \\(all images\\), 'train' or 'test', got 'validation'",
        ),
        (lambda: data.digits(split="test", test_fraction=1.0), "test_fraction must lie strictly"),
        (lambda: data.digits(split="test", seed=None), "seed must be an int"),
        (
            lambda: data.train_test_split(np.zeros((3, 1)), np.zeros(2)),
            "train_test_split: X has 3 rows but y has 2",
        ),
        (lambda: data.batches(np.zeros((3, 1)), np.zeros(2)), "batches: X has 3 rows but y has 2"),
        (
            lambda: data.batches(np.zeros((3, 1)), np.zeros(3), batch_size=0),
            "batch_size must be an integer >= 1, got 0",
        ),
    ],
)
def test_bad_input_says_what_to_pass(call: Callable[[], object], message: str) -> None:
    # batches checks at the call, not only when the first batch is asked for
    with pytest.raises(ValueError, match=message):
        call()
