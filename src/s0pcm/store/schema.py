"""The database schema, as named migrations shared by both backends.

Each migration is a name and a list of statements; a backend renders them with its own column
types (``{INT8}``, ``{REAL}``, ``{BLOB}``, ``{ID}``, ``{WITHOUT_ROWID}``). The names applied are
recorded in the ``migrations`` table (the sqlite-utils convention: a migration runs once, in its
own transaction, in list order), so a later version appends a migration and every database,
SQLite file or PostgreSQL schema, catches up when it is next opened. Never edit or reorder a
migration that has shipped.

Tables:

``hour_slots``
    One row per meter and UTC hour: the hour's pulses, the meter's cumulative pulses at the end
    of the hour (so a reading needs one row, not ten years of them), and the 360 slot counts as a
    :mod:`codec <s0pcm.store.codec>` blob (NULL once retention dropped the detail). Keyed
    ``(meter, hour)`` without a rowid: the key is the row's only index.
``day_total``, ``month_total``
    Local-time rollups keyed ``YYYYMMDD`` and ``YYYYMM`` (see :mod:`s0pcm.store.buckets`), in the
    time zone recorded in ``meta`` under ``tz``.
``meter``
    Meter keys and the small integers the other tables use for them.
``event``, ``anchor``, ``state``, ``meta``
    Device events, reading anchors, the ledger's JSON state per module, store settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["MIGRATIONS", "TABLES", "render"]

#: ``(name, statements)`` in the order they apply.
MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "0001_initial",
        (
            """CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ){WITHOUT_ROWID}""",
            """CREATE TABLE meter (
                id INTEGER PRIMARY KEY,
                key TEXT NOT NULL UNIQUE
            )""",
            """CREATE TABLE hour_slots (
                meter INTEGER NOT NULL,
                hour INTEGER NOT NULL,
                pulses {INT8} NOT NULL,
                total {INT8} NOT NULL,
                slots {BLOB},
                PRIMARY KEY (meter, hour)
            ){WITHOUT_ROWID}""",
            """CREATE TABLE day_total (
                meter INTEGER NOT NULL,
                day INTEGER NOT NULL,
                pulses {INT8} NOT NULL,
                PRIMARY KEY (meter, day)
            ){WITHOUT_ROWID}""",
            """CREATE TABLE month_total (
                meter INTEGER NOT NULL,
                month INTEGER NOT NULL,
                pulses {INT8} NOT NULL,
                PRIMARY KEY (meter, month)
            ){WITHOUT_ROWID}""",
            """CREATE TABLE event (
                id {ID},
                at {REAL} NOT NULL,
                kind TEXT NOT NULL,
                module TEXT NOT NULL,
                meter TEXT,
                value {REAL},
                detail TEXT NOT NULL
            )""",
            "CREATE INDEX event_at ON event (at)",
            """CREATE TABLE anchor (
                meter TEXT NOT NULL,
                at {REAL} NOT NULL,
                kind TEXT NOT NULL,
                reading {REAL} NOT NULL,
                pulses_per_unit {REAL} NOT NULL,
                PRIMARY KEY (meter, at, kind, reading, pulses_per_unit)
            ){WITHOUT_ROWID}""",
            """CREATE TABLE state (
                module TEXT PRIMARY KEY,
                document TEXT NOT NULL,
                updated_at {REAL} NOT NULL
            ){WITHOUT_ROWID}""",
        ),
    ),
)

#: The data tables and their columns, in an order that copies cleanly (backup to SQLite).
TABLES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("meta", ("key", "value")),
    ("meter", ("id", "key")),
    ("hour_slots", ("meter", "hour", "pulses", "total", "slots")),
    ("day_total", ("meter", "day", "pulses")),
    ("month_total", ("meter", "month", "pulses")),
    ("event", ("id", "at", "kind", "module", "meter", "value", "detail")),
    ("anchor", ("meter", "at", "kind", "reading", "pulses_per_unit")),
    ("state", ("module", "document", "updated_at")),
)


def render(statement: str, dialect: Mapping[str, str]) -> str:
    """``statement`` with the backend's types filled in."""
    return statement.format_map(dialect)
