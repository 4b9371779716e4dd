"""How a student's kernel is confined while it is graded (Linux).

The grader starts each kernel through a Jupyter kernelspec whose command is

    unshare --net --mount --propagation private -- python -m dlcourse.course.grading.sandbox
        --hide PATH ... --uid UID --memory MB --nproc N --connection FILE
        -- python -m ipykernel_launcher -f FILE

``unshare`` gives the kernel its own network namespace (no interfaces up,
so no network at all) and its own mount namespace. This module, still root
inside those namespaces, then

1. hides what the student must not read: an empty read-only tmpfs is mounted
   over each hidden folder (``solutions/``, the submissions, the gradebook's
   folder...) and ``/dev/null`` over each hidden file;
2. sets resource limits: address space (memory), number of processes (a
   fork bomb stops there), core dumps off;
3. makes the Python interpreter reachable if it lives in a closed folder
   (pyenv under /root, say) by binding it alone into an empty tmpfs;
4. hands the connection file and a home folder (with matplotlib's font
   cache prepared) to the kernel's user and drops to that unprivileged user
   (no supplementary groups), then runs the kernel.

The kernel talks to the grader over Unix sockets (Jupyter's ``ipc``
transport) in a runtime folder the kernel's user may write to; it can write
only there and in its working folder (a scratch copy of the submission).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

KERNEL_NAME = "dlcourse-sandbox"


@dataclass(frozen=True)
class Limits:
    """What one kernel may use."""

    memory_mb: int = 2048
    nproc: int = 256  # threads count too: numpy, zmq and ipykernel start a few dozen


def unavailable() -> str | None:
    """Why the sandbox cannot be set up here, or None when it can."""
    if platform.system() != "Linux":
        return f"the sandbox needs Linux namespaces; this is {platform.system()}"
    if os.geteuid() != 0:
        return (
            "the sandbox needs root to switch a kernel to an unprivileged user and to "
            "hide folders from it; run `dlcourse grade` as root (for example in the "
            "grading container)"
        )
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"`unshare --net --mount` failed here: {probe.stderr.strip()}"
    return None


def write_kernelspec(
    folder: Path, hide: Sequence[Path], uid: int, limits: Limits, mplconfig: Path
) -> Path:
    """Write the sandboxed kernelspec into ``folder/kernels/``; returns ``folder``,
    which goes on JUPYTER_PATH."""
    argv = [
        "unshare",
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        "dlcourse.course.grading.sandbox",
    ]
    for path in hide:
        argv += ["--hide", str(path)]
    # what the kernel must be able to read: the virtual environment and dlcourse itself
    for path in (Path(sys.prefix), Path(__file__).resolve().parents[2]):
        argv += ["--expose", str(path)]
    argv += [
        "--uid",
        str(uid),
        "--memory",
        str(limits.memory_mb),
        "--nproc",
        str(limits.nproc),
        "--mplconfig",
        str(mplconfig),
        "--connection",
        "{connection_file}",
        "--",
        sys.executable,
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    spec = {
        "argv": argv,
        "display_name": "Python 3 (dlcourse sandbox)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    target = folder / "kernels" / KERNEL_NAME
    target.mkdir(parents=True, exist_ok=True)
    (target / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


def _hide(path: Path) -> None:
    if path.is_dir():
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=4k,mode=0555", "hidden", str(path)], check=True
        )
    elif path.exists():
        subprocess.run(["mount", "--bind", "/dev/null", str(path)], check=True)


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost folder on the way to ``path`` that others may not enter."""
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir() and not folder.stat().st_mode & 0o001:
            return folder
    return None


def _expose(paths: Sequence[Path]) -> None:
    """Let an unprivileged user reach ``paths`` (say a Python installed under
    /root) without opening anything else of the closed folders above them:
    each such folder is covered by an empty tmpfs into which the paths below
    it alone are bound."""
    below: dict[Path, list[Path]] = {}
    for path in paths:
        closed = _closed_ancestor(path)
        if closed is not None and closed != path:
            below.setdefault(closed, []).append(path)
    for closed, inside in below.items():
        staging = Path(tempfile.mkdtemp(prefix="dlcourse-staging-"))
        subprocess.run(["mount", "--bind", str(closed), str(staging)], check=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "mode=0755", "exposed", str(closed)], check=True
        )
        for path in inside:
            (closed / path.relative_to(closed)).mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["mount", "--bind", str(staging / path.relative_to(closed)), str(path)], check=True
            )
        subprocess.run(["umount", "-l", str(staging)], check=True)
        staging.rmdir()


def _limit(memory_mb: int, nproc: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: Sequence[str] | None = None) -> None:
    """Confine this process as described above, then run the kernel command."""
    parser = argparse.ArgumentParser(prog="python -m dlcourse.course.grading.sandbox")
    parser.add_argument("--hide", type=Path, action="append", default=[])
    parser.add_argument("--expose", type=Path, action="append", default=[])
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("--nproc", type=int, required=True)
    parser.add_argument("--mplconfig", type=Path, required=True)
    parser.add_argument("--connection", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    os.chown(args.connection, args.uid, args.uid)
    for path in args.hide:
        _hide(path)
    # the kernel's home, in its runtime folder; matplotlib's font cache comes
    # prepared, so building it prints nothing to stderr
    home = args.connection.parent / "home"
    shutil.copytree(args.mplconfig, home / "matplotlib", dirs_exist_ok=True)
    (home / "ipython").mkdir(parents=True, exist_ok=True)
    for path in [home, *home.rglob("*")]:
        os.chown(path, args.uid, args.uid)
    os.environ.update(
        HOME=str(home), MPLCONFIGDIR=str(home / "matplotlib"), IPYTHONDIR=str(home / "ipython")
    )
    interpreter = Path(os.path.realpath(command[0])).parent.parent
    _expose([interpreter, args.connection.parent, *args.expose])
    _limit(args.memory, args.nproc)
    os.setgroups([])
    os.setgid(args.uid)
    os.setuid(args.uid)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
