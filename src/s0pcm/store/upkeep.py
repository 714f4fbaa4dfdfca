"""Recounting from the hour rows: what ``check()`` compares with and ``rebuild_rollups()`` writes.

The hour rows are the truth; sums, cumulative totals and the day and month rollups are derived
from them. Walking every hour row once (in ``(meter, hour)`` order) yields both the problems
inside the rows and the rollups they imply, in memory that grows with days, not with slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..calendar import SLOTS_PER_HOUR, Calendar
from . import codec

__all__ = ["Recount", "compare_rollups", "hour_label", "recount"]


def hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%d %H:00Z")


@dataclass
class Recount:
    problems: list[str] = field(default_factory=list)
    #: (meter id, day key) -> pulses, and (meter id, month key) -> pulses.
    days: dict[tuple[int, int], int] = field(default_factory=dict)
    months: dict[tuple[int, int], int] = field(default_factory=dict)
    #: Rollups that cannot be recounted exactly: an hour split over two local days whose slot
    #: detail was dropped by retention (only in zones with a fractional offset).
    unsure_days: set[tuple[int, int]] = field(default_factory=set)
    unsure_months: set[tuple[int, int]] = field(default_factory=set)
    hours: int = 0


def recount(
    rows: Iterable[tuple[Any, ...]],
    calendar: Calendar,
    names: Mapping[int, str],
    *,
    check: bool = True,
) -> Recount:
    """Walk ``(meter, hour, pulses, total, slots)`` rows ordered by meter and hour.

    With ``check``, decodes every blob and reports an hour whose slots do not add up to its sum,
    a blob that does not decode, and a cumulative total that does not follow from the one before.
    """
    result = Recount()
    meter = None
    running = 0
    for mid, hour, pulses, total, blob in rows:
        result.hours += 1
        name = names.get(mid, f"#{mid}")
        if mid != meter:
            meter, running = mid, 0
        where = f"meter {name!r}, hour {hour_label(hour)}"
        counts: list[int] | None = None
        if check and blob is not None:
            try:
                counts = codec.decode(blob)
            except codec.CodecError as exc:
                result.problems.append(f"{where}: slot blob is corrupt ({exc})")
            else:
                if sum(counts) != pulses:
                    result.problems.append(
                        f"{where}: hour sum is {pulses} but its slots add up to {sum(counts)}"
                    )
        if check and total != running + pulses:
            result.problems.append(
                f"{where}: cumulative total is {total}, expected {running + pulses} "
                f"({running} before the hour + {pulses})"
            )
        running = total
        segments = calendar.hour_segments(hour)
        if len(segments) > 1 and counts is None and blob is not None:
            try:
                counts = codec.decode(blob)
            except codec.CodecError:
                counts = None
        for first, end, day, month in segments:
            if len(segments) == 1:
                part = pulses
            elif counts is not None:
                part = sum(counts[first:end])
            else:
                # Slot detail dropped: share the hour out evenly (the best estimate left).
                per = SLOTS_PER_HOUR
                part = pulses * end // per - pulses * first // per
                result.unsure_days.add((mid, day))
                result.unsure_months.add((mid, month))
            if part:
                result.days[(mid, day)] = result.days.get((mid, day), 0) + part
                result.months[(mid, month)] = result.months.get((mid, month), 0) + part
    return result


def compare_rollups(
    kind: str,
    stored: Iterable[tuple[Any, ...]],
    expected: Mapping[tuple[int, int], int],
    unsure: set[tuple[int, int]],
    names: Mapping[int, str],
) -> list[str]:
    """Problems where the stored ``(meter, key, pulses)`` rollups differ from the recount."""
    problems = []
    seen = set()
    for mid, key, pulses in stored:
        seen.add((mid, key))
        want = expected.get((mid, key), 0)
        if pulses != want and (mid, key) not in unsure:
            name = names.get(mid, f"#{mid}")
            problems.append(
                f"meter {name!r}, {kind} {key}: rollup is {pulses} but its hours add up to {want}"
            )
    for (mid, key), want in sorted(expected.items()):
        if (mid, key) not in seen and want and (mid, key) not in unsure:
            name = names.get(mid, f"#{mid}")
            problems.append(
                f"meter {name!r}, {kind} {key}: rollup is missing; its hours add up to {want}"
            )
    return problems
