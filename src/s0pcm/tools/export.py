"""CSV export of consumption, for spreadsheets (``s0pcm export`` and the History page's download:
one writer, so both give the same rows)."""

from __future__ import annotations

import csv
import math
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from ..calendar import Calendar, Resolution, has_data
from ..meters import Meter
from ..store import Store

__all__ = ["write_csv"]


def write_csv(
    store: Store,
    meter: Meter,
    start: float,
    end: float,
    resolution: Resolution,
    out: TextIO,
    *,
    tz: ZoneInfo,
    now: float,
) -> int:
    """One row per period with data: local start, pulses, consumption (or production) in the
    meter's unit and the display reading at the period's end. No row before logging began or
    after ``now`` (a future hour has no consumption, not zero); the period ``now`` falls in is
    there, to now. Returns the number of rows."""
    writer = csv.writer(out)
    unit = meter.unit
    what = "production" if meter.produces else "consumption"  # a solar inverter's meter
    writer.writerow(["start", "pulses", f"{what} ({unit})", f"reading at end ({unit})"])
    rows = store.series(meter.key, start, end, resolution)
    bounds = [float(b) for b in Calendar(store.tz).buckets(resolution, start, end)]
    known = has_data(bounds, since=store.since(meter.key), now=now)
    constants = store.constants(meter.key, meter.pulses_per_unit)
    units = constants.bucket_units(store, meter.key, bounds, [p for _, p in rows])
    total = store.pulses(meter.key, -math.inf, bounds[0])
    cumulative = []
    for _, pulses in rows:
        total += pulses
        cumulative.append(total)
    # The reading at a period's end, or at now for the period still running.
    ends = [min(b, now) for b in bounds[1:]]
    readings = store.readings_at(meter.key, meter.pulses_per_unit, ends, cumulative)
    written = 0
    for n, (bucket, pulses) in enumerate(rows):
        if not known[n]:
            continue
        writer.writerow(
            [
                datetime.fromtimestamp(bucket, tz).isoformat(),
                pulses,
                f"{units[n]:.6g}",
                f"{readings[n]:.6f}",
            ]
        )
        written += 1
    return written
