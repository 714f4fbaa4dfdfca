"""The schema: a parsed TOML document checked key by key and turned into a :class:`Config`.

The first problem found is raised as a ConfigError naming the file, the dotted key and its line
(or, for a missing key, its table's). Defaults are filled in here: the database and journal
paths, the system's time zone, the listen address.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..errors import ConfigError, ProtocolError
from ..link.events import FRAMING_7E1, Framing
from ..meters import KINDS, Direction, Kind, Meter, constant_problem
from ..protocol import Model, parse_thresholds
from .model import (
    COMMIT_INTERVAL_MAX,
    COMMIT_INTERVAL_MIN,
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_DATABASE,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POSTGRESQL_JOURNAL,
    POSTGRESQL_SCHEMES,
    Config,
    LoggerSettings,
    ModuleSettings,
    WebSettings,
)
from .mqtt import mqtt_settings
from .system import normal_port, system_timezone
from .toml_lines import KeyPath, Locator, dotted
from .values import TableReader, describe, quote, suggest

_ROOT_KEYS: Final = ("logger", "web", "modules", "mqtt")
_LOGGER_KEYS: Final = ("database", "timezone", "commit_interval", "journal", "raw_retention_days")
_WEB_KEYS: Final = (
    "listen",
    "public_read",
    "allowed_hosts",
    "trusted_proxies",
    "tls_certificate",
    "tls_key",
    "max_connections",
)
_MODULE_KEYS: Final = ("port", "model", "framing", "thresholds", "meters")
_METER_KEYS: Final = (
    "name",
    "kind",
    "unit",
    "pulses_per_unit",
    "reading",
    "reading_at",
    "enabled",
    "key",
    "domoticz_idx",
    "direction",
)

#: Not starting with "_": the store keeps each module's state under its name, beside its own
#: documents ``_auth``, ``_meters``, ``_daemon``...
_MODULE_NAME: Final = re.compile(r"[A-Za-z0-9-][A-Za-z0-9_-]{0,31}")
_METER_KEY: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REGISTER: Final = re.compile(r"[1-9][0-9]{0,2}")
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_LISTEN: Final = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")
#: Spellings of a unit we take for the canonical one (besides case): nobody types ``m³``.
_UNIT_ALIASES: Final = {"m3": "m³", "m^3": "m³", "l": "L"}


class Checker(TableReader):
    """Turns the parsed document into a :class:`Config`, or raises the first problem found."""

    def __init__(self, file: str, locator: Locator, base: Path) -> None:
        super().__init__(file, locator, base)
        #: Meter keys seen so far, and the meter table that uses each.
        self.meter_keys: dict[str, KeyPath] = {}
        #: Domoticz devices (idx) seen so far, and the meter table that uses each.
        self.domoticz: dict[int, KeyPath] = {}

    def config(self, data: dict[str, Any]) -> Config:
        self.table(data, (), _ROOT_KEYS)
        logger = self.logger(data.get("logger", {}), ("logger",))
        web = self.web(data.get("web", {}), ("web",))
        modules = self.modules(data.get("modules"), ("modules",))
        mqtt = None if "mqtt" not in data else mqtt_settings(self, data["mqtt"], ("mqtt",))
        return Config(self.file, logger, web, modules, mqtt)

    def logger(self, value: object, path: KeyPath) -> LoggerSettings:
        table = self.table(value, path, _LOGGER_KEYS)

        database_text = self.string(table, path, "database") or DEFAULT_DATABASE
        if database_text.startswith(POSTGRESQL_SCHEMES):
            database = database_text
            database_file: Path | None = None
        elif "://" in database_text:
            scheme = database_text.split("://", 1)[0]
            raise self.error(
                (*path, "database"),
                f"{scheme}:// databases are not supported: give an SQLite file or a "
                "postgresql:// URL",
            )
        else:
            database_file = self.local_path(database_text)
            database = str(database_file)

        zone = self.string(table, path, "timezone")
        timezone = system_timezone() if zone is None else self.zone(zone, (*path, "timezone"))

        interval = self.number(
            table,
            path,
            "commit_interval",
            f"a number of seconds, {COMMIT_INTERVAL_MIN:g}..{COMMIT_INTERVAL_MAX:.0f}",
        )
        if interval is None:
            interval = DEFAULT_COMMIT_INTERVAL
        elif not COMMIT_INTERVAL_MIN <= interval <= COMMIT_INTERVAL_MAX:
            raise self.error(
                (*path, "commit_interval"),
                f"must be {COMMIT_INTERVAL_MIN:g}..{COMMIT_INTERVAL_MAX:.0f} seconds, "
                f"got {interval:g}",
            )

        journal_text = self.string(table, path, "journal")
        if journal_text is not None:
            journal = self.local_path(journal_text)
        elif database_file is not None:
            journal = database_file.with_name(database_file.stem + ".journal")
            if journal == database_file:
                journal = database_file.with_name(database_file.name + ".journal")
        else:
            journal = Path(DEFAULT_POSTGRESQL_JOURNAL)
        if journal == database_file:
            raise self.error((*path, "journal"), "must not be the database file itself")

        retention = self.integer(table, path, "raw_retention_days", "a whole number of days >= 0")
        if retention is None:
            retention = 0
        elif retention < 0:
            raise self.error(
                (*path, "raw_retention_days"), f"must be >= 0 (0 keeps forever), got {retention}"
            )
        return LoggerSettings(database, timezone, interval, journal, retention)

    def zone(self, name: str, path: KeyPath) -> ZoneInfo:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            hint = suggest(name, available_timezones())
            raise self.error(
                path, f"unknown time zone {quote(name)}{hint or ' (e.g. Europe/Amsterdam)'}"
            ) from None

    def web(self, value: object, path: KeyPath) -> WebSettings:
        table = self.table(value, path, _WEB_KEYS)
        listen = table.get("listen", DEFAULT_LISTEN)
        where = (*path, "listen")
        wanted = 'must be "host:port", e.g. "127.0.0.1:8080", "0.0.0.0:8080" or "[::1]:8080"'
        if not isinstance(listen, str):
            raise self.error(where, f"{wanted}; got {describe(listen)}")
        m = _LISTEN.fullmatch(listen.strip())
        if m is None:
            raise self.error(where, f"{wanted}; got {describe(listen)}")
        port = int(m.group("port"))
        if not 1 <= port <= 65535:
            raise self.error(where, f"port must be 1..65535, got {port}")
        if m.group("v6") is not None:
            host = m.group("v6")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise self.error(where, f"{host!r} in brackets is not an IPv6 address") from None
        else:
            host = m.group("host")
            if not _HOSTNAME.fullmatch(host):
                raise self.error(where, f"{wanted}; {host!r} is not a host name or address")
            if re.fullmatch(r"[0-9.]+", host):
                try:
                    ipaddress.IPv4Address(host)
                except ValueError:
                    raise self.error(where, f"{host!r} is not an IPv4 address") from None
        public = self.boolean(table, path, "public_read", default=False)
        hosts = self.strings(table, path, "allowed_hosts")
        for n, name in enumerate(hosts):
            bare = name.removeprefix("*.") if name.startswith("*.") else name
            if not _HOSTNAME.fullmatch(bare):
                raise self.error(
                    (*path, "allowed_hosts"),
                    f"item {n + 1}: {name!r} is not a host name (or *.domain)",
                )
        proxies = self.strings(table, path, "trusted_proxies")
        networks = []
        for n, proxy in enumerate(proxies):
            try:
                # uvicorn parses strictly: "192.168.1.5/24" would be a name never matched.
                networks.append(str(ipaddress.ip_network(proxy, strict=False)))
            except ValueError:
                raise self.error(
                    (*path, "trusted_proxies"),
                    f"item {n + 1}: {proxy!r} is not an IP address or network (e.g. 127.0.0.1)",
                ) from None
        tls: dict[str, Path] = {}
        for key in ("tls_certificate", "tls_key"):
            text = self.string(table, path, key)
            if text is None:
                continue
            file = self.local_path(text)
            try:
                with file.open("rb"):
                    pass
            except OSError as e:
                raise self.error((*path, key), f"cannot read {file}: {e.strerror}") from None
            tls[key] = file
        if len(tls) == 1:
            missing = "tls_key" if "tls_certificate" in tls else "tls_certificate"
            raise self.error((*path, next(iter(tls))), f"needs {missing} too (HTTPS needs both)")
        most = self.integer(table, path, "max_connections", "a whole number from 4 to 10000")
        if most is not None and not 4 <= most <= 10_000:
            raise self.error((*path, "max_connections"), f"must be 4..10000, got {most}")
        return WebSettings(
            host,
            port,
            public,
            allowed_hosts=tuple(h.lower() for h in hosts),
            trusted_proxies=tuple(networks),
            tls_certificate=tls.get("tls_certificate"),
            tls_key=tls.get("tls_key"),
            max_connections=DEFAULT_MAX_CONNECTIONS if most is None else most,
        )

    def modules(self, value: object, path: KeyPath) -> tuple[ModuleSettings, ...]:
        example = (
            "add one, e.g. [modules.meterkast] with model = 5 and a [modules.meterkast.meters.1]"
        )
        if value is None:
            raise self.error(path, f"no modules configured: {example}")
        if isinstance(value, list):
            raise self.error(
                path, "must be a table of named modules ([modules.<name>]), not an array ([[...]])"
            )
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table of named modules, got {describe(value)}")
        if not value:
            raise self.error(path, f"no modules configured: {example}")

        modules = []
        ports: dict[str, str] = {}  # normalised port -> module that uses it
        for name, table in value.items():
            where = (*path, name)
            if not _MODULE_NAME.fullmatch(name):
                raise self.error(
                    where,
                    f"module name {quote(name)} may only use letters, digits, '_' and '-' "
                    "(at most 32, not starting with '_')",
                )
            module = self.module(name, table, where)
            port = "auto" if module.port is None else normal_port(module.port)
            if port in ports:
                if module.port is None:
                    problem = (
                        f'port "auto" is already used by module {quote(ports[port])}: with more '
                        "than one module, give each its port (see /dev/serial/by-id/)"
                    )
                else:
                    problem = (
                        f"port {quote(module.port)} is already used by module {quote(ports[port])}"
                    )
                raise self.error((*where, "port"), problem)
            ports[port] = name
            modules.append(module)
        return tuple(modules)

    def module(self, name: str, value: object, path: KeyPath) -> ModuleSettings:
        table = self.table(value, path, _MODULE_KEYS)

        port_text = self.string(table, path, "port") or "auto"
        port: str | None
        if port_text.lower() == "auto":
            port = None
        elif "://" in port_text or os.path.isabs(port_text):
            port = port_text
        else:
            raise self.error(
                (*path, "port"),
                f'must be "auto", a device path like "/dev/ttyACM0" or a pyserial URL, '
                f"got {describe(port_text)}",
            )

        if "model" not in table:
            raise self.error(
                (*path, "model"), "missing: the module's model, 2 (S0PCM-2) or 5 (S0PCM-5)"
            )
        raw_model = table["model"]
        if type(raw_model) is not int or raw_model not in (2, 5):
            raise self.error(
                (*path, "model"), f"must be 2 (S0PCM-2) or 5 (S0PCM-5), got {describe(raw_model)}"
            )
        model = Model(raw_model)

        framing = FRAMING_7E1
        framing_text = self.string(table, path, "framing")
        if framing_text is not None:
            try:
                framing = Framing.parse(framing_text)
            except ConfigError as e:
                raise self.error((*path, "framing"), e.message) from None

        thresholds = None
        if "thresholds" in table:
            raw = table["thresholds"]
            if not isinstance(raw, str):
                raise self.error(
                    (*path, "thresholds"),
                    f'must be a threshold command like "T1=40;T2=40;", got {describe(raw)}',
                )
            try:
                thresholds = parse_thresholds(raw, model=model)
            except ProtocolError as e:
                raise self.error((*path, "thresholds"), f"{e.reason} in {quote(raw)}") from None

        meters_value = table.get("meters")
        meters_path = (*path, "meters")
        example = f"add e.g. [{dotted((*meters_path, '1'))}] with kind and pulses_per_unit"
        if meters_value is None:
            raise self.error(meters_path, f"module {quote(name)} has no meters: {example}")
        if not isinstance(meters_value, dict):
            raise self.error(
                meters_path,
                f"must be a table of registers ([{dotted(meters_path)}.<register>]), "
                f"got {describe(meters_value)}",
            )
        if not meters_value:
            raise self.error(meters_path, f"module {quote(name)} has no meters: {example}")
        meters = tuple(
            self.meter(name, model, register, meter, (*meters_path, register))
            for register, meter in meters_value.items()
        )
        return ModuleSettings(name, port, model, framing, thresholds, meters)

    def meter(
        self, module: str, model: Model, register_text: str, value: object, path: KeyPath
    ) -> Meter:
        if not _REGISTER.fullmatch(register_text):
            raise self.error(
                path,
                f"register must be a number 1..{model.value} (the register's table is "
                f"[{dotted(path[:-1])}.<register>]), got {quote(register_text)}",
            )
        register = int(register_text)
        if register > model.value:
            raise self.error(
                path,
                f"register {register} does not exist on the {model.label} "
                f"(registers 1..{model.value})",
            )
        table = self.table(value, path, _METER_KEYS)

        kind_text = self.string(table, path, "kind")
        kinds = [k.value for k in Kind]
        if kind_text is None:
            raise self.error((*path, "kind"), f"missing: the kind of meter ({', '.join(kinds)})")
        if kind_text.lower() not in kinds:
            hint = suggest(kind_text, kinds) or f" (one of {', '.join(kinds)})"
            raise self.error((*path, "kind"), f"unknown kind {quote(kind_text)}{hint}")
        kind = Kind(kind_text.lower())
        spec = KINDS[kind]

        unit = spec.unit
        if "unit" in table:
            raw_unit = table["unit"]
            if not isinstance(raw_unit, str):
                raise self.error((*path, "unit"), f"must be a string, got {describe(raw_unit)}")
            unit = self.unit(kind, raw_unit.strip(), (*path, "unit"))

        ppu = self.number(table, path, "pulses_per_unit", "a number > 0")
        if ppu is None:
            raise self.error(
                (*path, "pulses_per_unit"),
                f"missing: the meter's pulses per {unit or 'unit'} (e.g. 1000 for 1000 imp/kWh)",
            )
        problem = constant_problem(ppu)
        if problem is not None:
            raise self.error((*path, "pulses_per_unit"), problem)

        reading = self.number(table, path, "reading", "a number >= 0 (the meter's display)")
        if reading is not None and reading < 0:
            raise self.error((*path, "reading"), f"must be a number >= 0, got {reading:g}")
        reading_at = self.moment(table, path)
        if reading is not None and reading_at is None:
            raise self.error(
                (*path, "reading"),
                "reading needs reading_at, the moment the display showed it "
                "(e.g. reading_at = 2026-11-01T12:00:00+01:00)",
            )
        if reading_at is not None and reading is None:
            raise self.error(
                (*path, "reading_at"), "reading_at needs reading, what the display showed then"
            )

        enabled = self.boolean(table, path, "enabled", default=True)

        key = self.string(table, path, "key")
        if key is None:
            key = f"{module}.{register}"
        elif not _METER_KEY.fullmatch(key):
            raise self.error(
                (*path, "key"),
                f"key {quote(key)} may only use letters, digits, '_', '.' and '-', starting "
                "with a letter or digit (at most 64)",
            )
        if key in self.meter_keys:
            first = self.meter_keys[key]
            raise self.error(
                (*path, "key"),
                f"meter key {quote(key)} is already used by [{dotted(first)}] "
                f"(line {self.locator.line(first)}); keys must be unique",
            )
        self.meter_keys[key] = path
        name = self.string(table, path, "name") or key
        idx = self.domoticz_idx(table, path)
        direction = self.direction(table, path)
        return Meter(
            key, name, module, register, kind, unit, ppu, reading, reading_at, enabled, idx,
            direction,
        )  # fmt: skip

    def direction(self, table: dict[str, Any], path: KeyPath) -> Direction:
        """Consumption (the default) or production (a solar inverter, a grid-return meter)."""
        text = self.string(table, path, "direction")
        if text is None:
            return Direction.CONSUMPTION
        known = [d.value for d in Direction]
        if text.strip().lower() not in known:
            hint = suggest(text, known) or f" (one of {', '.join(known)})"
            raise self.error((*path, "direction"), f"unknown direction {quote(text)}{hint}")
        return Direction(text.strip().lower())

    def domoticz_idx(self, table: dict[str, Any], path: KeyPath) -> int | None:
        """A Domoticz device number, at most one meter each (two would overwrite each other)."""
        idx = self.integer(table, path, "domoticz_idx", "a Domoticz device number (idx) >= 1")
        if idx is None:
            return None
        where = (*path, "domoticz_idx")
        if idx < 1:
            raise self.error(where, f"must be a Domoticz device number (idx) >= 1, got {idx}")
        if idx in self.domoticz:
            first = self.domoticz[idx]
            raise self.error(
                where,
                f"Domoticz idx {idx} is already used by [{dotted(first)}] "
                f"(line {self.locator.line(first)}); one meter per Domoticz device",
            )
        self.domoticz[idx] = where
        return idx

    def unit(self, kind: Kind, text: str, path: KeyPath) -> str:
        spec = KINDS[kind]
        if kind is Kind.OTHER:
            return text
        units = [u for u, _ in spec.units]
        wanted = _UNIT_ALIASES.get(text.lower(), text)
        for unit in units:
            if unit.lower() == wanted.lower():
                return unit
        hint = suggest(text, units)
        raise self.error(
            path,
            f"{quote(text)} is not a unit for {kind.value} meters (use {', '.join(units)}){hint}",
        )

    def moment(self, table: dict[str, Any], path: KeyPath) -> float | None:
        if "reading_at" not in table:
            return None
        value = table["reading_at"]
        where = (*path, "reading_at")
        example = "e.g. reading_at = 2026-11-01T12:00:00+01:00"
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise self.error(
                    where,
                    f"needs a time-zone offset ({example}, or Z for UTC), got {describe(value)}",
                )
            return value.timestamp()
        if isinstance(value, str):
            raise self.error(
                where,
                f"must be a TOML date-time without quotes ({example}), got {describe(value)}",
            )
        raise self.error(
            where, f"must be a date-time with offset ({example}), got {describe(value)}"
        )
