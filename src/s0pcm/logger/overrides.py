"""Settings made through the dashboard, kept in the store beside the history.

The configuration file says what the meters are and which thresholds the modules should use; the
Settings page may change both while the logger runs, perhaps in another process (``s0pcm serve``
beside ``s0pcm run``). The store is what both processes share, so the changes live there, in two
state documents, and lie over the file:

- ``_meters``: ``{key: {name?, kind?, pulses_per_unit?, enabled?}}``, applied by
  :func:`effective_meters`;
- ``_thresholds``: ``{module: {command, seq, at}}``, one request per module; ``seq`` grows with
  every request, so the logger takes each one once (it keeps the last ``seq`` it took in the
  module's health) and a request made while no logger runs waits for the next one.

Only the web writes these documents and only the logger acts on them, so neither overwrites what
the other wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Final

from ..config import Config
from ..errors import ReadingExists
from ..events import DeviceEvent, EventKind
from ..meters import KINDS, Kind, Meter, constant_problem
from ..store import Anchor, AnchorKind, Constants, Store

__all__ = [
    "METERS_KEY",
    "THRESHOLDS_KEY",
    "ThresholdRequest",
    "add_reading",
    "anchor_constant",
    "effective_meters",
    "overridden",
    "override_meter",
    "threshold_requests",
]

METERS_KEY: Final = "_meters"
THRESHOLDS_KEY: Final = "_thresholds"


def override_meter(meter: Meter, settings: Mapping[str, Any]) -> Meter:
    """``meter`` with the stored ``settings`` applied. A new kind keeps the unit when the kind
    knows it, else takes the kind's default unit."""
    kind = Kind(settings.get("kind", meter.kind))
    unit = meter.unit
    if kind is not meter.kind and kind is not Kind.OTHER:
        units = [u for u, _ in KINDS[kind].units]
        unit = unit if unit in units else KINDS[kind].unit
    ppu = float(settings.get("pulses_per_unit", meter.pulses_per_unit))
    problem = constant_problem(ppu)
    if problem is not None:
        raise ValueError(f"pulses_per_unit {problem}")
    return dataclasses.replace(
        meter,
        name=str(settings.get("name", meter.name)),
        kind=kind,
        unit=unit,
        pulses_per_unit=ppu,
        enabled=bool(settings.get("enabled", meter.enabled)),
    )


def overridden(meters: tuple[Meter, ...], stored: Mapping[str, Any] | None) -> tuple[Meter, ...]:
    """``meters`` with the settings of a ``_meters`` document laid over them. Entries that are
    not objects, or that no longer make sense (a kind this version does not know), are ignored:
    a document from another version must not stop the logger."""
    stored = stored or {}
    out = []
    for meter in meters:
        entry = stored.get(meter.key)
        if isinstance(entry, dict):
            with contextlib.suppress(TypeError, ValueError):
                meter = override_meter(meter, entry)
        out.append(meter)
    return tuple(out)


def effective_meters(config: Config, store: Store) -> tuple[Meter, ...]:
    """The configured meters with the settings stored through the API laid over them."""
    return overridden(config.meters, store.state(METERS_KEY))


def remember_constant(store: Store, key: str, ppu: float) -> None:
    """A replacement's new constant becomes the meter's (for rates and what is counted next);
    the pulses before keep theirs through the anchors."""
    stored = store.state(METERS_KEY) or {}
    stored[key] = {**(stored.get(key) or {}), "pulses_per_unit": ppu}
    store.set_state(METERS_KEY, stored)


def add_reading(
    store: Store,
    meter: Meter,
    *,
    at: float,
    reading: float,
    replaced: bool = False,
    pulses_per_unit: float | None = None,
) -> float | None:
    """The meter's display showed ``reading`` at ``at``: an anchor and an event (commit to keep
    them); returns the reading the store had for that moment. A reading set already at that
    very moment raises :class:`~s0pcm.errors.ReadingExists` (which one holds would be a guess).

    A correction keeps the constant in force at ``at`` (a past moment may precede a change of
    constant). A replacement takes ``pulses_per_unit`` (default: the same); when it is the newest
    anchor, its constant becomes the meter's from then on.
    """
    anchors = store.anchors(meter.key)
    if any(a.at == at for a in anchors):
        raise ReadingExists(meter.name, at)
    ppu = pulses_per_unit or Constants.of(anchors, meter.pulses_per_unit).at(at)
    before = store.reading_at(meter.key, at)
    kind = AnchorKind.REPLACEMENT if replaced else AnchorKind.CORRECTION
    store.add_anchor(Anchor(meter.key, at, reading, ppu, kind))
    if replaced and ppu != meter.pulses_per_unit and all(a.at <= at for a in anchors):
        remember_constant(store, meter.key, ppu)
    was = "" if before is None or not math.isfinite(before) else f" (was {before:,.3f})"
    store.add_event(
        DeviceEvent(
            at,
            EventKind.REPLACEMENT if replaced else EventKind.CORRECTION,
            meter.module,
            meter.key,
            reading,
            f"reading set to {reading:g} {meter.unit}{was}",
        )
    )
    return before


def anchor_constant(store: Store, meter: Meter, at: float) -> bool | None:
    """Make ``meter``'s constant hold from ``at`` on, when it differs from the one its readings
    were last anchored with: a correction anchor at ``at`` that keeps the reading, and an event.

    The logger calls it (at a slot's start), since only it holds every pulse counted before
    ``at``: an anchor made elsewhere would miss those not yet committed.

    History is never rewritten: what was counted before keeps the constant it was counted with
    (see :class:`~s0pcm.store.Constants`). A meter without anchors has no such history, and its
    constant holds throughout. Returns whether an anchor was added (commit to keep it), None
    when the last anchor lies at or after ``at`` (a reading set moments ago, in this slot): ask
    again from a later slot.
    """
    anchors = store.anchors(meter.key)
    if not anchors or anchors[-1].pulses_per_unit == meter.pulses_per_unit:
        return False
    if anchors[-1].at >= at:
        return None
    was = anchors[-1].pulses_per_unit
    reading = store.reading_at(meter.key, at)
    assert reading is not None  # it has anchors
    store.add_anchor(Anchor(meter.key, at, reading, meter.pulses_per_unit, AnchorKind.CORRECTION))
    store.add_event(
        DeviceEvent(
            at,
            EventKind.CORRECTION,
            meter.module,
            meter.key,
            reading,
            f"{meter.pulses_per_unit:g} pulses per {meter.unit or 'unit'} from now on "
            f"(was {was:g})",
        )
    )
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class ThresholdRequest:
    """A threshold command asked for through the API, waiting for the logger to queue it."""

    command: str
    seq: int
    at: float


def threshold_requests(doc: Mapping[str, Any] | None) -> dict[str, ThresholdRequest]:
    """The requests of a ``_thresholds`` document, by module (malformed entries skipped)."""
    out: dict[str, ThresholdRequest] = {}
    for module, entry in (doc or {}).items():
        if not isinstance(entry, dict):
            continue
        command, seq, at = entry.get("command"), entry.get("seq"), entry.get("at", 0.0)
        if isinstance(command, str) and isinstance(seq, int) and isinstance(at, int | float):
            out[module] = ThresholdRequest(command, seq, float(at))
    return out
