"""One logger per store: a lock taken before the journal or the database is written.

Two loggers on one configuration (a systemd service and a manual ``s0pcm run``) would replay and
empty each other's journal and count the same pulses twice. So the logger takes an exclusive lock
on the journal and on the database before it touches either, and a second one stops at once,
naming the first. Readers (``serve``, ``status``, ``check``, ``export``) take no lock; ``status``
asks whether one is held to tell a running logger from stale state.

A lock file is locked with ``flock`` (released by the kernel when the process dies, even on
SIGKILL, so there is never a stale lock to clean up) and holds a line naming its holder. The file
is never deleted: unlinking a lock file races with a process that has just opened it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from .errors import AlreadyRunning

__all__ = ["LockFile", "holder"]


def holder() -> str:
    """Who this process is, as a lock names it: ``pid 1234 on raspberrypi``."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


class LockFile:
    """An exclusive ``flock`` on ``path`` (created 0600), held until :meth:`release`."""

    def __init__(self, path: Path, *, what: str) -> None:
        self.path = path
        #: What the lock guards, for the message a second logger gets.
        self.what = what
        self._fd = -1

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning` naming who has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _read(fd)
            os.close(fd)
            raise AlreadyRunning(self.what, who or "another process") from None
        except BaseException:
            os.close(fd)
            raise
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder()} since {stamp}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, it just cannot say whose it is
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    @staticmethod
    def holder_of(path: Path) -> str | None:
        """Who holds the lock on ``path`` now (None: nobody). Opens read-only, creates nothing,
        so it works on a read-only disk and for a user who may not write there."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read(fd) or "another process"
            except OSError:
                return None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
