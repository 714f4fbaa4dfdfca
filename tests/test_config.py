"""The TOML configuration: schema, defaults, and errors that name file, key and line."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from s0pcm.config import (
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_DATABASE,
    Config,
    load_config,
    parse_config,
)
from s0pcm.errors import ConfigError
from s0pcm.link.events import FRAMING_7E1, FRAMING_8N1
from s0pcm.meters import Direction, Kind
from s0pcm.protocol import Model, Thresholds

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "example.toml"

MINIMAL = """\
[modules.meterkast]
model = 5

[modules.meterkast.meters.1]
kind = "electricity"
pulses_per_unit = 1000
"""


def config(text: str, *, path: str = "s0pcm.toml") -> Config:
    return parse_config(dedent(text), path=path)


def error(text: str, *, path: str = "s0pcm.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(dedent(text), path=path)
    return info.value


def check(e: ConfigError, key: str | None, line: int | None, *fragments: str) -> None:
    """The error names the file, the key and the line, in the message too."""
    assert e.file == "s0pcm.toml"
    assert (e.key, e.line) == (key, line), str(e)
    where = "s0pcm.toml" if line is None else f"s0pcm.toml:{line}"
    if key is not None:
        where += f" [{key}]"
    assert str(e).startswith(f"{where}: "), str(e)
    for fragment in fragments:
        assert fragment in e.message, e.message


# --- the example and the defaults ----------------------------------------------------------------


def test_example_file_loads() -> None:
    c = load_config(EXAMPLE)
    assert c.path == str(EXAMPLE)
    assert c.logger.database == "/var/lib/s0pcm/s0pcm.sqlite"
    assert c.logger.timezone == ZoneInfo("Europe/Amsterdam")
    assert c.web.listen == "127.0.0.1:8080"
    assert not c.web.public_read
    (module,) = c.modules
    assert module.name == "meterkast"
    assert module.port is None
    assert module.model is Model.S0PCM5
    assert module.framing == FRAMING_7E1
    assert module.thresholds == Thresholds(((2, 40),))
    assert [m.key for m in c.meters] == [
        "electricity",
        "gas",
        "water",
        "meterkast.4",
        "meterkast.5",
    ]
    assert [m.unit for m in c.meters] == ["kWh", "m³", "L", "kWh", "mm"]
    assert [m.kind for m in c.meters] == [
        Kind.ELECTRICITY,
        Kind.GAS,
        Kind.WATER,
        Kind.HEAT,
        Kind.OTHER,
    ]
    electricity = c.meter("electricity")
    assert electricity.reading == 12345.678
    assert electricity.reading_at == datetime.fromisoformat("2026-11-01T11:00:00+00:00").timestamp()
    assert not c.meter("meterkast.5").enabled


def test_minimal_config_takes_the_defaults() -> None:
    c = config(MINIMAL)
    assert c.logger.database == DEFAULT_DATABASE
    assert c.logger.journal == Path("/var/lib/s0pcm/s0pcm.journal")
    assert c.logger.commit_interval == DEFAULT_COMMIT_INTERVAL
    assert c.logger.raw_retention_days == 0
    assert isinstance(c.logger.timezone, ZoneInfo)
    assert (c.web.host, c.web.port, c.web.public_read) == ("127.0.0.1", 8080, False)
    module = c.module("meterkast")
    assert (module.port, module.framing, module.thresholds) == (None, FRAMING_7E1, None)
    (meter,) = c.meters
    assert (meter.key, meter.name, meter.module, meter.register) == (
        "meterkast.1",
        "meterkast.1",
        "meterkast",
        1,
    )
    assert (meter.unit, meter.pulses_per_unit, meter.reading, meter.reading_at) == (
        "kWh",
        1000.0,
        None,
        None,
    )
    assert meter.enabled


def test_default_timezone_is_the_systems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert config(MINIMAL).logger.timezone == ZoneInfo("America/New_York")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "etc" / "s0pcm.toml"
    file.parent.mkdir()
    file.write_text('[logger]\ndatabase = "data/s0pcm.sqlite"\n' + MINIMAL, encoding="utf-8")
    c = load_config(file)
    assert c.logger.database == str(tmp_path / "etc" / "data" / "s0pcm.sqlite")
    assert c.logger.database_path == tmp_path / "etc" / "data" / "s0pcm.sqlite"
    assert c.logger.journal == tmp_path / "etc" / "data" / "s0pcm.journal"


def test_postgresql_database_and_explicit_journal() -> None:
    c = config(
        """\
        [logger]
        database = "postgresql://s0pcm@db.local/s0pcm"
        journal = "/srv/s0pcm/s0pcm.journal"
        commit_interval = 60.5
        raw_retention_days = 400
        """
        + MINIMAL
    )
    assert c.logger.is_postgresql
    assert c.logger.database_path is None
    assert c.logger.journal == Path("/srv/s0pcm/s0pcm.journal")
    assert (c.logger.commit_interval, c.logger.raw_retention_days) == (60.5, 400)


def test_several_modules_ports_thresholds_and_framing() -> None:
    c = config(
        """\
        [modules.meterkast]
        port = "/dev/serial/by-id/usb-Arduino_LLC_Arduino_Leonardo-if00"
        model = 5
        thresholds = "T1=30;T5=90"

        [modules.meterkast.meters.5]
        kind = "water"
        unit = "m3"
        pulses_per_unit = 1000

        [modules.garage]
        port = "socket://localhost:7777"
        model = 2
        framing = "8n1"

        [modules.garage.meters.2]
        kind = "Gas"
        unit = "l"
        pulses_per_unit = 10
        name = "Gas (garage)"
        """
    )
    meterkast, garage = c.modules
    assert meterkast.thresholds == Thresholds(((1, 30), (5, 90)))
    assert garage.port == "socket://localhost:7777"
    assert garage.model is Model.S0PCM2
    assert garage.framing == FRAMING_8N1
    assert [(m.key, m.unit, m.kind) for m in c.meters] == [
        ("meterkast.5", "m³", Kind.WATER),
        ("garage.2", "L", Kind.GAS),
    ]


def test_other_kind_takes_any_unit() -> None:
    c = config(MINIMAL.replace('"electricity"', '"other"') + 'unit = "rotations"\n')
    assert c.meters[0].unit == "rotations"
    c = config(MINIMAL.replace('"electricity"', '"other"'))
    assert c.meters[0].unit == ""


def test_listen_addresses() -> None:
    for listen, host, port in [
        ("0.0.0.0:80", "0.0.0.0", 80),  # noqa: S104
        ("[::1]:8080", "::1", 8080),
        ("[::]:8443", "::", 8443),
        ("pi.local:8080", "pi.local", 8080),
    ]:
        web = config(f'[web]\nlisten = "{listen}"\npublic_read = true\n' + MINIMAL).web
        assert (web.host, web.port, web.public_read, web.listen) == (host, port, True, listen)


def test_dotted_keys_and_inline_tables_are_read() -> None:
    c = config(
        """\
        logger.timezone = "UTC"
        modules.meterkast = { model = 2, meters = { 1 = { kind = "gas", pulses_per_unit = 100 } } }
        """
    )
    assert c.logger.timezone == ZoneInfo("UTC")
    assert c.meters[0].key == "meterkast.1"


# --- syntax --------------------------------------------------------------------------------------


def test_toml_syntax_error_names_file_line_and_key() -> None:
    e = error(
        """\
        [modules.meterkast]
        model = 5

        [modules.meterkast.meters.1]
        kind = "electricity"
        pulses_per_unit = 1000 imp/kWh
        """
    )
    check(e, "modules.meterkast.meters.1.pulses_per_unit", 6, "TOML syntax error")


def test_toml_syntax_error_in_a_table_header() -> None:
    e = error("[modules.meter kast]\nmodel = 5\n")
    check(e, None, 1, "TOML syntax error")


def test_toml_syntax_error_at_the_end_of_the_file() -> None:
    e = error('[modules.meterkast]\nmodel = 5\nport = "/dev/ttyACM0')
    assert e.line == 3
    assert "s0pcm.toml:3" in str(e)


def test_load_config_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.file == str(missing)
    assert "cannot read" in str(info.value)


def test_load_config_of_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "s0pcm.toml"
    file.write_bytes(b'[web]\nlisten = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert (info.value.file, info.value.line) == (str(file), 2)


# --- unknown keys and wrong types ----------------------------------------------------------------


def test_unknown_key_suggests_the_close_one() -> None:
    e = error(MINIMAL + "pulses_per_unti = 1000\n")
    check(e, "modules.meterkast.meters.1.pulses_per_unti", 7, 'did you mean "pulses_per_unit"?')


def test_unknown_table_suggests_the_close_one() -> None:
    e = error('[loger]\ntimezone = "UTC"\n' + MINIMAL)
    check(e, "loger", 1, 'unknown key "loger"', 'did you mean "logger"?')


def test_unknown_key_without_a_close_one_lists_the_known_keys() -> None:
    e = error(MINIMAL.replace("model = 5", "model = 5\ncolour = 'red'"))
    check(e, "modules.meterkast.colour", 3, "known keys: port, model, framing")


def test_string_where_a_number_is_wanted() -> None:
    e = error(MINIMAL.replace("1000", '"1000"'))
    check(
        e,
        "modules.meterkast.meters.1.pulses_per_unit",
        6,
        'must be a number > 0, got the string "1000"',
    )


def test_a_boolean_is_not_a_number() -> None:
    e = error(MINIMAL.replace("1000", "true"))
    check(e, "modules.meterkast.meters.1.pulses_per_unit", 6, "got the boolean true")
    e = error("[logger]\nraw_retention_days = false\n" + MINIMAL)
    check(e, "logger.raw_retention_days", 2, "got the boolean false")


def test_a_table_where_a_value_is_wanted_and_the_other_way_round() -> None:
    check(error('web = "open"\n' + MINIMAL), "web", 1, 'must be a table, got the string "open"')
    check(
        error(MINIMAL + "name = { first = 'x' }\n"),
        "modules.meterkast.meters.1.name",
        7,
        "must be a string, got a table",
    )


def test_enabled_must_be_a_boolean() -> None:
    e = error(MINIMAL + 'enabled = "no"\n')
    check(e, "modules.meterkast.meters.1.enabled", 7, 'must be true or false, got the string "no"')


def test_number_limits() -> None:
    check(
        error("[logger]\ncommit_interval = 0.01\n" + MINIMAL),
        "logger.commit_interval",
        2,
        "must be 0.05..86400 seconds, got 0.01",
    )
    check(
        error("[logger]\nraw_retention_days = -1\n" + MINIMAL),
        "logger.raw_retention_days",
        2,
        "must be >= 0",
    )
    check(
        error("[logger]\nraw_retention_days = 7.5\n" + MINIMAL),
        "logger.raw_retention_days",
        2,
        "whole number of days",
    )
    check(
        error(MINIMAL + "reading = -3\nreading_at = 2026-01-01T00:00:00Z\n"),
        "modules.meterkast.meters.1.reading",
        7,
        "must be a number >= 0",
    )


# --- logger and web ------------------------------------------------------------------------------


def test_unknown_time_zone_suggests_the_close_one() -> None:
    e = error('[logger]\ntimezone = "Europe/Amsterdm"\n' + MINIMAL)
    check(
        e,
        "logger.timezone",
        2,
        'unknown time zone "Europe/Amsterdm"',
        'did you mean "Europe/Amsterdam"?',
    )


def test_time_zone_that_is_a_path_is_refused() -> None:
    check(
        error('[logger]\ntimezone = "/etc/passwd"\n' + MINIMAL),
        "logger.timezone",
        2,
        "unknown time zone",
    )


def test_database_url_must_be_postgresql() -> None:
    e = error('[logger]\ndatabase = "mysql://me:secret@db/s0pcm"\n' + MINIMAL)
    check(e, "logger.database", 2, "mysql:// databases are not supported")
    assert "secret" not in str(e)


def test_listen_must_be_host_and_port() -> None:
    for listen, fragment in [
        ('"8080"', 'must be "host:port"'),
        ('"localhost"', 'must be "host:port"'),
        ('":8080"', 'must be "host:port"'),
        ('"127.0.0.1:70000"', "port must be 1..65535, got 70000"),
        ('"[fe80::zz]:80"', "is not an IPv6 address"),
        ('"999.1.1.1:80"', "is not an IPv4 address"),
        ("8080", "got the integer 8080"),
    ]:
        e = error(f"[web]\nlisten = {listen}\n" + MINIMAL)
        check(e, "web.listen", 2, fragment)


# --- modules -------------------------------------------------------------------------------------


def test_at_least_one_module() -> None:
    check(error('[logger]\ntimezone = "UTC"\n'), "modules", None, "no modules configured")
    check(error('[logger]\ntimezone = "UTC"\n\n[modules]\n'), "modules", 4, "no modules configured")


def test_modules_must_be_named_tables_not_an_array() -> None:
    e = error("[web]\npublic_read = true\n\n[[modules]]\nmodel = 5\n")
    check(e, "modules", 4, "not an array ([[...]])")


def test_module_name_characters() -> None:
    e = error(MINIMAL.replace("meterkast", '"meter kast"'))
    check(e, 'modules."meter kast"', 1, "may only use letters, digits")
    e = error(MINIMAL.replace("meterkast", "_auth"))  # would overwrite the logins' document
    check(e, "modules._auth", 1, "not starting with '_'")


def test_model_is_required_and_must_be_2_or_5() -> None:
    check(
        error(MINIMAL.replace("model = 5\n", "")),
        "modules.meterkast.model",
        1,
        "missing: the module's model",
    )
    check(
        error(MINIMAL.replace("model = 5", "model = 3")),
        "modules.meterkast.model",
        2,
        "must be 2 (S0PCM-2) or 5 (S0PCM-5), got the integer 3",
    )
    check(
        error(MINIMAL.replace("model = 5", 'model = "5"')),
        "modules.meterkast.model",
        2,
        'got the string "5"',
    )
    check(
        error(MINIMAL.replace("model = 5", "model = 5.0")),
        "modules.meterkast.model",
        2,
        "got the number 5.0",
    )


def test_port_must_be_auto_a_device_or_a_url() -> None:
    e = error(MINIMAL.replace("model = 5", 'model = 5\nport = "ttyACM0"'))
    check(e, "modules.meterkast.port", 3, 'must be "auto", a device path')


def test_invalid_framing() -> None:
    e = error(MINIMAL.replace("model = 5", 'model = 5\nframing = "7X1"'))
    check(e, "modules.meterkast.framing", 3, "framing '7X1' is not like 7E1 or 8N1")


def test_invalid_thresholds() -> None:
    e = error(MINIMAL.replace("model = 5", 'model = 2\nthresholds = "T5=40;"'))
    check(e, "modules.meterkast.thresholds", 3, "register 5 does not exist on the S0PCM-2")
    e = error(MINIMAL.replace("model = 5", 'model = 5\nthresholds = "T1=4000;"'))
    check(e, "modules.meterkast.thresholds", 3, "outside 1..1000 ms")
    e = error(MINIMAL.replace("model = 5", "model = 5\nthresholds = 40"))
    check(e, "modules.meterkast.thresholds", 3, 'like "T1=40;T2=40;"')


DUPLICATE_PORTS = """\
[modules.a]
model = 5
port = "/dev/ttyACM0"

[modules.a.meters.1]
kind = "gas"
pulses_per_unit = 100

[modules.b]
model = 2
port = "/dev/../dev/ttyACM0"

[modules.b.meters.1]
kind = "water"
pulses_per_unit = 1
"""


def test_duplicate_ports() -> None:
    e = error(DUPLICATE_PORTS)
    check(e, "modules.b.port", 11, 'port "/dev/../dev/ttyACM0" is already used by module "a"')


def test_duplicate_ports_through_a_link(tmp_path: Path) -> None:
    device = tmp_path / "ttyACM0"
    device.touch()
    link = tmp_path / "usb-Arduino-if00"
    link.symlink_to(device)
    text = DUPLICATE_PORTS.replace("/dev/ttyACM0", str(device)).replace(
        "/dev/../dev/ttyACM0", str(link)
    )
    check(error(text), "modules.b.port", 11, 'is already used by module "a"')


def test_only_one_module_can_find_its_port_automatically() -> None:
    text = DUPLICATE_PORTS.replace('port = "/dev/ttyACM0"\n', "").replace(
        'port = "/dev/../dev/ttyACM0"\n', ""
    )
    check(
        error(text),
        "modules.b.port",
        8,
        'port "auto" is already used by module "a"',
        "give each its port",
    )


def test_module_without_meters() -> None:
    e = error("[modules.meterkast]\nmodel = 5\n")
    check(
        e,
        "modules.meterkast.meters",
        1,
        'module "meterkast" has no meters',
        "[modules.meterkast.meters.1]",
    )


# --- meters --------------------------------------------------------------------------------------


def test_register_out_of_range_for_the_model() -> None:
    e = error(MINIMAL.replace("model = 5", "model = 2").replace("meters.1", "meters.3"))
    check(
        e,
        "modules.meterkast.meters.3",
        4,
        "register 3 does not exist on the S0PCM-2",
        "registers 1..2",
    )
    e = error(MINIMAL.replace("meters.1", "meters.6"))
    check(e, "modules.meterkast.meters.6", 4, "register 6 does not exist on the S0PCM-5")


def test_register_must_be_a_number() -> None:
    for register in ("M1", "0", "01", "one"):
        e = error(MINIMAL.replace("meters.1", f"meters.{register}"))
        check(e, f"modules.meterkast.meters.{register}", 4, "register must be a number 1..5")


def test_kind_is_required_and_checked() -> None:
    check(
        error(MINIMAL.replace('kind = "electricity"\n', "")),
        "modules.meterkast.meters.1.kind",
        4,
        "missing: the kind of meter",
    )
    check(
        error(MINIMAL.replace('"electricity"', '"electricty"')),
        "modules.meterkast.meters.1.kind",
        5,
        'did you mean "electricity"?',
    )


def test_a_meter_counts_consumption_unless_it_says_production() -> None:
    assert config(MINIMAL).meters[0].direction is Direction.CONSUMPTION
    solar = config(MINIMAL + 'direction = "Production"\n').meters[0]
    assert solar.direction is Direction.PRODUCTION
    assert solar.produces
    check(
        error(MINIMAL + 'direction = "produce"\n'),
        "modules.meterkast.meters.1.direction",
        7,
        'unknown direction "produce"',
        'did you mean "production"?',
    )


def test_pulses_per_unit_must_be_a_number_above_zero() -> None:
    for value, fragment in [
        ("0", "must be a number > 0, got 0"),
        ("-1000", "must be a number > 0, got -1000"),
        ("inf", "must be a number > 0, got the number inf"),
        ("nan", "must be a number > 0, got the number nan"),
    ]:
        e = error(MINIMAL.replace("1000", value))
        check(e, "modules.meterkast.meters.1.pulses_per_unit", 6, fragment)
    check(
        error(MINIMAL.replace("pulses_per_unit = 1000\n", "")),
        "modules.meterkast.meters.1.pulses_per_unit",
        4,
        "missing",
    )


def test_a_constant_has_the_bounds_the_dashboard_has() -> None:
    """Once the file took a constant of 2e9 that the dashboard then refused to save back: one
    rule (``s0pcm.meters.constant_problem``) and one set of bounds for every way in."""
    for value, fragment in [
        ("2e9", "must be at most 1e+09, got 2e+09"),
        ("1e-7", "must be at least 1e-06, got 1e-07"),
    ]:
        e = error(MINIMAL.replace("1000", value))
        check(e, "modules.meterkast.meters.1.pulses_per_unit", 6, fragment)
    for value in ("1e9", "1e-6"):
        parse_config(MINIMAL.replace("1000", value))


def test_unit_must_suit_the_kind() -> None:
    e = error(MINIMAL.replace('"electricity"', '"gas"') + 'unit = "kWh"\n')
    check(
        e, "modules.meterkast.meters.1.unit", 7, '"kWh" is not a unit for gas meters', "use m³, L"
    )
    e = error(MINIMAL + 'unit = "kw"\n')
    check(e, "modules.meterkast.meters.1.unit", 7, 'did you mean "kWh"?')


def test_unit_spelling_is_forgiven() -> None:
    c = config(MINIMAL.replace('"electricity"', '"heat"') + 'unit = "mwh"\n')
    assert c.meters[0].unit == "MWh"


def test_reading_needs_reading_at_and_the_other_way_round() -> None:
    e = error(MINIMAL + "reading = 12.5\n")
    check(e, "modules.meterkast.meters.1.reading", 7, "reading needs reading_at")
    e = error(MINIMAL + "reading_at = 2026-11-01T12:00:00+01:00\n")
    check(e, "modules.meterkast.meters.1.reading_at", 7, "reading_at needs reading")


def test_reading_at_needs_an_offset() -> None:
    for value, fragment in [
        ("2026-11-01T12:00:00", "needs a time-zone offset"),
        ("2026-11-01 12:00:00", "needs a time-zone offset"),
        ("2026-11-01", "got the date 2026-11-01"),
        ("12:00:00", "got the time 12:00:00"),
        ('"2026-11-01T12:00:00+01:00"', "without quotes"),
    ]:
        e = error(MINIMAL + f"reading = 1.0\nreading_at = {value}\n")
        check(e, "modules.meterkast.meters.1.reading_at", 8, fragment)


def test_reading_at_with_offset_or_z() -> None:
    c = config(MINIMAL + "reading = 1.0\nreading_at = 2026-11-01T11:00:00Z\n")
    assert c.meters[0].reading_at == datetime.fromisoformat("2026-11-01T12:00:00+01:00").timestamp()


def test_meter_key_characters() -> None:
    e = error(MINIMAL + 'key = "my meter"\n')
    check(e, "modules.meterkast.meters.1.key", 7, "may only use letters, digits")


DUPLICATE_KEYS = """\
[modules.meterkast]
model = 5

[modules.meterkast.meters.1]
kind = "electricity"
pulses_per_unit = 1000
key = "power"

[modules.meterkast.meters.2]
kind = "electricity"
pulses_per_unit = 1000
key = "power"
"""


def test_duplicate_meter_keys() -> None:
    e = error(DUPLICATE_KEYS)
    check(
        e,
        "modules.meterkast.meters.2.key",
        12,
        'meter key "power" is already used by [modules.meterkast.meters.1] (line 4)',
    )


def test_duplicate_meter_key_with_a_default_key() -> None:
    e = error(
        DUPLICATE_KEYS.replace('key = "power"', 'key = "meterkast.1"', 2).replace(
            'key = "meterkast.1"\n', "", 1
        )
    )
    check(e, "modules.meterkast.meters.2.key", 11, '"meterkast.1" is already used')


# --- where the line comes from -------------------------------------------------------------------


def test_crlf_line_endings() -> None:
    text = MINIMAL.replace("\n", "\r\n") + "pulses_per_unti = 5\r\n"
    check(error(text), "modules.meterkast.meters.1.pulses_per_unti", 7, "did you mean")
    assert config(MINIMAL.replace("\n", "\r\n")).meters[0].key == "meterkast.1"
    e = error(MINIMAL.replace("\n", "\r\n").replace("1000", "1000 x"))
    check(e, "modules.meterkast.meters.1.pulses_per_unit", 6, "TOML syntax error")


def test_crlf_file_on_disk(tmp_path: Path) -> None:
    file = tmp_path / "s0pcm.toml"
    file.write_bytes((MINIMAL + 'unit = "kW"\n').replace("\n", "\r\n").encode())
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert (info.value.key, info.value.line) == ("modules.meterkast.meters.1.unit", 7)


def test_quoted_table_keys() -> None:
    e = error(
        """\
        [modules."meterkast"]
        model = 5

        [ modules . "meterkast" . meters . '1' ]
        kind = "gas"
        pulses_per_unit = 100

        [modules."meterkast".meters."2"]
        kind = "gas"
        pulses_per_unit = -1
        """
    )
    check(e, "modules.meterkast.meters.2.pulses_per_unit", 10, "must be a number > 0")
    c = config(
        '[modules."meter\\u006bast"]\nmodel = 5\n[modules.meterkast.meters."1"]\n'
        'kind = "gas"\npulses_per_unit = 1\n'
    )
    assert c.meters[0].key == "meterkast.1"


def test_quoted_key_in_the_error_is_quoted() -> None:
    e = error(MINIMAL.replace("meters.1]", 'meters."1 "]'))
    check(e, 'modules.meterkast.meters."1 "', 4, "register must be a number")


def test_dotted_keys_give_their_own_line() -> None:
    e = error(
        """\
        [modules.meterkast]
        model = 5
        meters.1.kind = "gas"

        meters.1.pulses_per_unit = "100"
        """
    )
    check(e, "modules.meterkast.meters.1.pulses_per_unit", 5, 'got the string "100"')
    e = error('logger.timezone = "Mars/Olympus_Mons"\n' + MINIMAL)
    check(e, "logger.timezone", 1, "unknown time zone")


def test_inline_tables_give_the_line_of_their_key() -> None:
    e = error(
        """\
        [modules.meterkast]
        model = 5
        meters = { 1 = { kind = "gas", pulses_per_unit = 1 },
                   2 = { kind = "gas", pulses_per_unit = 0 } }
        """.replace(",\n                   2", ", 2")
    )
    check(e, "modules.meterkast.meters.2.pulses_per_unit", 3, "must be a number > 0")


def test_missing_key_in_an_inline_table_gives_the_line_of_the_table() -> None:
    e = error(
        """\
        # a comment
        [modules.meterkast]
        model = 5
        meters.1 = { kind = "gas" }
        """
    )
    check(e, "modules.meterkast.meters.1.pulses_per_unit", 4, "missing")


def test_strings_and_arrays_that_look_like_toml_do_not_move_lines() -> None:
    e = error(
        '''\
        [logger]
        # [modules.fake] in a comment
        database = """
        [modules.meterkast]
        model = 2
        """
        journal = \'\'\'
        kind = "gas" \'\'\'
        raw_retention_days = 1 # ]

        [modules.meterkast]
        model = 5

        [modules.meterkast.meters.1]
        kind = "gas"
        pulses_per_unit = 0
        '''
    )
    check(e, "modules.meterkast.meters.1.pulses_per_unit", 16, "must be a number > 0")
    e = error(
        '''\
        [modules.meterkast]
        model = 5
        port = "/dev/tty\\"ACM0"
        framing = """7E1""\"""
        '''
    )
    check(e, "modules.meterkast.framing", 4, "is not like 7E1")


def test_multiline_array_before_the_error() -> None:
    e = error(
        """\
        [logger]
        timezone = "UTC"

        [web]
        listen = [
          "127.0.0.1:8080",  # ]
          [1, 2],
        ]
        """
        + MINIMAL
    )
    check(e, "web.listen", 5, "got an array")


def test_error_in_a_later_module_names_that_module() -> None:
    text = MINIMAL + dedent(
        """
        [modules.garage]
        model = 2
        port = "/dev/ttyUSB0"

        [modules.garage.meters.2]
        kind = "water"
        pulses_per_unit = 1
        unit = "gallon"
        """
    )
    check(error(text), "modules.garage.meters.2.unit", 15, '"gallon" is not a unit for water')


def test_environment_is_not_read_for_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    c = parse_config('[logger]\ndatabase = "x.sqlite"\n' + MINIMAL)
    assert c.logger.database == os.path.join(tmp_path, "x.sqlite")
    assert c.path == "<string>"
