"""The checked configuration: frozen dataclasses, and the defaults the checker fills in.

At the bottom of the package: the checker (:mod:`.check`) builds these, the rest of the logger
reads them, and nothing here knows about TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
#: MQTT messages kept on disk while the broker is away (a day of one module at one record per
#: 10 s is 8640 updates; the retained ones collapse, see :mod:`s0pcm.publish.outbox`).
DEFAULT_OUTBOX_MAX: Final = 10_000
OUTBOX_MAX_RANGE: Final = (100, 10_000_000)
#: Where the MQTT password comes from when the configuration gives none.
MQTT_PASSWORD_ENV: Final = "S0PCM_MQTT_PASSWORD"  # noqa: S105 - a name, not a password


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


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """``[mqtt]``: the broker the logger publishes to (absent: no MQTT)."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    #: From ``password``, ``password_file`` or ``$S0PCM_MQTT_PASSWORD``; never in a repr or log.
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    #: The CA certificates the broker's is checked against (None: the system's).
    ca_file: Path | None = None
    #: Turns the peer and host-name checks off (a self-signed broker on the LAN).
    tls_insecure: bool = False
    #: A client certificate and its key, both or neither.
    cert_file: Path | None = None
    key_file: Path | None = None
    base_topic: str = "s0pcm"
    #: "" turns Home Assistant discovery off.
    discovery_prefix: str = "homeassistant"
    #: Publish to ``domoticz/in`` for meters with a ``domoticz_idx``.
    domoticz: bool = False
    outbox_max: int = DEFAULT_OUTBOX_MAX

    @property
    def broker(self) -> str:
        """``host:port`` (``[v6]:port``), for logs and the dashboard."""
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
    #: ``[mqtt]``; None: no MQTT.
    mqtt: MqttSettings | None = None

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
