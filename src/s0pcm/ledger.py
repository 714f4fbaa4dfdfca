"""The pulse ledger: records in, exact pulse counts out. Sans-io, explicit time.

The module's since-start-up total is the authority. The ledger keeps the last totals it
confirmed (the *base*) and counts the difference to each new confirmed record, so pulses the
logger missed (it was down, the port was unplugged, a record was garbled) are recovered from the
next total instead of lost. What makes this hard is that a record can lie: a character dropped,
doubled or changed on the line (a UART overrun, a USB bridge in a brown-out, a flipped bit that
7-bit masking cannot see) still parses, and one wrong number must never move a count.

**Evidence.** Two records in a row (nothing received between them, about one interval apart) are
*joined*; the later one *bridges* the earlier when every register's interval count equals the
difference of the totals, within what the meter can give, with the same module id and interval.
One changed character changes exactly one number, so it breaks the bridge on both sides of the
record it hits: a record that bridges its predecessor, or is bridged by its successor, has
intact totals. Nothing arriving between two joined records also means the module cannot have
restarted between them (it prints a header at every start-up; a lost or garbled one arrives as
a rejected line, and a reconnect is reported by the link).

**Decisions.** A record that bridges the base is counted at once (every record, normally). Any
other record is *held* and judged once a later record vouches for it: bridged by its successor,
or (on a line that loses records) followed by one that goes on from it. A vouched-for record is
then told apart by every register together:

* after a **start-up header**: a new life when its totals fit the time since the header; totals
  that went on from the base instead make the header a glitch;
* **totals below the base** (vouched-for, so not a corrupted number): a restart whose header was
  lost; so is a record that looks exactly like a life's first (every count equals its total)
  where a count exceeds what the totals grew, after a break;
* otherwise a **continuation**: the difference is counted (a gap, with an event, when records
  were missed). A register whose vouched-for total jumped further than the meter can give is a
  counter the module corrupted: the jump is not counted and the count goes on from there.

Held records that are never vouched for are dropped as glitches or spikes, with an event; the
pulses they showed are in the next vouched-for total anyway. Only when a held record is the last
of a module life (a restart comes next) is anything at stake: a record that contradicted its
neighbours is not counted and its interval is reported as unknowable (of two that each fit and
only disagree with each other, the lower total counts: one of them is intact); one that could
not be checked at all (it followed a break) but fits is counted, and the event says it was
unchecked. A start-up header the line damaged is still a start-up (``Rejected.startup``), and
when too many records are held, the lives that a later header ended are settled, not dropped.

One job, in one file past 500 lines: the rules above decide together, and splitting them would
hide how each depends on the others.

A parse error never reaches the ledger as a zero: rejected lines are only counted (and break the
join). The whole state is a small JSON document, persisted with every commit, so a restarted
logger resumes exactly where it stopped, held records included.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from .events import DeviceEvent, EventKind
from .protocol import THRESHOLD_MS_MAX, THRESHOLD_MS_MIN, Header, Rejected, Telegram

__all__ = ["Count", "Ledger", "LedgerStats"]

#: The threshold the module uses unless its header says otherwise (ms).
DEFAULT_THRESHOLD_MS: Final = 30
#: Records arriving later than this many intervals after the previous one leave a gap.
GAP_INTERVALS: Final = 2.5
#: Two records are joined (one interval apart) when they arrive at most this many intervals apart.
JOINED_INTERVALS: Final = 1.5
#: Pulses allowed on top of the physical bound, for clock jitter between module and host.
SLACK: Final = 2
#: Held records kept at most. Past this (a line that garbles nearly every record, or a module
#: whose interval counts never agree with its totals) the oldest is settled on weaker evidence:
#: a continuation that the next record goes on from, or else dropped (its pulses are in the
#: later totals).
MAX_HELD: Final = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    """``pulses`` counted on ``register`` (1-based) by the record received at ``at``.

    ``span`` is the time they were counted over: one interval normally, longer after a gap.
    """

    at: float
    register: int
    pulses: int
    span: float


#: What feeding a record gives: pulses counted and events, in order.
Out = list[Count | DeviceEvent]


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
    #: Records that ended a module life unconfirmed (counted unchecked, or left out).
    unconfirmed: int = 0

    @classmethod
    def restore(cls, saved: Mapping[str, Any] | None) -> LedgerStats:
        """The counters from a saved ledger state's ``stats``, for the ledger resuming and for
        a status read without one alike: a counter this version no longer keeps is dropped, one
        it did not keep yet starts at 0."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (saved or {}).items() if k in known})


@dataclass(slots=True)
class _Node:
    """A record as the ledger keeps it: a data record, or a start-up header (``header``; a
    header's totals are the new life's zeros)."""

    at: float
    module_id: str | None
    interval: int | None
    counts: list[int]
    totals: list[int]
    #: Nothing came between this node and the one before it, about one interval earlier.
    joined: bool = False
    header: bool = False
    #: A rejected line came just before it (the record before it was garbled, perhaps).
    after_loss: bool = False
    #: The line as received, for events.
    line: str = ""

    def total(self, register: int) -> int:
        """1-based; a header's (and a shorter record's) missing totals are zeros."""
        return self.totals[register - 1] if register <= len(self.totals) else 0

    def same_source(self, other: _Node) -> bool:
        """Same module id and register count (where ``self`` knows them). Not the interval: a
        record whose interval alone was garbled has sound totals, and once it is the base, the
        records after it must still go on from it (the ledger learns the module's interval
        only from two records in a row that agree on it: see ``_count``)."""
        return (self.module_id is None or other.module_id == self.module_id) and len(
            self.totals
        ) == len(other.totals)


def _start(at: float, registers: int = 0) -> _Node:
    """The zeros a module life starts from, at ``at``."""
    return _Node(at, None, None, [], [0] * registers, header=True)


@dataclass(slots=True)
class _State:
    module_id: str | None = None
    #: The last confirmed record of the current life (None: nothing confirmed yet).
    base: _Node | None = None
    #: Records (and start-up headers) since the base, waiting for evidence, oldest first.
    held: list[_Node] = field(default_factory=list)
    #: Pulses counted per register since the ledger began (for status).
    counted: list[int] = field(default_factory=list)
    #: Time of the last counted record, and of the last telegram received at all.
    last_at: float | None = None
    seen_at: float | None = None
    #: Nothing was received (and the link did not break) since the last telegram or header.
    unbroken: bool = False
    #: The last line received was rejected.
    lost: bool = False
    interval: float = 10.0
    #: The time since the base is not known (the wall clock went back across a break of the
    #: link): no bound from elapsed time until the next record is counted.
    untimed: bool = False
    #: The thresholds the spike bound uses, and those the last header showed.
    thresholds: list[int] | None = None
    header_thresholds: list[int] | None = None
    stats: LedgerStats = field(default_factory=LedgerStats)


class Ledger:
    """Exact pulse accounting for one module.

    ``feed`` takes every record the link received, with its arrival time, and returns the
    pulses counted and the events seen; ``interrupted`` takes a connect or disconnect of the
    link. ``state()`` is a JSON-able document; pass it back as ``state=`` to resume.
    """

    def __init__(self, module: str, *, state: dict[str, Any] | None = None) -> None:
        self.module = module
        self._s = _State()
        if state and "base" in state:
            doc = dict(state)
            stats = LedgerStats.restore(doc.pop("stats", None))
            base = doc.pop("base", None)
            held = [_Node(**n) for n in doc.pop("held", [])]
            self._s = _State(
                **doc, base=None if base is None else _Node(**base), held=held, stats=stats
            )
        elif state:
            self._s = _from_v1(state)

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
        """The module's totals as last confirmed."""
        base = self._s.base
        return None if base is None else list(base.totals)

    @property
    def thresholds(self) -> list[int] | None:
        return self._s.thresholds

    @property
    def held(self) -> int:
        """Records waiting for evidence (their pulses come when a later record vouches)."""
        return sum(1 for n in self._s.held if not n.header)

    def take_over(self, totals: list[int], at: float) -> bool:
        """Start from another reader's last seen module totals (seen at ``at``), so the pulses
        since it stopped are recovered from the module's counters. Only on a fresh ledger."""
        s = self._s
        if s.base is not None or s.held:
            return False
        s.base = _Node(at, None, None, [0] * len(totals), list(totals))
        s.counted = [0] * len(totals)
        s.last_at = s.seen_at = at
        s.unbroken = False
        return True

    # -- input

    def feed(self, at: float, record: Header | Telegram | Rejected) -> Out:
        if isinstance(record, Telegram):
            return self._telegram(at, record)
        if isinstance(record, Header):
            return self._header(at, record)
        s = self._s
        s.stats.rejected += 1
        s.unbroken = False  # a lost line: the next record is not joined to the last
        s.lost = True
        out: Out = [self._event(at, EventKind.REJECTED, detail=f"{record.reason}: {record.raw!r}")]
        if record.startup:
            # A header the line damaged is still a start-up: without it, a new life whose
            # totals passed the old one's would be taken for its continuation (the old life's
            # pulses lost). The totals still decide: a start is kept only if they fit it.
            detail = f"a damaged start-up header: {record.raw!r}"
            out.append(self._event(at, EventKind.STARTUP, detail=detail))
            s.held.append(_Node(at, None, None, [], [], header=True, line=record.raw))
        return out

    def interrupted(self, at: float) -> None:
        """The link connected or disconnected (``at``): what comes next is not joined to what
        came before, and a restart may have gone unseen. When ``at`` lies before the last
        record, the clock went back meanwhile: the time since then is not known."""
        s = self._s
        s.unbroken = s.lost = False
        if s.seen_at is not None and at < s.seen_at:
            s.untimed = True

    def shift(self, seconds: float) -> None:
        """The wall clock stepped by ``seconds``: move every time kept, so that what comes
        next is as far from it as it truly is (a step is neither a gap nor a spike)."""
        s = self._s
        for node in (s.base, *s.held):
            if node is not None:
                node.at += seconds
        if s.last_at is not None:
            s.last_at += seconds
        if s.seen_at is not None:
            s.seen_at += seconds

    def _event(
        self,
        at: float,
        kind: EventKind,
        *,
        register: int | None = None,
        value: float | None = None,
        detail: str = "",
    ) -> DeviceEvent:
        return DeviceEvent(
            at=at,
            kind=kind,
            module=self.module,
            meter=None,
            value=value,
            detail=detail,
            register=register,
        )

    def _header(self, at: float, header: Header) -> Out:
        s = self._s
        s.stats.headers += 1
        s.module_id = header.module_id
        if header.thresholds is not None:
            shown, old = list(header.thresholds), s.thresholds
            # A changed character can make a threshold look longer than it is, and a longer
            # one tightens the spike bound: a new value holds once two headers show it, the
            # shorter of old and new until then; one no module takes is ignored.
            if not all(THRESHOLD_MS_MIN <= v <= THRESHOLD_MS_MAX for v in shown):
                pass
            elif shown == s.header_thresholds or old is None:
                s.thresholds = shown
            elif len(old) == len(shown):
                s.thresholds = [min(a, b) for a, b in zip(old, shown, strict=True)]
            s.header_thresholds = shown
        out: Out = [self._event(at, EventKind.STARTUP, detail=header.to_line())]
        s.held.append(
            _Node(
                at, header.module_id, None, [], [], joined=True, header=True, line=header.to_line()
            )
        )
        s.unbroken, s.lost = True, False
        return out

    def _telegram(self, at: float, tg: Telegram) -> Out:
        s = self._s
        s.stats.telegrams += 1
        n = len(tg.registers)
        if len(s.counted) < n:
            s.counted += [0] * (n - len(s.counted))
        last = s.held[-1] if s.held else s.base
        joined = (
            s.unbroken
            and last is not None
            and at - last.at <= JOINED_INTERVALS * s.interval
            # The base is the record just before only if nothing was dropped after it.
            and (last is not s.base or s.seen_at == last.at)
        )
        s.seen_at = at
        s.unbroken = True
        after_loss, s.lost = s.lost, False
        node = _Node(
            at,
            tg.module_id,
            tg.interval,
            [r.interval for r in tg.registers],
            [r.total for r in tg.registers],
            joined=bool(joined),
            after_loss=after_loss,
        )
        out: Out = []
        if s.base is not None and not s.held and self._bridges(s.base, node):
            self._count(node, out, checked=True)  # the everyday path: one interval on
            return out
        node.line = tg.to_line()  # for the events a held record may give
        self._hold(node, out)
        return out

    # -- evidence

    def _bound(self, register: int, seconds: float) -> int:
        """Most pulses a register can count in ``seconds``: a pulse and an equal pause must each
        last at least the threshold."""
        s = self._s
        if s.untimed or seconds < 0:
            # The time since the base is not known (the clock went back across a break, or
            # behind the base): the totals decide alone.
            return 1 << 62
        ms = DEFAULT_THRESHOLD_MS
        if s.thresholds is not None and register <= len(s.thresholds):
            ms = max(1, s.thresholds[register - 1])
        return int(max(0.0, seconds) * 1000 / (2 * ms)) + SLACK

    def _within(self, node: _Node, since: _Node) -> bool:
        """Whether every total of ``node`` grew from ``since`` by no more than the meters can
        give in the time between (a start's totals are zeros)."""
        seconds = node.at - since.at + self._s.interval
        return all(
            t - since.total(i) <= self._bound(i, seconds)
            for i, t in enumerate(node.totals, start=1)
        )

    def _bridges(self, prev: _Node, node: _Node) -> bool:
        """Whether ``node`` goes on from ``prev`` by its interval counts (see the docstring)."""
        if not node.joined or node.header:
            return False
        if prev.header:
            # The interval is the firmware's constant: a first record must show the one known.
            return (
                node.counts == node.totals
                and node.interval == round(self._s.interval)
                and self._within(node, prev)
            )
        return (
            prev.same_source(node)
            and all(
                c == t - p for c, t, p in zip(node.counts, node.totals, prev.totals, strict=True)
            )
            and self._within(node, prev)
        )

    def _follows(self, prev: _Node, node: _Node) -> bool:
        """Whether ``node`` plausibly goes on from ``prev`` when the counts cannot bridge them:
        same source, no total lower, each at least its interval count more, within bound."""
        if node.header:
            return False
        if prev.header:
            return all(c <= t for c, t in zip(node.counts, node.totals, strict=True)) and (
                self._within(node, prev)
            )
        return (
            prev.same_source(node)
            and all(
                t - p >= c for c, t, p in zip(node.counts, node.totals, prev.totals, strict=True)
            )
            and self._within(node, prev)
        )

    # -- held records

    def _hold(self, node: _Node, out: Out) -> None:
        """Hold ``node`` and judge whatever it is evidence for."""
        s = self._s
        held = s.held
        prev = held[-1] if held else s.base
        held.append(node)
        if prev is not None and self._bridges(prev, node):
            if prev is s.base:  # the base, after the chain was interrupted and joined again
                held.pop()
                self._count(node, out, checked=True)
            elif prev.header:  # the first record of a new life
                self._settle(len(held) - 1, out)
            else:  # node vouches for prev, and goes on from it
                self._settle(len(held) - 2, out)
                s.held = []
                self._count(node, out, checked=True)
            return
        headers = any(h.header for h in held)
        if (
            not headers
            and s.base is not None
            and prev is not None
            and prev is not s.base
            and not node.joined
            and not self._contradicted(len(held) - 2)
            and self._follows(s.base, prev)
            and self._follows(prev, node)
        ):
            # Records that each follow a break (a noisy line): the later going on from the
            # earlier vouches for it as a continuation, never for a restart.
            self._settle(len(held) - 2, out)
            return
        records = [i for i, h in enumerate(held) if not h.header]
        if len(records) > MAX_HELD:
            self._overflow(records, out)

    def _overflow(self, records: list[int], out: Out) -> None:
        """Too many held records: settle the first that goes on from the base and that the next
        goes on from, as a continuation; else drop the oldest."""
        s = self._s
        held, base = s.held, s.base
        ends = [i for i, h in enumerate(held) if h.header and i > records[0]]
        if ends:
            # A start-up header after the oldest record: the lives before it have ended, and
            # nothing later can add to the evidence about them. Settle them now rather than
            # drop a life's last record (found by the property test: one pulse lost).
            s.held = held[ends[-1] :]
            self._end_lives(held[: ends[-1] + 1], out)
            return
        if base is not None and not any(h.header for h in held):
            for a, b in itertools.pairwise(records):
                if self._follows(base, held[a]) and self._follows(held[a], held[b]):
                    self._settle(a, out)
                    return
        first = records[0]
        dropped = held.pop(first)
        if first < len(held):
            held[first].joined = False
        self._dropped(dropped, out)

    def _contradicted(self, index: int) -> bool:
        """Whether held record ``index`` is joined to what came before it without bridging it."""
        s = self._s
        node = s.held[index]
        prev = s.held[index - 1] if index > 0 else s.base
        return node.joined and prev is not None and not self._bridges(prev, node)

    def _settle(self, index: int, out: Out) -> None:
        """Held record ``index`` has intact totals: decide what it is, count it and make it the
        base; what was held before it goes with it."""
        s = self._s
        node = s.held[index]
        before = s.held[:index]
        s.held = s.held[index + 1 :]
        base = s.base
        starts = [h for h in before if h.header]
        records = [h for h in before if not h.header]
        if starts:
            start = starts[-1]
            if self._within(node, start):
                self._end_lives(before, out)
                self._new_life(node, start, out)
                return
            if base is not None and self._goes_on(base, node):
                s.stats.glitches += 1
                out.append(
                    self._event(
                        node.at, EventKind.GLITCH, detail="start-up header, but the totals went on"
                    )
                )
                self._drop(records, out)
                self._count(node, out)
                return
        if base is None:
            self._join(node, before, out)
            return
        if not starts:
            went_back = any(t < base.total(i) for i, t in enumerate(node.totals, start=1))
            started_again = (
                not (not before and node.joined)  # joined to the base: no restart between
                and node.counts == node.totals
                and any(
                    c > t - base.total(i)
                    for i, (c, t) in enumerate(zip(node.counts, node.totals, strict=True), start=1)
                )
            )
            if (went_back or started_again) and self._within(node, _start(base.at)):
                s.stats.restarts += 1
                detail = (
                    "totals went back without a start-up header"
                    if went_back
                    else "interval counts show the totals started again"
                )
                out.append(self._event(node.at, EventKind.RESTART, detail=detail))
                self._end_lives(before, out)
                self._new_life(node, _start(base.at), out)
                return
            if not went_back:
                self._drop(records, out)
                self._count(node, out, checked=not before and node.joined)
                return
        # No story fits every register (corruptions in a row, or another module): count each
        # register that goes on, take the others as they are now. Nothing is counted twice.
        s.stats.glitches += 1
        out.append(
            self._event(
                node.at,
                EventKind.GLITCH,
                detail=f"neither a restart nor a continuation explains "
                f"{node.line!r}; registers that went back go on from it "
                "uncounted",
            )
        )
        self._drop(records, out)
        self._count(node, out)

    def _goes_on(self, base: _Node, node: _Node) -> bool:
        return len(base.totals) <= len(node.totals) and all(
            t >= base.total(i) for i, t in enumerate(node.totals, start=1)
        )

    def _join(self, node: _Node, before: list[_Node], out: Out) -> None:
        """The first confirmed record and no start-up seen: the module counted these pulses
        before we were watching; they are history, not consumption. When the record before it
        was garbled (held, or rejected), its totals are what the interval counts say."""
        s = self._s
        prev = before[-1] if before else None
        if not before and node.after_loss:
            # The line before it was a record the line garbled: its interval counts say what
            # that record's totals were.
            implied = [max(0, t - c) for c, t in zip(node.counts, node.totals, strict=True)]
            s.base = _Node(node.at - s.interval, node.module_id, node.interval, [], implied)
            self._count(node, out)
            return
        if node.joined and prev is not None and not prev.header:
            implied = [max(0, t - c) for c, t in zip(node.counts, node.totals, strict=True)]
            if len(prev.totals) == len(implied):
                # The garbled record or the count that disagrees with it: the higher total,
                # so that no pulse is counted that might not have been.
                implied = [
                    max(i, p) if p <= t else i
                    for i, p, t in zip(implied, prev.totals, node.totals, strict=True)
                ]
            s.base = _Node(prev.at, node.module_id, node.interval, [], implied)
            self._count(node, out)
            return
        s.base = node
        s.last_at = node.at
        if node.interval:
            s.interval = float(node.interval)

    def _new_life(self, node: _Node, start: _Node, out: Out) -> None:
        """``node`` is a record of the life that began at ``start`` (a header, or a guess)."""
        s = self._s
        s.base = _Node(
            start.at, node.module_id, node.interval, [], [0] * len(node.totals), header=True
        )
        since = s.last_at if s.last_at is not None else start.at
        self._count(node, out, span=node.at - since)

    def _end_lives(self, before: list[_Node], out: Out) -> None:
        """A new life begins with the record after ``before``: settle each life that ended in
        it. Records after the last start-up header (or, with no header, those below the base)
        are the new life's own, and the record that began it holds their pulses."""
        start = self._s.base
        segment: list[_Node] = []
        for node in before:
            if not node.header:
                segment.append(node)
                continue
            if segment and start is not None:
                self._end_life(start, segment, out)
            segment = []
            start = _Node(node.at, None, None, [], [], header=True)
        if start is self._s.base and start is not None and segment:
            # No header: the restart was seen from the totals. Those that went on from the base
            # are the old life's.
            old = [n for n in segment if self._goes_on(start, n)]
            if old:
                self._end_life(start, old, out)

    def _end_life(self, start: _Node, segment: list[_Node], out: Out) -> None:
        """The held records of a life that has ended, none vouched for as a whole: settled per
        register. A register's value counts when the record's counts bridge it from a value that
        counts (one changed character breaks only the numbers it hit), or when the record
        followed a break, so nothing could check it, and it fits (counted as it reads). What
        disagrees with its neighbours is not counted and its interval is reported unknowable."""
        s = self._s
        n = len(segment[0].totals)
        ok: list[list[bool]] = []  # per record, per register: the value counts
        refuted: list[list[bool]] = []  # ... or a value that counts says it is wrong

        known_id = s.base.module_id if s.base is not None else None

        def fits(node: _Node, i: int) -> bool:
            grown = node.total(i) - start.total(i)
            return 0 <= grown <= self._bound(i, node.at - start.at + s.interval)

        best = [start.total(i) for i in range(1, n + 1)]
        best_at = start.at
        #: Per register, the record (its index) whose total is counted unchecked.
        taken: dict[int, int] = {}
        #: Per register, the record (its index) whose total is the lower of a disputed pair.
        lower: dict[int, int] = {}
        #: Per record, per register: a value that fits, unchecked before it, that only the
        #: record after it disputes (the two disagree; which one the line altered is unknown).
        contested: list[list[bool]] = []
        for k, node in enumerate(segment):
            prev = segment[k - 1] if k else start
            later = segment[k + 1] if k + 1 < len(segment) else None
            fine: list[bool] = []
            wrong: list[bool] = []  # refuted by a value that counts
            disputes: list[bool] = []
            mine: list[bool] = []  # per register: the record may carry this life's total
            # A record whose module id was garbled has no total to trust; nor has one whose
            # interval was, unless its counts bridge it from a value that counts (a changed
            # interval leaves the totals sound, as ``_Node.same_source`` says).
            sourced = len(node.totals) == n and (known_id is None or node.module_id == known_id)
            own = sourced and node.interval == round(s.interval)
            for i in range(1, n + 1):
                c, t = node.counts[i - 1], node.total(i)
                linked = node.joined and (prev.header or prev.same_source(node))
                if linked and (
                    k == 0 or ok[k - 1][i - 1] or (not refuted[k - 1][i - 1] and fits(prev, i))
                ):
                    # Joined to a value that may be right: the interval count decides.
                    good = fits(node, i) and c == t - prev.total(i)
                    checked = k == 0 or ok[k - 1][i - 1]
                    before = segment[k - 2] if k >= 2 else start
                    if (
                        not good
                        and k
                        and prev.joined
                        and (before.header or before.same_source(prev))
                        and fits(node, i)
                        and t - c - prev.counts[i - 1] == before.total(i)
                    ):
                        # Only the total between them is wrong: the record before it, its
                        # count and this record agree (one changed character explains it).
                        good = checked = True
                        if k >= 2:
                            ok[k - 2][i - 1] = True
                    wrong.append(not good and (k == 0 or ok[k - 1][i - 1]))
                    disputes.append(False)
                    mine.append(sourced if checked and not prev.header else own)
                    if (
                        not good
                        and own
                        and k
                        and contested[k - 1][i - 1]
                        and fits(node, i)
                        and t - start.total(i) >= c
                    ):
                        # Two records that each fit disagree, and one changed character
                        # explains either: one of them is intact, and the life reached at
                        # least the lower of the two totals. That much is counted.
                        low = k if t <= prev.total(i) else k - 1
                        if segment[low].total(i) > best[i - 1]:
                            best[i - 1] = segment[low].total(i)
                            best_at = max(best_at, segment[low].at)
                            taken.pop(i, None)
                            lower[i] = low
                else:
                    wrong.append(False)
                    # After a break (or joined to a value no meter gives): unchecked, unless
                    # the next record, joined to it and fitting itself, disputes it.
                    judged = (
                        later is not None
                        and later.joined
                        and later.same_source(node)
                        and fits(later, i)
                    )
                    disputed = (
                        judged and later is not None and later.counts[i - 1] != later.total(i) - t
                    )
                    good = fits(node, i) and not disputed and t - start.total(i) >= c
                    disputes.append(disputed and fits(node, i) and t - start.total(i) >= c)
                    checked = judged
                    mine.append(own)
                fine.append(good and mine[-1])
                if fine[-1] and t > best[i - 1]:
                    best[i - 1] = t
                    best_at = max(best_at, node.at)
                    lower.pop(i, None)
                    if checked:
                        taken.pop(i, None)
                    else:
                        taken[i] = k
            ok.append(fine)
            refuted.append([w or not m for w, m in zip(wrong, mine, strict=True)])
            contested.append([d and own for d in disputes])
        said: list[tuple[int, str]] = []  # (record, what the event says of it)
        for k, (node, fine) in enumerate(zip(segment, ok, strict=True)):
            lost = [f"M{i}" for i, f in enumerate(fine, start=1) if not f and lower.get(i) != k]
            if lost:
                said.append((k, f"{node.line!r}, near the end of a module life, disagrees with "
                             f"the records around it on {', '.join(lost)}: not counted there; "
                             "the pulses of its interval are unknown "
                             f"(its counts say {node.counts})"))  # fmt: skip
        # Counted as it reads: it followed a break and ended its life, so no record joined to
        # it on either side could confirm it. One changed digit in it would be counted (a soak
        # with a fault every few records finds such a line now and then): say so.
        for k, on in _by_record(taken):
            said.append((k, f"{segment[k].line!r} ended a module life after a break: counted "
                         f"as it reads on {on}, unchecked (nothing joined to it could confirm "
                         "it)"))  # fmt: skip
        for k, on in _by_record(lower):
            said.append((k, f"{segment[k].line!r} and a record next to it disagree on {on} "
                         "near the end of a module life: one of them is intact, so the lower "
                         "total (this one's) is counted; the pulses between the two are "
                         "unknown"))  # fmt: skip
        for k, detail in said:
            s.stats.unconfirmed += 1
            out.append(self._event(segment[k].at, EventKind.UNCONFIRMED, detail=detail))
        last = segment[-1]
        s.base = start if not start.header else _start(start.at, n)
        self._count(_Node(best_at, last.module_id, last.interval, [], best), out)

    def _drop(self, nodes: Sequence[_Node], out: Out) -> None:
        """Held records a later one superseded. Those that disagreed with a neighbour, or went
        further than the meter can give, are reported; merely unchecked ones go silently."""
        for i, node in enumerate(nodes):
            later = nodes[i + 1] if i + 1 < len(nodes) else None
            prev = nodes[i - 1] if i else self._s.base
            disagrees = (node.joined and prev is not None and not self._bridges(prev, node)) or (
                later is not None and later.joined and not self._bridges(node, later)
            )
            self._dropped(node, out, quiet=not disagrees)

    def _dropped(self, node: _Node, out: Out, *, quiet: bool = False) -> None:
        """A held record nothing vouched for: a spike when a total went further than the meter
        can give, else a corrupted record (``quiet``: one that was merely never checked). Its
        pulses are in the later totals."""
        s = self._s
        base = s.base
        if base is not None and len(base.totals) == len(node.totals):
            seconds = node.at - base.at + s.interval
            for i, t in enumerate(node.totals, start=1):
                delta = t - base.total(i)
                if delta > self._bound(i, seconds):
                    s.stats.spikes += 1
                    out.append(self._spike(node.at, i, delta, node.at - base.at))
                    return
        if quiet:
            return
        s.stats.glitches += 1
        out.append(
            self._event(
                node.at, EventKind.GLITCH, detail=f"a corrupted record, not counted: {node.line!r}"
            )
        )

    def _spike(self, at: float, register: int, delta: int, elapsed: float) -> DeviceEvent:
        return self._event(
            at,
            EventKind.SPIKE,
            register=register,
            value=delta,
            detail=f"{delta} pulses in {elapsed:.0f} s: more than the meter can give; not counted",
        )

    # -- counting

    def _count(
        self, node: _Node, out: Out, *, checked: bool = False, span: float | None = None
    ) -> None:
        """Count ``node``'s totals against the base and make it the base. ``checked``: it is
        joined to the base, so its interval counts must agree (else a mismatch is reported)."""
        s = self._s
        base = s.base
        assert base is not None
        previous = s.last_at
        silence = node.at - previous if previous is not None else 0.0
        gap = silence > GAP_INTERVALS * s.interval
        elapsed = node.at - base.at
        for i, total in enumerate(node.totals, start=1):
            delta = total - base.total(i)
            if delta < 0:
                continue  # only where no story fits: this register goes on from here
            if delta > self._bound(i, elapsed + s.interval):
                # A vouched-for total the meter cannot have reached: the module's counter
                # jumped. The jump is not consumption; counting goes on from the new total.
                s.stats.spikes += 1
                out.append(self._spike(node.at, i, delta, elapsed))
                continue
            if checked and node.counts[i - 1] != delta:
                s.stats.mismatches += 1
                out.append(
                    self._event(
                        node.at,
                        EventKind.MISMATCH,
                        register=i,
                        value=delta,
                        detail=f"interval count {node.counts[i - 1]}, totals differ by {delta}",
                    )
                )
            if not delta:
                continue
            if gap:
                s.stats.gaps += 1
                out.append(
                    self._event(
                        node.at,
                        EventKind.GAP,
                        register=i,
                        value=delta,
                        detail=f"{delta} pulses recovered from the total after "
                        f"{silence:.0f} s without records",
                    )
                )
            s.counted[i - 1] += delta
            out.append(
                Count(
                    at=node.at,
                    register=i,
                    pulses=delta,
                    span=max(0.0, elapsed if span is None else span),
                )
            )
        s.base = node
        s.last_at = node.at
        s.untimed = False
        # The interval from two records in a row that agree on it, never from one: a garbled
        # "I:1" taken alone would make every later record look late (never joined) and every
        # total a spike, for good (found by bench/bench_fuzz.py).
        if node.interval and node.interval == base.interval:
            s.interval = float(node.interval)


def _by_record(chosen: dict[int, int]) -> list[tuple[int, str]]:
    """``{register: record}`` as ``(record, "M1, M3")`` pairs, in record order."""
    return [
        (k, ", ".join(f"M{i}" for i, j in sorted(chosen.items()) if j == k))
        for k in sorted(set(chosen.values()))
    ]


def _from_v1(state: dict[str, Any]) -> _State:
    """A state saved before records were held (one baseline per register): resume from it."""
    stats = LedgerStats.restore(state.get("stats"))
    totals = state.get("totals")
    at = state.get("last_at") or 0.0
    base = None if totals is None else _Node(at, None, None, [0] * len(totals), list(totals))
    return _State(
        module_id=state.get("module_id"),
        base=base,
        counted=list(state.get("counted", [])),
        last_at=state.get("last_at"),
        seen_at=state.get("seen_at"),
        interval=float(state.get("interval", 10.0)),
        thresholds=state.get("thresholds"),
        stats=stats,
    )
