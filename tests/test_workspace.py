"""The learner's JupyterLab reaches its workspace and nothing else, through
every route jupyter_server (and the extensions `dlcourse lab` loads) maps
from a URL to a file: the contents API and its checkpoints, /files/, /view/,
nbconvert's export, the Notebook pages, nbgrader's Validate, the kernels'
and sessions' working folders, the terminal.  Each forbidden file is asked
for by every spelling of a way out: ``..``, ``%2e%2e``, an encoded slash, a
backslash, an absolute path, and symbolic links (to a folder and to a file,
relative and absolute) planted in the workspace, as a learner's code could.

The course here has graded students and its Appendix A withheld
(``dlcourse release --no-answers``). The Chromium side is in test_browser.py.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser import ANSWER_MARKS, SECRET, Lab, course_copy, running_lab

from dlcourse.course import appendix
from dlcourse.course.layout import ASSIGNMENT, SOURCE, WITHHELD_APPENDIX, Layout

pytestmark = pytest.mark.slow

# Everything below is relative to the course folder and holds SECRET or an answer.
FORBIDDEN_FILES = [
    "outside.txt",
    "gradebook.db",
    "grades.csv",
    f"{SOURCE}/{ASSIGNMENT}/02_chain_rule.ipynb",
    # its checkpoint, for the checkpoint routes (api/contents/PATH/checkpoints)
    f"{SOURCE}/{ASSIGNMENT}/.ipynb_checkpoints/02_chain_rule-checkpoint.ipynb",
    str(WITHHELD_APPENDIX),
    f"submitted/alice/{ASSIGNMENT}/02_chain_rule.ipynb",
    f"autograded/alice/{ASSIGNMENT}/02_chain_rule.ipynb",
    f"feedback/alice/{ASSIGNMENT}/02_chain_rule.html",
    ".dlcourse/secret.txt",
]
FORBIDDEN_FOLDERS = ["", SOURCE, f"{SOURCE}/{ASSIGNMENT}", "submitted", ".dlcourse"]
# GET routes that map a path to a file; the Notebook pages and JupyterLab's
# tree are HTML shells that must not carry the file either.
ROUTES = [
    "api/contents/{}",
    "api/contents/{}?type=file&format=text",
    "api/contents/{}?type=notebook",
    "api/contents/{}?type=directory",
    "api/contents/{}/checkpoints",
    "files/{}",
    "files/{}?download=1",
    "view/{}",
    "nbconvert/html/{}",
    "nbconvert/script/{}",
    "nbconvert/notebook/{}",
    "nbconvert/markdown/{}?download=true",
    "lab/tree/{}",
    "tree/{}",
    "notebooks/{}",
    "edit/{}",
]
SHELLS = ("lab/tree/", "tree/", "notebooks/", "edit/")  # may answer 200, with no file in it


def paths(course: Path, target: str) -> list[str]:
    """The ways to ``target`` as paths (in a JSON body), not URLs."""
    return list(dict.fromkeys(urllib.parse.unquote(s) for s in spellings(course, target)))


def spellings(course: Path, target: str) -> list[str]:
    """URL paths, relative to the workspace's top, that lead to ``target``
    (relative to the course folder) if anything lets them."""
    up = f"../{target}"
    return [
        up,
        f"{ASSIGNMENT}/../../{target}",
        up.replace("..", "%2e%2e"),
        up.replace("..", "%2E%2E").replace("/", "%2F"),
        f"{ASSIGNMENT}/%2e%2e/%2e%2e/{target}",
        f"..%5c{target}",  # a backslash
        urllib.parse.quote(f"{course}/{target}"),  # absolute
        f"/{urllib.parse.quote(f'{course}/{target}', safe='')}",  # absolute, slashes encoded
        f"{ASSIGNMENT}/course/{target}",  # a relative link to the course folder
        f"absolute/{target}",  # an absolute link to it
    ]


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = course_copy(tmp_path_factory.mktemp("workspace"))
    appendix.build(course, answers=False)  # `dlcourse release --no-answers`
    layout = Layout.of(course)
    for relative in FORBIDDEN_FILES:
        path = course / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{SECRET} {relative}")
    # links a learner's code could make in the workspace
    (layout.release / "course").symlink_to("../..")
    (layout.workspace / "absolute").symlink_to(course)
    (layout.workspace / "leak.ipynb").symlink_to(f"../{SOURCE}/{ASSIGNMENT}/02_chain_rule.ipynb")
    (layout.workspace / "gradebook.db").symlink_to(layout.gradebook)
    return course


@pytest.fixture(scope="module")
def lab(course: Path) -> Iterator[Lab]:
    with running_lab(course) as lab:
        yield lab


def request(lab: Lab, method: str, path: str, body: object = None) -> tuple[int, str]:
    """``method path`` on the server exactly as written (no client tidies the
    path), redirects followed; the status and the body."""
    parts = urllib.parse.urlsplit(lab.url)
    for _ in range(5):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            connection.request(
                method,
                f"/{path}",
                body=None if body is None else json.dumps(body),
                headers={"Authorization": f"token {lab.token}"},
            )
            response = connection.getresponse()
            status, text = response.status, response.read().decode(errors="replace")
            location = response.getheader("Location")
        finally:
            connection.close()
        if status not in (301, 302, 303, 307, 308) or not location:
            return status, text
        path = urllib.parse.urlsplit(location)._replace(scheme="", netloc="").geturl().lstrip("/")
    raise AssertionError(f"{method} {path}: too many redirects")


def leaks(body: str) -> list[str]:
    return [mark for mark in (SECRET, *ANSWER_MARKS) if mark in body]


def test_the_workspace_holds_the_learners_notebooks_and_the_index(lab: Lab) -> None:
    status, body = request(lab, "GET", "api/contents")
    assert status == 200
    # Appendix A is withheld; the links out are not listed
    assert {item["name"] for item in json.loads(body)["content"]} == {ASSIGNMENT, "index.ipynb"}
    status, body = request(lab, "GET", f"api/contents/{ASSIGNMENT}")
    assert {item["name"] for item in json.loads(body)["content"]} == {
        "01_deep_learning.ipynb",
        "02_chain_rule.ipynb",
        "03_backpropagation.ipynb",
    }
    for path, text in (
        (f"api/contents/{ASSIGNMENT}/02_chain_rule.ipynb", "YOUR CODE HERE"),
        ("files/index.ipynb", "# Index"),
        (f"nbconvert/html/{ASSIGNMENT}/01_deep_learning.ipynb", "1.1 Deep Learning"),
    ):
        status, body = request(lab, "GET", path)
        assert status == 200 and text in body and not leaks(body), path


def test_no_route_reaches_a_file_outside_the_workspace(lab: Lab, course: Path) -> None:
    reached = []
    targets = [
        (route, path)
        for target in FORBIDDEN_FILES + FORBIDDEN_FOLDERS
        for path in spellings(course, target)
        for route in ROUTES
    ]
    targets += [(route, link) for link in ("leak.ipynb", "gradebook.db") for route in ROUTES]
    for route, path in targets:
        url = route.format(path)
        status, body = request(lab, "GET", url)
        if route.endswith("/checkpoints") and body == "[]":
            continue  # no checkpoint of a file that is not there (..\\x names a file here)
        if leaks(body) or (status < 400 and not url.startswith(SHELLS)):
            reached.append(f"{status} {url}")
    assert not reached, "reached from the learner's JupyterLab:\n" + "\n".join(reached)


def files(folder: Path) -> list[Path]:
    """The files below ``folder``, links neither followed nor listed."""
    found = []
    for parent, _, names in os.walk(folder):
        found += [Path(parent, n) for n in names if not Path(parent, n).is_symlink()]
    return found


def outside(layout: Layout) -> dict[Path, int]:
    """The course's files outside the workspace (the lab's own settings aside),
    with the times they were changed."""
    return {
        path: path.stat().st_mtime_ns
        for path in files(layout.root)
        if not path.is_relative_to(layout.workspace)
        and not path.is_relative_to(layout.jupyter_config)
    }


def test_nothing_outside_the_workspace_is_copied_validated_or_written(
    lab: Lab, course: Path
) -> None:
    layout = Layout.of(course)
    workspace = layout.workspace
    before = outside(layout)
    reached = []
    for target in FORBIDDEN_FILES:
        for path in [*paths(course, target), "leak.ipynb"]:
            status, answer = request(lab, "POST", f"api/contents/{ASSIGNMENT}", {"copy_from": path})
            if status < 400 or leaks(answer):
                reached.append(f"{status} copy from {path}")
            status, answer = request(lab, "POST", "assignments/validate", {"path": path})
            if leaks(answer) or (status < 400 and json.loads(answer)["success"]):
                reached.append(f"{status} validate {path}")
    writes = [
        ("PUT", url, {"type": "file", "format": "text", "content": "x"})
        for url in spellings(course, "planted.txt")
    ]
    writes += [("PATCH", "index.ipynb", {"path": path}) for path in paths(course, "planted.ipynb")]
    writes += [
        ("POST", url, {"type": "file"}) for f in FORBIDDEN_FOLDERS for url in spellings(course, f)
    ]
    for target in FORBIDDEN_FILES:
        for url in spellings(course, target):
            writes.append(("DELETE", url, None))
            writes.append(("POST", f"{url}/checkpoints", None))
            writes.append(("POST", f"{url}/checkpoints/checkpoint", None))  # restore
            writes.append(("DELETE", f"{url}/checkpoints/checkpoint", None))
    for method, url, body in writes:
        status, _ = request(lab, method, f"api/contents/{url}", body)
        if status < 400:
            reached.append(f"{status} {method} {url} {body}")
    assert not reached, "allowed in the learner's JupyterLab:\n" + "\n".join(reached)
    assert outside(layout) == before, "files outside the workspace were written or removed"
    assert sorted(p.name for p in files(workspace) if p.suffix == ".ipynb") == [
        "01_deep_learning.ipynb",
        "02_chain_rule.ipynb",
        "03_backpropagation.ipynb",
        "index.ipynb",
    ], "a copy of a file from outside was made, or the index renamed"


def kernel_folders() -> dict[str, Path]:
    """Each running kernel's working folder, by kernel id (from /proc)."""
    found = {}
    for process in Path("/proc").iterdir():
        try:
            command = (process / "cmdline").read_bytes().split(b"\0")
            cwd = (process / "cwd").resolve(strict=True)
        except OSError:
            continue
        for word in command:
            name = Path(os.fsdecode(word)).name
            if name.startswith("kernel-") and name.endswith(".json"):
                found[name.removeprefix("kernel-").removesuffix(".json")] = cwd
    return found


def test_kernels_start_only_in_the_workspace(lab: Lab, course: Path) -> None:
    if not Path("/proc/self/cwd").exists():
        pytest.skip("reads the kernels' working folders from /proc (Linux)")
    workspace = Layout.of(course).workspace
    started = []
    try:
        status, body = request(
            lab,
            "POST",
            "api/sessions",
            {
                "path": f"{ASSIGNMENT}/01_deep_learning.ipynb",
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        assert status == 201, body
        started.append(json.loads(body)["kernel"]["id"])
        assert kernel_folders()[started[0]] == workspace / ASSIGNMENT  # as today, by the notebook
        for target in ("", SOURCE):
            for path in paths(course, target):
                for url, body in [
                    ("api/kernels", {"name": "python3", "path": path}),
                    (
                        "api/sessions",
                        {"path": path, "type": "notebook", "kernel": {"name": "python3"}},
                    ),
                ]:
                    status, answer = request(lab, "POST", url, body)
                    if status < 400:
                        model = json.loads(answer)
                        started.append(model.get("kernel", model)["id"])
        folders = kernel_folders()
        outside = {k: folders[k] for k in started if not folders[k].is_relative_to(workspace)}
        assert not outside, f"kernels started outside the workspace: {outside}"
    finally:
        for kernel in started:
            request(lab, "DELETE", f"api/kernels/{kernel}")


def test_no_terminal_no_instructor_tools_no_file_reading_export(lab: Lab) -> None:
    for method, url in [
        ("GET", "api/terminals"),
        ("POST", "api/terminals"),
        ("GET", "formgrader"),
        ("GET", "formgrader/api/assignments"),
        ("GET", "formgrader/gradebook/ch01/02_chain_rule"),
        ("GET", "assignments"),
        ("GET", "courses"),
        ("GET", f"nbconvert/latex/{ASSIGNMENT}/01_deep_learning.ipynb"),
        ("GET", f"nbconvert/pdf/{ASSIGNMENT}/01_deep_learning.ipynb"),
        ("GET", f"nbconvert/webpdf/{ASSIGNMENT}/01_deep_learning.ipynb"),
    ]:
        status, body = request(lab, method, url, {} if method == "POST" else None)
        assert status >= 400 and not leaks(body), (method, url, status)
    status, body = request(
        lab, "POST", "assignments/validate", {"path": f"{ASSIGNMENT}/02_chain_rule.ipynb"}
    )
    assert status == 200 and "NotImplementedError" in body, "Validate works in the workspace"


def test_the_instructors_lab_has_the_course_formgrader_and_a_terminal(course: Path) -> None:
    with running_lab(course, "--instructor") as lab:
        status, body = request(
            lab, "GET", f"api/contents/{SOURCE}/{ASSIGNMENT}/02_chain_rule.ipynb"
        )
        assert status == 200 and "### BEGIN SOLUTION" in body
        assert request(lab, "GET", f"api/contents/{WITHHELD_APPENDIX}")[0] == 200
        assert request(lab, "GET", "api/terminals")[0] == 200
        status, body = request(lab, "GET", "formgrader/api/students")
        assert status == 200 and SECRET in body
