"""The logger: every configured module's runner, one store, one journal, the commits.

The :class:`Daemon` gives each module a :class:`~s0pcm.logger.runner.ModuleRunner`, owns the
store and the crash journal, commits on a timer (and at exit), replays the journal at start-up,
takes what the dashboard changed, and hands every :class:`Update` to its subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calendar import SLOT, Calendar
from ..config import Config
from ..errors import ProtocolError, StoreError
from ..events import DeviceEvent, EventKind
from ..link.port import Link
from ..meters import Meter
from ..protocol import parse_thresholds
from ..store import Anchor, AnchorKind, Constants, Store, open_store
from .clock import Timekeeper, unsynchronised
from .journal import Journal
from .overrides import METERS_KEY, THRESHOLDS_KEY, anchor_constant, overridden, threshold_requests
from .runner import Health, Listener, ModuleRunner, Update
from .snapshot import MeterValues, Snapshot

if TYPE_CHECKING:
    from ..publish.mqtt import Announce, Encode, Publisher

__all__ = ["Daemon", "Encoders", "Health", "ModuleRunner", "Update"]

log = logging.getLogger(__name__)

#: State document key under which the daemon keeps its own bookkeeping.
DAEMON_STATE = "_daemon"
#: The MQTT link's status as of the last commit (:meth:`LinkStatus.view`), for a dashboard or
#: ``status`` without the logger in their process.
MQTT_STATE = "_mqtt"
#: Seconds between looks at the settings stored by a dashboard in another process.
SETTINGS_POLL = 10.0

#: Seconds between tries at most, while storing fails.
MAX_BACKOFF = 300.0
#: Seconds the MQTT link has at exit to say ``offline`` and disconnect.
PUBLISHER_STOP = 5.0

#: Makes a daemon's MQTT encoders: an update's messages, and the announcement (discovery).
Encoders = Callable[["Daemon"], "tuple[Encode, Announce]"]


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
        encoders: Encoders | None = None,
    ) -> None:
        """``clock``, ``monotonic``, ``unsynced``: the wall clock, the monotonic clock and
        whether the system says the wall clock is not synchronised yet (tests give their own).
        ``readonly``: only look (``status``): the store is opened read-only and the journal
        only read, nothing is created or locked, and :meth:`recover` replays into memory.
        ``encoders``: what ``[mqtt]`` publishes (without: only the logger's availability).
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
        self._encoders = encoders
        #: The MQTT link while :meth:`run` runs with ``[mqtt]`` configured.
        self.publisher: Publisher | None = None
        self._outbox_failing = False
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
            self.store.add_anchor(
                Anchor(
                    meter=meter.key,
                    at=meter.reading_at,
                    reading=meter.reading,
                    pulses_per_unit=ppu,
                    kind=kind,
                )
            )
            if anchors:
                self.store.add_event(
                    DeviceEvent(
                        at=self.clock(),
                        kind=EventKind.CORRECTION,
                        module=meter.module,
                        meter=meter.key,
                        value=meter.reading,
                        detail=f"reading set to {meter.reading:g} {meter.unit} "
                        f"at {meter.reading_at:.0f}",
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
        if self.publisher is not None:
            self.store.set_state(MQTT_STATE, self.publisher.status.view())
            self._sync_outbox()  # before the store's commit: see s0pcm.publish.outbox
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
                self._module_event(EventKind.STORAGE, f"cannot store: {self.storage_problem}")
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
            self._module_event(EventKind.STORAGE, detail)
            self.try_commit()  # the event itself
        return True

    def _module_event(self, kind: EventKind, detail: str, value: float | None = None) -> None:
        """An event of the logger's own (storage, MQTT outbox), in every module's log; a store
        that refuses it does not stop the logger."""
        with contextlib.suppress(StoreError):
            for r in self.runners:
                r.store.add_event(
                    DeviceEvent(
                        at=self.clock(), kind=kind, module=r.name, value=value, detail=detail
                    )
                )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Until :meth:`stop`: read every module, commit every ``commit_interval`` seconds."""
        # The MQTT listener first: the records replayed from the journal are those after the
        # outbox's last sync too, and their messages are made again.
        publishing = self._start_publisher()
        tasks: list[asyncio.Task[None]] = []
        try:
            self.recover()
            for r in self.runners:
                r.health.connected = False  # this process has not opened a port yet
            self.load_settings()  # a constant changed in the file or the dashboard meanwhile
            interval = self.config.logger.commit_interval
            loop = asyncio.get_running_loop()
            backoff = interval
            due = loop.time() + (interval if self.try_commit() else backoff)
            tasks += [asyncio.create_task(r.run(), name=f"module {r.name}") for r in self.runners]
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
            if publishing is not None:
                await self._stop_publisher(publishing)
            if not self.try_commit():
                log.error("stopping with records not stored (%s): the journal %s and the "
                          "module's totals hold them for the next start", self.storage_problem,
                          self.journal.path)  # fmt: skip
            if publishing is not None and self.publisher is not None:
                try:
                    self.publisher.outbox.close(sync=False)  # written by the commit above
                except Exception as e:
                    log.error("cannot close the MQTT outbox %s: %s", self.publisher.outbox.path, e)
            self.close()

    def _start_publisher(self) -> tuple[asyncio.Task[None], Callable[[], None]] | None:
        """With ``[mqtt]``: the MQTT link's task, and its listener subscribed."""
        settings = self.config.mqtt
        if settings is None or self.readonly:
            return None
        from ..publish.mqtt import Publisher
        from ..publish.outbox import Outbox, outbox_path

        def no_messages(update: Update) -> list[Any]:
            return []

        encode, announce = (no_messages, list) if self._encoders is None else self._encoders(self)
        outbox = Outbox(outbox_path(self.config.logger), limit=settings.outbox_max)
        self.publisher = Publisher(
            settings, outbox, encode=encode, announce=announce, on_dropped=self._outbox_dropped
        )
        unsubscribe = self.subscribe(self.publisher.on_update)
        task = asyncio.create_task(self.publisher.run(), name="mqtt")
        task.add_done_callback(_said_if_failed)
        return task, unsubscribe

    async def _stop_publisher(
        self, publishing: tuple[asyncio.Task[None], Callable[[], None]]
    ) -> None:
        task, unsubscribe = publishing
        unsubscribe()
        assert self.publisher is not None
        self.publisher.stop()
        try:
            await asyncio.wait_for(task, PUBLISHER_STOP)  # cancels it on the timeout
        except TimeoutError:
            log.warning("MQTT: the link did not close in %.0f s", PUBLISHER_STOP)
        except Exception:  # noqa: S110 - said by _said_if_failed
            pass
        # The outbox stays open for the final commit, which writes it (and says so if it
        # cannot: that never stops the store's commit); closed after it, in run().

    def _sync_outbox(self) -> None:
        """The outbox to disk with the counts. A disk that refuses it does not stop the
        store's commit (the counts are the authority; the retained values are made again from
        them): only events queued since the last good sync could be lost, and only if the
        logger dies too before the broker has them. Said once until it works again."""
        assert self.publisher is not None
        try:
            self.publisher.outbox.sync()
        except Exception as e:
            if not self._outbox_failing:
                log.error("cannot write the MQTT outbox %s: %s", self.publisher.outbox.path, e)
            self._outbox_failing = True
        else:
            if self._outbox_failing:
                log.info("the MQTT outbox %s is written again", self.publisher.outbox.path)
            self._outbox_failing = False

    def _outbox_dropped(self, count: int, over: bool) -> None:
        """The outbox overflowed (an event when it starts dropping, and when it has room)."""
        if over:
            detail = f"MQTT outbox has room again: {count} events were dropped unsent"
        else:
            detail = "MQTT outbox full: dropping its oldest events unsent"
        self._module_event(EventKind.OUTBOX, detail, count)

    def close(self) -> None:
        """Release the store and the journal (and with them the claim on both)."""
        try:
            self.store.close()
        except StoreError as e:
            log.error("%s", e)  # what was not stored: see try_commit
        finally:
            self.journal.close()


def _said_if_failed(task: asyncio.Task[None]) -> None:
    """A fault in the MQTT link is said at once; the logger goes on counting without it."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("MQTT: the link stopped: %r", error, exc_info=error)
