"""Taking over the totals of the readers in use today (their ``measurement.yaml``).

The samples are built from what the readers' code writes (see ``s0pcm.tools.legacy`` for the files):
``yaml.dump(measurement, f, default_flow_style=False)`` of a dict with integer register keys and
a ``date``; darkrain 2.0's JSON; hansij66's timestamp variant.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from s0pcm.errors import LegacyFileError
from s0pcm.tools.legacy import LegacyTotal, parse_measurement_yaml, read_measurement_yaml

#: ualex73/docker-s0pcm-reader on an S0PCM-5 with a water meter on M1, as the reader writes it
#: after creating the file itself: ``date`` first, then every register of the telegram.
UALEX73 = """\
date: 2026-11-01
1:
  pulsecount: 24130
  today: 431
  total: 770123
  yesterday: 512
2:
  pulsecount: 0
  today: 0
  total: 0
  yesterday: 0
3:
  pulsecount: 0
  today: 0
  total: 0
  yesterday: 0
4:
  pulsecount: 0
  today: 0
  total: 0
  yesterday: 0
5:
  pulsecount: 0
  today: 0
  total: 0
  yesterday: 0
"""

#: darkrain-nl/home-assistant-addon-s0pcm-reader 1.x (/share/s0pcm/measurement.yaml) on an
#: S0PCM-2, after the user started from the README's hand-written ``1: total: ...`` (so ``date``
#: was appended last) and added a name and ``enabled: false``, which the reader keeps.
DARKRAIN_YAML = """\
1:
  name: Water
  pulsecount: 1532
  today: 212
  total: 370901
  yesterday: 348
2:
  enabled: false
  pulsecount: 0
  today: 0
  total: 0
  yesterday: 0
date: 2026-01-05
"""

#: darkrain 2.0.x: the same structure as JSON in /data/measurement.json (DOCS.md's example).
DARKRAIN_JSON = """\
{
    "date": "2026-01-08",
    "1": {
        "pulsecount": 0,
        "today": 194,
        "total": 1322738,
        "yesterday": 139
    },
    "2": {
        "pulsecount": 0,
        "today": 0,
        "total": 0,
        "yesterday": 0,
        "name": "Water"
    }
}
"""

#: hansij66/S0PCM2MQTT: only totals, and ``date`` is the Unix time of the last write.
HANSIJ66 = """\
1:
  total: 240
2:
  total: 0
3:
  total: 1000
4:
  total: 0
5:
  total: 8
date: 1647709743
"""

#: What the ualex73 README tells users to write before the first start.
HAND_WRITTEN = """\
1:
  total: 370689
"""


def totals(text: str) -> list[LegacyTotal]:
    return parse_measurement_yaml(text, path="measurement.yaml")


def error(text: str) -> LegacyFileError:
    with pytest.raises(LegacyFileError) as info:
        parse_measurement_yaml(text, path="measurement.yaml")
    return info.value


def check(e: LegacyFileError, key: str | None, line: int | None, fragment: str) -> None:
    assert (e.file, e.key, e.line) == ("measurement.yaml", key, line), str(e)
    where = "measurement.yaml" if line is None else f"measurement.yaml:{line}"
    if key is not None:
        where += f" [{key}]"
    assert str(e).startswith(f"{where}: "), str(e)
    assert fragment in e.message, e.message


# --- the variants --------------------------------------------------------------------------------


def test_ualex73_sample_is_what_the_reader_writes() -> None:
    """The sample is byte for byte what ``yaml.dump`` makes of the reader's dict."""
    measurement: dict[object, object] = {"date": dt.date(2026, 11, 1)}
    for register in range(1, 6):
        measurement[register] = {"pulsecount": 0, "total": 0, "today": 0, "yesterday": 0}
    measurement[1] = {"pulsecount": 24130, "total": 770123, "today": 431, "yesterday": 512}
    assert yaml.dump(measurement, default_flow_style=False) == UALEX73


def test_ualex73_layout() -> None:
    found = totals(UALEX73)
    assert [t.register for t in found] == [1, 2, 3, 4, 5]
    assert found[0] == LegacyTotal(
        register=1,
        total=770123,
        pulsecount=24130,
        today=431,
        yesterday=512,
        date=dt.date(2026, 11, 1),
        line=2,
    )
    assert all(t.total == 0 and t.date == dt.date(2026, 11, 1) for t in found[1:])
    assert [t.line for t in found] == [2, 7, 12, 17, 22]


def test_darkrain_yaml_with_name_and_disabled_register() -> None:
    water, second = totals(DARKRAIN_YAML)
    assert (water.register, water.name, water.total, water.enabled) == (1, "Water", 370901, None)
    assert (water.today, water.yesterday, water.pulsecount) == (212, 348, 1532)
    assert (second.register, second.enabled, second.name) == (2, False, None)
    assert water.date == second.date == dt.date(2026, 1, 5)


def test_darkrain_json_with_string_keys_and_string_date() -> None:
    first, water = totals(DARKRAIN_JSON)
    assert (first.register, first.total, first.today, first.yesterday) == (1, 1322738, 194, 139)
    assert (water.register, water.name) == (2, "Water")
    assert first.date == dt.date(2026, 1, 8)
    assert (first.line, water.line) == (3, 9)


def test_hansij66_timestamp_date() -> None:
    found = totals(HANSIJ66)
    assert [(t.register, t.total) for t in found] == [(1, 240), (2, 0), (3, 1000), (4, 0), (5, 8)]
    assert found[0].updated_at == 1647709743.0
    assert found[0].date == dt.date(2022, 3, 19)
    assert found[0].pulsecount is None
    assert found[0].today is None
    never = totals(HANSIJ66.replace("1647709743", "0"))
    assert never[0].updated_at is None
    assert never[0].date is None


def test_hand_written_file_without_date() -> None:
    (only,) = totals(HAND_WRITTEN)
    assert (only.register, only.total, only.date, only.pulsecount) == (1, 370689, None, None)


def test_tolerated_spellings() -> None:
    found = totals(
        "date: 2026-11-01 10:15:00\n"
        "'2':\n  total: '1234'\n  today: 12.0\n"
        "1:\n  total: 5\n  name: 3\n  comment: my water meter\n"
        "version: 2\n"
    )
    assert [(t.register, t.total, t.today, t.name) for t in found] == [
        (1, 5, None, "3"),
        (2, 1234, 12, None),
    ]
    assert found[0].date == dt.date(2026, 11, 1)


def test_register_without_total_counts_from_zero() -> None:
    (only,) = totals("1:\n  name: Gas\n")
    assert (only.total, only.name) == (0, "Gas")


def test_crlf_file(tmp_path: Path) -> None:
    file = tmp_path / "measurement.yaml"
    file.write_bytes(DARKRAIN_YAML.replace("\n", "\r\n").encode())
    water, _ = read_measurement_yaml(file)
    assert (water.name, water.total) == ("Water", 370901)
    file.write_bytes(DARKRAIN_YAML.replace("370901", "-1").replace("\n", "\r\n").encode())
    with pytest.raises(LegacyFileError) as info:
        read_measurement_yaml(file)
    assert (info.value.file, info.value.key, info.value.line) == (str(file), "1.total", 5)


def test_read_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "measurement.yaml"
    file.write_text(UALEX73, encoding="utf-8")
    assert read_measurement_yaml(file) == totals(UALEX73)
    assert read_measurement_yaml(str(file))[0].total == 770123


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LegacyFileError) as info:
        read_measurement_yaml(tmp_path / "measurement.yaml")
    assert info.value.file == str(tmp_path / "measurement.yaml")
    assert "cannot read" in info.value.message


# --- malformed files -----------------------------------------------------------------------------


def test_yaml_syntax_error_has_the_line() -> None:
    check(error("date: 2026-11-01\n1:\n  total: [1,\n"), None, 4, "YAML error")
    check(error("1:\n  total: 1\n\ttoday: 2\n"), None, 3, "YAML error")


def test_empty_file() -> None:
    check(error(""), None, None, "empty")
    check(error("# nothing yet\n"), None, None, "empty")


def test_not_a_mapping() -> None:
    check(error("- 1\n- 2\n"), None, 1, "must be a mapping of registers")


def test_register_that_does_not_exist() -> None:
    check(error(UALEX73 + "6:\n  total: 1\n"), "6", 27, "register 6 does not exist")
    check(error("'0':\n  total: 1\n"), "0", 1, "register 0 does not exist")


def test_register_that_is_not_a_mapping() -> None:
    check(error("date: 2026-11-01\n1: 370689\n"), "1", 2, "must be a mapping with its total")
    check(error("1:\n2:\n  total: 1\n"), "1", 1, "got nothing (null)")


def test_register_twice() -> None:
    check(error("1:\n  total: 1\n'1':\n  total: 2\n"), "1", 3, "appears twice (first on line 1)")


def test_field_twice() -> None:
    check(error("1:\n  total: 1\n  total: 2\n"), "1.total", 3, "appears twice")


def test_counts_must_be_whole_pulses() -> None:
    check(error(UALEX73.replace("770123", "770.123")), "1.total", 5, "770.123 m³ at 1 imp/L")
    check(error(UALEX73.replace("today: 431", "today: -4")), "1.today", 4, ">= 0, got -4")
    check(error(UALEX73.replace("24130", "lots")), "1.pulsecount", 3, "got 'lots'")
    check(error(UALEX73.replace("yesterday: 512", "yesterday: yes")), "1.yesterday", 6, "got True")
    check(error(UALEX73.replace("770123", "[1]")), "1.total", 5, "got a list")


def test_bad_date() -> None:
    check(error(UALEX73.replace("2026-11-01", "1st of November")), "date", 1, "must be a date")
    check(error("1:\n  total: 1\ndate: -5\n"), "date", 3, "must be a date")


def test_bad_name_and_enabled() -> None:
    check(error("1:\n  name: [a, b]\n"), "1.name", 2, "must be a name")
    check(error("1:\n  enabled: 'no'\n"), "1.enabled", 2, "must be true or false")


def test_unsafe_tags_are_refused() -> None:
    check(error("1:\n  total: !!python/name:os.system\n"), None, 2, "YAML error")
