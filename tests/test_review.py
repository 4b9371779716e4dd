"""Gradient answers that hand the work to the library are marked for a human.

Pure Python: the answers are read, never run, so these tests need no kernel
and no sandbox.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from fixtures.correct_answers import ALTERNATIVES
from fixtures.wrong_answers import WRONG_ANSWERS

from dlcourse.course import appendix
from dlcourse.course.grading import review
from dlcourse.course.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = Layout.of(ROOT)
BACKPROP = "03_backpropagation.ipynb"
ANSWERS = {a.grade_id: a.code for a in appendix.answers(ROOT)}


def released(name: str = BACKPROP) -> nbformat.NotebookNode:
    return nbformat.read(LAYOUT.release / name, 4)


def answered(code: dict[str, str], extra: list[str] = (), name: str = BACKPROP
             ) -> nbformat.NotebookNode:  # fmt: skip
    nb = released(name)
    for cell in nb.cells:
        info = cell.metadata.get("nbgrader", {})
        if info.get("solution"):
            cell.source = code.get(info["grade_id"], ANSWERS[info["grade_id"]])
    nb.cells += [nbformat.v4.new_code_cell(source) for source in extra]
    return nb


def test_the_reference_answers_need_no_review() -> None:
    for path in LAYOUT.released_notebooks():
        assert review.needs_review(answered({}, name=path.name), released(path.name)) == {}


def test_the_gradient_exercises_are_declared_in_the_release() -> None:
    declared = {
        cell.metadata["nbgrader"]["grade_id"]
        for path in LAYOUT.released_notebooks()
        for cell in nbformat.read(path, 4).cells
        if cell.metadata.get("dlcourse", {}).get("gradient")
    }
    assert declared == {
        "activation_derivatives", "chain_rule", "chain_derivative", "chain_backward",
        "circuit_backward", "softmax_jacobian", "numerical_gradient", "two_layer_backward",
        "linear_backward", "activation_backward", "softmax_cross_entropy", "mlp_loss_and_grads",
        "value",
    }  # fmt: skip


ENGINE = """
def linear_backward(dout, x, W, b):
    xt = dl.Tensor(x, requires_grad=True)
    Wt = dl.Tensor(W, requires_grad=True)
    bt = dl.Tensor(b, requires_grad=True)
    ((xt @ Wt + bt) * dl.Tensor(dout)).sum().backward()
    return xt.grad, Wt.grad, bt.grad
"""
NUMERICAL = """
def linear_backward(dout, x, W, b):
    dx = numerical_grad(lambda v: np.sum((v @ W + b) * dout), x)
    dW = numerical_grad(lambda v: np.sum((x @ v + b) * dout), W)
    return dx, dW, dout.sum(axis=0)
"""


@pytest.mark.parametrize(
    ("why", "source", "found"),
    [
        ("the engine", ENGINE, "uses dl.Tensor"),
        ("finite differences", "from dlcourse.gradcheck import numerical_grad\n" + NUMERICAL,
         "imports dlcourse.gradcheck"),
        ("the engine, imported afresh", "from dlcourse import Tensor as T\n" + ENGINE,
         "imports dlcourse"),
        ("another autodiff library", "import torch\n" + ENGINE, "imports torch"),
        ("code built at run time", "exec('def linear_backward(*a): pass')",
         "runs code it builds at run time (exec)"),
        ("the library looked up by name", "T = getattr(dl, 'Ten' + 'sor')\n" + ENGINE,
         "(getattr)"),
        ("the library module passed around", "lib = dl\n" + ENGINE, "uses dl"),
    ],
)  # fmt: skip
def test_an_answer_that_lets_the_library_do_the_gradient_is_marked(
    why: str, source: str, found: str
) -> None:
    marked = review.needs_review(answered({"linear_backward": source}), released())
    assert list(marked) == ["test_linear_backward"], why
    assert found in marked["test_linear_backward"]
    assert "check it and set the score" in marked["test_linear_backward"]


def test_the_setup_cells_names_for_the_library_count_as_the_library() -> None:
    chain = (
        "def chain_rule(f_prime, g, g_prime):\n    return lambda x: numerical_grad(lambda v: 0, x)"
    )
    nb = answered({"chain_rule": chain}, name="02_chain_rule.ipynb")
    marked = review.needs_review(nb, released("02_chain_rule.ipynb"))
    assert list(marked) == ["test_chain_rule"]
    assert "uses numerical_grad" in marked["test_chain_rule"]


def test_an_added_cell_that_redefines_the_answer_is_marked_too() -> None:
    marked = review.needs_review(answered({}, extra=[ENGINE]), released())
    assert list(marked) == ["test_linear_backward"]
    assert "(cell " in marked["test_linear_backward"]


SYS_MODULES = ENGINE.replace("dl.Tensor", "sys.modules['dlcourse'].Tensor")
HELPED = ENGINE.replace("dl.Tensor", "T")


@pytest.mark.parametrize(
    ("why", "code", "extra", "found"),
    [
        ("the engine through sys.modules", "import sys\n" + SYS_MODULES, [], "sys.modules"),
        ("a helper cell's alias", HELPED, ["T = dl.Tensor"], "uses dl.Tensor"),
        ("a helper cell's tuple of aliases", HELPED, ["T, L = dl.Tensor, nn"], "uses dl.Tensor"),
        ("an alias of an alias", HELPED, ["U = dl.Tensor", "T = U"], "uses dl.Tensor"),
        ("an import in a helper cell", HELPED, ["from dlcourse import Tensor as T"],
         "imports dlcourse"),
    ],
)  # fmt: skip
def test_the_library_reached_through_another_cell_or_sys_modules_is_marked(
    why: str, code: str, extra: list[str], found: str
) -> None:
    """helper-19: the answer cell alone read clean, the engine's names bound elsewhere."""
    marked = review.needs_review(answered({"linear_backward": code}, extra=extra), released())
    assert list(marked) == ["test_linear_backward"], why
    assert found in marked["test_linear_backward"], why


def test_a_cell_whose_names_the_answer_only_shadows_is_not_followed() -> None:
    """The answer's parameters and local variables are its own: an exploring
    cell that binds the same names with the engine is not part of it."""
    playing = "x = dl.Tensor([1.0, 2.0], requires_grad=True)\nW = dl.Tensor([[1.0]])\ndout = 1"
    assert review.needs_review(answered({}, extra=[playing]), released()) == {}


def test_the_library_in_a_cell_that_defines_no_gradient_answer_is_not_marked() -> None:
    playing = "t = dl.Tensor([1.0, 2.0], requires_grad=True)\n(t * t).sum().backward()\nt.grad"
    assert review.needs_review(answered({}, extra=[playing]), released()) == {}


def test_harmless_library_names_and_non_gradient_exercises_are_not_marked() -> None:
    plotting = ANSWERS["linear_backward"] + "\nplot.graph\nassert_close(1.0, 1.0)\n"
    assert review.needs_review(answered({"linear_backward": plotting}), released()) == {}
    sgd = ANSWERS["sgd_step"] + "\n_ = dl.Tensor\n"  # sgd_step computes no gradient
    assert review.needs_review(answered({"sgd_step": sgd}), released()) == {}


def test_code_that_does_not_parse_is_left_to_the_tests() -> None:
    broken = "def linear_backward(dout, x, W, b:\n    return dl.Tensor"
    assert review.needs_review(answered({"linear_backward": broken}), released()) == {}


def test_a_student_cannot_declare_their_own_answer_not_a_gradient() -> None:
    nb = answered({"linear_backward": ENGINE})
    for cell in nb.cells:
        cell.metadata.pop("dlcourse", None)  # what the submission says does not count
    assert list(review.needs_review(nb, released())) == ["test_linear_backward"]


def test_the_two_halves_of_the_judgement_on_the_fixtures() -> None:
    """Point 5 of issue 12, on the answers tests/test_notebooks.py grades: the
    engine-calling linear_backward keeps its points there and is marked here;
    finite differences of the answer's own forward pass use no library, so
    nothing is marked, and the tests' cost check takes the points instead."""
    engine = next(code for _, what, code in ALTERNATIVES if what.startswith("the library's engine"))
    marked = review.needs_review(answered({"linear_backward": engine}), released())
    assert list(marked) == ["test_linear_backward"]
    assert "uses dl.Tensor" in marked["test_linear_backward"]
    old, new = next(
        (o, n) for _, what, o, n in WRONG_ANSWERS if what.startswith("gradients by central")
    )
    numerical = ANSWERS["linear_backward"].replace(old, new)
    assert numerical != ANSWERS["linear_backward"]
    assert review.needs_review(answered({"linear_backward": numerical}), released()) == {}
    assert "assert_fast" in next(
        c.source for c in released().cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_linear_backward"
    )  # fmt: skip
