"""Comparing numbers, in the manner of ``torch.testing``.

* :func:`assert_close` compares values (an array a learner computed against
  the expected one) and names the worst element;
* :func:`assert_fast` tells a backward pass from a numerical derivative by
  its cost;
* :func:`numerical_grad` and :func:`numerical_vjp` compute derivatives of
  plain numpy functions by central differences, and
  :func:`central_difference` is the one formula they (and
  :mod:`dlcourse.gradcheck`) build on.

A failed check raises :class:`CheckError`, an ``AssertionError`` whose
traceback in IPython and Jupyter ends at the learner's own line: the frames of
this library are left out (pytest hides them too, through
``__tracebackhide__``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from types import TracebackType
from typing import Any

import numpy as np

Move = tuple[np.ndarray, Any, Any]  # (array, where, weights): move array[where] by eps * weights


class CheckError(AssertionError):
    """A check failed; the message says what disagrees, where and by how much."""

    def _render_traceback_(self) -> list[str]:
        """The traceback IPython shows: the learner's frames, not the library's."""
        from IPython import get_ipython

        tb = _visible_frames(self.__traceback__)
        shell = get_ipython()
        if shell is None:
            import traceback

            return traceback.format_exception(type(self), self, tb)
        return shell.InteractiveTB.structured_traceback(type(self), self, tb)


def _visible_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without the frames that set ``__tracebackhide__``."""
    visible = []
    while tb is not None:
        if not tb.tb_frame.f_locals.get("__tracebackhide__", False):
            visible.append(tb)
        tb = tb.tb_next
    for earlier, later in pairwise(visible):
        earlier.tb_next = later
    if visible:
        visible[-1].tb_next = None
        return visible[0]
    return None


def rel_error(a: Any, b: Any, floor: float = 1e-8) -> float:
    """Largest elementwise ``|a - b| / max(|a| + |b|, floor)``.

    The floor keeps two tiny values (``1e-12`` and ``3e-12``, both "zero")
    from counting as a large relative error; equal values (infinities too)
    have none.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes {a.shape} and {b.shape} differ.")
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        err = np.where(a == b, 0.0, np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor))
    return float(np.where(np.isnan(err), np.inf, err).max())


# ------------------------------------------------------------------ values
def assert_close(
    actual: Any,
    expected: Any,
    *,
    name: str = "output",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`CheckError` unless ``actual`` matches ``expected``
    elementwise: equal, or ``|a - e| <= atol + rtol * |e|``.

    The message names ``name``, the worst element, both values and the
    relative error.  ``mistakes`` maps a hint to the value a typical mistake
    would produce; when ``actual`` matches one of those, the hint is shown.
    NaN is close to nothing, as in ``torch.testing.assert_close``.
    """
    __tracebackhide__ = True
    if actual is None:
        raise CheckError(f"{name} is None: did you forget to return the result?")
    try:
        a = np.asarray(actual, dtype=float)
    except (TypeError, ValueError):
        raise CheckError(
            f"{name} should be numbers (an array of shape {np.shape(expected)}), "
            f"got {type(actual).__name__}."
        ) from None
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        raise CheckError(
            f"{name} has shape {a.shape} but should have shape {e.shape}."
            + _mistake_hint(a, mistakes, atol, rtol)
        )
    excess = _excess(a, e, atol, rtol)
    if a.size == 0 or excess.max() <= 0:
        return
    worst = np.unravel_index(int(np.argmax(excess)), a.shape)
    index = tuple(int(i) for i in worst)
    where = f" at index {index}" if a.ndim else ""
    raise CheckError(
        f"{name} is wrong{where}: got {a[worst]:.8g}, expected {e[worst]:.8g} "
        f"(relative error {rel_error(a[worst], e[worst]):.2e}; "
        f"{int(np.sum(excess > 0))} of {a.size} elements differ)."
        + (_mistake_hint(a, mistakes, atol, rtol) or _as_hint(ratio_hint(a, e, name)))
    )


def _excess(a: np.ndarray, e: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """By how much each ``|a - e|`` exceeds ``atol + rtol * |e|`` (<= 0: close; NaN: inf)."""
    with np.errstate(invalid="ignore"):
        excess = np.where(a == e, -1.0, np.abs(a - e) - (atol + rtol * np.abs(e)))
    return np.where(np.isnan(excess), np.inf, excess)


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


def ratio_hint(a: Any, expected: Any, what: str) -> str:
    """A hint when ``a`` is ``expected`` times a constant: a whole number or
    its inverse, -1 (a sign), or a power of ten.

    A hint claims no more than the ratio shows.  A small whole number may be a
    sum where a mean was meant (a batch size) or the reverse; a power of ten
    of 1000 or more is no batch size, but the mark of a step such as ``h``
    multiplied in where it should divide (``d / 2*h`` is ``(d / 2) * h``).
    """
    a, expected = np.asarray(a, dtype=float), np.asarray(expected, dtype=float)
    both = (a != 0) & (expected != 0) & np.isfinite(a) & np.isfinite(expected)
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
        if factor >= 1000 and _is_power_of_ten(factor):
            return (
                f"{what} is {factor:.0e} times too {size}, a power of ten: is a constant such "
                "as a step h multiplied where it should divide, or the reverse? Mind the "
                "precedence: d / 2*h means (d / 2) * h, and d / (2 * h) is the division by 2h"
            )
        k = round(float(factor))
        if k > 1 and np.isclose(factor, k, rtol=1e-3):
            return f"{what} is {k} times too {size}: {cause}"
    return ""


def _is_power_of_ten(factor: float) -> bool:
    exponent = round(float(np.log10(factor)))
    return bool(np.isclose(factor, 10.0**exponent, rtol=1e-3))


def assert_fast(
    call: Callable[[], Any],
    forward: Callable[[], Any],
    *,
    name: str,
    elements: int,
    slack: float = 0.05,
) -> Any:
    """``call()``'s result, or :class:`CheckError` if it costs more than a
    tenth of what central differences would.

    This is how a test tells a backward pass from a numerical derivative.
    Backpropagation costs a small multiple of one forward pass (about two for
    a dense layer), however many inputs there are; central differences cost
    two forward passes for each of the ``elements`` numbers differentiated.
    ``forward`` is the test's own forward pass on the same inputs (its best
    time of three is the unit), and ``call`` may take ``elements / 10``
    forward passes (at least 100) plus ``slack`` seconds: generous to any
    backward pass on a busy machine, yet twenty times less than finite
    differences need.  A run just over the budget is given a second chance;
    one far over it is not, so a slow answer fails without running twice.
    """
    __tracebackhide__ = True
    unit = min(_seconds(forward)[0] for _ in range(3))
    passes = max(100.0, elements / 10)
    budget = passes * unit + slack
    for _ in range(2):
        elapsed, result = _seconds(call)
        if elapsed <= budget:
            return result
        if elapsed > 5 * budget:
            break
    raise CheckError(
        f"{name} took {elapsed:.2g} s, as long as {elapsed / unit:.0f} forward passes "
        f"(allowed: {passes:.0f} forward passes and {slack} s, {budget:.2g} s).\n  hint: a "
        "backward pass costs a few forward passes, however many inputs there are; central "
        f"differences cost two forward passes for each of the {elements} numbers "
        "differentiated, and Python loops over single elements are slow too. Apply the chain "
        "rule with whole-array operations (matrix products)"
    )


def _seconds(f: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = f()
    return time.perf_counter() - start, result


# ------------------------------------------------------- central differences
def central_difference(
    value: Callable[[], np.ndarray], moves: Sequence[Move], eps: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``value()`` at ``x + eps u`` minus ``value()`` at ``x - eps u``, with
    the displacement of every moved element as actually represented.

    Each move ``(x, where, w)`` changes ``x[where]`` in place by ``eps * w``;
    every ``x`` is restored afterwards, even if ``value`` raises.  Dividing
    the difference by the represented displacement, rather than by the
    nominal ``2 eps``, keeps large inputs exact: at ``x = 3e7``, ``x + 1e-6``
    is not ``1e-6`` away from ``x``.  ``value`` returns the whole output, so a
    caller can weigh each output element's own difference: rounding in a
    large output then cannot swamp the change of a small one.
    """
    saved = [x[where].copy() for x, where, _ in moves]
    try:
        for (x, where, w), s in zip(moves, saved):
            x[where] = s + eps * w
        plus = value()
        up = [x[where].copy() for x, where, _ in moves]
        for (x, where, w), s in zip(moves, saved):
            x[where] = s - eps * w
        minus = value()
        steps = [u - x[where] for (x, where, _), u in zip(moves, up)]
    finally:
        for (x, where, _), s in zip(moves, saved):
            x[where] = s
    with np.errstate(invalid="ignore"):
        return plus - minus, steps


def as_output(result: Any, where: str) -> np.ndarray:
    """What a function returned (an array, a number or a Tensor) as float64 numbers."""
    __tracebackhide__ = True
    if result is None:
        raise TypeError(f"{where}: the function returned None: did you forget to return?")
    try:
        return np.array(result, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{where}: the function returned {type(result).__name__}, not numbers."
        ) from None


def numerical_grad(f: Callable[[np.ndarray], Any], x: Any, *, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function ``f`` at ``x``.

    ``x`` is any real array (float32 too); ``f`` is called on float64 copies,
    so ``x`` itself is never changed.  ``f`` may return a number, an array of
    one element or a Tensor.
    """
    __tracebackhide__ = True
    x = _float64_copy("numerical_grad", x)
    _check_output("numerical_grad", f, x)
    return _vjp("numerical_grad", f, x, np.ones(()), eps)


def numerical_vjp(
    f: Callable[[np.ndarray], Any], x: Any, dout: Any, *, eps: float = 1e-6
) -> np.ndarray:
    """The vector-Jacobian product ``dout . df/dx`` by central differences.

    For array-valued ``f`` this is what a ``backward(dout)`` must return for
    ``x``: the gradient of ``sum(f(x) * dout)``, each output element
    differenced on its own.  ``dout`` has the shape of ``f(x)``, or
    broadcasts to it (a number weights every output alike).
    """
    __tracebackhide__ = True
    x = _float64_copy("numerical_vjp", x)
    dout = np.asarray(dout, dtype=float)
    _check_output("numerical_vjp", f, x, dout.shape)
    return _vjp("numerical_vjp", f, x, dout, eps)


def _vjp(
    where: str, f: Callable[[np.ndarray], Any], x: np.ndarray, dout: np.ndarray, eps: float
) -> np.ndarray:
    __tracebackhide__ = True
    unmoved = step_rounds_away(x, eps)
    if unmoved:
        raise ValueError(f"{where}: {unmoved}")

    def value() -> np.ndarray:
        return as_output(f(x.copy()), where)  # a copy: f may change its argument

    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        difference, (step,) = central_difference(value, [(x, i, 1.0)], eps)
        grad[i] = np.sum(difference * dout) / step  # not 0, as checked above
    return grad


def step_rounds_away(x: np.ndarray, eps: float) -> str:
    """Why ``x +- eps`` cannot be told from ``x`` at some element ('' if it can
    everywhere): there the difference is 0 and no derivative can be read off."""
    moved = (x + eps) - (x - eps)
    if np.all(moved):
        return ""
    index = tuple(int(i) for i in np.argwhere(moved == 0)[0])
    larger = float(np.max(np.abs(x[np.isfinite(x)]), initial=1.0)) * 1e-8
    return (
        f"x is {x[index]:.6g} at index {index}, where x + eps rounds to x for eps={eps:g}, "
        f"so nothing can be differenced there. Pass a larger eps, such as eps={larger:.0e}."
    )


def _float64_copy(where: str, x: Any) -> np.ndarray:
    __tracebackhide__ = True
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{where}: x must hold real numbers, got {type(x).__name__} of dtype {array.dtype}."
        )
    return array.astype(np.float64)  # a copy, perturbed in float64 whatever x's dtype


def _check_output(
    where: str, f: Callable[[np.ndarray], Any], x: np.ndarray, dout: tuple | None = None
) -> None:
    """Raise unless ``f(x)`` is a single number (``dout`` None), or has an
    output that a ``dout`` of that shape weights without adding elements."""
    __tracebackhide__ = True
    if x.size == 0:
        return  # nothing to perturb, nothing to check
    out = as_output(f(x.copy()), where).shape
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
