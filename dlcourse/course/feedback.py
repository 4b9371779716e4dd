"""Feedback that shows a failing test's message, never the hidden test's code.

nbgrader's ClearHiddenTests removes hidden tests from a test cell's source,
but the cell's error output still carries Python's traceback, which quotes
the lines around the failure: the hidden test itself. This preprocessor,
run by ``nbgrader generate_feedback`` (see nbgrader_config.py), keeps only
the exception's type and message in graded cells.
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool


class ShortTracebacks(Preprocessor):
    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output['ename']}: {output['evalue']}"]
        return cell, resources
