"""nbval on the solution notebooks (``pytest --nbval --nbval-current-env solutions/``):
volatile text in the stored outputs is sanitised with ``nbval_sanitize.cfg``
unless another file is given with ``--nbval-sanitize-with``. (The Jupyter,
IPython and matplotlib state folders are set up by the root conftest.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "nbval_sanitize_with", "unset") is None:
        config.option.nbval_sanitize_with = str(SANITIZE)
