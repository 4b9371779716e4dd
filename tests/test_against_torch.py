"""Values and gradients agree with PyTorch in float64 (skipped where torch is absent)."""

from __future__ import annotations

import numpy as np
import pytest

import dlcourse as dl
from dlcourse import Tensor, nn

torch = pytest.importorskip("torch")

# Each case: the same computation written for dlcourse and for torch, and input shapes.
CASES = {
    "arithmetic": (
        lambda a, b: ((a * b - a / (b * b + 1)) ** 2 + 3 - a).sum(),
        lambda a, b: ((a * b - a / (b * b + 1)) ** 2 + 3 - a).sum(),
        [(3, 4), (4,)],
    ),
    "matmul_batched": (
        lambda a, b: (a @ b).tanh().mean(),
        lambda a, b: (a @ b).tanh().mean(),
        [(2, 3, 4), (4, 5)],
    ),
    "reductions": (
        lambda a, b: a.max(axis=1).sum() + (a * b).mean(axis=0).exp().sum(),
        lambda a, b: a.amax(dim=1).sum() + (a * b).mean(dim=0).exp().sum(),
        [(3, 4), (1, 4)],
    ),
    "activations": (
        lambda a, b: (a.sigmoid() * b.relu() + a.tanh() + (a - 1).relu()).sum(),
        lambda a, b: (a.sigmoid() * b.relu() + a.tanh() + (a - 1).relu()).sum(),
        [(3, 4), (3, 4)],
    ),
    "shapes": (
        lambda a, b: (a.reshape(4, 3).T * b).transpose(1, 0)[1:, ::2].sum(),
        lambda a, b: (a.reshape(4, 3).T * b).permute(1, 0)[1:, ::2].sum(),
        [(3, 4), (3, 1)],
    ),
    "index_join": (
        lambda a, b: (dl.concatenate([a, b], axis=1)[np.array([0, 2, 0])] ** 3).log().sum(),
        lambda a, b: (torch.cat([a, b], dim=1)[[0, 2, 0]] ** 3).log().sum(),
        [(3, 4), (3, 2)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_operations_match_torch(name: str) -> None:
    ours, theirs, shapes = CASES[name]
    rng = np.random.default_rng(0)
    arrays = [np.abs(rng.standard_normal(s)) + 0.1 for s in shapes]
    mine = [Tensor(x, requires_grad=True) for x in arrays]
    value = ours(*mine)
    value.backward()
    reference = [torch.tensor(x, requires_grad=True) for x in arrays]
    expected = theirs(*reference)
    expected.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    for t, r in zip(mine, reference):
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_mlp_training_step_matches_torch() -> None:
    model = nn.MLP([5, 16, 16, 3], rng=0)
    X = np.random.default_rng(1).standard_normal((8, 5))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    nn.cross_entropy(model(X), y).backward()

    layers = [m for m in model if isinstance(m, nn.Linear)]
    ws = [torch.tensor(m.weight.data, requires_grad=True) for m in layers]
    bs = [torch.tensor(m.bias.data, requires_grad=True) for m in layers]
    h = torch.tensor(X)
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w + b
        if i < len(ws) - 1:
            h = torch.relu(h)
    torch.nn.functional.cross_entropy(h, torch.tensor(y)).backward()
    for m, w, b in zip(layers, ws, bs):
        np.testing.assert_allclose(m.weight.grad, w.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(m.bias.grad, b.grad.numpy(), rtol=1e-10, atol=1e-13)
    log_p = torch.log_softmax(torch.tensor(X), dim=1).numpy()
    np.testing.assert_allclose(nn.log_softmax(dl.Tensor(X)).data, log_p, rtol=1e-12)
