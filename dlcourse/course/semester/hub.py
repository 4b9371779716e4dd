"""A JupyterHub for the course on one machine, written and checked by `dlcourse hub`.

JupyterHub (pinned in the ``hub`` extra) runs as root with
configurable-http-proxy (npm) in front; each student logs in with their Unix
account (PAM) and gets a JupyterLab of their own, started as them by
``LocalProcessSpawner`` from this Python environment (the course installed
for all users), in their home folder. nbgrader's assignment list in it
fetches, validates and submits through the exchange shared by everyone,
found through the students' ``nbgrader_config.py`` that this module writes
beside the hub's configuration; the instructor's tools (formgrader, course
list, and their JupyterLab plugins with the Create Assignment sidebar) are off
in the students' servers, and so is JupyterLab's prompt to fetch the news.

``write`` makes the configuration folder from :class:`Settings` (kept in it
as JSON); ``check`` says what is wrong with one: files changed by hand, the
exchange, the proxy, a course id or an environment the students cannot use.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from dlcourse.course.layout import Layout
from dlcourse.course.semester import deadlines, exchange, policy

HUB_CONFIG = "jupyterhub_config.py"
SETTINGS = "dlcourse-hub.json"
STUDENT_CONFIG = Path("jupyter") / "nbgrader_config.py"  # on the students' Jupyter config path
STUDENT_PAGE_CONFIG = Path("jupyter") / "labconfig" / "page_config.json"  # their JupyterLab's
# JupyterLab plugins off in the students' JupyterLab: nbgrader's instructor tools
# (their server extensions are off too) and the prompt to fetch Jupyter's news.
STUDENT_DISABLED = (
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:course-list",
    "@jupyterlab/apputils-extension:announcements",
)
STATE = "state"  # the hub's database, cookie secret and proxy pid: root's only
PROXY = "configurable-http-proxy"
# What JupyterHub's `server` role gives a student's server token, to which
# the deadline service's access is added.
SERVER_SCOPES = ("users:activity!user", "access:servers!server")
# The instructor's server extensions, off in the students' servers.
INSTRUCTOR_ONLY = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.course_list",
)


class HubError(RuntimeError):
    """The hub cannot be configured as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Settings:
    course: str  # the course folder (for its course id)
    exchange: str  # nbgrader's exchange, shared by everyone
    group: str  # the Unix group whose members may log in
    ip: str = "127.0.0.1"
    port: int = 8000  # for browsers; the hub, the proxy and the deadline service use the next 3
    python: str = sys.executable  # the environment the course is installed in, for everyone


def instructor(settings: Settings) -> str:
    """The Unix user who owns the course folder, as whom the deadline service runs."""
    try:
        uid = Path(settings.course).stat().st_uid
    except FileNotFoundError:
        raise HubError(
            f"the course folder {settings.course} does not exist: give the course's folder "
            "with `dlcourse --root COURSE hub config`"
        ) from None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise HubError(
            f"the course folder {settings.course} belongs to user id {uid}, who has no Unix "
            "account: give it to the instructor (chown -R INSTRUCTOR)"
        ) from None


def _hub_config(settings: Settings, folder: Path) -> str:
    bin_dir = Path(settings.python).parent
    state = folder / STATE
    args = [f"--ServerApp.jpserver_extensions={name}=False" for name in INSTRUCTOR_ONLY] + [
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    service_url = f"http://127.0.0.1:{settings.port + 3}"
    service = {
        "name": deadlines.SERVICE,
        "url": service_url,
        "command": [settings.python, "-m", "dlcourse.course.semester.deadline_service",
                    "--course", settings.course],
        "user": instructor(settings),  # who can read policy.toml
        "cwd": settings.course,
        "display": False,
    }  # fmt: skip
    access = f"access:services!service={deadlines.SERVICE}"
    environment = {
        deadlines.URL_VARIABLE: f"{service_url}/services/{deadlines.SERVICE}/{deadlines.ROUTE}",
        "JUPYTER_CONFIG_PATH": str(folder / STUDENT_CONFIG.parent),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PATH": os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
    }
    lines = [
        f'"""JupyterHub for the course {settings.course}: written by `dlcourse hub config`,',
        "checked by `dlcourse hub check`; change the settings there, not here."
        '"""',
        "",
        "c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)",
        f"c.JupyterHub.bind_url = {f'http://{settings.ip}:{settings.port}'!r}",
        # the hub's own API and the proxy's, on the two ports after it, on this machine only
        f"c.JupyterHub.hub_bind_url = {f'http://127.0.0.1:{settings.port + 1}'!r}",
        f"c.ConfigurableHTTPProxy.api_url = {f'http://127.0.0.1:{settings.port + 2}'!r}",
        f"c.JupyterHub.db_url = {'sqlite:///' + str(state / 'jupyterhub.sqlite')!r}",
        f"c.JupyterHub.cookie_secret_file = {str(state / 'jupyterhub_cookie_secret')!r}",
        f"c.ConfigurableHTTPProxy.pid_file = {str(state / 'jupyterhub-proxy.pid')!r}",
        "c.JupyterHub.authenticator_class = 'pam'",
        f"c.PAMAuthenticator.allowed_groups = {{{settings.group!r}}}",
        "c.JupyterHub.spawner_class = 'jupyterhub.spawner.LocalProcessSpawner'",
        f"c.Spawner.cmd = [{str(bin_dir / 'jupyterhub-singleuser')!r}]",
        "c.Spawner.default_url = '/lab'",
        "c.Spawner.start_timeout = 180  # a JupyterLab may take a while on a busy machine",
        "c.Spawner.http_timeout = 180",
        f"c.Spawner.args = {args!r}",
        f"c.Spawner.environment = {environment!r}",
        "# each student's deadline, from policy.toml, by a service run as the instructor,",
        "# which every user's server token may ask (for its owner's deadline only)",
        f"c.JupyterHub.services = [{service!r}]",
        f"c.JupyterHub.extra_user_scopes = {{{access!r}}}",
        f"c.Spawner.server_token_scopes = {[*SERVER_SCOPES, access]!r}",
        "",
    ]
    return "\n".join(lines)


def files(settings: Settings, folder: Path) -> dict[Path, str]:
    """What ``write`` puts in ``folder``: path -> text."""
    layout = Layout.of(Path(settings.course))
    return {
        folder / SETTINGS: json.dumps(asdict(settings), indent=1) + "\n",
        folder / HUB_CONFIG: _hub_config(settings, folder),
        folder / STUDENT_CONFIG: exchange.student_config(layout, Path(settings.exchange)),
        folder / STUDENT_PAGE_CONFIG: json.dumps(
            {"disabledExtensions": dict.fromkeys(STUDENT_DISABLED, True)}, indent=1
        )
        + "\n",
    }


def _check_group(group: str) -> None:
    try:
        grp.getgrnam(group)
    except KeyError:
        raise HubError(
            f"there is no Unix group {group!r}: create it (`groupadd {group}`) and add the "
            f"students to it (`usermod -aG {group} STUDENT`), or name the group they are in"
        ) from None


def write(settings: Settings, folder: Path) -> list[Path]:
    """Write the hub's configuration into ``folder`` (readable by everyone,
    its ``state/`` by its owner only); the files written."""
    exchange.check_root(Path(settings.exchange))
    _check_group(settings.group)
    folder = folder.absolute()
    _refuse_to_overwrite(folder)
    written = []
    for path, text in files(settings, folder).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        path.write_text(text)
        os.chmod(path, 0o644)
        written.append(path)
    (folder / STATE).mkdir(exist_ok=True)
    os.chmod(folder / STATE, 0o700)
    return written


def _refuse_to_overwrite(folder: Path) -> None:
    """Refuse to replace a file in ``folder`` that `dlcourse hub config` did not
    write as it is (someone's own jupyterhub_config.py, or one edited by hand)."""
    ours = files(read_settings(folder), folder) if (folder / SETTINGS).exists() else {}
    paths = (SETTINGS, HUB_CONFIG, STUDENT_CONFIG, STUDENT_PAGE_CONFIG)
    for path in (folder / name for name in paths):
        if path.exists() and (path not in ours or path.read_text() != ours[path]):
            raise HubError(
                f"{path} exists and is not what `dlcourse hub config` wrote: it is kept; move "
                "it away (or give another --config folder) to write the course's hub there"
            )


def read_settings(folder: Path) -> Settings:
    path = folder / SETTINGS
    try:
        return Settings(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise HubError(
            f"{folder} has no {SETTINGS}: write the hub's configuration with "
            f"`dlcourse hub config --config {folder}`"
        ) from None
    except (ValueError, TypeError) as error:
        raise HubError(f"{path} is not dlcourse's hub settings ({error}): write it again "
                       f"with `dlcourse hub config --config {folder}`") from None  # fmt: skip


def closed_folder(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users cannot enter."""
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir() and not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def _check_deadlines(settings: Settings) -> list[str]:
    """What would keep the deadline service from telling students their deadline."""
    path = Layout.of(Path(settings.course)).policy
    try:
        policy.read(path)
    except policy.PolicyError as error:
        return [f"the deadline service cannot tell the students their deadline: {error}"]
    if not path.exists():
        return []
    st, owner = path.stat(), pwd.getpwnam(instructor(settings))
    mode = st.st_mode
    readable = mode & stat.S_IRUSR if st.st_uid == owner.pw_uid else mode & stat.S_IROTH
    if not readable:
        return [
            f"{path} cannot be read by {owner.pw_name}, as whom the deadline service runs: "
            f"`chown {owner.pw_name} {path}` and `chmod u+r {path}`"
        ]
    return []


def check(folder: Path) -> list[str]:
    """What is wrong with the hub configured in ``folder``, one line each (none: ready)."""
    folder = folder.absolute()
    settings = read_settings(folder)
    problems = []
    for path, text in files(settings, folder).items():
        if not path.is_file():
            problems.append(f"{path} is missing: run `dlcourse hub config` again")
        elif path.read_text() != text:
            problems.append(
                f"{path} is not what `dlcourse hub config` writes for {folder / SETTINGS} "
                "(changed by hand, or the course's nbgrader_config.py changed): write it again"
            )
        elif path.is_relative_to(folder / STUDENT_CONFIG.parent) and (
            os.stat(path).st_mode & stat.S_IROTH == 0 or closed_folder(path.parent)
        ):
            problems.append(f"{path} cannot be read by the students: chmod a+rX on the way to it")
    try:
        exchange.check_root(Path(settings.exchange))
        _check_group(settings.group)
    except (exchange.ExchangeError, HubError) as error:
        problems.append(str(error))
    if shutil.which(PROXY) is None:
        problems.append(
            f"{PROXY} is not on PATH: install it with `npm install -g {PROXY}` (Node.js's npm)"
        )
    problems += _check_deadlines(settings)
    bin_dir = Path(settings.python).parent
    if not (bin_dir / "jupyterhub-singleuser").exists():
        problems.append(
            f"{bin_dir} has no jupyterhub-singleuser: install the course with its hub "
            "extra there (pip install -e '.[hub]')"
        )
    closed = closed_folder(bin_dir)
    if closed is not None:
        problems.append(
            f"{closed} cannot be entered by other users, so the students cannot run the "
            f"course's Python {settings.python}: install it where everyone can (chmod o+x)"
        )
    return problems
