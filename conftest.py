"""Test-wide setup for tests/ and the notebooks under nbval: keep Jupyter,
IPython and matplotlib state out of the home directory.

Other processes share this machine, so every kernel, nbgrader run and
matplotlib import in the tests uses folders under one temporary directory.
The variables are set when pytest loads this file, before any test starts a
kernel, so kernels and subprocesses inherit them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_STATE = Path(tempfile.mkdtemp(prefix="dlcourse-tests-"))
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

# Build matplotlib's font cache now: the first import in a fresh MPLCONFIGDIR
# says so on stderr, which would fail the first notebook that plots.
import matplotlib.font_manager  # noqa: E402, F401


def pytest_unconfigure(config: object) -> None:
    shutil.rmtree(_STATE, ignore_errors=True)
