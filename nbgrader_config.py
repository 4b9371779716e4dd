"""nbgrader's configuration for the course; the repository is the course directory.

solutions/ch01/ holds the instructor notebooks (nbgrader's "source"),
notebooks/ch01/ the learner versions that `nbgrader generate_assignment ch01`
(or `dlcourse release`) makes from them.
"""

from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from dlcourse.course.feedback import ShortTracebacks

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
root = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.root = str(root)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.Exchange.root = str(root / ".dlcourse" / "exchange")

# Grading: a notebook gets 60 s per cell, deleted test cells are put back, and
# feedback never shows hidden tests, not even quoted in a traceback.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.OverwriteCells.add_missing_cells = True
c.GenerateFeedback.preprocessors = [
    GetGrades,
    CSSHTMLHeaderPreprocessor,
    ClearHiddenTests,
    ShortTracebacks,
]
