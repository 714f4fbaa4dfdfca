"""The logger: every configured module's link → ledger → store, with the crash journal.

One :class:`ModuleRunner` per module reads its link and applies each record; the
:class:`Daemon` owns the store and the journal, commits on a timer (and at exit), and replays the
journal at start-up. The same ``apply`` handles a live record, a journal replay and an imported
capture, so there is one path from a received line to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..calendar import SLOT, Calendar
from ..config import Config, ModuleSettings
from ..errors import ProtocolError, StoreError
from ..events import DeviceEvent, EventKind
from ..ledger import Count, Ledger
from ..link.events import Connected, Disconnected, Event, Received, ThresholdsResult, ThresholdsSent
from ..link.port import Link
from ..meters import Meter
from ..protocol import Header, Rejected, Telegram, Thresholds, parse_thresholds
from ..rate import RateEstimator
from ..store import Anchor, AnchorKind, Constants, Store, open_store
from .clock import Timekeeper, format_step, unsynchronised
from .journal import Entry, Journal
from .overrides import METERS_KEY, THRESHOLDS_KEY, anchor_constant, overridden, threshold_requests
from .snapshot import MeterValues, Snapshot

__all__ = ["Daemon", "Health", "ModuleRunner", "Update"]

log = logging.getLogger(__name__)

#: State document key under which the daemon keeps its own bookkeeping.
DAEMON_STATE = "_daemon"
#: Live rates only learn from records this recent (s): an imported year of history says nothing
#: about the power now, and skipping it keeps a replay fast.
RATE_HORIZON = 900.0
#: Seconds between looks at the settings stored by a dashboard in another process.
SETTINGS_POLL = 10.0
#: Link events kept at most while the wall clock is wrong (a day of records); then they are
#: stamped from the last good moment on.
MAX_WAITING = 8640

#: Seconds between tries at most, while storing fails.
MAX_BACKOFF = 300.0

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

    def view(self) -> dict[str, Any]:
        """What ``status --json`` and the API show (without the threshold bookkeeping)."""
        doc = dataclasses.asdict(self)
        del doc["thresholds_config"], doc["thresholds_request"]
        return doc


@dataclass(frozen=True, slots=True)
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
        self.health = Health(self.name, port=settings.port)
        for key, value in saved.get("health", {}).items():
            if hasattr(self.health, key):
                setattr(self.health, key, value)
        self.link = link or Link(settings.port, framing=settings.framing, model=settings.model)
        self.snapshot = snapshot
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
            last, self.health.last_telegram_at = self.health.last_telegram_at, at
            for reg, estimator in self.rates.items() if recent else ():
                if reg <= len(record.registers) and self.meters[reg].key not in pulses:
                    estimator.update(at, 0, span=at - last if last and at > last else None)
        elif isinstance(record, Header):
            self.health.module_id = record.module_id
            self.health.firmware = record.firmware
            self.health.thresholds = list(record.thresholds) if record.thresholds else None
        else:
            self.health.last_problem = record.reason
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
        update = Update(self.name, at, pulses, tuple(events), self.values())
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
        """The ledger names registers ``<module>.<n>``; the store wants meter keys."""
        if event.meter is None:
            return event
        register = int(event.meter.rsplit(".", 1)[1])
        meter = self.meters.get(register)
        return dataclasses.replace(event, meter=meter.key if meter else event.meter)

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
        event = DeviceEvent(at, EventKind.CLOCK, self.name, None, None, detail)
        log.warning("%s: %s", self.name, detail)
        self.store.add_event(event)
        self.publish(Update(self.name, at, {}, (event,), self.values()))

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
            self.journal.append(Entry(seq, self.name, at, item))
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
            kind = EventKind.WATCHDOG if watchdog else EventKind.DISCONNECTED
            detail = f"{event.port}: {event.reason}"
        elif isinstance(event, ThresholdsSent):
            kind, detail = EventKind.THRESHOLDS_SENT, event.command.to_command()
        else:
            kind = EventKind.THRESHOLDS_CONFIRMED if event.taken else EventKind.THRESHOLDS_REFUSED
            detail = f"{event.command.to_command()} -> {event.header.to_line()}"
            if event.taken:
                h.thresholds_pending = None
        ev = DeviceEvent(event.at, kind, self.name, None, None, detail)
        self.store.add_event(ev)
        self.publish(Update(self.name, event.at, {}, (ev,), self.values()))

    async def run(self) -> None:
        self.health.connected = False  # whatever was saved: this process has no port yet
        async for event in self.link.events():
            self._on_link(event)

    def close(self) -> None:
        self.link.close()


class Daemon:
    """All modules of a configuration, one store, one journal."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        links: dict[str, Link] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        unsynced: Callable[[], bool] = unsynchronised,
        readonly: bool = False,
    ) -> None:
        """``clock``, ``monotonic``, ``unsynced``: the wall clock, the monotonic clock and
        whether the system says the wall clock is not synchronised yet (tests give their own).
        ``readonly``: only look (``status``): the store is opened read-only and the journal
        only read, nothing is created or locked, and :meth:`recover` replays into memory.
        Otherwise this is the store's one logger: it claims the store and the journal before it
        touches either, and raises :class:`~s0pcm.errors.AlreadyRunning` when another has."""
        self.config = config
        settings = config.logger
        self.readonly = readonly
        self.store = store or open_store(settings.database, tz=settings.timezone, readonly=readonly)
        self.clock = clock
        try:
            if readonly:
                self.store.overlay()
            else:
                self.store.claim()
            self.journal = Journal(Path(settings.journal), readonly=readonly)
        except BaseException:
            if store is None:
                self.store.close()
            raise
        daemon_state = self.store.state(DAEMON_STATE) or {}
        self.seq = int(daemon_state.get("seq", 0))
        self.committed_seq = self.seq
        self.commits = 0
        #: Why storing fails (None: it works), since when, and the commits that failed.
        self.storage_problem: str | None = None
        self._storage_since = 0.0
        self.failed_commits = 0
        self._retention_at = 0.0
        #: Who gets every update (:meth:`subscribe`).
        self._listeners: list[Listener] = []
        #: Every meter's live values, kept up from each record.
        self.snapshot = Snapshot(
            self.store, calendar=Calendar(settings.timezone), rate=self._meter_rate
        )
        self.runners = [
            ModuleRunner(
                m,
                self.store,
                journal=self.journal,
                next_seq=self._take_seq,
                link=(links or {}).get(m.name),
                snapshot=self.snapshot,
                publish=self._publish,
            )
            for m in config.modules
        ]
        self.timekeeper = Timekeeper(wall=clock, monotonic=monotonic, unsynced=unsynced)
        for r in self.runners:
            self.timekeeper.raise_floor(r.health.last_record_at)
            r.timekeeper = self.timekeeper
            r.check_clock = self.check_clock
            r.storage_back = self._storage_back
            r.listening = lambda: bool(self._listeners)
        self._anchor_meters(overridden(config.meters, self.store.state(METERS_KEY)))
        #: The ``_meters`` document as last checked for a changed constant (a sentinel: never).
        self._meters_seen: Any = object()
        #: The ``_meters`` document and the anchors the live values were last read with.
        self._snapshot_seen: Any = object()
        self.load_settings(anchor=False)
        self._stop = asyncio.Event()
        #: Set to end the main loop's wait early: stop, or the disk is back.
        self._wake = asyncio.Event()

    def _storage_back(self) -> None:
        self._wake.set()

    # -- the seam for consumers

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Give ``listener`` every :class:`Update` from now on (called in the logger's thread:
        it must only queue it); returns the function that ends that."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _publish(self, update: Update) -> None:
        for listener in tuple(self._listeners):
            listener(update)

    def _meter_rate(self, meter: Meter, now: float) -> float | None:
        for r in self.runners:
            if r.name == meter.module:
                return r.rate(meter, now)
        return None

    def values(self, now: float | None = None) -> dict[str, MeterValues]:
        """Every meter's live values at ``now`` (default: the clock), by meter key."""
        when = self.clock() if now is None else now
        if self.snapshot.stale(when):
            self.snapshot.refresh(self.snapshot.meters, when)
        return {m.key: self.snapshot.values(m.key, when) for m in self.snapshot.meters}

    def _take_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _anchor_meters(self, meters: Iterable[Meter]) -> None:
        """The configured readings become anchors (once; a changed reading is a new anchor)."""
        for meter in meters:
            if meter.reading is None or meter.reading_at is None:
                continue
            anchors = self.store.anchors(meter.key)
            if any(a.at == meter.reading_at and a.reading == meter.reading for a in anchors):
                continue
            kind = AnchorKind.CORRECTION if anchors else AnchorKind.INITIAL
            # The constant in force then (the reading may predate a change of constant).
            ppu = Constants.of(anchors, meter.pulses_per_unit).at(meter.reading_at)
            self.store.add_anchor(Anchor(meter.key, meter.reading_at, meter.reading, ppu, kind))
            if anchors:
                self.store.add_event(
                    DeviceEvent(
                        self.clock(),
                        EventKind.CORRECTION,
                        meter.module,
                        meter.key,
                        meter.reading,
                        f"reading set to {meter.reading:g} {meter.unit} at {meter.reading_at:.0f}",
                    )
                )

    def load_settings(self, *, anchor: bool = True) -> None:
        """Take what the Settings page stored: meter settings, and threshold requests not yet
        taken. Cheap (two small documents): the run loop calls it every few seconds, so a
        dashboard in another process reaches this logger too.

        ``anchor``: a meter's constant changed since the last look (or since the readings were
        anchored, at start) holds from the start of the current slot on (see
        :func:`~s0pcm.logger.overrides.anchor_constant`); not before the journal is replayed.
        """
        doc = self.store.state(METERS_KEY)
        meters = overridden(self.config.meters, doc)
        if anchor and doc != self._meters_seen:
            at = float(math.floor(self.clock() / SLOT) * SLOT)
            done = [anchor_constant(self.store, meter, at) for meter in meters]
            for meter, added in zip(meters, done, strict=True):
                if added:
                    log.info("%s: %g pulses per unit from now on", meter.key,
                             meter.pulses_per_unit)  # fmt: skip
            if None not in done:  # else again at the next look
                self._meters_seen = doc
        # The live values from the store again when a meter's settings or anchors changed
        # (here, through the dashboard, or by `set-reading` in another process).
        seen = (doc, self.store.anchor_mark())
        if seen != self._snapshot_seen:
            self._snapshot_seen = seen
            self.snapshot.refresh(meters, self.clock())
        requests = threshold_requests(self.store.state(THRESHOLDS_KEY))
        for runner in self.runners:
            runner.set_meters(meters)
            request = requests.get(runner.name)
            if request is None or request.seq <= runner.health.thresholds_request:
                continue
            try:
                command = parse_thresholds(request.command, model=runner.settings.model)
            except ProtocolError as e:
                log.warning("%s: ignoring threshold request %r: %s", runner.name,
                            request.command, e.reason)  # fmt: skip
                runner.health.thresholds_request = request.seq
                continue
            log.info("%s: thresholds %s requested through the dashboard", runner.name,
                     command.to_command())  # fmt: skip
            runner.request_thresholds(command, seq=request.seq)

    def runner(self, name: str) -> ModuleRunner:
        for r in self.runners:
            if r.name == name:
                return r
        raise KeyError(name)

    def check_clock(self) -> None:
        """Look for a step of the wall clock; every module moves with one."""
        step = self.timekeeper.step()
        if step is None:
            return
        now = self.timekeeper.now()
        for r in self.runners:
            r.clock_stepped(step, now)
        for r in self.runners:
            r.release()

    def recover(self) -> int:
        """Replay what the journal holds past the last commit; returns entries replayed."""
        by_name = {r.name: r for r in self.runners}
        replayed = 0
        for entry in self.journal.entries(after=self.committed_seq):
            runner = by_name.get(entry.module)
            if runner is None:
                continue
            runner.receive(entry.seq, entry.at, entry.record)
            self.seq = max(self.seq, entry.seq)
            replayed += 1
        if replayed:
            log.info("replayed %d records from the journal %s", replayed, self.journal.path)
        return replayed

    def commit(self) -> None:
        """Make everything durable, then empty the journal (unless records in it still wait
        for the clock: then it is kept, and a restart replays from the first of them)."""
        waiting = [seq for r in self.runners if (seq := r.first_waiting()) is not None]
        done = min(waiting) - 1 if waiting else self.seq
        for r in self.runners:
            self.store.set_state(r.name, r.state())
        self.store.set_state(DAEMON_STATE, {"seq": done})
        self.store.commit()
        self.committed_seq = done
        if not waiting:
            self.journal.clear()
        self.commits += 1
        days = self.config.logger.raw_retention_days
        if days and self.clock() - self._retention_at > 86400:
            # The retention policy, once a day: old 10-second slots go, totals stay.
            self._retention_at = self.clock()
            dropped = self.store.apply_retention(raw_days=days)
            if dropped:
                log.info("retention: dropped %d ten-second slots older than %d days", dropped, days)

    def try_commit(self) -> bool:
        """:meth:`commit`, on a disk that may be full or failing: then everything stays in
        memory (the store's buffer and the journal's entries; the module's totals back them),
        one line and an event say why, and the caller tries again later."""
        try:
            self.commit()
        except (StoreError, OSError) as e:
            self.failed_commits += 1
            if self.storage_problem is None:
                self.storage_problem = getattr(e, "reason", None) or str(e)
                self._storage_since = self.clock()
                log.error("cannot store: %s; counting goes on in memory, trying again", e)
                self._storage_event(f"cannot store: {self.storage_problem}")
            return False
        if self.storage_problem is not None:
            minutes = (self.clock() - self._storage_since) / 60
            detail = (
                f"storing again after {self.failed_commits} failed commits over "
                f"{minutes:.0f} min ({self.storage_problem}); nothing was lost"
            )
            log.warning("%s", detail)
            self.storage_problem = None
            self.failed_commits = 0
            self._storage_event(detail)
            self.try_commit()  # the event itself
        return True

    def _storage_event(self, detail: str) -> None:
        with contextlib.suppress(StoreError):
            for r in self.runners:
                r.store.add_event(
                    DeviceEvent(self.clock(), EventKind.STORAGE, r.name, None, None, detail)
                )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Until :meth:`stop`: read every module, commit every ``commit_interval`` seconds."""
        self.recover()
        for r in self.runners:
            r.health.connected = False  # this process has not opened a port yet
        self.load_settings()  # a constant changed in the file or the dashboard meanwhile
        interval = self.config.logger.commit_interval
        loop = asyncio.get_running_loop()
        backoff = interval
        due = loop.time() + (interval if self.try_commit() else backoff)
        tasks = [asyncio.create_task(r.run(), name=f"module {r.name}") for r in self.runners]
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    wait = min(due - loop.time(), SETTINGS_POLL)
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.0))
                self._wake.clear()
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                self.check_clock()  # a step is seen even when no record comes
                for r in self.runners:
                    r.release()
                if self.journal.recovered:  # the disk is back: store what memory holds, now
                    self.journal.recovered = False
                    due = loop.time()
                if loop.time() >= due:
                    if self.try_commit():
                        backoff = interval
                        due = loop.time() + interval
                    else:  # a full or failing disk: again, less and less often
                        backoff = min(backoff * 2, max(interval, MAX_BACKOFF))
                        due = loop.time() + backoff
                self.load_settings()
        finally:
            for r in self.runners:
                r.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not self.try_commit():
                log.error("stopping with records not stored (%s): the journal %s and the "
                          "module's totals hold them for the next start", self.storage_problem,
                          self.journal.path)  # fmt: skip
            self.close()

    def close(self) -> None:
        """Release the store and the journal (and with them the claim on both)."""
        try:
            self.store.close()
        except StoreError as e:
            log.error("%s", e)  # what was not stored: see try_commit
        finally:
            self.journal.close()
