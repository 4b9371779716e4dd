"""The speed of a training step, peers side by side in one run.

Every implementation trains the same network (ReLU MLP, softmax
cross-entropy, plain SGD) from the same initial weights on the same batch;
the suite first checks that their losses agree, then times them interleaved
(A B C A B C ...) and reports medians, so that drift on a shared machine
affects all of them alike.  Ratios are dlcourse's time over each peer's.
"""

from __future__ import annotations

import compileall
import gc
import math
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

import dlcourse
from dlcourse import nn
from dlcourse.course.layout import Layout
from dlcourse.gradcheck import GradcheckError, check_module, gradcheck
from dlcourse.optim import SGD

LR = 0.01


@dataclass
class Row:
    name: str
    sizes: list[int]
    batch: int
    micrograd: bool = False


ROWS = [
    Row("64-16-16-10, batch 8", [64, 16, 16, 10], 8, micrograd=True),
    Row("64-128-128-10, batch 32", [64, 128, 128, 10], 32),
    Row("64-128-128-10, batch 256", [64, 128, 128, 10], 256),
    Row("50 layers of width 32, batch 64", [64] + [32] * 49 + [10], 64),
    Row("784-1024-1024-10, batch 512", [784, 1024, 1024, 10], 512),
]


def problem(
    row: Row, dtype: type
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = [
        (rng.standard_normal((m, n)) * math.sqrt(2 / m), np.zeros(n))
        for m, n in zip(row.sizes, row.sizes[1:])
    ]
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in params]
    x = rng.standard_normal((row.batch, row.sizes[0])).astype(dtype)
    y = rng.integers(0, row.sizes[-1], row.batch)
    return params, x, y


# ------------------------------------------------------------- the peers
def dlcourse_step(params: list, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    layers: list[nn.Module] = []
    for i, (W, b) in enumerate(params):
        linear = nn.Linear(*W.shape, rng=0, dtype=W.dtype)
        linear.weight.data[...] = W
        linear.bias.data[...] = b
        layers += [linear] if i == len(params) - 1 else [linear, nn.ReLU()]
    model = nn.Sequential(*layers)
    optimizer = SGD(model.parameters(), lr=LR)
    inputs = dlcourse.Tensor(x)

    def step() -> float:
        optimizer.zero_grad()
        loss = nn.cross_entropy(model(inputs), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def numpy_step(params: list, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    """The same step written by hand: the same numpy calls as dlcourse's
    (and so the same BLAS calls), no graph, nothing checked."""
    params = [(W.copy(), b.copy()) for W, b in params]
    n = len(x)
    rows = np.arange(n)

    def step() -> float:
        inputs, pre = [], []
        h = x
        for i, (W, b) in enumerate(params):
            inputs.append(h)
            h = h @ W
            h += b
            if i < len(params) - 1:
                pre.append(h)
                h = np.maximum(h, 0.0)
        shifted = h - h.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = (np.log(total[:, 0]) - shifted[rows, y]).sum() / n
        g = exp / total
        g[rows, y] -= 1.0
        g *= 1 / n
        for i in reversed(range(len(params))):
            W, b = params[i]
            dW, db = inputs[i].T @ g, g.sum(axis=0)
            if i:
                g = (g @ W.T) * (pre[i - 1] > 0)
            W -= LR * dW
            b -= LR * db
        return float(loss)

    return step


def torch_step(params: list, x: np.ndarray, y: np.ndarray) -> Callable[[], float] | None:
    try:
        import torch
    except ImportError:
        return None
    ws = [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in params
    ]
    flat = [p for pair in ws for p in pair]
    optimizer = torch.optim.SGD(flat, lr=LR)
    inputs, labels = torch.tensor(x), torch.tensor(y)

    def step() -> float:
        optimizer.zero_grad()
        h = inputs
        for i, (W, b) in enumerate(ws):
            h = torch.addmm(b, h, W)
            if i < len(ws) - 1:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def micrograd_step(params: list, x: np.ndarray, y: np.ndarray) -> Callable[[], float] | None:
    try:
        from micrograd.engine import Value
    except ImportError:
        return None

    def exp(v: Value) -> Value:
        out = Value(math.exp(v.data), (v,), "exp")

        def backward() -> None:
            v.grad += out.data * out.grad

        out._backward = backward
        return out

    def log(v: Value) -> Value:
        out = Value(math.log(v.data), (v,), "log")

        def backward() -> None:
            v.grad += out.grad / v.data

        out._backward = backward
        return out

    ws = [
        ([[Value(float(w)) for w in row] for row in W], [Value(float(c)) for c in b])
        for W, b in params
    ]
    flat = [v for W, b in ws for v in [*(w for row in W for w in row), *b]]

    def step() -> float:
        for v in flat:
            v.grad = 0.0
        total = Value(0.0)
        for sample, label in zip(x, y):
            h = [Value(float(v)) for v in sample]
            for i, (W, b) in enumerate(ws):
                h = [sum((h[k] * W[k][j] for k in range(len(h))), b[j]) for j in range(len(b))]
                if i < len(ws) - 1:
                    h = [v.relu() for v in h]
            top = max(v.data for v in h)
            total = total + log(sum((exp(v - top) for v in h), Value(0.0))) - (h[label] - top)
        loss = total * (1.0 / len(x))
        loss.backward()
        for v in flat:
            v.data -= LR * v.grad
        return loss.data

    return step


# --------------------------------------------------------------- timing
def interleaved(
    steps: dict[str, Callable[[], float]], budget: float, block: int = 10
) -> dict[str, float]:
    """Median seconds per call of each step within about ``budget`` seconds in
    all: blocks of ``block`` calls of one step, the steps' blocks interleaved
    (A B C A B C ...), so that drift on a shared machine affects all alike,
    while each step runs warm, as in a training loop, rather than just after
    another library has flushed the caches: every block starts with one call
    that is not timed."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    deadline = time.perf_counter() + budget
    rounds = 0
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 2000):
        for name, step in steps.items():
            step()  # warm up, untimed
            start = time.perf_counter()
            for _ in range(block):
                step()
            samples[name].append((time.perf_counter() - start) / block)
        rounds += 1
    return {name: statistics.median(values) for name, values in samples.items()}


def losses_agree(row: Row, dtype: type, include_micrograd: bool) -> dict[str, float]:
    """First losses of every peer on fresh copies; raises if they disagree."""
    first = {}
    makers = {"dlcourse": dlcourse_step, "numpy": numpy_step, "torch": torch_step}
    if include_micrograd:
        makers["micrograd"] = micrograd_step
    for name, make in makers.items():
        params, x, y = problem(row, dtype)
        step = make(params, x, y)
        if step is not None:
            first[name] = step()
    tolerance = 1e-4 if dtype == np.float32 else 1e-9
    reference = first["numpy"]
    for name, value in first.items():
        if abs(value - reference) > tolerance * max(1.0, abs(reference)):
            raise AssertionError(
                f"{row.name}: {name}'s loss {value} differs from numpy's {reference}"
            )
    return first


def time_row(row: Row, dtype: type, budget: float) -> dict[str, float]:
    losses_agree(row, dtype, row.micrograd and dtype == np.float64)
    steps = {}
    for name, make in {"dlcourse": dlcourse_step, "numpy": numpy_step, "torch": torch_step}.items():
        params, x, y = problem(row, dtype)
        step = make(params, x, y)
        if step is not None:
            steps[name] = step
    times = interleaved(steps, budget)
    times["cycles"] = float(cyclic_garbage(steps["dlcourse"]))
    if row.micrograd and dtype == np.float64:
        params, x, y = problem(row, dtype)
        step = micrograd_step(params, x, y)
        if step is not None:
            times["micrograd"] = interleaved({"micrograd": step}, 0.0, block=1)["micrograd"]
    return times


def products_alone(row: Row, dtype: type, budget: float) -> dict[str, float] | None:
    """Median seconds of only the matrix products of one training step of ``row``
    (each layer's forward product, its dW and, but for the first layer, its dx) in
    numpy and in PyTorch: what each library's BLAS takes, whatever the engine
    around it does.  None without torch."""
    try:
        import torch
    except ImportError:
        return None
    params, x, _ = problem(row, dtype)
    hs = [x]
    for W, _ in params:
        hs.append(np.maximum(hs[-1] @ W, 0.0))  # each layer's input and output
    layers = [(hs[i], W, np.ones_like(hs[i + 1])) for i, (W, _) in enumerate(params)]
    tlayers = [tuple(torch.from_numpy(a) for a in layer) for layer in layers]

    def numpy_products() -> float:
        for i, (h, W, g) in enumerate(layers):
            dx = g @ W.T if i else None
            _ = h @ W, h.T @ g, dx
        return 0.0

    def torch_products() -> float:
        for i, (h, W, g) in enumerate(tlayers):
            dx = torch.mm(g, W.t()) if i else None
            _ = torch.mm(h, W), torch.mm(h.t(), g), dx
        return 0.0

    return interleaved({"numpy": numpy_products, "torch": torch_products}, budget)


def cyclic_garbage(step: Callable[[], float], calls: int = 20) -> int:
    """Objects that only the garbage collector could free after ``calls`` steps
    (0 when every graph is freed by reference counting)."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(calls):
            step()
        return gc.collect()
    finally:
        gc.enable()


def gradcheck_times(parameters: int = 10_000) -> dict[str, float]:
    """Seconds for check_module in each mode on an MLP of about ``parameters`` parameters."""
    model = nn.MLP([32, 96, 96, 10], activation="tanh", rng=0)
    X = np.random.default_rng(0).standard_normal((16, 32))
    y = np.arange(16) % 10
    out = {"parameters": float(model.num_parameters())}
    for mode in ("fast", "sparse", "full"):
        start = time.perf_counter()
        check_module(model, lambda m: nn.cross_entropy(m(X), y), mode=mode)
        out[mode] = time.perf_counter() - start
    return out


def locate_time(n: int = 300) -> dict[str, float]:
    """Seconds for fast gradcheck to name the one wrong element of an n x n input
    (x * w, whose backward for x is off by 5 at one element), and its evaluations."""
    rng = np.random.default_rng(0)
    x = dlcourse.Tensor(rng.standard_normal((n, n)), requires_grad=True)
    w = dlcourse.Tensor(rng.standard_normal((n, n)), requires_grad=True)

    def wrong(x: dlcourse.Tensor, w: dlcourse.Tensor) -> dlcourse.Tensor:
        def dx(g: np.ndarray) -> np.ndarray:
            d = g * w.data
            d[n // 3, n // 7] += 5.0
            return d

        out = dlcourse.Tensor.from_op(x.data * w.data, (x, w), (dx, lambda g: g * x.data), "x*w")
        return out.sum()

    start = time.perf_counter()
    try:
        gradcheck(wrong, [x, w], mode="fast")
    except GradcheckError as error:
        if error.index != (n // 3, n // 7):
            raise AssertionError(
                f"fast gradcheck named {error.index}, not the planted element"
            ) from error
        return {
            "parameters": float(x.size),
            "seconds": time.perf_counter() - start,
            "evaluations": float(error.evaluations),
        }
    raise AssertionError("fast gradcheck passed a wrong gradient")


def import_times(repeat: int = 11) -> dict[str, float]:
    """Median wall time of a fresh interpreter doing nothing, importing numpy and
    importing dlcourse, the three interleaved so that drift affects them alike.

    Both are timed from compiled bytecode: pip compiles numpy's when it installs
    it, and dlcourse's is compiled here first, as Python's first import would do
    (unless PYTHONDONTWRITEBYTECODE is set, when every import compiles anew)."""
    compileall.compile_dir(Path(dlcourse.__file__).parent, quiet=1)
    commands = {"python": "pass", "numpy": "import numpy", "dlcourse": "import dlcourse"}
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, code in commands.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            runs[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in runs.items()}


def notebook_times(root: Path) -> dict[str, float]:
    """Seconds to run each solution notebook top to bottom (nbclient)."""
    import nbformat
    from nbclient import NotebookClient

    from dlcourse.course.authoring import kernel_config

    out = {}
    for path in sorted((Layout(root).solutions).glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        start = time.perf_counter()
        NotebookClient(
            nb,
            config=kernel_config(),
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        out[path.name] = time.perf_counter() - start
    return out


def call_costs(repeat: int = 7) -> dict[str, float]:
    """What a small numpy call and a line of Python cost on this machine, in µs
    (the median of ``repeat`` timings): the per-call work that dominates the
    small rows, to tell one machine's run from another's."""
    a = np.ones(128)
    timings = {
        "numpy a * 2 on 128 elements": lambda: a * 2,
        "python sum(range(1000))": lambda: sum(range(1000)),
    }
    calls = 20_000
    return {
        name: statistics.median(timeit.repeat(f, number=calls, repeat=repeat)) / calls * 1e6
        for name, f in timings.items()
    }


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = f"{names[0]} x {len(names)}" if names else cpu
    info = {
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dlcourse": dlcourse.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = "; ".join(
            f"{p['internal_api']} {p.get('version')} ({p['num_threads']} threads)"
            for p in threadpool_info()
        )
    except ImportError:
        config = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        info["blas"] = f"{config.get('name', '?')} {config.get('version', '')}".strip()
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = "not installed (pip install torch==2.13.0 for the CPU build)"
    try:
        info["micrograd"] = version("micrograd")
    except PackageNotFoundError:
        info["micrograd"] = "not installed"
    return info
