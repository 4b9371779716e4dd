"""What root's grading wrote in an instructor's course, handed back to them.

Grading confines student code only as root (``sudo dlcourse grade``), but the
course belongs to its instructor, who collects, releases feedback and exports
grades as themselves: the gradebook, ``grades.csv``, ``autograded/``,
``feedback/`` and the resume markers are given to the course folder's owner.
The cached gradebook templates stay root's (they hold the hidden tests and
are readable by root only). Links are changed, never followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlcourse.course.layout import Layout


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    if not os.path.lexists(path):
        return
    os.chown(path, uid, gid, follow_symlinks=False)
    if path.is_symlink() or not path.is_dir():
        return
    for folder, dirs, files in os.walk(path):  # os.walk never enters a linked folder
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def hand_back(layout: Layout) -> int | None:
    """As root, give what grading wrote to the owner of the course folder;
    the owner's uid, or None when there was nothing to do (not root, or a
    course root owns)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    st = layout.root.stat()
    if st.st_uid == 0:
        return None
    for path in (layout.gradebook, layout.grades_csv, layout.state):
        if os.path.lexists(path):
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    for path in (layout.markers, layout.autograded_root, layout.feedback_root):
        _chown_tree(path, st.st_uid, st.st_gid)
    return st.st_uid
