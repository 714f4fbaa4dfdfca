"""The configuration: one TOML file, checked thoroughly, turned into frozen dataclasses.

The schema (``docs/example.toml`` is a complete, commented example)::

    [logger]                      # optional table
    database = "..."              # SQLite file (relative: to this file) or postgresql://...
    timezone = "Europe/Amsterdam" # days and months are local; default: the system's zone
    commit_interval = 300         # seconds between database commits, 1..86400
    journal = "..."               # crash journal; default: next to the database
    raw_retention_days = 0        # 0 keeps the 10 s history forever

    [web]                         # optional table
    listen = "127.0.0.1:8080"     # host:port, [v6]:port; loopback by default
    public_read = false

    [modules.<name>]              # one table per module, at least one
    port = "auto"                 # or a device path, or a pyserial URL
    model = 5                     # required: 2 or 5
    framing = "7E1"
    thresholds = "T2=40;"         # optional, sent at the module's next start-up

    [modules.<name>.meters.<register>]   # at least one per module
    kind = "electricity"          # required: electricity, gas, water, heat, other
    pulses_per_unit = 1000        # required, > 0
    unit = "kWh"                  # default from the kind
    name = "..."                  # default: the key
    reading = 12345.678           # optional, together with reading_at (with offset)
    reading_at = 2026-11-01T12:00:00+01:00
    enabled = true
    key = "electricity"           # default "<name>.<register>"

Every problem raises :class:`~s0pcm.errors.ConfigError` naming the file, the dotted key and the
line where the key (or, for a missing key, its table) is written. ``tomllib`` gives values but no
positions, so :class:`_Locator` scans the raw text (which ``tomllib`` has already accepted) for the
line of every table header, key and inline-table key.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..errors import ConfigError, InputFileError, ProtocolError
from ..link.events import FRAMING_7E1, Framing
from ..meters import KINDS, Kind, Meter
from ..protocol import Model, Thresholds, parse_thresholds

__all__ = [
    "DEFAULT_COMMIT_INTERVAL",
    "DEFAULT_DATABASE",
    "DEFAULT_LISTEN",
    "Config",
    "LoggerSettings",
    "ModuleSettings",
    "WebSettings",
    "load_config",
    "parse_config",
]

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

_ROOT_KEYS: Final = ("logger", "web", "modules")
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
#: Connections the server keeps at once unless told otherwise: plenty for a household's
#: browsers, few enough that a flood cannot take the logger's file descriptors.
DEFAULT_MAX_CONNECTIONS: Final = 64
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
)

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
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
_POSTGRESQL_SCHEMES: Final = ("postgresql://", "postgres://")
#: Spellings of a unit we take for the canonical one (besides case): nobody types ``m³``.
_UNIT_ALIASES: Final = {"m3": "m³", "m^3": "m³", "l": "L"}

KeyPath = tuple[str, ...]


# --- the result ----------------------------------------------------------------------------------


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
        return self.database.startswith(_POSTGRESQL_SCHEMES)

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


# --- entry points --------------------------------------------------------------------------------


def read_text(
    path: str | os.PathLike[str], *, what: str, error: type[InputFileError] = ConfigError
) -> tuple[str, str]:
    """``(name, text)`` of a UTF-8 file the user gave; errors (``error``) name the file (and
    the line of a bad byte). ``what`` says what the file is, for the message."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as e:
        raise error(f"cannot read the {what}: {e.strerror or e}", file=name) from e
    try:
        return name, data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error("is not UTF-8 text", file=name, line=line) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the configuration file at ``path``."""
    name, text = read_text(path, what="configuration")
    return parse_config(text, path=name)


def parse_config(text: str, *, path: str = "<string>") -> Config:
    """Check configuration text; ``path`` names it in errors and anchors relative paths.

    Relative paths in the text are relative to the directory of ``path``, or to the working
    directory when ``path`` is not a file name (``<string>``).
    """
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _syntax_error(e, text, path) from None
    base = Path.cwd() if path.startswith("<") else Path(os.path.abspath(path)).parent
    return _Checker(path, _Locator(text), base).config(data)


# --- where keys are written ----------------------------------------------------------------------


class _Stop(Exception):
    """The locator met text it does not follow; it keeps what it found so far."""


_ESCAPES: Final = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "e": "\x1b"}


class _Locator:
    """The line of every table header, key and inline-table key of TOML text.

    Only runs on text ``tomllib`` accepted, so it need not diagnose anything: it follows the
    structure (headers, dotted and quoted keys, strings of all four kinds, arrays and inline tables
    spanning lines) and records the first line where each key path appears, including the tables
    a header or dotted key defines implicitly. Keys inside arrays are not recorded.
    """

    def __init__(self, text: str, *, scan: bool = True) -> None:
        self.text = text
        self.pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[KeyPath, int] = {}
        if scan:
            with contextlib.suppress(_Stop, IndexError, ValueError):
                self._document()

    @classmethod
    def key_of(cls, fragment: str, *, then: str = "") -> KeyPath | None:
        """The (dotted) key that ``fragment`` is, up to ``then``; None if it is not one."""
        locator = cls(fragment, scan=False)
        try:
            key = locator._key()
        except (_Stop, IndexError, ValueError):
            return None
        rest = fragment[locator.pos :]
        return key if (rest.startswith(then) if then else not rest) else None

    def line(self, path: KeyPath) -> int | None:
        """Line of ``path``, or of the nearest enclosing table that is written down."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    # -- structure ---------------------------------------------------------------------------

    def _record(self, path: KeyPath, pos: int) -> None:
        line = self.line_at(pos)
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], line)

    def _document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.text[start] == "[":
                double = self.text.startswith("[[", start)
                self.pos += 2 if double else 1
                table = self._key()
                self._skip_blank()
                self._expect("]]" if double else "]")
                self._record(table, start)
            else:
                key = table + self._key()
                self._record(key, start)
                self._skip_blank()
                self._expect("=")
                self._skip_blank()
                self._value(key)
            self._skip_blank()
            if self.pos == start:
                raise _Stop

    def _expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _Stop
        self.pos += len(token)

    def _skip_blank(self, *, newlines: bool = False) -> None:
        """Skip spaces, tabs and a comment; with ``newlines``, also line ends and blank lines."""
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self.pos += 1
            elif c == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _key(self) -> KeyPath:
        parts = []
        while True:
            self._skip_blank()
            parts.append(self._simple_key())
            self._skip_blank()
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def _simple_key(self) -> str:
        text = self.text
        if text.startswith('"', self.pos):
            return self._basic_string()
        if text.startswith("'", self.pos):
            end = text.index("'", self.pos + 1)
            key = text[self.pos + 1 : end]
            self.pos = end + 1
            return key
        m = _BARE_KEY.match(text, self.pos)
        if m is None:
            raise _Stop
        self.pos = m.end()
        return m.group()

    def _basic_string(self) -> str:
        text = self.text
        self.pos += 1
        out: list[str] = []
        while True:
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\":
                e = text[self.pos + 1]
                if e in "uU":
                    size = 4 if e == "u" else 8
                    out.append(chr(int(text[self.pos + 2 : self.pos + 2 + size], 16)))
                    self.pos += 2 + size
                else:
                    out.append(_ESCAPES.get(e, e))
                    self.pos += 2
            else:
                out.append(c)
                self.pos += 1

    def _value(self, path: KeyPath | None) -> None:
        """Skip a value; record the keys of inline tables under ``path`` (None: record nothing)."""
        text = self.text
        if text.startswith(('"""', "'''"), self.pos):
            self._multiline_string()
        elif text.startswith('"', self.pos):
            self._basic_string()
        elif text.startswith("'", self.pos):
            self.pos = text.index("'", self.pos + 1) + 1
        elif text.startswith("[", self.pos):
            self._array()
        elif text.startswith("{", self.pos):
            self._inline_table(path)
        else:
            # Numbers, booleans, dates and times (which may hold one space): up to a delimiter.
            while self.pos < len(text) and text[self.pos] not in ",]}#\r\n":
                self.pos += 1

    def _multiline_string(self) -> None:
        text = self.text
        quote = text[self.pos]
        p = self.pos + 3
        while True:
            if quote == '"' and text[p] == "\\":
                p += 2
            elif text.startswith(quote * 3, p):
                p += 3
                # Up to two more quotes right before the delimiter belong to the string.
                for _ in range(2):
                    if text.startswith(quote, p):
                        p += 1
                self.pos = p
                return
            elif p >= len(text):
                raise _Stop
            else:
                p += 1

    def _array(self) -> None:
        self.pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return
            start = self.pos
            self._value(None)
            self._skip_blank(newlines=True)
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.pos == start:
                raise _Stop

    def _inline_table(self, path: KeyPath | None) -> None:
        self.pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            start = self.pos
            key = self._key()
            if path is not None:
                self._record(path + key, start)
            self._skip_blank()
            self._expect("=")
            self._skip_blank()
            self._value(None if path is None else path + key)
            if self.pos == start:
                raise _Stop


def _dotted(path: KeyPath) -> str:
    """``modules."meter kast".port``: TOML's own spelling of a key path."""
    return ".".join(
        p if _BARE_KEY.fullmatch(p) else json.dumps(p, ensure_ascii=False) for p in path
    )


_SYNTAX_AT: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_SYNTAX_END: Final = re.compile(r"\s*\(at end of document\)\s*$")
_HEADER_LINE: Final = re.compile(r"\s*\[")


def _syntax_error(e: tomllib.TOMLDecodeError, text: str, path: str) -> ConfigError:
    """A TOML syntax error with the file, the line and (best effort) the key being written."""
    message = str(e)
    line: int | None = None
    m = _SYNTAX_AT.search(message)
    if m is not None:
        line = int(m.group(1))
        message = f"{message[: m.start()]} (column {m.group(2)})"
    elif (m := _SYNTAX_END.search(message)) is not None:
        line = max(1, len(text.splitlines()))
        message = f"{message[: m.start()]} at the end of the file"
    key = _key_on_line(text, line)
    return ConfigError(f"TOML syntax error: {message}", file=path, key=key, line=line)


def _key_on_line(text: str, line: int | None) -> str | None:
    """The key a line of broken TOML writes: the last table header above it plus its key."""
    if line is None:
        return None
    lines = text.splitlines()[:line]
    if not lines:
        return None

    table: KeyPath = ()
    for above in reversed(lines[:-1]):
        if _HEADER_LINE.match(above):
            table = _Locator.key_of(above.strip().lstrip("["), then="]") or ()
            break
    own = lines[-1]
    if _HEADER_LINE.match(own):
        found = _Locator.key_of(own.strip().lstrip("["), then="]")
        return _dotted(found) if found else None
    if "=" not in own:
        return _dotted(table) if table else None
    found = _Locator.key_of(own.split("=", 1)[0].strip())
    path = table + found if found else table
    return _dotted(path) if path else None


# --- checking ------------------------------------------------------------------------------------


def _describe(value: object) -> str:
    """A value as the user wrote it, with its TOML type, for "got ..." in messages."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, datetime):
        kind = "date-time" if value.tzinfo is not None else "local date-time (no offset)"
        return f"the {kind} {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, time):
        return f"the time {value.isoformat()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)  # pragma: no cover - tomllib produces nothing else


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1)
        close = [c for c in choices if c.lower() in close][:1]
    return f"; did you mean {_quote(close[0])}?" if close else ""


class _Checker:
    """Turns the parsed document into a :class:`Config`, or raises the first problem found."""

    def __init__(self, file: str, locator: _Locator, base: Path) -> None:
        self.file = file
        self.locator = locator
        self.base = base
        #: Meter keys seen so far, and the meter table that uses each.
        self.meter_keys: dict[str, KeyPath] = {}

    # -- helpers -----------------------------------------------------------------------------

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            message, file=self.file, key=_dotted(path) or None, line=self.locator.line(path)
        )

    def table(self, value: object, path: KeyPath, known: Collection[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, got {_describe(value)}")
        for key in value:
            if key not in known:
                hint = _suggest(key, known) or f" (known keys: {', '.join(known)})"
                raise self.error((*path, key), f"unknown key {_quote(key)}{hint}")
        return value

    def string(self, table: dict[str, Any], path: KeyPath, key: str) -> str | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, str):
            raise self.error((*path, key), f"must be a string, got {_describe(value)}")
        if not value.strip():
            raise self.error((*path, key), "must not be empty")
        return value.strip()

    def number(self, table: dict[str, Any], path: KeyPath, key: str, what: str) -> float | None:
        """A finite int or float (a bool is not a number); ``what`` says what is wanted."""
        if key not in table:
            return None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error((*path, key), f"must be {what}, got {_describe(value)}")
        if not math.isfinite(value):
            raise self.error((*path, key), f"must be {what}, got {_describe(value)}")
        return float(value)

    def strings(self, table: dict[str, Any], path: KeyPath, key: str) -> tuple[str, ...]:
        """An optional array of non-empty strings (a lone string is taken as one)."""
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error((*path, key), f"must be an array of strings, got {_describe(value)}")
        return tuple(v.strip() for v in value)

    def integer(self, table: dict[str, Any], path: KeyPath, key: str, what: str) -> int | None:
        if key not in table:
            return None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error((*path, key), f"must be {what}, got {_describe(value)}")
        return value

    def boolean(self, table: dict[str, Any], path: KeyPath, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.error((*path, key), f"must be true or false, got {_describe(value)}")
        return value

    def local_path(self, text: str) -> Path:
        return self.base / os.path.expanduser(text)

    # -- the document ------------------------------------------------------------------------

    def config(self, data: dict[str, Any]) -> Config:
        self.table(data, (), _ROOT_KEYS)
        logger = self.logger(data.get("logger", {}), ("logger",))
        web = self.web(data.get("web", {}), ("web",))
        modules = self.modules(data.get("modules"), ("modules",))
        return Config(self.file, logger, web, modules)

    def logger(self, value: object, path: KeyPath) -> LoggerSettings:
        table = self.table(value, path, _LOGGER_KEYS)

        database_text = self.string(table, path, "database") or DEFAULT_DATABASE
        if database_text.startswith(_POSTGRESQL_SCHEMES):
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
        timezone = _system_timezone() if zone is None else self.zone(zone, (*path, "timezone"))

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
            hint = _suggest(name, available_timezones())
            raise self.error(
                path, f"unknown time zone {_quote(name)}{hint or ' (e.g. Europe/Amsterdam)'}"
            ) from None

    def web(self, value: object, path: KeyPath) -> WebSettings:
        table = self.table(value, path, _WEB_KEYS)
        listen = table.get("listen", DEFAULT_LISTEN)
        where = (*path, "listen")
        wanted = 'must be "host:port", e.g. "127.0.0.1:8080", "0.0.0.0:8080" or "[::1]:8080"'
        if not isinstance(listen, str):
            raise self.error(where, f"{wanted}; got {_describe(listen)}")
        m = _LISTEN.fullmatch(listen.strip())
        if m is None:
            raise self.error(where, f"{wanted}; got {_describe(listen)}")
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
            raise self.error(path, f"must be a table of named modules, got {_describe(value)}")
        if not value:
            raise self.error(path, f"no modules configured: {example}")

        modules = []
        ports: dict[str, str] = {}  # normalised port -> module that uses it
        for name, table in value.items():
            where = (*path, name)
            if not _MODULE_NAME.fullmatch(name):
                raise self.error(
                    where,
                    f"module name {_quote(name)} may only use letters, digits, '_' and '-' "
                    "(at most 32, not starting with '_')",
                )
            module = self.module(name, table, where)
            port = "auto" if module.port is None else _normal_port(module.port)
            if port in ports:
                if module.port is None:
                    problem = (
                        f'port "auto" is already used by module {_quote(ports[port])}: with more '
                        "than one module, give each its port (see /dev/serial/by-id/)"
                    )
                else:
                    problem = (
                        f"port {_quote(module.port)} is already used by module "
                        f"{_quote(ports[port])}"
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
                f"got {_describe(port_text)}",
            )

        if "model" not in table:
            raise self.error(
                (*path, "model"), "missing: the module's model, 2 (S0PCM-2) or 5 (S0PCM-5)"
            )
        raw_model = table["model"]
        if type(raw_model) is not int or raw_model not in (2, 5):
            raise self.error(
                (*path, "model"), f"must be 2 (S0PCM-2) or 5 (S0PCM-5), got {_describe(raw_model)}"
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
                    f'must be a threshold command like "T1=40;T2=40;", got {_describe(raw)}',
                )
            try:
                thresholds = parse_thresholds(raw, model=model)
            except ProtocolError as e:
                raise self.error((*path, "thresholds"), f"{e.reason} in {_quote(raw)}") from None

        meters_value = table.get("meters")
        meters_path = (*path, "meters")
        example = f"add e.g. [{_dotted((*meters_path, '1'))}] with kind and pulses_per_unit"
        if meters_value is None:
            raise self.error(meters_path, f"module {_quote(name)} has no meters: {example}")
        if not isinstance(meters_value, dict):
            raise self.error(
                meters_path,
                f"must be a table of registers ([{_dotted(meters_path)}.<register>]), "
                f"got {_describe(meters_value)}",
            )
        if not meters_value:
            raise self.error(meters_path, f"module {_quote(name)} has no meters: {example}")
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
                f"[{_dotted(path[:-1])}.<register>]), got {_quote(register_text)}",
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
            hint = _suggest(kind_text, kinds) or f" (one of {', '.join(kinds)})"
            raise self.error((*path, "kind"), f"unknown kind {_quote(kind_text)}{hint}")
        kind = Kind(kind_text.lower())
        spec = KINDS[kind]

        unit = spec.unit
        if "unit" in table:
            raw_unit = table["unit"]
            if not isinstance(raw_unit, str):
                raise self.error((*path, "unit"), f"must be a string, got {_describe(raw_unit)}")
            unit = self.unit(kind, raw_unit.strip(), (*path, "unit"))

        ppu = self.number(table, path, "pulses_per_unit", "a number > 0")
        if ppu is None:
            raise self.error(
                (*path, "pulses_per_unit"),
                f"missing: the meter's pulses per {unit or 'unit'} (e.g. 1000 for 1000 imp/kWh)",
            )
        if ppu <= 0:
            raise self.error((*path, "pulses_per_unit"), f"must be a number > 0, got {ppu:g}")

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
                f"key {_quote(key)} may only use letters, digits, '_', '.' and '-', starting "
                "with a letter or digit (at most 64)",
            )
        if key in self.meter_keys:
            first = self.meter_keys[key]
            raise self.error(
                (*path, "key"),
                f"meter key {_quote(key)} is already used by [{_dotted(first)}] "
                f"(line {self.locator.line(first)}); keys must be unique",
            )
        self.meter_keys[key] = path
        name = self.string(table, path, "name") or key
        return Meter(key, name, module, register, kind, unit, ppu, reading, reading_at, enabled)

    def unit(self, kind: Kind, text: str, path: KeyPath) -> str:
        spec = KINDS[kind]
        if kind is Kind.OTHER:
            return text
        units = [u for u, _ in spec.units]
        wanted = _UNIT_ALIASES.get(text.lower(), text)
        for unit in units:
            if unit.lower() == wanted.lower():
                return unit
        hint = _suggest(text, units)
        raise self.error(
            path,
            f"{_quote(text)} is not a unit for {kind.value} meters (use {', '.join(units)}){hint}",
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
                    f"needs a time-zone offset ({example}, or Z for UTC), got {_describe(value)}",
                )
            return value.timestamp()
        if isinstance(value, str):
            raise self.error(
                where,
                f"must be a TOML date-time without quotes ({example}), got {_describe(value)}",
            )
        raise self.error(
            where, f"must be a date-time with offset ({example}), got {_describe(value)}"
        )


def _normal_port(port: str) -> str:
    """One spelling per device: a by-id link and the device it points to are the same port."""
    if "://" in port:
        return port
    return os.path.realpath(port)


def _system_timezone() -> ZoneInfo:
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
