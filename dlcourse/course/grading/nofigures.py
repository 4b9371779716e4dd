"""A matplotlib backend that makes figures and never renders them.

Kernels run under it while grading (``MPLBACKEND``): a student's plots cost
what building them costs, not rasterising PNGs that nobody sees. Saving a
figure explicitly (``savefig``) still renders, with matplotlib's own canvas
for the format.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backend_bases import FigureCanvasBase, FigureManagerBase


class FigureCanvasNoFigures(FigureCanvasBase):
    manager_class = FigureManagerBase


FigureCanvas = FigureCanvasNoFigures
FigureManager = FigureManagerBase


def show(*args: Any, **kwargs: Any) -> None:
    """``plt.show()``: nothing to show while grading."""
