"""The Home Assistant add-on: its entry run as the container runs it (a process, options and the
Supervisor's MQTT service as JSON files), outside a container; and ``config.yaml`` held to what
the entry reads."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from s0pcm.config import load_config, parse_config
from s0pcm.store import open_store
from s0pcm.tools import addon
from s0pcm.web.auth import AUTH_KEY, check_password

ADDON = Path(__file__).resolve().parent.parent / "addon" / "s0pcm"
PASSWORD = 'Zq"8\\x;secret-ø'  # noqa: S105 (the tests' own)
#: The [mqtt] keys agreed for issue 11 (the mqtt part implements them).
AGREED_MQTT_KEYS = {
    "host", "port", "username", "password_file", "password", "tls", "ca_file", "cert_file",
    "key_file", "client_id", "base_topic", "discovery_prefix", "domoticz", "outbox_max",
}  # fmt: skip

OPTIONS: dict[str, Any] = {
    "device": "/dev/serial/by-id/usb-Arduino_LLC_Arduino_Leonardo-if00",
    "model": "5",  # the schema's list(2|5) hands over a string
    "thresholds": "T2=40;",
    "meters": [
        {
            "register": 1,
            "name": 'Stroom "meterkast" \\ hal',
            "kind": "electricity",
            "pulses_per_unit": 1000,
            "reading": 12345.678,
            "reading_at": "2026-11-01T12:00:00+01:00",
            "domoticz_idx": 12,
        },
        {"register": 2, "name": "Gas", "kind": "gas", "unit": "m3", "pulses_per_unit": 100.0},
        {"register": 3, "kind": "water", "unit": "L", "pulses_per_unit": 1, "key": "water"},
        {"register": 5, "kind": "other", "pulses_per_unit": 5, "enabled": False},
    ],
    "public_read": True,
    "allowed_hosts": ["homeassistant.local"],
    "mqtt": {"base_topic": "s0pcm", "discovery_prefix": "homeassistant", "domoticz": True},
}
SERVICE = {
    "result": "ok",
    "data": {
        "host": "core-mosquitto",
        "port": 1883,
        "ssl": False,
        "protocol": "3.1.1",
        "username": "addons",
        "password": PASSWORD,
        "addon": "core_mosquitto",
    },
}


def run_entry(
    tmp_path: Path, options: object, service: object | None = SERVICE
) -> subprocess.CompletedProcess[str]:
    """The entry as the add-on runs it, on ``tmp_path/data`` instead of ``/data``."""
    (tmp_path / "options.json").write_text(json.dumps(options))
    args = ["--options", str(tmp_path / "options.json"), "--out", str(tmp_path / "data/s0pcm.toml")]
    if service is not None:
        (tmp_path / "mqtt.json").write_text(json.dumps(service))
        args += ["--services", str(tmp_path / "mqtt.json")]
    env = {k: v for k, v in os.environ.items() if k != "SUPERVISOR_TOKEN"}
    env["TZ"] = "Europe/Amsterdam"  # what the Supervisor sets in every add-on
    return subprocess.run(
        [sys.executable, "-m", "s0pcm.tools.addon", *args, "--no-exec"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def without_mqtt(text: str) -> str:
    """The TOML without what the mqtt part adds to the schema (``[mqtt]``, ``domoticz_idx``),
    which this branch's loader does not know yet."""
    text = re.sub(r"(?ms)^\[mqtt\]\n.*?(?=^\[|\Z)", "", text)
    return re.sub(r"(?m)^domoticz_idx = .*\n", "", text)


def test_options_and_the_supervisors_broker_become_a_config_that_loads(tmp_path: Path) -> None:
    done = run_entry(tmp_path, OPTIONS)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    assert "MQTT broker from the Supervisor" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    data = tmp_path / "data"
    toml_path = data / "s0pcm.toml"
    text = toml_path.read_text()
    assert PASSWORD not in text

    secret = data / "mqtt-password"
    assert secret.read_text() == PASSWORD
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(toml_path.stat().st_mode) == 0o644
    assert not list(data.glob(".*.tmp"))

    doc = tomllib.loads(text)
    assert set(doc["mqtt"]) <= AGREED_MQTT_KEYS
    assert doc["mqtt"] == {
        "host": "core-mosquitto",
        "port": 1883,
        "username": "addons",
        "password_file": str(secret),
        "tls": False,
        "base_topic": "s0pcm",
        "discovery_prefix": "homeassistant",
        "domoticz": True,
    }
    assert doc["modules"]["s0pcm"]["meters"]["1"]["domoticz_idx"] == 12
    assert "domoticz_idx" not in doc["modules"]["s0pcm"]["meters"]["2"]

    stripped = data / "without-mqtt.toml"
    stripped.write_text(without_mqtt(text))
    config = load_config(stripped)
    assert config.logger.database == str(data / "s0pcm.sqlite")
    assert str(config.logger.timezone) == "Europe/Amsterdam"
    listen = ("0.0.0.0", 8080, True)  # noqa: S104 (ingress reaches the add-on from outside)
    assert (config.web.host, config.web.port, config.web.public_read) == listen
    assert config.web.trusted_proxies == ("172.30.32.2/32",)
    assert config.web.allowed_hosts == ("homeassistant.local",)
    (module,) = config.modules
    assert module.port == OPTIONS["device"]
    assert int(module.model) == 5
    assert module.thresholds is not None
    got = {
        m.register: (m.key, m.name, m.kind.value, m.unit, m.pulses_per_unit, m.enabled)
        for m in module.meters
    }
    assert got == {
        1: ("s0pcm.1", OPTIONS["meters"][0]["name"], "electricity", "kWh", 1000, True),
        2: ("s0pcm.2", "Gas", "gas", "m³", 100, True),
        3: ("water", "water", "water", "L", 1, True),
        5: ("s0pcm.5", "s0pcm.5", "other", "", 5, False),
    }
    reading = config.meter("s0pcm.1")
    assert reading.reading == 12345.678
    moment = datetime.fromisoformat("2026-11-01T12:00:00+01:00")
    assert reading.reading_at == moment.timestamp()


def test_without_a_broker_there_is_no_mqtt_and_no_password_file(tmp_path: Path) -> None:
    assert run_entry(tmp_path, OPTIONS).returncode == 0
    assert (tmp_path / "data/mqtt-password").exists()
    # The Mosquitto add-on removed: the stale password goes with the table.
    done = run_entry(tmp_path, OPTIONS, service={"result": "ok", "data": {}})
    assert done.returncode == 0, done.stderr
    assert "no MQTT broker" in done.stdout
    text = (tmp_path / "data/s0pcm.toml").read_text()
    assert "[mqtt]" not in text
    assert not (tmp_path / "data/mqtt-password").exists()
    parse_config(without_mqtt(text))


def test_a_broker_in_the_options_wins_over_the_supervisors(tmp_path: Path) -> None:
    options = {
        **OPTIONS,
        "mqtt": {
            "host": "broker.lan",
            "username": "me",
            "password": " hunter22 ",  # spaces and all
            "base_topic": "x",
            "discovery": False,
        },
    }
    done = run_entry(tmp_path, options)
    assert done.returncode == 0, done.stderr
    assert "hunter22" not in done.stdout + done.stderr
    mqtt = tomllib.loads((tmp_path / "data/s0pcm.toml").read_text())["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["username"]) == ("broker.lan", 1883, "me")
    # discovery off is [mqtt]'s empty prefix
    assert (mqtt["base_topic"], mqtt["discovery_prefix"], mqtt["domoticz"]) == ("x", "", False)
    assert (tmp_path / "data/mqtt-password").read_text() == " hunter22 "


@pytest.mark.parametrize(("port", "expected"), [(None, 8883), (8884, 8884)])
def test_the_supervisors_tls_broker_gets_tls(
    tmp_path: Path, port: int | None, expected: int
) -> None:
    service = {"host": "core-mosquitto", "ssl": True, "username": "addons", "password": "p"}
    if port is not None:
        service["port"] = port
    assert run_entry(tmp_path, OPTIONS, service=service).returncode == 0
    mqtt = tomllib.loads((tmp_path / "data/s0pcm.toml").read_text())["mqtt"]
    assert (mqtt["tls"], mqtt["port"]) == (True, expected)


def meter(n: int, **changes: Any) -> dict[str, Any]:
    """The options with the ``n``-th meter changed (a value None removes the key)."""
    meters = [dict(m) for m in OPTIONS["meters"]]
    meters[n - 1].update(changes)
    meters[n - 1] = {k: v for k, v in meters[n - 1].items() if v is not None}
    return {**OPTIONS, "meters": meters}


@pytest.mark.parametrize(
    ("options", "option", "words"),
    [
        (meter(2, kind="gaz"), "meters[2].kind", 'unknown kind "gaz"; did you mean "gas"?'),
        ({**OPTIONS, "model": 2}, "meters[3].register", "register 3 does not exist"),
        (meter(2, register=1), "meters[2].register", "register 1 is already meters[1]"),
        (meter(1, reading_at=None), "meters[1].reading", "reading needs reading_at"),
        (meter(1, reading_at="2026-11-01 12:00"), "meters[1].reading_at", "time-zone offset"),
        (meter(1, reading_at="yesterday"), "meters[1].reading_at", "with its offset"),
        (meter(3, unit="gallon"), "meters[3].unit", "gallon"),
        ({**OPTIONS, "public_read": "yes"}, "public_read", "yes"),
        (meter(2, pulses_per_unit=0), "meters[2].pulses_per_unit", "must be a number > 0"),
        (meter(2, pulses_per_unit=None), "meters[2].pulses_per_unit", "is required"),
        (meter(2, colour="red"), "meters[2].colour", "unknown"),
        ({**OPTIONS, "meters": []}, "meters", "at least one meter"),
        ({**OPTIONS, "model": "3"}, "model", "or 5 (S0PCM-5), got the integer 3"),
        ({**OPTIONS, "thresholds": "T9=40;"}, "thresholds", "T9"),
        ({**OPTIONS, "timezone": "Europe/Amsterdan"}, "timezone", "unknown time zone"),
        ({**OPTIONS, "dashboard_password": "short"}, "dashboard_password", "8 characters"),
        ({**OPTIONS, "mqtt": {"host": "b", "port": 0}}, "mqtt.port", "1..65535"),
        ({**OPTIONS, "serial": "/dev/ttyACM0"}, "serial", "unknown; one of allowed_hosts"),
    ],
)
def test_a_bad_option_is_one_line_naming_it_and_nothing_is_written(
    tmp_path: Path, options: dict[str, Any], option: str, words: str
) -> None:
    done = run_entry(tmp_path, options)
    assert done.returncode == 2
    assert done.stderr.startswith(f"s0pcm add-on: add-on option {option}: "), done.stderr
    assert words in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_the_dashboard_password_is_stored_once_and_sessions_survive_restarts(
    tmp_path: Path,
) -> None:
    assert run_entry(tmp_path, OPTIONS, service=None).returncode == 0
    config = tmp_path / "data/s0pcm.toml"
    config.write_text(without_mqtt(config.read_text()))

    def auth() -> dict[str, Any]:
        settings = load_config(config).logger
        with open_store(settings.database, tz=settings.timezone) as store:
            doc = store.state(AUTH_KEY)
        assert isinstance(doc, dict)
        return doc

    addon.apply_dashboard_password(config, "first password")
    first = auth()
    assert check_password("first password", first["password"])
    addon.apply_dashboard_password(config, "first password")  # the next start
    assert auth()["secret"] == first["secret"]  # sessions were not ended
    addon.apply_dashboard_password(config, "second password")
    second = auth()
    assert check_password("second password", second["password"])
    assert second["secret"] != first["secret"]


def schema_keys(schema: dict[str, Any]) -> set[str]:
    return {key.rstrip("?") for key in schema}


def test_config_yaml_declares_what_the_entry_reads() -> None:
    manifest = yaml.safe_load((ADDON / "config.yaml").read_text())
    schema = manifest["schema"]
    assert schema_keys(schema) == addon.OPTION_KEYS
    assert schema_keys(schema["meters"][0]) == addon.METER_KEYS
    assert schema_keys(schema["mqtt"]) == addon.MQTT_KEYS
    # The defaults are valid options: a fresh install starts.
    assert set(manifest["options"]) <= addon.OPTION_KEYS
    text, password = addon.render(manifest["options"], None, data=Path("/data"), environ={})
    assert password is None
    assert 'listen = "0.0.0.0:8080"' in text
    parse_config(text)
    # Ingress reaches the port the entry listens on; the device comes through uart.
    assert manifest["ingress"] is True
    assert manifest["ingress_port"] == 8080
    assert manifest["uart"] is True
    assert "mqtt:want" in manifest["services"]
    assert {"slug", "name", "description", "arch"} <= set(manifest)
    # Every option is explained on the add-on's page, and the version is said alike everywhere.
    names = yaml.safe_load((ADDON / "translations/en.yaml").read_text())["configuration"]
    assert set(names) == addon.OPTION_KEYS
    version = manifest["version"]
    assert f"## {version}" in (ADDON / "CHANGELOG.md").read_text()
    assert f'io.hass.version="{version}"' in (ADDON / "Dockerfile").read_text()
    build = yaml.safe_load((ADDON / "build.yaml").read_text())["build_from"]
    assert set(build) == set(manifest["arch"])
