"""Answers a human should look at: gradients that are not backpropagation.

An exercise that asks for a gradient (its answer cell is declared with
``gradient=True`` in the notebook's source, which puts
``{"dlcourse": {"gradient": true}}`` in the released cell's metadata) must be
computed by hand, the chain rule applied backwards. An answer that hands the
work to the library's engine (``dl.Tensor(...).backward()``, ``nn``), its
numerical checks (``numerical_grad``, ``gradcheck``), another autodiff
library, or code it builds at run time (``exec``, ``__import__``) may pass
the tests, so grading marks it for manual grading with the reason, and
formgrader shows it.

Only the code is read (its syntax tree); nothing is run. The tests' cost
checks (a backward pass on inputs too large for finite differences) are the
other half of the judgement.
"""

from __future__ import annotations

import ast
import symtable
from collections.abc import Iterator

import nbformat

AUTODIFF = {"dlcourse", "torch", "jax", "autograd", "tensorflow", "mygrad", "micrograd"}
DYNAMIC = {"exec", "eval", "compile", "__import__", "importlib", "getattr", "globals", "vars",
           "modules"}  # fmt: skip
HARMLESS = {"data", "plot", "CheckError", "GradcheckError", "assert_close"}  # compute no gradient
_EMPTY = ast.Module(body=[], type_ignores=[])


def _nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _defined(tree: ast.Module) -> set[str]:
    """Top-level names a cell defines (functions, classes, assignments, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _free(source: str) -> set[str]:
    """The notebook's global names a cell reads: at its top level, and as
    globals in its functions, classes, lambdas and comprehensions (not their
    parameters or local variables)."""
    try:
        tables = [symtable.symtable(source, "<cell>", "exec")]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names = set()
    while tables:
        table = tables.pop()
        top = table.get_type() == "module"
        for symbol in table.get_symbols():
            if symbol.is_referenced() and (top or symbol.is_global()):
                names.add(symbol.get_name())
        tables += table.get_children()
    return names


def library_names(released: nbformat.NotebookNode) -> set[str]:
    """The names the released setup cells bind to the library (``dl``,
    ``numerical_grad``...), harmless ones left out."""
    names = set()
    for cell in released.cells:
        info = _nbgrader(cell)
        if cell.cell_type != "code" or not info.get("locked") or info.get("grade"):
            continue
        for node in ast.walk(_parse(cell.source) or _EMPTY):
            if isinstance(node, ast.Import):
                names |= {
                    (a.asname or a.name).split(".")[0]
                    for a in node.names
                    if a.name.split(".")[0] in AUTODIFF
                }
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in AUTODIFF:
                names |= {a.asname or a.name for a in node.names}
    return names - HARMLESS


def _uses(tree: ast.Module, library: set[str]) -> Iterator[str]:
    """What in ``tree`` computes a gradient for the student, described."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for module in modules:
                if module.split(".")[0] in AUTODIFF:
                    yield f"imports {module}"
        elif isinstance(node, ast.Attribute) and node.attr == "modules":
            yield "reaches modules through sys.modules"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in library and node.attr not in HARMLESS:
                yield f"uses {node.value.id}.{node.attr}"
        elif isinstance(node, ast.Name) and node.id in DYNAMIC:
            yield f"runs code it builds at run time ({node.id})"
    qualified = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
    }  # names used as `name.attribute`, judged above by their attribute
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in library and id(node) not in qualified:
            yield f"uses {node.id}"


def needs_review(nb: nbformat.NotebookNode, released: nbformat.NotebookNode) -> dict[str, str]:
    """Test cell grade id -> why the gradient answer it grades needs a human.

    A student cell concerns a gradient exercise if it is that exercise's
    answer cell or defines one of the names the exercise's answer defines."""
    exercises: dict[str, set[str]] = {}  # gradient answer's grade id -> the names it defines
    for cell in released.cells:
        if cell.get("metadata", {}).get("dlcourse", {}).get("gradient") and _nbgrader(cell).get(
            "solution"
        ):
            exercises[_nbgrader(cell)["grade_id"]] = _defined(_parse(cell.source) or _EMPTY)
    if not exercises:
        return {}
    library = library_names(released)
    locked = {_nbgrader(c)["grade_id"] for c in released.cells if _nbgrader(c).get("locked")}
    course = {c.source for c in released.cells if c.cell_type == "code"}  # as released
    cells = []  # the student's code cells: (index, grade id, uses, names defined, names read)
    for index, cell in enumerate(nb.cells):
        grade_id = _nbgrader(cell).get("grade_id")
        if cell.cell_type != "code" or grade_id in locked or cell.source in course:
            continue
        tree = _parse(cell.source)
        if tree is not None:
            uses = sorted(set(_uses(tree, library)))
            cells.append((index, grade_id, uses, _defined(tree), _free(cell.source)))
    found: dict[str, str] = {}
    for answer, names in exercises.items():
        for index, uses in _making(answer, names, cells):
            found.setdefault(
                f"test_{answer}",
                f"the answer to {answer} (cell {index}) {', '.join(uses)}: a gradient the "
                "library or finite differences compute is not backpropagation by hand; "
                "check it and set the score",
            )
    return found


def _making(answer: str, names: set[str], cells: list[tuple]) -> Iterator[tuple[int, list[str]]]:
    """(index, uses) of the cells that make the answer and use the library: its
    own cell, those defining its names and, again and again, those defining
    a name that one of them reads (a helper cell's ``T = dl.Tensor``)."""
    wanted, reached = set(names), set()
    grew = True
    while grew:
        grew = False
        for index, grade_id, _, defined, read in cells:
            if index not in reached and (grade_id == answer or defined & wanted):
                reached.add(index)
                wanted |= read
                grew = True
    for index, _, uses, _, _ in cells:
        if index in reached and uses:
            yield index, uses
