"""Plots for the chapter: training curves, decision boundaries, computational
graphs and per-layer statistics of deep networks.

matplotlib is imported when a function is first called, not when dlcourse
is imported.  Every function draws on a new figure (or on ``ax``) and
returns the Figure; none calls ``plt.show()``.  The new figures are not
pyplot's: in a notebook, a call on the last line of a cell shows its figure
once (``plot.curves(history)``), and a figure kept in a variable is shown
with ``display(fig)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from dlcourse.nn import Linear, Module, Sequential, model_function
from dlcourse.tensor import Tensor, no_grad

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe and Ito's palette: distinguishable with every common colour-vision deficiency.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def _axes(ax: Axes | None, ncols: int = 1, width: float = 5.0, height: float = 4.0) -> Any:
    if ax is not None:
        return ax.figure, ax
    fig = _figure_class()(figsize=(width * ncols, height), layout="constrained")
    return fig, fig.subplots(1, ncols)


@cache
def _figure_class() -> type:
    """A Figure that Jupyter shows as a picture even before pyplot has drawn
    anything (the inline backend registers its PNG formatter only then)."""
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", bbox_inches="tight")
            return buffer.getvalue()

    return NotebookFigure


def _as_2d_points(name: str, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"{name}: X must have shape (N, 2), points in the plane; got {X.shape}.")
    if y.shape != (len(X),):
        raise ValueError(
            f"{name}: y must have shape ({len(X)},), one label per point; got {y.shape}."
        )
    return X, y


def scatter(X: np.ndarray, y: np.ndarray, ax: Axes | None = None, title: str = "") -> Figure:
    """Points X (N, 2) coloured by their integer labels y (N,)."""
    X, y = _as_2d_points("scatter", X, y)
    fig, ax = _axes(ax)
    for label in np.unique(y):
        rows = y == label
        ax.scatter(
            *X[rows].T,
            s=14,
            color=COLOURS[int(label) % len(COLOURS)],
            edgecolors="white",
            linewidths=0.4,
            label=f"class {label}",
        )
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title, aspect="equal")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def curves(history: Any, ax: Axes | None = None) -> Figure:
    """Loss (and accuracy, where recorded) per epoch from a ``train.History``
    or a dict with the lists ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``."""
    metrics = dict(vars(history)) if not isinstance(history, Mapping) else dict(history)
    if not metrics.get("loss"):
        raise ValueError("curves: the history has no 'loss' values to plot.")
    panels = [("loss", "val_loss")] + (
        [("accuracy", "val_accuracy")] if metrics.get("accuracy") else []
    )
    if ax is not None and len(panels) > 1:
        panels = panels[:1]
    fig, axes = _axes(ax, ncols=len(panels), width=4.5, height=3.2)
    for axis, (train, val) in zip(np.atleast_1d(axes), panels):
        epochs = np.arange(1, len(metrics[train]) + 1)
        axis.plot(epochs, metrics[train], color=COLOURS[0], label="training")
        if metrics.get(val):
            axis.plot(epochs, metrics[val], color=COLOURS[1], label="validation")
        axis.set(xlabel="epoch", ylabel=train, title=train)
        if train == "loss":
            axis.set_yscale("log")
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    return fig


def decision_boundary(
    model: Module | Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    ax: Axes | None = None,
    resolution: int = 200,
    padding: float = 0.5,
    title: str = "",
) -> Figure:
    """The class a model predicts at each point of the plane, with the data on top.

    ``model`` is a Module mapping (M, 2) to logits (M, C), or any numpy
    function doing the same.
    """
    X, y = _as_2d_points("decision_boundary", X, y)
    predict = model_function(model) if isinstance(model, Module) else model
    lows, highs = X.min(axis=0) - padding, X.max(axis=0) + padding
    g1, g2 = np.meshgrid(*(np.linspace(lo, hi, resolution) for lo, hi in zip(lows, highs)))
    scores = np.asarray(predict(np.column_stack([g1.ravel(), g2.ravel()])))
    classes = (
        scores.argmax(axis=1) if scores.ndim == 2 and scores.shape[1] > 1 else scores.ravel() > 0
    )
    fig, ax = _axes(ax)
    from matplotlib.colors import ListedColormap

    n = max(int(y.max()) + 1, int(classes.max()) + 1)
    ax.pcolormesh(
        g1,
        g2,
        classes.reshape(g1.shape),
        cmap=ListedColormap(COLOURS[:n]),
        alpha=0.25,
        shading="auto",
        vmin=0,
        vmax=n - 1,
    )
    scatter(X, y, ax=ax, title=title)
    return fig


# ------------------------------------------------------------ the graph
def graph_layout(root: Tensor) -> tuple[list[Tensor], dict[int, tuple[float, float]]]:
    """Nodes of ``root``'s graph and an (x, y) position for each, keyed by ``id``.

    x is the node's depth (leaves at 0, each operation one step right of its
    deepest input); nodes in the same column are spread vertically.  Built
    iteratively, so graphs of any depth work.
    """
    nodes, seen, stack = [], {id(root)}, [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for parent in node.inputs:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    depth: dict[int, int] = {}
    pending = list(reversed(nodes))
    while pending:  # settle depths: a node is placed once all its inputs are
        node = pending.pop()
        missing = [p for p in node.inputs if id(p) not in depth]
        if missing:
            pending.append(node)
            pending.extend(missing)
            continue
        depth[id(node)] = 1 + max((depth[id(p)] for p in node.inputs), default=-1)
    columns: dict[int, list[Tensor]] = {}
    for node in nodes:
        columns.setdefault(depth[id(node)], []).append(node)
    position = {}
    for x, column in columns.items():
        for i, node in enumerate(column):
            position[id(node)] = (float(x), (len(column) - 1) / 2 - i)
    return nodes, position


def _number(x: Any) -> str:
    return f"{float(np.asarray(x)):.4g}"


def _uses(nodes: list[Tensor]) -> dict[int, list[Any]]:
    """For every node, what each of its uses passes back to it: the consumer's
    gradient times the local derivative (the terms that ``backward`` adds)."""
    uses: dict[int, list[Any]] = {id(n): [] for n in nodes}
    for node in nodes:
        if node.grad is None:
            continue
        for i, parent in enumerate(node.inputs):
            if (passed := node.local_gradient(i, node.grad)) is not None:
                uses[id(parent)].append(passed)
    return uses


def _describe(t: Tensor, show_values: bool, show_grads: bool, uses: list[Any]) -> str:
    # a named result keeps its operation in view: "y = tanh"
    title = f"{t.name} = {t.op}" if t.name and t.op else t.name or t.op or "input"
    lines = [title]
    if show_values:
        lines.append(_number(t.data) if t.size == 1 else f"shape {t.shape}")
    if show_grads and t.grad is not None:
        if t.grad.size != 1:
            lines.append(f"grad: sum of {len(uses)} uses" if len(uses) > 1 else "grad ✓")
        elif len(uses) > 1:  # a fan-out: the gradient is the sum over its uses
            lines.append(f"grad {_number(t.grad)}\n= " + " + ".join(_number(u) for u in uses))
        else:
            lines.append(f"grad {_number(t.grad)}")
    return "\n".join(lines)


def graph(
    tensor: Tensor, ax: Axes | None = None, show_values: bool = True, show_grads: bool = True
) -> Figure:
    """Draw the computational graph that produced ``tensor``: inputs on the
    left, the output on the right, an arrow from each input to its operation.

    Boxes show a tensor's ``name`` and the operation that produced it
    (``y = tanh``; a leaf shows its name alone, an unnamed result its
    operation), its value (or shape) and its gradient when one is stored.
    After ``tensor.backward(retain_grads=True)`` every node has one; a node
    used more than once shows its gradient as the sum of what each use passes
    back.  For single numbers, each arrow is labelled with the local
    derivative of the operation with respect to that input.  Arrows run from
    box edge to box edge.  Readable up to a few dozen nodes.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"graph: expected a dlcourse Tensor, got {type(tensor).__name__}.")
    nodes, position = graph_layout(tensor)
    uses = _uses(nodes) if show_grads else {id(n): [] for n in nodes}
    width = 2.6 * (1 + max(x for x, _ in position.values()))
    height = 1.4 * (1 + max(abs(y) for _, y in position.values()) * 2)
    fig, ax = _axes(ax, width=max(width, 4), height=max(height, 2.5))
    boxes = {}
    for node in nodes:  # the boxes first: each arrow is clipped to the two boxes it joins
        colour = COLOURS[4] if node.is_leaf else COLOURS[1]
        boxes[id(node)] = ax.text(
            *position[id(node)],
            _describe(node, show_values, show_grads, uses[id(node)]),
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.4", "fc": colour, "alpha": 0.35, "ec": "#333333"},
        )
    for node in nodes:
        for i, parent in enumerate(node.inputs):
            ax.annotate(
                "",
                xy=position[id(node)],
                xytext=position[id(parent)],
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "#555555",
                    # from the edge of the input's box to the edge of the operation's
                    # (drawn after the boxes, so that their outlines are in place)
                    "patchA": boxes[id(parent)].get_bbox_patch(),
                    "patchB": boxes[id(node)].get_bbox_patch(),
                    "shrinkA": 2,
                    "shrinkB": 2,
                    "lw": 1.2,
                },
            )
            if show_grads and node.size == 1 and parent.size == 1:
                (x0, y0), (x1, y1) = position[id(parent)], position[id(node)]
                local = node.local_gradient(i, 1.0)
                ax.text(
                    (x0 + x1) / 2,
                    (y0 + y1) / 2 + 0.12,
                    "∂ none" if local is None else f"∂ {_number(local)}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="#555555",
                    gid="local derivative",
                )
    xs = [x for x, _ in position.values()]
    ys = [y for _, y in position.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    return fig


# ------------------------------------------------- deep networks, layer by layer
def _series(values: Sequence[np.ndarray] | Mapping[str, Sequence[np.ndarray]], label: str) -> dict:
    series = dict(values) if isinstance(values, Mapping) else {label: values}
    for name, layers in series.items():
        if len(layers) == 0:
            raise ValueError(f"layer_statistics: the series {name!r} has no layers.")
    return series


def layer_statistics(
    values: Sequence[Any] | Mapping[str, Sequence[Any]],
    ax: Axes | None = None,
    label: str = "",
    kind: str = "activations",
) -> Figure:
    """Standard deviation of each layer's values, on a log scale.

    ``values`` is a list of arrays (or Tensors), one per layer, or a dict
    ``name -> list`` to compare several networks (say naive against He
    initialisation).  A line falling towards zero is a signal vanishing with
    depth; a line climbing is one exploding.
    """
    fig, ax = _axes(ax, width=6, height=3.5)
    series = _series(values, label)
    for i, (name, layers) in enumerate(series.items()):
        spread = [float(np.std(v.data if isinstance(v, Tensor) else v)) for v in layers]
        ax.plot(
            np.arange(1, len(spread) + 1),
            spread,
            marker="o",
            markersize=3,
            color=COLOURS[i % len(COLOURS)],
            label=name or None,
        )
    ax.set_yscale("log")
    ax.set(xlabel="layer", ylabel=f"std of {kind}", title=f"{kind.capitalize()} through depth")
    ax.grid(alpha=0.3, which="both")
    if any(series):
        ax.legend(fontsize="small")
    return fig


def histograms(
    values: Sequence[Any], layers: Sequence[int] | None = None, bins: int = 40
) -> Figure:
    """A row of histograms of the values of selected layers (1-based numbers;
    by default the first, a middle and the last)."""
    if len(values) == 0:
        raise ValueError("histograms: no layers given.")
    count = len(values)
    chosen = list(layers) if layers is not None else sorted({1, (count + 1) // 2, count})
    for number in chosen:
        if not 1 <= number <= count:
            raise ValueError(f"histograms: layer {number} does not exist; layers are 1..{count}.")
    fig, axes = _axes(None, ncols=len(chosen), width=2.8, height=2.4)
    for axis, number in zip(np.atleast_1d(axes), chosen):
        v = values[number - 1]
        axis.hist(np.ravel(v.data if isinstance(v, Tensor) else v), bins=bins, color=COLOURS[0])
        axis.set(title=f"layer {number}", yticks=[])
    return fig


def representations(model: Sequential, X: np.ndarray, y: np.ndarray) -> Figure:
    """The data as each hidden layer of ``model`` sees it, projected onto its
    two principal directions: watch the classes pull apart with depth."""
    X, y = _as_2d_points("representations", X, y)
    if not isinstance(model, Sequential):
        raise TypeError("representations: the model must be a Sequential (an MLP, say).")
    with no_grad():
        outputs = model.trace(X)
    hidden = [o.data for i, o in enumerate(outputs[:-1]) if not isinstance(model[i], Linear)]
    hidden = [(f"hidden layer {k + 1}", h) for k, h in enumerate(hidden)]
    panels = [("input", X), *hidden, ("output (logits)", outputs[-1].data)]
    fig, axes = _axes(None, ncols=len(panels), width=2.8, height=2.8)
    for axis, (title, h) in zip(np.atleast_1d(axes), panels):
        centred = h - h.mean(axis=0)
        _, _, directions = np.linalg.svd(centred, full_matrices=False)
        projected = centred @ directions[:2].T
        if projected.shape[1] == 1:
            projected = np.column_stack([projected[:, 0], np.zeros(len(h))])
        for label in np.unique(y):
            axis.scatter(*projected[y == label].T, s=6, color=COLOURS[int(label) % len(COLOURS)])
        axis.set(title=title, xticks=[], yticks=[])
    return fig
