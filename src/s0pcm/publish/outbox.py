"""The outbox: the MQTT messages not yet acknowledged, in order, kept on disk with the counts.

The logger never waits on the broker: its listener only :meth:`Outbox.put`\\ s an update's
messages (in memory, no disk), and the sender takes them in order (:meth:`~Outbox.peek`) and
removes each on its PUBACK (:meth:`~Outbox.ack`).

**On disk with the counts, not once a record.** :meth:`Outbox.sync` writes what changed since
the last sync (the messages still waiting, those gone), in one SQLite transaction; the logger
calls it in its commit, just before the store's, so the file always holds at least every
message of the records the store holds. The records after that commit are in the journal, and a
restart replays them through the same encoders: their messages are made again. So a broker
away for a day, a logger killed meanwhile, or both, lose nothing within the bound, and an SD
card is not written to once a record (while the broker keeps up, a sync writes nothing at all).
The price is at-least-once: after a crash, messages sent since the last commit are sent again
(retained ones are harmless; events may arrive twice).

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
import itertools
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
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
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
    """A bounded, ordered queue of MQTT messages, in memory and, at each :meth:`sync`, in one
    SQLite file (see the module's documentation).

    Safe to use from more than one thread (one lock): the logger puts and sends on its event
    loop's thread, and a commit may come from a request's worker thread.
    """

    def __init__(self, path: Path, *, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._db = self._open(path)
        #: What waits, by sequence number, oldest first; and the entry of each retained topic.
        self._queue: dict[int, Message] = {}
        self._retained: dict[str, int] = {}
        for seq, topic, payload, qos, retain in self._db.execute(
            "SELECT seq, topic, payload, qos, retain FROM outbox ORDER BY seq"
        ):
            self._queue[seq] = Message(
                topic=topic, payload=bytes(payload), retain=bool(retain), qos=qos
            )
            if retain:
                self._retained[topic] = seq
        #: The sequence numbers the file holds.
        self._on_disk: set[int] = set(self._queue)
        meta = dict(self._db.execute("SELECT key, value FROM outbox_meta").fetchall())
        #: Messages dropped by the overflow policy, ever (kept in the file).
        self.dropped: int = meta.get("dropped", 0)
        self._dropped_on_disk = self.dropped
        self._next: int = max([meta.get("next", 1), *(seq + 1 for seq in self._queue)])
        #: The topics of the last announcement (:meth:`announce`), and as the file has them.
        self._announced: frozenset[str] = frozenset(
            t for (t,) in self._db.execute("SELECT topic FROM announced")
        )
        self._announced_on_disk = self._announced

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
        return len(self._queue)

    def put(self, messages: Iterable[Message]) -> int:
        """Queue ``messages``; returns how many old events the overflow policy dropped to make
        room (0 almost always)."""
        with self._lock:
            return self._put(messages)

    def announce(self, messages: Sequence[Message]) -> tuple[int, int]:
        """Queue a whole announcement (every discovery config, retained), and before it an
        empty retained message for each topic the announcement before held and this one does
        not: a meter taken out or switched off, a module whose id became known. The topics
        announced are kept in the file (at :meth:`sync`, with these messages), so this holds
        across restarts; a config still announced is never emptied first. Returns (events
        dropped, topics emptied)."""
        keep = frozenset(m.topic for m in messages if m.retain)
        with self._lock:
            gone = [
                Message(topic=t, payload=b"", retain=True) for t in sorted(self._announced - keep)
            ]
            self._announced = keep
            return self._put([*gone, *messages]), len(gone)

    def _put(self, messages: Iterable[Message]) -> int:
        queue, retained = self._queue, self._retained
        for m in messages:
            if m.retain:
                old = retained.get(m.topic)
                if old is not None:
                    del queue[old]
                retained[m.topic] = self._next
            queue[self._next] = m
            self._next += 1
        over = len(queue) - self.limit
        if over <= 0:
            return 0
        events = list(itertools.islice((seq for seq, m in queue.items() if not m.retain), over))
        for seq in events:
            del queue[seq]
        self.dropped += len(events)
        return len(events)

    def peek(self, limit: int = 100) -> list[Entry]:
        """The oldest ``limit`` messages waiting, oldest first (they stay until acknowledged)."""
        with self._lock:
            return [
                Entry(seq=seq, message=m) for seq, m in itertools.islice(self._queue.items(), limit)
            ]

    def ack(self, seq: int) -> None:
        """The broker has message ``seq``: remove it. A message replaced meanwhile (a newer
        value of its retained topic) or dropped is already gone: nothing happens."""
        with self._lock:
            m = self._queue.pop(seq, None)
            if m is not None and m.retain and self._retained.get(m.topic) == seq:
                del self._retained[m.topic]

    def sync(self) -> int:
        """Write what changed since the last sync, in one transaction; returns the rows
        written (0, and no write at all, when nothing changed: the broker kept up)."""
        with self._lock:
            queue = self._queue
            gone = [seq for seq in self._on_disk if seq not in queue]
            new = [(seq, m) for seq, m in queue.items() if seq not in self._on_disk]
            announced = self._announced != self._announced_on_disk
            counted = self.dropped != self._dropped_on_disk
            if not (gone or new or announced or counted):
                return 0
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM outbox WHERE seq = ?", ((seq,) for seq in gone))
                db.executemany(
                    "INSERT INTO outbox (seq, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)",
                    ((seq, m.topic, m.payload, m.qos, int(m.retain)) for seq, m in new),
                )
                if announced:
                    db.execute("DELETE FROM announced")
                    db.executemany(
                        "INSERT INTO announced (topic) VALUES (?)",
                        ((t,) for t in sorted(self._announced)),
                    )
                db.executemany(
                    "INSERT INTO outbox_meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (("dropped", self.dropped), ("next", self._next)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._on_disk = set(queue)
            self._dropped_on_disk = self.dropped
            self._announced_on_disk = self._announced
            return len(gone) + len(new)

    def close(self, *, sync: bool = True) -> None:
        """:meth:`sync` (unless the caller just did), then close the file."""
        try:
            if sync:
                self.sync()
        finally:
            with self._lock:
                self._db.close()
