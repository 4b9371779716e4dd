"""A reverse-mode automatic differentiation engine on numpy arrays, to be read
top to bottom.

Every operation states its **forward** result, and a row of the table of
derivatives below states, for each input, a function of ``g`` (the gradient
of the loss with respect to the output) that returns the gradient with
respect to that input: ``g`` times the local derivative.  That product is the
chain rule, equation (1.1) of the chapter, ``dy/dx = f'(g(x)) * g'(x)``.  The
gradient functions take the values the forward pass saved for them.  Numbers
and arrays enter an operation as constant tensors.  What is checked of the
inputs, and the words of every error, live in :mod:`dlcourse.errors`.

:func:`_record` makes an operation's output and remembers its inputs, its
row of the table and the saved values.  :meth:`Tensor.backward` does the
bookkeeping in one place: it visits the recorded operations latest first (an
operation is always recorded after its inputs, so that is a topological
order, and no recursion is needed), sums each gradient over the axes along
which its input was broadcast and checks its shape (where the row says numpy
may broadcast: elsewhere a gradient has its input's shape by construction),
and adds (``+=``) the contributions of every use (:func:`_backpropagate`).
Saved values are arrays and numbers, never an operation's own output, so a
graph has no reference cycles and is freed with its loss.  Intermediates'
gradients live in the sweep's own dictionary unless kept
(:meth:`Tensor.retain_grad`, ``backward(retain_grads=True)``).

Forward mode (:func:`jvp`) pushes a tangent through the same operations as
they run: an elementwise operation's Jacobian is diagonal, so its gradient
functions applied to the inputs' tangents give the output's tangent; the
other operations state a tangent rule next to their gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from heapq import heappop, heappush
from itertools import count
from math import isfinite, prod
from typing import Any, NamedTuple, Union

import numpy as np

from dlcourse import errors

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence[Any]]
Vjp = Callable[..., np.ndarray]  # (g, *saved) -> the gradient for one input
Jvp = Callable[..., np.ndarray]  # (*the inputs' tangents, *saved) -> the output's tangent
Axis = int | Sequence[int] | None

_grad_enabled = True
_forward_mode = False  # True inside jvp(): operations also push tangents
_recorded = count(1)  # numbers the recorded operations in the order they ran


class Rule(NamedTuple):
    """How an operation differentiates: its name, one gradient function per
    input (None: that input gets no gradient), unless the operation is
    elementwise its tangent rule for forward mode, and whether numpy may have
    broadcast its inputs.  Only then can a gradient differ from its input's
    shape, so only then does the engine sum it over the broadcast axes and
    check it (a function of your own, from :meth:`Tensor.from_op`, always)."""

    name: str
    vjps: tuple[Vjp | None, ...]
    jvp: Jvp | None = None
    broadcasts: bool = False


# ----------------------------------------------------- the table of derivatives
# Each gradient function maps g = dL/d(output), and the values its operation
# saved, to dL/d(input) = g * d(output)/d(input).  y is the output's value.
# fmt: off
ADD = Rule("add", (lambda g: g, lambda g: g), broadcasts=True)  # d(a+b)/da = d(a+b)/db = 1
SUB = Rule("sub", (lambda g: g, lambda g: -g), broadcasts=True)  # d(a-b)/da = 1, d(a-b)/db = -1
# d(ab)/da = b, d(ab)/db = a
MUL = Rule("mul", (lambda g, a, b: g * b, lambda g, a, b: g * a), broadcasts=True)
# y = a/b: dy/da = 1/b, dy/db = -a/b^2 = -y/b
DIV = Rule("div", (lambda g, b, y: g / b, lambda g, b, y: -g * y / b), broadcasts=True)
NEG = Rule("neg", (lambda g: -g,))  # d(-a)/da = -1
POW = Rule("pow", (lambda g, a, p: _pow_grad(g, a, p),))  # d(a^p)/da = p a^(p-1)
EXP = Rule("exp", (lambda g, y: g * y,))  # d(e^a)/da = e^a = y
LOG = Rule("log", (lambda g, a: g / a,))  # d(log a)/da = 1/a
TANH = Rule("tanh", (lambda g, y: g * (1 - y * y),))  # d(tanh a)/da = 1 - tanh^2 a
# d(sigma a)/da = sigma (1 - sigma) = e / (1 + e)^2 with e = e^-|a| (no 1 - sigma, which cancels)
SIGMOID = Rule("sigmoid", (lambda g, e: g * e / ((1 + e) * (1 + e)),))
RELU = Rule("relu", (lambda g, y: _select(y, g),))  # slope 1 where y = max(a, 0) > 0, else 0
# Y = A B: dL/dA = g B^T and dL/dB = A^T g (summed over broadcast batch axes)
MATMUL = Rule("matmul", (lambda g, A, B: g @ np.swapaxes(B, -1, -2),
                         lambda g, A, B: np.swapaxes(A, -1, -2) @ g),
              jvp=lambda ta, tb, A, B: ta @ B + A @ tb, broadcasts=True)
# A reduction saves its input's shape and that shape with 1 on each reduced axis (kept).
SUM = Rule("sum", (lambda g, shape, kept, *_: np.broadcast_to(g.reshape(kept), shape),),
           jvp=lambda t, shape, kept, axes, keep: t.sum(axis=axes, keepdims=keep))  # slope 1
MEAN = Rule("mean", (lambda g, shape, kept, axes, keep, n:
                     np.broadcast_to(g.reshape(kept) / n, shape),),  # slope 1/n
            jvp=lambda t, shape, kept, axes, keep, n: t.sum(axis=axes, keepdims=keep) / n)
# slope 1 where the maximum is (won), shared by ties; selected, so an infinite g gives 0 elsewhere
MAX = Rule("max", (lambda g, kept, won, share, *_: np.where(won, g.reshape(kept) * share, 0.0),),
           jvp=lambda t, kept, won, share, axes, keep: (t * share).sum(axis=axes, keepdims=keep))
RESHAPE = Rule("reshape", (lambda g, shape, new: g.reshape(shape),),
               jvp=lambda t, shape, new: t.reshape(new))
TRANSPOSE = Rule("transpose", (lambda g, perm, inverse: g.transpose(inverse),),
                 jvp=lambda t, perm, inverse: t.transpose(perm))
GETITEM = Rule("getitem", (lambda g, a, index, basic: _scatter(g, a, index, basic),),
               jvp=lambda t, a, index, basic: t[index])  # slope 1 where selected, else 0
WHERE = Rule("where", (lambda g, c: np.where(c, g, 0.0), lambda g, c: np.where(c, 0.0, g)),
             broadcasts=True)
# fmt: on


def _copied(vjp: Vjp) -> Vjp:
    """A gradient function of your own whose result is copied: it may be an
    array that something else holds (a saved value), which must not become a
    ``.grad`` that the next ``backward()`` adds into."""
    return lambda g, *saved: None if (r := vjp(g, *saved)) is None else np.array(r)


def _no_tangent(op: str) -> Jvp:
    def refuse(*_: Any) -> np.ndarray:
        raise errors.no_tangent_rule(op)

    return refuse


def _pow_grad(g: np.ndarray, a: np.ndarray, p: float) -> np.ndarray:
    if p == 0:  # a constant 1: its slope is 0 everywhere, also at a = 0
        return np.zeros_like(a)
    slope = p * a ** (p - 1)
    if p.is_integer():
        return g * slope
    # a negative base has no real power p, so no slope either (-inf too, as in torch)
    return g * np.where(a < 0, np.nan, slope)


def _select(keep: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g`` where ``keep`` is not 0, else 0 (``keep`` itself, which is 0 there).
    Selected, as 0 * inf would be NaN; but from 256 elements a finite ``g`` (one
    dot product tells) is multiplied by the mask, which has no branches: np.where
    branches on each element, and a ReLU's mask is as good as random.  µs per
    call on an Intel Xeon, each call on other arrays, as in a backward pass,
    np.where against the product (float64): 0.93 / 1.66 at 64 elements, 1.72 /
    1.68 at 256, 4.83 / 2.74 at 1,024, 9.44 / 3.94 at 2,048.  (Called again and
    again on the same arrays, np.where is 4 times as fast: the processor learns
    the mask.)"""
    if g.size >= 256 and isfinite(np.vdot(g, g)):
        return g * (keep != 0)
    return np.where(keep, g, keep)


def _scatter(g: np.ndarray, a: np.ndarray, index: Any, basic: bool) -> np.ndarray:
    """``g`` put back where ``a[index]`` came from, 0 elsewhere."""
    full = np.zeros_like(a)
    if basic:
        full[index] = g
    else:
        np.add.at(full, index, g)  # an element selected twice gets both gradients
    return full


@contextmanager
def no_grad() -> Iterator[None]:
    """Operations inside record no graph (for evaluation and for updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph."""
    return _grad_enabled


def _as_float_array(data: Any, requires_grad: bool) -> np.ndarray:
    array = np.asarray(data.data if isinstance(data, Tensor) else data)
    return errors.float_array(array, requires_grad)


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data`` becomes float64 unless it is a float64 or float32 array.  A tensor
    that requires a gradient copies it (an optimiser changes it in place); one
    that does not shares it.  After ``loss.backward()`` every tensor created
    with ``requires_grad=True`` holds ``dloss/dtensor`` in ``.grad``."""

    __slots__ = ("data", "grad", "requires_grad", "name", "tangent", "_rule", "_inputs", "_saved",
                 "_seq", "_retain", "__weakref__")  # fmt: skip
    __array_ufunc__ = None  # numpy defers to Tensor: ndarray + Tensor is a Tensor

    def __init__(self, data: ArrayLike, requires_grad: bool = False, name: str | None = None):
        if type(data) is not np.ndarray or data.dtype.char not in "df":
            data = _as_float_array(data, requires_grad)
        self.data: np.ndarray = data.copy() if requires_grad else data
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self.tangent: np.ndarray | None = None  # set by jvp()
        self._rule, self._inputs, self._saved, self._seq, self._retain = None, (), (), 0, False

    @classmethod
    def from_op(
        cls, data: Any, inputs: Sequence[Tensor], vjps: Sequence[Vjp | None], op: str,
        jvp: Jvp | None = None,
    ) -> Tensor:  # fmt: skip
        """The output of a new operation (for writing your own).

        ``vjps``: one function per input (None: no gradient), mapping
        ``g = dL/d(output)`` to ``dL/d(input)`` (the engine copies the result,
        which may be an array you keep, sums it over broadcast axes and checks
        its shape).  ``jvp`` maps the inputs' tangents to the output's tangent,
        for forward mode (:func:`jvp`), which refuses an operation without one;
        for an elementwise operation it is the sum of ``vjps`` applied to the
        tangents."""
        if len(vjps) != len(inputs):
            raise errors.gradient_functions(op, len(inputs), len(vjps))
        copied = tuple(None if f is None else _copied(f) for f in vjps)
        rule = Rule(op, copied, jvp or _no_tangent(op), broadcasts=True)  # yours: checked
        return _record(rule, _as_float_array(data, False), tuple(inputs))

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._rule is None, doc="True unless an operation made it.")
    op = property(lambda self: self._rule.name if self._rule else "",
                  doc="The operation that made it ('' for a leaf).")  # fmt: skip
    inputs = property(lambda self: self._inputs, doc="What it was computed from.")

    def local_gradient(self, i: int, g: ArrayLike) -> np.ndarray | None:
        """What this operation's backward passes to input ``i`` for upstream ``g``
        (``g`` times the local derivative), summed to the input's shape; None
        where that input gets no gradient."""
        upstream = np.broadcast_to(np.asarray(g, dtype=self.data.dtype), self.shape)
        vjp = self._rule.vjps[i]
        r = None if vjp is None else vjp(upstream, *self._saved)
        return None if r is None else _fit(r, self._inputs[i], self)

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise errors.not_a_number(self.data.size, self.shape)
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.array(self.data, dtype=dtype, copy=copy)

    def detach(self) -> Tensor:
        """The same data, cut off from the graph."""
        return Tensor(self.data)

    def retain_grad(self) -> Tensor:
        """Keep this intermediate tensor's ``.grad`` after ``backward()``."""
        self._retain = True
        return self

    def __float__(self) -> float:
        return self.item()

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise errors.ambiguous_truth(self.data.size)
        return bool(self.data)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise errors.no_items("len() of")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise errors.no_items("iteration over")
        return (self[i] for i in range(len(self.data)))

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extra = f", op='{self.op}'" if self._rule else ", requires_grad=True" * self.requires_grad
        if self.data.dtype != np.float64:
            extra += f", dtype={self.data.dtype}"
        if self.name:
            extra += f", name='{self.name}'"
        return f"Tensor({body}{extra})"

    # -------------------------------------------------------------- backward
    def backward(self, grad: ArrayLike | None = None, *, retain_grads: bool = False) -> None:
        """Add the gradient of this tensor into the ``.grad`` of every leaf that
        requires one.  ``grad`` is dL/d(self), 1 for a one-element tensor (a loss).

        ``retain_grads=True`` keeps every intermediate's gradient too (to look
        at, as ``plot.graph`` does); training leaves it off and pays nothing.
        The graph is kept: a second ``backward()`` adds the same gradients
        again, as PyTorch does with ``retain_graph=True``; between training
        steps set the gradients to None (``optimizer.zero_grad()``).
        """
        if not self.requires_grad:
            raise errors.nothing_to_differentiate()
        if grad is None:
            if self.data.size != 1:
                raise errors.not_a_loss(self.shape)
            seed = np.array(1.0, dtype=self.data.dtype).reshape(self.data.shape)
        else:
            seed = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if seed.shape != self.shape:
                raise errors.seed_shape(seed.shape, self.shape)
        if self._rule is None:  # a leaf: d(self)/d(self) is the seed itself
            _keep(self, seed)
            return
        _backpropagate(self, seed, retain_grads)

    # ------------------------------------------- arithmetic: the forward results
    def __add__(self, other: ArrayLike) -> Tensor:
        a, b = self, _constant(other, self)
        return _record(ADD, _broadcast("add", np.add, a, b), (a, b))

    def __sub__(self, other: ArrayLike) -> Tensor:
        a, b = self, _constant(other, self)
        return _record(SUB, _broadcast("sub", np.subtract, a, b), (a, b))

    def __mul__(self, other: ArrayLike) -> Tensor:
        a, b = self, _constant(other, self)
        return _record(MUL, _broadcast("mul", np.multiply, a, b), (a, b), a.data, b.data)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        a, b = self, _constant(other, self)
        with np.errstate(divide="ignore", invalid="ignore"):  # 1/0 is inf, 0/0 NaN: no warning
            y = _broadcast("div", np.divide, a, b)
        return _record(DIV, y, (a, b), b.data, y)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _constant(other, self) + self

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _constant(other, self) - self

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _constant(other, self) * self

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _constant(other, self) @ self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _constant(other, self) / self

    def __neg__(self) -> Tensor:
        return _record(NEG, -self.data, (self,))

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise errors.exponent()
        a, p = self.data, float(exponent)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _record(POW, a**p, (self,), a, p)

    def __rpow__(self, base: ArrayLike) -> Tensor:
        c = _constant(base, self)
        if not np.all(c.data > 0):
            raise errors.base()
        return (self * c.log()).exp()  # d(c^x)/dx = c^x log c

    def exp(self) -> Tensor:
        with np.errstate(over="ignore"):
            y = np.exp(self.data)
        return _record(EXP, y, (self,), y)

    def log(self) -> Tensor:
        with np.errstate(divide="ignore", invalid="ignore"):
            return _record(LOG, np.log(self.data), (self,), self.data)

    def tanh(self) -> Tensor:
        y = np.tanh(self.data)
        return _record(TANH, y, (self,), y)

    def sigmoid(self) -> Tensor:
        # 1 / (1 + e^-a) for a >= 0 and e^a / (1 + e^a) below, with e = e^-|a|:
        # never overflows, and neither side subtracts nearly equal numbers
        e = np.exp(-np.abs(self.data))
        return _record(SIGMOID, np.where(self.data >= 0, 1.0, e) / (1 + e), (self,), e)

    def relu(self) -> Tensor:
        y = np.maximum(self.data, 0.0)  # 0 exactly where a <= 0 (NaN stays NaN, as in torch)
        return _record(RELU, y, (self,), y)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        a, b = self, _constant(other, self)
        A, B = a.data, b.data
        errors.matmul_shapes(A.shape, B.shape)
        if A.ndim == 1 or B.ndim == 1:  # a vector is a row on the left, a column on the right
            y = (a.reshape(1, -1) if A.ndim == 1 else a) @ (b.reshape(-1, 1) if B.ndim == 1 else b)
            rows, columns = y.shape[-2:-1] * (A.ndim > 1), y.shape[-1:] * (B.ndim > 1)
            return y.reshape(y.shape[:-2] + rows + columns)
        try:
            out = A @ B
        except ValueError:
            raise errors.batch_axes(a.shape, b.shape) from None
        return _record(MATMUL, out, (a, b), A, B)

    # ------------------------------------------------------------ reductions
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default)."""
        axes, kept = errors.reduction_axes("sum", axis, self.shape)
        out = self.data.sum(axis=axes, keepdims=keepdims)
        return _record(SUM, out, (self,), self.shape, kept, axes, keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes by default); NaN for no elements, as in numpy."""
        axes, kept = errors.reduction_axes("mean", axis, self.shape)
        n = prod(self.shape[i] for i in axes)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.data.sum(axis=axes, keepdims=keepdims) / n
        return _record(MEAN, out, (self,), self.shape, kept, axes, keepdims, n)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; ties share the gradient equally."""
        a = self.data
        axes, kept = errors.reduction_axes("max", axis, self.shape)
        if any(a.shape[i] == 0 for i in axes):
            raise errors.empty_max(self.shape, axes)
        top = a.max(axis=axes, keepdims=True)
        winners = (a == top) | (np.isnan(a) & np.isnan(top))  # NaN wins, as in torch
        share = winners / winners.sum(axis=axes, keepdims=True)
        out = top if keepdims else top.reshape([n for i, n in enumerate(a.shape) if i not in axes])
        return _record(MAX, out, (self,), kept, winners, share, axes, keepdims)

    # ------------------------------------------------------- shape and index
    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        new_shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        try:
            out = self.data.reshape(new_shape)
        except ValueError:
            raise errors.reshape(self.data.size, self.shape, new_shape) from None
        return _record(RESHAPE, out, (self,), self.shape, out.shape)

    def transpose(self, *axes: int) -> Tensor:
        """Permute the axes (reverse them when none are given)."""
        perm = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        perm = errors.permutation(perm, self.shape)
        inverse = tuple(np.argsort(perm))
        return _record(TRANSPOSE, self.data.transpose(perm), (self,), perm, inverse)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        basic = _is_basic(index)
        return _record(GETITEM, self.data[index], (self,), self.data, index, basic)


# ------------------------------------------------------------------ the engine
def _record(rule: Rule, data: Any, inputs: tuple[Tensor, ...], *saved: Any) -> Tensor:
    """The output of an operation: a tensor holding ``data`` that remembers
    ``inputs``, the operation's ``rule`` and the values its gradient functions
    take (``saved``); no graph when gradients are disabled or no input
    requires one.  Inside :func:`jvp` it also gets its tangent."""
    if type(data) is not np.ndarray:  # a numpy scalar from a reduction, say
        data = np.asarray(data)
    out = object.__new__(Tensor)  # its fields are set here, without __init__'s checks
    out.data, out.grad, out.name, out.tangent, out._retain = data, None, None, None, False
    if _forward_mode:
        _push_tangent(out, inputs, rule, saved)
    if _grad_enabled:
        for t in inputs:
            if t.requires_grad:
                out.requires_grad, out._rule, out._inputs, out._saved = True, rule, inputs, saved
                out._seq = next(_recorded)
                return out
    out.requires_grad, out._rule, out._inputs, out._saved, out._seq = False, None, (), (), 0
    return out


# Infinities and NaNs flow on silently, as in the forward pass; gradcheck reports them.
@np.errstate(all="ignore")
def _backpropagate(root: Tensor, seed: np.ndarray, retain_grads: bool) -> None:
    """The chain rule through the graph that made ``root``: each operation, the
    latest recorded first, passes on its complete gradient ``g`` to each input
    (the sum over the input's uses), and the leaves add theirs into ``.grad``.
    A gradient function that raises changes no ``.grad``: the leaves that got
    their first one in this sweep have None again, and what adds to existing
    ones is added once the sweep is through."""
    grads = {root: seed}  # the intermediates' gradients, until passed on
    fresh: list[Tensor] = []  # leaves whose first gradient this sweep gave
    later: dict[Tensor, np.ndarray] = {}  # what adds to gradients that exist, until the end
    kept = []  # the intermediates whose gradients are kept, with them
    todo = [(-root._seq, root)]  # a heap: the latest recorded operation first
    try:
        while todo:
            node = heappop(todo)[1]
            g = grads.pop(node)  # complete: every use of node was recorded after it
            saved, (_, vjps, _, broadcasts) = node._saved, node._rule
            for t, vjp in zip(node._inputs, vjps):
                if vjp is None or not t.requires_grad or (r := vjp(g, *saved)) is None:
                    continue
                if type(r) is not np.ndarray or (broadcasts and r.shape != t.data.shape):
                    r = _fit(r, t, node)
                if t._rule is not None:  # an intermediate: the sum over its uses
                    if t in grads:
                        grads[t] = grads[t] + r
                    else:
                        grads[t] = r
                        heappush(todo, (-t._seq, t))
                elif t.grad is None:  # a new array that nothing else holds, or a copy of r
                    owned = r.base is None and r is not g and r.dtype is t.data.dtype
                    t.grad = r if owned else np.array(r, dtype=t.data.dtype)
                    fresh.append(t)
                else:
                    later[t] = later[t] + r if t in later else r
            if retain_grads or node._retain:
                kept.append((node, g))
    except BaseException:
        for t in fresh:
            t.grad = None
        raise
    for t, g in kept:
        _keep(t, g)
    for t, r in later.items():
        t.grad += r


def _fit(g: Any, t: Tensor, node: Tensor) -> np.ndarray:
    """``g`` as the gradient of ``t``, an input of ``node``: summed over the
    axes along which ``t`` was broadcast, and of exactly ``t``'s shape."""
    g = np.asarray(g)
    shape = t.data.shape
    if g.shape == shape:
        return g
    if len(shape) <= g.ndim and all(n in (1, m) for n, m in zip(shape[::-1], g.shape[::-1])):
        g = g.sum(axis=tuple(range(g.ndim - len(shape))))
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        return g.sum(axis=stretched, keepdims=True) if stretched else g
    raise errors.gradient_shape(g.shape, shape, node.op)


def _keep(t: Tensor, g: np.ndarray) -> None:
    """Add ``g`` into ``t.grad``, an array of ``t``'s own (a copy of ``g`` at first)."""
    if t.grad is None:
        t.grad = np.array(g, dtype=t.data.dtype)
    else:
        t.grad += g


def _constant(x: ArrayLike, like: Tensor) -> Tensor:
    """``x`` as a tensor operand of an operation on ``like``.

    A number, a 0-d array or an integer array takes ``like``'s dtype, as in
    PyTorch, so a float32 network stays float32 (``x * np.float64(2)``); a
    float array keeps its own, and numpy's promotion decides.
    """
    if isinstance(x, Tensor):
        return x
    array = np.asarray(x)
    if array.ndim == 0 or array.dtype.kind in "biu":
        array = array.astype(like.data.dtype)
    return Tensor(array)


def _broadcast(op: str, f: Callable[..., np.ndarray], a: Tensor, b: Tensor) -> np.ndarray:
    """``f(a, b)`` on the data, numpy's broadcast error translated into one that
    names the operation and the shapes."""
    try:
        return f(a.data, b.data)
    except ValueError:
        raise errors.broadcast(op, a.shape, b.shape) from None


def _is_basic(index: Any) -> bool:
    """True for an index of integers, slices, None and ``...`` only, which selects
    each element at most once; a sequence or an array makes it advanced."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, Tensor) for p in parts):
        raise errors.tensor_index()
    return all(
        p is None or p is Ellipsis or isinstance(p, slice)
        or (isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)))
        for p in parts
    )  # fmt: skip


# ----------------------------------------------------------- module functions
def tensor(data: ArrayLike, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (as ``torch.tensor`` copies)."""
    array = _as_float_array(data, requires_grad)
    return Tensor(array if requires_grad else array.copy(), requires_grad=requires_grad)


def _parts(op: str, items: Sequence[ArrayLike], axis: int, new: bool) -> list[Tensor]:
    """The tensors to join, with ``axis`` checked (``new``: stack adds an axis)."""
    parts = [t if isinstance(t, Tensor) else Tensor(t) for t in items]
    errors.join_axis(op, [t.shape for t in parts], axis, new)
    return parts


def concatenate(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    parts = _parts("concatenate", tensors, axis, new=False)
    try:
        out = np.concatenate([t.data for t in parts], axis=axis)
    except ValueError as error:
        raise errors.unjoinable([t.shape for t in parts], axis, error) from None
    ends = np.cumsum([t.shape[axis] for t in parts])
    slices = [range(end - t.shape[axis], end) for t, end in zip(parts, ends)]
    pieces = tuple(lambda g, s=s: np.take(g, s, axis=axis) for s in slices)  # input k: slice k
    rule = Rule("concatenate", pieces, jvp=lambda *ts: np.concatenate(ts, axis=axis))
    return _record(rule, out, tuple(parts))


def stack(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors of the same shape along a new axis."""
    parts = _parts("stack", tensors, axis, new=True)
    try:
        out = np.stack([t.data for t in parts], axis=axis)
    except ValueError:
        raise errors.unequal_shapes([t.shape for t in parts]) from None
    pieces = tuple(lambda g, k=k: np.take(g, k, axis=axis) for k in range(len(parts)))  # slice k
    rule = Rule("stack", pieces, jvp=lambda *ts: np.stack(ts, axis=axis))
    return _record(rule, out, tuple(parts))


def where(condition: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise ``a`` where ``condition`` holds, else ``b``."""
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    like = next((t for t in (a, b) if isinstance(t, Tensor)), Tensor(0.0))
    ta, tb = _constant(a, like), _constant(b, like)
    try:
        out = np.where(cond, ta.data, tb.data)
    except ValueError:
        raise errors.where_shapes(cond.shape, ta.shape, tb.shape) from None
    return _record(WHERE, out, (ta, tb), cond)


# ---------------------------------------------------------------- forward mode
def jvp(
    f: Callable[..., Tensor], inputs: Sequence[ArrayLike], tangents: Sequence[ArrayLike]
) -> tuple[Tensor, np.ndarray]:
    """``f(*inputs)`` and the directional derivative ``J v`` in one forward sweep.

    ``tangents`` holds ``v``, one array per input, of its shape.  Each operation
    computes its output's tangent from its inputs' while it runs (dual numbers):
    no graph is kept and nothing runs backwards.  Returns the output and
    ``d f(inputs + s v)/ds`` at ``s = 0``.
    """
    global _forward_mode
    if len(tangents) != len(inputs):
        raise errors.tangents(len(inputs), len(tangents))
    duals = [Tensor(x.data if isinstance(x, Tensor) else x) for x in inputs]
    for i, (t, v) in enumerate(zip(duals, tangents)):
        t.tangent = np.asarray(v.data if isinstance(v, Tensor) else v, dtype=t.dtype)
        if t.tangent.shape != t.shape:
            raise errors.tangent_shape(i, t.tangent.shape, t.shape)
    previous, _forward_mode = _forward_mode, True
    try:
        with no_grad():
            out = f(*duals)
    finally:
        _forward_mode = previous
    if not isinstance(out, Tensor):
        raise errors.not_a_tensor(out)
    tangent = np.zeros_like(out.data) if out.tangent is None else out.tangent
    return out, np.array(np.broadcast_to(tangent, out.shape))


def _push_tangent(out: Tensor, inputs: tuple[Tensor, ...], rule: Rule, saved: tuple) -> None:
    if all(t.tangent is None for t in inputs):
        return
    with np.errstate(all="ignore"):
        if rule.jvp is None:  # elementwise: J is diagonal, so J v is the same product as v^T J
            out.tangent = sum(
                (vjp(t.tangent, *saved) for t, vjp in zip(inputs, rule.vjps)
                 if t.tangent is not None and vjp),
                np.zeros_like(out.data),
            )  # fmt: skip
        else:
            tangents = (np.zeros_like(t.data) if t.tangent is None else t.tangent for t in inputs)
            out.tangent = rule.jvp(*tangents, *saved)
