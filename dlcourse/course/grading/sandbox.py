"""How a student's kernel is confined while it is graded (Linux, as root).

This file uses the standard library only: the grader runs it as a script,
``python -I -S sandbox.py ...``, between ``unshare`` and the kernel, so a
kernel's start pays for no imports. Each kernel is started as

    unshare --net --mount --ipc --propagation private --
        python -I -S sandbox.py --runtime DIR --uid UID --hide PATH ...
            -- python -m ipykernel_launcher -f FILE

``unshare`` gives the kernel its own network namespace (no interfaces up, so
no network at all), mount namespace and IPC namespace (no System V or POSIX
shared memory, semaphores or message queues shared with anyone). Before the
kernel starts, the grader mounts a size-limited tmpfs as the kernel's
*runtime folder*, owned by the kernel's user: the connection file, the
sockets, the kernel's home and its working folder are there, and it is
unmounted when the kernel is gone. Then :func:`main`, still root inside the
new namespaces,

1. hides what the student must not read: an empty read-only tmpfs over each
   hidden folder (``solutions/``, the submissions, the grader's scratch
   folders...), ``/dev/null`` over each hidden file;
2. makes the Python interpreter reachable if it lives in a closed folder
   (pyenv under /root, say) by binding it alone into an empty tmpfs;
3. makes every mount read-only except the runtime folder, and mounts fresh,
   size-limited tmpfs on ``/tmp``, ``/var/tmp`` and ``/dev/shm``: whatever the
   kernel writes is private to it and gone with it, so no file outlives
   grading or reaches the next student;
4. sets resource limits (address space, processes, core dumps off) and a
   clean environment (no figures rendered, one BLAS thread), drops to the
   kernel's unprivileged user (no supplementary groups);
5. forbids the kernel to start processes or to hold memory outside its
   address space (a seccomp filter, made with the system's libseccomp: fork,
   vfork and clone without ``CLONE_THREAD`` fail with EPERM, clone3 with
   ENOSYS, so that glibc falls back to clone; so do memfd_create,
   memfd_secret, System V shared memory and message queues, whose pages
   stay when unmapped, growing a socket's buffers (setsockopt SO_SNDBUF or
   SO_RCVBUF: with its files limited, its sockets hold little), and unshare
   and setns: in a user namespace of its own a process that executed a
   single-threaded program could mount a tmpfs and fill it).
   Its threads share its address space, so the address-space limit bounds
   the memory it holds (its tmpfs folders aside, which have sizes of their
   own), where forked children would each have a limit of their own;
6. runs the kernel in its working folder.

Each kernel has a user of its own, from :class:`KernelUsers`, so that
:func:`kill_user` ends exactly what that kernel started.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from errno import ENOSYS, EPERM
from pathlib import Path

KERNEL_UIDS = range(61000, 62000)  # unprivileged users for kernels, one per live kernel
RUNTIME = Path("/run/dlcourse")  # kernels' runtime folders: outside every temporary folder
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # the world-writable folders a kernel gets afresh
NO_FIGURES = "module://dlcourse.course.grading.nofigures"

# mount(2) flags, and the statvfs(3) flags they correspond to when remounting
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_NOATIME, MS_NODIRATIME = 32, 4096, 16384, 1024, 2048
MS_RELATIME = 1 << 21
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
LIBSECCOMP = "libseccomp.so.2"
SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 0x7FFF0000, 0x00050000, 4, 7
CLONE_THREAD = 0x00010000
SOL_SOCKET, SO_SNDBUF, SO_RCVBUF = 1, 7, 8
_KEPT_ON_REMOUNT = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}


@dataclass(frozen=True)
class Limits:
    """What one kernel may use."""

    memory_mb: int = 2048
    nproc: int = 256  # threads count too: numpy, zmq and ipykernel start a few dozen
    # open files and sockets (a kernel holds about 70): each socket's buffers are memory
    # that the address-space limit does not count
    files: int = 256
    disk_mb: int = 128  # each of its writable folders (runtime, /tmp, /var/tmp, /dev/shm)


class SandboxError(RuntimeError):
    """The kernel could not be confined as asked; it does not start."""


def unavailable() -> str | None:
    """Why kernels cannot be confined here, or None when they can."""
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
    try:
        ctypes.CDLL(LIBSECCOMP)
    except OSError:
        return f"{LIBSECCOMP} (libseccomp) is not installed (Debian: apt-get install libseccomp2)"
    probe = subprocess.run(
        [*UNSHARE, "true"], capture_output=True, text=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        return f"`{' '.join(UNSHARE)} true` failed here: {probe.stderr.strip()}"
    return None


UNSHARE = ["unshare", "--net", "--mount", "--ipc", "--propagation", "private", "--"]


# ------------------------------------------------------------------ host side
class KernelUsers:
    """Unprivileged users for kernels, each held through a lock file while its
    kernel lives, so that no two live kernels (of this run or of another
    grading run on the machine) ever share a user, or kill each other."""

    def __init__(self, folder: Path = RUNTIME / "users"):
        self.folder = folder

    @contextmanager
    def acquire(self) -> Iterator[int]:
        RUNTIME.mkdir(mode=0o711, parents=True, exist_ok=True)  # kernels may not list it
        self.folder.mkdir(mode=0o700, exist_ok=True)
        for uid in KERNEL_UIDS:
            fd = os.open(self.folder / f"{uid}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            try:
                kill_user(uid)  # whatever an earlier kernel or run may have left
            except SandboxError:
                os.close(fd)
                continue
            if _processes(uid):  # zombies not yet reaped count against its process limit
                os.close(fd)
                continue
            try:
                yield uid
            finally:
                try:
                    kill_user(uid)
                finally:
                    os.close(fd)
            return
        raise SandboxError("no free kernel users: too many kernels at once")


def sweep() -> None:
    """End what a grader that died (killed, or its machine's worker lost)
    left behind: the processes and runtime folders of every kernel user no
    live grader holds. Each user's lock is held while its leftovers go, so a
    grader cannot start a kernel as that user meanwhile."""
    users = RUNTIME / "users"
    if not users.is_dir():
        return
    runtimes: dict[int, list[Path]] = {}
    for runtime in RUNTIME.glob("k*"):
        if runtime.is_dir():
            runtimes.setdefault(runtime.stat().st_uid, []).append(runtime)
    for lock in users.glob("*.lock"):
        fd = os.open(lock, os.O_WRONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live kernel's
        try:
            kill_user(int(lock.stem))
            for runtime in runtimes.get(int(lock.stem), []):
                remove_runtime(runtime)
        except SandboxError:
            continue  # processes that will not end: acquire() passes this user over
        finally:
            os.close(fd)


def kill_user(uid: int, spare: int | None = None) -> int:
    """Kill every process of ``uid`` but ``spare`` (a kernel's forks outliving
    the cell that made them, or the kernel itself); how many there were.
    Passes over /proc repeat until one finds nothing, so a fork bomb's
    children forked during a pass die in the next."""
    found = 0
    for _ in range(100):
        killed = _kill_once(uid, spare)
        if not killed:
            return found
        found += killed
    raise SandboxError(f"the processes of user {uid} keep multiplying; they could not be ended")


def _processes(uid: int) -> list[tuple[int, bool]]:
    """(pid, alive) for every process of ``uid`` (any of its uids), zombies
    included: they are dead, waiting to be reaped, but count against its
    process limit."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            if uid in map(int, fields["Uid"].split()):
                live = not fields["State"].strip().startswith(("Z", "X"))
                found.append((int(status.parent.name), live))
        except (OSError, KeyError, ValueError):
            continue  # the process ended meanwhile
    return found


def _kill_once(uid: int, spare: int | None) -> int:
    """One pass: SIGKILL each live process of ``uid`` but ``spare``."""
    found = 0
    for pid, live in _processes(uid):
        if live and pid != spare:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                found += 1
    return found


_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode()
    )
    if result != 0:
        error = ctypes.get_errno()
        raise SandboxError(f"mount {source} on {target} failed: {os.strerror(error)}")


def _umount(target: str) -> None:
    _libc.umount2(target.encode(), MNT_DETACH)


def make_runtime(uid: int | None, mplconfig: Path, disk_mb: int) -> Path:
    """A kernel's runtime folder: its connection file, sockets, home (with
    matplotlib's font cache prepared, so building it prints nothing) and
    working folder. Confined (``uid`` given): a tmpfs of ``disk_mb`` under
    :data:`RUNTIME`, owned by the kernel's user. Otherwise a temporary folder."""
    if uid is None:
        runtime = Path(tempfile.mkdtemp(prefix="dlcourse-kernel-"))
    else:
        RUNTIME.mkdir(mode=0o711, parents=True, exist_ok=True)
        runtime = Path(tempfile.mkdtemp(prefix="k", dir=RUNTIME))  # short: sockets live here
        _mount("dlcourse-kernel", str(runtime), "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={disk_mb}m,mode=0700")  # fmt: skip
    try:
        shutil.copytree(mplconfig, runtime / "home" / "matplotlib")
        (runtime / "home" / "ipython").mkdir()
        (runtime / "work").mkdir()
        if uid is not None:
            for path in [runtime, *runtime.rglob("*")]:
                os.chown(path, uid, uid)
    except BaseException:  # a full tmpfs, say: no mount is left behind
        remove_runtime(runtime)
        raise
    return runtime


def remove_runtime(runtime: Path) -> None:
    """Unmount (if confined) and remove a runtime folder whose kernel is gone."""
    if runtime.parent == RUNTIME:
        _umount(str(runtime))
    shutil.rmtree(runtime, ignore_errors=True)


def command(
    runtime: Path,
    uid: int,
    limits: Limits,
    hide: Sequence[Path],
    kernel: Sequence[str],
    cover: Sequence[Path] = (),
) -> list[str]:
    """The command that starts ``kernel`` confined (see the module's docstring).
    ``cover`` are folders (the course) of which the kernel sees only what it
    needs; the checkout dlcourse runs from is always one."""
    argv = [*UNSHARE, sys.executable, "-I", "-S", str(Path(__file__).resolve())]
    for path in hide:
        argv += ["--hide", str(path)]
    # what the kernel must be able to read: the Python installation, the virtual
    # environment and the dlcourse package itself
    package = Path(__file__).resolve().parents[2]
    for path in {Path(sys.base_prefix), Path(sys.prefix), package}:
        argv += ["--expose", str(path)]
    for path in {*cover, package.parent}:
        argv += ["--cover", str(path)]
    argv += ["--runtime", str(runtime), "--uid", str(uid)]
    argv += ["--memory", str(limits.memory_mb), "--nproc", str(limits.nproc)]
    argv += ["--files", str(limits.files)]
    argv += ["--disk", str(limits.disk_mb), "--path", os.environ.get("PATH", os.defpath)]
    argv += ["--parent", str(os.getpid())]
    return [*argv, "--", *kernel]


# ---------------------------------------------------------------- kernel side
def _hide(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _mount("hidden", str(path), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    elif path.is_file() and not path.is_symlink():
        _mount("/dev/null", str(path), None, MS_BIND)


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost folder on the way to ``path`` that others may not enter."""
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir() and not folder.stat().st_mode & 0o001:
            return folder
    return None


def _cover(folder: Path, inside: Sequence[Path]) -> None:
    """An empty tmpfs over ``folder``, into which the paths ``inside`` it
    alone are bound back: the rest of the folder is out of reach."""
    staging = Path(tempfile.mkdtemp(prefix="dlcourse-staging-"))
    _mount(str(folder), str(staging), None, MS_BIND | MS_REC)
    _mount("covered", str(folder), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for path in inside:
        path.mkdir(parents=True, exist_ok=True)
        _mount(str(staging / path.relative_to(folder)), str(path), None, MS_BIND | MS_REC)
    _umount(str(staging))
    staging.rmdir()


def _expose(paths: Sequence[Path]) -> None:
    """Let an unprivileged user reach ``paths`` (say a Python installed under
    /root) without opening anything else of the closed folders above them."""
    below: dict[Path, list[Path]] = {}
    for path in paths:
        closed = _closed_ancestor(path)
        if closed is not None and closed != path:
            below.setdefault(closed, []).append(path)
    for closed, inside in below.items():
        _cover(closed, inside)


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            field = line.split()[4]  # octal escapes for spaces and the like
            points.append(field.encode().decode("unicode_escape").encode("latin-1").decode())
    return points


def _read_only_everywhere(writable: Path) -> None:
    """Every mount read-only (keeping its other flags) but ``writable``'s."""
    for point in _mount_points():
        if Path(point) == writable or Path(point).is_relative_to(writable):
            continue
        try:
            kept = os.statvfs(point).f_flag
        except OSError:
            continue  # covered by a later mount
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(ms for st, ms in _KEPT_ON_REMOUNT.items() if kept & st)
        _mount("none", point, None, flags)


def _private_tmp(disk_mb: int) -> None:
    for folder in PRIVATE_TMP:
        if Path(folder).is_dir():
            _mount("private", str(Path(folder).resolve()), "tmpfs", MS_NOSUID | MS_NODEV,
                   f"size={disk_mb}m,mode=1777")  # fmt: skip


def _limit(memory_mb: int, nproc: int, files: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class _ArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``: argument ``arg``, compared by ``op``."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]  # fmt: skip


def _filter_system_calls() -> None:
    """Load the seccomp filter of step 5 into this process and what it executes.
    The flags are clone's first argument on x86-64 and arm64 (not on s390)."""
    lib = ctypes.CDLL(LIBSECCOMP, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]  # fmt: skip
    lib.seccomp_load.argtypes = lib.seccomp_release.argtypes = [ctypes.c_void_p]
    filter_ = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not filter_:
        raise SandboxError("seccomp_init failed")
    not_a_thread = (_ArgCmp * 1)(_ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
    rules = [("fork", EPERM, None), ("vfork", EPERM, None), ("clone", EPERM, not_a_thread),
             ("clone3", ENOSYS, None), ("memfd_create", EPERM, None),
             ("memfd_secret", EPERM, None), ("shmget", EPERM, None), ("msgget", EPERM, None),
             ("unshare", EPERM, None), ("setns", EPERM, None)]  # fmt: skip
    for buffer in (SO_SNDBUF, SO_RCVBUF):  # setsockopt(fd, SOL_SOCKET, buffer, ...)
        rules.append(("setsockopt", EPERM, (_ArgCmp * 2)(
            _ArgCmp(1, SCMP_CMP_EQ, SOL_SOCKET, 0), _ArgCmp(2, SCMP_CMP_EQ, buffer, 0))))
    try:
        for name, errno, compare in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # no such call on this architecture (arm64 has no fork)
                continue
            count = 0 if compare is None else len(compare)
            if lib.seccomp_rule_add_array(filter_, SCMP_ACT_ERRNO | errno, number, count,
                                          compare) != 0:  # fmt: skip
                raise SandboxError(f"seccomp: the rule for {name} was refused")
        if lib.seccomp_load(filter_) != 0:
            raise SandboxError("seccomp: the filter could not be loaded")
    finally:
        lib.seccomp_release(filter_)


def kernel_environment(runtime: Path, path: str, parent: int) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's leaks in.
    ``parent`` is the grader's process: the kernel ends itself if it dies."""
    home = runtime / "home"
    return {
        "PATH": path,
        "JPY_PARENT_PID": str(parent),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "MPLCONFIGDIR": str(home / "matplotlib"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONNOUSERSITE": "1",
        # figures are made but never rendered: nobody sees them while grading
        "MPLBACKEND": NO_FIGURES,
        # one thread per BLAS call: kernels graded side by side do not fight over cores
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Confine this process as described above, then run the kernel command."""
    parser = argparse.ArgumentParser(prog="sandbox.py")
    parser.add_argument("--hide", type=Path, action="append", default=[])
    parser.add_argument("--expose", type=Path, action="append", default=[])
    parser.add_argument("--cover", type=Path, action="append", default=[])
    parser.add_argument("--runtime", type=Path, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("--nproc", type=int, required=True)
    parser.add_argument("--files", type=int, required=True)
    parser.add_argument("--disk", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    os.chown(args.runtime / "kernel.json", args.uid, args.uid)  # written by the grader
    for path in args.hide:
        _hide(path)
    interpreter = Path(os.path.realpath(command[0])).parent.parent
    needed = [interpreter, args.runtime, *args.expose]
    for folder in args.cover:  # the course and the checkout: only what the kernel needs
        if folder.is_dir() and not folder.is_symlink():
            _cover(folder, [p for p in needed if p.is_relative_to(folder) and p != folder])
    _expose(needed)
    _read_only_everywhere(args.runtime)
    _private_tmp(args.disk)
    _limit(args.memory, args.nproc, args.files)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:  # setuid programs stay the kernel's
        raise SandboxError(f"no_new_privs failed: {os.strerror(ctypes.get_errno())}")
    os.setgroups([])
    os.setgid(args.uid)
    os.setuid(args.uid)
    os.chdir(args.runtime / "work")
    _filter_system_calls()
    os.execve(command[0], command, kernel_environment(args.runtime, args.path, args.parent))


if __name__ == "__main__":
    main()
