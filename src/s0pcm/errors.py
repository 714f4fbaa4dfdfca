"""One exception hierarchy for the whole package.

Every error carries what a user needs to fix the problem (the raw line and the reason, the file and
line of a bad setting, the port that failed), and builds its own message from it, so callers never
format error text themselves.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

__all__ = [
    "AlreadyRunning",
    "CaptureError",
    "CodecError",
    "ConfigError",
    "InputFileError",
    "LegacyFileError",
    "LinkError",
    "ProtocolError",
    "ReadingExists",
    "S0pcmError",
    "StoreError",
    "TariffError",
]


class S0pcmError(Exception):
    """Base of every error raised on purpose by s0pcm."""


class ProtocolError(S0pcmError):
    """A line from the module (or a threshold command) that is not valid.

    `raw` is the offending text as received (after 7-bit masking), `reason` says what is wrong in
    words a user can act on. A reader logs it, counts it and carries on: one bad line never stops
    the reader and is never taken as a zero.
    """

    def __init__(self, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"{reason}: {raw!r}")


class InputFileError(S0pcmError):
    """A file a user gave that cannot be used: names the file, the key and the line where known.

    The base of the configuration's, a tariff document's, a capture's and an older reader's
    file errors, so a command reports them all alike.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        where = ""
        if file is not None:
            where = file if line is None else f"{file}:{line}"
        if key is not None:
            where = f"{where} [{key}]" if where else f"[{key}]"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(InputFileError):
    """A setting that cannot be used (the configuration file, or a command-line value)."""


class CaptureError(InputFileError):
    """A capture file (``import-capture``) with a line that is not a capture line."""


class LegacyFileError(InputFileError):
    """An older reader's measurement file (``import-legacy``) that cannot be read."""


class TariffError(InputFileError, ValueError):
    """A tariff document that cannot be used: ``field`` is the path of the offending value
    (``tariffs[0].periods[1].start``), so an editor can point at it."""

    def __init__(self, field: str, message: str, *, file: str | None = None) -> None:
        super().__init__(message, file=file, key=field or None)
        self.field = field
        if file is None:  # the dashboard shows the path as it is, not as a key in brackets
            self.args = (f"{field}: {message}" if field else message,)

    def __str__(self) -> str:
        return str(self.args[0])


class CodecError(S0pcmError, ValueError):
    """A stored blob that is not a valid hour of slots (the database is damaged)."""


class LinkError(S0pcmError):
    """The serial port cannot be found or opened."""

    def __init__(self, port: str | None, reason: str) -> None:
        self.port = port
        self.reason = reason
        super().__init__(f"{port or '(auto)'}: {reason}")


class AlreadyRunning(S0pcmError):
    """Another logger writes this store (or this journal): names what and who (pid, host).

    Two loggers on one store would count the same pulses twice; the second stops at once.
    """

    def __init__(self, what: str, holder: str) -> None:
        self.what = what
        self.holder = holder
        super().__init__(
            f"{what} is in use by another s0pcm logger ({holder}); stop that one first "
            "(serve, status, check and export work beside it)"
        )


class StoreError(S0pcmError):
    """The history database cannot be opened or used: names the database and the reason.

    ``database`` is a path or a URL; a password in the URL (``user:password@`` or
    ``?password=``) is replaced by ``***`` in the attribute, in the reason and in the message, so
    they are safe for logs and for the dashboard.
    """

    def __init__(self, database: str, reason: str) -> None:
        self.database, secrets = _redact_url(database)
        for secret in sorted(secrets, key=len, reverse=True):
            reason = reason.replace(secret, "***")
        self.reason = reason
        super().__init__(f"{self.database}: {self.reason}")


def redact(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for logs and messages)."""
    return _redact_url(url)[0]


def _redact_url(url: str) -> tuple[str, set[str]]:
    """``url`` with its passwords replaced by ``***``, and the passwords (raw and decoded)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, set()
    secrets: set[str] = set()
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and password:
        secrets.add(password)
        authority = f"{user}:***@{host}"
    parts = []
    for part in tail.split("&"):
        key, eq, value = part.partition("=")
        if eq and value and key.rsplit("?", 1)[-1].lower() == "password":
            secrets.add(value)
            part = f"{key}=***"
        parts.append(part)
    secrets |= {unquote(s) for s in secrets}
    return f"{scheme}://{authority}{slash}{'&'.join(parts)}", secrets


class ReadingExists(S0pcmError):
    """A reading is set already at the moment of a new one: which one holds would be a guess."""

    def __init__(self, meter: str, at: float) -> None:
        self.meter = meter
        self.at = at
        super().__init__(f"{meter} already has a reading at {time.ctime(at)}")


class CannotUndo(S0pcmError):
    """A reading that cannot be taken back: none at that moment, or one that is not a plain
    correction (the first reading, a replacement or a change of constant: removing those
    would re-value what was counted, and move what the energy dashboard follows)."""
