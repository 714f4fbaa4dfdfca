"""Replay throughput: a year of one S0PCM-5 through the whole logger, against read + split.

Builds a capture of one S0PCM-5 printing every 10 s for a year (3,153,600 timestamped lines;
household-like rates; deterministic), then times in the same run:

* baseline: read the file and ``line.split(":")`` every line;
* replay: ``s0pcm.link.capture.read_capture`` (framing, strict parsing) → ``ModuleRunner.apply``
  (ledger, rates, events) → the SQLite store, committed every 30 simulated minutes, into a fresh
  database: everything ``s0pcm import-capture`` does.

Ratio = replay time / baseline time. ``--quick`` (or BENCH_QUICK=1) replays one month.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from s0pcm.config import parse_config
from s0pcm.link.capture import read_capture
from s0pcm.logger.daemon import Daemon

YEAR_LINES = 365 * 8640
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
RATES = (0.05, 0.004, 0.02, 0.01, 0.3)  # pulses per second, mean, per register


def build_capture(path: Path, lines: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    totals = [0] * 5
    with path.open("w") as f:
        f.write(f"{START:.3f} /8237:S0 Pulse Counter V0.6 - 30/30/30/30/30ms\n")
        for n in range(1, lines + 1):
            regs = []
            for i, rate in enumerate(RATES):
                c = int(rnd.expovariate(1 / (rate * 10))) if rnd.random() < 0.8 else 0
                totals[i] += c
                regs.append(f"M{i + 1}:{c}:{totals[i]}")
            f.write(f"{START + n * 10:.3f} ID:8237:I:10:{':'.join(regs)}\n")


def baseline(path: Path) -> float:
    begin = time.perf_counter()
    with path.open() as f:
        for line in f:
            line.split(":")
    return time.perf_counter() - begin


def replay(path: Path, workdir: Path) -> tuple[float, int]:
    meters = "\n".join(
        f'[modules.kast.meters.{n}]\nkind = "other"\npulses_per_unit = 1\n' for n in range(1, 6)
    )
    config = parse_config(
        f'[logger]\ndatabase = "{workdir / "replay.sqlite"}"\ntimezone = "Europe/Amsterdam"\n'
        f'commit_interval = 300\n[modules.kast]\nport = "/dev/null"\nmodel = 5\n{meters}',
        path=str(workdir / "s0pcm.toml"),
    )
    daemon = Daemon(config)
    runner = daemon.runner("kast")
    begin = time.perf_counter()
    next_commit = START + 1800
    records = 0
    for _, at, record in read_capture(path):
        runner.apply(at, record)
        records += 1
        if at >= next_commit:
            daemon.commit()
            next_commit = at + 1800
    daemon.commit()
    seconds = time.perf_counter() - begin
    daemon.store.close()
    return seconds, records


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_replay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one month instead of a year")
    args = parser.parse_args([] if argv is None else argv)
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    lines = YEAR_LINES // 12 if quick else YEAR_LINES
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        capture = work / "capture.txt"
        build_capture(capture, lines)
        size = capture.stat().st_size
        base = min(baseline(capture) for _ in range(3))
        took, records = replay(capture, work)
        db = (work / "replay.sqlite").stat().st_size
    print(f"{lines:,} S0PCM-5 records ({size / 1e6:.0f} MB capture); Python, 2 CPUs")
    print(f"baseline: read + split(':')   {base:8.2f} s  {lines / base:12,.0f} lines/s  1.00")
    print(
        f"replay into SQLite            {took:8.2f} s  {records / took:12,.0f} lines/s  "
        f"{took / base:.2f}"
    )
    print(
        f"database after replay: {db / 1e6:.1f} MB ({db / (lines * 5):.3f} bytes/register-interval)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
