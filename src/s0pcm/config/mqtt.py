"""``[mqtt]``: the broker, its login and TLS, the topics, the outbox's bound.

Apart from :mod:`.check` (which calls :func:`mqtt_settings`) because it is a schema of its own.
The password is read here, once, from exactly one place: ``password``, ``password_file`` (which
must be the owner's alone, like a TLS key) or ``$S0PCM_MQTT_PASSWORD`` when neither key is
given. Errors never quote a password.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .model import DEFAULT_OUTBOX_MAX, MQTT_PASSWORD_ENV, OUTBOX_MAX_RANGE, MqttSettings
from .toml_lines import KeyPath
from .values import TableReader, describe, quote

__all__ = ["mqtt_settings"]

MQTT_KEYS: Final = (
    "host",
    "port",
    "username",
    "password",
    "password_file",
    "tls",
    "ca_file",
    "tls_insecure",
    "cert_file",
    "key_file",
    "client_id",
    "base_topic",
    "discovery_prefix",
    "domoticz",
    "outbox_max",
)
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*"
)
#: Topic levels of our own: no wildcards, no empty level, nothing a broker treats specially.
_TOPIC: Final = re.compile(r"[^/+#$\x00][^/+#\x00]*(?:/[^/+#\x00]+)*")


def default_client_id() -> str:
    """``s0pcm-<hostname>``: one per machine, so two loggers do not take each other's session."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"s0pcm-{host}"


def mqtt_settings(reader: TableReader, value: object, path: KeyPath) -> MqttSettings:
    """The checked ``[mqtt]`` table (the first problem raised as a ConfigError)."""
    table = reader.table(value, path, MQTT_KEYS)
    host = reader.string(table, path, "host") or "localhost"
    if not _is_host(host):
        raise reader.error((*path, "host"), f"{quote(host)} is not a host name or IP address")
    tls = reader.boolean(table, path, "tls", default=False)
    port = reader.integer(table, path, "port", "a port number 1..65535")
    if port is None:
        port = 8883 if tls else 1883
    elif not 1 <= port <= 65535:
        raise reader.error((*path, "port"), f"must be 1..65535, got {port}")

    username = _text(reader, table, path, "username")
    password = _password(reader, table, path)
    if password is not None and username is None:
        raise reader.error(
            (*path, "password_file" if "password_file" in table else "password"),
            "a password needs a username (MQTT 3.1.1 sends none without one)",
        )

    files: dict[str, Path] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        text = reader.string(table, path, key)
        if text is None:
            continue
        if not tls:
            raise reader.error((*path, key), "needs tls = true")
        file = reader.local_path(text)
        try:
            with file.open("rb"):
                pass
        except OSError as e:
            raise reader.error((*path, key), f"cannot read {file}: {e.strerror}") from None
        if key == "key_file":
            _private(reader, file, (*path, key))
        files[key] = file
    if ("cert_file" in files) != ("key_file" in files):
        given = "cert_file" if "cert_file" in files else "key_file"
        missing = "key_file" if given == "cert_file" else "cert_file"
        raise reader.error((*path, given), f"needs {missing} too (a client certificate needs both)")
    insecure = reader.boolean(table, path, "tls_insecure", default=False)
    if insecure and not tls:
        raise reader.error((*path, "tls_insecure"), "needs tls = true")

    client_id = _text(reader, table, path, "client_id") or default_client_id()
    if len(client_id.encode()) > 65535 or any(c in client_id for c in "\x00+#/"):
        raise reader.error((*path, "client_id"), "must not contain '/', '+', '#' or NUL")
    base = _topic(reader, table, path, "base_topic", "s0pcm", empty_ok=False)
    prefix = _topic(reader, table, path, "discovery_prefix", "homeassistant", empty_ok=True)
    if prefix and base == prefix:
        raise reader.error((*path, "base_topic"), "must differ from discovery_prefix")
    domoticz = reader.boolean(table, path, "domoticz", default=False)

    low, high = OUTBOX_MAX_RANGE
    most = reader.integer(table, path, "outbox_max", f"a whole number {low}..{high}")
    if most is None:
        most = DEFAULT_OUTBOX_MAX
    elif not low <= most <= high:
        raise reader.error((*path, "outbox_max"), f"must be {low}..{high}, got {most}")
    return MqttSettings(
        host=host,
        port=port,
        client_id=client_id,
        username=username,
        password=password,
        tls=tls,
        ca_file=files.get("ca_file"),
        tls_insecure=insecure,
        cert_file=files.get("cert_file"),
        key_file=files.get("key_file"),
        base_topic=base,
        discovery_prefix=prefix,
        domoticz=domoticz,
        outbox_max=most,
    )


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host)) and not re.fullmatch(r"[0-9.]+", host)


def _text(reader: TableReader, table: dict[str, Any], path: KeyPath, key: str) -> str | None:
    """An optional string taken as written (a password may start or end with a space)."""
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, str):
        raise reader.error((*path, key), f"must be a string, got {describe(value)}")
    if not value:
        raise reader.error((*path, key), "must not be empty")
    return value


def _password(reader: TableReader, table: dict[str, Any], path: KeyPath) -> str | None:
    if "password" in table and "password_file" in table:
        raise reader.error((*path, "password_file"), "give password or password_file, not both")
    if "password" in table:
        value = table["password"]
        if not isinstance(value, str) or not value:
            # Never the value: it may be the password with a wrong type.
            raise reader.error((*path, "password"), "must be a non-empty string")
        return value
    text = reader.string(table, path, "password_file")
    if text is None:
        return _from_env(os.environ)
    file = reader.local_path(text)
    where = (*path, "password_file")
    _private(reader, file, where)
    try:
        data = file.read_bytes()
    except OSError as e:
        raise reader.error(where, f"cannot read {file}: {e.strerror}") from None
    try:
        password = data.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise reader.error(where, f"{file} is not UTF-8 text") from None
    if not password or "\n" in password:
        raise reader.error(where, f"{file} must hold the password alone, on one line")
    return password


def _from_env(environ: Mapping[str, str]) -> str | None:
    return environ.get(MQTT_PASSWORD_ENV) or None


def _private(reader: TableReader, file: Path, where: KeyPath) -> None:
    """A secret file that another user can read is refused, not used: the secret may have
    leaked, and the owner should know (``chmod 600``)."""
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError as e:
        raise reader.error(where, f"cannot read {file}: {e.strerror}") from None
    if mode & 0o077:
        raise reader.error(
            where,
            f"{file} is open to group or others (mode {mode:04o}): it holds a secret; "
            f"make it the owner's alone (chmod 600 {file})",
        )


def _topic(
    reader: TableReader,
    table: dict[str, Any],
    path: KeyPath,
    key: str,
    default: str,
    *,
    empty_ok: bool,
) -> str:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, str):
        raise reader.error((*path, key), f"must be a string, got {describe(value)}")
    if value == "" and empty_ok:
        return ""
    if not _TOPIC.fullmatch(value) or len(value.encode()) > 1000:
        raise reader.error(
            (*path, key),
            f"{quote(value)} is not a topic prefix: levels separated by '/', no empty level, "
            "no '+', '#' or leading '$'" + (', or "" to turn it off' if empty_ok else ""),
        )
    return value
