"""What every handler works with: configuration, store, the logger (if it runs here), a clock.

Meter settings and threshold requests made through the API live in the store (see
:mod:`s0pcm.logger.overrides`), so the API, the dashboard and the logger agree on a meter's name,
kind and constant whether the logger runs in this process or another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ..calendar import Calendar
from ..config import Config, ModuleSettings
from ..costs.pricing import DayPricing
from ..costs.tariffs import STATE_KEY as TARIFFS_KEY
from ..costs.tariffs import TariffError, Tariffs, parse_tariffs
from ..ledger import LedgerStats
from ..logger.daemon import Daemon, Health, ModuleRunner
from ..logger.overrides import (
    METERS_KEY,
    THRESHOLDS_KEY,
    ThresholdRequest,
    overridden,
    threshold_requests,
)
from ..logger.snapshot import MeterValues, Snapshot
from ..logger.status import display_reading, module_status, mqtt_status
from ..meters import Meter
from ..store import Store
from . import shapes
from .auth import Auth
from .documents import Documents
from .errors import ApiError

if TYPE_CHECKING:
    from .live import LiveHub

__all__ = ["Context"]

_DAY: Final = timedelta(days=1)


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
        self.auth = Auth(
            self.documents, public_read=config.web.public_read, commit=self.commit, clock=clock
        )
        self.pricing = DayPricing()
        self._tariffs: tuple[Any, Tariffs] = (None, Tariffs())
        #: Set by the app: the fan-out of live updates to ``/api/live``.
        self.live: LiveHub | None = None

    # -- lookups

    def meters(self) -> tuple[Meter, ...]:
        return overridden(self.config.meters, self.documents.get(METERS_KEY))

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

    def tariffs(self) -> Tariffs:
        doc = self.documents.get(TARIFFS_KEY)
        known, parsed = self._tariffs
        if doc == known:
            return parsed
        try:
            parsed = Tariffs() if doc is None else parse_tariffs(doc, stored=True)
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
            self.daemon.load_settings()  # at once, not at the logger's next look
        else:
            self.store.commit()

    def threshold_request(self, module: str) -> ThresholdRequest | None:
        """The last threshold request made through the API for ``module``, if any."""
        return threshold_requests(self.documents.get(THRESHOLDS_KEY)).get(module)

    def thresholds_taken(self, module: str) -> int:
        """``seq`` of the last threshold request the logger took for ``module``."""
        runner = self.runner(module)
        if runner is not None:
            return runner.health.thresholds_request
        health = (self.store.state(module) or {}).get("health") or {}
        taken = health.get("thresholds_request", 0)
        return taken if isinstance(taken, int) else 0

    # -- documents

    def reading(self, meter: Meter, at: float) -> float:
        """The display reading at ``at`` (see :func:`~s0pcm.logger.status.display_reading`)."""
        return display_reading(self.store, meter, at)

    def values(
        self, meters: tuple[Meter, ...], now: float, *, days: bool = True
    ) -> dict[str, MeterValues]:
        """The live values of ``meters`` at ``now``: the logger's, when it runs here (call on
        the loop: no store read), else read from the store for this answer (off the loop);
        ``days=False`` leaves today and yesterday out of that read (NaN), for health."""
        if self.daemon is not None:
            held = self.daemon.values(now)
            if all(m.key in held for m in meters):
                return held
        snapshot = Snapshot(self.store, calendar=self.calendar)
        snapshot.refresh(meters, now, follow=False, days=days)
        return {m.key: snapshot.values(m.key, now) for m in meters}

    @staticmethod
    def meter_view(meter: Meter, values: MeterValues) -> shapes.Meter:
        """A meter as ``GET /api/meters`` shows it: its settings and its live values."""
        return shapes.Meter(
            key=meter.key,
            name=meter.name,
            module=meter.module,
            register=meter.register,
            kind=meter.kind,
            unit=meter.unit,
            pulses_per_unit=meter.pulses_per_unit,
            enabled=meter.enabled,
            reading=values.reading,
            rate=values.rate,
            rate_unit=meter.spec.rate_unit,
            today=values.today,
            yesterday_same_time=values.yesterday_same_time,
            since=values.since,
            last_pulse_at=values.last_pulse_at,
            direction=meter.direction,
        )

    def health(
        self, now: float, values: Mapping[str, MeterValues], meters: tuple[Meter, ...]
    ) -> shapes.Health:
        """The ``s0pcm status --json`` document, live from the logger when it runs here, else
        from what it last stored (``live`` says which), with the meters' live ``values``.
        Without the logger here it reads the store: run it off the loop."""
        modules = []
        for settings in self.config.modules:
            runner = self.runner(settings.name)
            if runner is not None:
                health = runner.health
                stats = runner.ledger.stats
            else:
                saved = self.store.state(settings.name) or {}
                health = Health.restore(settings.name, port=settings.port, saved=saved)
                stats = LedgerStats.restore((saved.get("ledger") or {}).get("stats"))
            view = health.view()
            request = self.threshold_request(settings.name)
            if request is not None and request.seq > health.thresholds_request:
                view["thresholds_pending"] = request.command  # the logger has yet to take it
            of_module = [m for m in meters if m.module == settings.name]
            status = module_status(
                health=view, stats=stats, meters=of_module, values=values, now=now
            )
            modules.append(msgspec.convert(status, shapes.ModuleHealth))
        publisher = None if self.daemon is None else self.daemon.publisher
        link = mqtt_status(self.config.mqtt, publisher, self.store, live=True)
        return shapes.Health(
            now,
            self.daemon is not None,
            modules,
            None if link is None else msgspec.convert(link, shapes.MqttLink),
        )
