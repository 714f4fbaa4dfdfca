"""One logger per store: a second logger on the same journal or database refuses at once,
naming the first; the readers work beside it and create nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from s0pcm.cli import main
from s0pcm.errors import AlreadyRunning
from s0pcm.logger.journal import Journal
from s0pcm.store import open_store
from tests.helpers import TZ as AMS
from tests.helpers.logger import (
    S0PCM,
    emulator_process,
    logger,
    stored,
    wait_for_lines,
    write_config,
)
from tests.helpers.store import Backend

HOST = socket.gethostname()


def test_two_loggers_on_one_config_the_second_refuses_and_nothing_is_doubled(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, commit_interval=0.3)
    with emulator_process(
        tmp_path, "--interval", "0.1", "--rate", "1=10", "--rate", "3=4"
    ) as truth:
        first = logger(config)
        wait_for_lines(truth, 10)
        started = time.monotonic()
        second = subprocess.run(
            [*S0PCM, "run", "--config", str(config), "--no-web"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert time.monotonic() - started < 15  # at once, not after a timeout
        assert f"pid {first.pid} on {HOST}" in second.stderr
        assert "in use by another s0pcm logger" in second.stderr
        assert "Traceback" not in second.stderr
        # status beside it: names the running logger.
        status = subprocess.run(
            [*S0PCM, "status", "--config", str(config), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["logger"]["running"] is True
        assert f"pid {first.pid}" in doc["logger"]["holder"]
        seen = json.loads(truth.read_text())["lines"]
        wait_for_lines(truth, seen + 10)
        time.sleep(0.5)
    first.terminate()
    assert first.wait(timeout=20) == 0
    reported = [r["reported"] for r in json.loads(truth.read_text())["registers"]]
    assert stored(config) == reported
    assert reported[0] > 0
    # Now nobody runs: status says so, and that the state is old news.
    out = subprocess.run(
        [*S0PCM, "status", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("logger: not running (last record ")
    assert "not connected" in out.stdout


def test_a_second_config_on_the_same_database_refuses_too(tmp_path: Path) -> None:
    """Another journal, the same SQLite file: the database's own lock stops it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_config(tmp_path / "a")
    other = write_config(tmp_path / "b")
    other.write_text(
        other.read_text().replace(
            str(tmp_path / "b" / "s0pcm.sqlite"), str(tmp_path / "a" / "s0pcm.sqlite")
        )
    )
    journal = Journal(tmp_path / "a" / "s0pcm.journal")  # not the lock that decides here
    journal.close()
    store = open_store(str(tmp_path / "a" / "s0pcm.sqlite"), tz=AMS)
    store.claim()
    try:
        result = CliRunner().invoke(main, ["import-capture", "--config", str(other), os.devnull])
        assert result.exit_code == 1
        assert f"database {tmp_path / 'a' / 's0pcm.sqlite'} is in use" in result.output
        assert f"pid {os.getpid()} on {HOST}" in result.output
        assert not (tmp_path / "b" / "s0pcm.journal").exists()  # refused before the journal
    finally:
        store.close()
    result = CliRunner().invoke(main, ["import-capture", "--config", str(other), os.devnull])
    assert result.exit_code == 0, result.output


def test_the_journal_has_one_writer(tmp_path: Path) -> None:
    path = tmp_path / "s0pcm.journal"
    first = Journal(path)
    with pytest.raises(AlreadyRunning, match=f"journal {path} is in use .*pid {os.getpid()}"):
        Journal(path)
    assert Journal(path, readonly=True).running() == first.running()
    assert (first.running() or "").startswith(f"pid {os.getpid()} on {HOST} since ")
    first.close()
    assert Journal(path, readonly=True).running() is None
    Journal(path).close()  # free again
    assert (tmp_path / "s0pcm.journal.lock").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_store_has_one_logger(backend: Backend) -> None:
    """SQLite: a lock file beside it; PostgreSQL: a session advisory lock, visible to every
    host, whose holder the server names (the connection's application name)."""
    with backend.open() as first, backend.open() as second, backend.open(readonly=True) as reader:
        assert reader.claimed_by() is None
        first.claim()
        first.claim()  # again: a no-op
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()} on {HOST}"):
            second.claim()
        assert f"pid {os.getpid()} on {HOST}" in (reader.claimed_by() or "")
        first.close()
        time.sleep(0.1)  # PostgreSQL drops the lock when the session ends
        assert reader.claimed_by() is None
        second.claim()


def test_status_and_check_create_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for command in ("status", "check"):
        result = CliRunner().invoke(main, [command, "--config", str(config)])
        assert result.exit_code == 1
        assert "no such database file" in result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0pcm.toml"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_status_check_and_export_on_a_read_only_disk(tmp_path: Path) -> None:
    """The card went read-only (or the user may only read): the readers still answer."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        config = write_config(disk, commit_interval=0.2)
        with emulator_process(disk, "--interval", "0.1", "--rate", "1=10") as truth:
            proc = logger(config)
            wait_for_lines(truth, 15)
            proc.terminate()
            assert proc.wait(timeout=20) == 0
        before = sorted(p.name for p in disk.iterdir())
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for args in (
            ["status"],
            ["check"],
            ["export", "--meter", "kast.1", "--from", "2000-01-01", "--to", "2100-01-01"],
        ):
            out = subprocess.run(
                [*S0PCM, *args[:1], "--config", str(config), *args[1:]],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 0, (args, out.stderr)
            assert "Traceback" not in out.stderr
        assert sorted(p.name for p in disk.iterdir()) == before
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_export_beside_the_running_logger_has_the_last_minutes_and_no_future(
    tmp_path: Path,
) -> None:
    """`s0pcm export` while the logger runs, long before its next commit: the records it has
    only journalled are in the rows, and there is no row before logging began or after now."""
    import csv
    import io
    from datetime import datetime, timedelta

    config = write_config(tmp_path, commit_interval=600)
    with emulator_process(tmp_path, "--interval", "0.1", "--rate", "1=10") as truth:
        proc = logger(config)
        try:
            wait_for_lines(truth, 40)
            now = time.time()
            today = datetime.fromtimestamp(now, AMS).date()
            out = subprocess.run(
                [*S0PCM, "export", "--config", str(config), "--meter", "kast.1",
                 "--from", today.isoformat(), "--to", (today + timedelta(days=1)).isoformat(),
                 "--resolution", "interval"],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    rows = list(csv.reader(io.StringIO(out.stdout)))[1:]
    starts = [datetime.fromisoformat(r[0]).timestamp() for r in rows]
    assert sum(int(r[1]) for r in rows) >= 30  # journalled, not committed: there all the same
    assert max(starts) <= now + 10  # no future slots
    assert min(starts) >= now - 3 * 3600  # nothing long before the first record
    assert all(r[3] for r in rows)  # a reading in every row, also at interval resolution
