"""A hub student's own deadline: the deadline service's answer and `dlcourse check`'s question.

The service runs here in process, against a stand-in for the hub's
``/hub/api/user`` (the token's owner and scopes, as JupyterHub answers it),
so each refusal is checked quickly; ``tests/test_hub.py`` runs the same
service under a real JupyterHub, with real students' tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_policy import POLICY

from dlcourse.course import check
from dlcourse.course.semester import deadlines
from dlcourse.course.semester.policy import Policy, parse

UTC = dt.timezone.utc
ACCESS = f"access:services!service={deadlines.SERVICE}"
PREFIX = f"/services/{deadlines.SERVICE}/"
# token -> what the hub says of its owner
TOKENS = {
    "ann-token": {"kind": "user", "name": "ann", "scopes": [ACCESS]},
    "cat-token": {"kind": "user", "name": "cat", "scopes": [ACCESS]},
    "narrow-token": {"kind": "user", "name": "ann", "scopes": ["users:activity!user=ann"]},
    "service-token": {"kind": "service", "name": "grader", "scopes": [ACCESS]},
}


class FakeHub(BaseHTTPRequestHandler):
    """The hub's token identification: GET /hub/api/user with the token."""

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("token ")
        owner = TOKENS.get(token)
        body = json.dumps(owner or {"status": 403}).encode()
        self.send_response(200 if owner and self.path == "/hub/api/user" else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()
    server.server_close()


@pytest.fixture
def service(tmp_path: Path, fake_hub: str) -> Iterator[tuple[str, Path]]:
    """The deadline service for a course in ``tmp_path``: its URL and the policy's path."""
    from jupyterhub.services.auth import HubAuth
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from dlcourse.course.semester import deadline_service

    auth = HubAuth(api_url=fake_hub, api_token="service's own", access_scopes={ACCESS},
                   cache_max_age=0)  # fmt: skip
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = HTTPServer(deadline_service.app(tmp_path, PREFIX, auth))
        server.add_sockets(sockets)
        holder["server"] = server
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait()
    yield f"http://127.0.0.1:{port}{PREFIX}{deadlines.ROUTE}", tmp_path / "policy.toml"

    async def stop() -> None:
        holder["server"].stop()
        await holder["server"].close_all_connections()

    asyncio.run_coroutine_threadsafe(stop(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def asked(
    monkeypatch: pytest.MonkeyPatch, url: str, token: str | None
) -> tuple[str, Policy | None]:
    monkeypatch.setenv(deadlines.URL_VARIABLE, url)
    if token is None:
        monkeypatch.delenv(deadlines.TOKEN_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(deadlines.TOKEN_VARIABLE, token)
    return deadlines.ask()


def test_each_student_is_told_their_own_deadline_and_no_other(
    service: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, path = service
    assert asked(monkeypatch, url, "ann-token") == ("ann", None)  # no policy yet: no deadline
    path.write_text(POLICY)
    full = parse(POLICY, path)
    now = dt.datetime(2026, 10, 8, 12, 0, tzinfo=UTC)
    for token, student in [("ann-token", "ann"), ("cat-token", "cat")]:
        name, theirs = asked(monkeypatch, url, token)
        assert name == student and theirs is not None
        assert theirs.time_left(student, now) == full.time_left(student, now)
        assert set(theirs.extensions) <= {student}
    # a request cannot name another student: it is always the token's owner
    name, theirs = asked(monkeypatch, url + "?student=ann&user=ann", "cat-token")
    assert name == "cat" and theirs is not None and theirs.extensions == {}
    # a change is seen at the next request
    path.write_text(POLICY.replace("2026-10-12T", "2026-10-15T"))
    assert asked(monkeypatch, url, "ann-token")[1].extensions["ann"] == dt.timedelta(days=6)


@pytest.mark.parametrize("token", ["", "no-such-token", "narrow-token", "service-token"])
def test_the_service_refuses_what_is_not_a_students_token_with_access(
    service: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    url, path = service
    path.write_text(POLICY)
    monkeypatch.setenv(deadlines.URL_VARIABLE, url)
    monkeypatch.setenv(deadlines.TOKEN_VARIABLE, token)
    expected = "is not set" if not token else r"refused your server's token \(HTTP 403"
    with pytest.raises(deadlines.Unavailable, match=expected):
        deadlines.ask()


def test_an_unreadable_policy_is_reported_without_its_content(
    service: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, path = service
    path.write_text(POLICY.replace("ann = 2026-10-12T23:59:00+02:00", "ann = soon"))
    with pytest.raises(deadlines.Unavailable, match=r"HTTP 503: the course's policy\.toml cannot be"
                       ) as refused:  # fmt: skip
        asked(monkeypatch, url, "cat-token")
    from dlcourse.course.semester.deadline_service import UNREADABLE

    assert str(refused.value).endswith(f"HTTP 503: {UNREADABLE}")  # no line, no student


def test_check_asks_the_hub_where_the_notebook_is_in_no_course(
    service: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url, path = service
    path.write_text(POLICY)
    home = tmp_path_factory.mktemp("home")  # a student's ~/ch01/, fetched: no course above
    notebook = home / "ch01" / "02_chain_rule.ipynb"
    monkeypatch.delenv(deadlines.URL_VARIABLE, raising=False)
    assert check.deadline(notebook) == ""  # not on the hub, not in a course: no deadline
    monkeypatch.setenv(deadlines.URL_VARIABLE, url)
    monkeypatch.setenv(deadlines.TOKEN_VARIABLE, "ann-token")
    before = dt.datetime(2026, 10, 8, 18, 59, tzinfo=UTC)
    theirs = "Deadline: due 2026-10-12 21:59 UTC (an extension of 3 day(s) from 2026-10-09"
    assert check.deadline(notebook, before).startswith(theirs)
    (home / "nbgrader_config.py").write_text("")  # a student's own nbgrader settings, no policy
    assert check.deadline(notebook, before).startswith(theirs)
    (home / "policy.toml").write_text(POLICY.replace("ann = 2026-10-12T", "ann = 2026-10-13T"))
    assert "2026-10-13" in check.deadline(notebook, before, "ann")  # a course's own comes first


def test_check_says_when_the_hub_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: nothing answers there
        refused = r"cannot be reached .*: is the hub running"
        with pytest.raises(deadlines.Unavailable, match=refused):
            asked(monkeypatch, f"http://127.0.0.1:{port}/services/x/api/deadline", "ann-token")


students = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)


@given(
    st.dictionaries(students, st.integers(0, 30), max_size=5),
    students,
    st.integers(-40 * 86400, 40 * 86400),
)
def test_an_answer_holds_the_students_deadline_and_nobody_elses(
    extensions: dict[str, int], student: str, offset: int
) -> None:
    due = dt.datetime(2026, 10, 9, 21, 59, tzinfo=UTC)
    policy = Policy(due, 10, 50, 7, {s: dt.timedelta(days=d) for s, d in extensions.items()})
    said = deadlines.answer(policy, student)
    assert json.loads(json.dumps(said)) == said  # what goes on the wire
    others = set(extensions) - {student}
    assert not others & set(json.dumps(said).replace('"', " ").replace(",", " ").split())
    name, theirs = deadlines.from_answer(said)
    now = due + dt.timedelta(seconds=offset)
    assert name == student and theirs.time_left(student, now) == policy.time_left(student, now)
    assert theirs.fingerprint(student) == policy.fingerprint(student)


def test_the_service_says_the_hub_starts_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dlcourse.course.semester import deadline_service

    monkeypatch.delenv("JUPYTERHUB_SERVICE_URL", raising=False)
    with pytest.raises(SystemExit, match="started by JupyterHub"):
        deadline_service.main(["--course", str(tmp_path)])
