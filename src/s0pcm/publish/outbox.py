"""The outbox: every MQTT message on disk before it is sent, removed when the broker has it.

The logger never waits on the broker: its listener only :meth:`Outbox.put`\\ s an update's
messages (one SQLite transaction, no fsync in WAL mode with ``synchronous=NORMAL``: a power cut
may lose the last moments, a crash of the process loses nothing), and the sender takes them in
order (:meth:`~Outbox.peek`) and removes each on its PUBACK (:meth:`~Outbox.ack`). A broker that
is away for a day, or a logger restarted meanwhile, loses nothing within the bound.

What is kept:

* A **retained** topic (state, discovery, availability) keeps only its newest unsent message:
  Home Assistant and Domoticz need the newest reading, and replaying old states would book
  consumption at reconnect time. The newest goes to the end of the queue, after what came
  before it.
* A topic that is **not retained** (the event stream) keeps every message, in order.

Overflow policy: at most ``limit`` messages wait. A put past it drops the **oldest messages that
are not retained** (the oldest events), counts them (:attr:`Outbox.dropped`, kept in the file)
and returns how many, so the caller can say so (the publisher: a log line and an event when it
starts dropping, and again with the count when there is room). Retained messages are
never dropped: there is one per topic, so they are bounded by the number of topics, and each is
the only copy of a current value.

The file sits next to the database (:func:`outbox_path`), readable by its owner only (mode
0600): payloads name the meters and the household's consumption.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..config import LoggerSettings
from . import Message

__all__ = ["Entry", "Outbox", "outbox_path"]

log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_retained ON outbox (topic) WHERE retain = 1;
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS announced (topic TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def outbox_path(settings: LoggerSettings) -> Path:
    """``<database>.outbox`` next to the SQLite file, or next to the journal (PostgreSQL)."""
    base = settings.database_path or settings.journal
    return base.with_name(base.stem + ".outbox")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A message waiting in the outbox; ``seq`` orders them and acknowledges one."""

    seq: int
    message: Message


class Outbox:
    """A bounded, ordered, on-disk queue of MQTT messages (one SQLite file).

    Safe to use from more than one thread (one lock around the connection), though the logger
    puts and sends on its event loop's thread.
    """

    def __init__(self, path: Path, *, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._db = self._open(path)
        row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        #: Messages waiting, kept here so that a put costs no count of the table.
        self._depth: int = row[0]
        row = self._db.execute("SELECT value FROM outbox_meta WHERE key = 'dropped'").fetchone()
        #: Messages dropped by the overflow policy, ever (kept in the file).
        self.dropped: int = row[0] if row else 0

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        """The file, made the owner's alone before SQLite opens it (its ``-wal`` and ``-shm``
        take its mode); a file that is not an outbox is moved aside and a new one started:
        losing unsent messages beats a logger that cannot publish."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for attempt in (1, 2):
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.executescript(_SCHEMA)
                return db
            except sqlite3.DatabaseError as e:
                db.close()
                if attempt == 2:
                    raise
                aside = path.with_name(f"{path.name}.broken-{time.time():.0f}")
                log.error("the MQTT outbox %s is unreadable (%s): moved to %s, starting a new one",
                          path, e, aside)  # fmt: skip
                path.rename(aside)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        path.with_name(path.name + suffix).unlink()
        raise AssertionError("unreachable")  # pragma: no cover

    def __len__(self) -> int:
        """Messages waiting."""
        return self._depth

    def put(self, messages: Iterable[Message]) -> int:
        """Queue ``messages`` in one transaction; returns how many old events the overflow
        policy dropped to make room (0 almost always)."""
        return self._put(list(messages), announced=None)

    def announce(self, messages: Sequence[Message]) -> tuple[int, int]:
        """Queue a whole announcement (every discovery config, retained), and before it an
        empty retained message for each topic the announcement before held and this one does
        not: a meter taken out or switched off, a module whose id became known. The topics
        announced are kept in the file, so this holds across restarts; a config still
        announced is never emptied first. Returns (events dropped, topics emptied)."""
        current = [m for m in messages if m.retain]
        keep = {m.topic for m in current}
        with self._lock:
            before = [t for (t,) in self._db.execute("SELECT topic FROM announced ORDER BY topic")]
        gone = [Message(topic=t, payload=b"", retain=True) for t in before if t not in keep]
        return self._put([*gone, *messages], announced=keep), len(gone)

    def _put(self, messages: list[Message], *, announced: set[str] | None) -> int:
        """:meth:`put`, and with ``announced`` the topics of the announcement now, kept in the
        same transaction as its messages."""
        rows = [(m.topic, m.payload, m.qos, 1 if m.retain else 0) for m in messages]
        if not rows:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if announced is not None:
                    db.execute("DELETE FROM announced")
                    db.executemany(
                        "INSERT INTO announced (topic) VALUES (?)", ((t,) for t in announced)
                    )
                depth = self._depth
                for topic, payload, qos, retain in rows:
                    if retain:
                        gone = db.execute(
                            "DELETE FROM outbox WHERE retain = 1 AND topic = ?", (topic,)
                        )
                        depth -= gone.rowcount
                    db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                        (topic, payload, qos, retain),
                    )
                    depth += 1
                dropped = 0
                if depth > self.limit:
                    cut = db.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE retain = 0 "
                        "ORDER BY seq LIMIT ?)",
                        (depth - self.limit,),
                    )
                    dropped = cut.rowcount
                    depth -= dropped
                    db.execute(
                        "INSERT INTO outbox_meta (key, value) VALUES ('dropped', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth = depth
            self.dropped += dropped
            return dropped

    def peek(self, limit: int = 100) -> list[Entry]:
        """The oldest ``limit`` messages waiting, oldest first (they stay until acknowledged)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, qos, retain FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            Entry(
                seq=seq,
                message=Message(topic=topic, payload=bytes(payload), retain=bool(retain), qos=qos),
            )
            for seq, topic, payload, qos, retain in rows
        ]

    def ack(self, seq: int) -> None:
        """The broker has message ``seq``: remove it. A message replaced meanwhile (a newer
        value of its retained topic) or dropped is already gone: nothing happens."""
        with self._lock:
            gone = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._depth -= gone.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
