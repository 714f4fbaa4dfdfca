"""The PostgreSQL backend: the same schema and logic, for a house with a server.

One autocommit connection; commits run in a transaction that takes an advisory lock (so two
writers take turns, like SQLite's), and a query's statements run in a read-only REPEATABLE READ
transaction so they see one state of the database. ``backup`` writes a SQLite file of the same
data (a store that opens like any other), taken from one consistent snapshot.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

import psycopg

from ..errors import AlreadyRunning, StoreError, redact
from ..lock import holder
from .common import Row, SqlStore

__all__ = ["PostgresStore"]

#: Key of the advisory lock that serialises writers ("s0pcm" in ASCII).
WRITE_LOCK: Final = 0x7330_70636D
#: Key of the session lock the one logger of a database holds ("s0pcmL").
LOGGER_LOCK: Final = 0x7330_70636D4C
_HOLDER_SQL: Final = (
    "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1"
)


class PostgresStore(SqlStore):
    """History in a PostgreSQL database (the schema on the connection's search path)."""

    dialect: ClassVar[dict[str, str]] = {
        "INT8": "BIGINT",
        "REAL": "DOUBLE PRECISION",
        "BLOB": "BYTEA",
        "ID": "BIGINT PRIMARY KEY",
        "WITHOUT_ROWID": "",
    }
    driver_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,)

    def __init__(
        self, url: str, *, tz: ZoneInfo, readonly: bool = False, connect_timeout: int = 10
    ) -> None:
        super().__init__(tz=tz, database=url, readonly=readonly)
        self._depth = 0
        self._cursors = itertools.count(1)
        self._sql: dict[str, str] = {}
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            # Not chained: the driver's exception could show connection details.
            raise StoreError(url, f"cannot connect: {exc}") from None
        try:
            if readonly:
                self._conn.execute("SET default_transaction_read_only = on")
            self._open()
        except BaseException:
            self._conn.close()
            raise

    # -- primitives ------------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("?", "%s")
        return translated

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._conn.execute(self._q(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(self._q(sql), params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._q(sql), rows)

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        with self._conn.cursor(name=f"s0pcm_{next(self._cursors)}") as cursor:
            cursor.itersize = 2000
            cursor.execute(self._q(sql), params)
            yield from cursor

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        if self._depth:
            raise RuntimeError("a write transaction cannot nest in another transaction")
        with self._conn.transaction():
            self._depth += 1
            try:
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield
            finally:
                self._depth -= 1

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        if self._depth:
            yield
            return
        with self._conn.transaction():
            self._depth += 1
            try:
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield
            finally:
                self._depth -= 1

    def _has_table(self, name: str) -> bool:
        return bool(self._rows("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0])

    def _disconnect(self) -> None:
        self._conn.close()  # ends the session, and with it the logger lock

    # -- one logger ------------------------------------------------------------------------------

    def claim(self) -> None:
        """A session advisory lock: held across hosts for as long as this connection lives,
        dropped by the server when the logger dies. The connection's application name says
        whose it is."""
        with self._guard("claim"):
            name = f"s0pcm logger, {holder()}"[:63]
            self._conn.execute("SELECT set_config('application_name', %s, false)", (name,))
            if self._rows("SELECT pg_try_advisory_lock(?)", (LOGGER_LOCK,))[0][0]:
                return
        raise AlreadyRunning(f"database {redact(self.database)}", self.claimed_by() or "unknown")

    def claimed_by(self) -> str | None:
        with self._guard("look for a running logger"):
            rows = self._conn.execute(
                _HOLDER_SQL, (LOGGER_LOCK >> 32, LOGGER_LOCK & 0xFFFF_FFFF)
            ).fetchall()
        if not rows:
            return None
        name, host = rows[0]
        return f"{name or 'a session'}" + (f" from {host}" if host else "")

    # -- upkeep ----------------------------------------------------------------------------------

    def backup(self, path: Path, *, commit: bool = True) -> None:
        """Write the data to ``path`` as a SQLite store (same schema, same rows, one consistent
        snapshot); commits what is buffered first
        (``commit=False``: the logger in this process has committed; a bare commit here would
        put pulses in the store that its journal still holds). For a PostgreSQL copy use
        ``pg_dump``."""
        from .sqlite import SqliteStore

        if commit:
            self.commit()
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        with self._guard(f"backup to {target}"):
            for suffix in ("", "-wal", "-shm"):
                partial.with_name(partial.name + suffix).unlink(missing_ok=True)
            copy = SqliteStore(partial, tz=self.tz)
            try:
                self.copy_to(copy)
            finally:
                copy.close()
            os.replace(partial, target)
