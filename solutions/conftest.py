"""nbval on the solution notebooks (``pytest --nbval --nbval-current-env solutions/``).

Volatile text in the stored outputs is sanitised with ``nbval_sanitize.cfg``
(unless another file is given with ``--nbval-sanitize-with``), and kernels
keep their Jupyter, IPython and matplotlib state in a temporary folder, as in
``tests/conftest.py``, which does the same when both are loaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
_STATE: Path | None = None

if not os.environ.get("DLCOURSE_TEST_STATE"):
    _STATE = Path(tempfile.mkdtemp(prefix="dlcourse-tests-"))
    os.environ["DLCOURSE_TEST_STATE"] = str(_STATE)
    for _var, _sub in {
        "JUPYTER_CONFIG_DIR": "jupyter-config",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        "IPYTHONDIR": "ipython",
        "MPLCONFIGDIR": "matplotlib",
    }.items():
        (_STATE / _sub).mkdir()
        os.environ[_var] = str(_STATE / _sub)
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    # the first import in a fresh MPLCONFIGDIR announces the font cache on stderr
    import matplotlib.font_manager  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "nbval_sanitize_with", "unset") is None:
        config.option.nbval_sanitize_with = str(SANITIZE)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE is not None:
        shutil.rmtree(_STATE, ignore_errors=True)
