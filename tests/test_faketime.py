"""Clock steps on real processes, under Debian's libfaketime: the logger's wall clock boots wrong
or steps as NTP steps it (its monotonic clock is left alone, as on a real machine); the emulator
runs on the true clock. Counts equal the truth, no pulse lands on a wrong day, no false spike."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from s0pcm.calendar import SLOT
from s0pcm.config import load_config
from s0pcm.events import EventKind
from s0pcm.store import open_store
from tests.helpers.logger import (
    S0PCM,
    emulator_process,
    logger,
    stored,
    wait_for_lines,
    write_config,
)

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
pytestmark = pytest.mark.skipif(
    not LIBFAKETIME.exists(), reason="needs Debian's libfaketime (apt-get install libfaketime)"
)
DAY = 86400


def faked_logger(config: Path, offset_file: Path) -> subprocess.Popen[bytes]:
    """A logger whose wall clock is the true one plus the seconds in ``offset_file`` (read
    anew at every look, so writing the file steps the clock)."""
    env = dict(
        os.environ,
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(offset_file),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    return subprocess.Popen(
        [*S0PCM, "run", "--config", str(config), "--no-web"], env=env, stderr=subprocess.DEVNULL
    )


def step_to(offset_file: Path, seconds: float) -> None:
    offset_file.write_text(f"{seconds:+.0f}\n")


def events(config: Path) -> list[tuple[EventKind, str]]:
    cfg = load_config(config)
    with open_store(cfg.logger.database, tz=cfg.logger.timezone, readonly=True) as store:
        return [(e.kind, e.detail) for e in reversed(store.events(limit=100_000))]


def pulses_between(config: Path, start: float, end: float) -> int:
    cfg = load_config(config)
    with open_store(cfg.logger.database, tz=cfg.logger.timezone, readonly=True) as store:
        return sum(store.pulses(m.key, start, end) for m in cfg.meters)


def more_lines(truth: Path, n: int) -> None:
    wait_for_lines(truth, json.loads(truth.read_text())["lines"] + n)


@pytest.mark.parametrize("behind", [30 * DAY, None], ids=["30-days-back", "1970"])
def test_boot_with_a_wrong_clock_then_ntp(tmp_path: Path, behind: float | None) -> None:
    config = write_config(tmp_path, commit_interval=0.5)
    offset = tmp_path / "offset"
    start = time.time()
    with emulator_process(
        tmp_path, "--interval", "0.1", "--rate", "1=20", "--rate", "3=7"
    ) as truth:
        proc = logger(config)  # the history, on a right clock
        wait_for_lines(truth, 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        step_to(offset, -(behind if behind is not None else time.time() - 3600))
        proc = faked_logger(config, offset)  # the reboot
        more_lines(truth, 30)
        step_to(offset, 0)  # NTP
        more_lines(truth, 30)
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    reported = [r["reported"] for r in json.loads(truth.read_text())["registers"]]
    assert stored(config) == reported
    total = sum(reported)
    assert pulses_between(config, start - 10, time.time() + 10) == total  # none on a wrong day
    seen = events(config)
    kinds = [k for k, _ in seen]
    assert EventKind.SPIKE not in kinds
    assert EventKind.GAP not in kinds
    steps = [d for k, d in seen if k is EventKind.CLOCK]
    assert len(steps) == 1
    assert steps[0].startswith("clock stepped by +")


def test_steps_back_while_counting_and_a_restart_while_behind(tmp_path: Path) -> None:
    config = write_config(tmp_path, commit_interval=0.5)
    offset = tmp_path / "offset"
    step_to(offset, 0)
    start = time.time()
    with emulator_process(
        tmp_path, "--interval", "0.1", "--rate", "1=20", "--rate", "3=7"
    ) as truth:
        proc = faked_logger(config, offset)
        wait_for_lines(truth, 20)
        behind = 0.0
        for step in (20, 600, 2 * DAY):
            behind += step
            step_to(offset, -behind)
            more_lines(truth, 5)
            if step == 600:
                (tmp_path / "control").write_text("restart\n")  # the module, while behind
            more_lines(truth, 25)
        back_at = time.time() - behind
        more_lines(truth, 20)
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    doc = json.loads(truth.read_text())
    reported = [r["reported"] for r in doc["registers"]]
    assert doc["restarts"] == 1
    assert stored(config) == reported
    seen = events(config)
    kinds = [k for k, _ in seen]
    assert EventKind.SPIKE not in kinds
    assert EventKind.MISMATCH not in kinds
    assert sorted(d for k, d in seen if k is EventKind.CLOCK) == [
        "clock stepped by -10 min",
        "clock stepped by -2 d",
        "clock stepped by -20 s",
    ]
    # Each pulse is on the time the clock said when it came: two days back after the last step,
    # else the true time (less 20 s or 10 min after those steps); none anywhere else.
    # The store keeps 10 s slots stamped at their start: a pulse stamped at ``back_at - 3`` is
    # in the slot that starts up to 10 s earlier (half the runs missed it with a 10 s margin).
    late = pulses_between(config, back_at - 10 - SLOT, back_at + 600)
    early = pulses_between(config, start - 700, time.time() + 10)
    assert late > 0
    assert late + early == sum(reported)
