"""The SQLite backend: one file on the Pi, written rarely.

WAL journal with ``synchronous=NORMAL``: a commit appends to the WAL without waiting for the card
(a power cut can lose the last commits, never corrupt the file), readers never block the writer
and see each commit whole. Each store holds one connection; a second store on the same file (the
dashboard, a backup, ``s0pcm check``) reads alongside the daemon.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ..errors import StoreError
from ..lock import LockFile
from .common import Row, SqlStore

__all__ = ["SqliteStore"]


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
                raise StoreError(self.database, f"cannot open: {exc}") from exc
            try:
                if self.readonly:
                    conn.execute("PRAGMA query_only = ON")
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                else:
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                conn.close()
                if n < len(modes):
                    continue
                raise StoreError(self.database, f"cannot open: {exc}") from exc
            return conn
        raise AssertionError("unreachable")

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

    def backup(self, path: Path) -> None:
        """Copy the database to ``path`` with SQLite's online backup (one consistent snapshot,
        the daemon keeps writing); commits what is buffered first. The copy is written next to
        ``path`` and renamed over it, so ``path`` is always a whole database."""
        self.commit()
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        with self._guard(f"backup to {target}"):
            partial.unlink(missing_ok=True)
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
