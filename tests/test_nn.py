"""Networks, losses and optimisers."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse import ShapeError, Tensor, nn, optim
from dlcourse.gradcheck import check_module, gradcheck


def test_module_api() -> None:
    model = nn.MLP([2, 5, 3], rng=0)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model.num_parameters() == 2 * 5 + 5 + 5 * 3 + 3
    assert repr(model) == (
        "MLP(\n  (0): Linear(2, 5, bias=True)\n  (1): ReLU()\n  (2): Linear(5, 3, bias=True)\n)"
    )
    nn.cross_entropy(model(np.ones((4, 2))), np.array([0, 1, 2, 0])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert nn.Linear(3, 2, bias=False).parameters()[0].shape == (3, 2)
    assert len(nn.Linear(3, 2, bias=False).parameters()) == 1


def test_parameters_in_lists_and_shared_ones() -> None:
    class Twins(nn.Module):
        def __init__(self) -> None:
            self.encoders = [nn.Linear(2, 2, rng=0)]
            self.decoders = [nn.Linear(2, 2, rng=1)]
            self.scales = [Tensor(np.ones(2), requires_grad=True)]
            self.tied = self.encoders[0]  # the same layer twice

        def forward(self, x: Tensor) -> Tensor:
            return self.tied(self.decoders[0](self.encoders[0](x))) * self.scales[0]

    model = Twins()
    model.seen = [model(np.ones((1, 2)))]  # a result kept from a forward pass is no parameter
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "scales.0",
        "encoders.0.weight",
        "encoders.0.bias",
        "decoders.0.weight",
        "decoders.0.bias",
    ]
    assert len({id(p) for p in model.parameters()}) == len(model.parameters()) == 5
    assert "(encoders.0): Linear" in repr(model)
    assert check_module(model, lambda m: (m(np.ones((3, 2))) ** 2).sum(), mode="full")
    assert [name for name, _ in nn.MLP([2, 3, 1]).named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]


def test_float32_models_check_against_float64_differences() -> None:
    model = nn.MLP([3, 8, 2], activation="tanh", rng=0, dtype=np.float32)
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    before = [p.data for p in model.parameters()]
    assert check_module(
        model, lambda m: nn.cross_entropy(m(x), np.array([0, 1, 1, 0])), mode="full"
    )
    after = [p.data for p in model.parameters()]
    assert all(a is b and a.dtype == np.float32 for a, b in zip(before, after))


def test_sequential_and_trace() -> None:
    model = nn.Sequential(nn.Linear(2, 4, rng=1), nn.Tanh(), nn.Linear(4, 1, rng=2), nn.Sigmoid())
    outputs = model.trace(np.ones((3, 2)))
    assert [o.shape for o in outputs] == [(3, 4), (3, 4), (3, 1), (3, 1)]
    assert np.array_equal(outputs[-1].data, model(np.ones((3, 2))).data)
    assert len(model) == 4 and isinstance(model[1], nn.Tanh)
    with pytest.raises(TypeError, match=r"instead of ReLU\(\)"):
        nn.Sequential(nn.Linear(2, 2), nn.ReLU)


def test_seeded_initialisation_is_reproducible() -> None:
    a, b = nn.MLP([4, 8, 2], rng=7), nn.MLP([4, 8, 2], rng=7)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))
    c = nn.MLP([4, 8, 2], rng=np.random.default_rng(8))
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)


@pytest.mark.parametrize(("activation", "init"), [("relu", "he"), ("tanh", "xavier")])
def test_initialisation_keeps_signals_alive_through_depth(activation: str, init: str) -> None:
    model = nn.MLP([256] * 51, activation=activation, init=init, rng=0)
    x = np.random.default_rng(1).standard_normal((128, 256))
    outputs = model.trace(x)
    spread = np.std(outputs[-1].data)
    assert 0.05 < spread < 20, f"activations vanished or exploded: std {spread:.3g}"
    naive = nn.MLP([256] * 51, activation=activation, init=0.01, rng=0)
    assert np.std(naive.trace(x)[-1].data) < 1e-10


def test_deep_mlp_gradients() -> None:
    model = nn.MLP([3] + [6] * 100 + [2], activation="tanh", rng=0)
    X = np.random.default_rng(2).standard_normal((5, 3))
    assert check_module(model, lambda m: nn.cross_entropy(m(X), np.array([0, 1, 1, 0, 1])))


def test_linear_and_losses_gradients() -> None:
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    W = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    y = np.array([0, 3, 1, 1, 2])
    assert gradcheck(nn.linear, [x, W, b])
    assert gradcheck(lambda x, W: nn.linear(x, W), [x, W])
    assert gradcheck(
        lambda z: nn.cross_entropy(z, y), [Tensor(x.data @ W.data, requires_grad=True)]
    )
    assert gradcheck(nn.log_softmax, [x])
    assert gradcheck(lambda z: nn.softmax(z, axis=0), [x])
    assert gradcheck(lambda z: nn.mse_loss(z, np.ones((5, 3))), [x])


@pytest.mark.parametrize("shape", [(1, 4), (), (5, 4), (5, 1)])
def test_a_bias_numpy_broadcasts_gets_a_gradient_of_its_own_shape(shape: tuple) -> None:
    # linear's rows state dL/db for a bias of shape (D_out,); any other bias was
    # broadcast, so the engine sums its gradient over the broadcast axes
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    W = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal(shape), requires_grad=True)
    nn.linear(x, W, b).sum().backward()
    assert b.grad.shape == shape
    assert gradcheck(nn.linear, [x, W, b])


def test_losses_values() -> None:
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    y = np.array([0, 2])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[[0, 1], y]))
    assert nn.cross_entropy(Tensor(logits), y).item() == pytest.approx(expected)
    assert np.allclose(nn.softmax(Tensor(logits)).data, p)
    assert nn.mse_loss(Tensor([1.0, 2.0]), [0.0, 0.0]).item() == pytest.approx(2.5)


def test_softmax_is_stable_for_large_logits() -> None:
    z = Tensor([[1000.0, -1000.0, 999.0]], requires_grad=True)
    loss = nn.cross_entropy(z, np.array([2]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(1 + np.log1p(np.exp(-1)))
    assert np.all(np.isfinite(z.grad))
    assert np.all(np.isfinite(nn.log_softmax(Tensor([[1e4, -1e4]])).data))


def test_loss_errors() -> None:
    logits = Tensor(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="integer class indices"):
        nn.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ShapeError, match=r"labels have shape \(3, 1\)"):
        nn.cross_entropy(logits, np.array([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.3"):
        nn.cross_entropy(logits, np.array([0, 1, 4]))
    for negative in (-1, -4, -5):  # not read as counting from the end
        with pytest.raises(ValueError, match=rf"labels must lie in 0\.\.3 .* found {negative}\.\."):
            nn.cross_entropy(logits, np.array([negative, 1, 2]))
    with pytest.raises(ShapeError, match=r"\(N,\) against \(N, 1\)"):
        nn.mse_loss(Tensor(np.zeros((3, 1))), np.zeros(3))
    with pytest.raises(ShapeError, match=r"expected \(N, 2\)"):
        nn.Linear(2, 3)(np.ones((4, 3)))
    with pytest.raises(ValueError, match="unknown activation"):
        nn.MLP([2, 2], activation="swish")
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.MLP([2])


def quadratic_param(value: list[float]) -> Tensor:
    p = Tensor(np.array(value), requires_grad=True)
    (p * p).sum().backward()  # gradient 2p
    return p


def test_sgd_matches_the_formulas() -> None:
    p = quadratic_param([1.0, -2.0])
    optim.SGD([p], lr=0.1).step()
    assert np.allclose(p.data, [0.8, -1.6])
    p = quadratic_param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    opt.step()  # g = 2p + 0.5p = 2.5p; v = g
    assert np.allclose(p.data, [0.75, -1.5])
    p.grad = np.array([1.0, 1.0])
    opt.step()  # g = 1 + 0.5p; v = 0.9 * 2.5 * [1, -2] + g
    assert np.allclose(p.data, [0.75 - 0.1 * (2.25 + 1.375), -1.5 - 0.1 * (-4.5 + 0.25)])


def test_adam_first_step_moves_by_lr() -> None:
    p = quadratic_param([1.0, -2.0])
    optim.Adam([p], lr=0.01).step()
    assert np.allclose(p.data, [0.99, -1.99])


def test_optimiser_errors() -> None:
    with pytest.raises(ValueError, match="got no parameters"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad=True"):
        optim.SGD([Tensor([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="learning rate must be positive"):
        optim.Adam(nn.Linear(2, 2).parameters(), lr=0)
    with pytest.raises(ValueError, match="Adam: weight_decay must be >= 0"):
        optim.Adam(nn.Linear(2, 2).parameters(), weight_decay=-0.1)


def test_nn_functions_take_arrays_too() -> None:
    x, W, b = np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)
    assert np.array_equal(nn.linear(x, W, b).data, np.full((2, 4), 3.0))
    assert np.array_equal(nn.relu(np.array([-1.0, 1.0])).data, [0.0, 1.0])
    assert nn.tanh(np.zeros(2)).shape == (2,) and nn.sigmoid(np.zeros(2)).data[0] == 0.5
    assert np.allclose(nn.softmax(np.zeros((1, 4))).data, 0.25)
    assert nn.cross_entropy(np.zeros((2, 4)), np.array([0, 1])).item() == pytest.approx(np.log(4))
    assert nn.mse_loss(np.ones(3), np.zeros(3)).item() == 1.0


def test_mlp_takes_an_activation_module_and_copies_it() -> None:
    model = nn.MLP([2, 4, 4, 1], activation=nn.Tanh(), rng=0)
    activations = [m for m in model if isinstance(m, nn.Tanh)]
    assert len(activations) == 2 and activations[0] is not activations[1]
    assert model(np.ones((3, 2))).shape == (3, 1)
    assert nn.MLP([2, 3], activation=nn.ReLU)[0].weight.shape == (2, 3)
    with pytest.raises(TypeError, match="a name, a Module class or a Module, got int"):
        nn.MLP([2, 3, 1], activation=3)


def test_adam_counts_steps_per_parameter() -> None:
    early, late = (Tensor(np.array([1.0]), requires_grad=True) for _ in range(2))
    opt = optim.Adam([early, late], lr=0.1)
    for step in range(5):
        early.grad = np.array([1.0])
        late.grad = np.array([1.0]) if step == 4 else None
        opt.step()
    assert late.data[0] == pytest.approx(0.9)  # its first step: a full lr, as in PyTorch
    assert opt.steps == [5, 1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_empty_batch_has_a_nan_loss_and_an_empty_gradient_silently(dtype: type) -> None:
    # as in torch: the mean over no examples is NaN, and nothing warns
    logits = Tensor(np.zeros((0, 3), dtype), requires_grad=True)
    loss = nn.cross_entropy(logits, np.zeros(0, dtype=int))
    assert np.isnan(loss.item()) and loss.dtype == dtype
    loss.backward()
    assert logits.grad.shape == (0, 3) and logits.grad.dtype == dtype
