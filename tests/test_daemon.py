"""The logger end to end: emulator on a pty, link, ledger, SQLite; in-process and as processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from s0pcm.config import load_config
from s0pcm.emulator import Fault, Module, PtyEmulator, Source, steady
from s0pcm.events import EventKind
from s0pcm.logger.daemon import Daemon
from s0pcm.logger.overrides import THRESHOLDS_KEY
from s0pcm.protocol import Model
from s0pcm.store import open_store
from s0pcm.web import new_token
from tests.helpers import TZ, free_port
from tests.helpers.logger import (
    S0PCM,
    emulator_process,
    logger,
    stored,
    wait_for_lines,
    write_config,
)


async def test_daemon_counts_what_the_module_reported(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, commit_interval=0.3))
    module = Module(interval=0.1, sources=[Source(steady(2.0 + n)) for n in range(5)], seed=4)
    emulator = PtyEmulator(module, link=tmp_path / "s0", tick=0.02)
    emu_task = asyncio.create_task(emulator.run())
    await emulator.ready.wait()
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    await asyncio.sleep(1.0)
    for fault in (Fault.RESTART, Fault.GARBAGE, Fault.SPIKE, Fault.DROP, Fault.TRUNCATE):
        emulator.request(fault)
        await asyncio.sleep(0.6)
    emulator.stop()
    await emu_task
    await asyncio.sleep(0.3)
    daemon.stop()
    await task
    truth = [r.reported for r in module.truth.registers]
    assert stored(tmp_path / "s0pcm.toml") == truth
    assert daemon.commits >= 5
    store = open_store(config.logger.database, tz=TZ)
    kinds = {e.kind for e in store.events(limit=10_000)}
    store.close()
    assert {EventKind.CONNECTED, EventKind.STARTUP, EventKind.SPIKE, EventKind.REJECTED} <= kinds


def test_fault_gauntlet_with_sigkilled_logger(tmp_path: Path) -> None:
    """Hundreds of faults in one run: garbage, cut and merged lines, parity noise, characters
    dropped, doubled or changed, spikes, stalls and port drops at random; module restarts and
    unplugs; and the logger killed with SIGKILL at random moments and started again. Every
    reported pulse is counted once.

    Module restarts come on demand, once the logger reads and before it is killed:
    a restart whose header is lost while the logger is down, with new totals already past the
    old ones, looks exactly like no restart (see the ledger), so the run keeps each module life
    in sight long enough to tell.
    """
    import random

    rnd = random.Random(20261126)
    config = write_config(tmp_path, commit_interval=1.0)
    kills = restarts = 0
    rates = [f"--rate={n}={r}" for n, r in enumerate((3, 0.4, 7, 1.5, 12), start=1)]
    # Stalls on demand below: they last whole stated intervals (see Fault.STALL), seconds here.
    faults = "--faults=garbage,truncate,merge,noise,spike,drop,corrupt"
    with emulator_process(tmp_path, "--interval", "0.1", "--seed", "7", faults, *rates) as truth:
        # The logger sees the module start (before that, its totals are history, not ours).
        proc = logger(config)
        wait_for_lines(truth, 10)
        (tmp_path / "control").write_text("rate 0.25\n")
        deadline = time.monotonic() + float(os.environ.get("S0PCM_GAUNTLET_SECONDS", "100"))
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(1.0, 2.0))
            if rnd.random() < 0.6:
                (tmp_path / "control").write_text(rnd.choice(["restart\n", "unplug\n"]))
                restarts += 1
                time.sleep(rnd.uniform(1.0, 2.0))
            else:
                if rnd.random() < 0.5:
                    (tmp_path / "control").write_text("stall\n")
                time.sleep(rnd.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            seen = json.loads(truth.read_text())["lines"]
            proc = logger(config)
            # The next restart only once this logger reads: a busy machine can take seconds to
            # start it, and a restart whose header nobody reads, in a life so young that the
            # next one's totals soon pass it, is the ledger's documented limit.
            wait_for_lines(truth, seen + 3)
        # The run ends as a module's day does: clean records for a while, which vouch for any
        # the logger still holds (a record after a corrupted one waits for the next).
        (tmp_path / "control").write_text("rate 0\n")
        seen = json.loads(truth.read_text())["lines"]
        wait_for_lines(truth, seen + 10)  # the last logger is up and reading
        time.sleep(1.0)  # the module stops first, then the logger
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    counted = stored(config)
    doc = json.loads(truth.read_text())
    reported = [r["reported"] for r in doc["registers"]]
    vouched = [r["vouched"] for r in doc["registers"]]
    faults_seen = sum(doc["faults"].values())
    print(f"gauntlet: {faults_seen} module faults {doc['faults']}, {kills} SIGKILLs, "
          f"counted {counted}, truth {reported}, vouched {vouched}")  # fmt: skip
    assert faults_seen + kills >= 200
    assert doc["restarts"] >= restarts > 5
    # A life that ends on a corrupted record leaves nothing to vouch for that record's interval
    # (see tests/test_corruption.py): between what whole lines vouch for and the truth; above
    # it only by what a life's unverifiable last record reads (it followed a break and has a
    # digit changed), and never without an event saying it was counted unchecked.
    possible = [r["possible"] for r in doc["registers"]]
    assert all(v <= c <= p for v, c, p in zip(vouched, counted, possible, strict=True))
    if any(c > r for c, r in zip(counted, reported, strict=True)):
        cfg = load_config(config)
        with open_store(cfg.logger.database, tz=cfg.logger.timezone, readonly=True) as store:
            events = store.events(kinds=[EventKind.UNCONFIRMED])
        assert any("counted as it reads" in e.detail for e in events)


def test_kill_during_writes_keeps_the_database_sound(tmp_path: Path) -> None:
    """SIGKILL a logger that commits constantly, 100 times: integrity holds, counts resume."""
    import random

    rnd = random.Random(5)
    config = write_config(tmp_path, model=2, commit_interval=0.05)
    db = tmp_path / "s0pcm.sqlite"
    # At most 10 pulses a second: 50 ms pulses and 50 ms pauses. A faster source would count
    # more than any meter gives, and after a slow start (a loaded machine: seconds) the ledger
    # would rightly take the jump for a spike.
    with emulator_process(tmp_path, "--interval", "0.05", "--model", "2", "--rate", "1=9",
                          "--rate", "2=3"):  # fmt: skip
        proc = logger(config)  # the first logger sees the module start
        wait_for_lines(tmp_path / "truth.json", 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for _ in range(100):
            proc = logger(config)
            time.sleep(rnd.uniform(0.35, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if db.exists():
                with sqlite3.connect(db) as conn:
                    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        proc = logger(config)
        seen = json.loads((tmp_path / "truth.json").read_text())["lines"]
        wait_for_lines(tmp_path / "truth.json", seen + 10)  # the last logger is up and reading
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    doc = json.loads((tmp_path / "truth.json").read_text())
    assert stored(config) == [r["reported"] for r in doc["registers"]]


@pytest.mark.parametrize("command", ["status", "check"])
def test_status_and_check_on_a_live_database(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, commit_interval=60)  # nothing committed but the start
    with emulator_process(tmp_path, "--interval", "0.1", "--rate", "1=10"):
        proc = logger(config)
        time.sleep(2.0)
        out = subprocess.run(
            [
                *S0PCM,
                command,
                "--config",
                str(config),
                *(["--json"] if command == "status" else []),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert out.returncode == 0, out.stderr
    if command == "check":
        assert out.stdout.strip() == "ok"
        return
    doc = json.loads(out.stdout)
    module = doc["modules"][0]
    meter = module["meters"][0]
    # Exact up to the last record although the logger has not committed: the journal says it.
    assert meter["pulses"] >= 10
    assert module["counters"]["telegrams"] >= 10
    assert meter["rate"] == pytest.approx(10 * 3600, rel=0.2)  # 10 pulses/s at 1000 imp/kWh in W


def test_run_logs_structured_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, commit_interval=60)
    with emulator_process(tmp_path, "--interval", "0.1"):
        proc = subprocess.Popen(
            [*S0PCM, "run", "--config", str(config), "--log-json", "--no-web"],
            stderr=subprocess.PIPE,
        )
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-3000:]
    logs = [json.loads(line) for line in err.decode().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(logs[0])
    assert any(doc["message"].startswith("connected to ") for doc in logs)


def test_threshold_requests_outlive_logger_restarts(tmp_path: Path) -> None:
    """Pending thresholds stay queued across logger restarts until a header confirms them; the
    configuration's command is queued when it is new, a dashboard request when it is newer than
    the last one taken."""
    path = write_config(tmp_path)
    text = path.read_text()

    def start(thresholds: str | None = None) -> Daemon:
        extra = f'thresholds = "{thresholds}"\n' if thresholds else ""
        path.write_text(text.replace('framing = "8N1"\n', f'framing = "8N1"\n{extra}'))
        return Daemon(load_config(path))

    def stop(daemon: Daemon) -> str | None:
        daemon.commit()
        daemon.store.close()
        daemon.journal.close()
        queued = daemon.runners[0].link.thresholds_pending
        return None if queued is None else queued.to_command()

    def confirm(daemon: Daemon) -> None:  # as a confirming header does
        daemon.runners[0].health.thresholds_pending = None
        daemon.runners[0].link.send_thresholds(None)

    assert stop(start()) is None
    assert stop(start("T1=50;")) == "T1=50;"  # new in the configuration
    daemon = start("T1=50;")
    assert daemon.runners[0].health.thresholds_pending == "T1=50;"  # still pending: queued again
    confirm(daemon)
    assert stop(daemon) is None
    assert stop(start("T1=50;")) is None  # confirmed: not sent again at every start
    daemon = start("T1=50;")
    daemon.store.set_state(THRESHOLDS_KEY, {"kast": {"command": "T2=40;", "seq": 1, "at": 0}})
    daemon.load_settings()
    assert daemon.runners[0].health.thresholds_request == 1
    assert stop(daemon) == "T2=40;"
    daemon = start("T1=50;")  # the request outlives the restart; the old config stays done
    assert daemon.runners[0].link.thresholds_pending is not None
    confirm(daemon)
    assert stop(daemon) is None
    assert stop(start("T1=50;")) is None  # request taken and confirmed
    assert stop(start("T1=60;")) == "T1=60;"  # the configuration changed: a new request


async def test_a_constant_changed_in_the_file_holds_from_the_next_start(tmp_path: Path) -> None:
    """Readings were anchored with 100 pulses per m³; the file now says 10: an anchor at the
    start keeps the reading and changes the constant from there (history keeps its own)."""
    path = write_config(tmp_path, commit_interval=0.2)
    anchored = "pulses_per_unit = 100\nreading = 5.0\nreading_at = 2026-01-01T00:00:00Z\n"
    text = path.read_text().replace("pulses_per_unit = 100\n", anchored)

    async def start(ppu: int) -> list[tuple[float, float]]:
        path.write_text(text.replace("pulses_per_unit = 100", f"pulses_per_unit = {ppu}"))
        daemon = Daemon(load_config(path))
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(0.5)  # no module there: the port is retried meanwhile
        daemon.stop()
        await task
        with open_store(str(tmp_path / "s0pcm.sqlite"), tz=TZ) as store:
            return [(a.reading, a.pulses_per_unit) for a in store.anchors("kast.2")]

    assert await start(100) == [(5.0, 100.0)]
    assert await start(100) == [(5.0, 100.0)]  # nothing changed, nothing added
    assert await start(10) == [(5.0, 100.0), (5.0, 10.0)]


def test_dashboard_settings_reach_a_logger_in_another_process(tmp_path: Path) -> None:
    """`s0pcm serve` beside `s0pcm run --no-web` on one SQLite file: a meter switched off on the
    dashboard stops counting in the logger, and a threshold request made there goes to the module
    at its next start-up and is confirmed by the one after."""
    port = free_port()
    config = write_config(tmp_path, commit_interval=0.3, listen=f"127.0.0.1:{port}")
    cfg = load_config(config)
    with open_store(cfg.logger.database, tz=TZ) as store:
        token = new_token(store, "test")
    args = ("--interval", "0.1", "--rate", "1=10", "--rate", "2=10")
    with emulator_process(tmp_path, *args):
        run = logger(config)
        serve = subprocess.Popen(
            [*S0PCM, "serve", "--config", str(config)], stderr=subprocess.DEVNULL
        )
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

        def health() -> dict[str, Any]:
            module: dict[str, Any] = client.get("/api/health").json()["modules"][0]
            return module

        def until(what: str, check: Callable[[], bool], seconds: float = 20) -> None:
            deadline = time.monotonic() + seconds
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if check():
                        return
                assert time.monotonic() < deadline, f"never: {what}"
                time.sleep(0.1)

        try:
            until("the logger stores a header", lambda: health()["firmware"] == "V0.6")
            # Switched off, a meter is hidden but still counted: nothing is lost.
            assert client.put("/api/meters/kast.2", json={"enabled": False}).status_code == 200
            before = stored(config)
            until("meter 2 counts on", lambda: stored(config)[1] > before[1])
            assert client.get("/api/meters/kast.2").json()["enabled"] is False
            # A new constant for a meter with a reading: the logger (which holds every pulse
            # counted so far) anchors it from the start of its current slot on.
            set_reading = client.post("/api/meters/kast.1/reading", json={"reading": 100.0})
            assert set_reading.status_code == 201
            assert (
                client.put("/api/meters/kast.1", json={"pulses_per_unit": 500}).status_code == 200
            )

            def anchored() -> bool:
                with open_store(cfg.logger.database, tz=TZ, readonly=True) as store:
                    anchors = store.anchors("kast.1")
                return anchors[-1].pulses_per_unit == 500 and anchors[-1].at % 10 == 0

            until("the logger anchors the new constant", anchored)
            events = client.get("/api/events", params={"kind": "correction"}).json()
            assert any("500 pulses per kWh from now on (was 1000)" in e["detail"] for e in events)

            queued = client.post("/api/modules/kast/thresholds", json={"command": "T2=40;"})
            assert queued.status_code == 202
            assert health()["thresholds_pending"] == "T2=40;"  # waiting for the logger

            def taken() -> bool:
                with open_store(cfg.logger.database, tz=TZ, readonly=True) as store:
                    saved = store.state("kast") or {}
                return bool(saved.get("health", {}).get("thresholds_request"))

            until("the logger takes the request", taken)
            (tmp_path / "control").write_text("restart\n")  # the logger sends it now...
            until(
                "the logger sends the thresholds",
                lambda: any(
                    e["kind"] == "thresholds_sent"
                    for e in client.get("/api/events", params={"limit": 50}).json()
                ),
            )
            (tmp_path / "control").write_text("restart\n")  # ...and this start-up confirms it
            until("the module confirms", lambda: health()["thresholds_pending"] is None)
            assert health()["thresholds"] == [30, 40, 30, 30, 30]
        finally:
            client.close()
            for proc in (serve, run):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
        assert run.returncode == 0


async def test_two_modules_one_store(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        f"""
[logger]
database = "{tmp_path / "two.sqlite"}"
timezone = "Europe/Amsterdam"
commit_interval = 0.3

[modules.house]
port = "{tmp_path / "a"}"
model = 5
[modules.house.meters.1]
kind = "electricity"
pulses_per_unit = 1000

[modules.shed]
port = "{tmp_path / "b"}"
model = 2
[modules.shed.meters.2]
kind = "water"
unit = "L"
pulses_per_unit = 1
"""
    )
    config = load_config(path)
    house = Module(interval=0.1, module_id="1", sources=[Source(steady(4.0)) for _ in range(5)])
    shed_sources = [Source(steady(2.0)) for _ in range(2)]
    shed = Module(model=Model.S0PCM2, interval=0.1, module_id="2", sources=shed_sources)
    emulators = [
        PtyEmulator(house, link=tmp_path / "a", tick=0.02),
        PtyEmulator(shed, link=tmp_path / "b", tick=0.02),
    ]
    tasks = [asyncio.create_task(e.run()) for e in emulators]
    daemon = Daemon(config)
    run = asyncio.create_task(daemon.run())
    await asyncio.sleep(1.5)
    emulators[1].request(Fault.RESTART)
    await asyncio.sleep(1.0)
    for e in emulators:
        e.stop()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.3)
    daemon.stop()
    await run
    store = open_store(config.logger.database, tz=TZ)
    try:
        assert store.pulses("house.1", -math.inf, math.inf) == house.truth.registers[0].reported
        assert store.pulses("shed.2", -math.inf, math.inf) == shed.truth.registers[1].reported
        assert shed.truth.restarts == 1
        assert sorted(store.meters()) == ["house.1", "shed.2"]
    finally:
        store.close()
