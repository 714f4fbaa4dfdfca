"""The SQLite backend: one file on the Pi, written rarely.

WAL journal with ``synchronous=FULL``: a commit is on the card when it returns (one fsync every
few minutes, of pages the kernel would write within half a minute anyway), so a power cut or a
card that dies mid-run loses no commit, and never corrupts the file. Readers never block the
writer and see each commit whole. Each store holds one connection; a second store on the same
file (the dashboard, a backup, ``s0pcm check``) reads alongside the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ..diskcheck import diagnose
from ..errors import StoreError
from ..lock import LockFile
from .common import Row, SqlStore

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)


#: Bytes the WAL file is cut back to after a checkpoint.
WAL_LIMIT: Final = 1 << 20


def _private(path: Path) -> None:
    """Make the database file readable by its owner only, before SQLite opens it: it holds the
    session secret and the password and token hashes, and SQLite gives its ``-wal`` and ``-shm``
    the database's mode. A file another user could read is tightened (and said so)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # SQLite says why, with the path (see _explain)
    try:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)
            log.warning("%s was readable by others (mode %04o): now %04o", path, mode,
                        mode & 0o700)  # fmt: skip
    except OSError:
        pass
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(OSError):
            if side.stat().st_mode & 0o077:
                os.chmod(side, 0o600)


class SqliteStore(SqlStore):
    """History in a SQLite file (created on first use)."""

    dialect: ClassVar[dict[str, str]] = {
        "INT8": "INTEGER",
        "REAL": "REAL",
        "BLOB": "BLOB",
        "ID": "INTEGER PRIMARY KEY",
        "WITHOUT_ROWID": " WITHOUT ROWID",
    }
    driver_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tz: ZoneInfo,
        readonly: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Open (or create) the file; ``timeout``: seconds to wait for another writer."""
        self.path = Path(path)
        super().__init__(tz=tz, database=str(self.path), readonly=readonly)
        self._depth = 0
        self._claim = LockFile(
            self.path.with_name(self.path.name + "-logger.lock"), what=f"database {self.path}"
        )
        if readonly and not self.path.is_file():
            raise StoreError(self.database, "no such database file")
        if not readonly:
            _private(self.path)
        self._conn = self._connect(timeout)
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, timeout: float) -> sqlite3.Connection:
        """Writable: create the file if need be, in WAL mode. Read-only: open it so that nothing
        is created or changed (for a user who may only read it); on a read-only disk, where
        SQLite cannot make the WAL index beside it, as immutable (nobody can write there)."""
        modes: list[str | None] = [None]
        if self.readonly:
            modes = ["ro"]
            if not os.access(self.path.parent, os.W_OK):
                modes.append("ro&immutable=1")
        for n, mode in enumerate(modes, start=1):
            target = str(self.path)
            if mode is not None:
                target = f"file:{quote(str(self.path.resolve()))}?mode={mode}"
            try:
                conn = sqlite3.connect(
                    target,
                    timeout=timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    uri=mode is not None,
                )
            except sqlite3.Error as exc:
                raise StoreError(self.database, f"cannot open: {self._explain(exc)}") from exc
            try:
                self._setup(conn)
            except sqlite3.Error as exc:
                conn.close()
                if n < len(modes):
                    continue
                raise StoreError(self.database, f"cannot open: {self._explain(exc)}") from exc
            return conn
        raise AssertionError("unreachable")

    def _setup(self, conn: sqlite3.Connection) -> None:
        if self.readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            # A small WAL: checkpointed every 256 pages, and cut back after that.
            conn.execute("PRAGMA wal_autocheckpoint = 256")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    # -- primitives ------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(sql, rows)

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        cursor = self._conn.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            yield from batch

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        if self._depth:
            raise RuntimeError("a write transaction cannot nest in another transaction")
        # IMMEDIATE: take the write lock now, not halfway through (no deadlock with a reader
        # that wants to write too).
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        if self._depth:
            yield
            return
        self._conn.execute("BEGIN")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def _has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(self._rows(sql, (name,)))

    def _disconnect(self) -> None:
        self._conn.close()
        self._claim.release()

    def _explain(self, exc: Exception) -> str:
        """SQLite says "database or disk is full" or "unable to open database file": say which
        disk, how full, or whose file it is."""
        cause = diagnose(self.path, exc)
        return cause if not cause.startswith(f"{self.path}:") else str(exc)

    # -- one logger ------------------------------------------------------------------------------

    def claim(self) -> None:
        """A lock file beside the database (SQLite's own locks are per transaction)."""
        if not self._claim.held:
            self._claim.acquire()

    def claimed_by(self) -> str | None:
        return self._claim.holder_of(self._claim.path)

    def _integrity(self) -> list[str]:
        rows = self._rows("PRAGMA integrity_check")
        return [] if rows == [("ok",)] else [f"sqlite integrity_check: {r[0]}" for r in rows]

    # -- upkeep ----------------------------------------------------------------------------------

    def backup(self, path: Path, *, commit: bool = True) -> None:
        """Copy the database to ``path`` with SQLite's online backup (one consistent snapshot,
        the daemon keeps writing); commits what is buffered first
        (``commit=False``: the logger in this process has committed; a bare commit here would
        put pulses in the store that its journal still holds). The copy is written next to
        ``path`` and renamed over it, so ``path`` is always a whole database."""
        if commit:
            self.commit()
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        with self._guard(f"backup to {target}"):
            partial.unlink(missing_ok=True)
            _private(partial)  # a backup holds the secrets too
            copy = sqlite3.connect(partial)
            try:
                # pages=-1: all pages in one step, under one read transaction.
                self._conn.backup(copy, pages=-1)
            finally:
                copy.close()
            os.replace(partial, target)

    def size(self) -> int:
        """Bytes on disk: the file plus its WAL (the WAL is folded in at checkpoints)."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += self.path.with_name(self.path.name + suffix).stat().st_size
        return total
