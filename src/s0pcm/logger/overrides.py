"""Settings made through the dashboard, kept in the store beside the history.

The configuration file says what the meters are and which thresholds the modules should use; the
Settings page may change both while the logger runs, perhaps in another process (``s0pcm serve``
beside ``s0pcm run``). The store is what both processes share, so the changes live there, in two
state documents, and lie over the file:

- ``_meters``: ``{key: {name?, kind?, pulses_per_unit?, enabled?, direction?}}``, applied by
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
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..config import Config
from ..errors import CannotUndo, ReadingExists
from ..events import DeviceEvent, EventKind
from ..meters import CONSTANT_MAX, CONSTANT_MIN, KINDS, Direction, Kind, Meter
from ..store import Anchor, AnchorKind, Constants, Store

__all__ = [
    "METERS_KEY",
    "THRESHOLDS_KEY",
    "MeterSettings",
    "ThresholdRequest",
    "add_reading",
    "anchor_constant",
    "effective_meters",
    "meter_settings",
    "overridden",
    "override_meter",
    "settings_document",
    "threshold_requests",
    "undo_reading",
    "undoable",
]

METERS_KEY: Final = "_meters"
THRESHOLDS_KEY: Final = "_thresholds"


class MeterSettings(msgspec.Struct, omit_defaults=True):
    """One meter's entry in ``_meters``: what the Settings page changed, each field optional.
    Declared once: the web writes these fields, the logger and the web read them through it."""

    name: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET
    kind: Kind | UnsetType = UNSET
    pulses_per_unit: Annotated[float, Meta(ge=CONSTANT_MIN, le=CONSTANT_MAX)] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET


def meter_settings(entry: object) -> MeterSettings | None:
    """The entry as :class:`MeterSettings`, or None when any field is not what this version
    writes (a wrong type, a kind it does not know, a constant out of bounds): a document from
    another version, or edited by hand, must not stop the logger, nor half apply."""
    try:
        return msgspec.convert(entry, MeterSettings)
    except msgspec.ValidationError:
        return None


def override_meter(meter: Meter, settings: MeterSettings) -> Meter:
    """``meter`` with the stored ``settings`` applied. A new kind keeps the unit when the kind
    knows it, else takes the kind's default unit."""
    kind = meter.kind if isinstance(settings.kind, UnsetType) else settings.kind
    unit = meter.unit
    if kind is not meter.kind and kind is not Kind.OTHER:
        units = [u for u, _ in KINDS[kind].units]
        unit = unit if unit in units else KINDS[kind].unit
    return dataclasses.replace(
        meter,
        name=meter.name if isinstance(settings.name, UnsetType) else settings.name,
        kind=kind,
        unit=unit,
        pulses_per_unit=meter.pulses_per_unit
        if isinstance(settings.pulses_per_unit, UnsetType)
        else settings.pulses_per_unit,
        enabled=meter.enabled if isinstance(settings.enabled, UnsetType) else settings.enabled,
        direction=meter.direction
        if isinstance(settings.direction, UnsetType)
        else settings.direction,
    )


def overridden(meters: tuple[Meter, ...], stored: object) -> tuple[Meter, ...]:
    """``meters`` with the settings of a ``_meters`` document laid over them. A document or an
    entry that is not what this version writes is ignored (see :func:`meter_settings`)."""
    doc = stored if isinstance(stored, dict) else {}
    out = []
    for meter in meters:
        settings = meter_settings(doc.get(meter.key, {}))
        out.append(meter if settings is None else override_meter(meter, settings))
    return tuple(out)


def settings_document(stored: object, key: str, change: Mapping[str, Any]) -> dict[str, Any]:
    """The ``_meters`` document with ``change`` laid over ``key``'s entry; an entry (or a whole
    document) that is not an object is replaced, not merged into."""
    doc = dict(stored) if isinstance(stored, dict) else {}
    entry = doc.get(key)
    doc[key] = {**(entry if isinstance(entry, dict) else {}), **change}
    return doc


def effective_meters(config: Config, store: Store) -> tuple[Meter, ...]:
    """The configured meters with the settings stored through the API laid over them."""
    return overridden(config.meters, store.state(METERS_KEY))


def remember_constant(store: Store, key: str, ppu: float) -> None:
    """A replacement's new constant becomes the meter's (for rates and what is counted next);
    the pulses before keep theirs through the anchors."""
    store.set_state(
        METERS_KEY, settings_document(store.state(METERS_KEY), key, {"pulses_per_unit": ppu})
    )


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
    store.add_anchor(
        Anchor(meter=meter.key, at=at, reading=reading, pulses_per_unit=ppu, kind=kind)
    )
    if replaced and ppu != meter.pulses_per_unit and all(a.at <= at for a in anchors):
        remember_constant(store, meter.key, ppu)
    was = "" if before is None or not math.isfinite(before) else f" (was {before:,.3f})"
    store.add_event(
        DeviceEvent(
            at=at,
            kind=EventKind.REPLACEMENT if replaced else EventKind.CORRECTION,
            module=meter.module,
            meter=meter.key,
            value=reading,
            detail=f"reading set to {reading:g} {meter.unit}{was}",
        )
    )
    return before


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def undoable(anchors: list[Anchor], anchor: Anchor, meter: Meter) -> bool:
    """Whether ``anchor`` may be taken back: a correction that keeps the constant in force
    without it (so what was counted keeps its value, and only the display reading moves), and
    not the reading the configuration file sets (the logger would set it again at its next
    start: change the file instead)."""
    if anchor.kind is not AnchorKind.CORRECTION:
        return False
    if anchor.at == meter.reading_at and anchor.reading == meter.reading:
        return False
    others = [a for a in anchors if a != anchor]
    return Constants.of(others, meter.pulses_per_unit).at(anchor.at) == anchor.pulses_per_unit


def undo_reading(store: Store, meter: Meter, *, at: float, now: float) -> Anchor:
    """Take back the correction set at ``at`` (commit to keep it), with an event at ``now``;
    returns it.
    :class:`~s0pcm.errors.CannotUndo` when there is none or it is not :func:`undoable`."""
    anchors = store.anchors(meter.key)
    found = [a for a in anchors if a.at == at]
    if not found:
        raise CannotUndo(f"{meter.name} has no reading set at that moment")
    anchor = found[0]
    if not undoable(anchors, anchor, meter):
        raise CannotUndo(
            f"the {anchor.kind.value} reading of {meter.name} cannot be taken back: only a "
            "correction made here that keeps the meter's constant can (set a new reading, or "
            "change the configuration file for the reading it sets)"
        )
    store.remove_anchor(anchor)
    store.add_event(
        DeviceEvent(
            at=now,
            kind=EventKind.CORRECTION,
            module=meter.module,
            meter=meter.key,
            value=None,
            detail=f"reading {anchor.reading:,.3f} {meter.unit} set for {_iso(at)} taken back",
        )
    )
    return anchor


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
    store.add_anchor(
        Anchor(
            meter=meter.key,
            at=at,
            reading=reading,
            pulses_per_unit=meter.pulses_per_unit,
            kind=AnchorKind.CORRECTION,
        )
    )
    store.add_event(
        DeviceEvent(
            at=at,
            kind=EventKind.CORRECTION,
            module=meter.module,
            meter=meter.key,
            value=reading,
            detail=f"{meter.pulses_per_unit:g} pulses per {meter.unit or 'unit'} from now on "
            f"(was {was:g})",
        )
    )
    return True


class ThresholdRequest(msgspec.Struct, frozen=True):
    """A threshold command asked for through the API, waiting for the logger to queue it."""

    command: str
    seq: int
    at: Annotated[float, Meta(ge=0)] = 0.0


def threshold_requests(doc: object) -> dict[str, ThresholdRequest]:
    """The requests of a ``_thresholds`` document, by module (malformed entries skipped)."""
    out: dict[str, ThresholdRequest] = {}
    for module, entry in (doc if isinstance(doc, dict) else {}).items():
        with contextlib.suppress(msgspec.ValidationError):
            out[module] = msgspec.convert(entry, ThresholdRequest)
    return out
