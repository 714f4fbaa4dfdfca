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

import contextlib
import errno
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..diskcheck import diagnose
from ..errors import ProtocolError, StoreError
from ..link.events import Connected, Disconnected
from ..lock import LockFile
from ..protocol import Header, Rejected, Telegram, parse_line

__all__ = ["Entry", "Journal"]

log = logging.getLogger(__name__)

#: How far back a torn last line is looked for: an entry is one record, far shorter than this.
_TAIL: Final = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
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
        #: Why the last write failed (None: the journal is being written).
        self.problem: str | None = None
        #: Set when a write succeeds after failing: the disk is back, and what only memory
        #: holds (the entries not written meanwhile) should be committed now, not after the
        #: commit's back-off (a crash in between would lose them). The logger clears it.
        self.recovered = False
        if readonly:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
        except OSError as e:
            raise StoreError(str(path), diagnose(self.lock.path, e)) from None
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
            self._cut_torn_tail()
        except OSError as e:
            self.lock.release()
            raise StoreError(str(path), diagnose(path, e)) from None
        except BaseException:
            self.lock.release()
            raise

    def _cut_torn_tail(self) -> None:
        """A line an earlier process left half-written (a power cut mid-write) is cut off, so
        that the next entry starts a line of its own instead of making both unreadable. What
        was torn is lost either way: its record is in the module's later totals."""
        if not self._size:
            return
        start = max(0, self._size - _TAIL)
        tail = os.pread(self._fd, self._size - start, start)
        if tail.endswith(b"\n"):
            return
        end = tail.rfind(b"\n")
        keep = start + end + 1 if end >= 0 else (0 if start == 0 else self._size)
        if keep != self._size:
            log.warning("journal %s: cutting off a torn last line (%d bytes)",
                        self.path, self._size - keep)  # fmt: skip
            os.ftruncate(self._fd, keep)
            self._size = keep

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
        self._write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")

    def _write(self, data: bytes) -> bool:
        """One write() per entry. A full or failing disk must not stop the logger: the entry is
        then not journalled (the counts stay in memory, and the module's totals back them), a
        torn part of it is cut off again so that it cannot swallow the next entry, and the next
        entry tries again. Returns whether the entry is in the journal."""
        try:
            written = os.write(self._fd, data)
            if written == len(data):
                self._size += written
                if self.problem is not None:
                    log.warning("journal %s is written again", self.path)
                    self.problem = None
                    self.recovered = True
                return True
            error: OSError = OSError(errno.ENOSPC, "short write")
        except OSError as e:
            error = e
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)  # no torn line left behind
        if self.problem is None:
            self.problem = diagnose(self.path, error)
            log.error("journal %s not written (%s); what comes in is kept in memory until "
                      "the next commit", self.path, self.problem)  # fmt: skip
        return False

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
                    record = Rejected(raw=str(doc["r"]), reason=str(doc["why"]))
                elif "up" in doc:
                    record = Connected(at=at, port=str(doc["up"]))
                elif "down" in doc:
                    record = Disconnected(at=at, port=str(doc["down"]), reason=str(doc["why"]))
                else:
                    record = parse_line(str(doc["l"]))
                yield Entry(seq=seq, module=str(doc["m"]), at=at, record=record)
            except (ValueError, KeyError, TypeError, ProtocolError) as e:
                log.warning("%s:%d: skipping unreadable journal entry (%s)", self.path, n, e)

    def clear(self) -> None:
        """Empty the journal (after a commit has made its entries durable)."""
        try:
            os.ftruncate(self._fd, 0)
            self._size = 0
        except OSError as e:
            # Only on a broken disk; the entries are committed, so a replay finds them done.
            log.error("journal %s not emptied: %s", self.path, diagnose(self.path, e))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.lock.release()
