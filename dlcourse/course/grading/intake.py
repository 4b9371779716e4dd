"""Intake: finding the submissions, reading them safely, and filing LMS downloads.

Everything here reads what a student controls (their notebooks, the files and
folders next to them, the archives an LMS hands out), so none of it is trusted:

- **Links are never followed.** Every file and folder under ``submitted/`` is
  opened relative to its parent's descriptor with ``O_NOFOLLOW`` (and
  ``O_NONBLOCK``, so that a named pipe cannot block the grader), and what was
  opened is checked with ``fstat``. A symbolic link, a hard link (a second
  name for a file kept elsewhere: the solutions, the gradebook) and anything
  but a regular file are refused with a message; a link swapped in between
  two checks fails the last one, made on the open descriptor.
- **Malformed JSON costs only its notebook.** The JSON's nesting and number of
  values are measured before it is parsed, without recursion, so the parser
  never recurses past :data:`MAX_DEPTH` nor builds millions of objects. Every
  way a file can fail to be a notebook of this assignment is a
  :class:`Refused` with a one-line message, never an exception that stops
  the class.
- **Stored outputs are not the student's fault.** Grading runs the notebook
  again, so its outputs, execution counts and saved widget state are
  stripped first (as nbgrader's ClearOutput does) and
  :data:`MAX_NOTEBOOK_BYTES` applies to what is left: what the student wrote.
- **LMS downloads are filed without trusting the archive.** A member's path is
  never used as a path (only its file name, which must be a released
  notebook's); an archive with a member that climbs out of its folder, has an
  absolute or Windows path or is a link is refused whole; sizes are capped as
  declared and as read; files are created with ``O_EXCL | O_NOFOLLOW`` in
  folders opened with ``O_NOFOLLOW``, so nothing lands outside ``submitted/``
  and nothing there is overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import lzma
import os
import re
import stat
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import nbformat
import numpy as np
from nbformat.warnings import DuplicateCellId, MissingIDFieldWarning
from nbgrader.utils import parse_utc

MAX_NOTEBOOK_BYTES = 5 * 2**20  # a notebook, after its stored outputs are stripped
MAX_FILE_BYTES = 256 * 2**20  # a file larger than this is not even read
# The released notebooks have 22 to 28 cells; a student adding scratch cells
# stays far below 1,000. Each cell is one kernel round trip (and up to a cell's
# time limit) when graded, so the cap also bounds what one notebook can cost.
MAX_CELLS = 1000
# Nesting of the notebook's JSON, its own object being 1: a released notebook
# is 5 deep, 7 with its outputs, saved widget state about 10. 64 leaves room
# for any metadata a tool writes, and keeps everything that later walks the
# notebook recursively (jsonschema, deepcopy in nbformat and nbgrader) a few
# hundred frames from Python's recursion limit.
MAX_DEPTH = 64
# JSON values (a line of stored output is one). A notebook that printed a
# million lines holds about a million; past a few million, parsing alone would
# take gigabytes of memory for objects that are stripped anyway.
MAX_JSON_VALUES = 2_000_000
# An LMS archive holds a student's few notebooks, perhaps with their folder
# and a data file: 1,000 members is generous. Its central directory is capped
# before zipfile reads it, since zipfile builds an object for every entry.
MAX_MEMBERS = 1000
MAX_DIRECTORY_BYTES = 2**20

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
# What is left of JSON once strings are cut out: its structure, and the commas
# between values.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{},')))
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")
_TO_SUBMIT = "submit the notebook itself"
_TOO_LARGE = "clear its outputs (Edit > Clear Outputs of All Cells), save it and submit it again"
_RESAVE = "open it in JupyterLab, save it and submit it again"
_FOR_DOWNLOADS = ("download the file itself", "an LMS download is never that large")


class Refused(Exception):
    """A submitted file that cannot be graded. ``str()`` is one line: the file,
    what is wrong and what to do. ``digest`` fingerprints what was there (the
    sha256 of its bytes, or of its description if it was not read), so that
    resuming notices when the student replaces it."""

    def __init__(self, message: str, digest: str = ""):
        super().__init__(message)
        self.digest = digest


@dataclass(frozen=True)
class Notebook:
    """One notebook ready to grade."""

    name: str  # "02_chain_rule.ipynb"
    data: bytes  # nbformat JSON, stored outputs and execution counts stripped
    digest: str  # sha256 of the file as submitted (for resuming)


@dataclass
class Submission:
    student: str
    notebooks: dict[str, Notebook] = field(default_factory=dict)  # the gradable ones
    # every expected notebook present, gradable or not -> its fingerprint (see Refused.digest)
    digests: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # one line each
    timestamp: str | None = None  # nbgrader's timestamp.txt (when it was submitted), if any


TIMESTAMP = "timestamp.txt"  # written by nbgrader's exchange when it collects a submission
# nbgrader's exchange writes it next to the timestamp: the key to the submission's feedback
SECRET = "submission_secret.txt"


def is_student_id(name: str) -> bool:
    """Whether ``name`` can be a student id. It becomes a folder under
    ``submitted/``, a gradebook key, a cell of grades.csv and part of
    formgrader's URLs, so it is ASCII letters, digits and ``. _ @ + -``,
    starting with a letter or digit: never ``..``, hidden, empty, spaced or
    holding control characters, and never a name Unicode can spell two ways."""
    return _STUDENT_ID.fullmatch(name) is not None


def expected_notebooks(release_folder: Path) -> dict[str, set[str]]:
    """Released notebook name -> the grade ids of its test cells (the release
    is the instructor's, so it is read as it is)."""
    found = {}
    for path in sorted(release_folder.glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        found[path.name] = {
            c.metadata["nbgrader"]["grade_id"]
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        }
    return found


def students(submitted: Path) -> tuple[list[str], list[str]]:
    """The student ids with a folder in ``submitted``, and the problems: a
    folder that is a link (to another student's, or anywhere) is reported and
    never followed, and so is a name that is not a valid student id."""
    if not submitted.is_dir():
        return [], []
    found, problems = [], []
    with os.scandir(submitted) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            where = f"submitted/{_shown(entry.name)}"
            if not is_student_id(entry.name):
                problems.append(
                    f"{where}: not a valid student id (ASCII letters, digits and . _ @ + -, "
                    "starting with a letter or digit): rename the folder; not graded"
                )
            elif entry.is_symlink():
                problems.append(
                    f"{where} is a symbolic link; links are never followed: "
                    "make it a real folder; not graded"
                )
            elif not entry.is_dir(follow_symlinks=False):
                problems.append(f"{where} is not a folder; ignored")
            else:
                found.append(entry.name)
    return found, problems


def read_notebook(path: Path, grade_ids: set[str]) -> Notebook:
    """The notebook at ``path`` ready to grade, or :class:`Refused`. ``path``
    itself is never followed if it is a link; its folder is the caller's."""
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise Refused(f"{_shown(path.name)} could not be read ({error.strerror})") from None
    try:
        return _read_notebook(folder, path.name, grade_ids)
    finally:
        os.close(folder)


def read_submission(
    submitted: Path, student: str, assignment: str, expected: dict[str, set[str]]
) -> Submission:
    """``submitted/<student>/<assignment>/``: its gradable notebooks, a
    fingerprint of every expected notebook present, and a line for each
    problem. Never raises for anything in the folder: a notebook that cannot
    be graded costs only its own exercises."""
    result = Submission(student)
    if not is_student_id(student):
        result.problems.append(
            f"{_shown(student)} is not a valid student id (ASCII letters, digits and . _ @ + -, "
            "starting with a letter or digit); not graded"
        )
        return result
    where = f"submitted/{student}/{assignment}"
    try:
        folder = _open_folders(submitted, (student, assignment))
    except FileNotFoundError:
        result.problems.append(f"no folder {where}/")
        result.problems += [f"{name} is missing; its exercises score 0" for name in expected]
        return result
    except Refused as refused:
        result.problems.append(f"{refused}; all its exercises score 0")
        return result
    with _closing(folder):
        names = os.listdir(folder)
        if not any(name.endswith(".ipynb") for name in names):
            result.problems.append(f"no notebooks in {where}/")
        for name in sorted(set(names) - set(expected) - {TIMESTAMP, SECRET}):
            result.problems.append(_extra(folder, name, assignment))
        if TIMESTAMP in names:
            _read_timestamp(folder, result)
        for name, grade_ids in expected.items():
            if name not in names:
                result.problems.append(f"{name} is missing; its exercises score 0")
                continue
            try:
                notebook = _read_notebook(folder, name, grade_ids)
            except Refused as refused:
                result.digests[name] = refused.digest
                result.problems.append(f"{refused}; its exercises score 0")
            else:
                result.digests[name] = notebook.digest
                result.notebooks[name] = notebook
    return result


def _read_timestamp(folder: int, result: Submission) -> None:
    """nbgrader's record of when the submission was made, read as any file is
    (never through a link); it counts towards what was graded, so a changed
    submission time regrades the student."""
    try:
        data, digest = _read_file(folder, TIMESTAMP)
        text = data.decode("ascii").strip()
        if len(text) > 64:
            raise ValueError
        parse_utc(text)  # what nbgrader will do with it; it fails badly on nonsense
    except Refused as refused:
        result.problems.append(f"{refused}; the submission time is taken as unknown")
        return
    except ValueError:
        result.problems.append(
            f"{TIMESTAMP} is not a timestamp; the submission time is taken as unknown"
        )
        return
    result.timestamp = text
    result.digests[TIMESTAMP] = digest


def collect(
    submitted: Path, downloads: Path, assignment: str, names: Iterable[str]
) -> tuple[list[str], list[str]]:
    """File LMS downloads under ``submitted/<student>/<assignment>/``.

    Accepts ``<student>.zip`` (or ``<student>_anything.zip``) holding the
    notebooks, and loose ``<student>_<notebook>.ipynb`` files; ``names`` are
    the released notebooks. An existing submission is never overwritten (one
    that differs is reported), and nothing is written outside ``submitted/``.
    Returns (the files filed, the problems), one line each.
    """
    names = set(names)
    submitted.mkdir(parents=True, exist_ok=True)
    filer = _Filer(submitted, assignment)
    folder = os.open(downloads, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    with _closing(folder):
        for entry in sorted(os.listdir(folder)):
            suffix = PurePosixPath(entry).suffix
            if suffix == ".zip":
                _file_archive(filer, folder, entry, names)
            elif suffix == ".ipynb":
                _file_notebook(filer, folder, entry, names)
            else:
                filer.problems.append(
                    f"{_shown(entry)}: neither a zip file nor a notebook; ignored"
                )
    return filer.filed, filer.problems


# ------------------------------------------------------------ reading files
def one_line(message: str) -> str:
    """``message`` as one printable line: a newline or a terminal escape in what
    a student wrote (a file name, a cell id, an error) must not forge a line or
    drive the instructor's terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _shown(name: str) -> str:
    """``name`` for a one-line message: as it is, or quoted with escapes if it
    holds anything unprintable (a newline, a terminal escape, a byte that is
    not UTF-8) or is empty."""
    return name if name and name.isprintable() else repr(name)


def _not_plain(st: os.stat_result) -> str:
    """What makes ``st`` other than a regular file with one name ('' if nothing)."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "is a symbolic link; links are never followed"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if st.st_nlink > 1:
        return (
            f"is a hard link (the same file as {st.st_nlink - 1} other name(s)); "
            "links are never followed"
        )
    return ""


def _fingerprint(description: str) -> str:
    return hashlib.sha256(description.encode()).hexdigest()


def _described(st: os.stat_result) -> str:
    """The fingerprint of a file that is not read: its kind, identity, size and time."""
    return _fingerprint(
        f"not read: {stat.filemode(st.st_mode)} {st.st_dev}:{st.st_ino} "
        f"links={st.st_nlink} size={st.st_size} mtime={st.st_mtime_ns}"
    )


def _check_plain(name: str, st: os.stat_result, fix_link: str, fix_large: str) -> None:
    why = _not_plain(st)
    if why:
        raise Refused(f"{_shown(name)} {why}: {fix_link}", _described(st))
    if st.st_size > MAX_FILE_BYTES:
        raise Refused(
            f"{_shown(name)} is {st.st_size / 2**20:.1f} MB, over the "
            f"{MAX_FILE_BYTES // 2**20} MB a submitted file may be, so it was not read: "
            f"{fix_large}",
            _described(st),
        )


def _read_file(
    folder: int, name: str, fix_link: str = _TO_SUBMIT, fix_large: str = _TOO_LARGE
) -> tuple[bytes, str]:
    """The bytes of ``name`` in ``folder`` and their sha256, or Refused.

    ``lstat`` first, so that a pipe or a device is never even opened; then the
    open itself refuses a link (``O_NOFOLLOW``) and never blocks
    (``O_NONBLOCK``), and ``fstat`` checks what was actually opened, so a file
    swapped for a link, a hard link or a pipe after the first check is caught.
    """
    try:
        _check_plain(name, os.stat(name, dir_fd=folder, follow_symlinks=False), fix_link, fix_large)
        descriptor = os.open(name, _READ, dir_fd=folder)
        with open(descriptor, "rb") as file:
            _check_plain(name, os.fstat(descriptor), fix_link, fix_large)
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        why = (
            "is a symbolic link; links are never followed"
            if error.errno == errno.ELOOP
            else f"could not be read ({error.strerror})"
        )
        raise Refused(
            f"{_shown(name)} {why}: {fix_link}", _fingerprint(f"not read: errno {error.errno}")
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_FILE_BYTES:  # it grew after fstat
        raise Refused(
            f"{_shown(name)} is over the {MAX_FILE_BYTES // 2**20} MB a submitted file may be: "
            f"{fix_large}",
            digest,
        )
    return data, digest


def _open_folder(parent: int, name: str, where: str) -> int:
    """The folder ``name`` in ``parent``, opened without following a link;
    FileNotFoundError if there is none, Refused if it is not a real folder."""
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError as error:
        # Linux says ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except OSError:
            mode = stat.S_IFDIR
        if stat.S_ISLNK(mode):
            why = "is a symbolic link; links are never followed"
        elif not stat.S_ISDIR(mode):
            why = "is not a folder"
        else:
            why = f"could not be opened ({error.strerror})"
        raise Refused(f"{where} {why}: the submission must be a real folder") from None


def _open_folders(root: Path, parts: tuple[str, ...]) -> int:
    """The folder ``root/part/part...``, each part opened in the one before
    without following a link (``root`` is the course's own)."""
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for depth, part in enumerate(parts, 1):
        try:
            inner = _open_folder(descriptor, part, "submitted/" + "/".join(parts[:depth]))
        finally:
            os.close(descriptor)
        descriptor = inner
    return descriptor


@contextlib.contextmanager
def _closing(descriptor: int) -> Iterator[int]:
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _extra(folder: int, name: str, assignment: str) -> str:
    """The line for a file next to the notebooks that is not one of them (never opened)."""
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        st = None
    why = "" if st is None or stat.S_ISDIR(st.st_mode) else _not_plain(st)
    if why:
        return f"{_shown(name)} {why}, and it is not part of {assignment}: ignored"
    return f"{_shown(name)} is not part of {assignment}; ignored"


# ------------------------------------------------------- reading notebooks
def _read_notebook(folder: int, name: str, grade_ids: set[str]) -> Notebook:
    raw, digest = _read_file(folder, name)
    try:
        data = _gradable(_shown(name), raw, grade_ids)
    except Refused as refused:
        raise Refused(str(refused), digest) from None
    except (MemoryError, RecursionError) as error:
        raise Refused(
            f"{_shown(name)} could not be read ({type(error).__name__}): {_RESAVE}", digest
        ) from None
    return Notebook(name, data, digest)


def _gradable(name: str, raw: bytes, grade_ids: set[str]) -> bytes:
    """``raw`` as the notebook to grade: outputs stripped, nbformat's JSON."""
    if not raw:
        raise Refused(f"{name} is empty: save the notebook in JupyterLab and submit it again")
    _check_shape(name, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(
            f"{name} is not UTF-8 text (byte {error.start}): not a notebook file; "
            "submit the .ipynb file JupyterLab saved"
        ) from None
    try:
        content = json.loads(text, parse_constant=_no_constant)
    except ValueError as error:  # JSONDecodeError, NaN, an integer of thousands of digits
        raise Refused(
            f"{name} is not a readable notebook ({type(error).__name__}: {_one_line(error)}): "
            "truncated, or edited by hand? submit the notebook as JupyterLab saved it"
        ) from None
    del text
    if not isinstance(content, dict) or "nbformat" not in content:
        raise Refused(
            f"{name} is not a readable notebook (JSON, but with no nbformat version): "
            "submit the .ipynb file JupyterLab saved"
        )
    major, minor = content["nbformat"], content.get("nbformat_minor")
    if type(major) is not int or major != 4 or type(minor) is not int or minor < 0:
        raise Refused(
            f"{name} declares nbformat {_one_line(repr(major))}, nbformat_minor "
            f"{_one_line(repr(minor))} (a notebook is format 4, minor 0 or more): {_RESAVE}"
        )
    cells = content.get("cells")
    if isinstance(cells, list) and len(cells) > MAX_CELLS:
        raise Refused(
            f"{name} has {len(cells):,} cells, more than the {MAX_CELLS:,} a notebook may have: "
            "delete the cells you added and submit it again"
        )
    # nbformat's repair of cell ids assumes as much; its schema checks the rest
    if not isinstance(cells, list) or not all(
        isinstance(cell, dict) and isinstance(cell.get("id", ""), str) for cell in cells
    ):
        raise Refused(f"{name} is not a valid notebook (its list of cells is malformed): {_RESAVE}")
    _strip_outputs(content)
    with warnings.catch_warnings():
        # nbformat warns as it gives cells a missing or duplicate id; that repair is the point
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        warnings.simplefilter("ignore", DuplicateCellId)
        _, content = nbformat.validator.normalize(content)
    try:
        nbformat.validate(content)
    except nbformat.ValidationError as error:
        raise Refused(
            f"{name} is not a valid notebook ({_one_line(error.message)}): {_RESAVE}"
        ) from None
    except (MemoryError, RecursionError):
        raise
    except Exception as error:  # nbformat's error reporting trips on some invalid notebooks
        raise Refused(
            f"{name} is not a valid notebook (nbformat's validator failed on it: "
            f"{type(error).__name__}): {_RESAVE}"
        ) from None
    nb = nbformat.from_dict(content)
    if grade_ids and not grade_ids & _grade_ids(nb):  # (a release without tests takes any)
        raise Refused(
            f"{name} has none of this notebook's exercises: a notebook of another assignment? "
            f"submit the {name} that was released"
        )
    try:
        data = nbformat.writes(nb).encode("utf-8")
    except UnicodeEncodeError as error:
        raise Refused(
            f"{name} holds text that is not valid Unicode (a lone surrogate at character "
            f"{error.start}): {_RESAVE}"
        ) from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Refused(
            f"{name} is {len(data) / 2**20:.1f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB "
            "limit (stored outputs not counted): make its cells smaller (pasted images, "
            "data written into the code) and submit it again"
        )
    return data


def _check_shape(name: str, raw: bytes) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, with unbalanced brackets, or
    with more than MAX_JSON_VALUES values, before a parser sees it.

    Escaped backslashes go first (in pairs from the left, as a parser reads
    them), then escaped quotes; every quote left opens or closes a string, so
    what follows an odd number of quotes is text, and the rest is the JSON's
    structure: its depth is the running count of brackets opened. Every step
    is a bytes or numpy operation, linear and without recursion however deep
    the file. (Outside a string a backslash is not JSON: the parser stops
    there, and up to there this reading of the file is the parser's own.)"""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = np.frombuffer(unescaped.translate(None, delete=_NOT_STRUCTURE), dtype=np.uint8)
    del unescaped  # a file of 256 MB makes arrays of as much: one fewer at a time
    quotes = kept == ord('"')
    in_strings = np.cumsum(quotes, dtype=np.uint8)  # its parity is all that is needed
    in_strings &= 1
    in_strings |= quotes
    del quotes
    outside = kept[in_strings == 0]
    del kept, in_strings
    opening = (outside == ord("[")) | (outside == ord("{"))
    closing = (outside == ord("]")) | (outside == ord("}"))
    opened = np.count_nonzero(opening)
    if opened + np.count_nonzero(outside == ord(",")) > MAX_JSON_VALUES:
        raise Refused(
            f"{name} holds over {MAX_JSON_VALUES:,} JSON values, so it was not read: {_TOO_LARGE}"
        )
    depth = np.cumsum(opening[opening | closing], dtype=np.int32) * 2
    depth -= np.arange(1, depth.size + 1, dtype=np.int32)  # opened - closed, after each bracket
    if opened != np.count_nonzero(closing) or (depth.size and depth.min() < 0):
        raise Refused(
            f"{name} is not a readable notebook (its brackets do not match: truncated?): "
            "submit the notebook as JupyterLab saved it"
        )
    if depth.size and depth.max() > MAX_DEPTH:
        raise Refused(
            f"{name} nests its JSON {depth.max():,} levels deep, more than {MAX_DEPTH} (a "
            "notebook needs under 10): submit the notebook as JupyterLab saved it"
        )


def _no_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _one_line(value: object) -> str:
    """``value`` as a short single line, for a message."""
    text = " ".join(str(value).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _strip_outputs(content: dict) -> None:
    """What nbgrader's ClearOutput (nbconvert's ClearOutputPreprocessor) does:
    code cells lose their outputs, execution counts and the metadata that only
    displays outputs; and the notebook loses its saved widget state, the
    widgets' outputs. Done on the JSON as read, before validation, so that a
    stored output nbformat would reject cannot cost the notebook."""
    for cell in content["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            if isinstance(cell.get("metadata"), dict):
                for key in ("collapsed", "scrolled"):
                    cell["metadata"].pop(key, None)
    if isinstance(content.get("metadata"), dict):
        content["metadata"].pop("widgets", None)


def _grade_ids(nb: nbformat.NotebookNode) -> set[str]:
    """The grade ids the cells claim (nbgrader's metadata is not in nbformat's
    schema, so anything may be there)."""
    found = set()
    for cell in nb.cells:
        claimed = cell.metadata.get("nbgrader")
        if isinstance(claimed, dict) and isinstance(claimed.get("grade_id"), str):
            found.add(claimed["grade_id"])
    return found


# ---------------------------------------------------------- LMS downloads
class _Filer:
    """Writes downloads into ``submitted/``: each folder opened without
    following a link (made if missing), each file created with ``O_EXCL``."""

    def __init__(self, submitted: Path, assignment: str):
        self.submitted, self.assignment = submitted, assignment
        self.filed: list[str] = []
        self.problems: list[str] = []

    def put(self, source: str, student: str, name: str, data: bytes) -> None:
        if not is_student_id(student):
            self.problems.append(
                f"{_shown(source)}: {_shown(student)} is not a valid student id (ASCII letters, "
                "digits and . _ @ + -, starting with a letter or digit); not filed"
            )
            return
        where = f"submitted/{student}/{self.assignment}/"
        try:
            folder = self._folders((student, self.assignment))
        except Refused as refused:
            self.problems.append(f"{_shown(source)}: {refused}; not filed")
            return
        with _closing(folder):
            try:
                descriptor = os.open(name, _CREATE, 0o644, dir_fd=folder)
            except FileExistsError:
                self._compare(source, folder, name, where, data)
                return
            try:
                with open(descriptor, "wb") as file:
                    file.write(data)
            except OSError as error:
                os.unlink(name, dir_fd=folder)
                self.problems.append(
                    f"{_shown(source)}: {where}{name} could not be written ({error.strerror})"
                )
                return
        self.filed.append(where + name)

    def _folders(self, parts: tuple[str, ...]) -> int:
        """``submitted/<parts>``, made where missing, no part of it a link."""
        for depth in range(1, len(parts) + 1):
            parent = _open_folders(self.submitted, parts[: depth - 1])
            # something already there, a link included, is refused when opened below
            with _closing(parent), contextlib.suppress(FileExistsError):
                os.mkdir(parts[depth - 1], 0o755, dir_fd=parent)
        return _open_folders(self.submitted, parts)

    def _compare(self, source: str, folder: int, name: str, where: str, data: bytes) -> None:
        """A file is there already: left as it is, and reported if it differs."""
        try:
            existing, _ = _read_file(folder, name, "left as it is (remove it to file this one)")
        except Refused as refused:
            self.problems.append(f"{_shown(source)}: {where}{refused}")
            return
        if existing != data:
            self.problems.append(
                f"{_shown(source)}: {where}{name} exists and differs; left as it is "
                "(move it away to replace it)"
            )


def _file_notebook(filer: _Filer, folder: int, entry: str, names: set[str]) -> None:
    """A loose ``<student>_<notebook>.ipynb``."""
    matches = [n for n in names if entry.endswith("_" + n)]
    if not matches:
        filer.problems.append(
            f"{_shown(entry)}: expected <student>_<notebook>.ipynb with a notebook of "
            f"{filer.assignment}"
        )
        return
    name = max(matches, key=len)
    try:
        data, _ = _read_file(folder, entry, *_FOR_DOWNLOADS)
    except Refused as refused:
        filer.problems.append(f"{refused}; not filed")
        return
    filer.put(entry, entry[: -len(name) - 1], name, data)


def _file_archive(filer: _Filer, folder: int, entry: str, names: set[str]) -> None:
    """A ``<student>.zip`` or ``<student>_anything.zip``: its members named as
    a released notebook, in any folder of the archive."""
    student = entry[: -len(".zip")].split("_")[0]
    try:
        data, _ = _read_file(folder, entry, *_FOR_DOWNLOADS)
        with _open_archive(io.BytesIO(data), entry) as archive:
            chosen = _chosen_members(archive, entry, names)
            if not chosen:
                filer.problems.append(f"{_shown(entry)}: no notebook of {filer.assignment} inside")
            for name, info in chosen.items():
                try:
                    notebook = _extract(archive, info)
                except Refused as refused:
                    filer.problems.append(f"{_shown(entry)}: {refused}; not filed")
                    continue
                filer.put(entry, student, name, notebook)
    except Refused as refused:
        filer.problems.append(f"{refused}; not filed")


def _open_archive(file: BinaryIO, entry: str) -> zipfile.ZipFile:
    """The archive in ``file``, its central directory capped before zipfile
    reads it: zipfile builds an object for every entry it lists, so a small
    file listing millions would cost gigabytes. ``zipfile._EndRecData`` is
    private, but it is exactly what ZipFile reads next, Zip64 included."""
    shown = _shown(entry)
    try:  # a Zip64 record spanning disks raises BadZipFile here
        end = zipfile._EndRecData(file)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise Refused(f"{shown} is not a readable zip file ({_one_line(error)})") from None
    if end is None:
        raise Refused(f"{shown} is not a readable zip file")
    if (
        end[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS
        or end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES
    ):
        raise Refused(
            f"{shown} lists {end[zipfile._ECD_ENTRIES_TOTAL]:,} files "
            f"({end[zipfile._ECD_SIZE]:,} bytes of directory), more than the {MAX_MEMBERS:,} an "
            "archive may hold: zip only the notebooks"
        )
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise Refused(f"{shown} is not a readable zip file ({_one_line(error)})") from None
    if len(archive.infolist()) > MAX_MEMBERS:  # the count in the end record lied
        archive.close()
        raise Refused(
            f"{shown} holds {len(archive.infolist()):,} files, more than the {MAX_MEMBERS:,} an "
            "archive may hold: zip only the notebooks"
        )
    return archive


def _chosen_members(
    archive: zipfile.ZipFile, entry: str, names: set[str]
) -> dict[str, zipfile.ZipInfo]:
    """Released notebook name -> the member holding it. Refused (the whole
    archive) if any member is unsafe to extract, whether or not it is a
    notebook: such an archive was crafted, or made by a tool to distrust."""
    shown = _shown(entry)
    chosen: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        why = _unsafe_member(info)
        if why:
            raise Refused(
                f"{shown}: its member {_shown(info.filename)} {why}; nothing filed from "
                "this archive (extract it by hand and check it)"
            )
        name = PurePosixPath(info.filename).name
        if info.is_dir() or name not in names:
            continue
        if name in chosen:
            raise Refused(
                f"{shown} holds {name} twice ({_shown(chosen[name].filename)} and "
                f"{_shown(info.filename)}): which one is the submission? nothing filed from "
                "this archive"
            )
        chosen[name] = info
    for name, info in chosen.items():
        why = _unsafe_notebook(info)
        if why:
            raise Refused(f"{shown}: its {name} {why}; nothing filed from this archive")
    return chosen


def _unsafe_member(info: zipfile.ZipInfo) -> str:
    """Why extracting ``info`` by its path could write outside the folder
    extracted into, or make a link ('' if it could not)."""
    path = info.filename
    if "\\" in path:
        return "has a Windows path (backslashes)"
    if path.startswith("/"):
        return "has an absolute path"
    if _WINDOWS_DRIVE.match(path):
        return "has a Windows drive in its path"
    if ".." in path.split("/"):
        return "climbs out of the archive's folder (..)"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file (a device, pipe or socket)"
    return ""


def _unsafe_notebook(info: zipfile.ZipInfo) -> str:
    """Why the notebook member ``info`` is not extracted ('' if it is)."""
    if info.flag_bits & 0x1:
        return "is encrypted: zip it again without a password"
    if info.file_size > MAX_FILE_BYTES:
        megabytes = info.file_size / 2**20
        size = f"{megabytes / 1024:.1f} GB" if megabytes >= 1024 else f"{megabytes:.1f} MB"
        return (
            f"would expand to {size}, over the {MAX_FILE_BYTES // 2**20} MB a submitted file may "
            "be (a zip bomb?)"
        )
    # No compression makes data much larger (stored and deflate add under 0.1%,
    # bzip2 and lzma about 1%): compressed bytes far beyond the declared size
    # mean the declared size is forged, as a zip bomb would forge it.
    if info.compress_size > info.file_size + info.file_size // 50 + 1024:
        return (
            f"declares {info.file_size:,} bytes but holds {info.compress_size:,} compressed "
            "bytes: its sizes are forged (a zip bomb?)"
        )
    return ""


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, read as a stream capped at MAX_FILE_BYTES whatever
    it declares."""
    name = PurePosixPath(info.filename).name
    try:
        with archive.open(info) as member:
            data = member.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError,
            OSError) as error:  # fmt: skip
        raise Refused(f"{name} could not be extracted ({_one_line(error)})") from None
    if len(data) > MAX_FILE_BYTES:
        raise Refused(
            f"{name} expands past the {MAX_FILE_BYTES // 2**20} MB a submitted file may be "
            "(a zip bomb?)"
        )
    return data
