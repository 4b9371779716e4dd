"""Starting and ending the kernels that run a student's cells.

A :class:`Launcher` starts each kernel in a runtime folder of its own (see
:mod:`dlcourse.course.grading.sandbox`), confined as its own unprivileged
user, or, with ``--unsafe``, as a plain local process; both talk to the
grader over Unix sockets and run with the same environment, so grading
gives the same results either way. :meth:`Kernel.close` ends the kernel,
everything it started, and its files.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_core.utils import run_sync
from traitlets import Instance, default

from dlcourse.course.grading import remote, sandbox

KERNEL = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
# What the grader takes from a kernel's sockets before it reads them: a few
# messages (ZMQ's default, 1,000, let a kernel pile its output into the grader
# while a test runs and nobody reads it, 150 MB a message), each of frames no
# larger than an answer on the channel may be.  The rest waits in the kernel,
# whose memory is limited.
QUEUED_MESSAGES = 2
MAX_FRAME = remote.MAX_MESSAGE


class _OneSpec(KernelSpecManager):
    """A kernelspec manager that knows one kernel, built in code (no files, no
    JUPYTER_PATH to set for the process)."""

    spec = Instance(KernelSpec)

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self.spec


def _bounded(context: zmq.asyncio.Context) -> zmq.asyncio.Context:
    """``context``, whose sockets queue at most :data:`QUEUED_MESSAGES`
    messages of frames of at most :data:`MAX_FRAME` bytes: a kernel that
    sends a larger one is disconnected (its later output is lost, at its
    own cost)."""
    context.setsockopt(zmq.RCVHWM, QUEUED_MESSAGES)
    context.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    return context


class BoundedClient(AsyncKernelClient):
    """The grader's client of a kernel: shell, iopub, stdin and heartbeat, bounded."""

    @default("context")
    def _bounded_context(self) -> zmq.asyncio.Context:
        return _bounded(super()._context_default())


class BoundedManager(AsyncKernelManager):
    """The grader's manager of a kernel: its control socket bounded too."""

    @default("context")
    def _bounded_context(self) -> zmq.asyncio.Context:
        return _bounded(super()._context_default())


class Kernel:
    """One live kernel: its manager, user (None when not confined) and runtime folder."""

    def __init__(self, km: AsyncKernelManager, uid: int | None, runtime: Path,
                 stack: contextlib.ExitStack):  # fmt: skip
        self.km, self.uid, self.runtime, self._stack = km, uid, runtime, stack

    @property
    def pid(self) -> int | None:
        process = getattr(self.km.provisioner, "process", None)
        return process.pid if process is not None else None

    def exit_status(self) -> int | None:
        """The kernel process's exit status, or None while it runs."""
        with contextlib.suppress(Exception):
            return run_sync(self.km.provisioner.poll)()
        return None

    def reap(self) -> int:
        """End what the kernel's cells started and left running (not the
        kernel); how many processes there were."""
        if self.uid is None:
            return 0
        return sandbox.kill_user(self.uid, spare=self.pid)

    def close(self) -> None:
        """End the kernel and everything of it: processes, files, its user."""
        with contextlib.suppress(Exception):
            run_sync(self.km.shutdown_kernel)(now=True)
        self._stack.close()


class Launcher:
    """Starts one student's kernels."""

    def __init__(self, confined: bool, limits: sandbox.Limits, hide: list[Path], mplconfig: Path,
                 cover: list[Path] = ()):  # fmt: skip
        self.confined, self.limits, self.hide, self.mplconfig = confined, limits, hide, mplconfig
        self.cover = list(cover)
        self.users = sandbox.KernelUsers()

    def start(self) -> Kernel:
        stack = contextlib.ExitStack()
        try:
            uid = stack.enter_context(self.users.acquire()) if self.confined else None
            runtime = sandbox.make_runtime(uid, self.mplconfig, self.limits.disk_mb)
            stack.callback(sandbox.remove_runtime, runtime)
            argv = list(KERNEL)
            if uid is not None:
                argv = sandbox.command(runtime, uid, self.limits, self.hide, KERNEL, self.cover)
                stack.callback(sandbox.kill_user, uid)
            spec = KernelSpec(argv=argv, display_name="Python 3 (grading)", language="python",
                              metadata={"debugger": False})  # fmt: skip
            km = BoundedManager(
                kernel_name="dlcourse-grading",
                kernel_spec_manager=_OneSpec(spec=spec),
                client_class="dlcourse.course.grading.kernels.BoundedClient",
                transport="ipc",
                ip=str(runtime / "ipc"),
                connection_file=str(runtime / "kernel.json"),
            )
            env = sandbox.kernel_environment(runtime, os.environ.get("PATH", ""), os.getpid())
            # what the kernel process itself prints (not its cells' output) is of no use
            run_sync(km.start_kernel)(
                cwd=str(runtime / "work"), env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            stack.close()
            raise
        return Kernel(km, uid, runtime, stack)
