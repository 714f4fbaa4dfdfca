"""The logger's own MQTT documents: per meter its state, per module its health, every event.

Sans-io: an :class:`~s0pcm.logger.runner.Update` (with the live values the runner worked out)
and the meters and health it concerns go in, :class:`~s0pcm.publish.Message` values come out;
the MQTT client sends them. Every number is in the meter's real units, so no consumer needs a
template with arithmetic (Domoticz's discovery reader cannot evaluate one anyway).

A meter's state (retained, ``<base>/<module_id>/<register>/state``)::

    {"key": "kast.1", "name": "Heat pump", "kind": "electricity",
     "reading": 12345.678, "counted": 2345.678, "today": 4.25, "unit": "kWh",
     "rate": 1080.0, "rate_unit": "W", "pulses": 3, "pulses_total": 2345678,
     "at": "2026-12-01T21:15:00+00:00"}

``reading`` is the meter's display (a correction or a replacement moves it); ``counted`` is what
s0pcm counted since logging began (it only grows: what the energy dashboard is pointed at, see
docs/integrations.md); ``rate`` is power or flow (``null`` until known, never a made-up 0);
``pulses``: counted by the record this update came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..events import DeviceEvent
from ..ledger import LedgerStats
from ..logger.runner import Health, Update
from ..logger.snapshot import MeterValues
from ..meters import Meter
from ..protocol import Model
from . import Message
from .topics import OFFLINE, ONLINE, Topics, module_key

__all__ = [
    "event_document",
    "event_messages",
    "health_document",
    "health_message",
    "iso",
    "logger_status",
    "meter_document",
    "module_status",
    "payload",
    "state_messages",
    "update_messages",
]


def iso(at: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC with its offset (what a Home Assistant ``timestamp``
    sensor takes); None stays None."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def payload(doc: Mapping[str, Any]) -> bytes:
    """A document as the bytes sent: compact JSON, UTF-8 (``m³`` as itself, not ``\\u00b3``:
    Domoticz's discovery reader compares unit strings byte for byte)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _finite(value: float | None) -> float | None:
    """A number as sent: not known (None, or NaN where a value was not read) is ``null``."""
    return None if value is None or not math.isfinite(value) else value


def meter_document(meter: Meter, values: MeterValues, *, at: float, pulses: int) -> dict[str, Any]:
    """One meter's state: its live ``values`` at ``at``; ``pulses`` counted by the record."""
    return {
        "key": meter.key,
        "name": meter.name,
        "kind": meter.kind.value,
        "reading": _finite(values.reading),
        "counted": _finite(values.counted),
        "today": _finite(values.today),
        "unit": meter.unit,
        "rate": _finite(values.rate),
        "rate_unit": meter.spec.rate_unit,
        "pulses": pulses,
        "pulses_total": values.pulses,
        "at": iso(at),
    }


def state_messages(
    update: Update, *, meters: Iterable[Meter], health: Health, topics: Topics
) -> list[Message]:
    """The retained state of every enabled meter the update carries values for (a switched-off
    meter is counted, not published)."""
    by_key = {m.key: m for m in meters}
    module = module_key(health)
    out = []
    for values in update.values:
        meter = by_key.get(values.key)
        if meter is None or not meter.enabled:
            continue
        doc = meter_document(meter, values, at=update.at, pulses=update.pulses.get(meter.key, 0))
        out.append(
            Message(topic=topics.state(module, meter.register), payload=payload(doc), retain=True)
        )
    return out


def health_document(health: Health, *, stats: LedgerStats, model: Model) -> dict[str, Any]:
    """How the module is doing. ``restarts``: the module lives begun (start-up headers, and
    restarts seen only from the totals going back), as ``s0pcm status`` counts start-ups."""
    return {
        "module": health.module,
        "module_id": health.module_id,
        "model": model.label,
        "connected": health.connected,
        "since": iso(health.since),
        "port": health.port,
        "firmware": health.firmware,
        "thresholds": health.thresholds,
        "thresholds_pending": health.thresholds_pending,
        "last_record": iso(health.last_record_at),
        "last_telegram": iso(health.last_telegram_at),
        "rejected": sum(health.rejected.values()),
        "rejected_by_reason": dict(health.rejected),
        "restarts": stats.headers + stats.restarts,
        "watchdog_resets": health.watchdog_resets,
        "last_problem": health.last_problem,
    }


def health_message(health: Health, *, stats: LedgerStats, model: Model, topics: Topics) -> Message:
    doc = health_document(health, stats=stats, model=model)
    return Message(topic=topics.health(module_key(health)), payload=payload(doc), retain=True)


def module_status(health: Health, *, topics: Topics) -> Message:
    """The module's availability: ``online`` while its port is open."""
    state = ONLINE if health.connected else OFFLINE
    return Message(
        topic=topics.module_status(module_key(health)), payload=state.encode(), retain=True
    )


def logger_status(*, online: bool, topics: Topics) -> Message:
    """The logger's availability: ``online`` once connected, ``offline`` as its last will and
    when it stops (the broker does not send the will on a clean disconnect)."""
    return Message(
        topic=topics.status, payload=(ONLINE if online else OFFLINE).encode(), retain=True
    )


def event_document(event: DeviceEvent, *, meters: Iterable[Meter]) -> dict[str, Any]:
    """One device event; a meter's event names its register too (the topics' key)."""
    register = next((m.register for m in meters if m.key == event.meter), None)
    return {
        "at": iso(event.at),
        "kind": event.kind.value,
        "module": event.module,
        "meter": event.meter,
        "register": register,
        "value": event.value,
        "detail": event.detail,
    }


def event_messages(
    update: Update, *, meters: Iterable[Meter], health: Health, topics: Topics
) -> list[Message]:
    """Every event of the update, not retained: a stream, each one kept in order by the
    outbox (a retained event would be replayed to every new subscriber as if it just
    happened)."""
    topic = topics.events(module_key(health))
    listed = tuple(meters)
    return [
        Message(topic=topic, payload=payload(event_document(e, meters=listed)), retain=False)
        for e in update.events
    ]


def update_messages(
    update: Update,
    *,
    meters: Iterable[Meter],
    health: Health,
    stats: LedgerStats,
    model: Model,
    topics: Topics,
) -> list[Message]:
    """All the logger's own messages for one update: events first (in the order they
    happened), then the meters' state, then the module's health and link status."""
    listed = tuple(meters)
    return [
        *event_messages(update, meters=listed, health=health, topics=topics),
        *state_messages(update, meters=listed, health=health, topics=topics),
        health_message(health, stats=stats, model=model, topics=topics),
        module_status(health, topics=topics),
    ]
