"""What several test modules share; the fixtures over it are declared in ``tests/conftest.py``.

* :mod:`tests.helpers.logger`: the logger and the emulator as processes (``s0pcm run``, ``s0pcm
  emulate``), the logger's configuration, what a store holds at the end.
* :mod:`tests.helpers.web`: real web servers over a store of known history, or over a live logger.
* :mod:`tests.helpers.store`: the store backends (SQLite, PostgreSQL) behind one handle.
* :mod:`tests.helpers.pg`: a throwaway PostgreSQL cluster.
* :mod:`tests.helpers.agreement`: what the emulator printed against what a reader accepted.
* :mod:`tests.helpers.disk`: a file system filled to the last byte.
* :mod:`tests.helpers.mqtt`: a real Mosquitto (passwords, TLS with a test CA) and a subscriber.

``tests/conftest.py`` registers this package for pytest's assert rewriting, so the helpers that
assert say what failed.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["SAMPLES_DIR", "TZ", "free_port"]

#: The time zone of the tests' configurations and stores.
TZ: Final = ZoneInfo("Europe/Amsterdam")

#: Real field captures, byte for byte, with their sources in README.md there.
SAMPLES_DIR: Final = Path(__file__).resolve().parent.parent / "samples"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
