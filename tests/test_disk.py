"""A card that fills up or fails, on real file systems: a small loop-mounted ext4 (1 KiB and 4 KiB
blocks) and a tmpfs, filled and freed under a running logger, and an ext4 aborted mid-run. The
logger keeps reading, says why in one line, and counts equal the truth after. Needs root (CI
runs as root); skipped with the reason otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from s0pcm.link.events import Connected
from s0pcm.logger.journal import Entry, Journal
from s0pcm.store import open_store
from tests.helpers.disk import fill
from tests.helpers.logger import S0PCM, emulator_process, stored, wait_for_lines, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting file systems needs root")


@contextlib.contextmanager
def small_disk(tmp_path: Path, kind: str, size_mb: int = 6) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    image = tmp_path / "disk.img"
    if kind == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
                       check=True)  # fmt: skip
    else:
        block = {"ext4-1k": "1024", "ext4-4k": "4096"}[kind]
        with image.open("wb") as f:
            f.truncate(size_mb << 20)
        # -m 0: no blocks kept back for root (the tests run as root, the logger would not).
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", block, str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def config_on(disk: Path, tmp_path: Path) -> Path:
    config = write_config(tmp_path, commit_interval=0.3)
    text = config.read_text().replace(str(tmp_path / "s0pcm.sqlite"), str(disk / "s0pcm.sqlite"))
    config.write_text(text)
    return config


def logger_logging_to(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*S0PCM, "run", "--config", str(config), "--no-web"], stderr=log.open("wb")
    )


def more_lines(truth: Path, n: int) -> None:
    wait_for_lines(truth, json.loads(truth.read_text())["lines"] + n)


def reported(truth: Path) -> list[int]:
    return [r["reported"] for r in json.loads(truth.read_text())["registers"]]


@pytest.mark.parametrize("kind", ["ext4-1k", "ext4-4k", "tmpfs"])
def test_a_full_disk_keeps_the_logger_reading_and_loses_nothing(tmp_path: Path, kind: str) -> None:
    """Filled while the logger runs, a module restart while full, then freed: no SIGBUS, one
    clear line, and every pulse stored once there is room."""
    log = tmp_path / "logger.log"
    with small_disk(tmp_path, kind) as disk:
        config = config_on(disk, tmp_path)
        args = ("--interval", "0.1", "--rate", "1=20", "--rate", "3=7", "--rate", "5=50")
        with emulator_process(tmp_path, *args) as truth:
            proc = logger_logging_to(config, log)
            wait_for_lines(truth, 20)
            filler = fill(disk)
            more_lines(truth, 30)
            (tmp_path / "control").write_text("restart\n")  # only memory holds the old life now
            more_lines(truth, 30)
            assert proc.poll() is None, log.read_text()  # still running (no exit, no SIGBUS)
            filler.unlink()
            more_lines(truth, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
        assert stored(config) == reported(truth)
    text = log.read_text()
    assert "Traceback" not in text
    full = [line for line in text.splitlines() if "ERROR" in line and "disk full" in line]
    assert 1 <= len(full) <= 2, full  # the commit's line (and the journal's), not one a record
    assert any(f"disk full: {disk}, 0 bytes free" in line for line in full), full
    assert "storing again after" in text


def test_a_crash_just_after_the_disk_is_freed_loses_nothing(tmp_path: Path) -> None:
    """Found by the soak (bench/bench_soak.py): the module restarts while the disk is full, so
    only memory knows the old life's end; the disk is freed, and the logger is killed a second
    later. The commit must not wait for its back-off (seconds by then): the journal's first
    good write after the failures commits at once."""
    log = tmp_path / "logger.log"
    with small_disk(tmp_path, "tmpfs", size_mb=6) as disk:
        config = config_on(disk, tmp_path)
        args = ("--interval", "0.1", "--rate", "1=20", "--rate", "3=7", "--rate", "5=50")
        with emulator_process(tmp_path, *args) as truth:
            proc = logger_logging_to(config, log)
            wait_for_lines(truth, 20)
            filler = fill(disk)
            more_lines(truth, 80)  # past what the journal's last page still takes
            (tmp_path / "control").write_text("restart\n")  # only memory holds the old life now
            more_lines(truth, 60)  # failed commits: the back-off is past 5 s by now
            filler.unlink()
            more_lines(truth, 10)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = logger_logging_to(config, tmp_path / "second.log")
            more_lines(truth, 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert stored(config) == reported(truth)


def test_a_disk_that_fails_mid_run_keeps_the_logger_reading(tmp_path: Path) -> None:
    """``remount,abort``: the card is gone read-only mid-run. The logger reads on, says so,
    stops cleanly; once the disk is back, the next logger has every pulse (from the module's
    totals, as nothing could be written meanwhile)."""
    log = tmp_path / "logger.log"
    with small_disk(tmp_path, "ext4-4k") as disk:
        config = config_on(disk, tmp_path)
        with emulator_process(tmp_path, "--interval", "0.1", "--rate", "1=20") as truth:
            proc = logger_logging_to(config, log)
            wait_for_lines(truth, 20)
            subprocess.run(["mount", "-o", "remount,abort", str(disk)], check=True)
            more_lines(truth, 40)
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, log.read_text()
            subprocess.run(["umount", str(disk)], check=True)
            subprocess.run(["mount", "-o", "loop", str(tmp_path / "disk.img"), str(disk)],
                           check=True)  # fmt: skip
            proc = logger_logging_to(config, tmp_path / "second.log")
            more_lines(truth, 20)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        assert stored(config) == reported(truth)
    text = log.read_text()
    assert "Traceback" not in text
    assert "cannot store" in text


def test_a_short_journal_write_leaves_no_torn_line(tmp_path: Path) -> None:
    with small_disk(tmp_path, "tmpfs", size_mb=1) as disk:
        journal = Journal(disk / "j.journal")
        journal.append(
            Entry(seq=1, module="m", at=1.0, record=Connected(at=1.0, port="/dev/ttyACM0"))
        )
        filler = fill(disk)
        long_port = "/dev/" + "x" * 20_000
        journal.append(
            Entry(seq=2, module="m", at=2.0, record=Connected(at=2.0, port=long_port))
        )  # does not fit
        assert journal.problem is not None
        assert journal.problem.startswith("disk full")
        filler.unlink()
        journal.append(
            Entry(seq=3, module="m", at=3.0, record=Connected(at=3.0, port="/dev/ttyACM0"))
        )
        assert journal.problem is None
        assert [e.seq for e in journal.entries()] == [1, 3]
        journal.close()


def test_permission_problems_name_the_path_and_the_user(tmp_path: Path) -> None:
    """A database left root-owned by ``sudo s0pcm ...``: the logger, run as another user, says
    so in one line naming the file, its owner and the user, without a traceback."""
    home = Path(tempfile.mkdtemp(prefix="s0pcm-perm-"))  # outside pytest's 0700 tree
    request_cleanup = contextlib.ExitStack()
    request_cleanup.callback(shutil.rmtree, home, ignore_errors=True)
    config = write_config(home)
    db = home / "s0pcm.sqlite"
    open_store(str(db), tz=ZoneInfo("Europe/Amsterdam")).close()  # root's, 0644
    os.chmod(db, 0o644)
    for path in (home, config):
        os.chmod(path, 0o755)  # noqa: S103 (another user must get in)
    # The interpreter may live where "nobody" cannot read (pyenv under /root): everything is
    # imported first, then the process becomes nobody and runs the command.
    script = (
        "import os, sys, encodings.utf_8_sig, s0pcm.cli, s0pcm.logger.daemon, s0pcm.store.sqlite;"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534);"
        f"sys.argv = ['s0pcm', 'run', '--config', {str(config)!r}, '--no-web'];"
        "s0pcm.cli.main()"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert f"permission denied: user nobody may not write the file {db}" in out.stderr
    assert "owner root, mode 0644" in out.stderr
