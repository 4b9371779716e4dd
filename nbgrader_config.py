"""nbgrader's configuration for the course; the repository is the course directory.

solutions/ch01/ holds the instructor notebooks (nbgrader's "source"),
notebooks/ch01/ the learner versions that `nbgrader generate_assignment ch01`
(or `dlcourse release`) makes from them.
"""

from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from dlcourse.course.feedback import ShortTracebacks
from dlcourse.course.layout import POLICY
from dlcourse.course.semester.exchange_record import recorded
from dlcourse.course.semester.late import LateNote

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
root = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.root = str(root)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# nbgrader's exchange: the one `dlcourse exchange release --exchange DIR` recorded
# (.dlcourse/exchange-root), else the course's own folder for a class on one account.
c.Exchange.root = str(recorded(root) or root / ".dlcourse" / "exchange")

# Grading: a notebook gets 60 s per cell, deleted test cells are put back, and
# feedback never shows hidden tests, not even quoted in a traceback.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.OverwriteCells.add_missing_cells = True
c.GenerateFeedback.preprocessors = [
    GetGrades,
    LateNote,
    CSSHTMLHeaderPreprocessor,
    ClearHiddenTests,
    ShortTracebacks,
]

# Deadlines (policy.toml, see dlcourse/course/semester/policy.py): autograde's
# AssignLatePenalties asks the course's plugin for each notebook's penalty, feedback
# opens with what was applied and why, and grades.csv has it as a last column.
c.AssignLatePenalties.plugin_class = "dlcourse.course.semester.late.LatePolicyPlugin"
# The LMS exports refuse penalties computed for a due date the policy no longer gives.
for name in ("LatePolicyPlugin", "LateNote", "PolicyCsvExportPlugin", "CanvasExportPlugin",
             "MoodleExportPlugin"):
    c[name].policy_file = str(root / POLICY)
c.ExportApp.plugin_class = "dlcourse.course.semester.late.PolicyCsvExportPlugin"

# Student HTML never runs (issue 11).  The grader makes every autograded notebook
# inert (dlcourse/course/grading/inert.py) before formgrader or feedback renders
# it; in depth, the exporter both use sanitises too.  nbgrader's templates render
# markdown cells with markdown2html and ignore sanitize_html, and nbconvert's own
# clean_html keeps too little for honest output (no <p>, <th> or <img>), so both
# filters are the course's: the same safelist, leaving inert HTML unchanged.
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {
    "clean_html": "dlcourse.course.grading.inert.clean_html",
    "markdown2html": "dlcourse.course.grading.inert.markdown2html",
}
