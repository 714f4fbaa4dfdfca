"""MQTT: from a record to the message a subscriber receives, what it costs, and 100 modules.

Three measurements, each against a real Mosquitto on loopback (``tests.helpers.mqtt``):

1. **Latency**, in one process: an emulated module (a record every 0.2 s: 50 times the real
   rate) read by the logger (``Daemon`` with ``[mqtt]`` and the encoders ``s0pcm run`` uses).
   Per record, from the runner publishing its update to a subscriber having the meter's state
   message (matched by its pulse total), through the outbox (SQLite) and the broker.
2. **The real ``s0pcm run``** (logger + web + MQTT in one process, as a household runs it),
   one S0PCM-5, a record every second; side by side with the same run without ``[mqtt]``: its
   RSS idle (records flowing, no dashboard open) and its peak (VmHWM) over a run in which the
   broker is killed for a while (the outbox fills) and started again (the outbox drains).
3. **100 modules on one host** through one broker: one ``s0pcm run`` with 100 S0PCM-2 on 100
   pseudo-terminals (one emulator process), each printing every second (ten times the real
   rate), with and without ``[mqtt]``: the logger's CPU per record, its share of a core, RSS,
   and the messages the subscriber received.

CPU is the logger process's own (utime + stime from ``/proc``), records are what its health
counted in the same window (``/api/health``), so neither the emulators nor the subscriber count.

``python -m bench mqtt`` (about 3 minutes; ``--quick``: about 1; needs mosquitto).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiomqtt
import httpx
from tests.helpers import free_port
from tests.helpers.logger import write_config
from tests.helpers.mqtt import Broker, broker

from bench.bench_web import rss_kib
from s0pcm.config import load_config
from s0pcm.config.model import DEFAULT_OUTBOX_MAX
from s0pcm.emulator import Module, PtyEmulator, Source, steady
from s0pcm.logger.daemon import Daemon
from s0pcm.logger.runner import Update
from s0pcm.protocol import Model
from s0pcm.publish import Message
from s0pcm.publish.encoders import for_daemon
from s0pcm.publish.outbox import Outbox
from s0pcm.store import open_store
from s0pcm.web import new_token

QUICK: Final = bool(os.environ.get("BENCH_QUICK"))
RECORDS: Final = 50 if QUICK else 150
#: Seconds of each window measured in parts 2 and 3.
WINDOW: Final = 8.0 if QUICK else 20.0
#: Seconds the broker stays away in part 2.
AWAY: Final = 5.0 if QUICK else 15.0
SITES: Final = 100
ROOT: Final = Path(__file__).resolve().parent.parent
TICKS: Final = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. latency, in process -----------------------------------------------------------------------


async def latency(root: Path) -> None:
    with broker(root / "broker") as b:
        path = write_config(root, commit_interval=5)
        path.write_text(path.read_text() + b.toml())
        config = load_config(path)
        module = Module(interval=0.2, sources=[Source(steady(3.0 + n)) for n in range(5)])
        emulator = PtyEmulator(module, link=root / "s0", tick=0.02)
        emu_task = asyncio.create_task(emulator.run())
        await emulator.ready.wait()
        # Meter 1's total pulses after each update -> when it was published, received.
        published: dict[int, float] = {}
        received: dict[int, float] = {}
        async with aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password, identifier="bench"
        ) as client:
            await client.subscribe("s0pcm/+/1/state", qos=1)
            daemon = Daemon(config, encoders=for_daemon)
            first = config.meters[0].key

            def listener(update: Update) -> None:
                for values in update.values:
                    if values.key == first:
                        published.setdefault(values.pulses, time.perf_counter())

            daemon.subscribe(listener)
            task = asyncio.create_task(daemon.run())
            async for message in client.messages:
                if not isinstance(message.payload, bytes) or message.retain:
                    continue
                total = json.loads(message.payload).get("pulses_total")
                if total is not None:
                    received.setdefault(total, time.perf_counter())
                if len(received) >= RECORDS:
                    break
            emulator.stop()
            await emu_task
            daemon.stop()
            await task
    matched = [(received[k] - published[k]) * 1000 for k in received if k in published]
    print(f"1. record -> MQTT subscriber ({len(matched)} of {len(received)} records matched)")
    if matched:
        print(
            f"   update published -> state received   p50 {statistics.median(matched):.2f}  "
            f"p99 {percentile(matched, 0.99):.2f}  max {max(matched):.2f} ms"
        )


# -- the real s0pcm run in a process of its own ---------------------------------------------------


def cpu(pid: int) -> float:
    """CPU seconds ``pid`` used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def written(pid: int) -> tuple[int, int]:
    """(bytes ``pid`` passed to write(), bytes it sent to the storage layer) so far."""
    found = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        found[key] = int(value)
    return found["wchar"], found["write_bytes"]


def site_config(
    directory: Path, *, modules: int, model: int, mqtt: str, port: int
) -> tuple[Path, str]:
    """A configuration of ``modules`` modules on ``directory/sNNN`` (``model`` registers each,
    electricity, gas, water...), its web on ``port``; returns (file, API token)."""
    kinds = [("electricity", 1000), ("gas", 100), ("water", 1000), ("heat", 1000), ("other", 1)]
    parts = [
        f'[logger]\ndatabase = "{directory / "s0pcm.sqlite"}"\ntimezone = "Europe/Amsterdam"\n'
        f'\n[web]\nlisten = "127.0.0.1:{port}"\n'
    ]
    for n in range(modules):
        parts.append(f'\n[modules.m{n:03}]\nport = "{directory / f"s{n:03}"}"\nmodel = {model}\n')
        for register, (kind, ppu) in enumerate(kinds[:model], start=1):
            parts.append(
                f'[modules.m{n:03}.meters.{register}]\nkind = "{kind}"\npulses_per_unit = {ppu}\n'
            )
    if mqtt:
        parts.append("\n" + mqtt)
    path = directory / "s0pcm.toml"
    path.write_text("".join(parts), encoding="utf-8")
    with open_store(str(directory / "s0pcm.sqlite"), tz=ZoneInfo("Europe/Amsterdam")) as store:
        token = new_token(store, "bench")
    return path, token


def emulate_main(count: int, directory: Path, interval: float, model: int) -> None:
    """``--emulate``: ``count`` modules on ``directory/sNNN`` in this one process, until
    SIGTERM (a process per module would measure Python start-ups, not the logger)."""

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        emulators = [
            PtyEmulator(
                Module(
                    model=Model.S0PCM2 if model == 2 else Model.S0PCM5,
                    module_id=str(1000 + n),
                    interval=interval,
                    sources=[Source(steady(0.5 + r + n % 7)) for r in range(model)],
                    seed=n,
                ),
                link=directory / f"s{n:03}",
                tick=min(0.25, interval / 4),
            )
            for n in range(count)
        ]
        tasks = [asyncio.create_task(e.run()) for e in emulators]
        await stop.wait()
        for e in emulators:
            e.stop()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


@contextlib.contextmanager
def site(
    directory: Path, *, modules: int, model: int, interval: float, mqtt: str
) -> Iterator[tuple[int, httpx.Client]]:
    """Emulators and ``s0pcm run`` on them; yields (the logger's pid, an API client), once
    every module's first record is counted."""
    directory.mkdir(parents=True)
    port = free_port()
    config, token = site_config(directory, modules=modules, model=model, mqtt=mqtt, port=port)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bench.bench_mqtt", "--emulate", str(modules), str(directory),
             str(interval), str(model)],
            cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        deadline = time.monotonic() + 60
        while not all((directory / f"s{n:03}").exists() for n in range(modules)):
            assert time.monotonic() < deadline, "the emulators did not start"
            time.sleep(0.05)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "s0pcm", "run", "--config", str(config)],
            cwd=ROOT, env=env, stderr=(directory / "run.log").open("wb"),
        ))  # fmt: skip
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        )
        deadline = time.monotonic() + 90
        while True:
            assert procs[-1].poll() is None, (directory / "run.log").read_text()[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                doc = client.get("/api/health", timeout=5).json()
                if all(m["counters"]["telegrams"] > 0 for m in doc["modules"]):
                    break
            assert time.monotonic() < deadline, "the logger did not count every module"
            time.sleep(0.2)
        yield procs[-1].pid, client
        client.close()
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def records(client: httpx.Client) -> tuple[int, dict[str, Any] | None]:
    """Records counted so far over every module, and the MQTT link's status."""
    doc = client.get("/api/health", timeout=30).json()
    return sum(m["counters"]["telegrams"] for m in doc["modules"]), doc.get("mqtt")


def window(pid: int, client: httpx.Client, seconds: float) -> dict[str, float]:
    """Over ``seconds``: the logger's CPU, the records it counted, its RSS (mean, and peak)."""
    cpu0, (count0, _), t0 = cpu(pid), records(client), time.monotonic()
    io0 = written(pid)
    samples = []
    while time.monotonic() - t0 < seconds:
        samples.append(rss_kib(pid)[0])
        time.sleep(0.25)
    cpu1, (count1, link), t1 = cpu(pid), records(client), time.monotonic()
    io1 = written(pid)
    n = max(count1 - count0, 1)
    return {
        "records": n,
        "per_s": n / (t1 - t0),
        "cpu_us": (cpu1 - cpu0) / n * 1e6,
        "core": (cpu1 - cpu0) / (t1 - t0),
        "rss": statistics.mean(samples) / 1024,
        "hwm": rss_kib(pid)[1] / 1024,
        "outbox": float((link or {}).get("outbox", 0)),
        "wchar": (io1[0] - io0[0]) / n,
        "disk": (io1[1] - io0[1]) / n,
    }


@contextlib.contextmanager
def counting(b: Broker, topic: str) -> Iterator[list[int]]:
    """Messages on ``topic`` received by a subscriber in a thread of its own: [count]."""
    got = [0]
    stop = asyncio.Event()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def run() -> None:
        async with aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password, identifier="bench-count"
        ) as client:
            await client.subscribe(topic, qos=1)
            ready.set()
            reader = asyncio.create_task(drain(client))
            await stop.wait()
            reader.cancel()

    async def drain(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if not message.retain:
                got[0] += 1

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    ready.wait(30)
    try:
        yield got
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def full_outbox(root: Path, limit: int = DEFAULT_OUTBOX_MAX) -> float:
    """MiB of Python memory a full outbox holds (``limit`` Domoticz commands, the one kind
    of message that piles up: states collapse to one per topic), measured with tracemalloc."""
    tracemalloc.start()
    box = Outbox(root / "full.outbox", limit=limit)
    before = tracemalloc.get_traced_memory()[0]
    for n in range(limit + 100):
        svalue = f"{n % 5000:.1f};{12_345_678 + n}"
        doc = f'{{"command":"udevice","idx":{12 + n % 5},"nvalue":0,"svalue":"{svalue}"}}'
        box.put([Message(topic="domoticz/in", payload=doc.encode(), retain=False)])
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    box.close()
    return held / 2**20


def household(root: Path) -> None:
    """Part 2: one S0PCM-5, the real ``s0pcm run``, without and with MQTT."""
    print("2. s0pcm run (logger + web), one S0PCM-5, a record every second")
    with site(root / "plain", modules=1, model=5, interval=1.0, mqtt="") as (pid, client):
        plain = window(pid, client, WINDOW)
    with (
        broker(root / "broker2") as b,
        site(root / "mqtt", modules=1, model=5, interval=1.0, mqtt=b.toml()) as (pid, client),
    ):
        with_mqtt = window(pid, client, WINDOW)
        b.kill()
        away = window(pid, client, AWAY)
        b.start()
        deadline = time.monotonic() + 120
        while (records(client)[1] or {}).get("outbox", 1) > 0:
            assert time.monotonic() < deadline, "the outbox did not drain"
            time.sleep(0.25)
        drained = window(pid, client, 2.0)
    print(f"   {'':16} {'RSS idle':>9} {'peak':>7} {'CPU':>6} {'written/record':>15}")
    for name, r, peak in (("without [mqtt]", plain, plain), ("with [mqtt]", with_mqtt, drained)):
        print(f"   {name:16} {r['rss']:7.1f} M {peak['hwm']:5.1f} M {r['core']:6.1%} "
              f"{r['wchar']:7.0f} B, {r['disk']:5.0f} B to disk")  # fmt: skip
    print(f"   ratio with / without: RSS {with_mqtt['rss'] / plain['rss']:.2f}, peak "
          f"{drained['hwm'] / plain['hwm']:.2f}, "
          f"CPU {with_mqtt['core'] / plain['core']:.2f}")  # fmt: skip
    print(f"   broker away {AWAY:g} s: {away['outbox']:.0f} messages waited in the outbox, "
          f"RSS meanwhile {away['rss']:.1f} MiB; all sent after it came back")  # fmt: skip
    print(f"   a full outbox ({DEFAULT_OUTBOX_MAX:,} Domoticz commands, after a long outage) "
          f"holds {full_outbox(root):.1f} MiB more")  # fmt: skip


def sites(root: Path) -> None:
    """Part 3: 100 S0PCM-2 on one host, one logger, one broker."""
    print(f"3. {SITES} S0PCM-2 on one host, one s0pcm run, a record every second each")
    with site(root / "many", modules=SITES, model=2, interval=1.0, mqtt="") as (pid, client):
        plain = window(pid, client, WINDOW)
    with (
        broker(root / "broker3") as b,
        site(root / "many-mqtt", modules=SITES, model=2, interval=1.0, mqtt=b.toml()) as (
            pid,
            client,
        ),
        counting(b, "s0pcm/+/+/state") as got,
    ):
        before = got[0]
        with_mqtt = window(pid, client, WINDOW)
        messages = got[0] - before
        backlog = with_mqtt["outbox"]
    print(f"   {'':16} {'records/s':>9} {'CPU/record':>11} {'core':>6} {'RSS':>8} "
          f"{'written/record':>15}")  # fmt: skip
    for name, r in (("without [mqtt]", plain), ("with [mqtt]", with_mqtt)):
        print(f"   {name:16} {r['per_s']:9.1f} {r['cpu_us']:8.0f} µs {r['core']:5.0%} "
              f"{r['rss']:6.1f} M {r['wchar']:7.0f} B, {r['disk']:5.0f} B to disk")  # fmt: skip
    print(f"   ratio with / without: CPU per record {with_mqtt['cpu_us'] / plain['cpu_us']:.2f}, "
          f"RSS {with_mqtt['rss'] / plain['rss']:.2f}")  # fmt: skip
    print(f"   meter state messages received: {messages / WINDOW:.0f}/s "
          f"({messages / max(with_mqtt['records'], 1):.2f} per record), outbox at the end "
          f"{backlog:.0f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--emulate"]:
        emulate_main(int(args[1]), Path(args[2]), float(args[3]), int(args[4]))
        return
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="s0pcm-bench-mqtt-") as tmp:
        root = Path(tmp)
        (root / "latency").mkdir()
        asyncio.run(latency(root / "latency"))
        household(root)
        sites(root)


if __name__ == "__main__":
    main()
