"""The crash journal: every record received since the last database commit, appended as it comes.

The store commits every few minutes to spare the SD card. Between commits the counts live in
memory; the module's total recovers them after a crash, except when the module restarts before
the logger is back (its old total is gone). The journal closes that hole cheaply: one short
``write()`` per record, no fsync. A killed process loses nothing the kernel already has, and the
kernel writes the file's one or two dirty pages back now and then, far fewer bytes than a database
commit per record would. After each commit the journal is emptied; at start-up what it holds past
the committed sequence number is replayed through the same code that handled it live.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ProtocolError
from .link import Connected, Disconnected
from .lock import LockFile
from .protocol import Header, Rejected, Telegram, parse_line

__all__ = ["Entry", "Journal"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    module: str
    at: float
    #: A line received, or the port coming and going (for health after a crash).
    record: Header | Telegram | Rejected | Connected | Disconnected


class Journal:
    """An append-only file of :class:`Entry`, one JSON object per line.

    Written by one logger only: opening it for writing takes ``<journal>.lock`` first (see
    :mod:`s0pcm.lock`), so a second logger stops before it replays or empties the first one's
    journal. ``readonly``: only read (``status``); creates nothing and takes no lock.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._fd = -1
        self.lock = LockFile(path.with_name(path.name + ".lock"), what=f"journal {path}")
        if readonly:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except BaseException:
            self.lock.release()
            raise

    def running(self) -> str | None:
        """Who is writing this journal now (None: no logger runs on it)."""
        return self.lock.holder_of(self.lock.path)

    def append(self, entry: Entry) -> None:
        record = entry.record
        doc: dict[str, object] = {"s": entry.seq, "m": entry.module, "t": entry.at}
        if isinstance(record, Rejected):
            doc["r"] = record.raw
            doc["why"] = record.reason
        elif isinstance(record, Connected):
            doc["up"] = record.port
        elif isinstance(record, Disconnected):
            doc["down"] = record.port
            doc["why"] = record.reason
        else:
            doc["l"] = record.to_line()
        # One write() per entry: it lands whole in the page cache or not at all.
        os.write(self._fd, json.dumps(doc, separators=(",", ":")).encode() + b"\n")

    def entries(self, *, after: int = 0) -> Iterator[Entry]:
        """Entries with a sequence number above ``after``; a torn last line is skipped."""
        try:
            text = self.path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return
        for n, line in enumerate(text.splitlines(), start=1):
            try:
                doc = json.loads(line)
                seq = int(doc["s"])
                if seq <= after:
                    continue
                at = float(doc["t"])
                record: Header | Telegram | Rejected | Connected | Disconnected
                if "r" in doc:
                    record = Rejected(str(doc["r"]), str(doc["why"]))
                elif "up" in doc:
                    record = Connected(at, str(doc["up"]))
                elif "down" in doc:
                    record = Disconnected(at, str(doc["down"]), str(doc["why"]))
                else:
                    record = parse_line(str(doc["l"]))
                yield Entry(seq, str(doc["m"]), at, record)
            except (ValueError, KeyError, TypeError, ProtocolError) as e:
                log.warning("%s:%d: skipping unreadable journal entry (%s)", self.path, n, e)

    def clear(self) -> None:
        """Empty the journal (after a commit has made its entries durable)."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.lock.release()
