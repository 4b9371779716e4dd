"""Gradient checking: compare analytical gradients with central differences.

The central difference ``(f(x + eps) - f(x - eps)) / (2 eps)`` approximates
``f'(x)`` with an error that shrinks like ``eps**2``.  Everything here builds
on that one formula:

* :func:`numerical_grad` and :func:`numerical_vjp` compute numerical
  gradients of plain numpy functions;
* :func:`check_grad` and :func:`check_backward` check gradients a learner
  wrote by hand in numpy;
* :func:`gradcheck` checks functions of :class:`~dlcourse.Tensor`, whose
  gradients come from the engine, and :func:`check_module` checks every
  parameter of a model.

On a mismatch they raise :class:`GradcheckError`, whose message names the
input, the worst element, both values, the relative error and a hint.  Their
frames set ``__tracebackhide__``, so IPython and pytest show the learner's
line and the message, not this module's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from dlcourse.tensor import Tensor, no_grad

Mode = Literal["full", "sparse", "fast"]
MODES = ("full", "sparse", "fast")


class GradcheckError(AssertionError):
    """An analytical gradient disagrees with the numerical one."""


def rel_error(a: Any, b: Any, floor: float = 1e-8) -> float:
    """Largest elementwise ``|a - b| / max(|a| + |b|, floor)``.

    The floor keeps two tiny values (``1e-12`` and ``3e-12``, both "zero")
    from counting as a large relative error.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes {a.shape} and {b.shape} differ.")
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        err = np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)
    err = np.where(np.isnan(err), np.inf, err)
    return float(err.max())


def numerical_grad(f: Callable[[np.ndarray], Any], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function ``f`` at ``x``.

    ``x`` is perturbed in place one element at a time and always restored,
    even if ``f`` raises.
    """
    __tracebackhide__ = True
    x = _checked_float_array("numerical_grad", x)
    _output_shape("numerical_grad", f, x)
    return _vjp(f, x, np.ones(()), eps)


def numerical_vjp(
    f: Callable[[np.ndarray], Any], x: np.ndarray, dout: Any, eps: float = 1e-6
) -> np.ndarray:
    """The vector-Jacobian product ``dout . df/dx`` by central differences.

    For array-valued ``f`` this is what a ``backward(dout)`` must return for
    ``x``: the gradient of ``sum(f(x) * dout)``.  ``dout`` has the shape of
    ``f(x)``, or broadcasts to it (a number weights every output alike).
    """
    __tracebackhide__ = True
    x = _checked_float_array("numerical_vjp", x)
    dout = np.asarray(dout, dtype=float)
    _output_shape("numerical_vjp", f, x, dout.shape)
    return _vjp(f, x, dout, eps)


def _vjp(f: Callable[[np.ndarray], Any], x: np.ndarray, dout: np.ndarray, eps: float) -> np.ndarray:
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        grad[i] = _central_difference(lambda: np.sum(np.asarray(f(x.copy())) * dout), x, i, eps)
    return grad


def _checked_float_array(where: str, x: Any) -> np.ndarray:
    __tracebackhide__ = True
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(
            f"{where}: x must be a float numpy array (it is perturbed in place), got "
            f"{type(x).__name__}{'' if not isinstance(x, np.ndarray) else ' of ' + str(x.dtype)}. "
            "Convert it first: x = np.asarray(x, dtype=float)."
        )
    return x


def _output_shape(
    where: str, f: Callable[[np.ndarray], Any], x: np.ndarray, dout: tuple | None = None
) -> None:
    """Raise unless ``f(x)`` is a single number (``dout`` None), or has an
    output that a ``dout`` of that shape weights without adding elements."""
    __tracebackhide__ = True
    if x.size == 0:
        return  # nothing to perturb, nothing to check
    out = np.shape(f(x.copy()))
    if dout is None:
        if np.prod(out) != 1:
            raise ValueError(
                f"{where}: f(x) has shape {out}, but it must be a single number "
                "(a loss: reduce it with .sum() or .mean())."
            )
        return
    try:
        fits = np.prod(np.broadcast_shapes(out, dout)) == np.prod(out)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{where}: f(x) has shape {out} and dout has shape {dout}; dout must have the "
            "shape of f(x) (or broadcast to it without adding elements)."
        )


def _central_difference(value: Callable[[], Any], x: np.ndarray, i: tuple, eps: float) -> float:
    old = x[i]
    try:
        x[i] = old + eps
        plus = float(value())
        x[i] = old - eps
        minus = float(value())
    finally:
        x[i] = old
    return (plus - minus) / (2 * eps)


# --------------------------------------------------------------- the checker
class _Input(NamedTuple):
    name: str
    data: np.ndarray  # perturbed in place
    analytical: np.ndarray | None  # None: backward gave this input no gradient


def _compare(
    inputs: list[_Input],
    value: Callable[[], float],
    eps: float,
    atol: float,
    rtol: float,
    mode: Mode,
    samples: int,
    directions: int,
    rng: np.random.Generator,
) -> None:
    __tracebackhide__ = True
    for item in inputs:
        if not np.all(np.isfinite(item.data)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(item.data))[0])
            raise GradcheckError(
                f"input '{item.name}' holds {item.data[bad]} at index {bad}: gradients can only "
                "be checked at finite inputs. Fix the input (NaN or inf usually comes from "
                "log(0), a division by zero or an overflowing exp)."
            )
    if mode == "fast":
        if _directions_agree(inputs, value, eps, atol, rtol, directions, rng):
            return
        mode = "full"  # locate the worst element
    for item in inputs:
        if mode == "full" or item.data.size <= samples:
            indices = list(np.ndindex(item.data.shape))
        else:
            flat = rng.choice(item.data.size, size=samples, replace=False)
            indices = [np.unravel_index(int(k), item.data.shape) for k in flat]
        _check_elements(item, indices, value, eps, atol, rtol)


def _directions_agree(
    inputs: list[_Input],
    value: Callable[[], float],
    eps: float,
    atol: float,
    rtol: float,
    directions: int,
    rng: np.random.Generator,
) -> bool:
    """Compare directional derivatives ``grad . u`` for random unit directions ``u``."""
    for _ in range(directions):
        us = [rng.standard_normal(item.data.shape) for item in inputs]
        norm = np.sqrt(sum(float(np.sum(u * u)) for u in us)) or 1.0
        us = [u / norm for u in us]
        analytical = sum(
            float(np.sum(_analytical_or_zero(item) * u)) for item, u in zip(inputs, us)
        )
        saved = [item.data.copy() for item in inputs]
        try:
            for item, u in zip(inputs, us):
                item.data[...] += eps * u
            plus = value()
            for item, s, u in zip(inputs, saved, us):
                item.data[...] = s - eps * u
            minus = value()
        finally:
            for item, s in zip(inputs, saved):
                item.data[...] = s
        numerical = (plus - minus) / (2 * eps)
        if not abs(analytical - numerical) <= atol + rtol * abs(numerical):
            return False
    return True


def _analytical_or_zero(item: _Input) -> np.ndarray:
    return np.zeros_like(item.data) if item.analytical is None else item.analytical


def _check_elements(
    item: _Input,
    indices: list[tuple],
    value: Callable[[], float],
    eps: float,
    atol: float,
    rtol: float,
) -> None:
    __tracebackhide__ = True
    analytical = _analytical_or_zero(item)
    worst, worst_excess, failures = None, 0.0, 0
    for i in indices:
        numerical = _central_difference(value, item.data, i, eps)
        a = float(analytical[i])
        excess = abs(a - numerical) - (atol + rtol * abs(numerical))
        if not excess <= 0 or not np.isfinite(a) or not np.isfinite(numerical):
            failures += 1
            excess = np.inf if np.isnan(excess) else excess
            if worst is None or excess > worst_excess:
                worst, worst_excess, worst_values = i, excess, (a, numerical)
    if worst is None:
        return
    a, numerical = worst_values
    index = tuple(int(k) for k in worst)
    lines = [
        f"gradient check failed for input '{item.name}' (shape {item.data.shape}): "
        f"{failures} of {len(indices)} checked elements disagree; worst at index {index}",
        f"  analytical (backward):    {a:.8g}",
        f"  numerical (central diff): {numerical:.8g}",
        f"  relative error:           {rel_error(a, numerical):.2e}   "
        f"(allowed |a - n| <= atol {atol:g} + rtol {rtol:g} * |n|)",
    ]
    hint = _hint(item, index, a, numerical, value, eps)
    if hint:
        lines.append(f"  hint: {hint}")
    raise GradcheckError("\n".join(lines))


def _hint(
    item: _Input, index: tuple, a: float, numerical: float, value: Callable[[], float], eps: float
) -> str:
    if not (np.isfinite(a) and np.isfinite(numerical)):
        return (
            "a gradient is NaN or inf: look for log(0), a division by zero, or exp() of a "
            "large number (use a numerically stable formula)."
        )
    if item.analytical is None:
        return (
            "backward produced no gradient at all for this input: is it connected to the "
            "output, and does every operation on the way pass a gradient back?"
        )
    x = item.data
    old = x[index]
    try:
        centre = value()
        x[index] = old + eps
        right = (value() - centre) / eps
        x[index] = old - eps
        left = (centre - value()) / eps
    finally:
        x[index] = old
    if abs(right - left) > 1e-3 * max(1.0, abs(right) + abs(left)):
        return (
            f"the function has a kink within eps={eps:g} of this point (slope {left:.4g} on "
            f"the left, {right:.4g} on the right), as ReLU or max have at a tie; the "
            "numerical gradient is meaningless there. Move the input away from the kink."
        )
    if np.isclose(a, -numerical, rtol=1e-3, atol=1e-12):
        return "the two values have opposite signs: a sign error in backward?"
    hint = _ratio_hint(np.asarray(a), np.asarray(numerical), "backward")
    if not hint and item.analytical.dtype == np.float32 and rel_error(a, numerical) < 1e-2:
        return (
            "the analytical gradient is float32 (about 7 significant digits) and agrees to "
            "a few digits: rounding, not a wrong formula? Check in float64, or loosen atol/rtol."
        )
    return hint


def _ratio_hint(a: np.ndarray, expected: np.ndarray, what: str) -> str:
    """A hint when ``a`` is ``expected`` times a constant: a whole number
    (a sum where a mean was meant), its inverse (the reverse) or -1 (a sign)."""
    both = (a != 0) & (expected != 0)
    if not np.any(both):
        return ""
    ratios = a[both] / expected[both]
    if not np.allclose(ratios, ratios[0], rtol=1e-3):
        return ""
    if np.isclose(ratios[0], -1, rtol=1e-3):
        return f"{what} has the right size but the opposite sign: a sign error?"
    for factor, size, cause in (
        (ratios[0], "large", "a sum where a mean was meant, or something added twice?"),
        (1 / ratios[0], "small", "a mean where a sum was meant, or a factor missing?"),
    ):
        k = round(float(factor))
        if k > 1 and np.isclose(factor, k, rtol=1e-3):
            return f"{what} is {k} times too {size}: {cause}"
    return ""


def _check_args(mode: str, eps: float) -> Mode:
    if mode not in MODES:
        raise ValueError(f"gradcheck: mode must be one of {MODES}, got {mode!r}.")
    if not eps > 0:
        raise ValueError(f"gradcheck: eps must be positive, got {eps}.")
    return mode  # type: ignore[return-value]


# ------------------------------------------------------- functions of Tensors
def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor] | Mapping[str, Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    mode: Mode = "full",
    samples: int = 20,
    directions: int = 3,
    seed: int = 0,
) -> bool:
    """Check the engine's gradients of ``fn(*inputs)`` against central differences.

    ``inputs`` are tensors (or a mapping name -> tensor, passed to ``fn`` by
    keyword).  A non-scalar output ``y`` is checked through the scalar
    ``sum(y * r)`` with a fixed random ``r``, which exercises every output.
    The analytical gradients are computed in the inputs' dtype, the numerical
    ones in float64 (central differences in float32 are mostly noise).

    Modes: ``"full"`` checks every element of every input (two calls of
    ``fn`` each); ``"sparse"`` checks ``samples`` random elements per input;
    ``"fast"`` compares ``directions`` random directional derivatives (two
    calls each, whatever the number of elements) and, if one disagrees,
    runs the full check to name the worst element.

    Returns True, or raises :class:`GradcheckError`.
    """
    __tracebackhide__ = True
    mode = _check_args(mode, eps)
    named = dict(inputs) if isinstance(inputs, Mapping) else None
    items = list(named.items()) if named is not None else list(enumerate(inputs))
    leaves, numeric = {}, {}
    for key, t in items:
        if not isinstance(t, Tensor):
            raise TypeError(
                f"gradcheck: input {key!r} is a {type(t).__name__}, not a Tensor; wrap it in "
                "dlcourse.Tensor(...), or use check_grad/check_backward for numpy functions."
            )
        leaves[key] = Tensor(t.data.copy(), requires_grad=True)
        numeric[key] = Tensor(t.data.astype(np.float64))  # a copy, perturbed in place

    def call(args: dict[Any, Tensor]) -> Tensor:
        if named is not None:
            return fn(**args)
        return fn(*args.values())

    out = call(leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}.")
    if out.data.size == 1:  # a loss: its gradients are checked as they are
        weights = np.ones(out.shape)
    else:
        weights = np.random.default_rng(seed).standard_normal(out.shape)
    (out * weights).sum().backward()

    def value() -> float:
        with no_grad():
            return float(np.sum(call(numeric).data * weights))

    def label(key: Any, t: Tensor) -> str:
        return t.name or (str(key) if named is not None else f"input {key}")

    checked = [
        _Input(label(key, t), numeric[key].data, leaves[key].grad)
        for key, t in items
        if t.requires_grad
    ]
    if not checked:
        raise ValueError(
            "gradcheck: no input has requires_grad=True, so there is nothing to check."
        )
    _compare(
        checked, value, eps, atol, rtol, mode, samples, directions, np.random.default_rng(seed)
    )
    return True


def check_module(
    model: Any,
    loss_fn: Callable[[Any], Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    mode: Mode = "fast",
    samples: int = 20,
    directions: int = 3,
    seed: int = 0,
) -> bool:
    """Check the gradient of ``loss_fn(model)`` for every named parameter of a model.

    ``model`` is an :class:`~dlcourse.nn.Module` (anything with
    ``named_parameters()`` and ``zero_grad()``).  For the numerical gradients
    each parameter's data is replaced by a float64 copy, perturbed in place;
    the original arrays are put back afterwards, untouched.  The default mode
    is "fast": a handful of forward passes whatever the number of parameters.
    """
    __tracebackhide__ = True
    mode = _check_args(mode, eps)
    model.zero_grad()
    loss = loss_fn(model)
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        raise TypeError("check_module: loss_fn(model) must return a scalar Tensor (the loss).")
    loss.backward()

    def value() -> float:
        with no_grad():
            return float(loss_fn(model).data)

    params = dict(model.named_parameters())
    originals = {name: p.data for name, p in params.items()}
    checked = [_Input(name, p.data.astype(np.float64), p.grad) for name, p in params.items()]
    model.zero_grad()
    try:
        for item in checked:
            params[item.name].data = item.data
        _compare(
            checked, value, eps, atol, rtol, mode, samples, directions, np.random.default_rng(seed)
        )
    finally:
        for name, p in params.items():
            p.data = originals[name]
    return True


# ------------------------------------------------------ values, not gradients
def assert_close(
    actual: Any,
    expected: Any,
    name: str = "output",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`GradcheckError` unless ``actual`` matches ``expected``
    elementwise (``|a - e| <= atol + rtol * |e|``).

    The message names ``name``, the worst element, both values and the
    relative error.  ``mistakes`` maps a hint to the value a typical mistake
    would produce; when ``actual`` matches one of those, the hint is shown.
    """
    __tracebackhide__ = True
    if actual is None:
        raise GradcheckError(f"{name} is None: did you forget to return the result?")
    if isinstance(actual, Tensor):
        actual = actual.data
    try:
        a = np.asarray(actual, dtype=float)
    except (TypeError, ValueError):
        raise GradcheckError(
            f"{name} should be numbers (an array of shape {np.shape(expected)}), "
            f"got {type(actual).__name__}."
        ) from None
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        raise GradcheckError(
            f"{name} has shape {a.shape} but should have shape {e.shape}."
            + _mistake_hint(a, mistakes, atol, rtol)
        )
    with np.errstate(invalid="ignore"):
        excess = np.abs(a - e) - (atol + rtol * np.abs(e))
    excess = np.where(np.isnan(excess), np.inf, excess)
    if a.size == 0 or excess.max() <= 0:
        return
    worst = np.unravel_index(int(np.argmax(excess)), a.shape)
    index = tuple(int(i) for i in worst)
    where = f" at index {index}" if a.ndim else ""
    message = (
        f"{name} is wrong{where}: got {a[worst]:.8g}, expected {e[worst]:.8g} "
        f"(relative error {rel_error(a[worst], e[worst]):.2e}; "
        f"{int(np.sum(excess > 0))} of {a.size} elements differ)."
        + (_mistake_hint(a, mistakes, atol, rtol) or _as_hint(_ratio_hint(a, e, name)))
    )
    raise GradcheckError(message)


def _as_hint(text: str) -> str:
    return f"\n  hint: {text}" if text else ""


def _mistake_hint(
    a: np.ndarray, mistakes: Mapping[str, Any] | None, atol: float, rtol: float
) -> str:
    for hint, wrong in (mistakes or {}).items():
        w = np.asarray(wrong, dtype=float)
        if w.shape == a.shape and np.allclose(a, w, atol=atol, rtol=rtol):
            return f"\n  hint: {hint}"
    return ""


# ------------------------------------------------ numpy functions, by hand
def check_grad(
    f: Callable[[np.ndarray], Any],
    grad_f: Callable[[np.ndarray], Any],
    x: np.ndarray,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    name: str = "x",
) -> bool:
    """Check a hand-written gradient ``grad_f(x)`` of a scalar function ``f(x)``."""
    __tracebackhide__ = True
    x = _checked_float_array("check_grad", np.array(x, dtype=float))
    _output_shape("check_grad", f, x)
    analytical = _as_gradient(grad_f(x.copy()), x, name, "grad_f(x)")
    _compare(
        [_Input(name, x, analytical)],
        lambda: float(f(x.copy())),  # a copy: f may change its argument
        eps,
        atol,
        rtol,
        "full",
        0,
        0,
        np.random.default_rng(0),
    )
    return True


def check_backward(
    forward: Callable[..., Any],
    backward: Callable[[np.ndarray], Any],
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    dout: np.ndarray | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check a hand-written backward pass, CS231n style.

    ``forward(*inputs)`` returns the output array; ``backward(dout)`` returns
    the gradients with respect to the inputs, in order (a single array when
    there is one input).  ``dout`` defaults to a seeded random array of the
    output's shape.  With a mapping, the names label the messages and
    ``forward`` is called by keyword.

    Example::

        check_backward(lambda x, W, b: x @ W + b,
                       lambda dout: linear_backward(dout, x, W),
                       {"x": x, "W": W, "b": b})
    """
    __tracebackhide__ = True
    named = isinstance(inputs, Mapping)
    names = list(inputs) if named else [f"input {i}" for i in range(len(inputs))]
    arrays = [np.array(v, dtype=float) for v in (inputs.values() if named else inputs)]

    def call() -> np.ndarray:  # on copies: forward may change its arguments
        if named:
            return np.asarray(forward(**{n: a.copy() for n, a in zip(names, arrays)}), dtype=float)
        return np.asarray(forward(*(a.copy() for a in arrays)), dtype=float)

    out = call()
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(out.shape)
    dout = np.asarray(dout, dtype=float)
    if dout.shape != out.shape:
        raise ValueError(
            f"check_backward: dout has shape {dout.shape} but forward returned shape {out.shape}."
        )
    grads = backward(dout.copy())
    if len(arrays) == 1 and isinstance(grads, np.ndarray):
        grads = (grads,)
    if not isinstance(grads, (tuple, list)) or len(grads) != len(arrays):
        got = len(grads) if isinstance(grads, (tuple, list)) else type(grads).__name__
        raise GradcheckError(
            f"backward(dout) must return {len(arrays)} gradient(s), one per input "
            f"({', '.join(names)}), in that order; got {got}."
        )
    checked = [
        _Input(name, x, _as_gradient(g, x, name, "backward(dout)"))
        for name, x, g in zip(names, arrays, grads)
    ]
    _compare(
        checked,
        lambda: float(np.sum(call() * dout)),
        eps,
        atol,
        rtol,
        "full",
        0,
        0,
        np.random.default_rng(seed),
    )
    return True


def _as_gradient(g: Any, x: np.ndarray, name: str, source: str) -> np.ndarray:
    __tracebackhide__ = True
    if g is None:
        raise GradcheckError(
            f"{source} returned None for '{name}': return an array of shape {x.shape}."
        )
    g = np.asarray(g, dtype=float)
    if g.shape != x.shape:
        raise GradcheckError(
            f"{source}: the gradient for '{name}' has shape {g.shape}, but '{name}' has shape "
            f"{x.shape}; a gradient always has the shape of what it is the gradient of."
        )
    return g
