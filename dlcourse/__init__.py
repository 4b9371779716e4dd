"""dlcourse: a small numpy library for Chapter 1 of the deep-learning course.

``dlcourse.Tensor`` is a reverse-mode autodiff engine on numpy arrays;
``dlcourse.nn``, ``dlcourse.optim``, ``dlcourse.data`` and ``dlcourse.train``
build deep networks on it; ``dlcourse.jvp`` is its forward mode;
``dlcourse.gradcheck`` checks gradients against central differences and
``dlcourse.testing`` compares values; ``dlcourse.plot`` draws (it imports
matplotlib only when used).
"""

from dlcourse import gradcheck, nn, optim, testing
from dlcourse.errors import ShapeError
from dlcourse.tensor import (
    Tensor,
    concatenate,
    is_grad_enabled,
    jvp,
    no_grad,
    stack,
    tensor,
    where,
)

__version__ = "0.1.0"

_LAZY = ("data", "plot", "train")


def __getattr__(name: str) -> object:
    # data, plot and train load on first use, so `import dlcourse` stays light
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"dlcourse.{name}")
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


__all__ = [
    "ShapeError",
    "Tensor",
    "concatenate",
    "data",
    "gradcheck",
    "is_grad_enabled",
    "jvp",
    "nn",
    "no_grad",
    "optim",
    "plot",
    "stack",
    "tensor",
    "testing",
    "train",
    "where",
]
