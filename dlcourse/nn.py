"""Deep networks on top of the engine: layers, activations, losses.

Conventions (the same as the chapter's exercises): a batch is a matrix whose
rows are examples, and a dense layer computes ``x @ W + b`` with ``x`` of
shape (N, D_in), ``W`` of shape (D_in, D_out) and ``b`` of shape (D_out,).

The two operations that carry most of a network's work, :func:`linear` and
:func:`cross_entropy`, are single operations of the engine with their own
backward rule (the formulas you derive in section 1.3), rather than chains
of small ones: fewer nodes, fewer temporary arrays, the same gradients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import pairwise
from typing import Any, Union

import numpy as np

from dlcourse.errors import ShapeError
from dlcourse.tensor import ArrayLike, Rule, Tensor, _record, no_grad

Init = str | float
Rng = Union["np.random.Generator", int, None]  # a string: numpy.random loads on first use

# ------------------------------------------------------------------ functional


def _tensor(x: ArrayLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def linear(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> Tensor:
    """``x @ weight + bias`` as one operation.

    Shapes: x (N, D_in), weight (D_in, D_out), bias (D_out,) -> (N, D_out).
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    W = weight if isinstance(weight, Tensor) else Tensor(weight)
    X, Wd = x.data, W.data
    if X.ndim != 2 or Wd.ndim != 2 or X.shape[1] != Wd.shape[0]:
        raise ShapeError(
            f"linear: input of shape {x.shape} does not fit a weight of shape {W.shape}: "
            f"expected (N, {W.shape[0]}), a batch of N rows with {W.shape[0]} features."
        )
    out = X @ Wd
    if bias is None:
        return _record(LINEAR_NO_BIAS, out, (x, W), X, Wd)
    b = bias if isinstance(bias, Tensor) else Tensor(bias)
    out += b.data
    rule = LINEAR if b.data.shape == out.shape[1:] else LINEAR_BROADCAST_BIAS
    return _record(rule, out, (x, W, b), X, Wd)


# y = x W + b: dL/dx = g W^T, dL/dW = x^T g, dL/db = g summed over the batch
LINEAR = Rule(
    "linear",
    (lambda g, X, W: g @ W.T, lambda g, X, W: X.T @ g, lambda g, X, W: g.sum(axis=0)),
    jvp=lambda tx, tW, tb, X, W: tx @ W + X @ tW + tb,
)
LINEAR_NO_BIAS = Rule("linear", LINEAR.vjps[:2], jvp=lambda tx, tW, X, W: tx @ W + X @ tW)
# a bias of another shape, (1, D_out) say, was broadcast to (N, D_out): g, summed by the engine
LINEAR_BROADCAST_BIAS = LINEAR._replace(vjps=(*LINEAR.vjps[:2], lambda g, X, W: g), broadcasts=True)


def relu(x: ArrayLike) -> Tensor:
    return _tensor(x).relu()


def tanh(x: ArrayLike) -> Tensor:
    return _tensor(x).tanh()


def sigmoid(x: ArrayLike) -> Tensor:
    return _tensor(x).sigmoid()


def log_softmax(x: ArrayLike, axis: int = -1) -> Tensor:
    """``log(softmax(x))`` computed stably: ``x - max - log(sum(exp(x - max)))``."""
    x = _tensor(x)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return _record(LOG_SOFTMAX, out, (x,), out, axis)


# y = log softmax x: dy_i/dx_j = [i == j] - softmax_j, and softmax = e^y
LOG_SOFTMAX = Rule(
    "log_softmax",
    (lambda g, y, axis: g - np.exp(y) * g.sum(axis=axis, keepdims=True),),
    jvp=lambda t, y, axis: t - (np.exp(y) * t).sum(axis=axis, keepdims=True),
)


def softmax(x: ArrayLike, axis: int = -1) -> Tensor:
    """Probabilities along ``axis``: ``exp(x) / sum(exp(x))``, computed stably."""
    return log_softmax(x, axis).exp()


def _labels(labels: Any, n: int, classes: int) -> np.ndarray:
    """Integer labels, one per row, each in 0..classes-1, as an array of indices.

    Viewed as unsigned, a negative label becomes a huge number, so one
    maximum checks both ends of the range.
    """
    y = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: labels must be integer class indices, got dtype {y.dtype}. "
            "Pass y as an int array such as np.array([0, 2, 1])."
        )
    if y.shape != (n,):
        raise ShapeError(
            f"cross_entropy: labels have shape {y.shape} but the logits hold {n} examples; "
            f"pass one integer label per row, shape ({n},)."
        )
    y = y.astype(np.intp, copy=False)
    if n and np.maximum.reduce(y.view(np.uintp)) >= classes:
        raise ValueError(
            f"cross_entropy: labels must lie in 0..{classes - 1} for {classes} classes, "
            f"found {y.min()}..{y.max()}."
        )
    return y


def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> Tensor:
    """Mean softmax cross-entropy of logits (N, C) against integer labels (N,)."""
    logits = _tensor(logits)
    if logits.data.ndim != 2:
        raise ShapeError(
            f"cross_entropy: logits must have shape (N, C), one row of class scores per "
            f"example; got {logits.shape}."
        )
    n, classes = logits.data.shape
    y, rows = _labels(labels, n, classes), np.arange(n)
    shifted = logits.data - logits.data.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    true = shifted[rows, y]  # each row's score of its true class
    mean = (np.log(total[:, 0]) - true).sum() / n if n else np.nan  # NaN for no rows, as in torch
    loss = np.asarray(mean, dtype=logits.dtype)
    return _record(CROSS_ENTROPY, loss, (logits,), exp, total, rows, y)


def _cross_entropy_slope(g: Any, exp: np.ndarray, total: np.ndarray, rows: np.ndarray,
                         y: np.ndarray) -> np.ndarray:  # fmt: skip
    """dL/dlogits = g (softmax - onehot(y)) / N; g is dL/dloss, a single number."""
    grad = exp / total
    grad[rows, y] -= 1.0
    grad *= float(g) / max(len(y), 1)  # an empty batch: an empty gradient
    return grad


CROSS_ENTROPY = Rule(
    "cross_entropy",
    (_cross_entropy_slope,),
    jvp=lambda t, *saved: (_cross_entropy_slope(1.0, *saved) * t).sum(),
)


def mse_loss(prediction: ArrayLike, target: ArrayLike) -> Tensor:
    """Mean squared error; ``target`` must have exactly the prediction's shape."""
    prediction, t = _tensor(prediction), _tensor(target)
    if t.shape != prediction.shape:
        raise ShapeError(
            f"mse_loss: prediction has shape {prediction.shape} but target has shape {t.shape}. "
            "They must match exactly: (N,) against (N, 1) would broadcast to (N, N) and "
            "silently compute the wrong loss. Reshape one of them."
        )
    diff = prediction - t
    return (diff * diff).mean()


# --------------------------------------------------------------------- modules


class Module:
    """Base class of layers and networks.

    Tensors with ``requires_grad=True`` and sub-modules assigned as
    attributes, or kept in a list attribute (named ``attribute.i``), are found
    automatically; one shared between several places counts once.
    """

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define forward(x).")

    def __call__(self, x: ArrayLike) -> Tensor:
        return self.forward(x if isinstance(x, Tensor) else Tensor(x))

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for every direct sub-module."""
        yield from _attributes(self, Module)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every parameter, e.g. ``('0.weight', W)``,
        each once even when shared (tied weights are updated once per step)."""
        seen: set[int] = set()
        for name, p in self._all_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _all_parameters(self, prefix: str) -> Iterator[tuple[str, Tensor]]:
        for name, value in _attributes(self, Tensor):
            if value.requires_grad and value.is_leaf:  # not a result kept from a forward pass
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child._all_parameters(prefix + name + ".")

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget accumulated gradients (set every ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _attributes(module: Module, kind: type) -> Iterator[tuple[str, Any]]:
    """Attributes of ``module`` that are a ``kind``, and items of list attributes."""
    for name, value in vars(module).items():
        if isinstance(value, kind):
            yield name, value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, kind):
                    yield f"{name}.{i}", item


def _generator(rng: Rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def init_std(init: Init, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the initial weights.

    ``"he"`` (Kaiming): sqrt(2 / fan_in), keeps ReLU activations at a steady
    scale through depth.  ``"xavier"`` (Glorot): sqrt(2 / (fan_in + fan_out)),
    for tanh and sigmoid.  A number is used as the standard deviation itself.
    """
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        return float(init)
    if init == "he":
        return float(np.sqrt(2.0 / fan_in))
    if init == "xavier":
        return float(np.sqrt(2.0 / (fan_in + fan_out)))
    raise ValueError(
        f"init must be 'he', 'xavier' or a standard deviation (a number), got {init!r}."
    )


class Linear(Module):
    """A dense layer ``y = x @ weight + bias``.

    ``weight`` has shape (in_features, out_features), drawn from a normal
    distribution with the standard deviation of ``init`` (see
    :func:`init_std`); ``bias`` has shape (out_features,) and starts at zero.
    ``rng`` is a ``numpy.random.Generator`` or a seed.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: Init = "he",
        rng: Rng = None,
        dtype: Any = np.float64,
    ):
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear({in_features}, {out_features}): sizes must be positive integers."
            )
        self.in_features, self.out_features = in_features, out_features
        std = init_std(init, in_features, out_features)
        w = _generator(rng).standard_normal((in_features, out_features)) * std
        self.weight = Tensor(w.astype(dtype), requires_grad=True)
        self.bias = (
            Tensor(np.zeros(out_features, dtype=dtype), requires_grad=True) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


class Sequential(Module):
    """Modules applied one after another."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: item {i} is a {type(layer).__name__}, not a Module "
                    "(did you pass the class instead of an instance, e.g. ReLU instead of ReLU()?)."
                )
        self.layers = list(layers)

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        for layer in self.layers:
            x = layer.forward(x)  # x is a Tensor: all __call__ would add is converting it
        return x

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The layers, named by position ('0', '1', ...), then any other sub-modules."""
        for i, layer in enumerate(self.layers):
            yield str(i), layer
        for name, child in super().named_children():
            if not name.startswith("layers."):
                yield name, child

    def trace(self, x: ArrayLike) -> list[Tensor]:
        """The output of every layer, in order (for looking inside a network)."""
        outputs = []
        h = x if isinstance(x, Tensor) else Tensor(x)
        for layer in self.layers:
            h = layer(h)
            outputs.append(h)
        return outputs

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class MLP(Sequential):
    """A multilayer perceptron of any depth.

    ``MLP([2, 64, 64, 3])`` is Linear(2, 64), ReLU, Linear(64, 64), ReLU,
    Linear(64, 3): an activation after every layer but the last, whose
    outputs are the logits.  ``activation`` is 'relu', 'tanh', 'sigmoid', a
    Module class or a Module (copied for each layer); ``init`` defaults to He
    for ReLU and Xavier otherwise.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | type[Module] | Module = "relu",
        init: Init | None = None,
        rng: Rng = None,
        dtype: Any = np.float64,
    ):
        sizes = list(sizes)
        if len(sizes) < 2 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ValueError(
                f"MLP(sizes={sizes}): give at least an input and an output size, all positive "
                "integers, e.g. MLP([2, 32, 32, 3])."
            )
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"MLP: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)} "
                    "or pass a Module class."
                )
            activation = ACTIVATIONS[activation]
        if isinstance(activation, Module):
            kind, make = type(activation), partial(copy.deepcopy, activation)
        elif isinstance(activation, type) and issubclass(activation, Module):
            kind, make = activation, activation
        else:
            raise TypeError(
                f"MLP: activation must be a name, a Module class or a Module, got "
                f"{type(activation).__name__}."
            )
        if init is None:
            init = "he" if issubclass(kind, ReLU) else "xavier"
        generator = _generator(rng)
        layers: list[Module] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
            layers.append(Linear(fan_in, fan_out, init=init, rng=generator, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(make())
        super().__init__(*layers)
        self.sizes = sizes


def model_function(model: Module) -> Callable[[ArrayLike], np.ndarray]:
    """A plain numpy function ``x -> model(x).data`` evaluated without a graph."""

    def predict(x: ArrayLike) -> np.ndarray:
        with no_grad():
            return model(x).data

    return predict
