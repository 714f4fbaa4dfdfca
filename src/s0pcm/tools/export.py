"""CSV export of consumption, for spreadsheets."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from ..calendar import Calendar, Resolution
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
) -> int:
    """One row per period: local start, pulses, consumption in the meter's unit, reading at the
    period's end (empty without an anchor). Returns the number of rows."""
    writer = csv.writer(out)
    unit = meter.unit
    writer.writerow(["start", "pulses", f"consumption ({unit})", f"reading at end ({unit})"])
    rows = store.series(meter.key, start, end, resolution)
    bounds = [float(b) for b in Calendar(store.tz).buckets(resolution, start, end)]
    ends = bounds[1:]
    constants = store.constants(meter.key, meter.pulses_per_unit)
    units = constants.bucket_units(store, meter.key, bounds, [p for _, p in rows])
    for n, (bucket, pulses) in enumerate(rows):
        bucket_end = ends[n]
        reading = store.reading_at(meter.key, bucket_end)
        writer.writerow(
            [
                datetime.fromtimestamp(bucket, tz).isoformat(),
                pulses,
                f"{units[n]:.6g}",
                "" if reading is None else f"{reading:.6f}",
            ]
        )
    return len(rows)
