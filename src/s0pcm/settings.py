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

from .config import Config
from .events import DeviceEvent, EventKind
from .meters import KINDS, Kind, Meter
from .store import Anchor, AnchorKind, Store

__all__ = [
    "METERS_KEY",
    "THRESHOLDS_KEY",
    "ThresholdRequest",
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
    if not (math.isfinite(ppu) and ppu > 0):
        raise ValueError(f"pulses_per_unit must be above 0, got {ppu}")
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


def anchor_constant(store: Store, meter: Meter, at: float) -> bool:
    """Make ``meter``'s constant hold from ``at`` on, when it differs from the one its readings
    were last anchored with: a correction anchor at ``at`` that keeps the reading, and an event.

    History is never rewritten: what was counted before keeps the constant it was counted with
    (see :class:`~s0pcm.store.Constants`). A meter without anchors has no such history, and its
    constant holds throughout. Returns whether an anchor was added (commit to keep it).
    """
    anchors = [a for a in store.anchors(meter.key) if a.at <= at]
    if not anchors or anchors[-1].pulses_per_unit == meter.pulses_per_unit:
        return False
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
