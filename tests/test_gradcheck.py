"""Gradient checking catches planted mistakes, in every mode, and says where."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlcourse import Tensor, nn
from dlcourse.gradcheck import (
    GradcheckError,
    check_backward,
    check_grad,
    check_module,
    gradcheck,
    numerical_grad,
    numerical_vjp,
    rel_error,
)

MODES = ["full", "sparse", "fast"]


def planted(scale_at: tuple[int, int], factor: float = 3.0):
    """x * w with a backward that is wrong at one element of x."""

    def fn(x: Tensor, w: Tensor) -> Tensor:
        def backward(g: np.ndarray) -> None:
            dx = g * w.data
            dx[scale_at] *= factor
            x.accumulate(dx)
            w.accumulate(g * x.data)

        return Tensor.from_op(x.data * w.data, (x, w), backward, "planted")

    return fn


def inputs(shape: tuple[int, int] = (4, 5)) -> list[Tensor]:
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(shape), requires_grad=True, name="x")
    w = Tensor(rng.standard_normal(shape), requires_grad=True, name="w")
    return [x, w]


def test_numerical_grad_and_vjp() -> None:
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = x.copy()
    assert np.allclose(numerical_grad(lambda v: np.sum(v**3), x), 3 * x**2, atol=1e-6)
    assert np.array_equal(x, before)
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.allclose(numerical_vjp(np.sin, x, dout), np.cos(x) * dout, atol=1e-8)
    with pytest.raises(TypeError, match="float numpy array"):
        numerical_grad(lambda v: v.sum(), np.arange(3))


def test_numerical_gradients_check_the_output_shape() -> None:
    x = np.array([0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"f\(x\) has shape \(3,\) and dout has shape \(3, 1\)"):
        numerical_vjp(np.sin, x, np.ones((3, 1)))
    assert np.allclose(numerical_vjp(np.sin, x, 2.0), 2 * np.cos(x))  # a number weights all
    assert numerical_grad(lambda v: v.max(), np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match=r"must be a single number.*\.sum\(\)"):
        numerical_grad(np.sin, x)
    with pytest.raises(ValueError, match=r"check_grad: f\(x\) has shape \(3,\)"):
        check_grad(np.sin, np.cos, x)


def test_a_function_that_changes_its_argument_is_checked_on_copies() -> None:
    def centred_square(v: np.ndarray) -> float:
        v -= v.mean()  # in place, as a learner's stable softmax might shift its logits
        return float(np.sum(v**2))

    x = np.array([1.0, 2.0, 4.0])
    assert check_grad(centred_square, lambda v: 2 * (v - v.mean()), x)
    assert np.array_equal(x, [1.0, 2.0, 4.0])
    assert check_backward(
        lambda v: np.subtract(v, v.max(), out=v), lambda d: d - [0, 0, d.sum()], [x]
    )


def test_a_scalar_output_is_checked_as_it_is() -> None:
    def wrong(x: Tensor) -> Tensor:  # sum(x^2) whose backward says 3x
        return Tensor.from_op(np.sum(x.data**2), (x,), lambda g: x.accumulate(3 * g * x.data), "sq")

    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong, [Tensor([1.0, 2.0], requires_grad=True)])
    assert "analytical (backward):    6\n" in str(info.value)
    assert "numerical (central diff): 4" in str(info.value)


def test_x_is_restored_even_when_f_raises() -> None:
    x = np.ones(3)

    def f(v: np.ndarray) -> float:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        numerical_grad(f, x)
    assert np.array_equal(x, np.ones(3))


def test_rel_error_floor() -> None:
    assert rel_error(1e-12, 3e-12) < 1e-3
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert rel_error(1.0, 3.0) == pytest.approx(0.5)
    assert rel_error(np.nan, 1.0) == np.inf


@pytest.mark.parametrize("mode", MODES)
def test_correct_gradients_pass(mode: str) -> None:
    assert gradcheck(lambda x, w: (x * w).tanh() @ w.T, inputs(), mode=mode)


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_planted_error_is_found_and_named(mode: str) -> None:
    with pytest.raises(GradcheckError) as info:
        gradcheck(planted((2, 3)), inputs(), mode=mode)
    message = str(info.value)
    assert "input 'x'" in message and "index (2, 3)" in message
    assert "analytical" in message and "numerical" in message and "relative error" in message
    assert "1 of 20" in message
    assert "3 times too large" in message


def test_sparse_mode_finds_a_widespread_error() -> None:
    def doubled(x: Tensor) -> Tensor:
        return Tensor.from_op(x.data**2, (x,), lambda g: x.accumulate(g * 4 * x.data), "sq")

    x = Tensor(np.random.default_rng(1).standard_normal(400) + 3, requires_grad=True, name="x")
    with pytest.raises(GradcheckError, match="2 times too large") as info:
        gradcheck(lambda x: doubled(x).sum(), [x], mode="sparse", samples=10)
    message = str(info.value)
    assert "input 'x' (shape (400,)): 10 of 10 checked elements disagree" in message
    index = int(re.search(r"worst at index \((\d+),\)", message).group(1))
    analytical = float(re.search(r"analytical \(backward\): +(\S+)", message).group(1))
    assert analytical == pytest.approx(4 * x.data[index], rel=1e-6)  # the element named


def test_named_inputs_by_mapping() -> None:
    x, w = inputs()
    with pytest.raises(GradcheckError, match="input 'weights'"):
        gradcheck(
            lambda data, weights: planted((0, 0))(weights, data),
            {
                "data": Tensor(x.data, requires_grad=True),
                "weights": Tensor(w.data, requires_grad=True),
            },
        )


def test_hints() -> None:
    relu_at_kink = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    wrong_at_zero = lambda x: Tensor.from_op(  # noqa: E731
        np.maximum(x.data, 0), (x,), lambda g: x.accumulate(g * (x.data >= 0)), "relu"
    )
    with pytest.raises(GradcheckError, match="kink"):
        gradcheck(wrong_at_zero, [relu_at_kink])
    sign = lambda x: Tensor.from_op(x.data * 2, (x,), lambda g: x.accumulate(-2 * g), "f")  # noqa: E731
    with pytest.raises(GradcheckError, match="opposite signs"):
        gradcheck(sign, [Tensor([1.0, 2.0], requires_grad=True)])
    x32 = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    assert gradcheck(lambda x: x.exp() * 1e3, [x32])  # numerical side in float64
    nearly = lambda x: Tensor.from_op(x.data * 2, (x,), lambda g: x.accumulate(g * 2.004), "f")  # noqa: E731
    with pytest.raises(GradcheckError, match="float32"):
        gradcheck(nearly, [x32])
    with pytest.raises(GradcheckError, match="finite inputs"):
        gradcheck(lambda x: x * 2, [Tensor([1.0, np.nan], requires_grad=True)])
    with pytest.raises(GradcheckError, match="NaN or inf"):
        gradcheck(lambda x: x.log(), [Tensor([0.0, 1.0], requires_grad=True)])
    lost = lambda u: Tensor.from_op(u.data * 2, (u,), lambda g: None, "lost")  # noqa: E731
    with pytest.raises(GradcheckError, match="no gradient at all"):
        gradcheck(lost, [Tensor([1.0], requires_grad=True)])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        gradcheck(lambda x: x, inputs()[:1], mode="quick")
    with pytest.raises(TypeError, match="not a Tensor"):
        gradcheck(lambda x: x, [np.ones(3)])


def test_check_grad_for_hand_written_numpy() -> None:
    x = np.random.default_rng(2).standard_normal((3, 2))
    assert check_grad(lambda v: np.sum(np.tanh(v)), lambda v: 1 - np.tanh(v) ** 2, x)
    with pytest.raises(GradcheckError, match="index"):
        check_grad(lambda v: np.sum(np.tanh(v)), lambda v: 1 - np.tanh(v), x)
    with pytest.raises(GradcheckError, match=r"shape \(2, 3\), but 'x' has shape \(3, 2\)"):
        check_grad(lambda v: np.sum(v), lambda v: np.ones((2, 3)), x)
    with pytest.raises(GradcheckError, match="returned None"):
        check_grad(lambda v: np.sum(v), lambda v: None, x)


def linear_backward(dout: np.ndarray, x: np.ndarray, W: np.ndarray):
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def test_check_backward_layer_style() -> None:
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    args = {"x": x, "W": W, "b": b}
    assert check_backward(lambda x, W, b: x @ W + b, lambda d: linear_backward(d, x, W), args)
    missing_transpose = lambda d: (d @ W.T, x.T @ d, d.mean(axis=0))  # noqa: E731
    with pytest.raises(GradcheckError, match=r"(?s)input 'b'.*times too small"):
        check_backward(lambda x, W, b: x @ W + b, missing_transpose, args)
    with pytest.raises(GradcheckError, match="must return 3 gradient"):
        check_backward(lambda x, W, b: x @ W + b, lambda d: (d, d), args)
    assert check_backward(np.tanh, lambda d: d * (1 - np.tanh(x) ** 2), [x])


@pytest.mark.parametrize("mode", MODES)
def test_check_module(mode: str) -> None:
    model = nn.MLP([3, 8, 8, 2], activation="tanh", rng=0)
    X = np.random.default_rng(4).standard_normal((6, 3))
    y = np.array([0, 1, 1, 0, 1, 0])
    assert check_module(model, lambda m: nn.cross_entropy(m(X), y), mode=mode)
    assert all(p.grad is None for p in model.parameters())


def test_check_module_names_the_parameter() -> None:
    model = nn.MLP([3, 4, 2], activation="tanh", rng=0)
    X = np.random.default_rng(4).standard_normal((6, 3))

    def loss(m: nn.MLP) -> Tensor:
        # the second layer's bias enters twice in the forward pass but once in backward
        out = m(X)
        sneaky = Tensor.from_op(m[2].bias.data.copy(), (m[2].bias,), lambda g: None, "detached")
        return (out * out).mean() + sneaky.sum()

    with pytest.raises(GradcheckError, match=r"input '2\.bias'"):
        check_module(model, loss, mode="fast")


def test_assert_close_names_the_worst_element_and_the_mistake() -> None:
    from dlcourse.gradcheck import assert_close

    x, W, b = np.ones((2, 3)), np.arange(12.0).reshape(3, 4), np.array([1.0, 2, 3, 4])
    assert_close(x @ W + b, x @ W + b, name="dense(x, W, b)")
    with pytest.raises(GradcheckError) as info:
        assert_close(x @ W, x @ W + b, name="dense(x, W, b)", mistakes={"add the bias b": x @ W})
    assert str(info.value) == (
        "dense(x, W, b) is wrong at index (0, 3): got 21, expected 25 (relative error 8.70e-02; "
        "8 of 8 elements differ).\n  hint: add the bias b"
    )
    with pytest.raises(GradcheckError, match=r"has shape \(4,\) but should have shape \(2, 4\)"):
        assert_close(b, x @ W)
    with pytest.raises(GradcheckError, match="forget to return"):
        assert_close(None, b)
    with pytest.raises(GradcheckError, match="got nan"):
        assert_close(np.array([np.nan]), np.array([1.0]))
