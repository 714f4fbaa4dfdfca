"""Soak: a sped-up logger life with at least 10,000 injected faults, counted against the truth.

Real processes as in the field: the emulator on a pseudo-terminal (records every 50 ms instead of
10 s, six in ten damaged: garbage, cut and merged lines, parity noise, characters dropped,
doubled or changed, spikes, port drops), and ``s0pcm run`` on a database and journal on
a small tmpfs, under Debian's libfaketime. Meanwhile, at random every one to three seconds, one
of: the module restarts or is unplugged, the module stalls for three of the intervals its records
state, the logger is killed with SIGKILL and started again, the machine "reboots" with a stale
wall clock (a month or two days back, or 1970) that NTP steps right seconds later, the clock
steps back by seconds or minutes and is stepped right again, or the disk fills up and is freed
seconds later.

At the end the module's day ends as a real one does (clean records, the clock right, room on
the disk) and the logger stops. Every register's count must lie between what whole lines
vouch for and the truth, and equal the truth wherever the two agree (a life that ends on a
damaged record leaves that record's interval unknowable, and one whose last record followed a
break and has a digit changed leaves nothing to tell it from an intact one, so the ledger counts
it as it reads, with an event: see tests/test_corruption.py); no
pulse may be stamped outside the run (give or take the ten minutes of the largest back-step).
Printed: faults by kind, counted against the truth, the log's size, the logger's peak RSS.

``python -m bench soak`` runs until 10,000 faults (about 15 minutes); ``--quick`` until 800.
Needs root (the tmpfs) and libfaketime; without them it says so and runs without that part.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.helpers.disk import fill  # to the last byte, as the disk tests do

from s0pcm.config import load_config
from s0pcm.events import EventKind
from s0pcm.store import open_store

S0PCM: Final = [sys.executable, "-m", "s0pcm"]
LIBFAKETIME: Final = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
FULL_FAULTS: Final = 10_000
QUICK_FAULTS: Final = 800
SEED: Final = 20261201
INTERVAL: Final = 0.05
DAY: Final = 86400.0
#: Where a rebooted Pi's clock starts before NTP steps it right: its image's day, a month back,
#: the last shutdown two days ago, 1970 (as an offset from the true time: None).
STALE: Final = (-30 * DAY, -2 * DAY, -334 * DAY, None)
#: Steps back that NTP makes on a clock that ran ahead (then it is right again).
BACK: Final = (-5.0, -20.0, -600.0)
ACTIONS: Final = ("module", "kill", "clock", "disk", "stall")
WEIGHTS: Final = (4, 3, 2, 2, 2)
RATES: Final = ((1, 3.0), (2, 0.4), (3, 7.0), (4, 1.5), (5, 12.0))


def lines_read(truth: Path) -> int:
    try:
        return int(json.loads(truth.read_text() or "{}").get("lines", 0))
    except (OSError, ValueError):
        return 0


def wait_for_lines(truth: Path, lines: int, *, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while lines_read(truth) < lines:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def tmpfs(directory: Path, size_mb: int) -> Iterator[bool]:
    """A tmpfs of ``size_mb`` on ``directory`` (True), or a plain directory without root."""
    directory.mkdir()
    if os.geteuid() != 0:
        yield False
        return
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)], check=True
    )
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


class Soak:
    def __init__(self, root: Path, *, faked: bool) -> None:
        self.root = root
        self.data = root / "data"
        self.truth = root / "truth.json"
        self.control = root / "control"
        self.offset = root / "offset"
        self.log = root / "logger.log"
        self.faked = faked
        self.logger: subprocess.Popen[bytes] | None = None
        #: With S0PCM_SOAK_KEEP, the loggers log every record (-vv) to trace a count back.
        self.trace = ["-vv"] if os.environ.get("S0PCM_SOAK_KEEP") else []
        self.offset.write_text("+0\n")
        self.config = root / "s0pcm.toml"
        meters = "".join(
            f'[modules.kast.meters.{n}]\nname = "M{n}"\nkind = "other"\npulses_per_unit = 1\n'
            for n, _ in RATES
        )
        self.config.write_text(
            f'[logger]\ndatabase = "{self.data / "s0pcm.sqlite"}"\n'
            f'journal = "{self.data / "s0pcm.journal"}"\n'
            'timezone = "Europe/Amsterdam"\ncommit_interval = 1\n\n'
            f'[modules.kast]\nport = "{root / "s0"}"\nmodel = 5\nframing = "8N1"\n{meters}',
            encoding="utf-8",
        )

    def start_logger(self) -> None:
        env = dict(os.environ)
        if self.faked:
            env.update(
                LD_PRELOAD=str(LIBFAKETIME),
                FAKETIME_TIMESTAMP_FILE=str(self.offset),
                FAKETIME_NO_CACHE="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        with self.log.open("ab") as out:
            self.logger = subprocess.Popen(
                [*S0PCM, "run", "--config", str(self.config), "--no-web", *self.trace],
                env=env, stdout=out, stderr=out,
            )  # fmt: skip

    def kill_logger(self) -> None:
        assert self.logger is not None
        self.logger.send_signal(signal.SIGKILL)
        self.logger.wait()

    def command(self, text: str) -> None:
        self.control.write_text(text + "\n")

    def peak_rss_kb(self) -> int:
        assert self.logger is not None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.logger.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0


def stored(config: Path, start: float = -math.inf, end: float = math.inf) -> list[int]:
    """Pulses per meter stored between ``start`` and ``end``."""
    cfg = load_config(config)
    with open_store(cfg.logger.database, tz=cfg.logger.timezone, readonly=True) as store:
        return [store.pulses(m.key, start, end) for m in cfg.meters]


#: Actions the emulator counts among its own faults (restart, unplug, stall): counted once.
COUNTED_BY_MODULE: Final = frozenset({"module restarts and unplugs", "module stalls (3 intervals)"})


def own(actions: Counter[str]) -> int:
    """The soak's actions that are not also module faults."""
    return sum(n for name, n in actions.items() if name not in COUNTED_BY_MODULE)


def unverified(config: Path) -> list[str]:
    """The details of the ledger's events about records it could not confirm."""
    cfg = load_config(config)
    with open_store(cfg.logger.database, tz=cfg.logger.timezone, readonly=True) as store:
        return [e.detail for e in store.events(kinds=[EventKind.UNCONFIRMED], limit=100_000)]


def lives_seen(config: Path) -> int:
    """Module lives the logger saw begin: start-up headers, and restarts seen from totals."""
    cfg = load_config(config)
    kinds = [EventKind.STARTUP, EventKind.RESTART]
    with open_store(cfg.logger.database, tz=cfg.logger.timezone, readonly=True) as store:
        return len(store.events(kinds=kinds, limit=100_000)) - 1  # the first: the run's start


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    goal = int(os.environ.get("S0PCM_SOAK_FAULTS", QUICK_FAULTS if quick else FULL_FAULTS))
    rnd = random.Random(SEED)
    faked = LIBFAKETIME.exists()
    if not faked:
        print("libfaketime missing (apt-get install libfaketime): no clock steps")
    with tempfile.TemporaryDirectory(prefix="s0pcm-soak-") as tmp:
        root = Path(tmp)
        with tmpfs(root / "data", 24) as mounted:
            if not mounted:
                print("not root: no tmpfs, no full disk")
            try:
                run(root, rnd, goal=goal, faked=faked, disk=mounted)
            finally:
                if keep := os.environ.get("S0PCM_SOAK_KEEP"):
                    # What a failed soak is traced back with: the logger's log and database,
                    # the emulator's truth and transcript, the soak's own actions.
                    shutil.copytree(root, keep, symlinks=True, dirs_exist_ok=True)
                    print(f"kept in {keep}")


def run(root: Path, rnd: random.Random, *, goal: int, faked: bool, disk: bool) -> None:
    soak = Soak(root, faked=faked)
    # S0PCM_SOAK_ONLY=kill,disk: only those actions (to find which one a loss comes with).
    only = os.environ.get("S0PCM_SOAK_ONLY")
    fault_rate = float(os.environ.get("S0PCM_SOAK_RATE", "0.6"))
    weights = [
        w if not only or a in only.split(",") else 0 for a, w in zip(ACTIONS, WEIGHTS, strict=True)
    ]
    actions: Counter[str] = Counter()
    keep = bool(os.environ.get("S0PCM_SOAK_KEEP"))

    def did(action: str, detail: str = "") -> None:
        actions[action] += 1
        with (root / "actions.log").open("a") as out:
            out.write(f"{time.time():.3f} {action} {detail}\n")

    started = time.time()
    began = time.monotonic()
    rates = [f"--rate={n}={r}" for n, r in RATES]
    # Stalls come as actions: they last whole stated intervals (see Fault.STALL), seconds here.
    faults = "--faults=garbage,truncate,merge,noise,spike,drop,corrupt"
    emulator = subprocess.Popen(
        [*S0PCM, "emulate", "--link", str(root / "s0"), "--truth", str(soak.truth),
         "--control", str(soak.control), "--interval", str(INTERVAL), "--seed", "11",
         *(["--transcript", str(root / "transcript.jsonl")] if keep else []),
         faults, *rates],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    peak = 0
    try:
        deadline = time.monotonic() + 10
        while not soak.control.exists():
            assert time.monotonic() < deadline, "the emulator never started"
            time.sleep(0.02)
        soak.start_logger()  # it sees the module start
        assert wait_for_lines(soak.truth, 20), "the logger never read"
        soak.command(f"rate {fault_rate}")
        filler: Path | None = None

        def module_faults() -> int:
            doc = json.loads(soak.truth.read_text() or "{}")
            return int(sum(doc.get("faults", {}).values()))

        while (done := module_faults() + own(actions)) < goal:
            time.sleep(rnd.uniform(1.0, 3.0))
            choice = rnd.choices(ACTIONS, weights=weights)[0] if any(weights) else "none"
            if choice == "module":
                # A new life is seen before its totals pass the old one's: in the field a life
                # lasts days, here seconds, so the first second of it comes without faults. (A
                # restart whose header and first records are all lost, with the new totals past
                # the old, looks like no restart: the ledger's documented limit.)
                soak.command("rate 0")
                # ... and only once the logger reads (the port is back from any drop): a header
                # sent while it starts or reconnects is lost, and with it the life's beginning.
                wait_for_lines(soak.truth, lines_read(soak.truth) + 3, seconds=15)
                which = rnd.choice(["restart", "unplug"])
                soak.command(which)
                did("module restarts and unplugs", which)
                seen = lines_read(soak.truth)
                wait_for_lines(soak.truth, seen + 20, seconds=15)
                soak.command(f"rate {fault_rate}")
            elif choice == "kill":
                peak = max(peak, soak.peak_rss_kb())
                soak.kill_logger()
                did("logger SIGKILLs")
                seen = lines_read(soak.truth)
                soak.start_logger()
                # The next restart only once this logger reads (see the gauntlet's note).
                wait_for_lines(soak.truth, seen + 3)
            elif choice == "clock" and faked and rnd.random() < 0.5:
                # A reboot on a stale clock, NTP a few seconds later.
                peak = max(peak, soak.peak_rss_kb())
                soak.kill_logger()
                stale = rnd.choice(STALE)
                offset = -(time.time() - 86400.0) if stale is None else stale
                soak.offset.write_text(f"{offset:+.0f}\n")
                did("reboots on a stale clock, then NTP", f"{offset:+.0f}")
                seen = lines_read(soak.truth)
                soak.start_logger()
                wait_for_lines(soak.truth, seen + 3)
                time.sleep(rnd.uniform(1.0, 4.0))
                soak.offset.write_text("+0\n")
            elif choice == "clock" and faked:
                # The clock ran ahead; NTP steps it back, and later right again.
                step = rnd.choice(BACK)
                soak.offset.write_text(f"{step:+.0f}\n")
                did("clock steps back and forth", f"{step:+.0f}")
                time.sleep(rnd.uniform(1.0, 3.0))
                soak.offset.write_text("+0\n")
            elif choice == "stall":
                soak.command("stall")
                did("module stalls (3 intervals)")
            elif choice == "disk" and disk and filler is None:
                filler = fill(soak.data)
                did("disk full")
                time.sleep(rnd.uniform(1.0, 4.0))
                filler.unlink()
                filler = None
            if soak.logger is not None and soak.logger.poll() is not None:
                did("logger exits (restarted)")
                soak.start_logger()
            if time.monotonic() - began > 60 and int(time.monotonic() - began) % 60 < 3:
                print(f"  {done:,} faults so far", flush=True)
        # The day ends: the clock right, clean records that vouch for any held, room on disk.
        soak.offset.write_text("+0\n")
        soak.command("rate 0")
        seen = lines_read(soak.truth)
        assert wait_for_lines(soak.truth, seen + 40), "the last logger never read"
        time.sleep(1.0)
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)
    peak = max(peak, soak.peak_rss_kb())
    assert soak.logger is not None
    soak.logger.send_signal(signal.SIGTERM)
    status = soak.logger.wait(timeout=30)
    ended = time.time()
    doc = json.loads(soak.truth.read_text())
    counted = stored(soak.config)
    inside = sum(stored(soak.config, started - 900, ended + 900))
    reported = [r["reported"] for r in doc["registers"]]
    vouched = [r["vouched"] for r in doc["registers"]]
    possible = [r["possible"] for r in doc["registers"]]
    unchecked = sum(1 for e in unverified(soak.config) if "counted as it reads" in e)
    begun = lives_seen(soak.config)
    module = Counter(doc["faults"])
    total = sum(module.values()) + own(actions)
    log_size = soak.log.stat().st_size
    print(f"seconds          {time.monotonic() - began:>10.0f}")
    print(f"faults           {total:>10,}")
    rows = module + Counter({k: v for k, v in actions.items() if k not in COUNTED_BY_MODULE})
    for name, n in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<36} {n:>8,}")
    print(f"records          {doc['lines']:>10,} read by the loggers")
    print(f"truth            {reported}")
    print(f"vouched          {vouched}")
    print(f"possible         {possible}")
    print(f"counted          {counted}")
    exact = sum(c == r for c, r in zip(counted, reported, strict=True))
    in_band = all(v <= c <= p for v, c, p in zip(vouched, counted, possible, strict=True))
    print(f"exact registers  {exact} of {len(reported)}; all within [vouched, possible]: {in_band}")
    print(f"unverifiable     {unchecked} life-ending records after a break, counted as they read")
    # A restart whose header and first records were all lost, once the new totals passed the
    # old (a logger slow to start on a loaded machine, a port slow to come back), looks like no
    # restart: the ledger's documented limit. Here every new life should be seen.
    print(
        f"lives seen       {begun} of {doc['restarts']} start-ups (by a header or totals gone back)"
    )
    print(f"off the run      {sum(counted) - inside} pulses stamped outside its hours")
    print(f"log              {log_size:,} bytes ({log_size / max(1, total):.0f} per fault)")
    print(f"logger peak RSS  {peak / 1024:.1f} MiB; last exit status {status}")
    bands = zip(vouched, counted, reported, possible, strict=True)
    wrong = [(v, c, r) for v, c, r, p in bands if v == r == p != c]
    if not in_band or wrong or sum(counted) != inside or status != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
