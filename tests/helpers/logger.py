"""The logger and the emulator as processes, as users run them (``s0pcm run``, ``s0pcm
emulate``); the logger's configuration; what its store holds at the end."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from s0pcm.config import load_config
from s0pcm.store import open_store

__all__ = ["S0PCM", "emulator_process", "logger", "stored", "wait_for_lines", "write_config"]

#: The command line, in this interpreter.
S0PCM: Final = [sys.executable, "-m", "s0pcm"]


def write_config(
    tmp_path: Path,
    *,
    model: int = 5,
    commit_interval: float = 0.5,
    journal: bool = True,
    listen: str = "127.0.0.1:8080",
) -> Path:
    meters = "\n".join(
        f"""
[modules.kast.meters.{n}]
name = "Meter {n}"
kind = "{kind}"
pulses_per_unit = {ppu}
"""
        for n, (kind, ppu) in enumerate(
            [("electricity", 1000), ("gas", 100), ("water", 1), ("heat", 1000), ("other", 1)][
                :model
            ],
            start=1,
        )
    )
    path = tmp_path / "s0pcm.toml"
    path.write_text(
        f"""
[logger]
database = "{tmp_path / "s0pcm.sqlite"}"
timezone = "Europe/Amsterdam"
commit_interval = {commit_interval}

[web]
listen = "{listen}"

[modules.kast]
port = "{tmp_path / "s0"}"
model = {model}
# The emulator's pseudo-terminal carries 8N1; saying so spares each logger a second open.
framing = "8N1"
{meters}
"""
    )
    return path


def stored(config: Path) -> list[int]:
    cfg = load_config(config)
    store = open_store(cfg.logger.database, tz=cfg.logger.timezone)
    try:
        return [store.pulses(m.key, -math.inf, math.inf) for m in cfg.meters]
    finally:
        store.close()


@contextmanager
def emulator_process(tmp_path: Path, *args: str) -> Iterator[Path]:
    truth = tmp_path / "truth.json"
    control = tmp_path / "control"
    proc = subprocess.Popen(
        [*S0PCM, "emulate", "--link", str(tmp_path / "s0"), "--truth", str(truth),
         "--control", str(control), *args],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not control.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield truth
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def wait_for_lines(truth: Path, lines: int) -> None:
    """Until a reader has taken ``lines`` lines from the emulator."""
    deadline = time.monotonic() + 20
    while not truth.exists() or json.loads(truth.read_text() or "{}").get("lines", 0) < lines:
        assert time.monotonic() < deadline, "the logger never read the emulator"
        time.sleep(0.05)


def logger(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*S0PCM, "run", "--config", str(config), "--no-web"], stderr=subprocess.DEVNULL
    )
