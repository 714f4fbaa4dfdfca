"""What ``s0pcm status`` shows, and the API's health document: one function builds both."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .daemon import Daemon

__all__ = ["collect_status", "format_status"]


def collect_status(daemon: Daemon, now: float) -> dict[str, Any]:
    """Per module its health and counters; per meter its reading, pulses and live rate."""
    store = daemon.store
    modules = []
    for runner in daemon.runners:
        health = runner.health.view()
        last = runner.health.last_telegram_at
        meters = []
        for meter in runner.all_meters:
            pulses = store.pulses(meter.key, -math.inf, math.inf)
            reading = store.reading_at(meter.key, now)
            if reading is None:
                reading = pulses / meter.pulses_per_unit
            meters.append(
                {
                    "key": meter.key,
                    "name": meter.name,
                    "register": meter.register,
                    "kind": meter.kind.value,
                    "enabled": meter.enabled,
                    "unit": meter.unit,
                    "reading": round(reading, 6),
                    "pulses": pulses,
                    "rate": runner.rate(meter, now) if meter.enabled else None,
                    "rate_unit": meter.spec.rate_unit,
                }
            )
        modules.append(
            {
                "name": runner.name,
                **health,
                "last_telegram_age": None if last is None else round(now - last, 1),
                "counters": dataclasses.asdict(runner.ledger.stats),
                "meters": meters,
            }
        )
    return {"at": now, "modules": modules}


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
