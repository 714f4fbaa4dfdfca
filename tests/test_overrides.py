"""What the dashboard changed (``s0pcm.logger.overrides``), read back from a real SQLite store: the
meter settings laid over the configuration, the threshold requests, and what is ignored in those
documents when it makes no sense (a document from another version must not stop the logger).

The malformed-entry tests began as bugs found here (a wrong type read with str()/bool(), a
document that is not an object stopping the reader): the entries are now declared once
(``MeterSettings``, ``ThresholdRequest``) and decoded through that declaration."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s0pcm.config import Config, load_config
from s0pcm.events import EventKind
from s0pcm.logger.overrides import (
    METERS_KEY,
    THRESHOLDS_KEY,
    ThresholdRequest,
    add_reading,
    effective_meters,
    threshold_requests,
)
from s0pcm.meters import Kind, Meter
from s0pcm.store import Store, open_store
from tests.helpers import TZ
from tests.helpers.logger import write_config

AT = 1_770_000_000.0


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Module ``kast``, meters kast.1 to kast.5: electricity 1000/kWh, gas 100/m³, water 1/m³,
    heat 1000/GJ, other 1."""
    return load_config(write_config(tmp_path))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "x.sqlite"


@pytest.fixture
def reader(db: Path) -> Iterator[Store]:
    with open_store(str(db), tz=TZ) as opened:
        yield opened


def stored(db: Path, key: str, doc: Any) -> None:
    """``doc`` as the state document ``key``, committed, from another connection."""
    with open_store(str(db), tz=TZ) as writer:
        writer.set_state(key, doc)
        writer.commit()


def configured(config: Config, key: str) -> Meter:
    return next(m for m in config.meters if m.key == key)


def effective(config: Config, reader: Store, key: str) -> Meter:
    return next(m for m in effective_meters(config, reader) if m.key == key)


# -- meter settings -------------------------------------------------------------------------------


def test_without_a_document_the_meters_are_as_configured(config: Config, reader: Store) -> None:
    assert effective_meters(config, reader) == config.meters


def test_stored_settings_lie_over_the_configuration(
    config: Config, db: Path, reader: Store
) -> None:
    stored(db, METERS_KEY, {
        "kast.1": {"name": "Stroom", "pulses_per_unit": 500, "enabled": False},
        "kast.3": {"kind": "gas"},
    })  # fmt: skip
    meters = effective_meters(config, reader)
    assert [m.key for m in meters] == [m.key for m in config.meters]  # the same meters, in order
    power = meters[0]
    assert (power.name, power.kind, power.unit) == ("Stroom", Kind.ELECTRICITY, "kWh")
    assert power.pulses_per_unit == 500.0
    assert power.enabled is False
    assert (meters[2].name, meters[2].kind, meters[2].unit) == ("Meter 3", Kind.GAS, "m³")
    for untouched in (1, 3, 4):
        assert meters[untouched] == config.meters[untouched]


@pytest.mark.parametrize(
    ("key", "kind", "unit"),
    [
        ("kast.1", "gas", "m³"),  # gas has no kWh: its own unit
        ("kast.1", "heat", "kWh"),  # heat knows kWh: kept
        ("kast.2", "water", "m³"),  # both know m³
        ("kast.1", "other", "kWh"),  # "other" keeps whatever unit the meter had
        ("kast.5", "water", "m³"),  # "" is no water unit
        ("kast.2", "gas", "m³"),  # the same kind: nothing changes
    ],
)
def test_a_new_kind_keeps_the_unit_when_it_knows_it(
    config: Config, db: Path, reader: Store, key: str, kind: str, unit: str
) -> None:
    stored(db, METERS_KEY, {key: {"kind": kind}})
    meter = effective(config, reader, key)
    assert (meter.kind, meter.unit) == (Kind(kind), unit)


@pytest.mark.parametrize(
    "entry",
    [
        "Stroom",
        ["name", "Stroom"],
        500,
        None,
        True,
        {"kind": "plasma", "name": "Stroom"},  # a kind this version does not know
        {"kind": None},
        {"pulses_per_unit": 0},
        {"pulses_per_unit": -1000},
        {"pulses_per_unit": math.inf},
        {"pulses_per_unit": math.nan},
        {"pulses_per_unit": "a thousand"},
        {"pulses_per_unit": None},
        {"pulses_per_unit": [1000]},
        {"name": "Stroom", "pulses_per_unit": 0},  # the whole entry, not only the bad part
    ],
    ids=repr,
)
def test_a_malformed_entry_is_ignored_and_the_others_hold(
    config: Config, db: Path, reader: Store, entry: Any
) -> None:
    stored(db, METERS_KEY, {"kast.1": entry, "kast.2": {"name": "Gas"}})
    meters = effective_meters(config, reader)
    assert meters[0] == config.meters[0]
    assert meters[1].name == "Gas"


def test_unknown_meters_and_fields_are_ignored(config: Config, db: Path, reader: Store) -> None:
    """A meter no longer configured, a field from another version: passed over."""
    stored(db, METERS_KEY, {
        "gone.1": {"name": "Old", "kind": "gas"},
        "kast.1": {"colour": "red", "name": "Stroom"},
    })  # fmt: skip
    meters = effective_meters(config, reader)
    assert [m.key for m in meters] == [m.key for m in config.meters]
    assert meters[0].name == "Stroom"
    assert meters[1:] == config.meters[1:]


@pytest.mark.parametrize(
    "entry",
    [{"name": None}, {"name": ["a"]}, {"enabled": None}, {"enabled": []}],
    ids=repr,
)
def test_a_name_or_switch_of_the_wrong_type_is_ignored(
    config: Config, db: Path, reader: Store, entry: dict[str, Any]
) -> None:
    stored(db, METERS_KEY, {"kast.1": entry})
    assert effective(config, reader, "kast.1") == configured(config, "kast.1")


def test_a_constant_of_true_is_ignored(config: Config, db: Path, reader: Store) -> None:
    stored(db, METERS_KEY, {"kast.1": {"pulses_per_unit": True}})
    assert effective(config, reader, "kast.1") == configured(config, "kast.1")


def _replace_document(db: Path, key: str, text: str) -> None:
    """Write the raw JSON of a state document behind the store's back (the store only writes
    objects)."""
    with contextlib.closing(sqlite3.connect(db)) as lite, lite:
        lite.execute("UPDATE state SET document = ? WHERE module = ?", (text, key))


def test_a_meters_document_that_is_not_an_object_is_ignored(
    config: Config, db: Path, reader: Store
) -> None:
    stored(db, METERS_KEY, {"kast.1": {"name": "Stroom"}})
    _replace_document(db, METERS_KEY, '["kast.1"]')
    assert effective_meters(config, reader) == config.meters


# -- a replaced meter's constant ------------------------------------------------------------------


def test_a_replacement_with_a_new_constant_becomes_the_meters_and_keeps_the_rest(
    config: Config, db: Path, reader: Store
) -> None:
    stored(db, METERS_KEY, {"kast.1": {"name": "Stroom"}})
    meter = effective(config, reader, "kast.1")
    before = add_reading(reader, meter, at=AT, reading=10.0, replaced=True, pulses_per_unit=500)
    reader.commit()
    assert before is None  # no reading set before
    assert reader.state(METERS_KEY) == {"kast.1": {"name": "Stroom", "pulses_per_unit": 500}}
    now = effective(config, reader, "kast.1")
    assert (now.name, now.pulses_per_unit) == ("Stroom", 500.0)
    [anchor] = reader.anchors("kast.1")
    assert (anchor.at, anchor.reading, anchor.pulses_per_unit) == (AT, 10.0, 500.0)
    [event] = [e for e in reader.events(limit=10) if e.meter == "kast.1"]
    assert event.kind is EventKind.REPLACEMENT


def test_a_correction_leaves_the_settings_alone(config: Config, db: Path, reader: Store) -> None:
    stored(db, METERS_KEY, {"kast.1": {"name": "Stroom"}})
    add_reading(reader, effective(config, reader, "kast.1"), at=AT, reading=10.0)
    reader.commit()
    assert reader.state(METERS_KEY) == {"kast.1": {"name": "Stroom"}}
    assert reader.anchors("kast.1")[0].pulses_per_unit == 1000.0  # the constant in force


def test_a_replacement_over_a_malformed_entry_stores_the_new_constant(
    config: Config, db: Path, reader: Store
) -> None:
    stored(db, METERS_KEY, {"kast.1": "Stroom"})
    meter = effective(config, reader, "kast.1")  # the malformed entry is ignored here
    add_reading(reader, meter, at=AT, reading=10.0, replaced=True, pulses_per_unit=500)
    reader.commit()
    assert effective(config, reader, "kast.1").pulses_per_unit == 500.0


# -- threshold requests ---------------------------------------------------------------------------


def test_no_document_no_requests(reader: Store) -> None:
    assert threshold_requests(reader.state(THRESHOLDS_KEY)) == {}
    assert threshold_requests(None) == {}
    assert threshold_requests({}) == {}


def test_requests_come_back_by_module(db: Path, reader: Store) -> None:
    stored(db, THRESHOLDS_KEY, {
        "kast": {"command": "T1=40;", "seq": 3, "at": AT},
        "schuur": {"command": "T2=50;", "seq": 1, "at": 1770000000},  # an int time
        "zolder": {"command": "T3=60;", "seq": 2},  # no time: 0
    })  # fmt: skip
    requests = threshold_requests(reader.state(THRESHOLDS_KEY))
    assert requests == {
        "kast": ThresholdRequest("T1=40;", 3, AT),
        "schuur": ThresholdRequest("T2=50;", 1, AT),
        "zolder": ThresholdRequest("T3=60;", 2, 0.0),
    }
    assert isinstance(requests["schuur"].at, float)


@pytest.mark.parametrize(
    "entry",
    [
        "T1=40;",
        ["T1=40;", 3],
        None,
        {"seq": 3},  # no command
        {"command": 40, "seq": 3},
        {"command": None, "seq": 3},
        {"command": "T1=40;"},  # no seq
        {"command": "T1=40;", "seq": "3"},
        {"command": "T1=40;", "seq": 3.0},
        {"command": "T1=40;", "seq": None},
        {"command": "T1=40;", "seq": 3, "at": "now"},
        {"command": "T1=40;", "seq": 3, "at": None},
    ],
    ids=repr,
)
def test_a_malformed_request_is_skipped_and_the_others_hold(
    db: Path, reader: Store, entry: Any
) -> None:
    stored(db, THRESHOLDS_KEY, {"kast": entry, "schuur": {"command": "T2=50;", "seq": 1}})
    assert threshold_requests(reader.state(THRESHOLDS_KEY)) == {
        "schuur": ThresholdRequest("T2=50;", 1, 0.0)
    }


def test_the_command_is_not_checked_here(db: Path, reader: Store) -> None:
    """Any string passes: the logger parses it for the module's model, and skips (once) what it
    cannot use."""
    stored(db, THRESHOLDS_KEY, {"kast": {"command": "not a command", "seq": 1}})
    assert threshold_requests(reader.state(THRESHOLDS_KEY)) == {
        "kast": ThresholdRequest("not a command", 1, 0.0)
    }


def test_a_seq_of_true_is_skipped(db: Path, reader: Store) -> None:
    stored(db, THRESHOLDS_KEY, {"kast": {"command": "T1=40;", "seq": True}})
    assert threshold_requests(reader.state(THRESHOLDS_KEY)) == {}


def test_a_thresholds_document_that_is_not_an_object_gives_no_requests(
    db: Path, reader: Store
) -> None:
    stored(db, THRESHOLDS_KEY, {"kast": {"command": "T1=40;", "seq": 1}})
    _replace_document(db, THRESHOLDS_KEY, '[{"command": "T1=40;", "seq": 1}]')
    assert threshold_requests(reader.state(THRESHOLDS_KEY)) == {}
