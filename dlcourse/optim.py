"""Optimisers: they move each parameter a small step against its gradient.

Updates change ``p.data`` in place and record no graph.  Parameters whose
``.grad`` is None (not used in the last backward pass) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dlcourse.tensor import Tensor


class Optimizer:
    """Holds the parameters; subclasses define :meth:`step`."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters; pass model.parameters().")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} is not a Tensor with "
                    "requires_grad=True; pass model.parameters()."
                )
        if not lr > 0:
            raise ValueError(
                f"{type(self).__name__}: the learning rate must be positive, got {lr}."
            )
        self.lr = lr

    def zero_grad(self) -> None:
        """Forget accumulated gradients (set every ``.grad`` to None)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Gradient descent: ``v = momentum * v + grad``; ``p -= lr * v``.

    ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2 regularisation).
    """

    def __init__(
        self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}.")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}.")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        lr, momentum, weight_decay = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if weight_decay:
                g = g + weight_decay * p.data
            if momentum:
                v = self.velocity[i]
                if v is None:
                    v = self.velocity[i] = g.copy()
                else:  # in place: the optimiser owns its velocities
                    v *= momentum
                    v += g
                g = v
            p.data -= lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015): steps scaled by running estimates of the
    gradient's mean and uncentred variance, with bias correction.

    Each parameter counts its own steps (as in PyTorch): one that first gets a
    gradient late starts its bias correction then, not where the others are.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}.")
        if weight_decay < 0:
            raise ValueError(f"Adam: weight_decay must be >= 0, got {weight_decay}.")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.steps = [0] * len(self.params)

    def step(self) -> None:
        b1, b2 = self.betas
        for i, (p, m, v) in enumerate(zip(self.params, self.m, self.v)):
            g = p.grad
            if g is None:
                continue
            self.steps[i] += 1
            correction1, correction2 = 1 - b1 ** self.steps[i], 1 - b2 ** self.steps[i]
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p.data -= self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps)
