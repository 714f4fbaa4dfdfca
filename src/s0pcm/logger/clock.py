"""Time you can trust on a computer without a real-time clock.

A Raspberry Pi boots with a stale wall clock (the last shutdown, or 1970) and NTP steps it later,
forwards by hours or days, sometimes back a few seconds. Two rules keep every pulse on its day:

* **Steps are seen, not lived through.** The wall clock is compared with the monotonic clock at
  every record; when the two disagree by more than :data:`STEP_SECONDS` the wall clock stepped.
  The logger then moves everything it keeps in wall time by the step (the ledger's last records,
  records waiting for a sane clock), so a step is one event, never a gap, a spike or a rate.
* **A clock that is clearly wrong stamps nothing.** Before :data:`BUILD_TIME` (a release cannot
  run before it was made) or before the last record already stored, the wall clock is wrong;
  records received meanwhile wait (in memory, and in the journal) until it is right. A step
  puts them where they belong; if the clock comes right by itself (no step seen: it was only a
  little behind), they are stamped from the last good moment on, and an event says so.
* **Nor does one the system calls unsynchronised, just after boot.** When a time service runs
  (systemd-timesyncd, chrony, ntpd) and the kernel still says the clock is not synchronised,
  in the first :data:`SYNC_GRACE` seconds after boot, records wait for its first
  synchronisation too (which usually steps the clock). A Pi without network never
  synchronises: after the grace its clock is what there is, and nothing waits for it.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from typing import Final

__all__ = [
    "BUILD_TIME",
    "STEP_SECONDS",
    "SYNC_GRACE",
    "Timekeeper",
    "format_step",
    "unsynchronised",
]

#: No record is stamped before this (2026-11-01 00:00 UTC): the clock of a Pi that booted without
#: network says 1970, or the day its image was made.
BUILD_TIME: Final = 1_793_491_200.0
#: The wall clock moving this much more (or less) than the monotonic clock between two looks is a
#: step. NTP slews far slower (at most 0.5 ms a second); a step is what NTP does above 0.128 s.
STEP_SECONDS: Final = 2.0
#: Seconds after boot in which an unsynchronised clock is waited for (NTP needs a network, a
#: DNS answer and a few polls: a minute or two on a Pi's Wi-Fi).
SYNC_GRACE: Final = 900.0
#: Where a running time service leaves a mark (systemd-timesyncd, chrony, ntpd).
TIME_SERVICES: Final = (
    "/run/systemd/timesync",
    "/run/chrony",
    "/run/chronyd.pid",
    "/run/ntpd.pid",
    "/var/run/ntpd.pid",
)
_TIME_ERROR: Final = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC)


def _never() -> bool:
    return False


def unsynchronised() -> bool:
    """Whether the system says, now, that its clock is not synchronised yet and will be: a
    time service runs, the kernel's adjtimex(2) answers TIME_ERROR, and the machine booted less
    than :data:`SYNC_GRACE` seconds ago. False wherever any of it cannot be known."""
    if not any(os.path.exists(path) for path in TIME_SERVICES):
        return False
    try:
        if time.clock_gettime(time.CLOCK_BOOTTIME) > SYNC_GRACE:
            return False
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: only read
        state: int = ctypes.CDLL(None, use_errno=True).adjtimex(timex)
    except (AttributeError, OSError):
        return False
    return state == _TIME_ERROR


class Timekeeper:
    """The wall clock for stamps, watched against the monotonic clock for steps."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        floor: float = BUILD_TIME,
        unsynced: Callable[[], bool] = unsynchronised,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._unsynced = unsynced
        #: Stamps before this are wrong (see the module docstring); it only moves forward.
        self.floor = floor
        self._offset = self._skew_free_offset()

    def now(self) -> float:
        return self._wall()

    def step(self) -> float | None:
        """Seconds the wall clock stepped since the last look (None: it did not)."""
        offset = self._skew_free_offset()
        skew, self._offset = offset - self._offset, offset
        if abs(skew) <= STEP_SECONDS:
            return None
        if skew < 0:
            # The clock was ahead, and so is what it stamped: the history no longer bounds it.
            self.floor = max(BUILD_TIME, self.floor + skew)
        return skew

    def _skew_free_offset(self) -> float:
        """Wall minus monotonic time, read between two monotonic readings: a process held up
        between its two clock reads (a busy Pi, a swapped-out page) must not look like a step.
        A sample that took longer than a fraction of a step is taken again."""
        for _ in range(3):
            before = self._monotonic()
            wall = self._wall()
            after = self._monotonic()
            if after - before < STEP_SECONDS / 4:
                break
        return wall - (before + after) / 2

    def sane(self, at: float) -> bool:
        """Whether ``at`` can be a true time: not before the build, nor the stored history, nor
        stamped by a clock the system says is not synchronised yet."""
        if at < self.floor:
            return False
        if self._unsynced():
            return False
        self._unsynced = _never  # synchronised once (or past the grace): asked no more
        return True

    def why(self, at: float) -> str:
        """Why ``at`` is not sane, for the log."""
        if at < BUILD_TIME:
            return "before this release was made"
        if at < self.floor:
            return "before the last record stored"
        return "and the system says it is not synchronised yet"

    def raise_floor(self, at: float | None) -> None:
        """Nothing from now on is stamped before ``at`` (the last record stored)."""
        if at is not None and at > self.floor:
            self.floor = at


def format_step(seconds: float) -> str:
    """``+334 d``, ``-20 s``, ``+2.5 h``: a step in the unit a person reads."""
    sign = "+" if seconds >= 0 else "-"
    size = abs(seconds)
    for unit, length in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if size >= length:
            value = size / length
            # 9.99 min is "10 min", 59.98 min "1 h" (a measured step is a hair off the round
            # figure); 2.5 h keeps its decimal.
            whole = value >= 9.95 or abs(value - round(value)) < 0.05
            return f"{sign}{value:.0f} {unit}" if whole else f"{sign}{value:.1f} {unit}"
    return f"{sign}{size:.0f} s"
