"""Grading a class on nbgrader: in parallel, confined, resumable, fault-tolerant.

One module per concern (the README's layout table lists them):
:mod:`.run` (``grade``: intake, workers, ledger), :mod:`.intake`,
:mod:`.dispatch`, :mod:`.worker`, :mod:`.executor`, :mod:`.remote`,
:mod:`.kernels`, :mod:`.sandbox`, :mod:`.review`, :mod:`.ledger`,
:mod:`.events`. The names below load on first use: a student's kernel
imports :mod:`.remote` and :mod:`.nofigures` from this package, and must not
pay for nbgrader.
"""

from __future__ import annotations

import importlib

_FROM_RUN = ("GradingError", "Options", "ProgressBar", "Summary", "collect", "grade", "scores")


def __getattr__(name: str) -> object:
    if name in _FROM_RUN:
        return getattr(importlib.import_module("dlcourse.course.grading.run"), name)
    raise AttributeError(f"module 'dlcourse.course.grading' has no attribute {name!r}")


__all__ = list(_FROM_RUN)
