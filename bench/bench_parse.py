"""Parse throughput: our framer + parser against a bare ``str.split`` baseline.

Builds realistic S0PCM-5 output (CR LF line endings, counters that grow the way meters do,
deterministic), then times in the same run, side by side (3 rounds of every case in turn; the
best time of each case counts):

* baseline: ``for line in text.splitlines(): line.split(":")`` on the decoded text;
* ``Decoder().feed()`` over the raw bytes in 4 KiB chunks (7-bit masking, framing, parsing and the
  stream checks: everything a reader does per line);
* ``parse_telegram`` alone on pre-split lines, and ``line.split(":")`` alone on the same lines.

Ratios (our time / baseline time) are what to compare across machines.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s0pcm.protocol import Decoder, Rejected, Telegram, parse_telegram

FULL_LINES = 1_000_000
QUICK_LINES = 100_000
CHUNK = 4096
REPEAT = 3
SEED = 8237


def build_lines(count: int, seed: int = SEED) -> list[str]:
    """``count`` S0PCM-5 data records of one module, as it would print them every 10 s."""
    rnd = random.Random(seed)
    module_id = "21434"
    # Five meters of different kinds: pulses per 10 s interval (upper bound), starting total.
    rates = (40, 3, 12, 0, 200)
    totals = [rnd.randrange(0, 10**6) for _ in rates]
    lines = []
    for _ in range(count):
        fields = [f"ID:{module_id}:I:10"]
        for n, rate in enumerate(rates):
            pulses = rnd.randint(0, rate) if rnd.random() < 0.7 else 0
            totals[n] += pulses
            fields.append(f"M{n + 1}:{pulses}:{totals[n]}")
        lines.append(":".join(fields))
    return lines


@dataclass(frozen=True)
class Result:
    name: str
    seconds: float
    lines: int

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def time_once(func: Callable[[], int]) -> tuple[float, int]:
    """Wall time of one run (garbage collection off while timing, as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        begin = time.perf_counter()
        count = func()
        return time.perf_counter() - begin, count
    finally:
        gc.enable()


def best_of(repeat: int, cases: Sequence[tuple[str, Callable[[], int]]]) -> list[Result]:
    """Best time of each case over ``repeat`` rounds; each round runs every case in turn, so
    a burst of load elsewhere on the machine hits all cases alike."""
    best = {name: float("inf") for name, _ in cases}
    counts = dict.fromkeys(best, 0)
    for _ in range(repeat):
        for name, func in cases:
            seconds, counts[name] = time_once(func)
            best[name] = min(best[name], seconds)
    return [Result(name, best[name], counts[name]) for name, _ in cases]


def run_baseline(text: str) -> int:
    n = 0
    for line in text.splitlines():
        line.split(":")
        n += 1
    return n


def run_decoder(data: bytes) -> int:
    decoder = Decoder()
    n = 0
    for start in range(0, len(data), CHUNK):
        n += len(decoder.feed(data[start : start + CHUNK]))
    return n


def run_parse_telegram(lines: Sequence[str]) -> int:
    n = 0
    for line in lines:
        parse_telegram(line)
        n += 1
    return n


def run_split(lines: Sequence[str]) -> int:
    n = 0
    for line in lines:
        line.split(":")
        n += 1
    return n


def check(lines: Sequence[str], data: bytes) -> None:
    """The timed paths really parse everything (checked once, outside the timing)."""
    decoder = Decoder()
    records = []
    for start in range(0, len(data), CHUNK):
        records.extend(decoder.feed(data[start : start + CHUNK]))
    bad = [r for r in records if isinstance(r, Rejected)]
    if bad or len(records) != len(lines):
        raise SystemExit(f"decoder check failed: {len(records)} records, first bad: {bad[:1]}")
    for i in (0, len(lines) // 2, len(lines) - 1):
        record = records[i]
        if not (isinstance(record, Telegram) and record == parse_telegram(lines[i])):
            raise SystemExit(f"decoder check failed at line {i}")
        if record.to_line() != lines[i]:
            raise SystemExit(f"round trip failed at line {i}")


def quick_from_env() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_parse", description="parse speed")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LINES:,} lines")
    parser.add_argument("--lines", type=int, default=None, help="number of lines")
    args = parser.parse_args(argv if argv is not None else [])
    count = args.lines or (QUICK_LINES if args.quick or quick_from_env() else FULL_LINES)

    lines = build_lines(count)
    text = "\r\n".join(lines) + "\r\n"
    data = text.encode("ascii")
    check(lines, data)
    # Pre-split as a reader would have them: fresh strings, allocated in order.
    presplit = text.splitlines()
    del lines

    results = best_of(
        REPEAT,
        [
            ("baseline: splitlines + split(':')", lambda: run_baseline(text)),
            ("Decoder.feed, 4 KiB chunks", lambda: run_decoder(data)),
            ("parse_telegram, pre-split lines", lambda: run_parse_telegram(presplit)),
            ("split(':') alone, pre-split lines", lambda: run_split(presplit)),
        ],
    )
    baseline = results[0]
    for r in results:
        if r.lines != count:
            raise SystemExit(f"{r.name}: {r.lines} lines, expected {count}")

    print(
        f"{count:,} S0PCM-5 lines, {len(data) / 1e6:.1f} MB, CR LF; best of {REPEAT}; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    width = max(len(r.name) for r in results)
    print(f"{'case':<{width}}  {'seconds':>8}  {'lines/s':>12}  {'ratio':>6}")
    for r in results:
        ratio = r.seconds / baseline.seconds
        print(f"{r.name:<{width}}  {r.seconds:8.3f}  {r.rate:12,.0f}  {ratio:6.2f}")
    parse_alone, split_alone = results[2], results[3]
    print(
        f"ratio = time / baseline time. parse_telegram vs split(':') on the same pre-split lines: "
        f"{parse_alone.seconds / split_alone.seconds:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
