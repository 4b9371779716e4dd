"""Plots: each returns a figure with what it promises, and rejects bad input clearly."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.path import Path
from matplotlib.text import Annotation

from dlcourse import Tensor, data, nn, plot
from dlcourse.train import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_curves() -> None:
    history = History(loss=[1.0, 0.5, 0.2], accuracy=[0.5, 0.8, 0.9], val_loss=[1.1, 0.6, 0.4])
    fig = plot.curves(history)
    loss_axis, accuracy_axis = fig.axes
    assert len(loss_axis.lines) == 2 and len(accuracy_axis.lines) == 1
    assert len(plot.curves({"loss": [3.0, 2.0]}).axes) == 1
    with pytest.raises(ValueError, match="no 'loss' values"):
        plot.curves(History())


def test_decision_boundary_and_scatter() -> None:
    X, y = data.xor(n=40, seed=0)
    model = nn.MLP([2, 8, 2], rng=0)
    fig = plot.decision_boundary(model, X, y, resolution=30)
    (ax,) = fig.axes
    assert len(ax.collections) == 1 + 2  # the coloured regions, then one scatter per class
    fig = plot.decision_boundary(lambda P: P @ np.array([[1.0, -1.0], [0.0, 0.0]]), X, y)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\)"):
        plot.decision_boundary(model, np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="one label per point"):
        plot.scatter(X, y[:-1])


def test_graph_draws_one_box_per_node_and_one_arrow_per_edge() -> None:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    c = a * b
    d = (c + a).tanh()
    d.backward()
    fig = plot.graph(d)
    (ax,) = fig.axes
    boxes = [t.get_text() for t in ax.texts if t.get_bbox_patch() and not isinstance(t, Annotation)]
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert sorted(b.split("\n")[0] for b in boxes) == ["a", "add", "b", "mul", "tanh"]
    assert len(arrows) == 5  # a->mul, b->mul, mul->add, a->add, add->tanh
    assert any(b.startswith("a\n2\ngrad ") for b in boxes)
    with pytest.raises(TypeError, match="expected a dlcourse Tensor"):
        plot.graph(np.ones(2))


def test_graph_names_results_with_their_operation_and_joins_boxes_at_their_edges() -> None:
    x = Tensor(0.5, name="x")
    w = Tensor(-1.5, requires_grad=True, name="w")
    b = Tensor(0.8, requires_grad=True, name="b")
    y = (w * x + b).tanh()
    y.name = "y"
    y.backward()
    fig = plot.graph(y)
    (ax,) = fig.axes
    FigureCanvasAgg(fig).draw()  # places the boxes and clips the arrows
    boxes = {
        t.get_text().split("\n")[0]: t.get_bbox_patch().get_window_extent()
        for t in ax.texts
        if t.get_bbox_patch() and not isinstance(t, Annotation)
    }
    assert sorted(boxes) == ["add", "b", "mul", "w", "x", "y = tanh"]
    arrows = [t.arrow_patch for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == 5
    ends = []
    for arrow in arrows:
        line, head = arrow._get_path_in_displaycoord()[0]  # in pixels
        points = [*line.vertices, *head.vertices[head.codes != Path.CLOSEPOLY]]
        for name, box in boxes.items():  # nowhere over a box or its label, even by a pixel
            assert not any(box.padded(-1.0).contains(*p) for p in points), f"an arrow enters {name}"
        ends += [line.vertices[0], line.vertices[-1]]
    for point in ends:  # and each starts and ends a few pixels from a box's edge
        gaps = [
            max(box.x0 - point[0], point[0] - box.x1, box.y0 - point[1], point[1] - box.y1)
            for box in boxes.values()
        ]
        assert 0 <= min(gaps) <= 6, f"an arrow ends {min(gaps):.1f} px from the nearest box"


def test_graph_shows_every_gradient_and_a_fan_out_as_the_sum_of_its_uses() -> None:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    d = (a * b + a).tanh()
    d.backward(retain_grads=True)
    fig = plot.graph(d)
    (ax,) = fig.axes
    boxes = {
        t.get_text().split("\n")[0]: t.get_text()
        for t in ax.texts
        if t.get_bbox_patch() and not isinstance(t, Annotation)
    }
    assert sorted(boxes) == ["a", "add", "b", "mul", "tanh"]
    grads = {}
    for name, text in boxes.items():
        match = re.search(r"grad (\S+)", text)
        assert match, f"the box of {name} shows no gradient: {text!r}"
        grads[name] = float(match.group(1))
    assert grads["tanh"] == 1.0 and grads["a"] == pytest.approx(float(a.grad), rel=1e-3)
    # a feeds mul and add: its box shows its gradient as the sum of the two
    terms = re.search(r"= (\S+) \+ (\S+)", boxes["a"])
    assert terms, boxes["a"]
    assert float(terms.group(1)) + float(terms.group(2)) == pytest.approx(grads["a"], rel=1e-3)
    assert sorted([float(terms.group(1)), float(terms.group(2))]) == pytest.approx(
        sorted([grads["mul"] * -3.0, grads["add"]]), rel=1e-3
    )
    labels = sorted(t.get_text() for t in ax.texts if t.get_gid() == "local derivative")
    t = np.tanh(2.0 * -3.0 + 2.0)
    assert labels == sorted(["∂ 1", "∂ 1", "∂ -3", "∂ 2", f"∂ {1 - t * t:.4g}"])
    d2 = (a * b + a).tanh()
    d2.backward()  # without the option, intermediates keep nothing
    assert all(n.grad is None for n in plot.graph_layout(d2)[0] if not n.is_leaf)


def test_graph_draws_an_input_that_gets_no_gradient() -> None:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(3.0, requires_grad=True, name="b")
    y = Tensor.from_op(a.data * b.data, (a, b), (lambda g: g * b.data, None), "half")
    y.backward(retain_grads=True)
    (ax,) = plot.graph(y).axes
    labels = sorted(t.get_text() for t in ax.texts if t.get_gid() == "local derivative")
    assert labels == ["∂ 3", "∂ none"]
    assert a.grad == 3.0 and b.grad is None


def test_graph_layout_handles_long_chains() -> None:
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    nodes, position = plot.graph_layout(y)
    # each constant 1.0 is a node too, an input of its multiplication
    assert len(nodes) == 10001 and position[id(y)][0] == 5000 and position[id(x)][0] == 0


def test_layer_statistics_and_histograms() -> None:
    naive = nn.MLP([16] * 11, init=0.01, rng=0).trace(np.ones((4, 16)))
    he = nn.MLP([16] * 11, rng=0).trace(np.ones((4, 16)))
    fig = plot.layer_statistics({"naive": naive, "He": he})
    lines = fig.axes[0].lines
    assert len(lines) == 2 and all(len(line.get_xdata()) == 19 for line in lines)
    assert len(plot.layer_statistics([np.ones(3), np.arange(3.0)]).axes[0].lines) == 1
    with pytest.raises(ValueError, match="has no layers"):
        plot.layer_statistics({"empty": []})
    assert len(plot.histograms(he).axes) == 3
    with pytest.raises(ValueError, match="layer 40 does not exist"):
        plot.histograms(he, layers=[40])


def test_representations() -> None:
    X, y = data.spirals(n_per_class=20, seed=0)
    fig = plot.representations(nn.MLP([2, 8, 8, 3], rng=0), X, y)
    assert [ax.get_title() for ax in fig.axes] == [
        "input",
        "hidden layer 1",
        "hidden layer 2",
        "output (logits)",
    ]
