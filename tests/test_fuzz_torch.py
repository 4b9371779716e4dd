"""Differential testing against PyTorch: random graphs of every operation, in
float64, on ordinary, huge, infinite and empty values, with every form of
index; values and gradients must agree (skipped where torch is absent)."""

from __future__ import annotations

import numpy as np
import pytest

import dlcourse as dl
from dlcourse import Tensor, nn

torch = pytest.importorskip("torch", reason="the comparison needs PyTorch (pip install torch)")

HUGE = 1e100  # its cube is finite: sums of products rarely overflow, so their order is moot


class Pair:
    """The same value in dlcourse and in torch."""

    def __init__(self, ours: Tensor, theirs: torch.Tensor, label: str = ""):
        self.ours, self.theirs = ours, theirs
        self.label = label or ours.op  # what made it

    @property
    def shape(self) -> tuple[int, ...]:
        return self.ours.shape


def values(rng: np.random.Generator, shape: tuple[int, ...], positive: bool = False) -> np.ndarray:
    x = np.asarray(rng.standard_normal(shape) * rng.choice([1.0, 3.0, 0.1]))
    special = np.asarray(rng.random(shape) < 0.1)
    x[special] = rng.choice([np.inf, -np.inf, HUGE, -HUGE, 0.0], size=int(special.sum()))
    return np.abs(x) + 0.1 if positive else x


def random_shape(rng: np.random.Generator) -> tuple[int, ...]:
    ndim = int(rng.integers(0, 4))
    return tuple(
        int(n) for n in rng.choice([0, 1, 2, 3, 4], size=ndim, p=[0.05, 0.2, 0.3, 0.3, 0.15])
    )


def leaf(rng: np.random.Generator, shape: tuple[int, ...], leaves: list) -> Pair:
    x = values(rng, shape)
    pair = Pair(Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True))
    leaves.append(pair)
    return pair


def broadcast_partner(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: some axes set to 1, some leading ones dropped."""
    out = [1 if rng.random() < 0.3 else n for n in shape]
    drop = int(rng.integers(0, len(out) + 1))
    return tuple(out[drop:])


def random_index(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple | None:
    """An index in one of numpy's forms that torch understands too."""
    if not shape or 0 in shape:
        return (None, Ellipsis) if rng.random() < 0.5 else None
    axis_sizes = list(shape)
    kind = rng.choice(["int", "slice", "array", "list", "bool", "tuple", "mixed", "newaxis"])
    n = axis_sizes[0]
    if kind == "int":
        return (int(rng.integers(-n, n)),)
    if kind == "slice":
        start, step = int(rng.integers(0, n)), int(rng.integers(1, 3))
        return (slice(start, None, step), Ellipsis)
    if kind == "array":
        return (rng.integers(-n, n, size=int(rng.integers(1, 5))),)
    if kind == "list":
        return ([int(i) for i in rng.integers(0, n, size=3)],)
    if kind == "bool":
        return (rng.random(n) < 0.6,)
    if kind == "tuple":  # a tuple inside the index is a sequence: rows repeat
        return (tuple(int(i) for i in rng.integers(0, n, size=2)), Ellipsis)
    if kind == "mixed" and len(shape) >= 2:
        return (slice(None), rng.integers(0, shape[1], size=2), None)
    return (None, Ellipsis, 0)


def to_torch_index(index: tuple) -> tuple:
    return tuple(torch.tensor(p) if isinstance(p, np.ndarray) else p for p in index)


def step(rng: np.random.Generator, pool: list[Pair], leaves: list[Pair]) -> Pair | None:
    """One random operation on values from ``pool``; None if it does not apply."""
    a = pool[int(rng.integers(len(pool)))]
    o, t = a.ours, a.theirs
    kind = rng.choice(
        ["unary", "binary", "scalar", "reduce", "shape", "index", "matmul", "join", "where", "nn"]
    )
    if kind == "unary":
        name = rng.choice(["neg", "exp", "log", "tanh", "sigmoid", "relu", "pow"])
        if name == "neg":
            return Pair(-o, -t)
        if name == "pow":
            p = float(rng.choice([0.0, 1.0, 2.0, 3.0, 0.5, -1.0]))
            if p == 0.5 and np.any(o.data == 0):
                return None  # the sign of sqrt's infinite slope at -0 is a convention
            return Pair(o**p, t**p)
        return Pair(getattr(o, name)(), getattr(torch, name)(t))
    if kind in ("binary", "scalar"):
        op = rng.choice(["add", "sub", "mul", "div", "radd", "rsub", "rmul", "rdiv"])
        if kind == "scalar":
            c = float(rng.choice([2.0, -0.5, 0.0, np.inf, HUGE]))
            b_ours, b_theirs = c, c
        else:
            b = leaf(rng, broadcast_partner(rng, a.shape), leaves) if rng.random() < 0.6 else None
            if b is None:
                b = pool[int(rng.integers(len(pool)))]
                try:
                    np.broadcast_shapes(a.shape, b.shape)
                except ValueError:
                    return None
            b_ours, b_theirs = b.ours, b.theirs
        f = {
            "add": lambda x, y: x + y,
            "sub": lambda x, y: x - y,
            "mul": lambda x, y: x * y,
            "div": lambda x, y: x / y,
            "radd": lambda x, y: y + x,
            "rsub": lambda x, y: y - x,
            "rmul": lambda x, y: y * x,
            "rdiv": lambda x, y: y / x,
        }[op]
        return Pair(f(o, b_ours), f(t, b_theirs))
    if kind == "reduce":
        name = rng.choice(["sum", "mean", "max"])
        keep = bool(rng.random() < 0.5)
        axis = (
            None
            if not a.shape or rng.random() < 0.3
            else int(rng.integers(-len(a.shape), len(a.shape)))
        )
        if name == "max":
            reduced = range(len(a.shape)) if axis is None else [axis % len(a.shape)]
            if any(a.shape[i] == 0 for i in reduced):
                return None
            if axis is None:  # ties share the gradient, which is selected, not multiplied
                return Pair(o.max(), t.max()) if not keep else None
            x = o.data
            top = x.max(axis=axis, keepdims=True)
            if np.any(((x == top) | np.isnan(x) & np.isnan(top)).sum(axis=axis) > 1):
                return None  # a tie: torch.max(dim) gives one of them all the gradient
            return Pair(o.max(axis=axis, keepdims=keep), t.max(dim=axis, keepdim=keep).values)
        if axis is None:
            return Pair(getattr(o, name)(), getattr(t, name)())
        return Pair(
            getattr(o, name)(axis=axis, keepdims=keep), getattr(t, name)(dim=axis, keepdim=keep)
        )
    if kind == "shape":
        if rng.random() < 0.5:
            shape = (-1,) if rng.random() < 0.5 or not a.shape else (*a.shape[::-1],)
            if shape != (-1,) and int(np.prod(shape)) != o.size:
                return None
            return Pair(o.reshape(shape), t.reshape(shape))
        perm = tuple(int(i) for i in rng.permutation(len(a.shape)))
        return Pair(o.transpose(perm), t.permute(perm))
    if kind == "index":
        index = random_index(rng, a.shape)
        if index is None:
            return None
        return Pair(o[index], t[to_torch_index(index)])
    if kind == "matmul":
        if not a.shape:
            return None
        inner = a.shape[-1]
        right = leaf(
            rng, (inner,) if rng.random() < 0.3 else (inner, int(rng.integers(0, 4))), leaves
        )
        return Pair(o @ right.ours, t @ right.theirs, "matmul")
    if kind == "join":
        others = [leaf(rng, a.shape, leaves) for _ in range(int(rng.integers(1, 3)))]
        parts = [a, *others]
        if rng.random() < 0.5 and a.shape:
            axis = int(rng.integers(-len(a.shape), len(a.shape)))
            return Pair(
                dl.concatenate([p.ours for p in parts], axis=axis),
                torch.cat([p.theirs for p in parts], dim=axis),
            )
        axis = int(rng.integers(-len(a.shape) - 1, len(a.shape) + 1))
        return Pair(
            dl.stack([p.ours for p in parts], axis=axis),
            torch.stack([p.theirs for p in parts], dim=axis),
        )
    if kind == "where":
        cond = rng.random(a.shape) < 0.5
        b = leaf(rng, broadcast_partner(rng, a.shape), leaves)
        return Pair(dl.where(cond, o, b.ours), torch.where(torch.tensor(cond), t, b.theirs))
    if len(a.shape) != 2 or 0 in a.shape:
        return None
    if rng.random() < 0.5:
        return Pair(nn.log_softmax(o, axis=1), torch.log_softmax(t, dim=1))
    W = leaf(rng, (a.shape[1], 3), leaves)
    bias = leaf(rng, (3,), leaves)
    return Pair(nn.linear(o, W.ours, bias.ours), t @ W.theirs + bias.theirs)


def magnitude(*arrays: np.ndarray) -> float:
    """The largest finite magnitude among ``arrays`` (at least 1)."""
    finite = [np.abs(a[np.isfinite(a)]).max() for a in arrays if np.isfinite(a).any()]
    return max([1.0, *finite])


def assert_same(
    ours: np.ndarray, theirs: torch.Tensor, what: str, scale: float = 1.0, blas: bool = False
) -> None:
    """Equal up to rounding: ``scale`` is the size of what was added up (where a
    sum cancels, rounding leaves a residue of that size times 1e-16).  With
    ``blas``, NaN and an infinity count as alike: BLAS kernels differ on 0 * inf
    (the reference gemv skips zeros, numpy's kernels do not)."""
    expected = theirs.detach().numpy()
    assert ours.shape == expected.shape, f"{what}: shape {ours.shape} against {expected.shape}"
    if blas:
        both = ~np.isfinite(ours) & ~np.isfinite(expected)
        ours, expected = np.where(both, np.nan, ours), np.where(both, np.nan, expected)
    atol = 1e-12 * max(scale, magnitude(expected))
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=atol, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_torch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        for graph in range(10):
            leaves: list[Pair] = []
            pool = [leaf(rng, random_shape(rng), leaves)]
            trace = []
            for _ in range(int(rng.integers(1, 9))):
                result = step(rng, pool, leaves)
                if result is not None:
                    pool.append(result)
                    trace.append(result.label)
            out = pool[-1]
            what = f"seed {seed}, graph {graph}: {' -> '.join(trace) or 'a leaf'}"
            blas = "matmul" in trace or "linear" in trace
            size = magnitude(*(p.ours.data for p in pool))  # of every value added up
            assert_same(out.ours.data, out.theirs, f"{what}: value", scale=size, blas=blas)
            if not out.ours.requires_grad:
                continue
            upstream = values(rng, out.shape)
            out.ours.backward(upstream)
            out.theirs.backward(torch.tensor(upstream))
            for i, p in enumerate(leaves):
                if p.theirs.grad is None:
                    assert p.ours.grad is None, f"{what}: leaf {i} has a gradient torch lacks"
                else:
                    assert p.ours.grad is not None, f"{what}: leaf {i} has no gradient"
                    assert_same(
                        p.ours.grad,
                        p.theirs.grad,
                        f"{what}: gradient of leaf {i}",
                        scale=magnitude(upstream) * size,
                        blas=blas,
                    )
