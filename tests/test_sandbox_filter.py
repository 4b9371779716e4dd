"""The seccomp filter a graded kernel runs under (``sandbox._filter_system_calls``),
probed directly, in a single-threaded process: a kernel is threaded, and
some calls (unshare of a user namespace) are open only to a process that is
not, which a kernel becomes by executing another program."""

from __future__ import annotations

import ctypes
import json
import platform
import subprocess
import sys

import pytest

from dlcourse.course.grading import sandbox

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"),
    reason="the filter is made for Linux on x86-64 and arm64",
)

# each call, made raw; the errno it failed with, or "done"
PROBE = """
import ctypes, json, os, socket, sys, threading
from dlcourse.course.grading import sandbox
if sys.argv[1] == "filtered":
    assert sandbox._libc.prctl(sandbox.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    sandbox._filter_system_calls()
libc = ctypes.CDLL(None, use_errno=True)
SYS = {"x86_64": {"clone": 56, "clone3": 435}, "aarch64": {"clone": 220, "clone3": 435}}
numbers = SYS[os.uname().machine]
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
def call(make):
    ctypes.set_errno(0)
    result = make()
    if result == 0 and make is fork:
        os._exit(0)
    if result < 0:
        return os.strerror(ctypes.get_errno())
    if make in (fork, clone):
        os.waitpid(result, 0)
    return "done"
def fork(): return libc.fork()
def clone(): return libc.syscall(numbers["clone"], SIGCHLD, 0, 0, 0, 0)
ends = socket.socketpair()
def grow(option):
    size = ctypes.c_int(1 << 24)
    return libc.setsockopt(ends[0].fileno(), 1, option, ctypes.byref(size), 4)
probes = {
    "fork": fork,
    "clone": clone,
    "clone3": lambda: libc.syscall(numbers["clone3"], 0, 0),
    "memfd_create": lambda: libc.memfd_create(b"probe", 0),
    "shmget": lambda: libc.shmget(0, 1 << 20, 0o1600),
    "msgget": lambda: libc.msgget(0, 0o1600),
    "SO_SNDBUF": lambda: grow(7),
    "SO_RCVBUF": lambda: grow(8),
    "SO_KEEPALIVE": lambda: grow(9),  # any other socket option may be set
    "unshare": lambda: libc.unshare(CLONE_NEWUSER),
    "setns": lambda: libc.setns(os.open("/proc/self/ns/mnt", os.O_RDONLY), 0),
}
said = {name: call(make) for name, make in probes.items()}
ran = []
worker = threading.Thread(target=ran.append, args=[1])
worker.start()
worker.join()
said["thread"] = "done" if ran else "not run"
print(json.dumps(said))
"""


def probe(mode: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    return json.loads(done.stdout)


def test_a_filtered_process_starts_no_process_and_holds_no_memory_outside_its_limit() -> None:
    try:
        ctypes.CDLL(sandbox.LIBSECCOMP)
    except OSError:
        pytest.skip("libseccomp is not installed")
    refused = "Operation not permitted"
    assert probe("filtered") == {
        "fork": refused,
        "clone": refused,
        "clone3": "Function not implemented",  # glibc then falls back to clone
        "memfd_create": refused,
        "shmget": refused,
        "msgget": refused,
        "SO_SNDBUF": refused,
        "SO_RCVBUF": refused,
        "SO_KEEPALIVE": "done",
        "unshare": refused,
        "setns": refused,
        "thread": "done",
    }


def test_unfiltered_the_same_calls_are_made() -> None:
    """The probe can tell: without the filter, each call that makes something is made."""
    said = probe("unfiltered")
    made = ("fork", "clone", "memfd_create", "shmget", "msgget", "SO_SNDBUF", "SO_RCVBUF",
            "unshare", "thread")  # fmt: skip
    assert {name: said[name] for name in made} == dict.fromkeys(made, "done")
