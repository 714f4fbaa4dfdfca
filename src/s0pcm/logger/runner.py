"""The module runner: one module's link → ledger → store, the hub every record passes.

A :class:`ModuleRunner` reads its module's link, journals each record, and applies it: the
ledger turns records into exact pulse counts, the store keeps them, the snapshot and the rate
estimators follow, and one :class:`Update` per record goes to the live listeners. The same
``apply`` handles a live record, a journal replay and an imported capture, so there is one path
from a received line to the store. It keeps the module's :class:`Health` on the way; the
:class:`~s0pcm.logger.daemon.Daemon` owns the runners, the journal and the commits.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import ModuleSettings
from ..errors import ProtocolError
from ..events import DeviceEvent, EventKind
from ..ledger import Count, Ledger
from ..link.events import Connected, Disconnected, Event, Received, ThresholdsResult, ThresholdsSent
from ..link.port import Link
from ..meters import Meter
from ..protocol import Header, Rejected, Telegram, Thresholds, parse_thresholds
from ..rate import RateEstimator
from ..store import Store
from .clock import Timekeeper, format_step
from .journal import Entry, Journal
from .snapshot import MeterValues, Snapshot

__all__ = ["Health", "Listener", "ModuleRunner", "Update", "Waitable"]

#: Named as before the runner had a file of its own: the lines an operator filters on stay.
log = logging.getLogger("s0pcm.logger.daemon")

#: Live rates only learn from records this recent (s): an imported year of history says nothing
#: about the power now, and skipping it keeps a replay fast.
RATE_HORIZON = 900.0
#: Link events kept at most while the wall clock is wrong (a day of records); then they are
#: stamped from the last good moment on.
MAX_WAITING = 8640

#: What waits for the clock: a record received, or the port coming and going.
Waitable = Header | Telegram | Rejected | Connected | Disconnected


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


@dataclass(slots=True)
class Health:
    """How a module is doing, for ``status``, the API and the dashboard."""

    module: str
    port: str | None = None
    connected: bool = False
    since: float | None = None
    last_record_at: float | None = None
    last_telegram_at: float | None = None
    module_id: str | None = None
    firmware: str | None = None
    thresholds: list[int] | None = None
    #: The threshold command queued for the module's next start-up, until a header confirms it.
    thresholds_pending: str | None = None
    #: The configuration's command when it was last queued (a changed one is a new request).
    thresholds_config: str | None = None
    #: ``seq`` of the last threshold request from the API this logger took.
    thresholds_request: int = 0
    last_problem: str | None = None
    connects: int = 0
    disconnects: int = 0
    #: Rejected lines by kind of reason (:attr:`~s0pcm.protocol.Rejected.kind`), kept across
    #: restarts: what a wrong device, a bad cable or a brown-out looks like over time.
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Reconnects because the module fell silent (the link's watchdog).
    watchdog_resets: int = 0

    @classmethod
    def restore(cls, module: str, *, port: str | None, saved: Mapping[str, Any] | None) -> Health:
        """``module``'s health from the document a runner saved (:meth:`ModuleRunner.state`), so
        a logger starting and a dashboard without one read it alike: a field this version no
        longer keeps is dropped, one it did not keep yet keeps its default, the name is the
        caller's."""
        health = cls(module, port=port)
        for key, value in ((saved or {}).get("health") or {}).items():
            if hasattr(health, key) and key != "module":
                setattr(health, key, value)
        return health

    def view(self) -> dict[str, Any]:
        """What ``status --json`` and the API show (without the threshold bookkeeping)."""
        doc = dataclasses.asdict(self)
        del doc["thresholds_config"], doc["thresholds_request"]
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """What one record changed, for live listeners (dashboard, MQTT, ...): every consumer
    encodes these values; none of them reads the store for them."""

    module: str
    at: float
    #: Pulses counted per meter key by this record.
    pulses: dict[str, int] = field(default_factory=dict)
    events: tuple[DeviceEvent, ...] = ()
    #: The live values of the module's meters after this record (see :mod:`s0pcm.logger.snapshot`).
    values: tuple[MeterValues, ...] = ()


#: What a consumer of the logger's updates is given, in the logger's thread (queue it, return).
Listener = Callable[[Update], None]


class ModuleRunner:
    """One module: link in, ledger, store out."""

    def __init__(
        self,
        settings: ModuleSettings,
        store: Store,
        *,
        journal: Journal | None = None,
        next_seq: Callable[[], int] | None = None,
        link: Link | None = None,
        snapshot: Snapshot | None = None,
        publish: Listener | None = None,
    ) -> None:
        """``snapshot``: the live values to keep up (the daemon's); ``publish``: where each
        :class:`Update` goes (the daemon's subscribers)."""
        self.settings = settings
        self.name = settings.name
        self.store = store
        self.journal = journal
        self._next_seq = next_seq or (lambda: 0)
        self.all_meters: tuple[Meter, ...] = ()
        self.meters: dict[int, Meter] = {}
        self.rates: dict[int, RateEstimator] = {}
        self.set_meters(settings.meters)
        saved = store.state(self.name) or {}
        self.ledger = Ledger(self.name, state=saved.get("ledger"))
        self.health = Health.restore(self.name, port=settings.port, saved=saved)
        self.link = link or Link(settings.port, framing=settings.framing, model=settings.model)
        self.snapshot = snapshot
        #: The last hour marked logged per meter key (see :meth:`_mark_logged`).
        self._logged: dict[str, int] = {}
        self.publish: Listener = publish or (lambda update: None)
        #: Whether anyone listens: the values are only worked out for them (an imported year
        #: of records, or a journal replayed at start, needs none).
        self.listening: Callable[[], bool] = lambda: False
        #: The wall clock as the daemon watches it (None: take every stamp as it comes).
        self.timekeeper: Timekeeper | None = None
        #: Called before each link event is stamped: the daemon looks for a clock step there.
        self.check_clock: Callable[[], None] = lambda: None
        #: Called when the journal is written again after failing: the daemon commits at once.
        self.storage_back: Callable[[], None] = lambda: None
        #: Link events (journal seq, stamp, event) received while the wall clock was wrong.
        self.waiting: list[tuple[int, float, Waitable]] = []
        self._queue_saved_thresholds()

    # -- settings

    def set_meters(self, meters: Iterable[Meter]) -> None:
        """Use ``meters`` (this module's) from the next record on. A meter keeps its rate
        estimator: it counts pulses, whatever they mean."""
        self.all_meters = tuple(m for m in meters if m.module == self.name)
        # Switched off or not, a wired register is counted: switching a meter off only hides it
        # (dashboard, costs, publishing), so switching it on again finds its history whole.
        self.meters = {m.register: m for m in self.all_meters}
        self.rates = {reg: self.rates.get(reg) or RateEstimator() for reg in self.meters}

    def _queue_saved_thresholds(self) -> None:
        """At start: queue the configuration's thresholds when they are new to this store, else
        what was still pending when the logger last stopped (a request outlives a restart)."""
        h, configured = self.health, self.settings.thresholds
        command = None if configured is None else configured.to_command()
        if command is not None and command != h.thresholds_config:
            h.thresholds_config = h.thresholds_pending = command
            self.link.send_thresholds(configured)
            return
        if h.thresholds_pending is None:
            return
        try:
            self.link.send_thresholds(
                parse_thresholds(h.thresholds_pending, model=self.settings.model)
            )
        except ProtocolError:
            log.warning("%s: dropping unreadable pending thresholds %r", self.name,
                        h.thresholds_pending)  # fmt: skip
            h.thresholds_pending = None

    def request_thresholds(self, command: Thresholds, *, seq: int | None = None) -> None:
        """Queue ``command`` for the module's next start-up (replacing any still pending)."""
        self.link.send_thresholds(command)
        self.health.thresholds_pending = command.to_command()
        if seq is not None:
            self.health.thresholds_request = seq

    # -- applying records

    def _mark_logged(self, at: float) -> None:
        """Each meter's hour of ``at`` is logged (a record came), pulses or not: the store then
        knows when logging began and which hours it covers, so a quiet meter's hours read 0
        while those before logging read "no data" (:meth:`Store.since`). Once an hour."""
        hour = math.floor(at / 3600)
        for meter in self.meters.values():
            if self._logged.get(meter.key) != hour:
                self._logged[meter.key] = hour
                self.store.add(meter.key, at, 0)
                if self.snapshot is not None:
                    self.snapshot.add(meter.key, at, 0)

    def apply(self, at: float, record: Header | Telegram | Rejected) -> Update:
        """Count one record: ledger, store, rates, health. Live, replayed or imported alike."""
        pulses: dict[str, int] = {}
        events: list[DeviceEvent] = []
        recent = at >= time.time() - RATE_HORIZON
        for out in self.ledger.feed(at, record):
            if isinstance(out, Count):
                meter = self.meters.get(out.register)
                if meter is None:
                    continue  # a register nobody wired a meter to
                self.store.add(meter.key, out.at, out.pulses)
                if self.snapshot is not None:
                    self.snapshot.add(meter.key, out.at, out.pulses)
                pulses[meter.key] = pulses.get(meter.key, 0) + out.pulses
                if recent:
                    # Records that arrive together share a time: no span to spread them over.
                    span = out.span if out.span > 0 else None
                    self.rates[out.register].update(out.at, out.pulses, span=span)
            else:
                events.append(self._meter_event(out))
        if isinstance(record, Telegram):
            self._mark_logged(at)
            last, self.health.last_telegram_at = self.health.last_telegram_at, at
            # Records print the id too: a logger that starts beside a running module knows it
            # from the first one (MQTT topics and Home Assistant ids are keyed by it); a
            # start-up header, when one comes, has the last word.
            if self.health.module_id is None:
                self.health.module_id = record.module_id
            for reg, estimator in self.rates.items() if recent else ():
                if reg <= len(record.registers) and self.meters[reg].key not in pulses:
                    estimator.update(at, 0, span=at - last if last and at > last else None)
        elif isinstance(record, Header):
            self.health.module_id = record.module_id
            self.health.firmware = record.firmware
            self.health.thresholds = list(record.thresholds) if record.thresholds else None
        else:
            self.health.last_problem = record.reason
            rejected = self.health.rejected
            rejected[record.kind] = rejected.get(record.kind, 0) + 1
        self.health.last_record_at = at
        for event in events:
            self.store.add_event(event)
        if log.isEnabledFor(logging.DEBUG):
            # A trace to follow a count back to its records (run -vv): what came, what counted.
            line = record.raw if isinstance(record, Rejected) else record.to_line()
            log.debug(
                "%s: %.3f %r -> %s, totals %s, %d held",
                self.name, at, line, pulses or "-", self.ledger.totals, self.ledger.held,
            )  # fmt: skip
        update = Update(
            module=self.name, at=at, pulses=pulses, events=tuple(events), values=self.values()
        )
        self.publish(update)
        return update

    def values(self) -> tuple[MeterValues, ...]:
        """The live values of this module's meters, now (none without a snapshot, or when
        nobody listens)."""
        snapshot = self.snapshot
        if snapshot is None or not self.listening():
            return ()
        now = time.time() if self.timekeeper is None else self.timekeeper.now()
        if snapshot.stale(now):
            snapshot.refresh(snapshot.meters, now)  # midnight passed, or the clock went back
        return tuple(snapshot.values(m.key, now) for m in self.all_meters)

    def _meter_event(self, event: DeviceEvent) -> DeviceEvent:
        """The ledger speaks of registers; the store and the listeners of meter keys. A
        register no meter is wired to keeps the name a meter on it would have by default."""
        if event.register is None:
            return event
        meter = self.meters.get(event.register)
        key = meter.key if meter else f"{self.name}.{event.register}"
        return dataclasses.replace(event, meter=key, register=None)

    def rate(self, meter: Meter, now: float) -> float | None:
        """Live power or flow of ``meter`` in its rate unit (W, L/min, m³/h...)."""
        estimator = self.rates.get(meter.register)
        value = estimator.rate(now) if estimator is not None else None
        return None if value is None else value * meter.rate_factor()

    def state(self) -> dict[str, Any]:
        return {"ledger": self.ledger.state(), "health": dataclasses.asdict(self.health)}

    # -- the clock

    def receive(self, seq: int, at: float, item: Waitable) -> None:
        """A record or a port event, live or replayed: applied now, or, while the wall clock is
        clearly wrong, kept (in order) until it is right (see :mod:`s0pcm.logger.clock`)."""
        keeper = self.timekeeper
        if keeper is not None and (self.waiting or not keeper.sane(at)):
            if not self.waiting:
                log.warning("%s: the clock says %s, %s; records wait until it is right",
                            self.name, _iso(at), keeper.why(at))  # fmt: skip
            self.waiting.append((seq, at, item))
            self.release(force=len(self.waiting) >= MAX_WAITING)
            return
        self._apply_item(at, item)

    def release(self, *, force: bool = False) -> None:
        """Apply what waited for the clock, once it is right (``force``: now, stamped from the
        last good moment on)."""
        keeper = self.timekeeper
        if not self.waiting or keeper is None or not (force or keeper.sane(keeper.now())):
            return
        waiting, self.waiting = self.waiting, []
        first = waiting[0][1]
        # Moved as a block, so the records keep their spacing (the ledger's bounds need it).
        late = max(0.0, keeper.floor - first)
        for _, at, item in waiting:
            self._apply_item(at + late, item)
        if late:
            last = waiting[-1][1] + late
            self._clock_event(
                last,
                f"{len(waiting)} records arrived while the clock was {format_step(late)[1:]} "
                f"behind the stored history; stamped from {_iso(first + late)} on",
            )

    def clock_stepped(self, seconds: float, at: float) -> None:
        """The wall clock stepped by ``seconds`` (seen at ``at``, after the step): what is kept
        in wall time moves with it, so the step is neither a gap nor a spike.

        While records wait, the clock was wrong since start-up: only they were stamped by it;
        the ledger and the health still hold the stored history's times, which stay."""
        if not self.waiting:
            self.ledger.shift(seconds)
            for name in ("last_record_at", "last_telegram_at", "since"):
                value = getattr(self.health, name)
                if value is not None:
                    setattr(self.health, name, value + seconds)
        self.waiting = [(seq, t + seconds, item) for seq, t, item in self.waiting]
        for register in self.rates:
            self.rates[register] = RateEstimator()  # relearnt within a minute
        self._clock_event(at, f"clock stepped by {format_step(seconds)}")

    def _clock_event(self, at: float, detail: str) -> None:
        event = DeviceEvent(
            at=at, kind=EventKind.CLOCK, module=self.name, meter=None, value=None, detail=detail
        )
        log.warning("%s: %s", self.name, detail)
        self.store.add_event(event)
        self.publish(
            Update(module=self.name, at=at, pulses={}, events=(event,), values=self.values())
        )

    def first_waiting(self) -> int | None:
        """Journal seq of the first entry still waiting (the journal must keep it)."""
        return self.waiting[0][0] if self.waiting else None

    def _apply_item(self, at: float, item: Waitable) -> None:
        if isinstance(item, Connected | Disconnected):
            self.note(dataclasses.replace(item, at=at))
        else:
            self.apply(at, item)

    # -- the link

    def _on_link(self, event: Event) -> None:
        if not isinstance(event, Received | Connected | Disconnected):
            self.note(event)
            return
        self.check_clock()
        at = event.at if self.timekeeper is None else self.timekeeper.now()
        item = event.record if isinstance(event, Received) else dataclasses.replace(event, at=at)
        seq = self._next_seq()
        if self.journal is not None:
            self.journal.append(Entry(seq=seq, module=self.name, at=at, record=item))
            if self.journal.recovered:
                self.storage_back()
        self.receive(seq, at, item)

    def note(self, event: Connected | Disconnected | ThresholdsSent | ThresholdsResult) -> None:
        """What happened to the port or the thresholds: health and an event."""
        h = self.health
        kind: EventKind
        detail = ""
        if isinstance(event, Connected | Disconnected):
            self.ledger.interrupted(event.at)  # what comes next is not joined to what came
        if isinstance(event, Connected):
            h.connected, h.since, h.port = True, event.at, event.port
            h.connects += 1
            kind, detail = EventKind.CONNECTED, event.port
        elif isinstance(event, Disconnected):
            h.connected, h.since = False, event.at
            h.disconnects += 1
            h.last_problem = event.reason
            watchdog = event.reason.startswith("watchdog")
            h.watchdog_resets += watchdog
            kind = EventKind.WATCHDOG if watchdog else EventKind.DISCONNECTED
            detail = f"{event.port}: {event.reason}"
        elif isinstance(event, ThresholdsSent):
            kind, detail = EventKind.THRESHOLDS_SENT, event.command.to_command()
        else:
            kind = EventKind.THRESHOLDS_CONFIRMED if event.taken else EventKind.THRESHOLDS_REFUSED
            detail = f"{event.command.to_command()} -> {event.header.to_line()}"
            if event.taken:
                h.thresholds_pending = None
        ev = DeviceEvent(
            at=event.at, kind=kind, module=self.name, meter=None, value=None, detail=detail
        )
        self.store.add_event(ev)
        self.publish(
            Update(module=self.name, at=event.at, pulses={}, events=(ev,), values=self.values())
        )

    async def run(self) -> None:
        self.health.connected = False  # whatever was saved: this process has no port yet
        async for event in self.link.events():
            self._on_link(event)

    def close(self) -> None:
        self.link.close()
