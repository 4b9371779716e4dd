"""Forward mode: jvp against reverse mode and against numerical derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dlcourse as dl
from dlcourse import ShapeError, Tensor, nn
from tests.test_tensor import BINARY, MATMUL_SHAPES, UNARY


def numerical_jvp(f, xs: list[np.ndarray], vs: list[np.ndarray], h: float = 1e-6) -> np.ndarray:
    """(f(x + h v) - f(x - h v)) / 2h, for every output element."""
    with dl.no_grad():
        plus = f(*(Tensor(x + h * v) for x, v in zip(xs, vs))).data
        minus = f(*(Tensor(x - h * v) for x, v in zip(xs, vs))).data
    return (plus - minus) / (2 * h)


def reverse_directional(f, xs: list[np.ndarray], vs: list[np.ndarray]) -> np.ndarray:
    """For each output element i, v . grad y_i, by reverse mode (one backward per element)."""
    ts = [Tensor(x, requires_grad=True) for x in xs]
    out = f(*ts)
    result = np.zeros(out.shape)
    for i in np.ndindex(out.shape):
        for t in ts:
            t.grad = None
        seed = np.zeros(out.shape)
        seed[i] = 1.0
        f(*ts).backward(seed)
        result[i] = sum(float(np.sum(t.grad * v)) for t, v in zip(ts, vs) if t.grad is not None)
    return result


def check(f, xs: list[np.ndarray], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(np.shape(x)) for x in xs]
    out, tangent = dl.jvp(f, xs, vs)
    with dl.no_grad():
        assert np.allclose(out.data, f(*(Tensor(x) for x in xs)).data)
    assert tangent.shape == out.shape
    np.testing.assert_allclose(tangent, numerical_jvp(f, xs, vs), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(tangent, reverse_directional(f, xs, vs), rtol=1e-10, atol=1e-12)


def positive(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).standard_normal(shape)) + 0.5


@pytest.mark.parametrize("name", sorted(UNARY))
def test_every_unary_operation(name: str) -> None:
    fn, pos = UNARY[name]
    x = positive((2, 3, 4), 1) if pos else np.random.default_rng(1).standard_normal((2, 3, 4))
    check(fn, [x])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_every_binary_operation_with_broadcasting(name: str) -> None:
    check(BINARY[name], [np.random.default_rng(2).standard_normal((3, 1, 4)), positive((2, 1), 3)])


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes: tuple) -> None:
    rng = np.random.default_rng(4)
    check(lambda a, b: a @ b, [rng.standard_normal(s) for s in shapes])


def test_joins_where_and_the_networks_operations() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    cond = rng.random((2, 3)) < 0.5
    check(lambda a, b: dl.concatenate([a, b, a], axis=1), [a, b])
    check(lambda a, b: dl.stack([a, b], axis=-1), [a, b])
    check(lambda a, b: dl.where(cond, a, b * b), [a, b])
    W, c = rng.standard_normal((3, 4)), rng.standard_normal(4)
    check(nn.linear, [a, W, c])
    check(lambda a, W: nn.linear(a, W), [a, W])
    check(nn.log_softmax, [a])
    check(lambda z: nn.cross_entropy(z, np.array([0, 2])), [a])
    check(lambda z: nn.mse_loss(z, np.ones((2, 3))), [a])


def test_a_scalar_output_gives_v_dot_the_gradient() -> None:
    model = nn.MLP([3, 8, 8, 2], activation="tanh", rng=0)
    X, y = np.random.default_rng(6).standard_normal((5, 3)), np.array([0, 1, 1, 0, 1])
    W = model[0].weight.data

    def loss(W1: Tensor) -> Tensor:
        h = nn.linear(Tensor(X), W1, model[0].bias).tanh()
        return nn.cross_entropy(model[4](model[3](model[2](h))), y)

    v = np.random.default_rng(7).standard_normal(W.shape)
    value, derivative = dl.jvp(loss, [W], [v])
    W1 = Tensor(W, requires_grad=True)
    loss(W1).backward()
    assert derivative.shape == () and value.item() == pytest.approx(loss(Tensor(W)).item())
    assert derivative == pytest.approx(float(np.sum(W1.grad * v)), rel=1e-12)  # v^T (J^T 1)


@settings(max_examples=40, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    op=st.sampled_from(sorted(BINARY)),
)
def test_broadcasting_property(shapes: hnp.BroadcastableShapes, op: str) -> None:
    a = np.random.default_rng(8).standard_normal(shapes.input_shapes[0])
    b = positive(shapes.input_shapes[1], 9)
    check(lambda a, b: BINARY[op](a, b).tanh(), [a, b])


def test_jvp_records_no_graph_and_leaves_its_inputs_alone() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    out, tangent = dl.jvp(lambda t: (t * t).sum(), [x], [np.ones(2)])
    assert not out.requires_grad and x.tangent is None and x.grad is None
    assert tangent == pytest.approx(6.0)
    assert dl.jvp(lambda t: t * 0 + 1.0, [x], [np.ones(2)])[1].tolist() == [0.0, 0.0]
    y = (x * 2).sum()  # forward mode is off again afterwards
    assert y.tangent is None and y.requires_grad


def test_jvp_errors() -> None:
    with pytest.raises(
        ShapeError, match=r"tangent 0 has shape \(3,\) but input 0 has shape \(2,\)"
    ):
        dl.jvp(lambda t: t, [np.ones(2)], [np.ones(3)])
    with pytest.raises(ValueError, match=r"1 input\(s\) but 2 tangent"):
        dl.jvp(lambda t: t, [np.ones(2)], [np.ones(2), np.ones(2)])
    with pytest.raises(TypeError, match="f must return a Tensor, got float"):
        dl.jvp(lambda t: 1.0, [np.ones(2)], [np.ones(2)])
