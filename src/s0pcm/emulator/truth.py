"""The emulator's ground truth: what a perfect logger must count, per register and module life.

Per register, the pulses the meter *generated*, the pulses the module *counted*, and the pulses
it *reported*: for each module life (start-up to restart) the highest total that reached a reader
intact. A perfect logger counts exactly *reported*; pulses counted after the last delivered
record of a life are lost for everyone. A :class:`Line` is what the module printed, with the
totals it carries intact, so the truth can be kept from the lines a reader actually consumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ..errors import ProtocolError
from ..protocol import Telegram, parse_telegram

__all__ = ["MASK_7BIT", "Line", "RegisterTruth", "Truth", "last_record"]

#: Clears the high (parity) bit, as a reader of a 7E1 stream on an 8-bit path does.
MASK_7BIT: Final = bytes(b & 0x7F for b in range(256))


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


@dataclass(slots=True)
class RegisterTruth:
    """One register: what its meter generated, what the module counted, what reached a reader."""

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
        read: list[int | None] | None = list(line.totals)
        if line.corrupt:
            record = last_record(line.data.rstrip(b"\r\n"))
            read = None if record is None else [r.total for r in record.registers]
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


def last_record(data: bytes) -> Telegram | None:
    """The record a reader takes from the last line in ``data`` (None: not a record); the one
    reading both the truth and the module judge a printed line by."""
    text = data.translate(MASK_7BIT).replace(b"\r", b"\n").rsplit(b"\n", 1)[-1]
    try:
        return parse_telegram(text.decode("ascii"))
    except ProtocolError:
        return None
