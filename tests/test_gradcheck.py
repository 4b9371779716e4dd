"""Gradient checking catches planted mistakes, in every mode, and says where."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from dlcourse import Tensor, nn
from dlcourse.gradcheck import GradcheckError, check_grad, check_module, check_vjp, gradcheck
from dlcourse.testing import (
    CheckError,
    assert_close,
    assert_fast,
    numerical_grad,
    numerical_vjp,
    ratio_hint,
    rel_error,
)

MODES = ["full", "sparse", "fast"]


def planted(scale_at: tuple[int, int], factor: float = 3.0):
    """x * w with a backward that is wrong at one element of x."""

    def fn(x: Tensor, w: Tensor) -> Tensor:
        def dx(g: np.ndarray) -> np.ndarray:
            d = g * w.data
            d[scale_at] *= factor
            return d

        return Tensor.from_op(x.data * w.data, (x, w), (dx, lambda g: g * x.data), "planted")

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
    assert np.allclose(numerical_grad(lambda v: v.sum(), np.arange(3)), 1.0)  # integers too
    with pytest.raises(TypeError, match="x must hold real numbers"):
        numerical_grad(lambda v: v.sum(), np.array(["a"]))


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
    assert check_vjp(lambda v: np.subtract(v, v.max(), out=v), lambda d: d - [0, 0, d.sum()], [x])


def test_a_scalar_output_is_checked_as_it_is() -> None:
    def wrong(x: Tensor) -> Tensor:  # sum(x^2) whose backward says 3x
        return Tensor.from_op(np.sum(x.data**2), (x,), (lambda g: 3 * g * x.data,), "sq")

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
        return Tensor.from_op(x.data**2, (x,), (lambda g: g * 4 * x.data,), "sq")

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
        np.maximum(x.data, 0), (x,), (lambda g: g * (x.data >= 0),), "relu"
    )
    with pytest.raises(GradcheckError, match="kink"):
        gradcheck(wrong_at_zero, [relu_at_kink])
    sign = lambda x: Tensor.from_op(x.data * 2, (x,), (lambda g: -2 * g,), "f")  # noqa: E731
    with pytest.raises(GradcheckError, match="opposite signs"):
        gradcheck(sign, [Tensor([1.0, 2.0], requires_grad=True)])
    x32 = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    assert gradcheck(lambda x: x.exp() * 1e3, [x32])  # numerical side in float64
    nearly = lambda x: Tensor.from_op(x.data * 2, (x,), (lambda g: g * 2.004,), "f")  # noqa: E731
    with pytest.raises(GradcheckError, match="float32"):
        gradcheck(nearly, [x32])
    with pytest.raises(GradcheckError, match="finite inputs"):
        gradcheck(lambda x: x * 2, [Tensor([1.0, np.nan], requires_grad=True)])
    with pytest.raises(GradcheckError, match="NaN or inf"):
        gradcheck(lambda x: x.log(), [Tensor([0.0, 1.0], requires_grad=True)])
    lost = lambda u: Tensor.from_op(u.data * 2, (u,), (None,), "lost")  # noqa: E731
    with pytest.raises(GradcheckError, match="no gradient at all"):
        gradcheck(lost, [Tensor([1.0], requires_grad=True)])


def test_a_ratio_hint_claims_no_more_than_the_ratio_shows() -> None:
    x, h = np.array([0.0, 0.5, 1.0]), 1e-5
    precedence = (np.sin(x + h) - np.sin(x - h)) / 2 * h  # ((...) / 2) * h, not / (2h)
    hint = ratio_hint(precedence, np.cos(x), "d")
    assert "1e+10 times too small, a power of ten" in hint and "d / 2*h" in hint
    assert "a mean where" not in hint  # no batch is 1e10 examples long
    assert ratio_hint(np.cos(x) / 4, np.cos(x), "d") == (
        "d is 4 times too small: a mean where a sum was meant, or a factor missing?"
    )
    with pytest.raises(CheckError, match="a power of ten"):
        assert_close(precedence, np.cos(x), name="d")


def test_assert_fast_tells_a_backward_pass_from_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((16, 128)), rng.standard_normal((128, 128))
    dout = rng.standard_normal((16, 128))
    elements = x.size + W.size
    backward = assert_fast(
        lambda: (dout @ W.T, x.T @ dout), lambda: x @ W, name="backward", elements=elements
    )
    assert_close(backward[0], dout @ W.T)
    # central differences for both inputs, as the backward pass gives both: 2 x 18,432
    # forward passes against the 1,843 allowed (differencing x alone would take 4,096,
    # near enough to the allowance plus its slack to pass on a fast machine)
    with pytest.raises(CheckError, match=r"(?s)took .* forward passes.*central differences"):
        assert_fast(
            lambda: (
                numerical_vjp(lambda v: v @ W, x, dout),
                numerical_vjp(lambda w: x @ w, W, dout),
            ),
            lambda: x @ W,
            name="finite differences",
            elements=elements,
        )


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


def test_check_vjp_layer_style() -> None:
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    args = {"x": x, "W": W, "b": b}
    assert check_vjp(lambda x, W, b: x @ W + b, lambda d: linear_backward(d, x, W), args)
    missing_transpose = lambda d: (d @ W.T, x.T @ d, d.mean(axis=0))  # noqa: E731
    with pytest.raises(GradcheckError, match=r"(?s)input 'b'.*times too small"):
        check_vjp(lambda x, W, b: x @ W + b, missing_transpose, args)
    with pytest.raises(GradcheckError, match="must return 3 gradient"):
        check_vjp(lambda x, W, b: x @ W + b, lambda d: (d, d), args)
    assert check_vjp(np.tanh, lambda d: d * (1 - np.tanh(x) ** 2), [x])


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
        sneaky = Tensor.from_op(m[2].bias.data.copy(), (m[2].bias,), (None,), "detached")
        return (out * out).mean() + sneaky.sum()

    with pytest.raises(GradcheckError, match=r"input '2\.bias'"):
        check_module(model, loss, mode="fast")


def test_assert_close_names_the_worst_element_and_the_mistake() -> None:
    x, W, b = np.ones((2, 3)), np.arange(12.0).reshape(3, 4), np.array([1.0, 2, 3, 4])
    assert_close(x @ W + b, x @ W + b, name="dense(x, W, b)")
    with pytest.raises(CheckError) as info:
        assert_close(x @ W, x @ W + b, name="dense(x, W, b)", mistakes={"add the bias b": x @ W})
    assert str(info.value) == (
        "dense(x, W, b) is wrong at index (0, 3): got 21, expected 25 (relative error 8.70e-02; "
        "8 of 8 elements differ).\n  hint: add the bias b"
    )
    with pytest.raises(CheckError, match=r"has shape \(4,\) but should have shape \(2, 4\)"):
        assert_close(b, x @ W)
    with pytest.raises(CheckError, match="forget to return"):
        assert_close(None, b)
    with pytest.raises(CheckError, match="got nan"):
        assert_close(np.array([np.nan]), np.array([1.0]))


# ------------------------------------- found by differential testing (issue 10)
def test_outputs_of_very_different_sizes_raise_no_false_alarm() -> None:
    assert gradcheck(lambda x: x.exp(), [Tensor([0.0, 20.0], requires_grad=True)])
    rng = np.random.default_rng(5)
    smooth = [
        lambda x: x.exp(),
        lambda x: x * x * x,
        lambda x: (x * 0.1).exp() * x,
        lambda x: (x * x + 1).log(),
        lambda x: x.tanh() * x * x,
        lambda x: x.sigmoid() * x,
        lambda x: (x * x).exp() * 1e-30,
        lambda x: x**4 - x,
        lambda x: (x * 0.3).exp() / (x * x + 1),
        lambda x: dl_sum_rows(x * x * x),
    ]
    for fn in smooth:
        x = Tensor(rng.normal(0, 10, (3, 4)), requires_grad=True)
        assert gradcheck(fn, [x])
    for big in (3e7, -5e7, 1e9):  # x + eps is not eps away from x: the represented step is
        assert gradcheck(lambda x: x.sum(), [Tensor([big], requires_grad=True)], atol=0, rtol=0)


def dl_sum_rows(x: Tensor) -> Tensor:
    return x.sum(axis=1)


def test_fast_mode_checks_each_parameter_on_its_own_scale() -> None:
    class NoBiasGradient(nn.Module):
        """A layer whose backward never writes b."""

        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.W = Tensor(rng.standard_normal((784, 10)) * 0.01, requires_grad=True)
            self.b = Tensor(np.zeros(10), requires_grad=True)

        def forward(self, x: Tensor) -> Tensor:
            W, b = self.W, self.b
            out = x.data @ W.data + b.data
            return Tensor.from_op(out, (x, W, b), (None, lambda g: x.data.T @ g, None), "lazy")

    model = NoBiasGradient()
    for seed in range(10):
        x = np.random.default_rng(seed).uniform(0, 255, (64, 784))
        with pytest.raises(GradcheckError, match="input 'b'") as info:
            check_module(model, lambda m: (m(x) ** 2).mean() * 1e-3, seed=seed)  # noqa: B023
        assert "no gradient at all" in str(info.value)


def test_a_backward_for_a_0d_input_may_return_a_number() -> None:
    x = np.array(0.7)
    assert check_vjp(np.sin, lambda d: d * np.cos(x), [x])  # d * np.cos(x) is np.float64


def test_numerical_gradients_of_float32_arrays_are_float64_and_leave_x_alone() -> None:
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    before = x.copy()
    g = numerical_grad(lambda v: np.sum(v**3), x)
    assert g.dtype == np.float64 and np.allclose(g, 3 * before.astype(float) ** 2, rtol=1e-8)
    assert np.array_equal(x, before)
    v = numerical_vjp(np.exp, x, np.ones(3))
    assert np.allclose(v, np.exp(before.astype(float)), rtol=1e-8)


def test_numerical_grad_of_a_function_returning_a_tensor() -> None:
    x = np.array([0.5, -1.0])
    assert np.allclose(numerical_grad(lambda v: (Tensor(v) ** 2).sum(), x), 2 * x)


def test_assert_close_treats_equal_infinities_as_equal() -> None:
    assert_close(np.inf, np.inf)
    assert_close(np.array([-np.inf, 1.0]), [-np.inf, 1.0])
    with pytest.raises(CheckError, match="got inf, expected -inf"):
        assert_close(np.inf, -np.inf)
    with pytest.raises(CheckError, match="got nan"):
        assert_close(np.nan, np.nan)  # as torch.testing.assert_close does by default


def test_options_are_keyword_only_and_checked() -> None:
    x = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError):
        gradcheck(lambda x: x * 2, [x], 1e-6)  # type: ignore[misc]
    with pytest.raises(ValueError, match="eps must be positive"):
        check_grad(np.sum, np.ones_like, np.ones(2), eps=0)
    with pytest.raises(ValueError, match="samples and directions must be at least 1"):
        gradcheck(lambda x: x * 2, [x], directions=0)


# ------------------------------------------------ fast mode finds its culprit
def wrong_at(elements: dict[tuple[int, int], float]):
    """x * w, whose backward for x is off by the given amounts at the given elements."""

    def fn(x: Tensor, w: Tensor) -> Tensor:
        def dx(g: np.ndarray) -> np.ndarray:
            d = g * w.data
            for index, error in elements.items():
                d[index] += error
            return d

        return Tensor.from_op(x.data * w.data, (x, w), (dx, lambda g: g * x.data), "planted")

    return lambda x, w: fn(x, w).sum()


def big_inputs(n: int = 300) -> list[Tensor]:
    rng = np.random.default_rng(0)
    return [
        Tensor(rng.standard_normal((n, n)), requires_grad=True, name="W"),
        Tensor(rng.standard_normal((n, n)), requires_grad=True, name="V"),
    ]


def test_fast_mode_locates_one_wrong_element_among_90k_in_few_evaluations() -> None:
    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong_at({(123, 45): 5.0}), big_inputs(), mode="fast")
    error = info.value
    assert error.input == "W" and error.index == (123, 45) and error.located == 1
    assert error.numerical == pytest.approx(big_inputs()[1].data[123, 45], rel=1e-6)
    assert error.analytical == pytest.approx(error.numerical + 5.0, rel=1e-6)
    # one failed direction, then two halves at each of log2(90,000) ~ 17 levels
    assert error.evaluations <= 2 + 4 * 17 + 4, error.evaluations
    message = str(error)
    assert "group testing located 1 of 90000 elements" in message
    assert f"in {error.evaluations} evaluations" in message and "index (123, 45)" in message


def test_fast_mode_names_the_worst_of_several_wrong_elements() -> None:
    planted = {(3, 4): 0.5, (250, 17): 40.0, (150, 150): -2.0}
    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong_at(planted), big_inputs(), mode="fast")
    error = info.value
    assert error.index == (250, 17) and error.located == 3
    assert error.evaluations <= 2 + 3 * 4 * 17 + 12, error.evaluations
    assert "located 3 of 90000" in str(error)


def test_fast_mode_raises_no_false_alarm_next_to_a_kink() -> None:
    x = np.random.default_rng(1).standard_normal((300, 300))
    x[7, 7] = 20e-6  # 20 eps from relu's kink: correct, if close
    x[8, 8] = -20e-6
    assert gradcheck(lambda x: x.relu().sum(), [Tensor(x, requires_grad=True)], mode="fast")
    assert gradcheck(lambda x: (x.relu() * x).sum(), [Tensor(x, requires_grad=True)], mode="fast")


def test_ipython_shows_the_message_and_the_learners_line_not_the_librarys() -> None:
    script = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance(colors="nocolor")
shell.run_cell('''import numpy as np
from dlcourse.gradcheck import check_grad
from dlcourse.testing import assert_close
def my_gradient(v):
    return 3 * v
check_grad(lambda v: np.sum(v ** 2), my_gradient, np.ones(3))  # the learner's line
''')
shell.run_cell("assert_close(np.ones(2), np.zeros(2), name='y')")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    out = result.stdout
    assert "----> 6 check_grad(lambda v: np.sum(v ** 2), my_gradient, np.ones(3))" in out
    assert "GradcheckError: gradient check failed for input 'x'" in out
    assert "----> 1 assert_close(np.ones(2), np.zeros(2), name='y')" in out
    assert "CheckError: y is wrong at index (0,)" in out
    assert "gradcheck.py" not in out and "testing.py" not in out, out


@pytest.mark.parametrize("mode", MODES)
def test_every_check_takes_every_mode(mode: str) -> None:
    rng = np.random.default_rng(9)
    x, W, b = rng.standard_normal((30, 20)), rng.standard_normal((20, 10)), rng.standard_normal(10)
    args = {"x": x, "W": W, "b": b}
    forward = lambda x, W, b: x @ W + b  # noqa: E731
    assert check_vjp(forward, lambda d: linear_backward(d, x, W), args, mode=mode)
    doubled = lambda d: (d @ W.T, x.T @ d, 2 * d.sum(axis=0))  # noqa: E731
    with pytest.raises(GradcheckError, match=r"(?s)input 'b'.*2 times too large") as info:
        check_vjp(forward, doubled, args, mode=mode)
    assert info.value.input == "b" and info.value.evaluations > 0
    f, grad = lambda v: np.sum(np.sin(v)), np.cos
    assert check_grad(f, grad, x, mode=mode)
    with pytest.raises(GradcheckError, match="opposite signs"):
        check_grad(f, lambda v: -np.cos(v), x, mode=mode)


@pytest.mark.parametrize("mode", ["full", "sparse", "fast"])
def test_a_step_that_rounds_away_is_a_clear_error_in_every_mode(mode: str) -> None:
    # at 2e10, x + 1e-6 is x: full mode divided by a zero step, fast mode passed anything
    wrong = lambda x: Tensor.from_op(x.data * 2, [x], [lambda g: g * 3], "wrong")  # noqa: E731
    with pytest.raises(GradcheckError, match=r"rounds to x.*eps=2e\+02"):
        gradcheck(wrong, [Tensor([2e10, 1.0], requires_grad=True)], mode=mode)
    with pytest.raises(ValueError, match="rounds to x"):
        numerical_grad(lambda x: 2 * x.sum(), np.array([2e10]))
    assert gradcheck(lambda x: x * 2, [Tensor([2e10, 1.0], requires_grad=True)], eps=1e2)


def test_a_function_that_returns_nothing_is_told_so() -> None:
    for check in (
        lambda: numerical_grad(lambda x: None, np.ones(2)),
        lambda: numerical_vjp(lambda x: None, np.ones(2), 1.0),
        lambda: check_grad(lambda x: None, lambda x: x, np.ones(2)),
        lambda: check_vjp(lambda x: None, lambda d: d, [np.ones(2)]),
    ):
        with pytest.raises(TypeError, match="returned None: did you forget to return"):
            check()


def test_rounding_in_a_huge_output_is_not_called_a_kink() -> None:
    x = np.random.default_rng(3).normal(0, 10, 20)  # sum(exp(x)) is about 1e14
    with pytest.raises(GradcheckError) as failure:
        gradcheck(lambda x: x.exp().sum(), [Tensor(x, requires_grad=True)])
    assert "rounding alone" in str(failure.value) and "kink" not in str(failure.value)
