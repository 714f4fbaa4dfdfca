"""The live path in-process: store statements and time from a record to its SSE event.

A logger (``Daemon``) on a SQLite store with two days of a household's history, the dashboard's
live hub attached with one client, and 600 records applied one by one as the link delivers them
(``ModuleRunner.apply``). Per record: the SQL statements the store ran between the record and its
``update`` event reaching the client's queue (counted with SQLite's trace callback; no commit
falls in the window), and that time. What the HTTP stream adds on top is in ``bench_web``.

``python -m bench live`` (about 10 s).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from s0pcm.config import load_config
from s0pcm.logger.daemon import Daemon
from s0pcm.protocol import Register, Telegram
from s0pcm.store.sqlite import SqliteStore
from s0pcm.web import create_app

RECORDS: Final = 600
RATES: Final = (3, 0, 1, 7, 12)  # pulses per record and register


def write_config(root: Path) -> Path:
    meters = "".join(
        f'[modules.kast.meters.{n}]\nname = "M{n}"\nkind = "{kind}"\npulses_per_unit = 1000\n'
        for n, kind in enumerate(("electricity", "gas", "water", "electricity", "heat"), 1)
    )
    path = root / "s0pcm.toml"
    path.write_text(
        f'[logger]\ndatabase = "{root / "s0pcm.sqlite"}"\njournal = "{root / "s0pcm.journal"}"\n'
        'timezone = "Europe/Amsterdam"\n\n'
        f'[modules.kast]\nport = "/dev/null"\nmodel = 5\n{meters}',
        encoding="utf-8",
    )
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(root: Path) -> dict[str, Any]:
    config = load_config(write_config(root))
    daemon = Daemon(config)
    store = daemon.store
    now = time.time()
    for meter in config.meters:  # two days of history, an hour at a time
        first = int(now // 3600) - 48
        for hour in range(first, first + 48):
            store.add_hour(meter.key, hour * 3600.0, [meter.register] * 360)
    daemon.commit()
    app = create_app(config=config, store=store, daemon=daemon)
    hub = app.state.context.live
    await hub.start()
    client = hub.connect()
    statements = 0

    def trace(sql: str) -> None:
        nonlocal statements
        statements += 1

    assert isinstance(store, SqliteStore)
    conn = store._conn  # the benchmark counts the store's own statements
    runner = daemon.runners[0]
    totals = [0] * 5
    per_record: list[int] = []
    delays: list[float] = []
    conn.set_trace_callback(trace)
    try:
        for k in range(RECORDS):
            totals = [t + r for t, r in zip(totals, RATES, strict=True)]
            counts = RATES if k else tuple(totals)
            registers = tuple(
                Register(interval=c, total=t) for c, t in zip(counts, totals, strict=True)
            )
            tg = Telegram(module_id="8237", interval=10, registers=registers)
            statements = 0
            began = time.perf_counter()
            runner.apply(time.time(), tg)
            await asyncio.wait_for(client.queue.get(), 5)
            delays.append((time.perf_counter() - began) * 1000)
            per_record.append(statements)
    finally:
        conn.set_trace_callback(None)
        await hub.stop()
        daemon.close()
    return {"statements": per_record, "delays": delays}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="s0pcm-live-") as tmp:
        result = asyncio.run(run(Path(tmp)))
    per, delays = result["statements"][10:], result["delays"][10:]  # after warming up
    print(f"records                        {len(per):>8}")
    print(f"store statements per record    {statistics.fmean(per):>8.1f}  (max {max(per)})")
    print(f"record to SSE event, ms        p50 {percentile(delays, 0.5):.3f}  "
          f"p99 {percentile(delays, 0.99):.3f}  max {max(delays):.3f}")  # fmt: skip
    assert all(math.isfinite(d) for d in delays)


if __name__ == "__main__":
    main()
