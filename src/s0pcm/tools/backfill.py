"""History for the demo: months of a household's meters, written straight into the store.

The emulator's household profiles are pure functions of time, so the history written here and
the live module that carries on from it tell one story. An hour of 10-second slots is computed
at once and written with the store's bulk path, so 90 days of three meters take seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..calendar import SLOT
from ..emulator import Source
from ..meters import Meter
from ..store import Store

__all__ = ["backfill"]

HOUR = 3600


def backfill(
    store: Store,
    meters: Sequence[tuple[Meter, Source]],
    *,
    start: float,
    end: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Pulses of each meter's source from the hour of ``start`` to the slot of ``end``,
    committed. Returns the number of hours written; ``progress`` is told after each hour.
    """
    first = int(start // HOUR) * HOUR
    hours = 0
    for hour in range(first, int(end), HOUR):
        slots = min(HOUR, int(end) - hour) // SLOT
        for meter, source in meters:
            store.add_hour(meter.key, float(hour), source.slots(hour, slots, width=SLOT))
        hours += 1
        if hours % (24 * 7) == 0:
            store.commit()
        if progress is not None:
            progress(1)
    store.commit()
    return hours
