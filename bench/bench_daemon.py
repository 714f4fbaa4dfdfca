"""The running logger: memory and disk writes, for a Pi on an SD card.

Runs ``s0pcm run`` against the emulator with time sped up 100 times: the module prints every 0.1 s
instead of 10 s, and the logger commits every 3 s instead of 300 s, so 36 s is one hour of a real
module. Measured in the same run, side by side:

* RSS (VmHWM, peak) of the logger, against a bare ``python -c`` process (the interpreter alone);
* bytes the logger caused to be written to storage (``/proc/PID/io`` write_bytes) per simulated
  hour, against the same logger committing after every record (what a naive logger does).

``--quick`` (or BENCH_QUICK=1) simulates 15 minutes instead of an hour.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SPEED = 100.0
S0PCM = [sys.executable, "-m", "s0pcm"]


def _proc(pid: int, name: str) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def _config(work: Path, commit_interval: float) -> Path:
    meters = "\n".join(
        f'[modules.kast.meters.{n}]\nkind = "other"\npulses_per_unit = 1\n' for n in range(1, 6)
    )
    path = work / "s0pcm.toml"
    path.write_text(
        f'[logger]\ndatabase = "{work / "s0pcm.sqlite"}"\ntimezone = "Europe/Amsterdam"\n'
        f'commit_interval = {commit_interval}\n[modules.kast]\nport = "{work / "s0"}"\n'
        f"model = 5\n{meters}"
    )
    return path


def run_logger(seconds: float, commit_interval: float) -> tuple[int, int, int]:
    """(peak RSS kB, write_bytes, wchar) of a logger run for ``seconds``."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        config = _config(work, commit_interval)
        emulator = subprocess.Popen(
            [*S0PCM, "emulate", "--link", str(work / "s0"), "--interval", str(10 / SPEED),
             "--profile", "household"],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not (work / "s0").exists():
                time.sleep(0.02)
            logger = subprocess.Popen([*S0PCM, "run", "--config", str(config), "--no-web"])
            time.sleep(seconds)
            rss = _proc(logger.pid, "status")["VmHWM"]
            io = _proc(logger.pid, "io")
            logger.send_signal(signal.SIGTERM)
            logger.wait(timeout=30)
        finally:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(timeout=30)
    return rss, io["write_bytes"], io["wchar"]


def bare_python_rss() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(1.0)
    rss = _proc(proc.pid, "status")["VmHWM"]
    proc.wait()
    return rss


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_daemon", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="15 simulated minutes")
    args = parser.parse_args([] if argv is None else argv)
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    hours = 0.25 if quick else 1.0
    seconds = hours * 3600 / SPEED
    base_rss = bare_python_rss()
    rss, written, wchar = run_logger(seconds, 300 / SPEED)
    _, naive_written, _ = run_logger(seconds, 0.05)
    per_hour = written / hours
    print(f"one S0PCM-5 (household profile), {hours:g} h simulated at {SPEED:g}x; Python, 2 CPUs")
    print(f"peak RSS: logger {rss / 1024:.1f} MiB, bare python {base_rss / 1024:.1f} MiB, "
          f"ratio {rss / base_rss:.2f}")  # fmt: skip
    print(f"storage writes per hour: {per_hour / 1024:,.0f} KiB (write() calls: "
          f"{wchar / hours / 1024:,.0f} KiB)")  # fmt: skip
    print(f"commit per record instead: {naive_written / hours / 1024:,.0f} KiB per hour, "
          f"ratio {naive_written / max(written, 1):.1f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
