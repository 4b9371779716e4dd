"""Gradient checking: compare analytical gradients with central differences.

Four checks, each named by what it checks:

* :func:`gradcheck` checks functions of :class:`~dlcourse.Tensor`, whose
  gradients come from the engine, and :func:`check_module` every parameter
  of a model;
* :func:`check_vjp` checks a hand-written backward pass: given ``dout`` it
  returns the vector-Jacobian product for each input (CS231n style);
* :func:`check_grad` checks the hand-written gradient of a scalar numpy function.

Their options are keyword-only (``eps``, ``atol``, ``rtol``, ``mode``,
``samples``, ``directions``, ``seed``) and travel together as one
:class:`Tolerances`.  Each output element is differenced on its own and the
represented step is used (see :func:`~dlcourse.testing.central_difference`),
so outputs of very different sizes, and large inputs, raise no false alarm.

Modes: ``"full"`` checks every element (two evaluations each); ``"sparse"``
checks ``samples`` random elements per input; ``"fast"`` compares
``directions`` random directional derivatives per input, each input on its
own scale (two evaluations each, whatever the size).  When one disagrees,
fast mode locates the culprits by group testing: it compares directional
derivatives on the two halves of the suspect elements (random signs within
each half) and recurses into every half that disagrees, which takes
O(k log n) evaluations for k wrong elements among n, instead of 2n.

On a mismatch they raise :class:`GradcheckError`, whose message names the
input, the worst element, both values, the relative error and a hint; the
same facts are its attributes.  In IPython and Jupyter its traceback ends at
the learner's line, and pytest hides this module's frames too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from dlcourse.tensor import Tensor, no_grad
from dlcourse.testing import (
    CheckError,
    as_output,
    central_difference,
    ratio_hint,
    rel_error,
    step_rounds_away,
)

Mode = Literal["full", "sparse", "fast"]
MODES = ("full", "sparse", "fast")
MOST_LOCATED = 10  # fast mode stops locating after this many disagreeing elements


class Tolerances(NamedTuple):
    """The options every check shares."""

    eps: float = 1e-6  # the step of the central differences
    atol: float = 1e-5  # an element agrees when |a - n| <= atol + rtol * |n|
    rtol: float = 1e-3
    mode: Mode = "full"
    samples: int = 20  # elements per input in "sparse" mode
    directions: int = 3  # random directions per input in "fast" mode
    seed: int = 0

    def excess(self, analytical: float, numerical: float) -> float:
        """By how much ``|a - n|`` exceeds what is allowed (<= 0: they agree)."""
        if analytical == numerical:
            return -1.0
        excess = abs(analytical - numerical) - (self.atol + self.rtol * abs(numerical))
        return np.inf if np.isnan(excess) else excess


def _tolerances(where: str, **options: Any) -> Tolerances:
    __tracebackhide__ = True
    t = Tolerances(**options)
    if t.mode not in MODES:
        raise ValueError(f"{where}: mode must be one of {MODES}, got {t.mode!r}.")
    if not t.eps > 0:
        raise ValueError(f"{where}: eps must be positive, got {t.eps}.")
    if not (t.atol >= 0 and t.rtol >= 0):
        raise ValueError(f"{where}: atol and rtol must be >= 0, got {t.atol} and {t.rtol}.")
    if t.samples < 1 or t.directions < 1:
        raise ValueError(
            f"{where}: samples and directions must be at least 1, got {t.samples} and "
            f"{t.directions}."
        )
    return t


class GradcheckError(CheckError):
    """An analytical gradient disagrees with the numerical one.

    Attributes: ``input`` (its name), ``index`` (the worst element),
    ``analytical`` and ``numerical`` (its two values), ``located`` (how many
    disagreeing elements were found) and ``evaluations`` (how many times the
    function was evaluated).
    """

    def __init__(
        self,
        message: str,
        input: str = "",
        index: tuple[int, ...] | None = None,
        analytical: float = np.nan,
        numerical: float = np.nan,
        located: int = 0,
        evaluations: int = 0,
    ):
        super().__init__(message)
        self.input, self.index = input, index
        self.analytical, self.numerical = analytical, numerical
        self.located, self.evaluations = located, evaluations


# --------------------------------------------------------------- the checker
class _Input(NamedTuple):
    name: str
    data: np.ndarray  # float64, C-ordered, perturbed in place
    analytical: np.ndarray | None  # None: backward gave this input no gradient

    @property
    def flat(self) -> np.ndarray:
        return self.data.reshape(-1)  # a view: moving it moves data

    @property
    def gradient(self) -> np.ndarray:
        g = np.zeros(self.data.shape) if self.analytical is None else self.analytical
        return np.asarray(g, dtype=np.float64).reshape(-1)


class _Element(NamedTuple):
    k: int  # flat index
    analytical: float
    numerical: float
    excess: float


class _Check:
    """One gradient check: the inputs, ``function`` (the whole output, float64,
    of the current inputs) and the weights that combine the output's elements."""

    def __init__(
        self,
        inputs: list[_Input],
        function: Callable[[], np.ndarray],
        weights: np.ndarray,
        options: Tolerances,
    ):
        self.inputs, self.function, self.weights, self.options = inputs, function, weights, options
        self.evaluations = 0
        self.rng = np.random.default_rng(options.seed)

    def value(self) -> np.ndarray:
        self.evaluations += 1
        return self.function()

    def weighed(self, difference: np.ndarray) -> float:
        return float(np.sum(difference * self.weights))

    def element(self, item: _Input, k: int) -> _Element:
        """Element ``k`` of ``item``: its analytical and numerical derivative."""
        eps = self.options.eps
        difference, (step,) = central_difference(self.value, [(item.flat, k, 1.0)], eps)
        numerical = self.weighed(difference) / float(step)  # not 0: _run saw to that
        a = float(item.gradient[k])
        return _Element(k, a, numerical, self.options.excess(a, numerical))

    def direction_agrees(self, item: _Input, where: Any, size: int) -> bool:
        """Whether the directional derivative along random ``w`` (unit length,
        on the elements ``where`` of ``item``) agrees with the analytical one."""
        w = self.rng.standard_normal(size)
        w /= np.linalg.norm(w) or 1.0
        eps = self.options.eps
        difference, (step,) = central_difference(self.value, [(item.flat, where, w)], eps)
        analytical = float(np.sum(item.gradient[where] * step)) / (2 * eps)
        numerical = self.weighed(difference) / (2 * eps)
        return self.options.excess(analytical, numerical) <= 0

    def locate(self, item: _Input) -> list[_Element]:
        """The disagreeing elements of ``item``, by group testing: of each
        suspect set, check both halves along a random direction and keep
        every half that disagrees; a single element is checked on its own."""
        found: list[_Element] = []
        suspects = [(np.arange(item.data.size), 0)]
        while suspects and len(found) < MOST_LOCATED:
            subset, retries = suspects.pop()
            flagged = False
            for half in np.array_split(subset, 2):
                if half.size == 1:
                    e = self.element(item, int(half[0]))
                    if e.excess > 0:
                        found.append(e)
                        flagged = True
                elif half.size and not self.direction_agrees(item, half, half.size):
                    suspects.append((half, 0))
                    flagged = True
            if not flagged and retries < 2 and subset.size > 1:
                suspects.append((subset, retries + 1))  # the halves' errors cancelled: redraw
        return found


def _run(check: _Check) -> None:
    __tracebackhide__ = True
    options = check.options
    for item in check.inputs:
        if not np.all(np.isfinite(item.data)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(item.data))[0])
            raise GradcheckError(
                f"input '{item.name}' holds {item.data[bad]} at index {bad}: gradients can only "
                "be checked at finite inputs. Fix the input (NaN or inf usually comes from "
                "log(0), a division by zero or an overflowing exp).",
                input=item.name,
                index=bad,
            )
        unmoved = step_rounds_away(item.data, options.eps)
        if unmoved:
            raise GradcheckError(f"input '{item.name}': {unmoved}", input=item.name)
    for item in check.inputs:
        n = item.data.size
        if n == 0:
            continue
        if options.mode == "fast":
            if all(check.direction_agrees(item, slice(None), n) for _ in range(options.directions)):
                continue
            found = check.locate(item)
            if found:
                more = " (it stops there)" if MOST_LOCATED == len(found) < n else ""
                summary = (
                    f"a random directional derivative disagrees, and group testing located "
                    f"{len(found)} of {n} elements that disagree{more}, in "
                    f"{check.evaluations} evaluations of the function"
                )
                raise _failure(check, item, found, summary)
            if not all(check.direction_agrees(item, slice(None), n) for _ in range(2)):
                raise GradcheckError(
                    f"gradient check failed for input '{item.name}' (shape {item.data.shape}): "
                    "directional derivatives disagree, but no single element does on its own "
                    f"({check.evaluations} evaluations of the function): the error is spread "
                    "thinly over many elements. Run mode='full' to compare every element.",
                    input=item.name,
                    evaluations=check.evaluations,
                )
            continue  # rounding, not a wrong gradient: nothing disagrees when looked at closely
        if options.mode == "full" or n <= options.samples:
            positions = range(n)
        else:
            positions = check.rng.choice(n, size=options.samples, replace=False)
        elements = [check.element(item, int(k)) for k in positions]
        bad = [e for e in elements if e.excess > 0]
        if bad:
            summary = f"{len(bad)} of {len(elements)} checked elements disagree"
            raise _failure(check, item, bad, summary)


def _failure(check: _Check, item: _Input, bad: list[_Element], summary: str) -> GradcheckError:
    evaluations = check.evaluations  # before the hint's own evaluations
    worst = max(bad, key=lambda e: e.excess)
    index = tuple(int(i) for i in np.unravel_index(worst.k, item.data.shape))
    options = check.options
    lines = [
        f"gradient check failed for input '{item.name}' (shape {item.data.shape}): "
        f"{summary}; worst at index {index}",
        f"  analytical (backward):    {worst.analytical:.8g}",
        f"  numerical (central diff): {worst.numerical:.8g}",
        f"  relative error:           {rel_error(worst.analytical, worst.numerical):.2e}   "
        f"(allowed |a - n| <= atol {options.atol:g} + rtol {options.rtol:g} * |n|)",
    ]
    hint = _hint(check, item, worst, bad)
    if hint:
        lines.append(f"  hint: {hint}")
    return GradcheckError(
        "\n".join(lines),
        input=item.name,
        index=index,
        analytical=worst.analytical,
        numerical=worst.numerical,
        located=len(bad),
        evaluations=evaluations,
    )


def _hint(check: _Check, item: _Input, worst: _Element, bad: list[_Element]) -> str:
    a, numerical = worst.analytical, worst.numerical
    eps = check.options.eps
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
    x, k = item.flat, worst.k
    old = x[k]
    try:
        centre = check.value()
        x[k] = old + eps
        right = check.weighed(check.value() - centre) / (x[k] - old)
        x[k] = old - eps
        left = check.weighed(centre - check.value()) / (old - x[k])
    finally:
        x[k] = old
    size = float(np.sum(np.abs(centre * check.weights)))  # the weighed output's magnitude
    noise = 2 * np.finfo(np.float64).eps * size / eps  # what its rounding does to a slope
    if max(abs(right - left), abs(a - numerical)) <= 10 * noise:
        return (
            f"the output is so large (the weighed sum of its magnitudes is {size:.3g}) that "
            f"its rounding alone moves this numerical derivative by about {noise:.2g}: the "
            "gradient may well be right, "
            "but the check cannot tell. Check at inputs that give smaller outputs, or a "
            "non-scalar output (gradcheck weighs each element on its own)."
        )
    if abs(right - left) > 1e-3 * max(1.0, abs(right) + abs(left)):
        return (
            f"the function has a kink within eps={eps:g} of this point (slope {left:.4g} on "
            f"the left, {right:.4g} on the right), as ReLU or max have at a tie; the "
            "numerical gradient is meaningless there. Move the input away from the kink."
        )
    if np.isclose(a, -numerical, rtol=1e-3, atol=1e-12):
        return "the two values have opposite signs: a sign error in backward?"
    hint = ratio_hint([e.analytical for e in bad], [e.numerical for e in bad], "backward")
    if not hint and item.analytical.dtype == np.float32 and rel_error(a, numerical) < 1e-2:
        return (
            "the analytical gradient is float32 (about 7 significant digits) and agrees to "
            "a few digits: rounding, not a wrong formula? Check in float64, or loosen atol/rtol."
        )
    return hint


def _float64(x: Any) -> np.ndarray:
    return np.array(x, dtype=np.float64, order="C")  # a copy of its own, perturbed in place


# ------------------------------------------------------- functions of Tensors
def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor] | Mapping[str, Tensor],
    *,
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
    keyword); those with ``requires_grad=True`` are checked.  A non-scalar
    output ``y`` is checked through ``backward(r)`` with a fixed random
    ``r``, which exercises every output, against the weighted differences of
    each output element.  The analytical gradients are computed in the
    inputs' dtype, the numerical ones in float64.

    Returns True, or raises :class:`GradcheckError`.
    """
    __tracebackhide__ = True
    options = _tolerances(
        "gradcheck", eps=eps, atol=atol, rtol=rtol, mode=mode,
        samples=samples, directions=directions, seed=seed,
    )  # fmt: skip
    named = dict(inputs) if isinstance(inputs, Mapping) else None
    items = list(named.items()) if named is not None else list(enumerate(inputs))
    leaves, numeric = {}, {}
    for key, t in items:
        if not isinstance(t, Tensor):
            raise TypeError(
                f"gradcheck: input {key!r} is a {type(t).__name__}, not a Tensor; wrap it in "
                "dlcourse.Tensor(...), or use check_grad/check_vjp for numpy functions."
            )
        leaves[key] = Tensor(t.data, requires_grad=True)  # a copy of its own
        numeric[key] = Tensor(_float64(t.data))

    def call(args: dict[Any, Tensor]) -> Tensor:
        return fn(**args) if named is not None else fn(*args.values())

    out = call(leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}.")
    if out.data.size == 1:  # a loss: its gradients are checked as they are
        weights = np.ones(out.shape)
    else:
        weights = np.random.default_rng(seed).standard_normal(out.shape)
    if out.requires_grad:
        out.backward(weights)

    def function() -> np.ndarray:
        with no_grad():
            return as_output(call(numeric).data, "gradcheck")

    checked = [
        _Input(t.name or (str(key) if named is not None else f"input {key}"),
               numeric[key].data, leaves[key].grad)
        for key, t in items
        if t.requires_grad
    ]  # fmt: skip
    if not checked:
        raise ValueError(
            "gradcheck: no input has requires_grad=True, so there is nothing to check."
        )
    _run(_Check(checked, function, weights, options))
    return True


def check_module(
    model: Any,
    loss_fn: Callable[[Any], Tensor],
    *,
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
    is "fast": a handful of forward passes per parameter, whatever its size.
    """
    __tracebackhide__ = True
    options = _tolerances(
        "check_module", eps=eps, atol=atol, rtol=rtol, mode=mode,
        samples=samples, directions=directions, seed=seed,
    )  # fmt: skip
    model.zero_grad()
    loss = loss_fn(model)
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        raise TypeError("check_module: loss_fn(model) must return a scalar Tensor (the loss).")
    loss.backward()

    def function() -> np.ndarray:
        with no_grad():
            return as_output(loss_fn(model).data, "check_module")

    params = dict(model.named_parameters())
    originals = {name: p.data for name, p in params.items()}
    checked = [_Input(name, _float64(p.data), p.grad) for name, p in params.items()]
    model.zero_grad()
    try:
        for item in checked:
            params[item.name].data = item.data
        _run(_Check(checked, function, np.ones(loss.shape), options))
    finally:
        for name, p in params.items():
            p.data = originals[name]
    return True


# ------------------------------------------------ numpy functions, by hand
def check_grad(
    f: Callable[[np.ndarray], Any],
    grad_f: Callable[[np.ndarray], Any],
    x: Any,
    *,
    name: str = "x",
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    mode: Mode = "full",
    samples: int = 20,
    directions: int = 3,
    seed: int = 0,
) -> bool:
    """Check ``grad_f(x)``, a hand-written gradient of the scalar numpy function ``f(x)``."""
    __tracebackhide__ = True
    options = _tolerances(
        "check_grad", eps=eps, atol=atol, rtol=rtol, mode=mode,
        samples=samples, directions=directions, seed=seed,
    )  # fmt: skip
    x = _float64(x)
    out = as_output(f(x.copy()), "check_grad")  # a copy: f may change its argument
    if out.size != 1:
        raise ValueError(
            f"check_grad: f(x) has shape {out.shape}, but it must be a single number "
            "(a loss: reduce it with .sum() or .mean())."
        )
    analytical = _as_gradient(grad_f(x.copy()), x, name, "grad_f(x)")
    check = _Check(
        [_Input(name, x, analytical)],
        lambda: as_output(f(x.copy()), "check_grad"),
        np.ones(out.shape),
        options,
    )
    _run(check)
    return True


def check_vjp(
    forward: Callable[..., Any],
    vjp: Callable[[np.ndarray], Any],
    inputs: Sequence[Any] | Mapping[str, Any],
    dout: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    mode: Mode = "full",
    samples: int = 20,
    directions: int = 3,
    seed: int = 0,
) -> bool:
    """Check a hand-written backward pass, CS231n style: a vector-Jacobian product.

    ``forward(*inputs)`` returns the output array; ``vjp(dout)`` returns the
    gradients of ``sum(forward(...) * dout)`` with respect to the inputs, in
    order (a single array when there is one input).  ``dout`` defaults to a
    seeded random array of the output's shape.  With a mapping, the names
    label the messages and ``forward`` is called by keyword.

    Example::

        check_vjp(lambda x, W, b: x @ W + b,
                  lambda dout: linear_backward(dout, x, W),
                  {"x": x, "W": W, "b": b})
    """
    __tracebackhide__ = True
    options = _tolerances(
        "check_vjp", eps=eps, atol=atol, rtol=rtol, mode=mode,
        samples=samples, directions=directions, seed=seed,
    )  # fmt: skip
    named = isinstance(inputs, Mapping)
    names = list(inputs) if named else [f"input {i}" for i in range(len(inputs))]
    arrays = [_float64(v) for v in (inputs.values() if named else inputs)]

    def call() -> np.ndarray:  # on copies: forward may change its arguments
        if named:
            return as_output(forward(**{n: a.copy() for n, a in zip(names, arrays)}), "check_vjp")
        return as_output(forward(*(a.copy() for a in arrays)), "check_vjp")

    out = call()
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(out.shape)
    dout = np.asarray(dout, dtype=float)
    if dout.shape != out.shape:
        raise ValueError(
            f"check_vjp: dout has shape {dout.shape} but forward returned shape {out.shape}."
        )
    grads = vjp(dout.copy())
    if len(arrays) == 1 and not isinstance(grads, (tuple, list)):
        grads = (grads,)  # one input: one array (or a number, for a 0-d input)
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
    _run(_Check(checked, call, dout, options))
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
