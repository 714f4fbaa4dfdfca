"""Counts from outside brought into the history: a capture of what a module printed, and the
totals of the reader used before (its ``measurement.yaml``).

Both write as the logger does, through a :class:`~s0pcm.logger.daemon.Daemon` that claimed the
store: so they refuse while the logger runs, and their records go through the same checks and
ledger as live ones. The caller opens the daemon (replaying what a crashed logger left in the
journal first) and closes it; these functions commit what they did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ..link.capture import read_capture
from ..logger.daemon import Daemon
from ..meters import Meter
from ..store import Anchor, AnchorKind
from .legacy import LegacyTotal

__all__ = ["CaptureImport", "TakeOver", "Taken", "import_capture", "take_over_legacy"]


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureImport:
    """What :func:`import_capture` replayed: lines read, and what the ledger made of them."""

    lines: int
    records: int
    rejected: int
    #: Start-ups the ledger saw (a header, or totals that started again).
    restarts: int
    spikes: int


def import_capture(
    daemon: Daemon,
    module: str,
    capture: Path,
    *,
    start: float | None = None,
    interval: float = 10.0,
    progress: Callable[[int], None] = lambda _: None,
) -> CaptureImport:
    """Replay ``capture`` (see :func:`~s0pcm.link.capture.read_capture` for ``start`` and
    ``interval``) into ``module``'s history; ``progress`` gets the bytes read since its last
    call.

    What was replayed is committed even when a line stops the import (the error is raised
    after), so a capture fixed from its bad line on can be imported again from there.
    """
    runner = daemon.runner(module)
    was = dataclasses.replace(runner.ledger.stats)
    lines = done = 0
    try:
        for position, at, record in read_capture(capture, start=start, interval=interval):
            runner.apply(at, record)
            lines += 1
            progress(position - done)
            done = position
    finally:
        daemon.commit()
    now = runner.ledger.stats
    return CaptureImport(
        lines=lines,
        records=now.telegrams - was.telegrams,
        rejected=now.rejected - was.rejected,
        restarts=now.restarts + now.headers - was.restarts - was.headers,
        spikes=now.spikes - was.spikes,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Taken:
    """One register of a legacy file: its total, and the meter that took it over."""

    register: int
    pulses: int
    #: None: no meter is configured on the register, so its total was skipped.
    meter: Meter | None

    @property
    def reading(self) -> float:
        """The meter's reading the total makes (0 without a meter)."""
        return 0.0 if self.meter is None else self.pulses / self.meter.pulses_per_unit


@dataclasses.dataclass(frozen=True, slots=True)
class TakeOver:
    """What :func:`take_over_legacy` did."""

    #: Every register of the file, in its order.
    registers: tuple[Taken, ...]
    #: The module's counters were taken over: the pulses since the old reader stopped will be
    #: recovered from the module, once the logger runs.
    counters: bool


def take_over_legacy(
    daemon: Daemon, module: str, totals: Sequence[LegacyTotal], *, mtime: float
) -> TakeOver:
    """Each meter of ``module`` goes on from the old reader's total; ``mtime`` is when the file
    was last written, the moment of the totals for a file that does not say (only hansij66's
    does).

    The ledger takes over the module's counters only when the file has every register's: it
    starts from all of them or from none.
    """
    at = next((t.updated_at for t in totals if t.updated_at), None) or mtime
    runner = daemon.runner(module)
    store = daemon.store
    registers = tuple(Taken(t.register, t.total, runner.meters.get(t.register)) for t in totals)
    for taken in registers:
        if (meter := taken.meter) is None:
            continue
        kind = AnchorKind.CORRECTION if store.anchors(meter.key) else AnchorKind.INITIAL
        store.add_anchor(
            Anchor(
                meter=meter.key,
                at=at,
                reading=taken.reading,
                pulses_per_unit=meter.pulses_per_unit,
                kind=kind,
            )
        )
    counters = {t.register: t.pulsecount for t in totals}
    count = runner.settings.model.value
    known = [c for n in range(1, count + 1) if (c := counters.get(n)) is not None]
    recovered = len(known) == count and runner.ledger.take_over(known, at)
    daemon.commit()
    return TakeOver(registers, recovered)
