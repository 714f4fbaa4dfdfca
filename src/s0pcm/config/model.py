"""The checked configuration: frozen dataclasses, and the defaults the checker fills in.

At the bottom of the package: the checker (:mod:`.check`) builds these, the rest of the logger
reads them, and nothing here knows about TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from ..link.events import Framing
from ..meters import Meter
from ..protocol import Model, Thresholds

#: Where the history goes when the configuration names no database.
DEFAULT_DATABASE: Final = "/var/lib/s0pcm/s0pcm.sqlite"
#: The journal of a PostgreSQL setup, which has no database file to sit next to.
DEFAULT_POSTGRESQL_JOURNAL: Final = "/var/lib/s0pcm/s0pcm.journal"
#: Seconds between commits: an SD card lasts for years at one write every five minutes.
DEFAULT_COMMIT_INTERVAL: Final = 300.0
COMMIT_INTERVAL_MAX: Final = 86400.0
#: Tests and PostgreSQL servers may commit often; an SD card wants minutes.
COMMIT_INTERVAL_MIN: Final = 0.05
#: Secure by default: only this machine can reach the web interface.
DEFAULT_LISTEN: Final = "127.0.0.1:8080"
#: Connections the server keeps at once unless told otherwise: plenty for a household's
#: browsers, few enough that a flood cannot take the logger's file descriptors.
DEFAULT_MAX_CONNECTIONS: Final = 64
#: A ``database`` that starts with one of these is a PostgreSQL URL, not an SQLite file.
POSTGRESQL_SCHEMES: Final = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class LoggerSettings:
    """``[logger]``: where and how the history is kept."""

    #: An absolute path of an SQLite file, or a ``postgresql://`` URL.
    database: str
    #: The user's time zone: days, weeks, months and years are local.
    timezone: ZoneInfo
    #: Seconds between database commits.
    commit_interval: float
    #: The crash journal (pulses counted since the last commit).
    journal: Path
    #: Days of 10-second history to keep; 0 keeps it forever (rollups are always kept).
    raw_retention_days: int

    @property
    def is_postgresql(self) -> bool:
        return self.database.startswith(POSTGRESQL_SCHEMES)

    @property
    def database_path(self) -> Path | None:
        """The SQLite file; None for PostgreSQL."""
        return None if self.is_postgresql else Path(self.database)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """``[web]``: the dashboard and API."""

    #: Host name or address to listen on (an IPv6 address without brackets).
    host: str
    port: int
    #: Whether readers need no login (writing always does).
    public_read: bool
    #: Host names the dashboard answers to besides the loopback names, this machine's name
    #: and IP addresses ("*.example" matches any subdomain). Other names are refused: a DNS
    #: rebinding page cannot reach the dashboard through a name it controls.
    allowed_hosts: tuple[str, ...] = ()
    #: Addresses (or networks) of reverse proxies whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: tuple[str, ...] = ()
    #: Serve HTTPS with this certificate chain and key (PEM), both or neither.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @property
    def scheme(self) -> str:
        return "https" if self.tls_certificate is not None else "http"

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ModuleSettings:
    """``[modules.<name>]``: one S0PCM and the meters wired to it."""

    name: str
    #: Device path or pyserial URL; None finds the module by its USB vendor id.
    port: str | None
    model: Model
    framing: Framing
    #: Thresholds to send at the module's next start-up; None leaves them alone.
    thresholds: Thresholds | None
    meters: tuple[Meter, ...]


@dataclass(frozen=True, slots=True)
class Config:
    """A checked configuration."""

    #: The file it was read from, as given (``<string>`` for text).
    path: str
    logger: LoggerSettings
    web: WebSettings
    modules: tuple[ModuleSettings, ...]

    @property
    def meters(self) -> tuple[Meter, ...]:
        """Every meter of every module, in the order of the file."""
        return tuple(meter for module in self.modules for meter in module.meters)

    def module(self, name: str) -> ModuleSettings:
        for module in self.modules:
            if module.name == name:
                return module
        raise KeyError(name)

    def meter(self, key: str) -> Meter:
        for meter in self.meters:
            if meter.key == key:
                return meter
        raise KeyError(key)
