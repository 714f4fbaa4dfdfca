"""The module itself, sans-io and driven by explicit time.

It counts pulses from its sources, prints a header at start-up and a data record every interval,
listens for threshold commands in the first seconds after power-up, and suffers the faults seen
in the field. Tests drive it with a fake clock and feed its bytes straight to a decoder; every
line it prints says which totals it carries intact, for the ground truth (:mod:`.truth`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from ..protocol import Header, Model, Register, Telegram
from .profiles import Source, steady
from .truth import MASK_7BIT, Line, RegisterTruth, Truth, last_record

__all__ = ["DEFAULT_THRESHOLD_MS", "LISTEN_WINDOW", "Fault", "Module"]

#: The module accepts threshold commands this long after power-up (manual: "within 10 seconds").
LISTEN_WINDOW: Final = 10.0
DEFAULT_THRESHOLD_MS: Final = 30


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
        registers = [
            Register(interval=c, total=d) for c, d in zip(counts, self._totals, strict=True)
        ]
        intact: list[int | None] = list(self._totals)
        faults, self._pending = self._pending, []
        if Fault.SPIKE in faults:
            i = self.rng.randrange(self.model.value)
            bogus = self.rng.randint(5_000, 60_000)
            registers[i] = Register(
                interval=registers[i].interval + bogus, total=registers[i].total + bogus
            )
            intact[i] = None
        meant = Telegram(
            module_id=self.module_id,
            interval=max(1, round(self.interval)),
            registers=tuple(registers),
        )
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
        altered = not whole or data.translate(MASK_7BIT) != meant.to_line().encode("ascii")
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


def _intact(
    data: bytes, meant: Telegram, intact: Sequence[int | None], *, whole: bool
) -> tuple[int | None, ...]:
    """Per register, the total that reaches a reader intact in the last line of ``data``: the
    line parses as a record of the module meant (same id and registers) and the register's two
    numbers are the ones meant (a cut or a changed character spoils only the numbers it hits;
    a changed interval leaves the totals intact, and a reader can tell from their counts).
    ``whole``: the line is not merged with another."""
    got = last_record(data) if whole else None
    shape = (meant.module_id, len(meant.registers))
    if got is None or (got.module_id, len(got.registers)) != shape:
        return (None,) * len(intact)
    return tuple(
        total if got.registers[i] == meant.registers[i] else None for i, total in enumerate(intact)
    )


def _version(firmware: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in firmware.lstrip("Vv").split("."))
    except ValueError:
        return (0,)
