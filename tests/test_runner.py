"""The module runner's own counters (``s0pcm.logger.runner.Health``): what the link used to
count and nobody showed, now in health, saved with it and shown by ``status``."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from s0pcm.config import load_config
from s0pcm.link.events import Disconnected
from s0pcm.logger.daemon import Daemon
from s0pcm.logger.runner import Health
from s0pcm.logger.status import format_status, module_status
from s0pcm.protocol import Decoder, Rejected
from tests.helpers.logger import write_config


def test_rejected_lines_by_reason_and_watchdog_resets_are_kept_in_health(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    with contextlib.closing(Daemon(config)) as daemon:
        runner = daemon.runners[0]
        now = time.time()
        decoder = Decoder()
        decoder.feed(b"ID:8237:I:10:M1:0:0:M2:0:0:M3:0:0:M4:0:0:M5:0:0\r\n")
        lines = b"ID:8237:I:10:M1:0:x:M2:0:0:M3:0:0:M4:0:0:M5:0:0\r\nhello\r\nworld\r\n"
        for record in decoder.feed(lines):
            assert isinstance(record, Rejected)
            runner.apply(now, record)
        runner.note(
            Disconnected(
                at=now, port="/dev/ttyACM0", reason="watchdog: no data record for 3 intervals"
            )
        )
        runner.note(Disconnected(at=now, port="/dev/ttyACM0", reason="port error: gone"))
        health = runner.health
        assert health.rejected == {
            "M1 total is not a non-negative integer": 1,
            "not a data record": 2,
        }
        assert health.watchdog_resets == 1
        assert health.disconnects == 2
        saved = runner.state()
    again = Health.restore("kast", port=None, saved=saved)
    assert (again.rejected, again.watchdog_resets) == (health.rejected, 1)
    doc = module_status(
        health=again.view(), stats=runner.ledger.stats, meters=(), values={}, now=now
    )
    text = format_status({"modules": [doc]})
    assert "rejected: 2 not a data record" in text
    assert "1 M1 total is not a non-negative integer" in text
    assert "port reopened: 1 times" in text
