"""A reverse-mode automatic differentiation engine on numpy arrays.

Read this file top to bottom: it is the whole engine.

Every operation below does two things side by side:

* the **forward** pass computes the output array from the input arrays;
* the **backward** closure receives ``g``, the gradient of the final scalar
  (the loss) with respect to that output, and adds into each input the
  gradient with respect to the input: ``g`` times the local derivative.

That product is the chain rule, equation (1.1) of the chapter,
``dy/dx = f'(g(x)) * g'(x)``: the gradient arriving from above is
``f'(g(x))`` and the local derivative is ``g'(x)``.

:meth:`Tensor.backward` visits the operations in reverse topological order
(with an explicit stack, never recursion, so chains of any length work) and
calls each closure once.

Design notes for the curious:

* A closure captures its inputs and whatever values it saved, never its own
  output.  The graph is therefore free of reference cycles and is released by
  reference counting as soon as the loss goes out of scope.
* Gradient arrays are never modified in place while the engine runs, so one
  array may safely be shared between several tensors.  Leaves (tensors you
  created with ``requires_grad=True``) own their ``.grad`` array, and
  ``backward`` adds into it with ``+=``.
* Calling ``backward()`` twice on the same graph runs the same closures again:
  every leaf receives the same gradient a second time, added to the first
  (PyTorch behaves the same way with ``retain_graph=True``).  Set the
  gradients to ``None`` (``Module.zero_grad()``) between training steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import count
from operator import attrgetter
from typing import Any, Union

import numpy as np

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence[Any]]
Backward = Callable[[np.ndarray], None]

_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_grad_enabled = True


class ShapeError(ValueError):
    """Shapes that an operation cannot combine."""


@contextmanager
def no_grad() -> Iterator[None]:
    """Context manager in which operations record no graph (for evaluation
    and for parameter updates)."""
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
    if isinstance(data, Tensor):
        return data.data
    array = np.asarray(data)
    if array.dtype in _FLOAT_DTYPES:
        return array
    if array.dtype.kind in "biuf":
        if requires_grad and array.dtype.kind in "biu":
            raise TypeError(
                f"Tensor: integer data ({array.dtype}) cannot require gradients, because "
                "a gradient needs real numbers. Pass floats instead, for example "
                "Tensor(np.asarray(x, dtype=float), requires_grad=True)."
            )
        return array.astype(np.float64)
    raise TypeError(
        f"Tensor: data of dtype {array.dtype} is not supported; pass real numbers "
        "(a float64 or float32 array, a list of numbers or a scalar)."
    )


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` over the axes along which an input of ``shape`` was broadcast,
    so that the input receives a gradient of exactly its own shape."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g


def _data(x: Any) -> Any:
    """The array behind a Tensor; numbers and arrays pass through."""
    return x.data if isinstance(x, Tensor) else x


def _broadcast_error(op: str, a: Any, b: Any) -> ShapeError:
    return ShapeError(
        f"{op}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together. "
        "Numpy's rule: compare shapes from the right; each pair of sizes must be equal "
        "or one of them 1. Reshape one operand (for example b.reshape(1, -1))."
    )


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(data, requires_grad=False)``: ``data`` is converted to float64
    unless it is already a float64 or float32 array.  After ``loss.backward()``
    every tensor created with ``requires_grad=True`` holds ``dloss/dtensor``
    in ``.grad`` (same shape as ``.data``).
    """

    __slots__ = (
        "data", "grad", "requires_grad", "name", "_inputs", "_backward", "_op", "_retain", "_seq"
    )  # fmt: skip
    __array_ufunc__ = None  # numpy defers to Tensor: ndarray + Tensor is a Tensor

    def __init__(self, data: ArrayLike, requires_grad: bool = False, name: str | None = None):
        self.data: np.ndarray = _as_float_array(data, requires_grad)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._inputs: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._op = ""
        self._retain = False

    @classmethod
    def from_op(
        cls, data: np.ndarray, inputs: tuple[Tensor, ...], backward: Backward, op: str
    ) -> Tensor:
        """The output of an operation.

        ``backward(g)`` must add each input's gradient into it through
        :meth:`accumulate`.  No graph is recorded when gradients are disabled
        or when no input requires a gradient.
        """
        out = cls.__new__(cls)
        out.data = data
        out.grad = None
        out.name = None
        out._retain = False
        out._op = op
        out.requires_grad = False
        out._inputs = ()
        out._backward = None
        if _grad_enabled:
            for t in inputs:
                if t.requires_grad:
                    out.requires_grad = True
                    out._inputs = inputs
                    out._backward = backward
                    out._seq = next(_created)  # after every input: a topological order
                    break
        return out

    def accumulate(self, g: np.ndarray, fresh: bool = False) -> None:
        """Add ``g`` (the gradient of the loss with respect to this tensor) into ``.grad``.

        ``fresh=True`` promises that ``g`` is a new array that nothing else
        refers to (the result of a matrix product, say, not the ``g`` an
        operation received): a leaf may then keep it instead of a copy.
        """
        if not self.requires_grad:
            return
        if g.shape != self.data.shape:
            raise ShapeError(
                f"gradient of shape {g.shape} for a tensor of shape {self.data.shape}"
                + (f" (input of '{self._op}')" if self._op else "")
                + ": a gradient must have exactly the shape of its tensor."
            )
        if self.grad is None:
            if self._backward is not None:
                self.grad = g  # an intermediate may share the array: nobody modifies it
            elif fresh and type(g) is np.ndarray and g.dtype == self.data.dtype:
                self.grad = g  # a leaf owns this new array already
            else:
                self.grad = np.array(g, dtype=self.data.dtype)  # a leaf gets its own copy
        elif self._backward is None:
            self.grad += g
        else:
            self.grad = self.grad + g

    # ----------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors that no recorded operation produced."""
        return self._backward is None

    @property
    def op(self) -> str:
        """Name of the operation that produced this tensor ('' for a leaf)."""
        return self._op

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from (empty for a leaf)."""
        return self._inputs

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(
                f"item(): the tensor has {self.data.size} elements (shape {self.shape}); "
                "only a one-element tensor converts to a Python number."
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def detach(self) -> Tensor:
        """The same data, cut off from the graph."""
        return Tensor(self.data)

    def retain_grad(self) -> Tensor:
        """Keep this intermediate tensor's ``.grad`` after ``backward()``."""
        self._retain = True
        return self

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extra = ""
        if self._backward is not None:
            extra = f", op='{self._op}'"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        if self.data.dtype != np.float64:
            extra += f", dtype={self.data.dtype}"
        if self.name:
            extra += f", name='{self.name}'"
        return f"Tensor({body}{extra})"

    # -------------------------------------------------------------- backward
    def backward(self, grad: ArrayLike | None = None) -> None:
        """Compute the gradient of this tensor with respect to every leaf
        that requires one, and add it into the leaf's ``.grad``.

        ``grad`` is dL/d(self); it may be omitted only for a one-element
        tensor (a loss), where it is 1.

        The graph is kept, so a second ``backward()`` on it adds the same
        gradients into the leaves once more (they double).  Between training
        steps set the gradients to None (``optimizer.zero_grad()``).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not depend on any tensor with "
                "requires_grad=True (or it was computed inside no_grad()), so there "
                "is nothing to differentiate."
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): the tensor has shape {self.shape}, not a single number. "
                    "Reduce it to a scalar loss first (e.g. y.sum() or y.mean()), or pass "
                    "the gradient dL/dy explicitly: y.backward(grad) with grad of the same shape."
                )
            seed = np.array(1.0, dtype=self.data.dtype).reshape(self.data.shape)
        else:
            seed = np.array(_data(grad), dtype=self.data.dtype)
            if seed.shape != self.shape:
                raise ShapeError(
                    f"backward(grad): grad has shape {seed.shape} but the tensor has shape "
                    f"{self.shape}; they must match."
                )
        if self._backward is None:  # a leaf: d(self)/d(self) is the seed itself
            self.accumulate(seed)
            return
        order = _topological_order(self)
        # A retained tensor passes on only what this pass brings it; what it
        # holds from earlier passes is added back at the end.
        earlier = {node: node.grad for node in order if node._retain and node.grad is not None}
        for node in earlier:
            node.grad = None
        self.accumulate(seed)
        # Infinities and NaNs produced in the forward pass flow on silently,
        # as in the forward pass; gradcheck reports them.
        with np.errstate(all="ignore"):
            for node in reversed(order):
                g = node.grad
                if not node._retain:
                    node.grad = None
                if g is not None:
                    node._backward(g)
        for node, grad in earlier.items():
            node.grad = grad if node.grad is None else grad + node.grad

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other: ArrayLike) -> Tensor:
        a, b = self, other
        try:
            out = a.data + _data(b)
        except ValueError:
            raise _broadcast_error("add", a.data, _data(b)) from None

        def backward(g: np.ndarray) -> None:
            a.accumulate(_unbroadcast(g, a.data.shape))
            if isinstance(b, Tensor):
                b.accumulate(_unbroadcast(g, b.data.shape))

        return Tensor.from_op(out, _graph_inputs(a, b), backward, "add")

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _reflected("add", Tensor.__add__, other, self)

    def __neg__(self) -> Tensor:
        a = self

        def backward(g: np.ndarray) -> None:
            a.accumulate(-g)

        return Tensor.from_op(-a.data, (a,), backward, "neg")

    def __sub__(self, other: ArrayLike) -> Tensor:
        a, b = self, other
        try:
            out = a.data - _data(b)
        except ValueError:
            raise _broadcast_error("sub", a.data, _data(b)) from None

        def backward(g: np.ndarray) -> None:
            a.accumulate(_unbroadcast(g, a.data.shape))
            if isinstance(b, Tensor):
                b.accumulate(_unbroadcast(-g, b.data.shape))

        return Tensor.from_op(out, _graph_inputs(a, b), backward, "sub")

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _reflected("sub", lambda t, o: -t + o, other, self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        a, b = self, other
        b_data = _data(b)
        try:
            out = a.data * b_data
        except ValueError:
            raise _broadcast_error("mul", a.data, b_data) from None

        def backward(g: np.ndarray) -> None:
            # d(ab)/da = b and d(ab)/db = a
            if a.requires_grad:
                a.accumulate(_unbroadcast(g * b_data, a.data.shape))
            if isinstance(b, Tensor) and b.requires_grad:
                b.accumulate(_unbroadcast(g * a.data, b.data.shape))

        return Tensor.from_op(out, _graph_inputs(a, b), backward, "mul")

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _reflected("mul", Tensor.__mul__, other, self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        a, b = self, other
        b_data = _data(b)
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = a.data / b_data
        except ValueError:
            raise _broadcast_error("div", a.data, b_data) from None

        def backward(g: np.ndarray) -> None:
            # d(a/b)/da = 1/b and d(a/b)/db = -a/b**2 = -out/b
            a.accumulate(_unbroadcast(g / b_data, a.data.shape))
            if isinstance(b, Tensor):
                b.accumulate(_unbroadcast(-g * out / b_data, b.data.shape))

        return Tensor.from_op(out, _graph_inputs(a, b), backward, "div")

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        if not isinstance(other, np.ndarray):  # a number takes the tensor's dtype
            other = np.asarray(other, dtype=self.data.dtype)
        return Tensor(other) / self

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError(
                "pow: the exponent must be a Python number (x ** 2, x ** 0.5); "
                "for a tensor exponent write exp(b * log(a))."
            )
        a, p = self, float(exponent)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = a.data**p

        def backward(g: np.ndarray) -> None:
            a.accumulate(g * (p * a.data ** (p - 1)))  # d(a**p)/da = p * a**(p - 1)

        return Tensor.from_op(out, (a,), backward, "pow")

    def __matmul__(self, other: ArrayLike) -> Tensor:
        a = self
        b = other if isinstance(other, Tensor) else Tensor(other)
        if a.data.ndim == 0 or b.data.ndim == 0:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape}: '@' needs at least one "
                "dimension on each side; use '*' to multiply by a scalar."
            )
        inner = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape} do not align: the last axis of the "
                f"left operand ({a.shape[-1]}) must equal the "
                f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the right operand "
                f"({inner}). Did you forget a transpose (.T)?"
            )
        try:
            out = a.data @ b.data
        except ValueError:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape}: the batch axes {a.shape[:-2]} and "
                f"{b.shape[:-2]} (all but the last two) cannot be broadcast together."
            ) from None

        def backward(g: np.ndarray) -> None:
            A, B = a.data, b.data
            if A.ndim == 2 and B.ndim == 2:
                # Y = A B:  dL/dA = dL/dY B^T  and  dL/dB = A^T dL/dY
                if a.requires_grad:
                    a.accumulate(g @ B.T, fresh=True)
                if b.requires_grad:
                    b.accumulate(A.T @ g, fresh=True)
                return
            # 1-D operands act as a row (left) or a column (right) vector.
            if B.ndim == 1:
                B, g = B[:, None], g[..., None]
            if A.ndim == 1:
                A, g = A[None, :], np.expand_dims(g, -2)
            dA = _unbroadcast(g @ np.swapaxes(B, -1, -2), A.shape)
            dB = _unbroadcast(np.swapaxes(A, -1, -2) @ g, B.shape)
            a.accumulate(dA.reshape(a.data.shape))
            b.accumulate(dB.reshape(b.data.shape))

        return Tensor.from_op(out, _graph_inputs(a, b), backward, "matmul")

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return Tensor(other) @ self

    # ------------------------------------------------------------ reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default)."""
        a = self
        _check_axis("sum", axis, a.data.shape)
        out = np.asarray(a.data.sum(axis=axis, keepdims=keepdims))

        def backward(g: np.ndarray) -> None:
            # every input element contributes with derivative 1
            a.accumulate(np.broadcast_to(_restore_axes(g, axis, keepdims, a.ndim), a.data.shape))

        return Tensor.from_op(out, (a,), backward, "sum")

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes by default)."""
        _check_axis("mean", axis, self.data.shape)
        total = self.sum(axis=axis, keepdims=keepdims)
        count = self.data.size // total.data.size if total.data.size else 1
        return total * (1.0 / max(count, 1))

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; ties share the gradient equally."""
        a = self
        _check_axis("max", axis, a.data.shape)
        if a.data.size == 0:
            raise ValueError("max: the tensor is empty, so it has no maximum.")
        top = a.data.max(axis=axis, keepdims=True)
        out = np.asarray(top if keepdims else np.squeeze(top, axis=axis))

        def backward(g: np.ndarray) -> None:
            winners = a.data == top
            share = winners / winners.sum(axis=axis, keepdims=True)
            a.accumulate(_restore_axes(g, axis, keepdims, a.ndim) * share)

        return Tensor.from_op(out, (a,), backward, "max")

    # ----------------------------------------------------- elementwise maths
    def exp(self) -> Tensor:
        a = self
        with np.errstate(over="ignore"):
            out = np.exp(a.data)

        def backward(g: np.ndarray) -> None:
            a.accumulate(g * out)  # d(e^a)/da = e^a

        return Tensor.from_op(out, (a,), backward, "exp")

    def log(self) -> Tensor:
        a = self
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(a.data)

        def backward(g: np.ndarray) -> None:
            a.accumulate(g / a.data)  # d(log a)/da = 1/a

        return Tensor.from_op(out, (a,), backward, "log")

    def tanh(self) -> Tensor:
        a = self
        out = np.tanh(a.data)

        def backward(g: np.ndarray) -> None:
            a.accumulate(g * (1.0 - out * out))  # d(tanh a)/da = 1 - tanh(a)^2

        return Tensor.from_op(out, (a,), backward, "tanh")

    def sigmoid(self) -> Tensor:
        a = self
        # sigma(a) = (1 + tanh(a/2)) / 2: never overflows, unlike 1 / (1 + e^-a)
        out = 0.5 * (1.0 + np.tanh(0.5 * a.data))

        def backward(g: np.ndarray) -> None:
            a.accumulate(g * (out * (1.0 - out)))  # sigma' = sigma (1 - sigma)

        return Tensor.from_op(out, (a,), backward, "sigmoid")

    def relu(self) -> Tensor:
        a = self
        out = np.maximum(a.data, 0.0)

        def backward(g: np.ndarray) -> None:
            a.accumulate(g * (a.data > 0))  # slope 1 where a > 0, else 0

        return Tensor.from_op(out, (a,), backward, "relu")

    # ------------------------------------------------------- shape and index
    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        a = self
        new_shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        try:
            out = a.data.reshape(new_shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot reshape {a.data.size} elements of shape {a.shape} into "
                f"shape {tuple(new_shape)}; the number of elements must stay the same."
            ) from None

        def backward(g: np.ndarray) -> None:
            a.accumulate(g.reshape(a.data.shape))

        return Tensor.from_op(out, (a,), backward, "reshape")

    def transpose(self, *axes: int) -> Tensor:
        """Permute the axes (reverse them when none are given)."""
        a = self
        perm = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        n = a.ndim
        perm = perm or tuple(reversed(range(n)))
        if any(not -n <= p < n for p in perm) or sorted(p % n for p in perm) != list(range(n)):
            raise ShapeError(
                f"transpose: axes {perm} are not a permutation of the axes of shape {a.shape}."
            )
        perm = tuple(p % n for p in perm)  # negative axes count from the end
        inverse = tuple(np.argsort(perm))

        def backward(g: np.ndarray) -> None:
            a.accumulate(g.transpose(inverse))

        return Tensor.from_op(a.data.transpose(perm), (a,), backward, "transpose")

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        a = self
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        out = np.asarray(a.data[index])
        advanced = _is_advanced(index)

        def backward(g: np.ndarray) -> None:
            full = np.zeros_like(a.data)
            if advanced:
                np.add.at(full, index, g)  # repeated indices add up
            else:
                full[index] = g
            a.accumulate(full)

        return Tensor.from_op(out, (a,), backward, "getitem")


# ----------------------------------------------------------- module functions
def _graph_inputs(a: Tensor, b: Any) -> tuple[Tensor, ...]:
    return (a, b) if isinstance(b, Tensor) else (a,)


def _reflected(
    op: str, method: Callable[[Tensor, Any], Tensor], left: Any, right: Tensor
) -> Tensor:
    """``left <op> right`` where only ``right`` is a Tensor, computed as
    ``method(right, left)``; a shape error names the operands in the user's order."""
    try:
        return method(right, left)
    except ShapeError:
        raise _broadcast_error(op, left, right.data) from None


def _check_axis(op: str, axis: int | tuple[int, ...] | None, shape: tuple[int, ...]) -> None:
    for ax in () if axis is None else axis if isinstance(axis, tuple) else (axis,):
        if not -len(shape) <= ax < len(shape):
            valid = (
                f"use 0 to {len(shape) - 1}, or a negative axis counting from the end"
                if shape
                else "a single number has no axes; leave axis=None"
            )
            raise ShapeError(
                f"{op}: axis {ax} is out of range for a tensor of shape {shape}: {valid}."
            )


def _restore_axes(g: np.ndarray, axis: Any, keepdims: bool, ndim: int) -> np.ndarray:
    """Put back the axes a reduction removed, so ``g`` broadcasts against the input."""
    if keepdims or axis is None:
        return g.reshape((1,) * ndim) if axis is None and not keepdims else g
    return np.expand_dims(g, axis)


def _is_advanced(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray)) for p in parts)


_created = count()  # numbers recorded nodes in the order they were made
_creation = attrgetter("_seq")


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every recorded node that ``root`` depends on, each after all its inputs.

    An operation's output is made after its inputs, so the order in which the
    nodes were created is a topological order: collect what ``root`` depends
    on (iteratively, so a chain of any length works), then sort by creation.
    """
    nodes = {root}
    stack = [root]
    while stack:
        for parent in stack.pop()._inputs:
            if parent._backward is not None and parent not in nodes:
                nodes.add(parent)
                stack.append(parent)
    return sorted(nodes, key=_creation)


def tensor(data: ArrayLike, requires_grad: bool = False) -> Tensor:
    """Shorthand for ``Tensor(data, requires_grad)``."""
    return Tensor(data, requires_grad=requires_grad)


def _tensors(name: str, items: Sequence[ArrayLike]) -> list[Tensor]:
    if len(items) == 0:
        raise ValueError(f"{name}: needs at least one tensor.")
    return [t if isinstance(t, Tensor) else Tensor(t) for t in items]


def concatenate(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    parts = _tensors("concatenate", tensors)
    try:
        out = np.concatenate([t.data for t in parts], axis=axis)
    except ValueError as error:
        shapes = ", ".join(str(t.shape) for t in parts)
        raise ShapeError(
            f"concatenate: shapes {shapes} along axis {axis}: all axes but axis {axis} "
            f"must match ({error})."
        ) from None
    ends = np.cumsum([t.data.shape[axis] for t in parts])[:-1]

    def backward(g: np.ndarray) -> None:
        for t, piece in zip(parts, np.split(g, ends, axis=axis)):
            t.accumulate(piece)

    return Tensor.from_op(out, tuple(parts), backward, "concatenate")


def stack(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors of the same shape along a new axis."""
    parts = _tensors("stack", tensors)
    try:
        out = np.stack([t.data for t in parts], axis=axis)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in parts)
        raise ShapeError(f"stack: shapes {shapes} must all be equal.") from None

    def backward(g: np.ndarray) -> None:
        for i, t in enumerate(parts):
            t.accumulate(np.take(g, i, axis=axis))

    return Tensor.from_op(out, tuple(parts), backward, "stack")


def where(condition: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise ``a`` where ``condition`` holds, else ``b``."""
    cond = np.asarray(_data(condition), dtype=bool)
    try:  # a number on either side keeps the tensor's dtype, as in a + 0.0
        out = _as_float_array(np.where(cond, _data(a), _data(b)), False)
    except ValueError:
        raise ShapeError(
            f"where: condition {cond.shape}, a {np.shape(_data(a))} and b {np.shape(_data(b))} "
            "cannot be broadcast together."
        ) from None

    def backward(g: np.ndarray) -> None:
        if isinstance(a, Tensor):
            a.accumulate(_unbroadcast(np.where(cond, g, 0.0), a.data.shape))
        if isinstance(b, Tensor):
            b.accumulate(_unbroadcast(np.where(cond, 0.0, g), b.data.shape))

    inputs = tuple(t for t in (a, b) if isinstance(t, Tensor))
    return Tensor.from_op(out, inputs, backward, "where")
