"""``[mqtt]`` and the meters' ``domoticz_idx``: defaults, the password's three sources (never
shown), TLS files, topic prefixes, and errors that name file, key and line."""

# ruff: noqa: S105, S106 - the passwords here are the tests' own

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from textwrap import dedent

import pytest

from s0pcm.config import Config, MqttSettings, load_config, parse_config
from s0pcm.config.mqtt import MQTT_KEYS
from s0pcm.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "example.toml"

MODULE = """\
[modules.kast]
model = 5

[modules.kast.meters.1]
kind = "electricity"
pulses_per_unit = 1000
"""


def config(mqtt: str, *, modules: str = MODULE) -> Config:
    return parse_config(modules + dedent(mqtt), path="s0pcm.toml")


def mqtt(text: str) -> MqttSettings:
    settings = config(text).mqtt
    assert settings is not None
    return settings


def error(text: str, *, modules: str = MODULE) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config(text, modules=modules)
    return info.value


def line_of(text: str, fragment: str, *, modules: str = MODULE) -> int:
    """The line (1-based) of the whole file on which ``fragment`` is written."""
    lines = (modules + dedent(text)).splitlines()
    return next(n for n, line in enumerate(lines, start=1) if fragment in line)


def check(e: ConfigError, key: str, line: int, *fragments: str) -> None:
    assert (e.file, e.key, e.line) == ("s0pcm.toml", key, line), str(e)
    assert str(e).startswith(f"s0pcm.toml:{line} [{key}]: "), str(e)
    for fragment in fragments:
        assert fragment in e.message, e.message


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text("s3cret pass\n")
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S0PCM_MQTT_PASSWORD", raising=False)


def test_no_table_no_mqtt() -> None:
    assert config("").mqtt is None


def test_defaults() -> None:
    s = mqtt("[mqtt]\n")
    host = socket.gethostname().split(".")[0]
    assert (s.host, s.port, s.client_id) == ("localhost", 1883, f"s0pcm-{host}")
    assert (s.username, s.password, s.tls, s.ca_file) == (None, None, False, None)
    assert (s.base_topic, s.discovery_prefix, s.domoticz, s.outbox_max) == (
        "s0pcm",
        "homeassistant",
        False,
        10_000,
    )
    assert s.broker == "localhost:1883"
    assert mqtt("[mqtt]\ntls = true\n").port == 8883
    assert mqtt('[mqtt]\nhost = "::1"\n').broker == "[::1]:1883"


def test_every_key(secret: Path, tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n")
    (tmp_path / "client.key").chmod(0o600)
    s = mqtt(f"""
        [mqtt]
        host = "broker.lan"
        port = 8884
        username = "s0pcm"
        password_file = "{secret}"
        tls = true
        ca_file = "{tmp_path / "ca.pem"}"
        cert_file = "{tmp_path / "client.pem"}"
        key_file = "{tmp_path / "client.key"}"
        tls_insecure = true
        client_id = "meterkast"
        base_topic = "home/s0pcm"
        discovery_prefix = ""
        domoticz = true
        outbox_max = 500
        """)
    assert s == MqttSettings(
        host="broker.lan",
        port=8884,
        client_id="meterkast",
        username="s0pcm",
        password="s3cret pass",
        tls=True,
        ca_file=tmp_path / "ca.pem",
        tls_insecure=True,
        cert_file=tmp_path / "client.pem",
        key_file=tmp_path / "client.key",
        base_topic="home/s0pcm",
        discovery_prefix="",
        domoticz=True,
        outbox_max=500,
    )


def test_example_documents_every_key() -> None:
    """docs/example.toml shows each key of [mqtt], and no other."""
    text = EXAMPLE.read_text()
    block = text[text.index("# [mqtt]") :]
    shown = re.findall(r"^# ([a-z_]+) = ", block, flags=re.MULTILINE)
    assert sorted(shown) == sorted(MQTT_KEYS)


def test_the_password_never_shows(secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = mqtt('[mqtt]\nusername = "u"\npassword = "hunter2-in-toml"\n')
    assert s.password == "hunter2-in-toml"
    assert "hunter2" not in repr(s)
    # A wrong type: the message does not repeat the value.
    text = "[mqtt]\nusername = 'u'\npassword = 123456789\n"
    e = error(text)
    check(e, "mqtt.password", line_of(text, "password ="), "non-empty string")
    assert "123456789" not in str(e)


def test_password_from_file_or_environment(
    secret: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert mqtt(f'[mqtt]\nusername = "u"\npassword_file = "{secret}"\n').password == "s3cret pass"
    relative = tmp_path / "s0pcm.toml"
    relative.write_text(MODULE + '[mqtt]\nusername = "u"\npassword_file = "mqtt-password"\n')
    loaded = load_config(relative).mqtt
    assert loaded is not None
    assert loaded.password == "s3cret pass"  # relative to the file
    monkeypatch.setenv("S0PCM_MQTT_PASSWORD", "from-env")
    assert mqtt('[mqtt]\nusername = "u"\n').password == "from-env"
    # The file's keys win over the environment.
    assert mqtt('[mqtt]\nusername = "u"\npassword = "p"\n').password == "p"
    assert mqtt(f'[mqtt]\nusername = "u"\npassword_file = "{secret}"\n').password == "s3cret pass"


def test_a_password_file_others_can_read_is_refused(secret: Path) -> None:
    secret.chmod(0o640)
    text = f'[mqtt]\nusername = "u"\npassword_file = "{secret}"\n'
    e = error(text)
    check(e, "mqtt.password_file", line_of(text, "password_file"), "mode 0640", "chmod 600")
    assert "s3cret" not in str(e)


@pytest.mark.parametrize(
    ("text", "key", "fragments"),
    [
        ('[mqtt]\npassword = "p"\n', "mqtt.password", ["needs a username"]),
        (
            '[mqtt]\nusername = "u"\npassword = "p"\npassword_file = "x"\n',
            "mqtt.password_file",
            ["not both"],
        ),
        ('[mqtt]\nusername = "u"\npassword_file = "/nonexistent/pw"\n', "mqtt.password_file",
         ["cannot read /nonexistent/pw"]),
        ("[mqtt]\nport = 0\n", "mqtt.port", ["1..65535"]),
        ('[mqtt]\nport = "1883"\n', "mqtt.port", ["a port number", "string"]),
        ('[mqtt]\nhost = "bad host"\n', "mqtt.host", ["not a host name"]),
        ('[mqtt]\nca_file = "/etc/hostname"\n', "mqtt.ca_file", ["needs tls = true"]),
        ("[mqtt]\ntls_insecure = true\n", "mqtt.tls_insecure", ["needs tls = true"]),
        ('[mqtt]\ntls = true\nca_file = "/nonexistent.pem"\n', "mqtt.ca_file", ["cannot read"]),
        ('[mqtt]\nbase_topic = "s0pcm/#"\n', "mqtt.base_topic", ["not a topic prefix"]),
        ('[mqtt]\nbase_topic = "a//b"\n', "mqtt.base_topic", ["no empty level"]),
        ('[mqtt]\nbase_topic = ""\n', "mqtt.base_topic", ["not a topic prefix"]),
        ('[mqtt]\nbase_topic = "$SYS"\n', "mqtt.base_topic", ["leading '$'"]),
        ('[mqtt]\ndiscovery_prefix = "+"\n', "mqtt.discovery_prefix", ['"" to turn it off']),
        ('[mqtt]\nbase_topic = "ha"\ndiscovery_prefix = "ha"\n', "mqtt.base_topic", ["differ"]),
        ('[mqtt]\nclient_id = "a/b"\n', "mqtt.client_id", ["'/'"]),
        ("[mqtt]\noutbox_max = 10\n", "mqtt.outbox_max", ["100..10000000", "got 10"]),
        ("[mqtt]\ndomoticz = 1\n", "mqtt.domoticz", ["true or false"]),
        ('[mqtt]\npasword = "p"\n', "mqtt.pasword", ['did you mean "password"']),
    ],
)  # fmt: skip
def test_errors_name_key_and_line(text: str, key: str, fragments: list[str]) -> None:
    e = error(text)
    leaf = key.rsplit(".", 1)[-1]
    check(e, key, line_of(text, f"{leaf} ="), *fragments)


def test_client_certificate_needs_both_and_a_private_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    cert.write_text("x")
    key.write_text("x")
    text = f'[mqtt]\ntls = true\ncert_file = "{cert}"\n'
    check(error(text), "mqtt.cert_file", line_of(text, "cert_file"), "needs key_file too")
    text = f'[mqtt]\ntls = true\ncert_file = "{cert}"\nkey_file = "{key}"\n'
    os.chmod(key, 0o644)
    check(error(text), "mqtt.key_file", line_of(text, "key_file"), "mode 0644")


def test_domoticz_idx() -> None:
    modules = MODULE + "domoticz_idx = 12\n[modules.kast.meters.2]\nkind = 'gas'\n"
    modules += "pulses_per_unit = 100\n"
    c = config("", modules=modules)
    assert [m.domoticz_idx for m in c.meters] == [12, None]
    for bad, what in (("0", "got 0"), ("true", "the boolean true"), ('"12"', "the string")):
        text = modules.replace("domoticz_idx = 12", f"domoticz_idx = {bad}")
        e = error("", modules=text)
        check(e, "modules.kast.meters.1.domoticz_idx", 7, ">= 1", what)
    twice = modules + "domoticz_idx = 12\n"
    e = error("", modules=twice)
    check(e, "modules.kast.meters.2.domoticz_idx", 11, "already used by", "line 7")
