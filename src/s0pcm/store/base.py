"""The history store's interface: what the daemon writes and what the API asks.

Two backends implement it: SQLite (the default, one file on the Pi) and PostgreSQL (for scale).
The store deals in *pulses per meter* at 10-second resolution, plus rollups, device events,
reading anchors and the ledger's state; units are the meters' business (see ``s0pcm.meters``).

Writing is buffered: ``add``/``add_event``/``add_anchor``/``set_state`` only touch memory and
``commit`` writes all of it in one transaction. An SD card lives for years when the daemon commits
every few minutes; what a crash loses in between is recovered from the module's total (and the
daemon's journal). Queries see buffered data as well as committed data, so a dashboard is live.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

from ..calendar import SLOT, Resolution
from ..events import DeviceEvent, EventKind

__all__ = ["Anchor", "AnchorKind", "Constants", "Store"]


class AnchorKind(StrEnum):
    #: The reading from the configuration.
    INITIAL = "initial"
    #: The reading was set again (the meter's display says otherwise).
    CORRECTION = "correction"
    #: A new physical meter from this moment on.
    REPLACEMENT = "replacement"


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """The meter's display showed ``reading`` at ``at``; pulses count on from there.

    Readings are anchored, never rewritten: a correction or a replacement adds an anchor, and the
    reading at any instant is the last anchor before it plus the pulses since, divided by the
    anchor's pulses per unit.
    """

    meter: str
    at: float
    reading: float
    pulses_per_unit: float
    kind: AnchorKind = AnchorKind.INITIAL


@dataclass(frozen=True, slots=True)
class Constants:
    """A meter's pulses per unit through time, as its anchors state it.

    The arithmetic of :meth:`Store.reading_at`: from each anchor on, its constant; before the
    first, the first anchor's; a meter without anchors has its configured constant throughout.
    A meter replaced by one with another constant so counts each pulse in the unit of the meter
    that made it, and a period's consumption is the difference of its readings (when no
    correction falls inside it).
    """

    #: ``(from, pulses per unit)``, the first from -inf; consecutive constants differ.
    steps: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, anchors: Sequence[Anchor], default: float) -> Constants:
        if not anchors:
            return cls(((-math.inf, default),))
        steps = [(-math.inf, anchors[0].pulses_per_unit)]
        for a in anchors[1:]:
            if a.pulses_per_unit != steps[-1][1]:
                steps.append((a.at, a.pulses_per_unit))
        return cls(tuple(steps))

    @property
    def current(self) -> float:
        return self.steps[-1][1]

    def at(self, t: float) -> float:
        """The constant in force at ``t``."""
        ppu = self.steps[0][1]
        for start, value in self.steps[1:]:
            if start > t:
                break
            ppu = value
        return ppu

    def units(self, store: Store, meter: str, start: float, end: float, pulses: int) -> float:
        """``pulses``, counted in ``[start, end)``, in units: split where the constant changes
        inside the span (a query per part), else one division."""
        return self.units_of(lambda a, b: store.pulses(meter, a, b), start, end, pulses)

    def units_of(
        self, count: Callable[[float, float], int], start: float, end: float, pulses: int | None
    ) -> float:
        """:meth:`units` with pulses from ``count(a, b)`` (``[a, b)``; ``pulses``: the whole
        span's, when known). The one arithmetic of units, for the store and the live values."""
        cuts = [t for t, _ in self.steps[1:] if start < t < end]
        if not cuts:
            return (count(start, end) if pulses is None else pulses) / self.at(start)
        if pulses == 0:
            return 0.0
        edges = [start, *cuts, end]
        return math.fsum(count(a, b) / self.at(a) for a, b in itertools.pairwise(edges))

    def bucket_units(
        self, store: Store, meter: str, bounds: Sequence[float], pulses: Sequence[int]
    ) -> list[float]:
        """Units per bucket ``[bounds[i], bounds[i + 1])`` of ``pulses[i]``."""
        return [self.units(store, meter, bounds[i], bounds[i + 1], n) for i, n in enumerate(pulses)]


class Store(ABC):
    """History of pulses per meter, rollups, events, anchors and ledger state."""

    def __init__(self, *, tz: ZoneInfo) -> None:
        #: The user's time zone: days, weeks, months and years are local.
        self.tz = tz

    # -- writing (buffered) ------------------------------------------------------------------

    @abstractmethod
    def add(self, meter: str, at: float, pulses: int) -> None:
        """``pulses`` counted for ``meter`` in the record received at ``at`` (Unix time).

        They land in the 10-second slot that contains ``at``; more than one record in a slot add
        up. Pulses recovered after a gap land in one slot too (the gap is an event).
        """

    def add_hour(self, meter: str, hour_start: float, counts: Sequence[int]) -> None:
        """A whole UTC hour of slot counts at once: ``counts[i]`` pulses in the slot starting
        ``hour_start + 10 * i`` (``hour_start`` a multiple of 3600; up to 360 counts, missing
        ones are zeros). Adds to what is there, like :meth:`add`; the fast path for backfills
        and imports."""
        for i, pulses in enumerate(counts):
            if pulses:
                self.add(meter, hour_start + i * SLOT, pulses)

    @abstractmethod
    def add_event(self, event: DeviceEvent) -> None: ...

    @abstractmethod
    def add_anchor(self, anchor: Anchor) -> None:
        """Add a reading anchor; an anchor equal to one already stored is ignored."""

    @abstractmethod
    def remove_anchor(self, anchor: Anchor) -> None:
        """Remove ``anchor`` with the next commit (a correction undone). Pulses are never
        touched: only what the display reading is anchored to."""

    @abstractmethod
    def set_state(self, module: str, state: Mapping[str, Any]) -> None:
        """The ledger's state for ``module`` (JSON-able), written with the next commit."""

    @abstractmethod
    def commit(self) -> None:
        """Write everything buffered in one transaction."""

    # -- reading -------------------------------------------------------------------------------

    @abstractmethod
    def state(self, module: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def meters(self) -> list[str]:
        """Keys of the meters that have pulses or anchors."""

    @abstractmethod
    def pulses(self, meter: str, start: float, end: float) -> int:
        """Pulses added with ``start <= at < end`` (slot resolution)."""

    @abstractmethod
    def series(
        self, meter: str, start: float, end: float, resolution: Resolution
    ) -> list[tuple[float, int]]:
        """Pulses per bucket: ``(bucket start, pulses)`` for every bucket that overlaps
        ``[start, end)``, in order, zeros included. Buckets are 10 s slots, local clock hours
        (23 or 25 on DST days), local days, ISO weeks, local months or local years. Each value
        is the whole bucket's total, also for a first or last bucket that sticks out of the
        range."""

    @abstractmethod
    def since(self, meter: str) -> float | None:
        """When logging of ``meter`` began: the start of the first hour with a record of it
        (None: none yet). Before it a view has no data, which is not zero."""

    @abstractmethod
    def last_pulse(self, meter: str, start: float) -> float | None:
        """The start of the newest slot with pulses of ``meter`` at or after ``start`` (None:
        none): "no flow since", without reading every slot in between."""

    @abstractmethod
    def logged_hours(self, meter: str, start: float, end: float) -> dict[float, int]:
        """The UTC hours in ``[start, end)`` with a record of ``meter`` (the logger marks each
        hour it logs, pulses or not), by start, with their pulses: an hour left out had the
        logger down, which is no data, not zero. One row an hour, no slot detail: cheaper than
        an hourly :meth:`series` where only whole logged hours matter."""

    @abstractmethod
    def intervals(self, meter: str, start: float, end: float) -> list[tuple[float, int]]:
        """The raw 10-second slots with pulses in ``[start, end)``: ``(slot start, pulses)``,
        non-zero slots only."""

    @abstractmethod
    def anchors(self, meter: str) -> list[Anchor]:
        """Anchors of ``meter``, oldest first."""

    @abstractmethod
    def anchor_mark(self) -> tuple[object, ...]:
        """Something that changes whenever an anchor is added, here or by another process (a
        cheap look for whether readings must be read again)."""

    @abstractmethod
    def events(
        self,
        start: float = -math.inf,
        end: float = math.inf,
        *,
        module: str | None = None,
        meter: str | None = None,
        kinds: Iterable[EventKind] | None = None,
        limit: int = 1000,
    ) -> list[DeviceEvent]:
        """Events with ``start <= at < end``, newest first."""

    def constants(self, meter: str, default: float) -> Constants:
        """``meter``'s constant through time (``default``: its configured one, used when it has
        no anchors)."""
        return Constants.of(self.anchors(meter), default)

    def reading_at(self, meter: str, at: float) -> float | None:
        """The meter's display reading at ``at``; None when the meter has no anchor."""
        anchors = self.anchors(meter)
        if not anchors:
            return None
        before = [a for a in anchors if a.at <= at]
        if before:
            a = before[-1]
            return a.reading + self.pulses(meter, a.at, at) / a.pulses_per_unit
        a = anchors[0]
        return a.reading - self.pulses(meter, at, a.at) / a.pulses_per_unit

    def readings_at(
        self, meter: str, default: float, ends: Sequence[float], cumulative: Sequence[int]
    ) -> list[float]:
        """The display reading at each of ``ends`` (ascending), given the pulses counted before
        each (``cumulative``) and the meter's configured constant (``default``, used without
        anchors: then the reading is all pulses / constant).

        The arithmetic of :meth:`reading_at` (the last anchor before, else back from the
        first), with one pulse query per anchor instead of one per bucket: the dashboard's
        readings and ``s0pcm export``'s are the same numbers."""
        anchors = self.anchors(meter)
        if not anchors:
            return [round(c / default, 6) for c in cumulative]
        known: dict[float, int] = {}

        def before(a: Anchor) -> int:
            if a.at not in known:
                known[a.at] = self.pulses(meter, -math.inf, a.at)
            return known[a.at]

        out = []
        k = -1
        for end, count in zip(ends, cumulative, strict=True):
            while k + 1 < len(anchors) and anchors[k + 1].at <= end:
                k += 1
            a = anchors[max(k, 0)]
            out.append(round(a.reading + (count - before(a)) / a.pulses_per_unit, 6))
        return out

    # -- upkeep --------------------------------------------------------------------------------

    @abstractmethod
    def backup(self, path: Path, *, commit: bool = True) -> None:
        """A consistent copy while the store is in use."""

    @abstractmethod
    def check(self) -> list[str]:
        """Integrity problems found (empty: all well)."""

    @abstractmethod
    def apply_retention(self, *, raw_days: int | None, now: float | None = None) -> int:
        """Drop 10-second slots older than ``raw_days`` (rollups stay); returns slots dropped.

        None keeps everything (the default policy: full resolution forever). ``now`` (Unix
        time, default the current time) is what "older" counts from.
        """

    @abstractmethod
    def overlay(self) -> None:
        """Let a read-only store take writes into memory only (never committed)."""

    @abstractmethod
    def claim(self) -> None:
        """Make this the one logger's store, until :meth:`close`; raise
        :class:`~s0pcm.errors.AlreadyRunning` naming the logger that has it."""

    @abstractmethod
    def claimed_by(self) -> str | None:
        """Who has claimed this store now (None: no logger runs)."""

    @abstractmethod
    def close(self) -> None:
        """Commit what is buffered and release the database."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
