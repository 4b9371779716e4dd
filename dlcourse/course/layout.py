"""The course's folders, files and names, defined once.

The repository is an nbgrader course directory. Every other module (release,
Appendix A, the book, grading, the command line, the tests and the
benchmarks) asks :class:`Layout` where things are instead of joining paths
by hand, and ``nbgrader_config.py`` reads its folder names from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSIGNMENT = "ch01"
CONFIG = "nbgrader_config.py"
SOURCE = "solutions"  # nbgrader's source directory: instructor notebooks with the hidden tests
RELEASE = "notebooks"  # nbgrader's release directory: what learners get
POLICY = "policy.toml"  # the deadline, extensions and late schedule (semester/policy.py)
LMS_GRADES = "grades-{}.csv"  # dlcourse export's file for an LMS (canvas, moodle)
STATE = ".dlcourse"  # the course's own state: resume markers, caches, Jupyter configuration
EXCHANGE_RECORD = Path(STATE) / "exchange-root"  # the exchange the course was released to
# The learner's JupyterLab opens the release directory and reaches nothing above it.
WORKSPACE = RELEASE
INDEX = Path(RELEASE) / "index.ipynb"  # the index, relative to the course folder
# Appendix A, released in the learners' workspace (self-study, or after the deadline), or
# withheld in the instructor's folder (`dlcourse release --no-answers`): there is one at a time.
APPENDIX = Path(RELEASE) / "appendix_a.ipynb"
WITHHELD_APPENDIX = Path(SOURCE) / "appendix_a.ipynb"


@dataclass(frozen=True)
class Layout:
    """Where everything is in the course folder ``root``."""

    root: Path

    @classmethod
    def of(cls, root: Path) -> Layout:
        return cls(Path(root).resolve())

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def sources(self) -> Path:
        """The notebooks' reviewable sources (``solutions/src/*.py``, Jupytext's percent format)."""
        return self.root / SOURCE / "src"

    @property
    def index_terms(self) -> Path:
        """The index's terms, their other forms and cross-references."""
        return self.sources / "index.toml"

    @property
    def solutions(self) -> Path:
        return self.root / SOURCE / ASSIGNMENT

    @property
    def release(self) -> Path:
        return self.root / RELEASE / ASSIGNMENT

    @property
    def workspace(self) -> Path:
        """The learner's JupyterLab's root: their notebooks, the index and, when
        released, Appendix A."""
        return self.root / WORKSPACE

    @property
    def answers_released(self) -> bool:
        """Appendix A is in the learners' workspace unless the instructor withheld
        it; a course never released yet releases it."""
        return not (self.root / WITHHELD_APPENDIX).exists()

    @property
    def appendix(self) -> Path:
        """Where Appendix A is now: released or withheld."""
        return self.root / (APPENDIX if self.answers_released else WITHHELD_APPENDIX)

    @property
    def index(self) -> Path:
        return self.root / INDEX

    @property
    def submitted_root(self) -> Path:
        return self.root / "submitted"

    def submitted(self, student: str) -> Path:
        return self.submitted_root / student / ASSIGNMENT

    @property
    def autograded_root(self) -> Path:
        return self.root / "autograded"

    def autograded(self, student: str) -> Path:
        return self.autograded_root / student / ASSIGNMENT

    @property
    def feedback_root(self) -> Path:
        return self.root / "feedback"

    def feedback(self, student: str) -> Path:
        return self.feedback_root / student / ASSIGNMENT

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def policy(self) -> Path:
        return self.root / POLICY

    @property
    def grades_csv(self) -> Path:
        return self.root / "grades.csv"

    def lms_grades(self, lms: str) -> Path:
        """Grades in the shape an LMS imports (``dlcourse export --format LMS``)."""
        return self.root / LMS_GRADES.format(lms)

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def markers(self) -> Path:
        """One file per graded student: the digests of what was graded."""
        return self.state / "graded"

    @property
    def templates(self) -> Path:
        """Empty gradebooks that know the assignment, by the digest of its sources."""
        return self.state / "templates"

    @property
    def exchange(self) -> Path:
        return self.state / "exchange"

    @property
    def exchange_record(self) -> Path:
        """The exchange `dlcourse exchange release --exchange DIR` recorded
        (semester/exchange_record.py), which nbgrader_config.py reads."""
        return self.root / EXCHANGE_RECORD

    @property
    def jupyter_config(self) -> Path:
        """The learner's JupyterLab's settings and saved layouts."""
        return self.state / "jupyter"

    @property
    def instructor_jupyter_config(self) -> Path:
        """The instructor's, kept apart (their layouts name solutions and students)."""
        return self.state / "jupyter-instructor"

    @property
    def book(self) -> Path:
        return self.root / "build" / "book"

    def private(self) -> list[Path]:
        """What a student's code must never read: solutions and hidden tests,
        every submission and grade, and the course's state."""
        return [
            self.root / SOURCE,
            self.submitted_root,
            self.root / "autograded",
            self.root / "feedback",
            self.gradebook,
            self.grades_csv,
            self.policy,
            self.state,
        ]

    def released_notebooks(self) -> list[Path]:
        return sorted(self.release.glob("*.ipynb"))
