"""A virtual S0PCM-2 / S0PCM-5: our hardware, faults included, with its own ground truth.

The module is never available to us or to CI, so the emulator must behave like the real one and
say exactly what a perfect logger should have counted.

Two layers, like the rest of the package:

* :class:`Module` is the module itself, sans-io and driven by explicit time: it counts pulses from
  its sources, prints a header at start-up and a data record every interval, listens for threshold
  commands in the first seconds after power-up, and suffers faults. Tests drive it with a fake
  clock and feed its bytes straight to a decoder.
* :class:`PtyEmulator` runs a module in real time on a pseudo-terminal behind a stable symlink,
  so the real link code (pyserial) reads it. It makes the pty vanish on an unplug and tracks which
  bytes a reader actually consumed, so the ground truth counts only what reached a reader.

The ground truth (:class:`Truth`) keeps, per register, the pulses the meter *generated*, the
pulses the module *counted*, and the pulses it *reported*: for each module life (start-up to
restart) the highest total that reached a reader intact. A perfect logger counts exactly
*reported*; pulses counted after the last delivered record of a life are lost for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import math
import os
import random
import re
import struct
import termios
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from ..errors import ProtocolError
from ..protocol import Header, Model, Register, Telegram, parse_telegram

__all__ = [
    "Fault",
    "Module",
    "PtyEmulator",
    "RateFn",
    "Source",
    "Truth",
    "household",
    "steady",
]

#: Pulses per second at a given Unix time.
RateFn = Callable[[float], float]

#: The module accepts threshold commands this long after power-up (manual: "within 10 seconds").
LISTEN_WINDOW: Final = 10.0
#: Length of the pulses the emulated meters produce, in ms (the S0 standard asks at least 30).
DEFAULT_PULSE_MS: Final = 50.0
DEFAULT_THRESHOLD_MS: Final = 30
#: Seconds a reader must have had the port open before output goes to it (see PtyEmulator).
SETTLE_IN: Final = 0.25
#: The pty speed the emulator leaves for a reader to change (nobody opens a module at 50 baud).
_MARK_SPEED: Final = termios.B50


class Fault(StrEnum):
    """What can go wrong; each maps to a failure seen in the field or named in the manual."""

    #: The module restarts (reset, firmware hiccup): totals back to 0, a new header.
    RESTART = "restart"
    #: USB unplugged and plugged back: the port vanishes, the module loses power (and the pulses
    #: in between), then starts up with a header.
    UNPLUG = "unplug"
    #: The port drops and comes back while the module stays powered (hub glitch): it keeps
    #: counting, its records in between are lost, its totals carry on.
    DROP = "drop"
    #: Random bytes (noise on the line) before a record, sometimes with their own line end.
    GARBAGE = "garbage"
    #: A record cut short (bytes lost).
    TRUNCATE = "truncate"
    #: A record whose line end was lost, so it runs into the next one.
    MERGE = "merge"
    #: The module prints nothing for a few intervals (three of those its records state, as a
    #: sped-up emulator too) but keeps counting.
    STALL = "stall"
    #: Brown-out: one record shows an unrealistic value for one register (manual: under-powered
    #: modules "may show unrealistic values"); the next record is sane again.
    SPIKE = "spike"
    #: The high (parity) bit set on some bytes, as an 8-bit path shows a 7E1 stream.
    NOISE = "noise"
    #: Characters of the next line (record or header) dropped, doubled or changed, one or a
    #: burst of a few: a UART overrun, a USB bridge in a brown-out, a flipped data bit.
    CORRUPT = "corrupt"


# --- pulse sources -------------------------------------------------------------------------------


def steady(rate: float) -> RateFn:
    """A constant rate in pulses per second."""
    return lambda t: rate


@functools.lru_cache(maxsize=256)
def _slot_draws(seed: int, kind: str, slot: int) -> tuple[float, float, float, float]:
    """Four uniform draws for a 5-minute slot: a pure function of (seed, kind, slot), so a
    backfill and a live run agree and tests are reproducible (cached: a slot is asked often)."""
    r = random.Random(f"{seed}:{kind}:{slot}")
    return r.random(), r.random(), r.random(), r.random()


def _local_hour(t: float) -> float:
    lt = time.localtime(t)
    return lt.tm_hour + lt.tm_min / 60 + lt.tm_sec / 3600


def household(kind: str, *, pulses_per_unit: float, seed: int = 0) -> RateFn:
    """A realistic daily profile for one meter of a household, in pulses per second.

    ``kind`` is electricity (W), gas (m³/h), water (L/min) or heat (kW); ``pulses_per_unit`` the
    meter's constant in pulses per kWh, m³, L or kWh. Appliances and taps run in 5-minute slots
    drawn from a seeded random, so the profile is a pure function of time.
    """

    def electricity(t: float) -> float:
        h = _local_hour(t)
        watts = 150.0 + 60 * math.sin(t / 900)  # fridge and standby, wobbling
        if 6.5 <= h < 8.5:
            watts += 400
        if 17 <= h < 22.5:
            watts += 700 * math.sin(math.pi * (h - 17) / 5.5)
        slot = int(t // 300)
        on, which, _, _ = _slot_draws(seed, "el", slot)
        if on < 0.06:
            watts += (2000.0, 1200.0, 2200.0, 800.0)[int(which * 4)]  # kettle, oven, washer, dryer
        return watts / 1000 / 3600 * pulses_per_unit

    def gas(t: float) -> float:
        h = _local_hour(t)
        day = (t / 86400) % 365.25
        winter = 0.5 + 0.5 * math.cos(2 * math.pi * (day - 15) / 365.25)  # 1 mid-January
        m3h = 0.02  # cooking, pilot
        if 6 <= h < 9 or 16.5 <= h < 23:
            m3h += 1.1 * winter
        elif 0 <= h < 6:
            m3h += 0.15 * winter
        shower, _, _, _ = _slot_draws(seed, "gas", int(t // 300))
        if 6.5 <= h < 8 and shower < 0.3:
            m3h += 1.5  # shower on a combi boiler
        return m3h / 3600 * pulses_per_unit

    def water(t: float) -> float:
        h = _local_hour(t)
        shower, taps, machines, _ = _slot_draws(seed, "water", int(t // 300))
        lpm = 0.0
        if 6.5 <= h < 8 and shower < 0.35:
            lpm += 8.0  # shower
        if 7 <= h < 23 and taps < 0.12:
            lpm += 1.5  # toilet, taps
        if 18 <= h < 20 and machines < 0.1:
            lpm += 4.0  # dishwasher, washing machine
        return lpm / 60 * pulses_per_unit

    def heat(t: float) -> float:
        h = _local_hour(t)
        day = (t / 86400) % 365.25
        winter = 0.5 + 0.5 * math.cos(2 * math.pi * (day - 15) / 365.25)
        kw = 0.3 + (4.0 * winter if 6 <= h < 23 else 1.0 * winter)
        return kw / 3600 * pulses_per_unit

    profiles: dict[str, RateFn] = {
        "electricity": electricity,
        "gas": gas,
        "water": water,
        "heat": heat,
    }
    try:
        return profiles[kind]
    except KeyError:
        raise ValueError(f"unknown profile kind {kind!r}; one of {', '.join(profiles)}") from None


#: The household wiring of the demo module: (kind, pulses per unit) for registers 1..5.
HOUSEHOLD: Final = (
    ("electricity", 1000.0),
    ("gas", 100.0),
    ("water", 1.0),
    ("heat", 100.0),
    ("electricity", 1000.0),
)


@dataclass(slots=True)
class Source:
    """What is wired to one register: a meter producing pulses of a certain length."""

    rate: RateFn
    pulse_ms: float = DEFAULT_PULSE_MS
    _carry: float = 0.0

    def slots(self, start: float, count: int, *, width: float = 10.0) -> list[int]:
        """Whole pulses in ``count`` consecutive slots from ``start``, the rate taken once a
        minute (the profiles change by the 5 minutes): fast enough to write months of history."""
        out = []
        carry = self._carry
        per_minute = max(1, round(60 / width))
        rate = 0.0
        for i in range(count):
            if i % per_minute == 0:
                rate = max(0.0, self.rate(start + (i + per_minute / 2) * width)) * width
            carry += rate
            whole = int(carry)
            carry -= whole
            out.append(whole)
        self._carry = carry
        return out

    def pulses(self, t0: float, t1: float) -> int:
        """Whole pulses generated in [t0, t1); fractions carry over, so none are lost."""
        span = t1 - t0
        if span <= 0:
            return 0
        steps = max(1, math.ceil(span / 60))
        dt = span / steps
        self._carry += sum(max(0.0, self.rate(t0 + (i + 0.5) * dt)) for i in range(steps)) * dt
        whole = int(self._carry)
        self._carry -= whole
        return whole


# --- ground truth --------------------------------------------------------------------------------


@dataclass(slots=True)
class RegisterTruth:
    generated: int = 0
    counted: int = 0
    #: Per module life, the highest total that reached a reader intact.
    best: dict[int, int] = field(default_factory=dict)
    #: Per module life, the highest total in a line that reached a reader whole (no character
    #: of it altered). A life that ends on a line altered elsewhere leaves nothing after it to
    #: vouch for that line, so a reader can be sure of this much, and may count up to ``best``.
    sure: dict[int, int] = field(default_factory=dict)
    #: Per module life, what its last record reads when a character of it was altered. When it
    #: also followed a break, nothing joined to it can confirm or refute it, so a reader that
    #: counts it as it reads (it is intact far more often than not) counts up to this.
    tail: dict[int, int] = field(default_factory=dict)

    @property
    def reported(self) -> int:
        return sum(self.best.values())

    @property
    def possible(self) -> int:
        """The most a reader can count: ``reported``, or a life's unverifiable last record."""
        lives = self.best.keys() | self.tail.keys()
        return sum(max(self.best.get(n, 0), self.tail.get(n, 0)) for n in lives)

    @property
    def vouched(self) -> int:
        return sum(self.sure.values())


@dataclass(slots=True)
class Truth:
    """What a perfect logger must count; see the module docstring."""

    registers: list[RegisterTruth]
    restarts: int = 0
    lines: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    #: Module lives so far (start-ups); printed lines carry the life they belong to.
    life: int = 0
    #: When a list, every delivered line is appended (for tests that compare line by line).
    transcript: list[Line] | None = None
    #: Start-up time of every life, for telling which pulses belong where.
    starts: list[float] = field(default_factory=list)

    def deliver(self, line: Line) -> None:
        """A line reached a reader: the totals it carries intact now count for its life."""
        self.lines += 1
        if self.transcript is not None:
            self.transcript.append(line)
        for reg, total in zip(self.registers, line.totals, strict=False):
            if total is not None and total > reg.best.get(line.life, 0):
                reg.best[line.life] = total
            if total is not None and not line.corrupt and total > reg.sure.get(line.life, 0):
                reg.sure[line.life] = total
        # Only what the line altered (a module's own brown-out value is its spike, which a
        # reader tells by the meter's pace).
        read: list[int | None] | None = _reads(line.data) if line.corrupt else list(line.totals)
        if read is not None and len(read) == len(self.registers):
            counted = line.counted or (None,) * len(read)
            for reg, total, intact, was in zip(
                self.registers, read, line.totals, counted, strict=False
            ):
                if total is not None and total != intact and was is not None:
                    reg.tail[line.life] = total
                else:
                    reg.tail.pop(line.life, None)

    def new_life(self, at: float) -> None:
        self.life += 1
        self.starts.append(at)

    def as_dict(self) -> dict[str, object]:
        return {
            "registers": [
                {
                    "register": n,
                    "generated": r.generated,
                    "counted": r.counted,
                    "reported": r.reported,
                    "vouched": r.vouched,
                    "possible": r.possible,
                }
                for n, r in enumerate(self.registers, start=1)
            ],
            "restarts": self.restarts,
            "lines": self.lines,
            "lives": [
                {"start": t, "reported": [r.best.get(n, 0) for r in self.registers]}
                for n, t in enumerate(self.starts, start=1)
            ],
            "faults": dict(sorted(self.faults.items())),
        }


def _reads(data: bytes) -> list[int | None] | None:
    """The totals a reader takes from the last line in ``data`` (None: not a record)."""
    text = data.translate(_MASK_7BIT).decode("ascii").replace("\r", "\n").rstrip("\n")
    try:
        return [r.total for r in parse_telegram(text.rsplit("\n", 1)[-1]).registers]
    except ProtocolError:
        return None


@dataclass(frozen=True, slots=True)
class Line:
    """Bytes the module printed, and the totals they carry intact (None: corrupted)."""

    data: bytes
    life: int
    totals: tuple[int | None, ...] = ()
    #: The bytes are not the record the module meant to print (garbage, cut, merged).
    corrupt: bool = False
    #: The totals the module counted (None where it printed a brown-out value instead).
    counted: tuple[int | None, ...] = ()


# --- the module ----------------------------------------------------------------------------------

_COMMAND_RE: Final = re.compile(r"T(\d)=(\d{1,5});")


class Module:
    """A virtual S0PCM driven by explicit time (seconds, any epoch)."""

    def __init__(
        self,
        *,
        model: Model = Model.S0PCM5,
        module_id: str = "8237",
        interval: float = 10.0,
        firmware: str = "V0.6",
        thresholds: Sequence[int] | None = None,
        sources: Sequence[Source] | None = None,
        header_space: bool = False,
        listen_window: float = LISTEN_WINDOW,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.module_id = module_id
        self.interval = interval
        self.firmware = firmware
        self.header_space = header_space
        self.listen_window = listen_window
        #: Firmware before V0.6 has no thresholds (and prints none).
        self.has_thresholds = _version(firmware) >= (0, 6)
        self.thresholds = list(thresholds or [DEFAULT_THRESHOLD_MS] * model.value)
        if len(self.thresholds) != model.value:
            raise ValueError(f"{model.label} has {model.value} thresholds")
        self.sources = list(sources or [Source(steady(0.0)) for _ in range(model.value)])
        if len(self.sources) != model.value:
            raise ValueError(f"{model.label} has {model.value} registers")
        self.rng = random.Random(seed)
        self.truth = Truth([RegisterTruth() for _ in range(model.value)])
        self.powered = False
        self.port_present = False
        self._totals = [0] * model.value
        self._counts = [0] * model.value
        self._t: float | None = None  # pulses accounted up to here (None: never powered)
        self._next_report = math.inf
        self._listen_until = -math.inf
        self._off_until = math.inf
        self._drop_until = -math.inf
        self._stall_until = -math.inf
        self._pending: list[Fault] = []
        self._merge_next = False
        self._input = ""

    # -- life cycle

    def power_on(self, now: float) -> list[Line]:
        """Plug in: the pulses so far were not counted; start-up prints the header."""
        self._account(now)
        self.powered = True
        self.port_present = True
        self._off_until = math.inf
        return [self._start(now)]

    def _start(self, now: float) -> Line:
        self._totals = [0] * self.model.value
        self._counts = [0] * self.model.value
        self._next_report = now + self.interval
        self._listen_until = now + self.listen_window
        self._input = ""
        self.truth.new_life(now)
        header = Header.make(
            self.module_id,
            firmware=self.firmware,
            thresholds=tuple(self.thresholds) if self.has_thresholds else None,
            space=self.header_space,
        )
        corrupt, self._merge_next = self._merge_next, False  # runs into an unended record
        data = header.to_line().encode("ascii")
        if Fault.CORRUPT in self._pending:
            self._pending.remove(Fault.CORRUPT)
            data, corrupt = self._corrupt(data), True
        return Line(data + b"\r\n", self.truth.life, (), corrupt)

    def _corrupt(self, data: bytes) -> bytes:
        """One character dropped, doubled or changed (digits mostly), or a burst of 2-4."""
        rng = self.rng
        out = bytearray(data)
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
            if not out:
                break
            i = rng.randrange(len(out))
            how = rng.random()
            if how < 1 / 3:
                del out[i]
            elif how < 2 / 3:
                out.insert(i, out[i])
            else:
                out[i] = ord(rng.choice("0123456789" * 4 + ":/IDM- "))
        return bytes(out)

    # -- time

    def advance(self, now: float) -> list[Line]:
        """Run the module up to ``now``; return what it printed while its port was present."""
        out: list[Line] = []
        while True:
            if not self.powered:
                if self._off_until > now:
                    break
                out.extend(self.power_on(self._off_until))
                continue
            if self._next_report > now:
                break
            t = self._next_report
            self._next_report += self.interval
            line = self._report(t)
            if line is not None and t >= self._drop_until:
                out.append(line)
            elif line is not None:
                self._merge_next = False  # an unended record that never left: nothing to run into
        self.port_present = self.powered and now >= self._drop_until
        if self.powered:
            self._account(now)
        return out

    def _account(self, t: float) -> None:
        """Count the pulses generated in [last, t), as the hardware would."""
        if self._t is None:
            self._t = t
            return
        span = t - self._t
        if span <= 0:
            return
        for i, src in enumerate(self.sources):
            generated = src.pulses(self._t, t)
            reg = self.truth.registers[i]
            reg.generated += generated
            if not self.powered:
                continue
            # A pulse shorter than the threshold is not seen; the module can take at most one
            # pulse per (pulse + equal gap) of the longer of pulse length and threshold.
            width = max(src.pulse_ms, float(self.thresholds[i]))
            seen = 0 if src.pulse_ms < self.thresholds[i] else generated
            counted = min(seen, int(span * 1000 / (2 * width)) + 1)
            reg.counted += counted
            self._totals[i] += counted
            self._counts[i] += counted
        self._t = t

    def _report(self, t: float) -> Line | None:
        self._account(t)
        counts, self._counts = self._counts, [0] * self.model.value
        if t < self._stall_until:
            return None
        registers = [Register(c, d) for c, d in zip(counts, self._totals, strict=True)]
        intact: list[int | None] = list(self._totals)
        faults, self._pending = self._pending, []
        if Fault.SPIKE in faults:
            i = self.rng.randrange(self.model.value)
            bogus = self.rng.randint(5_000, 60_000)
            registers[i] = Register(registers[i].interval + bogus, registers[i].total + bogus)
            intact[i] = None
        meant = Telegram(self.module_id, max(1, round(self.interval)), tuple(registers))
        data = meant.to_line().encode("ascii")
        end = b"\r\n"
        # An unended record before this one runs into its start, unless noise on its own line
        # comes between and ends it.
        run_into = self._merge_next
        self._merge_next = False
        corrupt = False
        if Fault.TRUNCATE in faults:
            data = data[: self.rng.randrange(1, len(data))]  # judged below, by what parses
        if Fault.MERGE in faults:
            end = b""
            corrupt = self._merge_next = True
        if Fault.GARBAGE in faults:
            junk = bytes(
                b
                for b in self.rng.randbytes(self.rng.randint(1, 40))
                if b & 0x7F not in (0x0A, 0x0D)
            )
            if self.rng.random() < 0.5:
                junk += b"\r\n"  # noise on its own line: the record itself survives
                run_into = False
            else:
                corrupt = True
            data = junk + data
        if Fault.CORRUPT in faults:
            data = self._corrupt(data)
        if Fault.NOISE in faults:
            data = bytes(b | 0x80 if self.rng.random() < 0.2 else b for b in data)
        whole = not (corrupt or run_into)
        totals = _intact(data, meant, intact, whole=whole)
        altered = not whole or data.translate(_MASK_7BIT) != meant.to_line().encode("ascii")
        return Line(data + end, self.truth.life, totals, altered, tuple(intact))

    # -- faults

    def inject(self, fault: Fault, now: float, *, duration: float | None = None) -> list[Line]:
        """Make ``fault`` happen at ``now`` (after :meth:`advance` to ``now``)."""
        self.truth.faults[fault] = self.truth.faults.get(fault, 0) + 1
        if fault is Fault.RESTART:
            if not self.powered:
                return []
            self._account(now)
            self.truth.restarts += 1
            return [self._start(now)]
        if fault is Fault.UNPLUG:
            if not self.powered:
                return []
            self._account(now)
            self.powered = False
            self.port_present = False
            self.truth.restarts += 1
            self._off_until = now + (duration if duration is not None else 2 * self.interval)
            self._merge_next = False  # the reader starts afresh on the next connection
            self._next_report = math.inf
            return []
        if fault is Fault.DROP:
            self._drop_until = now + (duration if duration is not None else 2 * self.interval)
            self._merge_next = False
            self.port_present = False
            return []
        if fault is Fault.STALL:
            # Whole intervals as the records state them: a module's timer skips prints, it never
            # prints early. Sped up (0.05 s between records that say I:1), a stall of three
            # real intervals would look like a record 0.2 s late that no stall explains, which
            # no module gives (the soak found it as pulses a record's neighbours disowned).
            stated = max(1, round(self.interval))
            default = 3 * max(self.interval, stated)
            self._stall_until = now + (duration if duration is not None else default)
            return []
        self._pending.append(fault)
        return []

    # -- input

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host. Threshold commands count only in the listening window."""
        if not self.powered or now > self._listen_until or not self.has_thresholds:
            return
        self._input += data.decode("ascii", "replace")
        for m in _COMMAND_RE.finditer(self._input):
            reg, ms = int(m.group(1)), int(m.group(2))
            if 1 <= reg <= self.model.value and 1 <= ms <= 10_000:
                self.thresholds[reg - 1] = ms
        self._input = self._input[self._input.rfind(";") + 1 :][-64:]

    def output(self, now: float) -> bytes:
        """Advance and return the bytes printed, all taken as delivered (in-process use)."""
        lines = self.advance(now)
        for line in lines:
            self.truth.deliver(line)
        return b"".join(line.data for line in lines)


_MASK_7BIT: Final = bytes(b & 0x7F for b in range(256))


def _intact(
    data: bytes, meant: Telegram, intact: Sequence[int | None], *, whole: bool
) -> tuple[int | None, ...]:
    """Per register, the total that reaches a reader intact in the last line of ``data``: the
    line parses as a record of the module meant (same id and registers) and the register's two
    numbers are the ones meant (a cut or a changed character spoils only the numbers it hits;
    a changed interval leaves the totals intact, and a reader can tell from their counts).
    ``whole``: the line is not merged with another."""
    none = (None,) * len(intact)
    if not whole:
        return none
    text = data.translate(_MASK_7BIT).replace(b"\r", b"\n").rsplit(b"\n", 1)[-1]
    try:
        got = parse_telegram(text.decode("ascii"))
    except (ProtocolError, UnicodeDecodeError):
        return none
    if (got.module_id, len(got.registers)) != (meant.module_id, len(meant.registers)):
        return none
    return tuple(
        total if got.registers[i] == meant.registers[i] else None for i, total in enumerate(intact)
    )


def _version(firmware: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in firmware.lstrip("Vv").split("."))
    except ValueError:
        return (0,)


# --- real time on a pseudo-terminal --------------------------------------------------------------


class PtyEmulator:
    """Runs a :class:`Module` in real time on a pseudo-terminal behind a stable symlink.

    Like a USB serial device, it only delivers while a reader has the port open: it sees a
    reader come and go (the pty master reads EIO while nobody has the other side open), holds
    its output for at most ``stale`` seconds while nobody reads (until the first reader came, it
    holds all of it: the first reader gets the start-up header), and asks the kernel how many
    bytes a reader left unread, so the ground truth counts exactly the lines a reader consumed.
    """

    def __init__(
        self,
        module: Module,
        *,
        link: Path,
        truth_path: Path | None = None,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[Fault] = (),
        clock: Callable[[], float] | None = None,
        tick: float | None = None,
        transcript_path: Path | None = None,
    ) -> None:
        self.module = module
        #: Every line a reader consumed, one JSON document per line (to trace a soak's loss).
        self.transcript_path = transcript_path
        self.link = Path(link)
        self.truth_path = truth_path
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds) or tuple(Fault)
        self.clock = clock or time.time
        self.tick = tick if tick is not None else min(0.05, module.interval / 4)
        self.stale = max(2.0, 2 * module.interval)
        self.readers = 0  # readers seen so far
        self._master = -1
        self._slave_name = ""
        self._reader_since: float | None = None  # since when a reader has the port, set up
        self._present_since: float | None = None  # since when something has it open
        self._written = 0  # bytes written to the pty since it was (re)opened or flushed
        self._queue: list[tuple[float, Line]] = []  # printed, not yet written
        self._unconfirmed: list[tuple[int, Line]] = []  # (end offset, line) written, not read
        self._requests: list[tuple[Fault, float | None]] = []
        self._truth_text = ""
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    # -- control

    def request(self, fault: Fault, *, duration: float | None = None) -> None:
        """Ask for a fault at the next tick (safe from a signal handler)."""
        self._requests.append((fault, duration))

    def command(self, text: str) -> None:
        """A fault by name, with an optional duration (``"unplug 5"``, ``"garbage"``), or
        ``"rate R"`` to set the rate of random faults per interval.

        Raises ValueError for an unknown command or a bad number.
        """
        kind, _, rest = text.strip().partition(" ")
        number = float(rest) if rest.strip() else None
        if number is not None and not 0 <= number < math.inf:
            raise ValueError(f"bad number {rest!r}")
        if kind == "rate":
            if number is None:
                raise ValueError("rate needs a number")
            self.fault_rate = number
            return
        self.request(Fault(kind), duration=number)

    def stop(self) -> None:
        self._stop.set()

    # -- pty

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = _MARK_SPEED
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._slave_name = os.ttyname(slave)
        os.close(slave)  # so the master reads EIO until a reader opens the slave
        os.set_blocking(master, False)
        self._master = master
        self._written = 0
        self._reader_since = self._present_since = None
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self._slave_name)
        tmp.replace(self.link)

    def _close(self) -> None:
        if self._master < 0:
            return
        self._settle(gone=True)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        os.close(self._master)
        self._master = -1
        self._reader_since = self._present_since = None

    def _poll(self, now: float) -> bool:
        """Whether a reader has the port open; takes what it wrote (threshold commands)."""
        try:
            data = os.read(self._master, 1024)
        except BlockingIOError:
            return True
        except OSError:
            return False  # EIO: nobody has the slave open
        if data:
            self.module.receive(data, now)
        return True

    def _mark(self, *, check: bool) -> bool:
        """The pty's speed as a marker: we set an odd one, a reader that opens the port sets its
        own (pyserial does, then empties the input). With ``check`` tell whether a reader has
        configured it; without, set the mark again (when the reader has gone)."""
        fd = os.open(self._slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            attrs = termios.tcgetattr(fd)
            if check:
                return bool(attrs[4] != _MARK_SPEED)
            attrs[4] = attrs[5] = _MARK_SPEED
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            return False
        finally:
            os.close(fd)

    def _settle(self, *, gone: bool = False) -> None:
        """Confirm the lines a reader consumed; when it has gone, the rest is lost."""
        if not self._unconfirmed:
            return
        fd = os.open(self._slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
            consumed = self._written - int(struct.unpack("i", buf)[0])
            while self._unconfirmed and self._unconfirmed[0][0] <= consumed:
                self._deliver(self._unconfirmed.pop(0)[1])
            if gone:
                termios.tcflush(fd, termios.TCIFLUSH)
                self._unconfirmed.clear()
                self._written = 0
        finally:
            os.close(fd)

    def _deliver(self, line: Line) -> None:
        self.module.truth.deliver(line)
        if self.transcript_path is not None:
            doc = {
                "at": round(self.clock(), 3),
                "life": line.life,
                "totals": line.totals,
                "corrupt": line.corrupt,
                "data": line.data.decode("ascii", "replace"),
            }
            with self.transcript_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(doc) + "\n")

    def _write(self, line: Line) -> None:
        try:
            n = os.write(self._master, line.data)
        except BlockingIOError:
            return  # the reader does not keep up: the line is lost, as on a real port
        self._written += n
        if n == len(line.data):
            self._unconfirmed.append((self._written, line))

    def _write_truth(self) -> None:
        if self.truth_path is None:
            return
        doc: dict[str, object] = {
            "model": self.module.model.label,
            "module_id": self.module.module_id,
            "thresholds": self.module.thresholds,
            **self.module.truth.as_dict(),
        }
        text = json.dumps(doc, indent=1) + "\n"
        if text == self._truth_text:
            return  # unchanged: spare the disk
        tmp = self.truth_path.with_name(self.truth_path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(self.truth_path)
        self._truth_text = text

    # -- main loop

    def _step(self, now: float, rng: random.Random) -> None:
        module = self.module
        # What the host wrote arrived before anything that happens at this tick.
        reader = self._master >= 0 and self._poll(now)
        printed: list[Line] = []
        while self._requests:
            fault, duration = self._requests.pop(0)
            printed += module.advance(now)
            printed += module.inject(fault, now, duration=duration)
        if self.fault_rate and rng.random() < self.fault_rate * self.tick / module.interval:
            printed += module.advance(now)
            printed += module.inject(rng.choice(self.fault_kinds), now)
        printed += module.advance(now)
        self._queue += [(now, line) for line in printed]
        if module.port_present and self._master < 0:
            self._open()
            reader = False  # a new pty: nobody has it open yet
        elif not module.port_present and self._master >= 0:
            self._close()
            self._queue.clear()  # printed while the port is gone: lost
        if self._master >= 0:
            if reader and self._present_since is None:
                self._present_since = now
            present = self._present_since
            if reader and self._reader_since is None and present is not None:
                # A reader counts once it has configured the port (and so emptied it), or after
                # a while for one that never does (cat).
                if self._mark(check=True) or now - present > 2.0:
                    self.readers += 1
                    self._reader_since = now
            elif not reader and self._present_since is not None:
                self._settle(gone=True)
                self._mark(check=False)
                self._reader_since = self._present_since = None
            if reader and now - (self._reader_since or now) >= SETTLE_IN:
                # The reader has settled in (pyserial empties the input when it opens, after
                # trying its framing): hand over the output.
                self._settle()
                for _, line in self._queue:
                    self._write(line)
                self._queue.clear()
        if self.readers:
            # Before the first reader the output waits (the module was plugged in for it); after
            # that, what nobody reads is lost, as a USB device's output is.
            self._queue = [(t, line) for t, line in self._queue if now - t <= self.stale]
        self._write_truth()

    async def run(self) -> None:
        """Power the module on and run until :meth:`stop`; the link is removed at the end."""
        rng = random.Random(self.module.rng.random())
        self._queue = [(self.clock(), line) for line in self.module.power_on(self.clock())]
        self._open()
        self.ready.set()
        try:
            while not self._stop.is_set():
                self._step(self.clock(), rng)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.tick)
        finally:
            self._close()
            self._write_truth()
            self.ready.clear()
