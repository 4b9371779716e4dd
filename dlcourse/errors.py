"""Bad input, told clearly: what the engine (:mod:`dlcourse.tensor`) checks of
what it is given, and the words of every error it raises.

Every message says what was wrong and what to do about it.  The checks
raise, or return what they checked in the form the engine uses; the other
functions return an exception for the engine to raise, so that a traceback
ends on the engine's line (the operation you called), not in here.  Kept
apart from the operations, so that those read as the mathematics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """Shapes that an operation cannot combine."""


# ----------------------------------------------------------------- checks
def float_array(array: np.ndarray, requires_grad: bool) -> np.ndarray:
    """``array`` as float64 unless it is float64 or float32; integers may not
    require a gradient, and other dtypes are refused."""
    if array.dtype.char in "df":  # float64, float32
        return array
    if array.dtype.kind in "biu" and requires_grad:
        raise TypeError(
            f"Tensor: integer data ({array.dtype}) cannot require gradients, because "
            "a gradient needs real numbers. Pass floats instead, for example "
            "Tensor(np.asarray(x, dtype=float), requires_grad=True)."
        )
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    raise TypeError(
        f"Tensor: data of dtype {array.dtype} is not supported; pass real numbers "
        "(a float64 or float32 array, a list of numbers or a scalar)."
    )


def reduction_axes(op: str, axis: Any, shape: Shape) -> tuple[Shape, Shape]:
    """``axis`` (None: all) as a tuple of non-negative axes, checked, and the
    shape kept by the reduction: ``shape`` with 1 on each reduced axis."""
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for ax in axes:
        if not -ndim <= ax < ndim:
            valid = (
                f"use 0 to {ndim - 1}, or a negative axis counting from the end"
                if ndim
                else "a single number has no axes; leave axis=None"
            )
            raise ShapeError(
                f"{op}: axis {ax} is out of range for a tensor of shape {shape}: {valid}."
            )
    axes = tuple(ax % ndim for ax in axes)
    return axes, tuple(1 if i in axes else n for i, n in enumerate(shape))


def join_axis(op: str, shapes: Sequence[Shape], axis: int, new: bool) -> None:
    """Check the axis along which ``op`` joins tensors (``new``: stack adds one)."""
    if len(shapes) == 0:
        raise ValueError(f"{op}: needs at least one tensor.")
    n = len(shapes[0]) + new
    if not -n <= axis < n:
        raise ShapeError(
            f"{op}: axis {axis} is out of range for tensors of shape {shapes[0]}: "
            f"use {-n} to {n - 1}."
        )


def permutation(perm: Sequence[int], shape: Shape) -> Shape:
    """``perm`` (empty: reverse the axes) as non-negative axes, checked to be a
    permutation of the axes of ``shape``."""
    n = len(shape)
    perm = tuple(perm) or tuple(reversed(range(n)))
    if any(not -n <= p < n for p in perm) or sorted(p % n for p in perm) != list(range(n)):
        raise ShapeError(
            f"transpose: axes {perm} are not a permutation of the axes of shape {shape}."
        )
    return tuple(p % n for p in perm)  # negative axes count from the end


def matmul_shapes(a: Shape, b: Shape) -> None:
    """Check that ``a @ b`` is defined: one axis at least on each side, and
    the inner axes equal (numpy's own message says less)."""
    if not a or not b:
        raise ShapeError(
            f"matmul: shapes {a} and {b}: '@' needs at least one "
            "dimension on each side; use '*' to multiply by a scalar."
        )
    inner = b[0] if len(b) == 1 else b[-2]
    if a[-1] != inner:
        raise ShapeError(
            f"matmul: shapes {a} and {b} do not align: the last axis of the "
            f"left operand ({a[-1]}) must equal the "
            f"{'only' if len(b) == 1 else 'second-to-last'} axis of the right operand "
            f"({inner}). Did you forget a transpose (.T)?"
        )


# --------------------------------------------------- errors, for the engine
def broadcast(op: str, a: Shape, b: Shape) -> ShapeError:
    """Numpy's broadcast error, translated: it names the operation and the shapes."""
    return ShapeError(
        f"{op}: shapes {a} and {b} cannot be broadcast together. "
        "Numpy's rule: compare shapes from the right; each pair of sizes must be equal "
        "or one of them 1. Reshape one operand (for example b.reshape(1, -1))."
    )


def where_shapes(condition: Shape, a: Shape, b: Shape) -> ShapeError:
    return ShapeError(
        f"where: condition {condition}, a {a} and b {b} cannot be broadcast together."
    )


def batch_axes(a: Shape, b: Shape) -> ShapeError:
    return ShapeError(
        f"matmul: shapes {a} and {b}: the batch axes {a[:-2]} and "
        f"{b[:-2]} (all but the last two) cannot be broadcast together."
    )


def no_tangent_rule(op: str) -> TypeError:
    return TypeError(
        f"jvp: the operation '{op}' (made with Tensor.from_op) has no tangent rule, so "
        "forward mode cannot pass through it. Give from_op a jvp= that maps the inputs' "
        "tangents to the output's (for an elementwise operation: the sum of its gradient "
        "functions applied to the tangents)."
    )


def gradient_functions(op: str, inputs: int, vjps: int) -> ValueError:
    return ValueError(
        f"from_op('{op}'): {inputs} input(s) but {vjps} gradient "
        "function(s); give one function per input."
    )


def not_a_number(size: int, shape: Shape) -> ValueError:
    return ValueError(
        f"item(): the tensor has {size} elements (shape {shape}); "
        "only a one-element tensor converts to a Python number."
    )


def ambiguous_truth(size: int) -> ValueError:
    return ValueError(
        f"the truth value of a tensor of {size} elements is ambiguous; "
        "test its array, for example (t.data > 0).all(), or one element's t.item()."
    )


def not_a_loss(shape: Shape) -> RuntimeError:
    return RuntimeError(
        f"backward(): the tensor has shape {shape}, not a single number. "
        "Reduce it to a scalar loss first (e.g. y.sum() or y.mean()), or pass "
        "the gradient dL/dy explicitly: y.backward(grad) with grad of the same shape."
    )


def no_items(what: str) -> TypeError:
    """``what`` is "len() of" or "iteration over" a 0-d tensor."""
    items = "length" if what == "len() of" else "items"
    return TypeError(f"{what} a 0-d tensor: a single number has no {items}.")


def nothing_to_differentiate() -> RuntimeError:
    return RuntimeError(
        "backward(): this tensor does not depend on any tensor with "
        "requires_grad=True (or it was computed inside no_grad()), so there "
        "is nothing to differentiate."
    )


def seed_shape(grad: Shape, shape: Shape) -> ShapeError:
    return ShapeError(
        f"backward(grad): grad has shape {grad} but the tensor has shape {shape}; they must match."
    )


def exponent() -> TypeError:
    return TypeError(
        "pow: the exponent must be a Python number (x ** 2, x ** 0.5); "
        "for a tensor exponent write exp(b * log(a))."
    )


def base() -> ValueError:
    return ValueError(
        "pow: a tensor exponent needs a positive base (2 ** x is exp(x * log 2)); "
        "a base of 0 or below has no real power for every exponent."
    )


def empty_max(shape: Shape, axes: Shape) -> ValueError:
    return ValueError(
        f"max: the tensor of shape {shape} has no elements along the axes {axes}, "
        "so they have no maximum."
    )


def reshape(size: int, shape: Shape, new: Any) -> ShapeError:
    return ShapeError(
        f"reshape: cannot reshape {size} elements of shape {shape} into "
        f"shape {tuple(new)}; the number of elements must stay the same."
    )


def tensor_index() -> IndexError:
    return IndexError(
        "a Tensor cannot be an index: its data are floats. Index with integers, "
        "slices, lists or numpy arrays of integers or booleans (t[np.array([0, 2])])."
    )


def unequal_shapes(shapes: Sequence[Shape]) -> ShapeError:
    return ShapeError(f"stack: shapes {', '.join(map(str, shapes))} must all be equal.")


def unjoinable(shapes: Sequence[Shape], axis: int, numpy_says: Exception) -> ShapeError:
    return ShapeError(
        f"concatenate: shapes {', '.join(map(str, shapes))} along axis {axis}: all axes "
        f"but axis {axis} must match ({numpy_says})."
    )


def tangents(inputs: int, tangents: int) -> ValueError:
    return ValueError(
        f"jvp: {inputs} input(s) but {tangents} tangent(s); give one per input."
    )


def tangent_shape(i: int, tangent: Shape, shape: Shape) -> ShapeError:
    return ShapeError(
        f"jvp: tangent {i} has shape {tangent} but input {i} has shape "
        f"{shape}; each tangent must have its input's shape."
    )


def not_a_tensor(what: Any) -> TypeError:
    return TypeError(f"jvp: f must return a Tensor, got {type(what).__name__}.")


def gradient_shape(grad: Shape, shape: Shape, op: str) -> ShapeError:
    return ShapeError(
        f"gradient of shape {grad} for a tensor of shape {shape} (input of '{op}'): "
        "a gradient must have exactly the shape of its tensor."
    )
