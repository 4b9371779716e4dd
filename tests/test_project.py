"""The project's promises about itself: packaging, environment, README, quiet imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_lists_what_pyproject_lists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {  # conda has no environment markers: "tomli==2.5.0; python_version < '3.11'"
        r.split(";")[0].strip()
        for r in project["dependencies"] + extras["course"] + extras["hub"] + extras["test"]
        if _name(r) != "dlcourse"
    }
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {
        d for d in env["dependencies"] if isinstance(d, str) and _name(d) not in ("python", "pip")
    }
    assert conda == wanted, (
        f"only in environment.yml: {sorted(conda - wanted)}; only in pyproject.toml: "
        f"{sorted(wanted - conda)}"
    )
    assert {"pip": ["-e ."]} in env["dependencies"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and _name(d) == "python")
    assert python == "python" + project["requires-python"]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(\./course \w+)\n```", readme)
    assert commands[:2] == ["./course lab", "./course test"]
    assert "./course test" in (ROOT / ".ci" / "run").read_text()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_import_is_light() -> None:
    result = run_python(
        "import sys, dlcourse; heavy = [m for m in ('matplotlib', 'tqdm', 'nbgrader', "
        "'dlcourse.course', 'dlcourse.plot') if m in sys.modules]; print(heavy)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


def test_normal_use_writes_nothing_to_stderr() -> None:
    result = run_python(
        "import numpy as np, dlcourse as dl\n"
        "from dlcourse import nn, optim\n"
        "model = nn.MLP([2, 16, 2], rng=0); opt = optim.Adam(model.parameters(), lr=0.01)\n"
        "X = np.random.default_rng(0).standard_normal((64, 2)); y = (X[:, 0] > 0).astype(int)\n"
        "for _ in range(20):\n"
        "    opt.zero_grad(); nn.cross_entropy(model(X), y).backward(); opt.step()\n"
        "x = dl.Tensor([-1e3, 0.0, 1e3], requires_grad=True)\n"
        "for f in (x.sigmoid, x.exp, x.log, x.tanh, x.relu, (1 / x).exp):\n"
        "    f().sum().backward()\n"
        "(x ** 0.5).sum().backward()\n"
        "a = dl.Tensor([0.5, 1.0], requires_grad=True)\n"
        "dl.gradcheck.gradcheck(lambda a: (a * a).tanh(), [a])\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
