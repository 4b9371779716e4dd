"""The engine: every operation's gradient against central differences, and the
behaviour of backward() itself."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dlcourse as dl
from dlcourse import ShapeError, Tensor
from dlcourse.gradcheck import gradcheck


def leaf(shape: tuple[int, ...], seed: int = 0, positive: bool = False) -> Tensor:
    x = np.random.default_rng(seed).standard_normal(shape)
    if positive:
        x = np.abs(x) + 0.5
    return Tensor(x, requires_grad=True)


# Each case: a function of tensors and the shapes (and positivity) of its inputs.
UNARY = {
    "neg": (lambda a: -a, False),
    "pow2": (lambda a: a**2, False),
    "pow_half": (lambda a: a**0.5, True),
    "pow_neg": (lambda a: a**-1.5, True),
    "exp": (lambda a: a.exp(), False),
    "log": (lambda a: a.log(), True),
    "tanh": (lambda a: a.tanh(), False),
    "sigmoid": (lambda a: a.sigmoid(), False),
    "relu": (lambda a: a.relu(), False),
    "sum": (lambda a: a.sum(), False),
    "sum0": (lambda a: a.sum(axis=0), False),
    "sum_keep": (lambda a: a.sum(axis=-1, keepdims=True), False),
    "sum_tuple": (lambda a: a.sum(axis=(0, 2)), False),
    "mean": (lambda a: a.mean(), False),
    "mean1": (lambda a: a.mean(axis=1), False),
    "max": (lambda a: a.max(), False),
    "max1": (lambda a: a.max(axis=1), False),
    "max_keep": (lambda a: a.max(axis=0, keepdims=True), False),
    "reshape": (lambda a: a.reshape(-1, 2), False),
    "reshape_tuple": (lambda a: a.reshape((4, 6)), False),
    "T": (lambda a: a.T, False),
    "transpose": (lambda a: a.transpose(1, 0, 2), False),
    "slice": (lambda a: a[1:, ::2], False),
    "int_index": (lambda a: a[np.array([0, 1, 0])], False),
    "mixed_index": (lambda a: a[np.array([1, 0, 1]), :, np.array([3, 3, 0])], False),
    "scalar_ops": (lambda a: 2.0 - a * 3 / 4 + 1, False),
    "rdiv": (lambda a: 1.0 / a, True),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name: str) -> None:
    fn, positive = UNARY[name]
    assert gradcheck(fn, [leaf((2, 3, 4), positive=positive)])


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((), (2, 3)),
    ((5,), (2, 1, 5)),
]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients_with_broadcasting(name: str, shapes: tuple) -> None:
    a, b = leaf(shapes[0], 1), leaf(shapes[1], 2, positive=True)
    assert gradcheck(BINARY[name], [a, b])
    out = BINARY[name](a, b)
    out.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4,)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((3, 4), (2, 4, 5)),
    ((4,), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradients(shapes: tuple) -> None:
    assert gradcheck(lambda a, b: a @ b, [leaf(shapes[0], 3), leaf(shapes[1], 4)])


def test_module_functions_gradients() -> None:
    a, b, c = leaf((2, 3), 1), leaf((4, 3), 2), leaf((2, 3), 3)
    assert gradcheck(lambda a, b: dl.concatenate([a, b, a], axis=0), [a, b])
    assert gradcheck(lambda a, c: dl.stack([a, c, a], axis=1), [a, c])
    cond = np.array([[True, False, True], [False, False, True]])
    assert gradcheck(lambda a, c: dl.where(cond, a, c), [a, c])
    assert gradcheck(lambda a: dl.where(cond, a, 0.0), [a])
    assert gradcheck(lambda a: dl.where(cond, a, leaf((3,), 9)), [a])


@st.composite
def broadcast_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
    )
    elements = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=elements))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=elements))
    return a, b


@settings(max_examples=60, deadline=None)
@given(pair=broadcast_pair(), op=st.sampled_from(["add", "sub", "mul"]))
def test_broadcasting_property(pair: tuple, op: str) -> None:
    a, b = (Tensor(x, requires_grad=True) for x in pair)
    assert gradcheck(lambda a, b: BINARY[op](a, b).tanh(), [a, b])
    BINARY[op](a, b).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        elements=st.floats(-2, 2, allow_nan=False),
    ),
    data=st.data(),
)
def test_reductions_property(x: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1))
    keepdims = data.draw(st.booleans())
    t = Tensor(x, requires_grad=True)
    assert gradcheck(lambda t: t.sum(axis=axis, keepdims=keepdims) * 2, [t])
    assert gradcheck(lambda t: t.mean(axis=axis, keepdims=keepdims).exp(), [t])
    assert np.allclose(
        t.mean(axis=axis, keepdims=keepdims).data, x.mean(axis=axis, keepdims=keepdims)
    )


FINITE = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(pair=broadcast_pair())
def test_division_property(pair: tuple) -> None:
    a, b = Tensor(pair[0], requires_grad=True), Tensor(np.abs(pair[1]) + 0.5, requires_grad=True)
    assert gradcheck(lambda a, b: a / b, [a, b])


@settings(max_examples=40, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(
        signature="(m?,n),(n,p?)->(m?,p?)", max_dims=4, max_side=3
    ),
    data=st.data(),
)
def test_matmul_property(shapes: hnp.BroadcastableShapes, data: st.DataObject) -> None:
    a, b = (
        Tensor(data.draw(hnp.arrays(np.float64, shape, elements=FINITE)), requires_grad=True)
        for shape in shapes.input_shapes
    )
    assert gradcheck(lambda a, b: a @ b, [a, b])
    assert (a @ b).shape == np.matmul(a.data, b.data).shape


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        elements=st.integers(-100, 100).map(float),
        unique=True,  # no ties, nor near ties: the maximum is differentiable
    ),
    data=st.data(),
)
def test_max_property(x: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1))
    keepdims = data.draw(st.booleans())
    assert gradcheck(lambda t: t.max(axis=axis, keepdims=keepdims), [Tensor(x, requires_grad=True)])


@settings(max_examples=40, deadline=None)
@given(pair=broadcast_pair(), data=st.data())
def test_where_property(pair: tuple, data: st.DataObject) -> None:
    shape = np.broadcast_shapes(pair[0].shape, pair[1].shape)
    cond = data.draw(hnp.arrays(np.bool_, shape))
    a, b = (Tensor(x, requires_grad=True) for x in pair)
    assert gradcheck(lambda a, b: dl.where(cond, a, b), [a, b])


@settings(max_examples=40, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
    sizes=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    data=st.data(),
)
def test_concatenate_and_stack_property(shape: tuple, sizes: list, data: st.DataObject) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(0)

    def along_axis(n: int) -> tuple[int, ...]:  # the shape with n at the joining axis
        resized = list(shape)
        resized[axis] = n
        return tuple(resized)

    parts = [Tensor(rng.standard_normal(along_axis(n)), requires_grad=True) for n in sizes]
    assert gradcheck(lambda *ts: dl.concatenate(ts, axis=axis).tanh(), parts)
    same = [Tensor(rng.standard_normal(shape), requires_grad=True) for _ in sizes]
    new_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert gradcheck(lambda *ts: dl.stack(ts, axis=new_axis).tanh(), same)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=FINITE),
    data=st.data(),
)
def test_indexing_property(x: np.ndarray, data: st.DataObject) -> None:
    index = data.draw(
        hnp.basic_indices(x.shape, allow_newaxis=True)
        | hnp.integer_array_indices(x.shape, result_shape=hnp.array_shapes(max_dims=2, max_side=4))
    )
    t = Tensor(x, requires_grad=True)
    assert np.array_equal(t[index].data, x[index])
    assert gradcheck(lambda t: t[index] * 2, [t])


def test_max_ties_share_the_gradient() -> None:
    a = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]], requires_grad=True)
    a.max(axis=1).sum().backward()
    assert np.array_equal(a.grad, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_repeated_integer_indices_add_up() -> None:
    a = Tensor(np.arange(4.0), requires_grad=True)
    a[np.array([0, 0, 3, 0])].sum().backward()
    assert np.array_equal(a.grad, [3.0, 0.0, 0.0, 1.0])


# ------------------------------------------------------------------- backward
def test_node_used_twice_accumulates() -> None:
    a = Tensor(2.0, requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad == 4.0
    d = Tensor(3.0, requires_grad=True)
    (d * d * d).backward()
    assert d.grad == pytest.approx(27.0)


def test_gradients_accumulate_across_backward_calls() -> None:
    a = Tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    y.backward()
    y.backward()  # the documented behaviour: the same gradient is added again
    assert np.array_equal(a.grad, [4.0, 8.0])


def test_leaves_own_their_gradients() -> None:
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 10  # must not change b's gradient
    assert np.array_equal(b.grad, [1.0, 1.0])


def test_long_chain_does_not_recurse() -> None:
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_intermediate_gradients_are_released_unless_retained() -> None:
    x = leaf((3,))
    h = (x * 2).retain_grad()
    z = x * 3
    (h * z).sum().backward()
    assert np.allclose(h.grad, z.data)
    assert z.grad is None


def test_a_retained_tensor_passes_on_only_this_passs_gradient() -> None:
    a = Tensor([1.0, 2.0], requires_grad=True)
    h = (a * 3).retain_grad()
    y = (h * h).sum().retain_grad()
    y.backward()
    assert np.allclose(a.grad, [18.0, 36.0]) and np.allclose(h.grad, [6.0, 12.0])
    y.backward()  # the same gradients once more, as documented
    assert np.allclose(a.grad, [36.0, 72.0]) and np.allclose(h.grad, [12.0, 24.0])
    assert y.grad == 2.0
    b = Tensor([1.0], requires_grad=True)
    shared = (b * 2).retain_grad()
    (shared * 3).sum().backward()
    (shared * 3).sum().backward()  # a second loss through the same retained tensor
    assert np.allclose(b.grad, [12.0]) and np.allclose(shared.grad, [6.0])


def test_graph_is_freed_by_reference_counting() -> None:
    gc.disable()
    try:
        x = leaf((4, 3))
        h = (x @ leaf((3, 5), 1)).tanh()
        probe = weakref.ref(h.data)  # freed with the graph that holds it
        loss = (h * h).sum()
        del h
        loss.backward()
        assert probe() is not None
        del loss
        assert probe() is None, "the graph survived its loss: a reference cycle?"
    finally:
        gc.enable()


def test_no_grad_records_nothing() -> None:
    x = leaf((2,))
    with dl.no_grad():
        assert not dl.is_grad_enabled()
        y = x * 2
    assert dl.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not depend on any tensor"):
        y.sum().backward()


def test_backward_with_explicit_gradient() -> None:
    x = leaf((2, 3))
    y = x * 3
    y.backward(np.ones((2, 3)) * 2)
    assert np.allclose(x.grad, 6.0)


def test_backward_from_a_leaf_gives_the_seed() -> None:
    x = Tensor(np.array(3.0), requires_grad=True)
    x.backward()
    assert x.grad == 1.0
    w = leaf((2, 3))
    w.backward(np.full((2, 3), 0.5))
    w.backward(np.full((2, 3), 0.5))  # accumulates, as from any other tensor
    assert np.array_equal(w.grad, np.ones((2, 3)))


def test_relu_has_slope_zero_at_zero() -> None:
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    assert np.array_equal(x.grad, [0.0, 0.0, 1.0])  # as in PyTorch


def test_negative_axes() -> None:
    x = leaf((2, 3, 4))
    assert x.transpose(-1, 0, -2).shape == (4, 2, 3)
    assert gradcheck(lambda x: x.transpose(-1, -3, 1), [x])
    assert x.mean(axis=-1).shape == (2, 3)


def test_where_keeps_the_dtype_of_its_tensors() -> None:
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = dl.where(np.array([True, False, True]), x, 0.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert np.array_equal(x.grad, [1.0, 0.0, 1.0]) and x.grad.dtype == np.float32
    assert dl.where([True, False], 1, 2).dtype == np.float64


def test_float32_stays_float32() -> None:
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    y = ((x * 2.0 + 1) @ Tensor(np.ones((3, 2), dtype=np.float32))).tanh().mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_basic_attributes() -> None:
    x = Tensor([[1, 2, 3]])
    assert x.dtype == np.float64 and x.shape == (1, 3) and x.ndim == 2
    assert Tensor(2.5).item() == 2.5
    assert x.numpy() is x.data
    d = leaf((2,)).detach()
    assert not d.requires_grad
    assert repr(Tensor([1.0, 2.0], requires_grad=True)) == "Tensor([1., 2.], requires_grad=True)"
    assert "op='mul'" in repr(leaf((2,)) * 2)
    assert repr(np.ones(2) + Tensor([1.0, 2.0])).startswith("Tensor(")


# ----------------------------------------------------------------- bad input
def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(ShapeError, match=r"matmul: shapes \(3, 4\) and \(5, 2\).*transpose"):
        leaf((3, 4)) @ leaf((5, 2))
    with pytest.raises(ShapeError, match=r"add: shapes \(3, 4\) and \(3,\)"):
        leaf((3, 4)) + leaf((3,))
    with pytest.raises(ShapeError, match=r"mul: shapes \(2,\) and \(3,\)"):
        leaf((2,)) * np.ones(3)
    with pytest.raises(TypeError, match=r"integer data.*cannot require gradients"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="dtype <U1 is not supported"):
        Tensor(["a"])
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\), not a single number"):
        (leaf((2, 3)) * 2).backward()
    with pytest.raises(ShapeError, match=r"grad has shape \(3,\) but the tensor has shape \(2,\)"):
        (leaf((2,)) * 2).backward(np.ones(3))
    with pytest.raises(ShapeError, match="cannot reshape 6 elements"):
        leaf((2, 3)).reshape(4, 2)
    with pytest.raises(TypeError, match="exponent must be a Python number"):
        leaf((2,)) ** leaf((2,))
    with pytest.raises(ValueError, match="item"):
        leaf((2,)).item()


def test_shape_errors_name_the_operation_and_the_operands_in_order() -> None:
    with pytest.raises(ShapeError, match=r"sub: shapes \(3,\) and \(3, 4\)"):
        np.ones(3) - leaf((3, 4))
    with pytest.raises(ShapeError, match=r"add: shapes \(3,\) and \(3, 4\)"):
        np.ones(3) + leaf((3, 4))
    with pytest.raises(ShapeError, match=r"mul: shapes \(3,\) and \(3, 4\)"):
        np.ones(3) * leaf((3, 4))
    with pytest.raises(ShapeError, match=r"div: shapes \(3,\) and \(3, 4\)"):
        np.ones(3) / leaf((3, 4))
    with pytest.raises(ShapeError, match=r"batch axes \(2,\) and \(5,\)"):
        leaf((2, 3, 4)) @ leaf((5, 4, 6))
    with pytest.raises(ShapeError, match=r"mean: axis 5 is out of range for a tensor of shape"):
        leaf((2, 3)).mean(axis=5)
    with pytest.raises(ShapeError, match=r"sum: axis -3 is out of range"):
        leaf((2, 3)).sum(axis=(0, -3))
    with pytest.raises(ShapeError, match=r"max: axis 2 is out of range"):
        leaf((2, 3)).max(axis=2)
    with pytest.raises(ShapeError, match=r"single number has no axes; leave axis=None"):
        Tensor(2.0).sum(axis=0)
    with pytest.raises(ShapeError, match=r"transpose: axes \(0, 0\)"):
        leaf((2, 3)).transpose(0, 0)


def test_a_custom_operation_with_a_wrong_gradient_shape_is_caught() -> None:
    x = leaf((2, 3))
    y = Tensor.from_op(x.data * 2, (x,), (lambda g: g.sum(axis=0),), "double")
    with pytest.raises(
        ShapeError,
        match=r"gradient of shape \(3,\) for a tensor of shape \(2, 3\) \(input of 'double'\)",
    ):
        y.sum().backward()
    with pytest.raises(ValueError, match=r"1 input\(s\) but 2 gradient function"):
        Tensor.from_op(x.data, (x,), (None, None), "twice")


# ------------------------------- found by differential testing against PyTorch
def test_relu_and_max_select_so_an_infinite_gradient_stays_out_of_the_others() -> None:
    x = Tensor([-1.0, 2.0], requires_grad=True)
    x.relu().log().sum().backward()  # log's slope at relu(-1) = 0 is inf
    assert np.array_equal(x.grad, [0.0, 0.5])
    X, W = Tensor(-np.ones((2, 3))), Tensor(np.ones((3, 2)), requires_grad=True)
    (X @ W).relu().log().sum().backward()
    assert np.array_equal(W.grad, np.zeros((3, 2)))
    for dtype in (np.float32, np.float64):  # sizes past np.where
        big = Tensor(np.tile([-1.0, 2.0], 16384).astype(dtype), requires_grad=True)
        big.relu().backward(np.tile([np.inf, 1.0], 16384))
        assert np.array_equal(big.grad, np.tile([0.0, 1.0], 16384))
        big.grad = None
        big.relu().backward(np.full(32768, 2.0))  # finite: the fast product, the same values
        assert np.array_equal(big.grad, np.tile([0.0, 2.0], 16384))
        assert big.grad.dtype == dtype
    m = Tensor([1.0, 3.0, 0.0], requires_grad=True)
    (m.max() * np.array([1.0, 1.0, np.inf])[2]).backward()
    assert np.array_equal(m.grad, [0.0, np.inf, 0.0])
    m.grad = None
    (m - m.max()).exp().log().sum().backward()  # finite everywhere
    assert np.all(np.isfinite(m.grad))


def test_a_tuple_inside_an_index_is_a_sequence_of_indices() -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x[(0, 0), :]
    assert y.shape == (2, 3)
    y.sum().backward()
    assert np.array_equal(x.grad, [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    x.grad = None
    x[(0, 1)].backward()  # a plain tuple is one element: x[0, 1]
    assert np.array_equal(x.grad, [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    x.grad = None
    x[np.array([True, False]), [1, 1]].sum().backward()
    assert np.array_equal(x.grad, [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(IndexError, match="a Tensor cannot be an index: its data are floats"):
        x[Tensor([0.0, 1.0])]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_accurate_below_zero(dtype: type) -> None:
    z = np.array([-40.0, -30.0, -15.0, -1.0, 0.0, 3.0, 40.0])
    exact = 1 / (1 + np.exp(-z))  # no cancellation in float64 for z <= 0
    got = Tensor(z.astype(dtype)).sigmoid().data
    assert got.dtype == dtype
    np.testing.assert_allclose(got, exact, rtol=1e-6 if dtype == np.float32 else 1e-14)
    x = Tensor([-40.0], requires_grad=True)
    y = x.sigmoid().log()
    y.backward()
    assert y.item() == pytest.approx(-40.0) and x.grad[0] == pytest.approx(1.0)


def test_a_backward_that_raises_leaves_no_stale_gradients() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    calls = []

    def fragile(g: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return g

    y = Tensor.from_op(h.data, (h,), (fragile,), "fragile")
    w = Tensor([1.0, 1.0], requires_grad=True)
    z = (y + h + x * w).sum()  # x and w get gradients before fragile runs
    with pytest.raises(RuntimeError, match="boom"):
        z.backward(retain_grads=True)
    assert x.grad is None and w.grad is None and h.grad is None  # as in PyTorch
    z.backward()  # a retry counts each gradient once
    assert np.array_equal(x.grad, [7.0, 7.0]) and np.array_equal(w.grad, [1.0, 2.0])
    assert h.grad is None


def test_a_gradient_function_may_return_an_array_it_keeps() -> None:
    c = np.array([1.0, 2.0])
    x = Tensor([5.0, 5.0], requires_grad=True)
    y = Tensor.from_op(x.data * c, (x,), (lambda g: c,), "scale")  # g = 1: dL/dx = c
    y.sum().backward()
    y.sum().backward()  # adds into x.grad, not into c
    assert np.array_equal(x.grad, [2.0, 4.0]) and np.array_equal(c, [1.0, 2.0])


def test_a_custom_operation_without_a_tangent_rule_is_refused_by_forward_mode() -> None:
    def cumsum(u: Tensor, tangent: bool) -> Tensor:
        backward = (lambda g: np.cumsum(g[::-1])[::-1],)
        return Tensor.from_op(
            np.cumsum(u.data), (u,), backward, "cumsum", jvp=np.cumsum if tangent else None
        )

    with pytest.raises(TypeError, match=r"'cumsum' \(made with Tensor.from_op\) has no tangent"):
        dl.jvp(lambda u: cumsum(u, tangent=False), [np.ones(3)], [np.array([1.0, 0, 0])])
    _, tangent = dl.jvp(lambda u: cumsum(u, tangent=True), [np.ones(3)], [np.array([1.0, 0, 0])])
    assert np.array_equal(tangent, [1.0, 1.0, 1.0])  # J v, not J^T v = [1, 0, 0]


def test_python_protocols_behave_as_in_pytorch() -> None:
    x = Tensor([0.5, 1.0, -2.0], requires_grad=True)
    y = 2**x
    y.sum().backward()
    np.testing.assert_allclose(y.data, 2**x.data, rtol=1e-15)
    np.testing.assert_allclose(x.grad, 2**x.data * np.log(2), rtol=1e-15)
    np.testing.assert_allclose((np.array([3.0, 4, 5]) ** x).data, [3**0.5, 4, 5**-2.0])
    with pytest.raises(ValueError, match="a tensor exponent needs a positive base"):
        0**x
    assert not Tensor([0.0]) and not Tensor(0.0) and Tensor([[3.0]])
    with pytest.raises(ValueError, match="truth value of a tensor of 3 elements is ambiguous"):
        bool(x)
    assert x.reshape([3, 1]).shape == (3, 1)
    assert x.reshape([3, 1]).sum(axis=[0, 1]).item() == pytest.approx(-0.5)
    assert weakref.ref(x)() is x


def test_empty_mean_and_power_zero_as_in_pytorch() -> None:
    assert np.isnan(Tensor(np.zeros(0)).mean().item())
    assert Tensor(np.zeros((0, 3))).mean(axis=0).shape == (3,)
    assert np.all(np.isnan(Tensor(np.zeros((0, 3))).mean(axis=0).data))
    x = Tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    assert np.array_equal(x.grad, [0.0, 0.0])


def test_a_tensor_that_requires_a_gradient_owns_its_data() -> None:
    W0 = np.ones(3)
    W = dl.tensor(W0, requires_grad=True)
    (W * W).sum().backward()
    dl.optim.SGD([W], lr=0.5).step()
    assert np.array_equal(W0, np.ones(3)) and np.array_equal(W.data, np.zeros(3))
    assert Tensor(W0, requires_grad=True).data is not W0
    assert dl.tensor(W0).data is not W0
    assert Tensor(W0).data is W0  # a constant shares: nothing changes it


def test_numbers_and_integer_arrays_keep_float32() -> None:
    x = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    for y in (
        x * np.float64(2),
        np.float64(2) * x,
        x / np.float64(2),
        np.float64(2) / x,
        x + np.arange(2),
        x - 1,
        x @ np.arange(2),
        dl.where([True, False], x, np.float64(3)),
    ):
        assert y.dtype == np.float32, y
    assert (x * np.ones(2)).dtype == np.float64  # a float64 array promotes, as numpy does
    (x * np.float64(2)).sum().backward()
    assert x.grad.dtype == np.float32


def test_retained_gradients_are_writable_arrays_of_their_own() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = (x * 1).retain_grad()
    k = (x * 1).retain_grad()
    (h + k).sum().backward()
    h.grad *= 10  # neither read-only nor shared with k or x
    assert np.array_equal(k.grad, [1.0, 1.0]) and np.array_equal(x.grad, [2.0, 2.0])


def test_a_single_number_neither_iterates_nor_has_a_length() -> None:
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(Tensor(3.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        sum(Tensor(5.0))
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(5.0))
    rows = list(Tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.shape for r in rows] == [(2,), (2,)] and rows[1].data[0] == 3.0


def test_join_axis_errors_name_the_axis() -> None:
    a = Tensor(np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"stack: axis 3 is out of range.*use -3 to 2"):
        dl.stack([a, a], axis=3)
    with pytest.raises(ShapeError, match=r"concatenate: axis 2 is out of range.*use -2 to 1"):
        dl.concatenate([a, a], axis=2)
    with pytest.raises(ShapeError, match=r"stack: shapes \(2, 3\), \(3,\) must all be equal"):
        dl.stack([a, np.ones(3)])


def test_training_leaves_nothing_for_the_garbage_collector() -> None:
    model = dl.nn.MLP([4, 8, 8, 3], rng=0)
    opt = dl.optim.SGD(model.parameters(), lr=0.1)
    X, y = np.random.default_rng(0).standard_normal((5, 4)), np.array([0, 1, 2, 0, 1])
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            opt.zero_grad()
            loss = dl.nn.cross_entropy(model(X), y)
            loss.backward(retain_grads=True)
            opt.step()
            (model(X)[np.array([0, 0])].max() * 2.0 / 3.0 - 1).sigmoid().backward()
        del loss
        assert gc.collect() == 0, "a graph made a reference cycle"
    finally:
        gc.enable()


def test_an_operation_makes_no_functions_its_gradients_come_from_the_table() -> None:
    """Every call of an operation uses its row of the table of derivatives, made
    once: a step of training allocates no closures (each would cost a function
    object and its cells per operation per step)."""
    x, w = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones((3, 2)), requires_grad=True)
    model = dl.nn.Linear(3, 2, rng=0)
    first = [x * w.T, (x @ w).relu(), x.sum(axis=0), x.exp().mean(), model(x), x[0]]
    again = [x * w.T, (x @ w).relu(), x.sum(axis=0), x.exp().mean(), model(x), x[0]]
    for a, b in zip(first, again):
        assert a._rule is b._rule, a.op
        assert all(f.__closure__ is None for f in a._rule.vjps), a.op
    assert [t.op for t in first] == ["mul", "relu", "sum", "mean", "linear", "getitem"]


def test_an_array_times_a_tensor_and_a_tensor_as_a_float() -> None:
    X, W = np.arange(6.0).reshape(2, 3), Tensor(np.ones((3, 2)), requires_grad=True)
    y = X @ W  # an ndarray on the left defers to the Tensor
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(W.grad, X.T @ np.ones((2, 2)))
    assert float(Tensor(2.5)) == 2.5 and float(Tensor([[3.0]])) == 3.0
    with pytest.raises(ValueError, match="item"):
        float(Tensor([1.0, 2.0]))
