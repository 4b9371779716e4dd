"""The learner's JupyterLab: their workspace and nothing above it.

`dlcourse lab` roots jupyter_server at the learners' workspace (the release
directory: their notebooks, the index and, once released, Appendix A), so
that every route that maps a URL to a file resolves it below that folder:
the contents API (``/api/contents``, and the file browser, ``/view/``,
``/nbconvert/`` and checkpoints through it), ``/files/``, kernels' and
sessions' working folders, nbgrader's Validate.  What jupyter_server leaves
open there is closed here:

- the contents API and its checkpoints refuse ``..`` and absolute paths as
  written, but follow a symbolic link wherever it points;
  :class:`WorkspaceContentsManager` and :class:`WorkspaceCheckpoints` refuse
  any path whose real location is outside the workspace, and listings leave
  such links out (``/files/`` already refuses them: tornado checks symbolic
  links' targets; nbgrader's Validate resolves them too);
- ``POST /api/kernels`` starts a kernel in ``root_dir`` joined with the path
  it is given, ``..`` included; :class:`WorkspaceKernelManager` refuses a
  working folder outside the workspace;
- no terminal (a shell in the course folder is one ``cd ..`` from the
  answers), no formgrader, nbgrader's assignment and course lists, and their
  JupyterLab plugins hidden;
- no LaTeX, PDF or Qt export, the nbconvert formats that read files named in
  a notebook's Markdown (``\\input``, ``\\includegraphics``, local images).

This keeps the answers out of the learner's way, not out of the reach of
code: a kernel runs Python as the learner, and Python opens any file the
learner's account can read (so can a language server, should the learner
install one for jupyter_lsp, which JupyterLab's code intelligence needs and
which serves nothing else).  Learners who must not have the answers get the
release (``notebooks/``), not the repository.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import default

from dlcourse.course.layout import Layout

# A Jupyter configuration folder (on JUPYTER_CONFIG_PATH) hiding the instructor's
# JupyterLab plugins in the learner's JupyterLab.
LEARNER_JUPYTER_PATH = Path(__file__).resolve().parent / "learner_jupyter"

# Server extensions the learner's JupyterLab does without: the instructor's tools
# (gradebook, submissions, the exchange) and the terminal.
INSTRUCTOR_ONLY = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
    "jupyter_server_terminals",
)
# nbconvert exporters that read files a notebook names (LaTeX, PDF, Qt-rendered
# PDF and PNG) or render it in a browser that could (WebPDF).
FILE_READING_EXPORTERS = ("LatexExporter", "WebPDFExporter", "QtExporter")


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path``, symbolic links resolved, is ``root`` or below it."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


# The folder being listed, for should_list (a context variable: each request
# is its own asyncio task, so concurrent listings never see each other's).
_listing: contextvars.ContextVar[str | None] = contextvars.ContextVar("listing", default=None)


class _InsideRoot:
    """For jupyter_server's file managers: a path that leads out of
    ``root_dir`` through a symbolic link is refused, as not found."""

    root_dir: str

    def _get_os_path(self, path: str) -> str:
        os_path = super()._get_os_path(path)  # type: ignore[misc]
        if not inside(os_path, self.root_dir):
            raise HTTPError(404, f"{path} is outside root contents directory")
        return os_path


class WorkspaceCheckpoints(_InsideRoot, AsyncFileCheckpoints):
    """jupyter_server's checkpoints (``.ipynb_checkpoints`` next to each file),
    listed, made, restored and deleted only inside the workspace."""


class WorkspaceContentsManager(_InsideRoot, AsyncLargeFileManager):
    """jupyter_server's default contents manager, which also refuses a path
    that leads out of ``root_dir`` through a symbolic link, and leaves such
    links out of listings."""

    @default("checkpoints_class")
    def _checkpoints_class_default(self) -> type[WorkspaceCheckpoints]:
        return WorkspaceCheckpoints

    def should_list(self, name: str) -> bool:
        folder = _listing.get()
        if folder is not None and not inside(os.path.join(folder, name), self.root_dir):
            return False
        return super().should_list(name)

    async def _dir_model(self, path: str, content: bool = True) -> dict[str, Any]:
        token = _listing.set(self._get_os_path(path))
        try:
            return await super()._dir_model(path, content=content)
        finally:
            _listing.reset(token)


class WorkspaceKernelManager(AsyncMappingKernelManager):
    """jupyter_server's default kernel manager, which refuses to start a
    kernel in a folder outside ``root_dir``."""

    def cwd_for_path(self, path: str, **kwargs: Any) -> str:
        cwd = super().cwd_for_path(path, **kwargs)
        if not inside(cwd, self.root_dir):
            raise HTTPError(404, f"{path} is outside root contents directory")
        return cwd


def learner_options(layout: Layout) -> list[str]:
    """jupyter_server's settings for the learner's JupyterLab on ``layout``."""
    options = [
        f"--ServerApp.root_dir={layout.workspace}",
        f"--ServerApp.contents_manager_class={__name__}.WorkspaceContentsManager",
        f"--ServerApp.kernel_manager_class={__name__}.WorkspaceKernelManager",
        "--ContentsManager.allow_hidden=False",
        "--ServerApp.terminals_enabled=False",
    ]
    options += [f"--ServerApp.jpserver_extensions={name}=False" for name in INSTRUCTOR_ONLY]
    options += [f"--{exporter}.enabled=False" for exporter in FILE_READING_EXPORTERS]
    return options
