"""Capture files: what a module printed, replayed offline through the same decoder.

A capture is text, one line as the module printed it per line, optionally preceded by the time it
was received: a Unix time (``1795691150.94 ID:8237:I:10:...``) or an ISO 8601 time with offset
(``2026-11-26T11:05:51+01:00 ID:8237:...``). Lines without a time are placed ``interval``
seconds apart from ``start``, as the module would have printed them. ``s0pcm read --json`` and
the daemon's journal are captures too, in JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..errors import CaptureError
from ..protocol import Decoder, Header, Rejected, Telegram

__all__ = ["read_capture"]


def _stamp(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def read_capture(
    path: Path, *, start: float | None = None, interval: float = 10.0
) -> Iterator[tuple[int, float, Header | Telegram | Rejected]]:
    """``(bytes read so far, time, record)`` for every line of the capture, in order.

    Lines are framed and checked by :class:`~s0pcm.protocol.Decoder` exactly as on the port, so
    a capture with garbage gives the same rejected lines the live reader gave.
    """
    decoder = Decoder()
    decoder.feed(b"\n")  # a capture starts at a line start: no partial first line
    clock = start
    done = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            done += len(raw)
            text = raw.decode("ascii", errors="replace").strip("\r\n")
            at: float | None = None
            line = text
            if text.startswith("{"):
                try:
                    doc = json.loads(text)
                    at = float(doc["at"])
                    kind = doc["type"]
                except (ValueError, KeyError, TypeError):
                    raise CaptureError("not a JSON capture line", file=str(path), line=n) from None
                if kind == "telegram":
                    regs = ":".join(
                        f"M{r['register']}:{r['interval']}:{r['total']}" for r in doc["registers"]
                    )
                    line = f"ID:{doc['module_id']}:I:{doc['interval']}:{regs}"
                elif kind == "header":
                    line = f"/{doc['module_id']}:{' ' if doc.get('space') else ''}{doc['text']}"
                elif kind == "rejected":
                    line = str(doc.get("raw", ""))
                else:
                    continue  # connected, disconnected, ...
            else:
                head, sep, rest = text.partition(" ")
                stamp = _stamp(head) if sep else None
                if stamp is not None:
                    at, line = stamp, rest
            if at is None:
                if clock is None:
                    raise CaptureError(
                        "line without a time: give the capture's start time (--start)",
                        file=str(path),
                        line=n,
                    )
                at = clock
            for record in decoder.feed(line.encode("ascii", errors="replace") + b"\n"):
                yield done, at, record
                if isinstance(record, Telegram) and clock is not None:
                    clock = max(clock, at) + interval
