"""What the configuration takes from this machine rather than from the file.

The time zone when ``[logger]`` names none, and which device a port path really is (so that two
modules cannot share one through two spellings). Apart from the schema so that it reads as what
it is: the only part of the check that looks at the system.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def normal_port(port: str) -> str:
    """One spelling per device: a by-id link and the device it points to are the same port."""
    if "://" in port:
        return port
    return os.path.realpath(port)


def system_timezone() -> ZoneInfo:
    """The system's time zone: ``$TZ``, the /etc/localtime link, /etc/timezone, else UTC."""
    for candidate in _zone_names():
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def _zone_names() -> Iterator[str]:
    tz = os.environ.get("TZ", "").removeprefix(":")
    if tz and not tz.startswith("/"):
        yield tz
    target = os.path.realpath(tz if tz.startswith("/") else "/etc/localtime")
    if "/zoneinfo/" in target:
        yield target.split("/zoneinfo/", 1)[1]
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
    except OSError:
        return
    yield name
