"""What every handler works with: configuration, store, the logger (if it runs here), a clock.

Meter settings changed through the API (``PUT /api/meters/{key}``) live in the store's state
document ``_meters`` and lie over the configuration file; :func:`effective_meters` applies them,
so the API, the dashboard and (once wired) the logger agree on a meter's name, kind and constant.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from ..config import Config, ModuleSettings
from ..daemon import Daemon, Health, ModuleRunner
from ..ledger import LedgerStats
from ..meters import KINDS, Kind, Meter
from ..store import Store
from ..store.buckets import Calendar
from ..tariffs import STATE_KEY as TARIFFS_KEY
from ..tariffs import TariffError, Tariffs, parse_tariffs
from .auth import Auth
from .costs import DayPricing
from .documents import Documents
from .errors import ApiError

if TYPE_CHECKING:
    from .live import LiveHub

__all__ = ["METERS_KEY", "Context", "effective_meters", "override_meter"]

#: State document with the meter settings made through the API: ``{key: {name?, kind?,
#: pulses_per_unit?, enabled?}}``.
METERS_KEY: Final = "_meters"
_DAY: Final = timedelta(days=1)


def override_meter(meter: Meter, settings: Mapping[str, Any]) -> Meter:
    """``meter`` with the stored ``settings`` applied. A new kind keeps the unit when the kind
    knows it, else takes the kind's default unit."""
    kind = Kind(settings.get("kind", meter.kind))
    unit = meter.unit
    if kind is not meter.kind and kind is not Kind.OTHER:
        units = [u for u, _ in KINDS[kind].units]
        unit = unit if unit in units else KINDS[kind].unit
    return dataclasses.replace(
        meter,
        name=str(settings.get("name", meter.name)),
        kind=kind,
        unit=unit,
        pulses_per_unit=float(settings.get("pulses_per_unit", meter.pulses_per_unit)),
        enabled=bool(settings.get("enabled", meter.enabled)),
    )


def effective_meters(config: Config, store: Store) -> tuple[Meter, ...]:
    """The configured meters with the settings stored through the API laid over them."""
    return _overridden(config, store.state(METERS_KEY))


def _overridden(config: Config, stored: Mapping[str, Any] | None) -> tuple[Meter, ...]:
    stored = stored or {}
    return tuple(
        override_meter(m, stored[m.key]) if isinstance(stored.get(m.key), dict) else m
        for m in config.meters
    )


class Context:
    """Shared by all handlers of one app."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        daemon: Daemon | None,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.store = store
        self.daemon = daemon
        self.clock = clock
        self.tz = config.logger.timezone
        self.calendar = Calendar(self.tz)
        self.documents = Documents(store)
        self.auth = Auth(self.documents, public_read=config.web.public_read, commit=self.commit)
        self.pricing = DayPricing()
        self._tariffs: tuple[Any, Tariffs] = (None, Tariffs())
        #: Set by the app: the fan-out of live updates to ``/api/live``.
        self.live: LiveHub | None = None

    # -- lookups

    def meters(self) -> tuple[Meter, ...]:
        return _overridden(self.config, self.documents.get(METERS_KEY))

    def meter(self, key: str) -> Meter:
        for meter in self.meters():
            if meter.key == key:
                return meter
        raise ApiError(404, "unknown meter", key[:64])

    def module(self, name: str) -> ModuleSettings:
        try:
            return self.config.module(name)
        except KeyError:
            raise ApiError(404, "unknown module", name[:64]) from None

    def runner(self, module: str) -> ModuleRunner | None:
        if self.daemon is None:
            return None
        for runner in self.daemon.runners:
            if runner.name == module:
                return runner
        return None

    def rate(self, meter: Meter, now: float) -> float | None:
        """Live power or flow (None: no logger here, the meter is off, or not known yet).

        Call on the event loop: the estimators belong to the logger's task.
        """
        runner = self.runner(meter.module)
        if runner is None or not meter.enabled:
            return None
        value = runner.rate(meter, now)
        return None if value is None or not math.isfinite(value) else round(value, 3)

    def tariffs(self) -> Tariffs:
        doc = self.documents.get(TARIFFS_KEY)
        known, parsed = self._tariffs
        if doc == known:
            return parsed
        try:
            parsed = Tariffs() if doc is None else parse_tariffs(doc)
        except TariffError:
            parsed = Tariffs()  # written by an older version we cannot read: as if none
        self._tariffs = (doc, parsed)
        return parsed

    def commit(self) -> None:
        """Make a write durable. With the logger in this process its commit does it, so the
        journal and the store stay in step (a bare store commit would let a crash replay
        journalled pulses twice)."""
        if self.daemon is not None:
            self.daemon.commit()
        else:
            self.store.commit()

    # -- local days

    def day_start(self, t: float) -> float:
        return float(self.calendar.day_start(self.calendar.local_date(t)))

    def yesterday_same_time(self, now: float) -> tuple[float, float]:
        """Yesterday from local midnight to the clock time it is now."""
        local = datetime.fromtimestamp(now, self.tz)
        yesterday = local.date() - _DAY
        begin = float(self.calendar.day_start(yesterday))
        today = float(self.calendar.day_start(local.date()))
        same = datetime.combine(yesterday, local.time().replace(tzinfo=None), tzinfo=self.tz)
        return begin, min(max(same.timestamp(), begin), today)

    # -- documents

    def reading(self, meter: Meter, at: float) -> float:
        """The display reading at ``at``: from the last anchor, else all pulses counted / ppu."""
        value = self.store.reading_at(meter.key, at)
        if value is None:
            value = self.store.pulses(meter.key, -math.inf, at) / meter.pulses_per_unit
        return round(value, 6)

    def meter_view(self, meter: Meter, now: float, rate: float | None) -> dict[str, Any]:
        """A meter as ``GET /api/meters`` shows it (reads the store: run it off the loop)."""
        store, ppu = self.store, meter.pulses_per_unit
        midnight = self.day_start(now)
        y0, y1 = self.yesterday_same_time(now)
        return {
            "key": meter.key,
            "name": meter.name,
            "module": meter.module,
            "register": meter.register,
            "kind": meter.kind.value,
            "unit": meter.unit,
            "pulses_per_unit": ppu,
            "enabled": meter.enabled,
            "reading": self.reading(meter, now),
            "rate": rate,
            "rate_unit": meter.spec.rate_unit,
            "today": round(store.pulses(meter.key, midnight, now) / ppu, 6),
            "yesterday_same_time": round(store.pulses(meter.key, y0, y1) / ppu, 6),
        }

    def rates(self, meters: tuple[Meter, ...], now: float) -> dict[str, float | None]:
        """Live rates of ``meters`` (on the event loop)."""
        return {m.key: self.rate(m, now) for m in meters}

    def health(
        self, now: float, rates: Mapping[str, float | None], meters: tuple[Meter, ...]
    ) -> dict[str, Any]:
        """The ``s0pcm status --json`` document, live from the logger when it runs here, else
        from what it last stored (``live`` says which). Reads the store: run it off the loop,
        with the ``rates`` taken on it."""
        modules = []
        for settings in self.config.modules:
            runner = self.runner(settings.name)
            if runner is not None:
                health = runner.health
                stats = runner.ledger.stats
            else:
                saved = self.store.state(settings.name) or {}
                health = Health(settings.name, port=settings.port)
                for key, value in saved.get("health", {}).items():
                    if hasattr(health, key) and key != "module":
                        setattr(health, key, value)
                raw_stats = (saved.get("ledger") or {}).get("stats") or {}
                known = {f.name for f in dataclasses.fields(LedgerStats)}
                stats = LedgerStats(**{k: v for k, v in raw_stats.items() if k in known})
            last = health.last_telegram_at
            entries = []
            for meter in (m for m in meters if m.module == settings.name):
                pulses = self.store.pulses(meter.key, -math.inf, math.inf)
                entries.append(
                    {
                        "key": meter.key,
                        "name": meter.name,
                        "register": meter.register,
                        "kind": meter.kind.value,
                        "enabled": meter.enabled,
                        "unit": meter.unit,
                        "reading": self.reading(meter, now),
                        "pulses": pulses,
                        "rate": rates.get(meter.key),
                        "rate_unit": meter.spec.rate_unit,
                    }
                )
            modules.append(
                {
                    "name": settings.name,
                    **dataclasses.asdict(health),
                    "last_telegram_age": None if last is None else round(now - last, 1),
                    "counters": dataclasses.asdict(stats),
                    "meters": entries,
                }
            )
        return {"at": now, "live": self.daemon is not None, "modules": modules}
