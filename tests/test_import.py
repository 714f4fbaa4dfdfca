"""Importing captures and legacy totals, exporting CSV, through the CLI into a real SQLite file."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from s0pcm.calendar import Resolution
from s0pcm.cli import main
from s0pcm.config import load_config
from s0pcm.ledger import Ledger
from s0pcm.store import open_store
from tests.helpers.logger import write_config

TZ = ZoneInfo("Europe/Amsterdam")


def capture_over(path: Path, start: datetime, days: int) -> int:
    """One pulse per 10 s record on M1 (a steady 360 W at 1000 imp/kWh), timestamped."""
    t0 = start.timestamp()
    records = days * 8640
    with path.open("w") as f:
        f.write(f"{t0:.1f} /8237:S0 Pulse Counter V0.6 - 30/30/30/30/30ms\n")
        for n in range(1, records + 1):
            f.write(f"{t0 + n * 10 - 5:.1f} ID:8237:I:10:M1:1:{n}:M2:0:0\n")
    return records


def test_dst_day_totals_through_import_and_export(tmp_path: Path) -> None:
    config = write_config(tmp_path, model=2)
    for start in (datetime(2026, 3, 28, tzinfo=TZ), datetime(2026, 10, 24, tzinfo=TZ)):
        capture = tmp_path / f"capture-{start.month}.txt"
        capture_over(capture, start, 3)
        result = CliRunner().invoke(main, ["import-capture", "--config", str(config), str(capture)])
        assert result.exit_code == 0, result.output
        assert "imported 25921 lines: 25920 records, 0 rejected" in result.output
    cfg = load_config(config)
    store = open_store(cfg.logger.database, tz=TZ)
    spring = store.series(
        "kast.1",
        datetime(2026, 3, 28, tzinfo=TZ).timestamp(),
        datetime(2026, 3, 31, tzinfo=TZ).timestamp(),
        Resolution.DAY,
    )
    autumn = store.series(
        "kast.1",
        datetime(2026, 10, 24, tzinfo=TZ).timestamp(),
        datetime(2026, 10, 27, tzinfo=TZ).timestamp(),
        Resolution.DAY,
    )
    store.close()
    # A local day has 24 hours of records, 23 when the clocks go forward, 25 when they go back.
    assert [p for _, p in spring] == [8640, 23 * 360, 8640]
    assert [p for _, p in autumn] == [8640, 25 * 360, 8640 - 360]  # 72 h end on the 26th
    result = CliRunner().invoke(
        main,
        ["export", "--config", str(config), "--meter", "kast.1", "--from", "2026-10-24",
         "--to", "2026-10-27", "--resolution", "day"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == ["start", "pulses", "consumption (kWh)", "reading at end (kWh)"]
    assert [r[0] for r in rows[1:]] == [
        "2026-10-24T00:00:00+02:00",
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    ]
    assert [r[2] for r in rows[1:]] == ["8.64", "9", "8.28"]


def test_import_capture_without_times_and_with_garbage(tmp_path: Path) -> None:
    config = write_config(tmp_path, model=5)
    sample = Path(__file__).parent / "samples" / "v06-s0pcm5-startup.txt"
    capture = tmp_path / "raw.txt"
    lines = [sample.read_bytes().decode().splitlines()[0]]
    total = 0
    for n in range(1, 61):
        total += n % 3
        lines.append(f"ID:8237:I:10:M1:{n % 3}:{total}:M2:0:0:M3:0:0:M4:0:0:M5:0:0")
        if n == 30:
            lines.append("ID:8237:I:10:M1:0:9x")  # a bad line is skipped, never a zero
    capture.write_text("\r\n".join(lines) + "\r\n")
    result = CliRunner().invoke(
        main,
        ["import-capture", "--config", str(config), "--start", "2026-11-01 12:00:00",
         str(capture)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "60 records, 1 rejected" in result.output
    cfg = load_config(config)
    store = open_store(cfg.logger.database, tz=TZ)
    start = datetime(2026, 11, 1, 12, tzinfo=TZ).timestamp()
    assert store.pulses("kast.1", -math.inf, math.inf) == total
    assert store.pulses("kast.1", start, start + 300) == sum(n % 3 for n in range(1, 30))
    store.close()


def test_import_capture_without_times_needs_a_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, model=5)
    capture = tmp_path / "raw.txt"
    capture.write_text("ID:8237:I:10:M1:0:0:M2:0:0:M3:0:0:M4:0:0:M5:0:0\n")
    result = CliRunner().invoke(main, ["import-capture", "--config", str(config), str(capture)])
    assert result.exit_code == 1
    assert f"{capture}:1" in result.output
    assert "--start" in result.output


def test_import_legacy_takes_over_readings_and_counters(tmp_path: Path) -> None:
    config = write_config(tmp_path, model=2)
    yaml = tmp_path / "measurement.yaml"
    yaml.write_text(
        "date: 2026-11-01\n1:\n  pulsecount: 24130\n  today: 4321\n  total: 12054321\n"
        "  yesterday: 9876\n2:\n  pulsecount: 10\n  today: 1\n  total: 5000\n  yesterday: 2\n"
    )
    result = CliRunner().invoke(main, ["import-legacy", "--config", str(config), str(yaml)])
    assert result.exit_code == 0, result.output
    assert "Meter 1: 12,054.321 kWh (12,054,321 pulses)" in result.output
    assert "module counters taken over" in result.output
    cfg = load_config(config)
    store = open_store(cfg.logger.database, tz=TZ)
    at = yaml.stat().st_mtime
    assert store.reading_at("kast.1", at + 1) == 12054.321
    assert store.reading_at("kast.2", at + 1) == 50.0  # 5000 pulses at 100 imp/m³
    state = store.state("kast")
    store.close()
    assert state is not None
    assert Ledger("kast", state=state["ledger"]).totals == [24130, 10]
    # The module counted on while nobody watched: the first record recovers it, not from 0.
    capture = tmp_path / "after.txt"
    later = datetime.fromtimestamp(at, TZ) + timedelta(minutes=5)
    # (A record after a break is counted once the next one vouches for it: here, unchanged.)
    after = later + timedelta(seconds=10)
    capture.write_text(
        f"{later.isoformat()} ID:8237:I:10:M1:3:24200:M2:0:12\n"
        f"{after.isoformat()} ID:8237:I:10:M1:0:24200:M2:0:12\n"
    )
    result = CliRunner().invoke(main, ["import-capture", "--config", str(config), str(capture)])
    assert result.exit_code == 0, result.output
    store = open_store(cfg.logger.database, tz=TZ)
    assert store.reading_at("kast.1", later.timestamp() + 10) == 12054.321 + 70 / 1000
    store.close()


def test_set_reading_corrects_and_replaces_without_rewriting_history(tmp_path: Path) -> None:
    config = write_config(tmp_path, model=2)
    capture = tmp_path / "c.txt"
    capture_over(capture, datetime(2026, 11, 1, tzinfo=TZ), 1)  # 8640 pulses on M1 that day
    assert CliRunner().invoke(main, ["import-capture", "--config", str(config), str(capture)])
    base = ["set-reading", "--config", str(config), "--meter", "kast.1"]
    result = CliRunner().invoke(main, [*base, "--reading", "100", "--at", "2026-11-01 00:00:00"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, [*base, "--reading", "110", "--at", "2026-11-01 12:00:00"])
    assert result.exit_code == 0, result.output
    assert "(was 104.320)" in result.output  # 100 kWh + 4320 pulses at 1000 imp/kWh
    # The moment in the logger's zone (Europe/Amsterdam), whatever the machine's or UTC.
    assert "from 2026-11-01 12:00:00 CET" in result.output
    result = CliRunner().invoke(
        main,
        [*base, "--reading", "0", "--at", "2026-11-01 18:00:00", "--replaced",
         "--pulses-per-unit", "500"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = load_config(config)
    store = open_store(cfg.logger.database, tz=TZ)

    def reading(hour: int) -> float | None:
        return store.reading_at("kast.1", datetime(2026, 11, 1, hour, tzinfo=TZ).timestamp())

    assert reading(6) == 100 + 2160 / 1000  # before the correction: history as it was
    assert reading(15) == 110 + 1080 / 1000
    assert reading(20) == 0 + 720 / 500  # the new meter counts 500 pulses a unit
    kinds = [e.kind.value for e in store.events(meter="kast.1")]
    store.close()
    assert kinds[:2] == ["replacement", "correction"]
    result = CliRunner().invoke(main, [*base, "--reading", "1", "--pulses-per-unit", "5"])
    assert result.exit_code == 2
    assert "--pulses-per-unit goes with --replaced" in result.output
