"""The course's deadline service: a JupyterHub service that tells each student
their own deadline (see :mod:`.deadlines`).

JupyterHub starts it (``c.JupyterHub.services``, written by `dlcourse hub
config`) as the instructor, who can read the course's ``policy.toml``, with
the service's token and address in its environment. A request carries a hub
token (``Authorization: token ...``); JupyterHub's ``HubAuthenticated``
identifies its owner and requires the scope
``access:services!service=dlcourse-deadlines``, which the hub gives its users
and their servers' tokens. The answer is the policy as it applies to that
user alone; nothing in a request can name another student. A policy that
cannot be read is reported to the instructor in the hub's log and, to the
student, only as that (its error could name another student's extension).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth, HubAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from dlcourse.course.layout import Layout
from dlcourse.course.semester import deadlines, policy

log = logging.getLogger("dlcourse.deadlines")
UNREADABLE = (
    "the course's policy.toml cannot be read just now; your instructor's "
    "`dlcourse hub check` says why"
)


class DeadlineHandler(HubAuthenticated, web.RequestHandler):
    """GET: the requesting hub user's deadline, as :func:`deadlines.answer` gives it."""

    def initialize(self, policy_file: Path, hub_auth: HubAuth) -> None:
        self.policy_file = policy_file
        self.hub_auth = hub_auth

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")  # one student's, never kept by a proxy

    def write_error(self, status_code: int, **kwargs: object) -> None:
        self.finish({"error": self._reason})

    def get(self) -> None:
        user = self.current_user
        if not user or user.get("kind", "user") != "user":
            raise web.HTTPError(
                403, reason="a hub user's token, with access to this service, is needed"
            )
        try:
            read = policy.read(self.policy_file)
        except policy.PolicyError as error:
            log.error("%s", error)
            raise web.HTTPError(503, reason=UNREADABLE) from None
        self.finish(json.dumps(deadlines.answer(read, user["name"])))


def app(course: Path, prefix: str, hub_auth: HubAuth) -> web.Application:
    """The service's tornado application, under the hub's ``prefix`` for it,
    asking the hub through ``hub_auth`` who sent a request."""
    route = url_path_join(prefix, deadlines.ROUTE)
    settings = {"policy_file": Layout.of(course).policy, "hub_auth": hub_auth}
    return web.Application([(route, DeadlineHandler, settings)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, required=True, help="the course folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[dlcourse-deadlines] %(message)s")
    if not os.environ.get("JUPYTERHUB_SERVICE_URL"):
        raise SystemExit(
            "the deadline service is started by JupyterHub, which gives it its address and "
            "token (c.JupyterHub.services, written by `dlcourse hub config`): start the hub"
        )
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{deadlines.SERVICE}/")

    async def serve() -> None:
        app(args.course, prefix, HubAuth()).listen(url.port or 80, url.hostname)
        log.info("serving %s deadlines at %s", args.course, url.geturl())
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
