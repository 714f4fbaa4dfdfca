"""What ``s0pcm status`` shows, and the API's health document: one function builds both."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..ledger import LedgerStats
from ..meters import Meter
from ..store import Store
from .daemon import MQTT_STATE, Daemon
from .snapshot import MeterValues

if TYPE_CHECKING:
    from ..config import MqttSettings
    from ..publish.mqtt import Publisher

__all__ = ["collect_status", "display_reading", "format_status", "module_status", "mqtt_status"]


def display_reading(store: Store, meter: Meter, at: float) -> float:
    """The meter's display reading at ``at``: from the last anchor, else all pulses counted
    divided by the constant."""
    value = store.reading_at(meter.key, at)
    if value is None:
        value = store.pulses(meter.key, -math.inf, at) / meter.pulses_per_unit
    return round(value, 6)


def module_status(
    *,
    health: Mapping[str, Any],
    stats: LedgerStats,
    meters: Iterable[Meter],
    values: Mapping[str, MeterValues],
    now: float,
) -> dict[str, Any]:
    """One module of the status document: ``health`` (a :meth:`Health.view`), its ledger's
    counters, and per meter its live values (reading, pulses, rate)."""
    last = health.get("last_telegram_at")
    return {
        "name": health["module"],
        **health,
        "last_telegram_age": None if last is None else round(now - last, 1),
        "counters": dataclasses.asdict(stats),
        "meters": [
            {
                "key": meter.key,
                "name": meter.name,
                "register": meter.register,
                "kind": meter.kind.value,
                "enabled": meter.enabled,
                "unit": meter.unit,
                "reading": values[meter.key].reading,
                "pulses": values[meter.key].pulses,
                "rate": values[meter.key].rate,
                "rate_unit": meter.spec.rate_unit,
            }
            for meter in meters
        ],
    }


def mqtt_status(
    settings: MqttSettings | None, publisher: Publisher | None, store: Store, *, live: bool
) -> dict[str, Any] | None:
    """The MQTT link (a :meth:`LinkStatus.view <s0pcm.publish.mqtt.LinkStatus.view>`), None
    without ``[mqtt]``: the ``publisher``'s own when the logger runs in this process, else what
    the logger saved at its last commit. ``live`` false: nobody runs the logger, so the link
    is down, whatever it said last."""
    if settings is None:
        return None
    if publisher is not None:
        return publisher.status.view()
    doc: dict[str, Any] = {**(store.state(MQTT_STATE) or {}), "broker": settings.broker}
    if not live:
        doc["connected"] = False
    return doc


def collect_status(daemon: Daemon, now: float, *, logger: str | None = None) -> dict[str, Any]:
    """Per module its health and counters; per meter its reading, pulses and live rate.

    ``logger``: who runs the logger (None: nobody; its saved health is then history: no module
    is connected)."""
    values = daemon.values(now)
    modules = [
        module_status(
            health=runner.health.view() | ({} if logger else {"connected": False}),
            stats=runner.ledger.stats,
            meters=runner.all_meters,
            values=values,
            now=now,
        )
        for runner in daemon.runners
    ]
    last = [m["last_record_at"] for m in modules if m["last_record_at"] is not None]
    return {
        "at": now,
        "logger": {
            "running": logger is not None,
            "holder": logger,
            "last_record_age": round(now - max(last), 1) if last else None,
        },
        "modules": modules,
        "mqtt": mqtt_status(
            daemon.config.mqtt, daemon.publisher, daemon.store, live=logger is not None
        ),
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def format_status(doc: dict[str, Any]) -> str:
    lines = []
    logger = doc.get("logger")
    if logger is not None:
        if logger["running"]:
            lines.append(f"logger: running ({logger['holder']})")
        else:
            age = _age(logger["last_record_age"])
            lines.append(f"logger: not running (last record {age})")
    mqtt = doc.get("mqtt")
    if mqtt is not None:
        state = "connected" if mqtt["connected"] else "not connected"
        waiting = mqtt.get("outbox") or 0
        sent = mqtt.get("last_publish")
        lines.append(
            f"mqtt {mqtt['broker']}: {state}, {waiting:,} messages waiting, last sent "
            f"{_age(None if sent is None else doc['at'] - sent)}"
        )
        if mqtt.get("dropped"):
            lines.append(f"  dropped unsent while the outbox was full: {mqtt['dropped']:,} events")
        if mqtt.get("last_error"):
            lines.append(f"  last problem: {mqtt['last_error']}")
    for m in doc["modules"]:
        state = "connected" if m["connected"] else "not connected"
        lines.append(f"module {m['name']}: {state} ({m['port'] or 'auto'})")
        firmware = m["firmware"] or "unknown"
        thresholds = "/".join(map(str, m["thresholds"])) + " ms" if m["thresholds"] else "unknown"
        lines.append(
            f"  id {m['module_id'] or '?'}, firmware {firmware}, thresholds {thresholds}"
            + (f" (pending: {m['thresholds_pending']})" if m["thresholds_pending"] else "")
        )
        lines.append(f"  last record: {_age(m['last_telegram_age'])}")
        c = m["counters"]
        lines.append(
            f"  records {c['telegrams']}, rejected {c['rejected']}, start-ups "
            f"{c['restarts'] + c['headers']}, spikes {c['spikes']}, glitches {c['glitches']}, "
            f"gaps {c['gaps']}, mismatches {c['mismatches']}"
        )
        if m["rejected"]:
            kinds = sorted(m["rejected"].items(), key=lambda kv: -kv[1])
            lines.append("  rejected: " + ", ".join(f"{n:,} {kind}" for kind, n in kinds[:5]))
        if m["watchdog_resets"]:
            lines.append(f"  silent module, port reopened: {m['watchdog_resets']:,} times")
        if m["last_problem"]:
            lines.append(f"  last problem: {m['last_problem']}")
        for meter in m["meters"]:
            rate = meter["rate"]
            live = "" if rate is None else f"   now {rate:,.1f} {meter['rate_unit']}"
            off = "" if meter["enabled"] else " (disabled)"
            lines.append(
                f"  M{meter['register']} {meter['name']}{off}: {meter['reading']:,.3f} "
                f"{meter['unit']}   {meter['pulses']:,} pulses{live}"
            )
    return "\n".join(lines)
