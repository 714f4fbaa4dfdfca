"""The S0PCM wire protocol, sans-io: bytes in, typed records out, and records back to text.

Nothing here touches a port, a clock or a file, so the serial link, the emulator, capture replay
and the tests all share exactly the same framing and parsing.

The module prints (see the manual in the project's shared seed):

* a header once after start-up: ``/8237:S0 Pulse Counter V0.6 - 30/30/30/30/30ms`` (older
  firmware has no threshold part; some print a space after the first colon);
* a data record every interval (10 s): ``ID:8237:I:10:M1:0:24130:M2:0:0`` for the S0PCM-2, up to
  ``M5`` for the S0PCM-5; per register the pulses in the last interval, then the pulses since
  the module's last start-up.

The module also listens, for 10 s after power-up, for threshold commands ``Tx=y;``.

One job, a little past 500 lines: the records, their strict parsing and the stream decoder check
one another (the decoder's module and register checks are the parser's, in context), and the
field's faults are told apart here, once, for every reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, NamedTuple

from .errors import ProtocolError

__all__ = [
    "MAX_LINE",
    "THRESHOLD_MS_MAX",
    "THRESHOLD_MS_MIN",
    "Decoder",
    "Header",
    "Model",
    "Record",
    "Register",
    "Rejected",
    "Telegram",
    "Thresholds",
    "parse_header",
    "parse_line",
    "parse_telegram",
    "parse_thresholds",
]

#: Longest line the framer keeps. A valid S0PCM-5 record with ten-digit counters is 151 characters;
#: anything longer is garbage (or lines merged by a lost newline) and must not grow memory.
MAX_LINE: Final = 256
#: The range we accept for a threshold, in ms. The S0 standard pulse is at least 30 ms; meters that
#: do not comply use from a few ms to a few hundred. Outside 1..1000 ms a threshold is a typo.
THRESHOLD_MS_MIN: Final = 1
THRESHOLD_MS_MAX: Final = 1000
#: Counters are printed in decimal; more digits than a 32-bit counter needs is noise, not a count.
_MAX_DIGITS: Final = 10


class Model(IntEnum):
    """The two modules; the value is the number of registers."""

    S0PCM2 = 2
    S0PCM5 = 5

    @property
    def label(self) -> str:
        return f"S0PCM-{self.value}"


class Register(NamedTuple):
    """One register of a data record (a named tuple: a year of records builds millions)."""

    #: Pulses counted in the last interval.
    interval: int
    #: Pulses counted since the module's last start-up: the authority for the ledger.
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Telegram:
    """A data record: ``ID:a:I:b:M1:c:d:...``."""

    module_id: str
    #: The interval between records in seconds, as the firmware prints it (10).
    interval: int
    registers: tuple[Register, ...]

    @property
    def model(self) -> Model:
        return Model(len(self.registers))

    def to_line(self) -> str:
        """The record as the module prints it (without line ending)."""
        regs = ":".join(
            f"M{n}:{r.interval}:{r.total}" for n, r in enumerate(self.registers, start=1)
        )
        return f"ID:{self.module_id}:I:{self.interval}:{regs}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The start-up header: ``/8237:S0 Pulse Counter V0.6 - 30/30/30/30/30ms``.

    A header whose text we do not recognise is kept (``firmware`` and ``thresholds`` are None)
    rather than rejected: a future firmware must not make the logger blind to start-ups.
    """

    module_id: str
    #: Everything after the colon (and the optional space), as received.
    text: str
    #: Firmware version as printed, e.g. ``"V0.6"``; None when the text is not recognised.
    firmware: str | None = None
    #: Per-register thresholds in ms; None for firmware before V0.6 or unrecognised text.
    thresholds: tuple[int, ...] | None = None
    #: Whether the module printed a space after the first colon (kept so formatting round-trips).
    space: bool = False

    @classmethod
    def make(
        cls,
        module_id: str,
        *,
        firmware: str = "V0.6",
        thresholds: tuple[int, ...] | None = None,
        space: bool = False,
    ) -> Header:
        """A header as the firmware would print it."""
        text = f"S0 Pulse Counter {firmware}"
        if thresholds is not None:
            text += " - " + "/".join(str(t) for t in thresholds) + "ms"
        return cls(
            module_id=module_id, text=text, firmware=firmware, thresholds=thresholds, space=space
        )

    @property
    def recognised(self) -> bool:
        return self.firmware is not None

    def to_line(self) -> str:
        return f"/{self.module_id}:{' ' if self.space else ''}{self.text}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """A line that was not accepted, with the reason; counted and logged, never a zero."""

    raw: str
    reason: str

    @property
    def kind(self) -> str:
        """The reason without the particulars (``"M2 total is not a non-negative integer"``),
        what rejected lines are counted by."""
        return self.reason.split(" (")[0].split(":")[0]

    @property
    def startup(self) -> bool:
        """Whether the line is a start-up header the line damaged (a character changed, a cut,
        a lost line ending): the module prints that text only when it starts, so a restart
        happened here even though no header could be read."""
        return _DAMAGED_HEADER_RE.search(self.raw) is not None


Record = Header | Telegram


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A threshold command ``Tx=y;...``: (register, ms) pairs in the order given."""

    values: tuple[tuple[int, int], ...]

    def to_command(self) -> str:
        return "".join(f"T{reg}={ms};" for reg, ms in self.values)

    def as_dict(self) -> dict[int, int]:
        return dict(self.values)

    def confirmed_by(self, header: Header) -> bool:
        """Whether a start-up header shows every threshold of this command."""
        shown = header.thresholds
        if shown is None:
            return False
        return all(reg <= len(shown) and shown[reg - 1] == ms for reg, ms in self.values)


# --- parsing -------------------------------------------------------------------------------------

_HEADER_RE: Final = re.compile(r"/(\d{1,10}):( ?)([\x20-\x7e]*)", re.ASCII)
_HEADER_TEXT_RE: Final = re.compile(
    r"S0 Pulse Counter (V\d+(?:\.\d+)*)(?: - (\d{1,4}(?:/\d{1,4})*)ms)?"
)
_THRESHOLD_RE: Final = re.compile(r"T(\d)=(\d{1,5})", re.ASCII)
# What is left of a header's text after a changed, dropped or doubled character or a cut: one
# change cannot break both words. No data record (digits, colons, ID, I, M) holds either.
_DAMAGED_HEADER_RE: Final = re.compile(r"Pulse|Counter|S0 P", re.ASCII)
# A data record inside a header's text: the line ending between the two was lost.
_MERGED_RE: Final = re.compile(r"ID:\d+:", re.ASCII)
# A whole start-up header at the end of a line: the line ending before it was lost. The header is
# what tells a restart from a cut, so it is worth recovering from the merged line.
_TRAILING_HEADER_RE: Final = re.compile(
    r"/\d{1,10}: ?S0 Pulse Counter V\d+(?:\.\d+)*(?: - \d{1,4}(?:/\d{1,4})*ms)?\Z", re.ASCII
)
# Field positions of a data record: label, interval count, total, for each register.
_FIELDS_FOR: Final = {4 + 3 * m: Model(m) for m in (2, 5)}
_LABELS: Final = tuple(f"M{n}" for n in range(1, 6))


def _number(line: str, text: str, what: str) -> int:
    if not (text.isdigit() and len(text) <= _MAX_DIGITS):
        raise ProtocolError(line, f"{what} is not a non-negative integer: {text!r}")
    if len(text) > 1 and text[0] == "0":
        # The firmware prints numbers plainly; "07" is a character doubled or inserted.
        raise ProtocolError(line, f"{what} has a leading zero: {text!r}")
    return int(text)


_ID = rf"(\d{{1,{_MAX_DIGITS}}})"
_N = rf"(0|[1-9]\d{{0,{_MAX_DIGITS - 1}}})"
_TELEGRAM_RE: Final = re.compile(
    rf"ID:{_ID}:I:{_N}:M1:{_N}:{_N}:M2:{_N}:{_N}(?::M3:{_N}:{_N}:M4:{_N}:{_N}:M5:{_N}:{_N})?",
    re.ASCII,
)


def parse_telegram(line: str) -> Telegram:
    """Parse a data record strictly: field count, labels in order, non-negative integers."""
    m = _TELEGRAM_RE.fullmatch(line)
    if m is not None:
        # The fast path: one regex that accepts exactly what the checks below accept.
        module_id, interval, *counts = m.groups()
        seconds = int(interval)
        if seconds:
            ints = list(map(int, counts[: 4 if counts[4] is None else 10]))
            return Telegram(
                module_id=module_id,
                interval=seconds,
                registers=tuple(map(Register, ints[0::2], ints[1::2])),
            )
    return _parse_telegram_slowly(line)


def _parse_telegram_slowly(line: str) -> Telegram:
    """Field by field, to say exactly what is wrong with a line the fast path refused."""
    if not line.isascii():
        raise ProtocolError(line, "non-ASCII characters in data record")
    parts = line.split(":")
    model = _FIELDS_FOR.get(len(parts))
    if parts[0] != "ID" or len(parts) < 2:
        raise ProtocolError(line, "not a data record (must start with 'ID:')")
    if model is None:
        raise ProtocolError(
            line, f"expected 10 or 19 fields (S0PCM-2 or S0PCM-5), got {len(parts)}"
        )
    if parts[2] != "I":
        raise ProtocolError(line, f"expected 'I' as third field, got {parts[2]!r}")
    module_id = parts[1]
    if not (module_id.isdigit() and len(module_id) <= _MAX_DIGITS):
        raise ProtocolError(line, f"module id is not a number: {module_id!r}")
    interval = _number(line, parts[3], "interval")
    if interval == 0:
        raise ProtocolError(line, "interval is 0 s")
    registers = []
    for n in range(model.value):
        base = 4 + 3 * n
        if parts[base] != _LABELS[n]:
            raise ProtocolError(line, f"expected label {_LABELS[n]}, got {parts[base]!r}")
        registers.append(
            Register(
                interval=_number(line, parts[base + 1], f"M{n + 1} interval count"),
                total=_number(line, parts[base + 2], f"M{n + 1} total"),
            )
        )
    return Telegram(module_id=module_id, interval=interval, registers=tuple(registers))


def parse_header(line: str) -> Header:
    """Parse a start-up header; unrecognised text after the id is kept, not fatal."""
    m = _HEADER_RE.fullmatch(line)
    if m is None:
        raise ProtocolError(line, "malformed header (expected '/<id>:<text>')")
    module_id, space, text = m.groups()
    t = _HEADER_TEXT_RE.fullmatch(text)
    if t is None:
        if _MERGED_RE.search(text):
            raise ProtocolError(line, "header merged with a data record (line ending lost?)")
        return Header(
            module_id=module_id, text=text, firmware=None, thresholds=None, space=bool(space)
        )
    firmware, thresholds = t.groups()
    values = None if thresholds is None else tuple(int(v) for v in thresholds.split("/"))
    return Header(
        module_id=module_id, text=text, firmware=firmware, thresholds=values, space=bool(space)
    )


def parse_line(line: str) -> Record:
    """Parse one line (without its line ending) into a header or a data record."""
    if line.startswith("/"):
        return parse_header(line)
    return parse_telegram(line)


def parse_thresholds(text: str, *, model: Model = Model.S0PCM5) -> Thresholds:
    """Parse and validate a threshold command such as ``T3=50;T5=90;``.

    The final ``;`` may be missing (the manual's own example omits it); whitespace around the
    command is ignored. Registers must exist on the model and appear once; values must lie in
    ``THRESHOLD_MS_MIN..THRESHOLD_MS_MAX`` ms.
    """
    body = text.strip()
    if not body:
        raise ProtocolError(text, "empty threshold command")
    items = body.removesuffix(";").split(";")
    values: list[tuple[int, int]] = []
    for item in items:
        m = _THRESHOLD_RE.fullmatch(item)
        if m is None:
            raise ProtocolError(text, f"expected 'Tx=y;' (x register, y ms), got {item!r}")
        reg, ms = int(m.group(1)), int(m.group(2))
        if not 1 <= reg <= model.value:
            raise ProtocolError(text, f"register {reg} does not exist on the {model.label}")
        if not THRESHOLD_MS_MIN <= ms <= THRESHOLD_MS_MAX:
            raise ProtocolError(
                text,
                f"threshold {ms} ms for register {reg} is outside "
                f"{THRESHOLD_MS_MIN}..{THRESHOLD_MS_MAX} ms",
            )
        if any(r == reg for r, _ in values):
            raise ProtocolError(text, f"register {reg} given twice")
        values.append((reg, ms))
    return Thresholds(tuple(values))


#: Whole records in a row from another module id than the header's that make it the module.
FOREIGN_RUN: Final = 3

# --- framing -------------------------------------------------------------------------------------

# The port runs 7E1; on an 8-bit path (a pseudo-terminal, a misconfigured port) the parity bit
# shows up as the high bit. Masking keeps the text.
_MASK_7BIT: Final = bytes(b & 0x7F for b in range(256))


@dataclass(slots=True)
class Decoder:
    """Turns a byte stream into headers, data records and rejected lines.

    Feed it arbitrary chunks. It accepts CR LF, LF and CR endings, masks bytes to 7 bits, drops
    blank lines, bounds line length, and checks that data records belong to the module that
    printed the last header (or to the module of the record before, should the header's id be
    garbled) and keep its register count (a truncated S0PCM-5 line that happens
    to parse as an S0PCM-2 must not pass). Call :meth:`reset` after every (re)connect: the first
    line on a freshly opened port is usually partial, and is then rejected with its own reason.
    """

    max_line: int = MAX_LINE
    #: The model the module is known to be (from configuration); fewer registers are rejected.
    model: Model | None = None
    #: Id of the last header seen; data records with another id are rejected.
    module_id: str | None = None
    #: The port marks bytes with a parity error (PARMRK: ``\\377 \\0 byte``); a line with
    #: such a byte is rejected.
    parity_marks: bool = False
    _buf: bytes = b""
    _mark_carry: bytes = b""
    _discarding: bool = False
    _first: bool = True
    _registers: int = field(default=0)
    #: The module `_registers` was learned from; another module's records start afresh.
    _registers_id: str | None = None
    #: Id of the last data record accepted: a header whose id was garbled must not make the
    #: module's own records look foreign until the next start-up.
    _record_id: str | None = None
    #: Records in a row of a module other than the header's: (its id, how many). A garbled id
    #: is a one-off; :data:`FOREIGN_RUN` whole records in a row from one other id are another
    #: module whose start-up header was lost (swapped in while the port was closed).
    _foreign: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if self.model is not None:
            self._registers = self.model.value

    def reset(self) -> None:
        """Forget any partial line; the next line may be cut at its start."""
        self._buf = self._mark_carry = b""
        self._discarding = False
        self._first = True

    def feed(self, data: bytes) -> list[Header | Telegram | Rejected]:
        """Take a chunk of bytes, return the complete lines' records in order."""
        if self.parity_marks:
            data = self._unmark(data)
        pieces = data.translate(_MASK_7BIT).replace(b"\r", b"\n").split(b"\n")
        out: list[Header | Telegram | Rejected] = []
        if self._discarding:
            if len(pieces) == 1:
                return out
            pieces[0] = b""  # the tail of the overlong line
            self._discarding = False
        else:
            pieces[0] = self._buf + pieces[0]
        tail = pieces.pop()
        for piece in pieces:
            if piece:
                record = self._line(piece)
                out.append(record)
                if isinstance(record, Rejected):
                    header = self._trailing_header(record)
                    if header is not None:
                        out[-1] = header[0]
                        out.append(header[1])
        if len(tail) > self.max_line:
            out.append(self._too_long(tail))
            self._buf = b""
            self._discarding = True
        else:
            self._buf = tail
        return out

    def _unmark(self, data: bytes) -> bytes:
        """Turn each parity mark into a NUL (which rejects its line) and ``\\377 \\377`` into
        the byte it stands for; a mark split across chunks waits for the rest."""
        data, self._mark_carry = self._mark_carry + data, b""
        if b"\xff" not in data:
            return data
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            j = data.find(b"\xff", i)
            if j < 0:
                out += data[i:]
                break
            out += data[i:j]
            if j + 1 >= n or (data[j + 1] == 0 and j + 2 >= n):
                self._mark_carry = data[j:]
                break
            if data[j + 1] == 0xFF:
                out.append(0xFF)
                i = j + 2
            elif data[j + 1] == 0:
                out.append(0)  # the byte that failed its parity check
                i = j + 3
            else:
                out.append(0xFF)
                i = j + 1
        return bytes(out)

    def _trailing_header(self, rejected: Rejected) -> tuple[Rejected, Header] | None:
        """A rejected line that ends in a whole header: the line stays rejected (what came
        before the header is not trusted), the header is taken."""
        m = _TRAILING_HEADER_RE.search(rejected.raw, 1)
        if m is None:
            return None
        record = self.feed_line(m.group())
        if not isinstance(record, Header):
            return None
        before = rejected.raw[: m.start()]
        return Rejected(
            raw=before, reason="line merged with a start-up header (line ending lost?)"
        ), record

    def _too_long(self, piece: bytes) -> Rejected:
        self._first = False
        return Rejected(
            raw=piece[: self.max_line].decode("ascii") + "...",
            reason=f"line longer than {self.max_line} bytes",
        )

    def _line(self, piece: bytes) -> Header | Telegram | Rejected:
        if len(piece) > self.max_line:
            return self._too_long(piece)
        if self.parity_marks and b"\0" in piece:
            self._first = False
            text = piece.replace(b"\0", b"?").decode("ascii")
            return Rejected(raw=text, reason="parity error (the port marked a byte; shown as ?)")
        return self.feed_line(piece.decode("ascii"))

    def feed_line(self, line: str) -> Header | Telegram | Rejected:
        """Check one complete line (no line ending) in the context of the stream."""
        first, self._first = self._first, False
        try:
            record = parse_line(line)
        except ProtocolError as e:
            if first:
                return Rejected(raw=line, reason=f"partial line after connect ({e.reason})")
            return Rejected(raw=line, reason=e.reason)
        if isinstance(record, Header):
            self._learn_module(record.module_id)
            self.module_id = record.module_id
            self._foreign = None
            return record
        header_id = self.module_id
        if header_id not in (None, record.module_id) and record.module_id != self._record_id:
            seen = self._foreign
            run = seen[1] + 1 if seen is not None and seen[0] == record.module_id else 1
            self._foreign = (record.module_id, run)
            if run < FOREIGN_RUN:
                return Rejected(
                    raw=line,
                    reason=f"module id {record.module_id} differs from the header's {header_id}",
                )
            self.module_id = record.module_id  # another module now: its header was lost
        self._foreign = None
        self._learn_module(record.module_id)
        count = len(record.registers)
        if count < self._registers:
            return Rejected(
                raw=line,
                reason=f"{count} registers where this module has {self._registers} "
                "(truncated line?)",
            )
        self._registers = count
        self._record_id = record.module_id
        return record

    def _learn_module(self, module_id: str) -> None:
        """Forget the register count learned from another module (the module was swapped)."""
        if module_id != self._registers_id:
            self._registers = self.model.value if self.model is not None else 0
            self._registers_id = module_id
