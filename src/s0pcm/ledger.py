"""The pulse ledger: records in, exact pulse counts out. Sans-io, explicit time.

The module's since-start-up total is the authority. The ledger keeps, per register, the last
total it accepted (the baseline) and counts the difference to each new total, so pulses the
logger missed (it was down, the port was unplugged, a record was garbled) are recovered from the
next total instead of lost. What makes this hard is telling the cases apart:

* **Start-up header** → the module restarted: the next totals count from 0 (a new *life*).
* **Totals go back without a header** → either a restart whose header was lost, or one corrupted
  record (a line cut inside a number still parses, with a smaller total). The ledger holds such a
  record back and lets the next one decide: back at or above the old baseline → it was a glitch,
  ignored; still below and not decreasing → a restart, counted from 0.
* **A jump the meter cannot make** (more pulses than the pulse length and threshold allow in the
  time elapsed) → a brown-out spike: quarantined and reported, never counted; the baseline stays.
* **Per-interval counts** are cross-checked against the difference of totals; a disagreement is
  reported, the total wins.

A parse error never reaches the ledger as a zero: rejected lines are only counted. The whole
state is a small JSON document, persisted with every commit, so a restarted logger resumes
exactly where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from .events import DeviceEvent, EventKind
from .protocol import Header, Rejected, Telegram

__all__ = ["Count", "Ledger", "LedgerStats"]

#: The threshold the module uses unless its header says otherwise (ms).
DEFAULT_THRESHOLD_MS: Final = 30
#: Records arriving later than this many intervals after the previous one leave a gap.
GAP_INTERVALS: Final = 2.5
#: Pulses allowed on top of the physical bound, for clock jitter between module and host.
SLACK: Final = 2


@dataclass(frozen=True, slots=True)
class Count:
    """``pulses`` counted on ``register`` (1-based) by the record received at ``at``.

    ``span`` is the time they were counted over: one interval normally, longer after a gap.
    """

    at: float
    register: int
    pulses: int
    span: float


@dataclass(slots=True)
class LedgerStats:
    telegrams: int = 0
    headers: int = 0
    rejected: int = 0
    restarts: int = 0
    spikes: int = 0
    glitches: int = 0
    mismatches: int = 0
    gaps: int = 0


@dataclass(slots=True)
class _State:
    module_id: str | None = None
    #: Per register: the baseline total and when it was accepted.
    totals: list[int] | None = None
    totals_at: list[float] | None = None
    #: Pulses counted per register since the ledger began (for status).
    counted: list[int] = field(default_factory=list)
    #: Time of the last accepted record, and of the last record received at all.
    last_at: float | None = None
    seen_at: float | None = None
    interval: float = 10.0
    thresholds: list[int] | None = None
    #: A start-up header was seen at this time; the next record starts a new life.
    startup_at: float | None = None
    #: A record whose totals went back, waiting for the next to decide: (at, totals).
    suspect_at: float | None = None
    suspect: list[int] | None = None
    stats: LedgerStats = field(default_factory=LedgerStats)


class Ledger:
    """Exact pulse accounting for one module.

    ``feed`` takes every record the link received, with its arrival time, and returns the
    pulses counted and the events seen. ``state()`` is a JSON-able document; pass it back as
    ``state=`` to resume.
    """

    def __init__(self, module: str, *, state: dict[str, Any] | None = None) -> None:
        self.module = module
        self._s = _State()
        if state:
            stats = LedgerStats(**state.get("stats", {}))
            self._s = _State(**{**state, "stats": stats})

    # -- state

    def state(self) -> dict[str, Any]:
        return asdict(self._s)

    @property
    def stats(self) -> LedgerStats:
        return self._s.stats

    @property
    def last_at(self) -> float | None:
        return self._s.last_at

    @property
    def counted(self) -> list[int]:
        return list(self._s.counted)

    @property
    def totals(self) -> list[int] | None:
        return None if self._s.totals is None else list(self._s.totals)

    @property
    def thresholds(self) -> list[int] | None:
        return self._s.thresholds

    def take_over(self, totals: list[int], at: float) -> bool:
        """Start from another reader's last seen module totals (seen at ``at``), so the pulses
        since it stopped are recovered from the module's counters. Only on a fresh ledger."""
        s = self._s
        if s.totals is not None:
            return False
        s.totals = list(totals)
        s.totals_at = [at] * len(totals)
        s.counted = [0] * len(totals)
        s.last_at = s.seen_at = at
        return True

    # -- input

    def feed(self, at: float, record: Header | Telegram | Rejected) -> list[Count | DeviceEvent]:
        if isinstance(record, Telegram):
            return self._telegram(at, record)
        if isinstance(record, Header):
            return self._header(at, record)
        self._s.stats.rejected += 1
        return [self._event(at, EventKind.REJECTED, detail=f"{record.reason}: {record.raw!r}")]

    def _event(
        self,
        at: float,
        kind: EventKind,
        *,
        register: int | None = None,
        value: float | None = None,
        detail: str = "",
    ) -> DeviceEvent:
        meter = None if register is None else f"{self.module}.{register}"
        return DeviceEvent(at, kind, self.module, meter, value, detail)

    def _header(self, at: float, header: Header) -> list[Count | DeviceEvent]:
        s = self._s
        s.stats.headers += 1
        s.startup_at = at
        s.module_id = header.module_id
        if header.thresholds is not None:
            s.thresholds = list(header.thresholds)
        return [self._event(at, EventKind.STARTUP, detail=header.to_line())]

    def _bound(self, register: int, seconds: float) -> int:
        """Most pulses a register can count in ``seconds``: a pulse and an equal pause must each
        last at least the threshold."""
        s = self._s
        ms = DEFAULT_THRESHOLD_MS
        if s.thresholds is not None and register <= len(s.thresholds):
            ms = max(1, s.thresholds[register - 1])
        return int(max(0.0, seconds) * 1000 / (2 * ms)) + SLACK

    def _telegram(self, at: float, tg: Telegram) -> list[Count | DeviceEvent]:
        s = self._s
        s.stats.telegrams += 1
        previous, s.seen_at = s.seen_at, at
        totals = [r.total for r in tg.registers]
        n = len(totals)
        s.interval = float(tg.interval)
        if len(s.counted) < n:
            s.counted += [0] * (n - len(s.counted))
        if s.totals is not None and len(s.totals) < n:
            s.totals += [0] * (n - len(s.totals))
            assert s.totals_at is not None
            s.totals_at += [at] * (n - len(s.totals_at))

        if s.startup_at is not None:
            since = at - s.startup_at + s.interval
            startup_at, s.startup_at = s.startup_at, None
            s.suspect = s.suspect_at = None
            # The header says restart; only a register whose total fits a continuation and no
            # fresh start (far too many pulses since start-up, a plausible step from the old
            # baseline) says otherwise. A spike fits neither and decides nothing.
            baseline, baseline_at = s.totals, s.totals_at
            continued = (
                baseline is not None
                and baseline_at is not None
                and any(
                    d > self._bound(i, since)
                    and 0
                    <= d - baseline[i - 1]
                    <= self._bound(i, at - baseline_at[i - 1] + s.interval)
                    for i, d in enumerate(totals, start=1)
                )
            )
            if not continued:
                span = min(since, at - (s.last_at or startup_at))
                return self._new_life(at, totals, span=span, since=since)
            s.stats.glitches += 1
            event = self._event(
                at, EventKind.GLITCH, detail="start-up header, but the totals went on"
            )
            return [event, *self._count(at, tg, previous)]

        if s.totals is None:
            # The first record ever, and no start-up seen: the module counted these pulses before
            # we were watching. They are history before our start, not consumption to add.
            s.totals = totals
            s.totals_at = [at] * n
            s.last_at = at
            return []

        baseline = s.totals
        went_back = any(d < b for d, b in zip(totals, baseline, strict=False))
        if s.suspect is not None:
            # Two stories for the record that went back: it was corrupted (then this one goes on
            # from the old baseline, by at least its own interval counts), or the module restarted
            # (then this one goes on from the suspect record).
            suspect, suspect_at = s.suspect, s.suspect_at
            assert suspect_at is not None
            s.suspect = s.suspect_at = None
            glitch = all(
                r.total - b >= r.interval for r, b in zip(tg.registers, baseline, strict=False)
            )
            if glitch:
                s.stats.glitches += 1
                event = self._event(
                    at,
                    EventKind.GLITCH,
                    detail=f"totals {suspect} went back once and then on: a corrupted record",
                )
                return [event, *self._count(at, tg, previous)]
            since = at - suspect_at + 2 * s.interval
            if all(d >= p for d, p in zip(totals, suspect, strict=False)) and all(
                d <= self._bound(i, since) for i, d in enumerate(totals, start=1)
            ):
                s.stats.restarts += 1
                event = self._event(
                    at, EventKind.RESTART, detail="totals went back without a start-up header"
                )
                span = at - (s.last_at or suspect_at)
                return [event, *self._new_life(at, totals, span=span, since=since)]
        if went_back:
            if self._could_be_cut(tg, baseline, at):
                s.suspect, s.suspect_at = totals, at
                return []
            # No cut line looks like this: the module restarted and its header was lost.
            s.stats.restarts += 1
            event = self._event(
                at, EventKind.RESTART, detail="totals went back without a start-up header"
            )
            since = at - (s.last_at if s.last_at is not None else at) + s.interval
            return [event, *self._new_life(at, totals, span=since - s.interval, since=since)]
        # The interval count says more pulses than the total grew since our baseline: the total
        # started again (a restart whose header was lost, with the new total already past the
        # old one, as happens at low rates). Believed only for totals a fresh start can have.
        since = at - (s.last_at if s.last_at is not None else at) + s.interval
        if any(
            r.interval > r.total - b for r, b in zip(tg.registers, baseline, strict=False)
        ) and all(d <= self._bound(i, since) for i, d in enumerate(totals, start=1)):
            s.stats.restarts += 1
            event = self._event(
                at, EventKind.RESTART, detail="interval counts show the totals started again"
            )
            return [event, *self._new_life(at, totals, span=since - s.interval, since=since)]
        return self._count(at, tg, previous)

    def _could_be_cut(self, tg: Telegram, baseline: list[int], at: float) -> bool:
        """Whether a record whose totals went back can be a line cut inside its last number.

        A cut line keeps every field but the last intact, and the last total is then the first
        digits of the true one, which lies between the baseline and what the meter can add.
        """
        s = self._s
        assert s.totals_at is not None
        *head, last = tg.registers
        if any(r.total < b for r, b in zip(head, baseline, strict=False)):
            return False
        n = len(tg.registers)
        lo = baseline[n - 1]
        hi = lo + self._bound(n, at - s.totals_at[n - 1] + s.interval)
        digits = str(last.total)
        for width in range(len(str(lo)), len(str(hi)) + 1):
            scale = 10 ** (width - len(digits))
            if scale < 10:
                continue  # not shorter than the true number: not a cut
            first, final = last.total * scale, (last.total + 1) * scale - 1
            if first <= hi and final >= lo:
                return True
        return False

    def _new_life(
        self, at: float, totals: list[int], *, span: float, since: float
    ) -> list[Count | DeviceEvent]:
        """The module started from 0 about ``since`` seconds ago: its totals are all new,
        except a total no meter could reach in that time (a spike right after start-up)."""
        s = self._s
        out: list[Count | DeviceEvent] = []
        s.totals = [0] * len(totals)
        s.totals_at = [at - since] * len(totals)
        for i, d in enumerate(totals, start=1):
            if d > self._bound(i, since):
                s.stats.spikes += 1
                out.append(self._spike(at, i, d, since))
                continue
            s.counted[i - 1] += d
            s.totals[i - 1] = d
            s.totals_at[i - 1] = at
            if d:
                out.append(Count(at, i, d, max(span, 0.0)))
        s.last_at = at
        return out

    def _spike(self, at: float, register: int, delta: int, elapsed: float) -> DeviceEvent:
        return self._event(
            at,
            EventKind.SPIKE,
            register=register,
            value=delta,
            detail=f"{delta} pulses in {elapsed:.0f} s: more than the meter can give; not counted",
        )

    def _count(self, at: float, tg: Telegram, previous: float | None) -> list[Count | DeviceEvent]:
        """Count the differences to the baselines. ``previous``: when the record before arrived."""
        s = self._s
        assert s.totals is not None
        assert s.totals_at is not None
        out: list[Count | DeviceEvent] = []
        silence = at - previous if previous is not None else 0.0
        gap = silence > GAP_INTERVALS * s.interval
        for i, reg in enumerate(tg.registers, start=1):
            delta = reg.total - s.totals[i - 1]
            elapsed = at - s.totals_at[i - 1]
            if delta > self._bound(i, elapsed + s.interval):
                s.stats.spikes += 1
                out.append(self._spike(at, i, delta, elapsed))
                continue
            if delta < 0:
                # Only a total that went back on some registers but not enough to be a restart
                # gets here; the baseline stays until the registers agree again.
                continue
            # The interval count covers one interval: it can only be checked against a baseline
            # one record old.
            if elapsed <= 1.5 * s.interval and reg.interval != delta:
                s.stats.mismatches += 1
                out.append(
                    self._event(
                        at,
                        EventKind.MISMATCH,
                        register=i,
                        value=delta,
                        detail=f"interval count {reg.interval}, totals differ by {delta}",
                    )
                )
            if delta:
                if gap:
                    s.stats.gaps += 1
                    out.append(
                        self._event(
                            at,
                            EventKind.GAP,
                            register=i,
                            value=delta,
                            detail=f"{delta} pulses recovered from the total after "
                            f"{silence:.0f} s without records",
                        )
                    )
                out.append(Count(at, i, delta, elapsed))
                s.counted[i - 1] += delta
            s.totals[i - 1] = reg.total
            s.totals_at[i - 1] = at
        s.last_at = at
        return out
