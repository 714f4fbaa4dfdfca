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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = ["BUILD_TIME", "STEP_SECONDS", "Timekeeper", "format_step"]

#: No record is stamped before this (2026-11-01 00:00 UTC): the clock of a Pi that booted without
#: network says 1970, or the day its image was made.
BUILD_TIME: Final = 1_793_491_200.0
#: The wall clock moving this much more (or less) than the monotonic clock between two looks is a
#: step. NTP slews far slower (at most 0.5 ms a second); a step is what NTP does above 0.128 s.
STEP_SECONDS: Final = 2.0


class Timekeeper:
    """The wall clock for stamps, watched against the monotonic clock for steps."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        floor: float = BUILD_TIME,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        #: Stamps before this are wrong (see the module docstring); it only moves forward.
        self.floor = floor
        self._offset = wall() - monotonic()

    def now(self) -> float:
        return self._wall()

    def step(self) -> float | None:
        """Seconds the wall clock stepped since the last look (None: it did not)."""
        offset = self._wall() - self._monotonic()
        skew, self._offset = offset - self._offset, offset
        if abs(skew) <= STEP_SECONDS:
            return None
        if skew < 0:
            # The clock was ahead, and so is what it stamped: the history no longer bounds it.
            self.floor = max(BUILD_TIME, self.floor + skew)
        return skew

    def sane(self, at: float) -> bool:
        """Whether ``at`` can be a true time: not before the build, nor the stored history."""
        return at >= self.floor

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
            # 9.99 min is "10 min" (a measured step is a hair off the round figure).
            return f"{sign}{value:.0f} {unit}" if value >= 9.95 else f"{sign}{value:.1f} {unit}"
    return f"{sign}{size:.0f} s"
