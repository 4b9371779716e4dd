"""The exchange a course was released to, given once and kept.

`dlcourse exchange release --exchange DIR` (or `dlcourse hub config
--exchange DIR`) records DIR in the course's state (``.dlcourse/exchange-root``),
and the course's ``nbgrader_config.py`` sets ``c.Exchange.root`` from it, so
that every later step, dlcourse's and nbgrader's own commands alike, uses the
same exchange without being told again. This module only reads and writes the
record; :mod:`.commands` decides when (and refuses a mismatch).
"""

from __future__ import annotations

import os
from pathlib import Path

from dlcourse.course.layout import EXCHANGE_RECORD


def recorded(course: Path) -> Path | None:
    """The exchange recorded for the course in folder ``course``, or None."""
    try:
        text = (course / EXCHANGE_RECORD).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None


def record(course: Path, root: Path) -> Path:
    """Record ``root`` (absolute) as the course's exchange; the record's path.
    Written as the course folder's owner would have it (root's writes are
    handed to them), replacing no earlier record (the caller checks)."""
    path = course / EXCHANGE_RECORD
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"{root.absolute()}\n", encoding="utf-8")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        st = course.stat()
        for made in (path.parent, path):
            os.chown(made, st.st_uid, st.st_gid, follow_symlinks=False)
    return path
