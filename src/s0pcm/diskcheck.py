"""Say in one line why a file cannot be written: a full disk, a read-only one, or permissions.

An SD card fills up, goes read-only when it fails, or a command run with sudo leaves root-owned
files behind. The driver's message ("database or disk is full", "attempt to write a readonly
database", "unable to open database file") does not say which, nor where; these helpers look at
the file system and name the path, the free space and the user.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

__all__ = ["diagnose", "user_name"]


def user_name(uid: int | None = None) -> str:
    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def diagnose(path: Path, error: BaseException | None = None) -> str:
    """Why ``path`` (a file, perhaps not there yet) cannot be written, as one line.

    Looks at the error's errno first, then at the directory: free space, a read-only mount, and
    whether this user may write the file and its directory."""
    code = getattr(error, "errno", None)
    directory = path.parent
    free = _free(directory)
    if code == errno.ENOSPC or (free is not None and free == 0):
        return f"disk full: {directory}, {free if free is not None else 0} bytes free"
    if code == errno.EROFS or _read_only(directory):
        return f"read-only file system: {directory} (the card may be failing)"
    for target in (path, directory):
        problem = _permission(target)
        if problem:
            return problem
    if code == errno.EIO:
        return f"input/output error on {directory} (the card may be failing)"
    text = str(error) if error is not None else "cannot write"
    return f"{path}: {text}"


def _free(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _permission(target: Path) -> str | None:
    try:
        st = target.stat()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{target}: {e.strerror}"
    if os.access(target, os.W_OK):
        return None
    kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
    return (
        f"permission denied: user {user_name()} may not write the {kind} {target} "
        f"(owner {user_name(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}); "
        f"run s0pcm as {user_name(st.st_uid)}, or chown it"
    )
