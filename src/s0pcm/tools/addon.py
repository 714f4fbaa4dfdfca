"""The Home Assistant add-on's entry: the add-on's options and the Supervisor's MQTT service in,
our TOML configuration out, then ``s0pcm run``.

The Supervisor hands an add-on its options as ``/data/options.json``, checked against the
schema in ``addon/s0pcm/config.yaml`` for their types only, and the broker it brokers (the
Mosquitto add-on) on ``GET http://supervisor/services/mqtt``. The options are written as TOML
and that text goes through the configuration's own checker (a kind misspelt, a register the
model lacks, a reading without its moment), whose error is told by the option's name. The
mapping is Python rather than a bashio script so that it runs, and is tested, outside a
container::

    python -m s0pcm.tools.addon --options options.json --services mqtt.json --out s0pcm.toml \\
        --no-exec

A bad option ends the add-on with one line naming the option (``meters[2].kind: ...``), before
anything is written. The broker's password goes to a 0600 file that ``[mqtt] password_file``
names, never into the TOML, stdout or the log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config import parse_config
from ..errors import ConfigError, S0pcmError

__all__ = [
    "METER_KEYS",
    "MQTT_KEYS",
    "OPTION_KEYS",
    "OptionError",
    "apply_dashboard_password",
    "main",
    "render",
]

#: The options the entry reads, at the top, per meter and under ``mqtt``; a test holds
#: ``config.yaml``'s schema to exactly these.
OPTION_KEYS: Final = frozenset(
    {"device", "model", "thresholds", "timezone", "meters", "public_read", "allowed_hosts",
     "dashboard_password", "mqtt"}
)  # fmt: skip
METER_KEYS: Final = frozenset(
    {"register", "name", "kind", "pulses_per_unit", "unit", "reading", "reading_at", "enabled",
     "key", "domoticz_idx"}
)  # fmt: skip
MQTT_KEYS: Final = frozenset(
    {"host", "port", "username", "password", "base_topic", "discovery", "discovery_prefix",
     "domoticz"}
)  # fmt: skip

#: The one module an add-on reads; its name keys the history (``s0pcm.1``) until a meter has
#: its own ``key``, and the MQTT topics until the module has told its id.
MODULE: Final = "s0pcm"
#: The Supervisor's ingress proxy: the only client whose X-Forwarded-For is believed.
INGRESS_PROXY: Final = "172.30.32.2"
SUPERVISOR_MQTT: Final = "http://supervisor/services/mqtt"


class OptionError(S0pcmError):
    """An add-on option we cannot map; names the option as the add-on's page shows it."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"add-on option {option}: {problem}")


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``) are TOML's."""
    return json.dumps(value, ensure_ascii=False)


def _text(options: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional string option; blank counts as not given (the add-on page saves ``""``)."""
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OptionError(where, f"must be text, got {value!r}")
    return value.strip() or None


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise OptionError(where, f"must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise OptionError(where, f"must be a number, got {value!r}") from None


def _whole(value: object, where: str, *, low: int, high: int) -> int:
    number = _number(value, where)
    if not number.is_integer() or not low <= number <= high:
        raise OptionError(where, f"must be a whole number {low}..{high}, got {value!r}")
    return int(number)


def _value(value: object) -> str:
    """An option's value as TOML, whatever its type: the configuration's checker then says
    what is wrong with it (a kind misspelt, a constant of 0) and :func:`_option` names it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, int) or math.isfinite(value) else _toml(str(value))
    if isinstance(value, list):
        return f"[{', '.join(_value(v) for v in value)}]"
    return _toml(str(value).strip())


def _timezone(options: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """The option, else the zone Home Assistant gives every add-on in ``TZ`` (when it is one),
    else none: the system's."""
    zone = options.get("timezone")
    if zone is not None and str(zone).strip():
        return str(zone)
    zone = environ.get("TZ", "").strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return zone


def _meter(meter: object, n: int, seen: dict[int, int]) -> tuple[list[str], str | None]:
    """The ``[modules.s0pcm.meters.<register>]`` lines of the ``n``-th meter option, and its
    ``domoticz_idx`` line (an [mqtt] key, checked by the MQTT part)."""
    at = f"meters[{n}]"
    if not isinstance(meter, Mapping):
        raise OptionError(at, f"must be a meter (register, kind, pulses_per_unit), got {meter!r}")
    unknown = sorted(set(meter) - METER_KEYS)
    if unknown:
        raise OptionError(f"{at}.{unknown[0]}", f"unknown; one of {', '.join(sorted(METER_KEYS))}")
    for required in ("register", "kind", "pulses_per_unit"):
        if meter.get(required) in (None, ""):
            raise OptionError(f"{at}.{required}", "is required")
    # The checker holds the register to the model; a table name needs a number first.
    register = _whole(meter["register"], f"{at}.register", low=1, high=999)
    if register in seen:
        raise OptionError(
            f"{at}.register", f"register {register} is already meters[{seen[register]}]"
        )
    seen[register] = n

    lines = [f"[modules.{MODULE}.meters.{register}]"]
    for key in ("name", "kind", "unit", "pulses_per_unit", "reading", "enabled", "key"):
        value = meter.get(key)
        if value is not None and value != "":
            lines.append(f"{key} = {_value(value)}")
    reading_at = meter.get("reading_at")
    if reading_at is not None and reading_at != "":
        try:
            moment = datetime.fromisoformat(str(reading_at).strip())
        except ValueError:
            raise OptionError(
                f"{at}.reading_at",
                "must be a date and time with its offset, e.g. 2026-11-01T12:00:00+01:00, "
                f"got {reading_at!r}",
            ) from None
        # A TOML date-time, local if it has no offset: the checker says what it lacks.
        lines.append(f"reading_at = {moment.isoformat()}")
    idx = meter.get("domoticz_idx")
    if idx is None:
        return lines, None
    return lines, f"domoticz_idx = {_whole(idx, f'{at}.domoticz_idx', low=1, high=2**31)}"


#: Where the options land in the TOML, for naming an option in the checker's errors.
_OPTION_OF: Final = {
    f"modules.{MODULE}.port": "device",
    f"modules.{MODULE}.model": "model",
    f"modules.{MODULE}.thresholds": "thresholds",
    "logger.timezone": "timezone",
    "web.public_read": "public_read",
    "web.allowed_hosts": "allowed_hosts",
}


def _option(key: str | None, registers: Mapping[int, int]) -> str:
    """The option a TOML key was written from: ``modules.s0pcm.meters.2.kind`` → the meter
    option on register 2, ``meters[n].kind``."""
    parts = (key or "").split(".")
    if parts[:3] == ["modules", MODULE, "meters"] and len(parts) >= 4 and parts[3].isdigit():
        n = registers.get(int(parts[3]))
        field = parts[4] if len(parts) > 4 else "register"
        return f"meters[{n}].{field}" if n is not None else "meters"
    if parts[:3] == ["modules", MODULE, "meters"]:
        return "meters"
    return _OPTION_OF.get(key or "", key or "(all)")


def _broker(
    options: Mapping[str, Any], service: Mapping[str, Any] | None
) -> tuple[dict[str, Any], str | None] | None:
    """``(host, port, username, tls)`` and the password of the broker to use: the one given in
    the options (another broker), else the Supervisor's service; None: no MQTT."""
    mqtt = options.get("mqtt") or {}
    if not isinstance(mqtt, Mapping):
        raise OptionError("mqtt", f"must be a group of options, got {mqtt!r}")
    unknown = sorted(set(mqtt) - MQTT_KEYS)
    if unknown:
        raise OptionError(f"mqtt.{unknown[0]}", f"unknown; one of {', '.join(sorted(MQTT_KEYS))}")
    host = _text(mqtt, "host", "mqtt.host")
    if host is not None:
        source: Mapping[str, Any] = mqtt
        where, tls = "mqtt", False
    elif service is not None:
        source, where = service, "mqtt (the Supervisor's service)"
        host, tls = _text(service, "host", f"{where}.host"), bool(service.get("ssl", False))
        if host is None:
            raise OptionError(f"{where}.host", "is missing")
    else:
        return None
    given = source.get("port")
    default = 8883 if tls else 1883
    port = _whole(default if given is None else given, f"{where}.port", low=1, high=65535)
    username = _text(source, "username", f"{where}.username")
    # Taken as it is: a password may well begin or end with a space.
    password = source.get("password")
    if password is not None and not isinstance(password, str):
        raise OptionError(f"{where}.password", "must be text")
    return {"host": host, "port": port, "username": username, "tls": tls}, password or None


def render(
    options: Mapping[str, Any],
    service: Mapping[str, Any] | None,
    *,
    data: Path,
    environ: Mapping[str, str],
) -> tuple[str, str | None]:
    """The TOML text, and the broker's password (for ``data/mqtt-password``) or None.

    Raises :class:`OptionError` for the first option that cannot be mapped.
    """
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise OptionError(unknown[0], f"unknown; one of {', '.join(sorted(OPTION_KEYS))}")
    model = options.get("model", 5)
    if isinstance(model, str) and model.strip().isdigit():
        model = int(model)  # the schema's list(2|5) hands the choice over as "5"
    zone = _timezone(options, environ)
    hosts = options.get("allowed_hosts") or []
    if not isinstance(hosts, list):
        raise OptionError("allowed_hosts", f"must be a list of host names, got {hosts!r}")

    core = [
        "# Written by the s0pcm add-on from its options at every start: change the options,",
        "# not this file.",
        "[logger]",
        f"database = {_toml(str(data / 's0pcm.sqlite'))}",
    ]
    if zone is not None:
        core.append(f"timezone = {_value(zone)}")
    core += [
        "",
        "[web]",
        "# Home Assistant's ingress reaches the dashboard here, after its own login.",
        'listen = "0.0.0.0:8080"',
        f"public_read = {_value(options.get('public_read', True))}",
        f"trusted_proxies = [{_toml(INGRESS_PROXY)}]",
    ]
    if hosts:
        core.append(f"allowed_hosts = {_value(hosts)}")
    device = options.get("device")
    core += ["", f"[modules.{MODULE}]", f"port = {_value(device or 'auto')}"]
    core.append(f"model = {_value(model)}")
    thresholds = options.get("thresholds")
    if thresholds is not None and str(thresholds).strip():
        core.append(f"thresholds = {_value(thresholds)}")

    meters = options.get("meters")
    if not isinstance(meters, list) or not meters:
        raise OptionError("meters", "give at least one meter (register, kind, pulses_per_unit)")
    registers: dict[int, int] = {}
    full = list(core)
    for n, meter in enumerate(meters, 1):
        lines, idx = _meter(meter, n, registers)
        core += ["", *lines]
        full += ["", *lines, *([idx] if idx else [])]
    try:
        # What came from the options goes through the real checker; its errors name the option.
        parse_config("\n".join(core) + "\n", path="<add-on options>")
    except ConfigError as e:
        raise OptionError(_option(e.key, registers), e.message) from None
    out = full

    broker = _broker(options, service)
    password = None
    if broker is not None:
        settings, password = broker
        mqtt = options.get("mqtt") or {}
        base = _text(mqtt, "base_topic", "mqtt.base_topic") or "s0pcm"
        prefix = _text(mqtt, "discovery_prefix", "mqtt.discovery_prefix") or "homeassistant"
        discovery = mqtt.get("discovery", True)
        if not isinstance(discovery, bool):
            raise OptionError("mqtt.discovery", f"must be true or false, got {discovery!r}")
        domoticz = mqtt.get("domoticz", False)
        if not isinstance(domoticz, bool):
            raise OptionError("mqtt.domoticz", f"must be true or false, got {domoticz!r}")
        out += ["", "[mqtt]", f"host = {_toml(settings['host'])}", f"port = {settings['port']}"]
        if settings["username"] is not None:
            out.append(f"username = {_toml(settings['username'])}")
        if password is not None:
            out.append(f"password_file = {_toml(str(data / 'mqtt-password'))}")
        out += [
            f"tls = {'true' if settings['tls'] else 'false'}",
            f"base_topic = {_toml(base)}",
            # "" is [mqtt]'s way to say: no Home Assistant discovery.
            f"discovery_prefix = {_toml(prefix if discovery else '')}",
            f"domoticz = {'true' if domoticz else 'false'}",
        ]
    return "\n".join(out) + "\n", password


def _write(path: Path, text: str, *, mode: int) -> None:
    """Atomically, with ``mode`` from the first byte (a secret is never readable by others,
    not even for a moment)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), mode)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _service(path: Path | None, environ: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The Supervisor's MQTT service: from a file (tests, debugging) or its API. Either the
    API's answer ``{"result": "ok", "data": {...}}`` or the data alone. None: no broker."""
    if path is not None:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    else:
        token = environ.get("SUPERVISOR_TOKEN")
        if not token:
            return None
        request = urllib.request.Request(
            SUPERVISOR_MQTT, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                doc = json.load(answer)
        except urllib.error.HTTPError:
            return None  # no MQTT broker add-on installed (the Supervisor answers 400)
        except (urllib.error.URLError, OSError) as e:
            raise OptionError("mqtt", f"cannot ask the Supervisor for the broker: {e}") from None
    if isinstance(doc, Mapping) and isinstance(doc.get("data"), Mapping):
        doc = doc["data"]
    return doc if isinstance(doc, Mapping) and doc else None


def apply_dashboard_password(config: Path, password: str) -> None:
    """Set the Settings password when the option differs from the stored one (setting it again
    would end every session at each start)."""
    from ..config import load_config
    from ..store import open_store
    from ..web import set_password
    from ..web.auth import AUTH_KEY, check_password

    settings = load_config(config).logger
    with open_store(settings.database, tz=settings.timezone) as store:
        doc = store.state(AUTH_KEY)
        stored = doc.get("password") if isinstance(doc, dict) else None
        if stored is None or not check_password(password, stored):
            set_password(store, password)
            print("s0pcm add-on: dashboard password set from the add-on's options")


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(prog="python -m s0pcm.tools.addon", description=__doc__)
    parser.add_argument("--options", type=Path, default=Path("/data/options.json"))
    parser.add_argument(
        "--services", type=Path, help="the MQTT service as JSON (default: ask the Supervisor)"
    )
    parser.add_argument("--out", type=Path, default=Path("/data/s0pcm.toml"))
    parser.add_argument("--data", type=Path, help="where history lives (default: --out's folder)")
    parser.add_argument("--no-exec", action="store_true", help="write the files and stop")
    args = parser.parse_args(argv)
    data = (args.data or args.out.parent).absolute()
    try:
        options = json.loads(args.options.read_text(encoding="utf-8"))
        if not isinstance(options, dict):
            raise OptionError("(all)", f"{args.options} holds no options object")
        text, password = render(
            options, _service(args.services, environ), data=data, environ=environ
        )
        dashboard = options.get("dashboard_password") or None  # taken as given, spaces too
        if dashboard is not None and (not isinstance(dashboard, str) or len(dashboard) < 8):
            raise OptionError("dashboard_password", "use at least 8 characters")
    except (OSError, json.JSONDecodeError) as e:
        print(f"s0pcm add-on: cannot read the options: {e}", file=sys.stderr)
        return 2
    except OptionError as e:
        print(f"s0pcm add-on: {e}", file=sys.stderr)
        return 2
    data.mkdir(parents=True, exist_ok=True)
    secret = data / "mqtt-password"
    if password is not None:
        _write(secret, password, mode=0o600)
    else:
        secret.unlink(missing_ok=True)
    _write(args.out, text, mode=0o644)
    if "[mqtt]" not in text:
        broker = "no MQTT broker"
    elif _text(options.get("mqtt") or {}, "host", "mqtt.host") is not None:
        broker = "MQTT broker from the options"
    else:
        broker = "MQTT broker from the Supervisor"
    print(f"s0pcm add-on: wrote {args.out} ({len(options['meters'])} meters; {broker})")
    if args.no_exec:
        return 0
    if dashboard is not None:
        apply_dashboard_password(args.out, dashboard)
    sys.stdout.flush()
    os.execvp("s0pcm", ["s0pcm", "run", "--config", str(args.out)])  # noqa: S606


if __name__ == "__main__":
    sys.exit(main())
