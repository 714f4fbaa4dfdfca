"""The encoders: MQTT state, Home Assistant discovery and Domoticz payloads from the logger's
updates. Every discovery config passes Home Assistant's rules (tests/helpers/homeassistant.py),
golden examples of an S0PCM-5 with every kind, Domoticz's exact JSON types per device type, and
the documentation's examples are what is sent. (Through a real logger: the energy-dashboard
sensor never decreases, test_publish_energy_dashboard.py.)"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

from s0pcm import __version__
from s0pcm.events import DeviceEvent, EventKind
from s0pcm.ledger import LedgerStats
from s0pcm.logger.runner import Health, Update
from s0pcm.logger.snapshot import MeterValues
from s0pcm.meters import KINDS, Kind, Meter
from s0pcm.protocol import Model
from s0pcm.publish import Message
from s0pcm.publish.domoticz import COUNTER_DIVIDER, DEVICE_TYPES, DeviceType, domoticz_messages
from s0pcm.publish.homeassistant import ModuleInfo, announce
from s0pcm.publish.outbox import Outbox
from s0pcm.publish.state import update_messages
from s0pcm.publish.topics import Topics
from tests.helpers.homeassistant import (
    all_problems,
    config,
    dashboard_problems,
    problems,
    template_key,
)

TOPICS = Topics()
AT = 1796155200.0  # 2026-12-01 20:00:00 UTC
METERS = (
    Meter("kast.1", "Heat pump", "kast", 1, Kind.ELECTRICITY, "kWh", 1000.0),
    Meter("kast.2", "Gas", "kast", 2, Kind.GAS, "m³", 100.0),
    Meter("kast.3", "Water", "kast", 3, Kind.WATER, "L", 1.0),
    Meter("kast.4", "District heating", "kast", 4, Kind.HEAT, "GJ", 1000.0),
    Meter("kast.5", "Rain barrel", "kast", 5, Kind.OTHER, "", 1.0),
)


def health() -> Health:
    return Health(
        "kast",
        port="/dev/ttyACM0",
        connected=True,
        since=AT - 3600,
        last_record_at=AT,
        last_telegram_at=AT,
        module_id="8237",
        firmware="V0.6",
        thresholds=[30, 30, 30, 30, 30],
        rejected={"not a data record": 2, "M1 total is not a non-negative integer": 1},
    )


def info(meters: tuple[Meter, ...] = METERS, *, model: Model = Model.S0PCM5) -> ModuleInfo:
    return ModuleInfo(health=health(), model=model, meters=meters)


def by_id(messages: list[Message]) -> dict[str, dict[str, Any]]:
    return {doc["unique_id"]: doc for doc in map(config, messages) if doc}


# -- Home Assistant discovery


def test_every_discovery_config_follows_home_assistants_rules() -> None:
    # Every kind in every unit it may be configured in, on both models.
    for model in Model:
        for kind, spec in KINDS.items():
            meters = tuple(
                Meter(f"m.{n}", f"{kind} {unit}", "m", n, kind, unit, 10.0)
                for n, (unit, _) in enumerate(spec.units[: model.value], start=1)
            )
            messages = announce([info(meters, model=model)], topics=TOPICS)
            assert len(messages) == 5 + 4 * len(meters)
            assert all_problems(messages) == []
            assert all(m.retain and m.qos == 1 for m in messages)


def test_the_rules_catch_what_home_assistant_refuses() -> None:
    """The check itself can fail: each broken variant of a good config is caught."""
    good = next(
        m for m in announce([info()], topics=TOPICS) if m.topic.endswith("_1_counted/config")
    )
    assert problems(good) == []
    doc = config(good)

    def broken(**change: Any) -> list[str]:
        variant = {k: v for k, v in (doc | change).items() if v is not None}
        return problems(dataclasses.replace(good, payload=json.dumps(variant).encode()))

    assert broken(unit_of_measurement="m3", device_class="gas")  # m3 is not m³
    assert broken(state_class="measurement")  # energy is a total
    assert broken(device_class="water")  # kWh is no water
    assert broken(object_id="s0pcm_8237_1_counted")
    assert broken(default_entity_id="s0pcm_8237_heat_pump")  # without its domain
    assert broken(availability=None)
    assert broken(availability_topic="s0pcm/status")
    assert broken(origin=None)
    assert broken(unique_id=None)
    assert broken(value_template="{{ value_json.counted | float }}")  # Domoticz cannot
    assert broken(entity_category="config")
    assert problems(dataclasses.replace(good, retain=False))
    assert problems(dataclasses.replace(good, topic="homeassistant/sensor/a.b/config"))


def test_an_s0pcm5_with_every_kind_announces_these_sensors() -> None:
    docs = by_id(announce([info()], topics=TOPICS))
    assert docs["s0pcm_8237_1_counted"] == {
        "name": "Heat pump consumption",
        "unique_id": "s0pcm_8237_1_counted",
        "default_entity_id": "sensor.s0pcm_8237_heat_pump_consumption",
        "state_topic": "s0pcm/8237/1/state",
        "value_template": "{{ value_json.counted }}",
        "device_class": "energy",
        "unit_of_measurement": "kWh",
        "state_class": "total_increasing",
        "suggested_display_precision": 3,
        "availability": [{"topic": "s0pcm/status"}, {"topic": "s0pcm/8237/status"}],
        "availability_mode": "all",
        "device": {
            "identifiers": ["s0pcm_8237"],
            "name": "S0PCM kast",
            "manufacturer": "SmartMeterDashboard",
            "model": "S0PCM-5",
            "sw_version": "V0.6",
            "serial_number": "8237",
        },
        "origin": {"name": "s0pcm", "sw_version": __version__},
    }
    assert docs["s0pcm_8237_last_record"] == {
        "name": "Last record",
        "unique_id": "s0pcm_8237_last_record",
        "default_entity_id": "sensor.s0pcm_8237_last_record",
        "entity_category": "diagnostic",
        "state_topic": "s0pcm/8237/health",
        "value_template": "{{ value_json.last_record }}",
        "device_class": "timestamp",
        "availability": [{"topic": "s0pcm/status"}],  # says when the module was last heard
        "availability_mode": "all",
        "device": docs["s0pcm_8237_1_counted"]["device"],
        "origin": docs["s0pcm_8237_1_counted"]["origin"],
    }
    link = docs["s0pcm_8237_link"]
    assert (link["state_topic"], link["payload_on"], link["device_class"]) == (
        "s0pcm/8237/status",
        "online",
        "connectivity",
    )
    diagnostics = {uid for uid, d in docs.items() if d.get("entity_category") == "diagnostic"}
    assert diagnostics == {
        f"s0pcm_8237_{k}" for k in ("link", "firmware", "last_record", "rejected", "restarts")
    }

    def classes(uid: str) -> tuple[Any, ...]:
        d = docs[uid]
        return (d.get("device_class"), d.get("unit_of_measurement"), d.get("state_class"))

    # (counted, reading, today, rate) per register; m³ is U+00B3.
    expected = {
        1: [("energy", "kWh", "total_increasing"), ("energy", "kWh", None),
            ("energy", "kWh", None), ("power", "W", "measurement")],
        2: [("gas", "m\u00b3", "total_increasing"), ("gas", "m\u00b3", None),
            ("gas", "m\u00b3", None), ("volume_flow_rate", "m\u00b3/h", "measurement")],
        3: [("water", "L", "total_increasing"), ("water", "L", None), ("water", "L", None),
            ("volume_flow_rate", "L/min", "measurement")],
        4: [("energy", "GJ", "total_increasing"), ("energy", "GJ", None),
            ("energy", "GJ", None), ("power", "kW", "measurement")],
        5: [(None, None, "total_increasing"), (None, None, None), (None, None, None),
            (None, "/h", "measurement")],
    }  # fmt: skip
    for register, rows in expected.items():
        fields = ("counted", "reading", "today", "rate")
        assert [classes(f"s0pcm_8237_{register}_{f}") for f in fields] == rows
        for f in fields:
            doc = docs[f"s0pcm_8237_{register}_{f}"]
            assert template_key(doc["value_template"]) == f
            assert doc["state_topic"] == f"s0pcm/8237/{register}/state"


def test_the_energy_dashboard_takes_the_counted_sensor_and_is_not_offered_the_reading() -> None:
    docs = by_id(announce([info()], topics=TOPICS))
    sources = {1: ["energy"], 2: ["gas"], 3: ["water"], 4: ["energy", "gas"]}
    for register, kinds in sources.items():
        for source in kinds:
            assert dashboard_problems(docs[f"s0pcm_8237_{register}_counted"], source) == []
            assert "statistics_not_defined" in dashboard_problems(
                docs[f"s0pcm_8237_{register}_reading"], source
            )


def test_a_meter_removed_or_switched_off_loses_its_configs_and_nothing_else(
    tmp_path: Path,
) -> None:
    """Through the outbox's announcement, across a reopen (a logger restart with a meter
    switched off): only the configs no longer announced are emptied, each once."""
    before = announce([info()], topics=TOPICS)
    box = Outbox(tmp_path / "o.outbox", limit=1000)
    assert box.announce(before) == (0, 0)
    assert box.announce(announce([info()], topics=TOPICS)) == (0, 0)
    assert announce([info()], topics=TOPICS) == before  # re-announcing sends the same bytes
    box.close()
    box = Outbox(tmp_path / "o.outbox", limit=1000)
    meters = (METERS[0], METERS[1], dataclasses.replace(METERS[3], enabled=False), METERS[4])
    after = announce([info(meters)], topics=TOPICS)
    assert box.announce(after) == (0, 8)
    sent = [e.message for e in box.peek(10_000)]
    gone = [m for m in sent if not m.payload]
    assert all(m.retain for m in gone)
    assert {re.sub(r".*_(\d)_\w+/config", r"\1", m.topic) for m in gone} == {"3", "4"}
    assert all(problems(m) == [] for m in gone)
    # What stays is announced with the same ids and topics, never emptied first.
    assert {m.topic for m in after} == {m.topic for m in before} - {m.topic for m in gone}
    assert box.announce(after) == (0, 0)  # emptied once
    box.close()


def test_discovery_off_announces_nothing() -> None:
    assert announce([info()], topics=Topics(discovery_prefix="")) == []


def test_until_the_module_prints_its_id_its_name_stands_in() -> None:
    unknown = dataclasses.replace(info(), health=Health("kast"))
    docs = by_id(announce([unknown], topics=Topics(base="home/s0")))
    doc = docs["s0pcm_kast_1_counted"]
    assert doc["state_topic"] == "home/s0/kast/1/state"
    assert doc["device"] == {
        "identifiers": ["s0pcm_kast"],
        "name": "S0PCM kast",
        "manufacturer": "SmartMeterDashboard",
        "model": "S0PCM-5",
    }


# -- the logger's own documents


def values(key: str, **kw: Any) -> MeterValues:
    base: dict[str, Any] = dict(
        reading=0.0, pulses=0, counted=0.0, today=0.0, yesterday_same_time=0.0, rate=None
    )
    return MeterValues(key=key, **(base | kw))


def test_state_health_and_events_for_one_update() -> None:
    event = DeviceEvent(
        at=AT, kind=EventKind.CORRECTION, module="kast", meter="kast.1", value=12345.678
    )
    update = Update(
        module="kast",
        at=AT,
        pulses={"kast.1": 3},
        events=(event,),
        values=(
            values("kast.1", reading=12345.678, pulses=2345678, counted=2345.678, today=4.25,
                   rate=1080.0),
            values("kast.3", reading=5.5, pulses=1234, counted=1234.0, today=12.0),
        ),
    )  # fmt: skip
    meters = (METERS[0], METERS[1], dataclasses.replace(METERS[2], enabled=False))
    stats = LedgerStats(headers=2, restarts=1)
    out = update_messages(
        update, meters=meters, health=health(), stats=stats, model=Model.S0PCM5, topics=TOPICS
    )
    assert [(m.topic, m.retain) for m in out] == [
        ("s0pcm/8237/events", False),
        ("s0pcm/8237/1/state", True),  # kast.3 is switched off: counted, not published
        ("s0pcm/8237/health", True),
        ("s0pcm/8237/status", True),
    ]
    events, state, doc, status = out
    assert json.loads(state.payload) == {
        "key": "kast.1",
        "name": "Heat pump",
        "kind": "electricity",
        "reading": 12345.678,
        "counted": 2345.678,
        "today": 4.25,
        "unit": "kWh",
        "rate": 1080.0,
        "rate_unit": "W",
        "pulses": 3,
        "pulses_total": 2345678,
        "at": "2026-12-01T20:00:00+00:00",
    }
    assert json.loads(events.payload) == {
        "at": "2026-12-01T20:00:00+00:00",
        "kind": "correction",
        "module": "kast",
        "meter": "kast.1",
        "register": 1,
        "value": 12345.678,
        "detail": "",
    }
    assert json.loads(doc.payload) == {
        "module": "kast",
        "module_id": "8237",
        "model": "S0PCM-5",
        "connected": True,
        "since": "2026-12-01T19:00:00+00:00",
        "port": "/dev/ttyACM0",
        "firmware": "V0.6",
        "thresholds": [30, 30, 30, 30, 30],
        "thresholds_pending": None,
        "last_record": "2026-12-01T20:00:00+00:00",
        "last_telegram": "2026-12-01T20:00:00+00:00",
        "rejected": 3,
        "rejected_by_reason": {
            "not a data record": 2,
            "M1 total is not a non-negative integer": 1,
        },
        "restarts": 3,
        "watchdog_resets": 0,
        "last_problem": None,
    }
    assert status.payload == b"online"
    gas = Meter("kast.2", "Gas", "kast", 2, Kind.GAS, "m³", 100.0)
    raw = update_messages(
        dataclasses.replace(update, values=(values("kast.2"),)),
        meters=(gas,), health=health(), stats=stats, model=Model.S0PCM5, topics=TOPICS,
    )[1].payload  # fmt: skip
    assert '"unit":"m³"'.encode() in raw  # UTF-8 as itself, not \u00b3
    assert b'"rate":null' in raw  # not known yet: unknown in Home Assistant, never 0
    unread = update_messages(
        dataclasses.replace(update, values=(values("kast.1", today=math.nan),)),
        meters=METERS, health=health(), stats=stats, model=Model.S0PCM5, topics=TOPICS,
    )[1].payload  # fmt: skip
    assert json.loads(unread)["today"] is None  # a value not read is not known, not NaN


# -- Domoticz


def test_domoticz_payloads_have_the_exact_types_of_each_device_type() -> None:
    meters = (
        *METERS,
        Meter("kast.6", "Water m3", "kast", 6, Kind.WATER, "m³", 1000.0),
        Meter("kast.7", "Off", "kast", 7, Kind.WATER, "m³", 1000.0, enabled=False),
        Meter("kast.8", "No idx", "kast", 8, Kind.GAS, "m³", 100.0),
    )
    update = Update(
        module="kast",
        at=AT,
        values=(
            values("kast.1", counted=12345.678, reading=99.0, rate=1520.0),
            values("kast.2", counted=4567.89, reading=1.0),  # rate unknown
            values("kast.3", counted=1234.0),
            values("kast.4", counted=1.5, rate=2.5),
            values("kast.5", counted=42.0),
            values("kast.6", counted=1.234),
            values("kast.7", counted=1.0),
            values("kast.8", counted=1.0),
        ),
    )
    idx = {f"kast.{n}": 100 + n for n in range(1, 8)}
    out = domoticz_messages(update, meters=meters, idx=idx)
    docs = [json.loads(m.payload) for m in out]
    assert all(m.topic == "domoticz/in" and not m.retain and m.qos == 1 for m in out)
    for doc in docs:
        assert set(doc) == {"command", "idx", "nvalue", "svalue"}
        assert doc["command"] == "udevice"
        assert type(doc["idx"]) is int  # not bool, not str
        assert type(doc["nvalue"]) is int
        assert type(doc["svalue"]) is str
    # What counted (never the display reading), absolute, in each device type's own form.
    assert {d["idx"]: d["svalue"] for d in docs} == {
        101: "1520.0;12345678",  # General/kWh: W;Wh
        102: "4567890",  # P1 Gas: litres
        103: "1234",  # Counter, divider 1000: litres, shown as m³
        104: "2500.0;416667",  # heat in General/kWh: 2.5 kW, 1.5 GJ in Wh
        105: "42000",  # Counter, divider 1000: thousandths of the meter's unit
        106: "1234",
    }
    formats = {
        DeviceType.KWH: re.compile(r"\d+\.\d;\d+"),
        DeviceType.P1_GAS: re.compile(r"\d+"),
        DeviceType.COUNTER: re.compile(r"\d+"),
    }
    kinds = {100 + m.register: m.kind for m in meters}
    for doc in docs:
        assert formats[DEVICE_TYPES[kinds[doc["idx"]]]].fullmatch(doc["svalue"])
    assert COUNTER_DIVIDER == 1000  # what docs/integrations.md tells the user to set


# -- the documentation


def test_the_examples_in_the_documentation_are_what_the_encoders_send() -> None:
    text = (Path(__file__).parent.parent / "docs" / "integrations.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    state, doc, event, discovery, domoticz = blocks
    meters = (
        METERS[0],
        METERS[1],
        Meter("kast.3", "Water", "kast", 3, Kind.WATER, "L", 1.0),
    )
    h = dataclasses.replace(health(), rejected={"not a data record": 2})
    update = Update(
        module="kast",
        at=AT,
        pulses={"kast.1": 3},
        events=(
            DeviceEvent(
                at=AT,
                kind=EventKind.RESTART,
                module="kast",
                detail="totals went back without a start-up header",
            ),
        ),
        values=(
            values("kast.1", reading=12345.678, pulses=2345678, counted=2345.678, today=4.25,
                   rate=1080.0),
            values("kast.2", reading=4567.89, counted=1234.56),
            values("kast.3", reading=98765.0, counted=45678.0, rate=6.5),
        ),
    )  # fmt: skip
    sent = {
        m.topic: json.loads(m.payload)
        for m in update_messages(
            update,
            meters=meters,
            health=h,
            stats=LedgerStats(headers=2, restarts=1),
            model=Model.S0PCM5,
            topics=TOPICS,
        )
        if m.topic != "s0pcm/8237/status"
    }
    assert json.loads(state) == sent["s0pcm/8237/1/state"]
    assert json.loads(doc) == sent["s0pcm/8237/health"]
    assert json.loads(event) == sent["s0pcm/8237/events"]
    announced = by_id(announce([ModuleInfo(health=h, model=Model.S0PCM5, meters=meters)],
                               topics=TOPICS))  # fmt: skip
    documented = json.loads(discovery)
    documented["origin"]["sw_version"] = __version__
    assert documented == announced["s0pcm_8237_1_counted"]
    idx = {"kast.1": 101, "kast.2": 102, "kast.3": 103}
    assert [json.loads(line) for line in domoticz.splitlines()] == [
        json.loads(m.payload) for m in domoticz_messages(update, meters=meters, idx=idx)
    ]
