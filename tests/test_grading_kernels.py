"""What a kernel can make the grader hold while the grader is not reading it.

While a test runs in the grader's process, nothing reads the kernel's output
socket (iopub). ZMQ's default queue, 1,000 messages of any size, let a
student's kernel pile its output into the grader: 12 messages of 150 MB held
2.2 GB there (helper-19). The grader's sockets now queue a few messages, and
the rest waits in the kernel, whose memory is limited.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import zmq
from jupyter_core.utils import run_sync

from dlcourse.course.grading import kernels, sandbox

MESSAGES, MB = 12, 25  # 300 MB sent, not read


def resident_mb() -> float:
    """This process's resident memory now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_kernel_cannot_pile_its_output_into_the_grader(tmp_path: Path) -> None:
    mplconfig = tmp_path / "matplotlib"
    mplconfig.mkdir()
    kernel = kernels.Launcher(False, sandbox.Limits(), [], mplconfig).start()
    client = kernel.km.client()
    try:
        assert isinstance(client, kernels.BoundedClient)
        client.start_channels()
        run_sync(client.wait_for_ready)(timeout=60)
        sockets = {  # every socket the grader reads the kernel by, the manager's control too
            name: getattr(client, f"{name}_channel").socket for name in ("shell", "iopub", "stdin")
        } | {"control": kernel.km._control_socket}
        for name, socket in sockets.items():
            bounds = socket.getsockopt(zmq.RCVHWM), socket.getsockopt(zmq.MAXMSGSIZE)
            assert bounds == (kernels.QUEUED_MESSAGES, kernels.MAX_FRAME), name
        before = resident_mb()
        code = (
            "k = get_ipython().kernel\n"
            f"chunk = 'x' * ({MB} * 2**20)\n"
            f"for _ in range({MESSAGES}):\n"
            "    k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': chunk})\n"
            "del chunk\n"
        )
        sent = client.execute(code)
        while run_sync(client.shell_channel.get_msg)(timeout=60)["parent_header"].get(
            "msg_id"
        ) != sent:
            pass
        time.sleep(3)  # what the kernel sent reaches the grader's queue, unread
        grown = resident_mb() - before
        assert grown < 4 * MB, f"the grader holds {grown:.0f} MB of the kernel's output"
        messages = 0  # what waited in the kernel still comes, once read
        while messages < MESSAGES:
            message = run_sync(client.iopub_channel.get_msg)(timeout=30)
            messages += message["msg_type"] == "stream"
    finally:
        client.stop_channels()
        kernel.close()
