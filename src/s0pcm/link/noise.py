"""A quiet, telling log of the lines a port gives that are not valid S0PCM output.

A bad cable, a wrong device on the port or a module in trouble can give a rejected line every
few milliseconds; one log line each fills an SD card (5.6 MB of garbage gave 10 MB of log). So the
first few rejected lines are shown whole, then one line a minute sums them up by reason. A port
that talks but has said nothing valid for minutes is probably not an S0PCM at all: one warning
says so, with a guess at what it is. Sans-io: the link feeds it and logs what it returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ["NoiseLog", "guess_device"]

#: Rejected lines shown whole before they are only summed up (again after a quiet minute).
SHOWN: Final = 5
#: Seconds the first summary covers, and the longest one.
WINDOW: Final = 60.0
MAX_WINDOW: Final = 3600.0
#: Seconds a talking port may go without one valid line before it is called not an S0PCM.
SILENT_VALID: Final = 120.0

_P1: Final = re.compile(r"^(/[A-Z]{3}\d|\d-\d:\d+\.\d+\.\d+\(|!\w{4}$)")
_NMEA: Final = re.compile(r"^\$(GP|GN|GL|GA)[A-Z]{3},")
_AT: Final = re.compile(r"^(AT|OK|ERROR|RING|\+C)")


def guess_device(lines: list[str]) -> str:
    """What a device that prints ``lines`` (rejected ones) probably is, in a few words."""
    text = [line for line in lines if line]
    if not text:
        return "it sends no whole lines"
    if any(_P1.match(line) for line in text):
        return "it looks like a smart meter's P1 port (DSMR), not an S0PCM"
    if any(_NMEA.match(line) for line in text):
        return "it looks like a GPS receiver (NMEA), not an S0PCM"
    if any(_AT.match(line) for line in text):
        return "it looks like a modem (AT commands), not an S0PCM"
    printable = sum(ch.isprintable() for line in text for ch in line)
    if printable < 0.7 * sum(map(len, text)):
        return "it sends mostly unprintable bytes: a wrong speed or framing, or not an S0PCM"
    if any("ID:" in line for line in text):
        return "its lines look like S0PCM records, all damaged: check the cable and its length"
    return f"it sends lines like {text[-1][:60]!r}"


@dataclass(slots=True)
class NoiseLog:
    """Feed it every line's fate; it returns the log lines worth writing (often none).

    Rejected lines are counted in windows. The first :data:`SHOWN` lines of a window are shown
    whole; a window that had more ends with one summary by reason, and the next window is twice
    as long (up to :data:`MAX_WINDOW`) and shows nothing whole, so a day of garbage is a few
    dozen lines. A quiet window (no rejected line) starts it all over.
    """

    counts: dict[str, int] = field(default_factory=dict)
    window_start: float | None = None
    window: float = WINDOW
    show_whole: bool = True
    shown: int = 0
    #: When the port last gave a valid line (or was opened), and whether the warning went out.
    valid_at: float | None = None
    warned: bool = False
    #: The last few rejected lines, for the guess.
    recent: list[str] = field(default_factory=list)

    def opened(self, now: float) -> None:
        """A new connection: the clock for "nothing valid" starts again."""
        self.valid_at = now
        self.warned = False

    def valid(self, now: float) -> list[str]:
        """A valid line: it ends a window that has run out, and any "not an S0PCM" suspicion."""
        out = self._flush(now)
        if self.warned:
            out.append("the port gives valid S0PCM lines again")
        self.valid_at, self.warned = now, False
        return out

    def rejected(self, now: float, reason: str, raw: str) -> list[str]:
        out = self._flush(now)
        if self.window_start is None:
            self.window_start, self.shown = now, 0
        key = reason.split(" (")[0].split(":")[0]
        self.counts[key] = self.counts.get(key, 0) + 1
        self.recent = [*self.recent[-9:], raw[:200]]
        if self.show_whole and self.shown < SHOWN:
            self.shown += 1
            more = " (more are summed up)" if self.shown == SHOWN else ""
            out.append(f"rejected line: {reason}: {raw[:200]!r}{more}")
        if self.valid_at is None:
            self.valid_at = now
        if not self.warned and now - self.valid_at >= SILENT_VALID:
            self.warned = True
            minutes = (now - self.valid_at) / 60
            out.append(
                f"nothing valid from this port for {minutes:.0f} minutes: is it an S0PCM? "
                f"{guess_device(self.recent)}"
            )
        return out

    def _flush(self, now: float) -> list[str]:
        """The summary of a window that has run out, if it hid lines."""
        start = self.window_start
        if start is None:
            return []
        end = start + self.window
        if now < end:
            return []
        counts, self.counts, self.window_start = self.counts, {}, None
        total = sum(counts.values())
        quiet = now - end >= self.window  # a whole window without a rejected line since
        out: list[str] = []
        if total > self.shown:
            parts = ", ".join(f"{n}x {why}" for why, n in sorted(counts.items(), key=_most))
            out.append(f"rejected {total} lines in {self.window / 60:.0f} min: {parts}")
            self.window, self.show_whole = min(self.window * 2, MAX_WINDOW), False
        if quiet or total <= self.shown:
            self.window, self.show_whole = WINDOW, True
        return out


def _most(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
