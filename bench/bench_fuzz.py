"""Mutation fuzz of the protocol and the ledger: millions of damaged lines, no crash, nothing
invalid accepted.

A module's output is generated the way the firmware prints it (S0PCM-5 and S0PCM-2, start-up
headers of old and new firmware, restarts, now and then another module swapped in); the field
captures in ``tests/samples/`` are spliced in too. Half the lines are damaged before they reach
the decoder: bytes flipped, dropped, doubled, replaced, swapped or inserted, lines cut, spliced
into each other, repeated, joined without their line ending, high bits set, bursts of random
bytes; the stream is cut into
chunks at random. Everything goes through ``Decoder.feed`` and every record it gives through a
``Ledger``, as a logger would.

Checked for every record, against a grammar written here from the manual (not the parser's
own): an accepted data record is ``ID:<id>:I:<seconds>:M1:<c>:<d>...`` with 2 or 5 registers,
numbers of at most 10 digits, an interval above 0, the id of the module's last header (or
of the record before), never fewer registers than the module has, and it is one whole line of
what was fed (after 7-bit masking); an accepted header is ``/<id>:<text>`` and a whole line
too (or the whole tail of one). The ledger must never raise, never count a negative number of
pulses, and never hold more than its bound. Any violation or exception fails the run.

Printed: lines fed, damaged, accepted; violations (0) and crashes (0); the damaged lines that
still parsed (a changed digit is a valid record: the ledger has to judge it); counted against
the clean stream's truth; and the speed of the fuzz loop against decoding the clean stream,
side by side in one run.

``python -m bench fuzz`` runs 10 M lines on two processes; ``--quick`` 200 k.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from s0pcm.ledger import MAX_HELD, Count, Ledger
from s0pcm.protocol import Decoder, Header, Rejected, Telegram

FULL_LINES: Final = 10_000_000
QUICK_LINES: Final = 200_000
WORKERS: Final = 2
SEED: Final = 20261201
SAMPLES: Final = Path(__file__).resolve().parent.parent / "tests" / "samples"

# The reference grammar, from the manual (not from s0pcm.protocol).
# Numbers as printf prints them: no sign, no leading zero, at most 10 digits (32-bit counters).
_ID = r"(\d{1,10})"
_NUM = r"(0|[1-9]\d{0,9})"
REF_TELEGRAM: Final = re.compile(rf"ID:{_ID}:I:{_NUM}((?::M[1-5]:{_NUM}:{_NUM})+)", re.ASCII)
REF_REGISTER: Final = re.compile(rf":M([1-5]):{_NUM}:{_NUM}", re.ASCII)
REF_HEADER: Final = re.compile(r"/(\d{1,10}):(.*)", re.ASCII | re.DOTALL)


def reference_telegram(line: str) -> tuple[str, int, list[tuple[int, int]]] | None:
    """(id, interval, registers) when ``line`` is a data record by the manual, else None."""
    m = REF_TELEGRAM.fullmatch(line)
    if m is None:
        return None
    regs = REF_REGISTER.findall(m.group(3))
    labels = [int(label) for label, _, _ in regs]
    if labels not in ([1, 2], [1, 2, 3, 4, 5]) or int(m.group(2)) == 0:
        return None
    return m.group(1), int(m.group(2)), [(int(c), int(d)) for _, c, d in regs]


@dataclass
class Tally:
    lines: int = 0
    damaged: int = 0
    telegrams: int = 0
    headers: int = 0
    rejected: int = 0
    damaged_accepted: int = 0
    violations: int = 0
    crashes: int = 0
    counted: int = 0
    truth: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("lines", "damaged", "telegrams", "headers", "rejected",
                     "damaged_accepted", "violations", "crashes", "counted", "truth",
                     "seconds"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.examples += other.examples[: 5 - len(self.examples)]


class Module:
    """What a module prints: a header at each start-up, then a record every interval."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        #: Pulses counted by the module, all lives together: what a perfect reader counts.
        self.produced = 0
        self.models: dict[str, int] = {}
        self.swap()

    def swap(self) -> None:
        """Another module on the port (rare: an installer's swap). A module's id is its own,
        and so is its model: the same id never comes back with other registers."""
        rnd = self.rnd
        self.id = str(rnd.choice([8237, 21434, rnd.randrange(1, 10**6)]))
        self.registers = self.models.setdefault(self.id, rnd.choice([2, 5, 5]))
        self.rates = [rnd.choice([0, 0.3, 2, 8, 40]) for _ in range(self.registers)]
        self.restart()

    def restart(self) -> None:
        rnd = self.rnd
        if rnd.random() < 0.02:
            self.swap()
            return
        self.totals = [0] * self.registers
        self.header = rnd.choice(
            [
                f"/{self.id}:S0 Pulse Counter V0.6 - 30/30/30/30/30ms",
                f"/{self.id}: S0 Pulse Counter V0.6 - 30/30/30/30/30ms",
                f"/{self.id}:S0 Pulse Counter V0.4",
                f"/{self.id}: S0 Pulse Counter V0.3",
            ]
        )

    def lines(self) -> list[str]:
        """The next interval's output (a header first after a restart)."""
        rnd = self.rnd
        out = []
        if rnd.random() < 0.002:
            self.restart()
            out.append(self.header)
        counts = [int(rnd.random() * r * 2) if r else 0 for r in self.rates]
        self.produced += sum(counts)
        self.totals = [t + c for t, c in zip(self.totals, counts, strict=True)]
        regs = ":".join(
            f"M{n}:{c}:{t}"
            for n, (c, t) in enumerate(zip(counts, self.totals, strict=True), start=1)
        )
        out.append(f"ID:{self.id}:I:10:{regs}")
        return out


def _damage(rnd: random.Random, line: bytes, others: list[bytes]) -> bytes:
    """One to four random mutations of ``line``."""
    data = bytearray(line)
    for _ in range(rnd.choice((1, 1, 1, 2, 2, 3, 4))):
        n = len(data)
        op = rnd.randrange(12)
        i = rnd.randrange(n + 1) if n else 0
        if op == 0 and n:  # flip a bit
            data[min(i, n - 1)] ^= 1 << rnd.randrange(8)
        elif op == 1 and n:  # drop a byte
            del data[min(i, n - 1)]
        elif op == 2 and n:  # double a byte
            j = min(i, n - 1)
            data.insert(j, data[j])
        elif op == 3 and n:  # replace with a digit or a separator
            data[min(i, n - 1)] = rnd.choice(b"0123456789:IDM/ ")
        elif op == 4:  # insert any byte
            data.insert(i, rnd.randrange(256))
        elif op == 5 and n > 1:  # swap neighbours
            j = min(i, n - 2)
            data[j], data[j + 1] = data[j + 1], data[j]
        elif op == 6:  # cut short
            del data[i:]
        elif op == 7:  # cut at the start
            del data[:i]
        elif op == 8 and others:  # spliced into another line
            other = rnd.choice(others)
            data = data[:i] + other[rnd.randrange(len(other) + 1) :]
        elif op == 9 and n:  # a piece repeated
            j = rnd.randrange(n)
            data[j:j] = data[j : j + rnd.randrange(1, 12)]
        elif op == 10:  # a burst of noise
            data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 8)))
        elif op == 11 and n:  # high bits (a 7E1 stream read as 8N1): masked away
            for _ in range(rnd.randrange(1, 4)):
                j = rnd.randrange(n)
                data[j] |= 0x80
    return bytes(data)


def _pieces(chunk: bytes) -> set[str]:
    """The whole lines of ``chunk`` as the decoder sees them (7-bit, any line ending)."""
    text = bytes(b & 0x7F for b in chunk).decode("ascii").replace("\r", "\n")
    return {p for p in text.split("\n") if p}


def fuzz(seed: int, lines: int, trace: Callable[[Tally, Module], None] | None = None) -> Tally:
    """Fuzz ``lines`` lines from ``seed``: the tally of one worker."""
    rnd = random.Random(seed)
    tally = Tally()
    samples = [
        line.encode()
        for path in sorted(SAMPLES.glob("*.txt"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    module = Module(rnd)
    decoder = Decoder()
    ledger = Ledger("fuzz")
    at = 1_800_000_000.0
    last_header_id: str | None = None
    last_record_id: str | None = None
    registers_seen = 0
    #: Whole records in a row of a module other than the header's: (id, how many).
    run: tuple[str, int] | None = None
    recent: list[bytes] = list(samples)
    pending = b""
    began = time.perf_counter()

    def violation(why: str) -> None:
        tally.violations += 1
        if len(tally.examples) < 5:
            tally.examples.append(why)

    while tally.lines < lines:
        if trace is not None:
            trace(tally, module)
        batch = bytearray()
        clean: set[str] = set()
        for _ in range(rnd.randrange(1, 40)):
            outs = module.lines()
            for text in outs:
                line = text.encode()
                tally.lines += 1
                clean.add(text)
                if rnd.random() < 0.5:
                    line = _damage(rnd, line, recent)
                    tally.damaged += 1
                recent[rnd.randrange(len(recent))] = line
                batch += line
                batch += rnd.choice((b"\r\n",) * 8 + (b"\n", b"\r", b""))
        data = bytes(batch)
        whole = _pieces(pending + data)
        pending = (pending + data)[-300:]
        while data:
            cut = rnd.randrange(1, 4097)
            chunk, data = data[:cut], data[cut:]
            try:
                records = decoder.feed(chunk)
            except Exception as e:
                tally.crashes += 1
                violation(f"decoder raised {e!r} on {chunk[:80]!r}")
                decoder = Decoder()
                continue
            for record in records:
                at += rnd.choice((10.0, 10.0, 10.0, 9.7, 10.4, 20.0))
                if isinstance(record, Telegram):
                    tally.telegrams += 1
                    printed = record.to_line()
                    ref = reference_telegram(printed)
                    if ref is None:
                        violation(f"accepted a record the manual does not allow: {printed!r}")
                    elif printed not in whole:
                        violation(f"accepted a record that was not a whole line: {printed!r}")
                    else:
                        module_id, _, regs = ref
                        foreign = module_id not in (last_header_id, last_record_id)
                        if foreign and last_header_id is not None:
                            # Only after two whole records of that module refused just before
                            # (its header lost: the module was swapped).
                            if run != (module_id, 2):
                                violation(f"accepted a record of another module: {printed!r}")
                            last_header_id = module_id
                        if len(regs) < registers_seen and module_id == last_record_id:
                            violation(f"accepted a record with registers missing: {printed!r}")
                        if printed not in clean:
                            tally.damaged_accepted += 1
                    registers_seen = len(record.registers)
                    last_record_id = record.module_id
                    run = None
                elif isinstance(record, Header):
                    tally.headers += 1
                    text = record.to_line()
                    if REF_HEADER.fullmatch(text) is None or not any(
                        piece.endswith(text) for piece in whole
                    ):
                        violation(f"accepted a header that was not fed: {text!r}")
                    last_header_id = record.module_id
                    registers_seen = 0
                else:
                    assert isinstance(record, Rejected)
                    tally.rejected += 1
                    ref = reference_telegram(record.raw)
                    if ref is not None and ref[0] not in (last_header_id, last_record_id):
                        run = (ref[0], run[1] + 1 if run and run[0] == ref[0] else 1)
                try:
                    out = ledger.feed(at, record)
                except Exception as e:
                    tally.crashes += 1
                    violation(f"ledger raised {e!r} on {record!r}")
                    ledger = Ledger("fuzz")
                    continue
                for item in out:
                    if isinstance(item, Count):
                        if item.pulses < 0:
                            violation(f"ledger counted {item.pulses} pulses")
                        tally.counted += item.pulses
                if ledger.held > MAX_HELD:
                    violation(f"ledger holds {ledger.held} records")
    tally.seconds = time.perf_counter() - began
    tally.truth = module.produced
    return tally


def clean_decode_rate(lines: int) -> float:
    """Lines a second that ``Decoder.feed`` alone takes on the clean stream (the yardstick)."""
    rnd = random.Random(SEED)
    module = Module(rnd)
    text = "".join(line + "\r\n" for _ in range(lines) for line in module.lines()).encode()
    decoder = Decoder()
    began = time.perf_counter()
    for i in range(0, len(text), 4096):
        decoder.feed(text[i : i + 4096])
    return lines / (time.perf_counter() - began)


def _worker(args: tuple[int, int]) -> Tally:
    return fuzz(*args)


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    total = QUICK_LINES if quick else FULL_LINES
    per = total // WORKERS
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        tallies = pool.map(_worker, [(SEED + n, per) for n in range(WORKERS)])
    wall = time.perf_counter() - began
    result = Tally()
    for t in tallies:
        result.add(t)
    clean = clean_decode_rate(min(per, 200_000))
    fuzz_rate = result.lines / result.seconds
    print(f"python {sys.version.split()[0]}, {WORKERS} processes, seed {SEED}")
    print(f"lines fed        {result.lines:>12,}  ({result.damaged:,} damaged)")
    print(f"accepted         {result.telegrams:>12,} records, {result.headers:,} headers")
    print(f"rejected         {result.rejected:>12,}")
    print(f"damaged, valid   {result.damaged_accepted:>12,} records (for the ledger to judge)")
    share = result.counted / result.truth if result.truth else float("nan")
    print(f"counted          {result.counted:>12,} of {result.truth:,} pulses ({share:.4f})")
    print(f"violations       {result.violations:>12,}")
    print(f"crashes          {result.crashes:>12,}")
    print(f"fuzz loop        {fuzz_rate:>12,.0f} lines/s per process (mutation + decoder + ledger)")
    print(f"clean decode     {clean:>12,.0f} lines/s  (ratio fuzz/clean {fuzz_rate / clean:.2f})")
    print(f"wall             {wall:>12.1f} s")
    for example in result.examples:
        print(f"  e.g. {example}")
    if result.violations or result.crashes:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
