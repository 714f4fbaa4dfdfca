"""What a SQL backend supplies, and what every part of the SQL store stands on.

A backend (:mod:`.sqlite`, :mod:`.postgres`) connects and supplies a handful of primitives: run a
statement, run one for many rows, stream a big result, a write transaction, a read snapshot, its
column types. Everything else is written once over them, with ``?`` placeholders and SQL both
databases speak, so the two backends cannot drift apart: the reads in :mod:`.queries`, opening,
buffered writes, commits and upkeep in :mod:`.common`. This module holds what both of those use:
the primitives, the lock and error guard, the read-only rules and the meter ids.
"""

from __future__ import annotations

import contextlib
import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ..calendar import Calendar
from ..errors import StoreError
from . import codec
from .base import Store
from .pending import Pending

__all__ = ["LAST_HOUR", "Row", "SqlBase"]

Row = tuple[Any, ...]

#: The last hour row of a meter: where a commit appends, and the cumulative total of all time.
LAST_HOUR = "SELECT hour, total FROM hour_slots WHERE meter = ? ORDER BY hour DESC LIMIT 1"


class SqlBase(Store):
    """The primitives of a SQL :class:`Store` and the state its reads and writes share."""

    #: Column types and clauses substituted into the shared DDL (see :mod:`.schema`).
    dialect: ClassVar[Mapping[str, str]]
    #: The driver's exception base classes, reported as :class:`StoreError`.
    driver_errors: ClassVar[tuple[type[Exception], ...]]

    def __init__(self, *, tz: ZoneInfo, database: str, readonly: bool = False) -> None:
        super().__init__(tz=tz)
        #: Path or URL for messages (StoreError hides a password in it).
        self.database = database
        self.readonly = readonly
        self._overlay = False
        self.calendar = Calendar(tz)
        self._pending = Pending(self.calendar)
        # One connection, used from whichever thread calls (the daemon's loop, an API worker).
        self._lock = threading.RLock()
        self._ids: dict[str, int] = {}

    # -- what a backend provides ---------------------------------------------------------------

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement (``?`` placeholders); its rows, if any."""

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""

    @abstractmethod
    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """The rows of a big result, a batch at a time (inside :meth:`_snapshot`)."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[None]:
        """A write transaction; writers are serialised, readers are not blocked."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[None]:
        """A read transaction, so a query's statements see one state of the database."""

    @abstractmethod
    def _has_table(self, name: str) -> bool: ...

    @abstractmethod
    def _disconnect(self) -> None: ...

    def _integrity(self) -> list[str]:
        """The database engine's own integrity check, if it has one."""
        return []

    # -- guarding --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Hold the lock; report driver errors and damaged blobs as StoreError."""
        with self._lock:
            try:
                yield
            except codec.CodecError as exc:
                raise StoreError(self.database, f"{action}: damaged slot data: {exc}") from exc
            except self.driver_errors as exc:
                raise StoreError(self.database, f"{action}: {self._explain(exc)}") from exc

    def _explain(self, exc: Exception) -> str:
        """The driver's error in words a user can act on (a backend may look closer)."""
        return str(exc)

    def _writable(self, *, buffered: bool = False) -> None:
        """Refuse a write to a read-only store; ``buffered``: a write to the in-memory buffer,
        which a read-only store takes after :meth:`overlay`."""
        if self.readonly and not (buffered and self._overlay):
            raise StoreError(self.database, "opened read-only")

    def overlay(self) -> None:
        """Let a read-only store take writes into memory only: they show in its queries and
        are never committed (``status`` replays the journal this way, writing nothing)."""
        self._overlay = True

    # -- meter ids -------------------------------------------------------------------------------

    def _id(self, meter: str) -> int | None:
        mid = self._ids.get(meter)
        if mid is None:
            rows = self._rows("SELECT id FROM meter WHERE key = ?", (meter,))
            if rows:
                mid = self._ids[meter] = int(rows[0][0])
        return mid
