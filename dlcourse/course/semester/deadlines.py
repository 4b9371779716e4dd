"""A hub student's own deadline, from the course's JupyterHub service.

On the hub, a student's notebooks are in their home (``~/ch01/``, fetched
from the exchange) and the course folder with ``policy.toml`` is the
instructor's, closed to them. The hub runs :mod:`.deadline_service` as the
instructor; it answers a request made with a hub token with the policy as it
applies to the token's owner alone: the course's due date and late schedule,
and that student's extension, never anyone else's (an extension can reveal an
accommodation). ``dlcourse check`` in a student's JupyterLab asks it with the
token JupyterHub put in their server's environment (``JUPYTERHUB_API_TOKEN``),
at the address `dlcourse hub config` put there (``DLCOURSE_DEADLINES_URL``).
The policy is read on every request, so a moved due date or a new extension is
seen at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request

from dlcourse.course.semester.policy import Policy

SERVICE = "dlcourse-deadlines"  # the service's name in JupyterHub
ROUTE = "api/deadline"  # below the service's prefix, /services/<SERVICE>/
URL_VARIABLE = "DLCOURSE_DEADLINES_URL"  # in the students' servers, set by `dlcourse hub config`
TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"  # in the students' servers, set by JupyterHub


class Unavailable(RuntimeError):
    """The hub's deadline service cannot answer; the message says why and what to do."""


def answer(policy: Policy | None, student: str) -> dict:
    """What the service tells ``student``: the policy as it applies to them
    alone (None: the course sets no deadline)."""
    if policy is None:
        return {"student": student, "policy": None}
    extension = policy.extensions.get(student)
    return {
        "student": student,
        "policy": {
            "due": policy.due.isoformat(),
            "percent_per_day": policy.percent_per_day,
            "max_percent": policy.max_percent,
            "zero_after_days": policy.zero_after_days,
            "extension_seconds": None if extension is None else extension.total_seconds(),
        },
    }


def from_answer(data: dict) -> tuple[str, Policy | None]:
    """The student and their policy (with only their extension) from an :func:`answer`."""
    student, given = data["student"], data["policy"]
    if given is None:
        return student, None
    seconds = given["extension_seconds"]
    extensions = {} if seconds is None else {student: dt.timedelta(seconds=seconds)}
    policy = Policy(
        dt.datetime.fromisoformat(given["due"]),
        given["percent_per_day"],
        given["max_percent"],
        given["zero_after_days"],
        extensions,
    )
    return student, policy


def in_hub_session() -> bool:
    """Whether this process runs in a student's server of the course's hub."""
    return bool(os.environ.get(URL_VARIABLE))


def ask(timeout: float = 10.0) -> tuple[str, Policy | None]:
    """This hub user's name and policy, from the hub's deadline service."""
    url = os.environ.get(URL_VARIABLE, "")
    token = os.environ.get(TOKEN_VARIABLE, "")
    if not token:
        raise Unavailable(
            f"{TOKEN_VARIABLE} is not set, so the hub's deadline service cannot tell who you "
            "are: run `dlcourse check` in a terminal or notebook of your hub JupyterLab"
        )
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return from_answer(json.load(response))
    except urllib.error.HTTPError as error:
        said = _message(error)
        if error.code in (401, 403):
            raise Unavailable(
                f"the hub's deadline service at {url} refused your server's token "
                f"(HTTP {error.code}{said}): restart your server (File > Hub Control Panel > "
                "Stop My Server, then Start My Server)"
            ) from None
        raise Unavailable(f"the hub's deadline service at {url} answered HTTP {error.code}"
                          f"{said}") from None  # fmt: skip
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Unavailable(
            f"the hub's deadline service at {url} cannot be reached ({reason}): is the hub "
            "running as `dlcourse hub config` wrote it?"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise Unavailable(f"the hub's deadline service at {url} answered what is not "
                          f"a deadline ({error!r})") from None  # fmt: skip


def _message(error: urllib.error.HTTPError) -> str:
    try:
        with error:
            said = json.loads(error.read()).get("error", "")
    except (ValueError, AttributeError, OSError):
        return ""
    return f": {said}" if said else ""
