"""Prometheus: the live values as one exposition per scrape (``GET /metrics``).

The values come from elsewhere (the logger's snapshot), so this is a custom collector, the
client library's way to "proxy metrics from other systems": nothing is counted per record, no
gauge objects live between scrapes, and each scrape reads the snapshot once. Its own registry,
never the library's global one (which would add the process's own metrics to ours, and keep
state across apps in one process).

Names follow Prometheus's naming rules: base units (joules, cubic meters, seconds, watts),
``_total`` for what only grows, labels that never change with settings a user edits: ``module``
(the configured module name), ``register`` and ``meter`` (the meter key; its editable name is on
``s0pcm_meter_info``). ``s0pcm_pulses_total`` is the exact count; the energy and volume counters
are what s0pcm counted since logging began (each pulse in the constant in force then), so they
only grow, as a counter must: a correction or a meter replacement moves the display reading
(``s0pcm_reading``, a gauge in the meter's unit), never them. A value that is not known (no rate
yet, no record yet) has no sample: never a stale number or a zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .. import __version__
from ..logger.snapshot import MeterValues
from ..meters import Kind, Meter

__all__ = [
    "BASE",
    "CONTENT_TYPE",
    "ENERGY",
    "VOLUME",
    "ModuleSample",
    "Quantity",
    "Scrape",
    "ScrapeCollector",
    "base_factors",
    "exposition",
]

#: The text format :func:`prometheus_client.generate_latest` writes (the library's "latest"
#: is a newer text version; ours has classic names only, so 0.0.4 says exactly what it is).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True, kw_only=True)
class Quantity:
    """What a kind of meter measures, in base units: the counter its reading feeds and the gauge
    its live rate feeds (per second of the counter's unit)."""

    counter: str
    counter_help: str
    gauge: str
    gauge_help: str


ENERGY: Final = Quantity(
    counter="s0pcm_energy_joules_total",
    counter_help="Energy counted since logging began, joules (never decreases)",
    gauge="s0pcm_power_watts",
    gauge_help="Live power, watts",
)
VOLUME: Final = Quantity(
    counter="s0pcm_volume_cubic_meters_total",
    counter_help="Volume counted since logging began, cubic meters (never decreases)",
    gauge="s0pcm_flow_cubic_meters_per_second",
    gauge_help="Live flow, cubic meters per second",
)
#: Per kind (``other`` has no base unit): its quantity and the size of its default unit
#: (``KINDS[kind].unit``) in base units: 1 kWh is 3.6e6 J, 1 GJ is 1e9 J, m³ is the base.
BASE: Final[dict[Kind, tuple[Quantity, float]]] = {
    Kind.ELECTRICITY: (ENERGY, 3.6e6),
    Kind.HEAT: (ENERGY, 1e9),
    Kind.GAS: (VOLUME, 1.0),
    Kind.WATER: (VOLUME, 1.0),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSample:
    """What the exposition shows of one module (from the health document)."""

    name: str
    connected: bool
    module_id: str | None
    firmware: str | None
    last_record_at: float | None
    telegrams: int
    rejected: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scrape:
    """Everything one scrape shows, read once: the meters, their live values, the modules.

    ``live``: the logger runs in this process (else the modules are as it last stored them)."""

    meters: tuple[Meter, ...]
    values: Mapping[str, MeterValues]
    modules: tuple[ModuleSample, ...]
    live: bool
    version: str = __version__


def base_factors(meter: Meter) -> tuple[Quantity, float, float] | None:
    """The families ``meter`` feeds, and what turns its reading (in its unit) into joules or
    cubic meters and its rate (in its kind's rate unit: W, kW, m³/h, L/min) into watts or cubic
    meters per second; None for a kind without a base unit."""
    if meter.kind not in BASE:
        return None
    quantity, per_unit = BASE[meter.kind]
    spec = meter.spec
    reading = dict(spec.units).get(meter.unit, 1.0) * per_unit
    # One default unit per hour is rate_per_unit_hour rate units.
    rate = per_unit / spec.rate_per_unit_hour / 3600.0
    return quantity, reading, rate


class ScrapeCollector:
    """A :class:`prometheus_client.registry.Collector` over what ``scrape`` returns, called
    once per collection."""

    def __init__(self, scrape: Callable[[], Scrape]) -> None:
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        scrape = self.scrape()
        yield from self._meters(scrape)
        yield from self._modules(scrape)
        build = GaugeMetricFamily("s0pcm_build_info", "The s0pcm version", labels=["version"])
        build.add_metric([scrape.version], 1)
        yield build

    @staticmethod
    def _meters(scrape: Scrape) -> Iterator[Metric]:
        labels = ["module", "register", "meter"]
        info = GaugeMetricFamily(
            "s0pcm_meter_info",
            "A meter's settings (1): its name, kind and unit",
            labels=[*labels, "name", "kind", "unit"],
        )
        pulses = CounterMetricFamily(
            "s0pcm_pulses_total", "Pulses counted, exact (never decreases)", labels=labels
        )
        other = GaugeMetricFamily(
            "s0pcm_reading",
            "The meter's display reading, in its unit (a correction or replacement moves it)",
            labels=labels,
        )
        totals = {
            q.counter: CounterMetricFamily(q.counter, q.counter_help, labels=labels)
            for q in (ENERGY, VOLUME)
        }
        rates = {
            q.gauge: GaugeMetricFamily(q.gauge, q.gauge_help, labels=labels)
            for q in (ENERGY, VOLUME)
        }
        for meter in scrape.meters:
            values = scrape.values.get(meter.key)
            if values is None:
                continue
            key = [meter.module, str(meter.register), meter.key]
            info.add_metric([*key, meter.name, meter.kind.value, meter.unit], 1)
            pulses.add_metric(key, values.pulses)
            other.add_metric(key, values.reading)
            base = base_factors(meter)
            if base is None:
                continue
            quantity, per_reading, per_rate = base
            if values.counted is not None and math.isfinite(values.counted):
                totals[quantity.counter].add_metric(key, values.counted * per_reading)
            if values.rate is not None:
                rates[quantity.gauge].add_metric(key, values.rate * per_rate)
        yield from (info, pulses, *totals.values(), *rates.values(), other)

    @staticmethod
    def _modules(scrape: Scrape) -> Iterator[Metric]:
        labels = ["module"]
        live = GaugeMetricFamily(
            "s0pcm_live",
            "1: the logger runs in this process; 0: module values are as it last stored them",
        )
        live.add_metric([], 1 if scrape.live else 0)
        up = GaugeMetricFamily(
            "s0pcm_module_up", "1: the module's link is up (records arriving)", labels=labels
        )
        info = GaugeMetricFamily(
            "s0pcm_module_info",
            "The id and firmware the module reports (1)",
            labels=[*labels, "module_id", "firmware"],
        )
        last = GaugeMetricFamily(
            "s0pcm_last_record_timestamp_seconds", "When the last record came, Unix time",
            labels=labels,
        )  # fmt: skip
        telegrams = CounterMetricFamily(
            "s0pcm_telegrams_total", "Data records taken", labels=labels
        )
        rejected = CounterMetricFamily(
            "s0pcm_rejected_lines_total",
            "Lines rejected, by kind of reason (kept across restarts)",
            labels=[*labels, "reason"],
        )
        for m in scrape.modules:
            up.add_metric([m.name], 1 if m.connected else 0)
            info.add_metric([m.name, m.module_id or "", m.firmware or ""], 1)
            if m.last_record_at is not None:
                last.add_metric([m.name], m.last_record_at)
            telegrams.add_metric([m.name], m.telegrams)
            for reason, count in sorted(m.rejected.items()):
                rejected.add_metric([m.name, reason], count)
        yield from (live, up, info, last, telegrams, rejected)


def exposition(scrape: Scrape) -> bytes:
    """The text exposition of ``scrape`` (:data:`CONTENT_TYPE`), through a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(lambda: scrape))
    return generate_latest(registry)
