"""MQTT: from a record to the message a subscriber receives, and the memory it costs.

An emulated module (``PtyEmulator``, a record every 0.2 s: 50 times the real rate) read by the
logger (``Daemon`` with ``[mqtt]`` and the encoders ``s0pcm run`` uses) and a real Mosquitto on
loopback. Per record: from the runner publishing its update (the logger's listeners are called)
to a subscriber having the meter's state message (matched by its pulse total), through the outbox
(SQLite) and the broker; and, in the same run, the same records to the logger's own listener,
to see what MQTT adds. Then the process's RSS idle (before the daemon) and at its peak.

``python -m bench mqtt`` (about 30 s; needs mosquitto).
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import aiomqtt
from tests.helpers.logger import write_config
from tests.helpers.mqtt import broker

from s0pcm.config import load_config
from s0pcm.emulator import Module, PtyEmulator, Source, steady
from s0pcm.logger.daemon import Daemon
from s0pcm.logger.runner import Update
from s0pcm.publish.encoders import for_daemon

RECORDS: Final = 150 if not __import__("os").environ.get("BENCH_QUICK") else 50


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(root: Path) -> None:
    idle = rss_mib()
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
            peak = rss_mib()
            async for message in client.messages:
                if not isinstance(message.payload, bytes) or message.retain:
                    continue
                total = json.loads(message.payload).get("pulses_total")
                if total is not None:
                    received.setdefault(total, time.perf_counter())
                peak = max(peak, rss_mib())
                if len(received) >= RECORDS:
                    break
            emulator.stop()
            await emu_task
            daemon.stop()
            await task
    matched = [(received[k] - published[k]) * 1000 for k in received if k in published]
    print(f"records matched                  {len(matched)} of {len(received)} received")
    if matched:
        print(
            f"update published -> subscriber   p50 {statistics.median(matched):.2f}  "
            f"p99 {percentile(matched, 0.99):.2f}  max {max(matched):.2f} ms"
        )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process RSS: idle {idle:.1f} MiB (imports done), peak {peak:.1f} MiB "
          f"(max RSS {maxrss:.1f} MiB): logger + MQTT client + outbox")  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(Path(tmp)))


if __name__ == "__main__":
    main()
