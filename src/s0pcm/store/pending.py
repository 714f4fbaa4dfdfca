"""What was added since the last commit, kept in memory in the shape the queries need.

The daemon adds a record per register every 10 s but commits every few minutes (an SD card
wears out with every write). Until then the data lives here: slot counts per meter and UTC hour,
the hour sums, the local day and month rollup deltas (worked out as the pulses come in, so a
commit is a handful of upserts), events, anchors and state documents. Queries add these on top of
what the database holds, which is why a dashboard is live between commits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..calendar import SLOTS_PER_HOUR, Calendar
from ..events import DeviceEvent
from .base import Anchor

__all__ = ["Pending"]


class Pending:
    """The write buffer of one store."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        #: meter -> UTC hour (hours since the epoch) -> the hour's slot counts (360).
        self.slots: dict[str, dict[int, list[int]]] = {}
        #: meter -> UTC hour -> pulses in that hour (the sum of ``slots``).
        self.sums: dict[str, dict[int, int]] = {}
        #: meter -> day key (YYYYMMDD) / month key (YYYYMM) -> pulses to add to the rollup.
        self.days: dict[str, dict[int, int]] = {}
        self.months: dict[str, dict[int, int]] = {}
        self.events: list[DeviceEvent] = []
        self.anchors: list[Anchor] = []
        #: Anchors to remove at the commit (a correction undone).
        self.removed: list[Anchor] = []
        #: module -> the state as JSON text (serialised when set, so later edits of the caller's
        #: dict do not leak in, and a value that is not JSON-able fails at once).
        self.states: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.slots or self.events or self.anchors or self.removed or self.states)

    # -- adding --------------------------------------------------------------------------------

    def add(self, meter: str, slot: int, pulses: int) -> None:
        hour, index = divmod(slot, SLOTS_PER_HOUR)
        counts = self._hour(meter, hour)
        counts[index] += pulses
        sums = self.sums[meter]
        sums[hour] += pulses
        for first, end, day, month in self.calendar.hour_segments(hour):
            if first <= index < end:
                self._roll(meter, day, month, pulses)
                break

    def add_hour(self, meter: str, hour: int, counts: Sequence[int]) -> None:
        known = self.slots.get(meter)
        if known is None or hour not in known:
            full = list(counts)
            full.extend([0] * (SLOTS_PER_HOUR - len(full)))
            self.slots.setdefault(meter, {})[hour] = full
            self.sums.setdefault(meter, {})[hour] = 0
        else:
            full = known[hour]
            for i, n in enumerate(counts):
                full[i] += n
        segments = self.calendar.hour_segments(hour)
        if len(segments) == 1:
            pulses = sum(counts)
            self.sums[meter][hour] += pulses
            _, _, day, month = segments[0]
            self._roll(meter, day, month, pulses)
            return
        for first, end, day, month in segments:
            pulses = sum(counts[first:end])
            self.sums[meter][hour] += pulses
            self._roll(meter, day, month, pulses)

    def add_anchor(self, anchor: Anchor) -> None:
        if anchor in self.removed:
            self.removed.remove(anchor)
        if anchor not in self.anchors:
            self.anchors.append(anchor)

    def remove_anchor(self, anchor: Anchor) -> None:
        if anchor in self.anchors:
            self.anchors.remove(anchor)
        elif anchor not in self.removed:
            self.removed.append(anchor)

    def set_state(self, module: str, state: Mapping[str, Any]) -> None:
        self.states[module] = json.dumps(dict(state), sort_keys=True, separators=(",", ":"))

    def _hour(self, meter: str, hour: int) -> list[int]:
        hours = self.slots.setdefault(meter, {})
        counts = hours.get(hour)
        if counts is None:
            counts = hours[hour] = [0] * SLOTS_PER_HOUR
            self.sums.setdefault(meter, {})[hour] = 0
        return counts

    def _roll(self, meter: str, day: int, month: int, pulses: int) -> None:
        if pulses:
            days = self.days.setdefault(meter, {})
            days[day] = days.get(day, 0) + pulses
            months = self.months.setdefault(meter, {})
            months[month] = months.get(month, 0) + pulses

    # -- reading -------------------------------------------------------------------------------

    def before(self, meter: str, slot: int) -> int:
        """Buffered pulses of ``meter`` in slots before ``slot``."""
        hour, index = divmod(slot, SLOTS_PER_HOUR)
        total = sum(n for h, n in self.sums.get(meter, {}).items() if h < hour)
        counts = self.slots.get(meter, {}).get(hour)
        if counts is not None and index:
            total += sum(counts[:index])
        return total

    def total(self, meter: str) -> int:
        return sum(self.sums.get(meter, {}).values())
