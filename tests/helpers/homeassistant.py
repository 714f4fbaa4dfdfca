"""Home Assistant's rules for what s0pcm announces, written once (research, sections 1 and 2).

* :func:`problems`: what Home Assistant (and Domoticz's discovery reader) would refuse or warn
  about in one discovery message: the topic's shape, the keys, ``device_class`` x unit x
  ``state_class`` (core ``sensor/const.py`` ``DEVICE_CLASS_UNITS`` and
  ``DEVICE_CLASS_STATE_CLASSES``, newest), availability, identity.
* :func:`dashboard_problems`: why the energy dashboard would not take a sensor as a source
  (core ``energy/validate.py``).
* :func:`statistics`: what the statistics engine makes of a sequence of states (core
  ``sensor/recorder.py``): the sum it books, and how many times it saw a new meter cycle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from s0pcm.publish import Message

__all__ = [
    "DEVICE_CLASS_STATE_CLASSES",
    "DEVICE_CLASS_UNITS",
    "all_problems",
    "config",
    "dashboard_problems",
    "problems",
    "statistics",
    "template_key",
]

ENERGY_UNITS: Final = frozenset(
    {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"}
)
GAS_UNITS: Final = frozenset({"L", "m³", "ft³", "CCF", "MCF"})
WATER_UNITS: Final = frozenset({"L", "gal", "m³", "ft³", "CCF", "MCF"})
POWER_UNITS: Final = frozenset({"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"})
FLOW_UNITS: Final = frozenset(
    {"m³/h", "m³/min", "m³/s", "ft³/min", "L/h", "L/min", "L/s", "gal/d", "gal/h", "gal/min",
     "mL/s"}
)  # fmt: skip

#: Units a sensor of each device class may have (exact strings: ``m3`` is not ``m³``); None: no
#: unit at all.
DEVICE_CLASS_UNITS: Final[Mapping[str, frozenset[str | None]]] = {
    "energy": ENERGY_UNITS,
    "gas": GAS_UNITS,
    "water": WATER_UNITS,
    "volume": frozenset({"L", "mL", "gal", "fl. oz.", "m³", "ft³", "CCF", "MCF"}),
    "power": POWER_UNITS,
    "volume_flow_rate": FLOW_UNITS,
    "timestamp": frozenset({None}),
}
#: The state classes each device class allows (a missing state class is always allowed).
DEVICE_CLASS_STATE_CLASSES: Final[Mapping[str, frozenset[str]]] = {
    "energy": frozenset({"total", "total_increasing"}),
    "gas": frozenset({"total", "total_increasing"}),
    "water": frozenset({"total", "total_increasing"}),
    "volume": frozenset({"total", "total_increasing"}),
    "power": frozenset({"measurement"}),
    "volume_flow_rate": frozenset({"measurement"}),
    "timestamp": frozenset(),
}
STATE_CLASSES: Final = frozenset({"measurement", "total", "total_increasing"})
BINARY_DEVICE_CLASSES: Final = frozenset({"connectivity", "problem", "running", "power"})

#: Options we may send (a key outside these is a typo Home Assistant silently ignores).
_COMMON: Final = frozenset(
    {
        "name", "unique_id", "default_entity_id", "state_topic", "value_template",
        "device_class", "availability", "availability_mode", "device", "origin",
        "entity_category", "enabled_by_default", "icon", "qos", "encoding", "expire_after",
        "json_attributes_topic", "json_attributes_template", "force_update",
    }
)  # fmt: skip
KEYS: Final[Mapping[str, frozenset[str]]] = {
    "sensor": _COMMON
    | {"state_class", "unit_of_measurement", "suggested_display_precision",
       "last_reset_value_template"},
    "binary_sensor": _COMMON | {"payload_on", "payload_off"},
}  # fmt: skip
_TOPIC: Final = re.compile(
    r"(?P<prefix>[^/#+]+)/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
    r"(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
#: The only templates Domoticz's discovery reader evaluates: a plain path into the JSON.
_TEMPLATE: Final = re.compile(r"\{\{ value_json\.(?P<key>[a-z_]+) \}\}")
_ENTITY_ID: Final = re.compile(r"(?P<domain>[a-z_]+)\.[a-z0-9_]+")


def config(message: Message) -> dict[str, Any]:
    """A discovery message's document ({} for a removal)."""
    return {} if not message.payload else dict(json.loads(message.payload.decode()))


def template_key(template: str) -> str:
    """The state JSON key a ``{{ value_json.<key> }}`` template reads."""
    m = _TEMPLATE.fullmatch(template)
    assert m is not None, f"not a plain path template: {template!r}"
    return m["key"]


def _wildcard(topic: object) -> bool:
    return not isinstance(topic, str) or not topic or "+" in topic or "#" in topic


def problems(message: Message) -> list[str]:
    """What is wrong with one discovery config (empty: Home Assistant takes it as it is)."""
    out: list[str] = []
    m = _TOPIC.fullmatch(message.topic)
    if m is None:
        return [f"{message.topic}: not a discovery topic"]
    component = m["component"]
    if not message.retain:
        out.append("config not retained: lost when Home Assistant starts after us")
    if component not in KEYS:
        return [*out, f"component {component!r} not one we announce"]
    doc = config(message)
    if not doc:
        return out  # a removal
    out += [f"unknown option {k!r}" for k in sorted(set(doc) - KEYS[component])]
    if "object_id" in doc or "obj_id" in doc:
        out.append("object_id is deprecated (stops working in 2026.4): use default_entity_id")
    uid = doc.get("unique_id")
    if not isinstance(uid, str) or not uid:
        out.append("no unique_id: the entity is not restored at start and has no device")
    elif m["object_id"] != uid or m["node_id"] is not None:
        out.append(f"object id {m['object_id']!r} is not the unique_id {uid!r}")
    eid = doc.get("default_entity_id")
    e = _ENTITY_ID.fullmatch(eid) if isinstance(eid, str) else None
    if e is None or e["domain"] != component:
        out.append(f"default_entity_id {eid!r} is not {component}.<id>")
    if _wildcard(doc.get("state_topic")):
        out.append("state_topic missing or a wildcard")
    template = doc.get("value_template")
    if template is not None and not (isinstance(template, str) and _TEMPLATE.fullmatch(template)):
        out.append(f"value_template {template!r} is not a plain path")
    out += _availability(doc)
    out += _identity(doc)
    category = doc.get("entity_category")
    if category is not None and category not in (
        {"diagnostic"} if component == "sensor" else {"diagnostic", "config"}
    ):
        out.append(f"entity_category {category!r} not allowed for a {component}")
    if component == "sensor":
        out += _classes(doc)
    elif doc.get("device_class") not in BINARY_DEVICE_CLASSES | {None}:
        out.append(f"binary_sensor device_class {doc.get('device_class')!r} unknown")
    return out


def _availability(doc: Mapping[str, Any]) -> list[str]:
    out = []
    availability = doc.get("availability")
    if "availability_topic" in doc and availability is not None:
        out.append("availability and availability_topic together")
    if not isinstance(availability, list) or not availability:
        out.append("no availability list")
    elif any(not isinstance(a, dict) or _wildcard(a.get("topic")) for a in availability):
        out.append("an availability entry without a topic")
    if doc.get("availability_mode", "latest") not in {"all", "any", "latest"}:
        out.append(f"availability_mode {doc.get('availability_mode')!r}")
    return out


def _identity(doc: Mapping[str, Any]) -> list[str]:
    out = []
    device = doc.get("device")
    if not isinstance(device, dict) or not device.get("identifiers"):
        out.append("no device identifiers")
    elif not all(isinstance(i, str) and i for i in device["identifiers"]):
        out.append("device identifiers must be strings")
    origin = doc.get("origin")
    if not isinstance(origin, dict) or not origin.get("name"):
        out.append("no origin name")
    return out


def _classes(doc: Mapping[str, Any]) -> list[str]:
    out = []
    device_class = doc.get("device_class")
    unit = doc.get("unit_of_measurement")
    state_class = doc.get("state_class")
    if state_class is not None and state_class not in STATE_CLASSES:
        out.append(f"state_class {state_class!r} unknown")
    if device_class is not None:
        if device_class not in DEVICE_CLASS_UNITS:
            return [*out, f"device_class {device_class!r} unknown"]
        if unit not in DEVICE_CLASS_UNITS[device_class]:
            out.append(f"unit {unit!r} is not a valid unit for device class {device_class!r}")
        if state_class is not None and state_class not in DEVICE_CLASS_STATE_CLASSES[device_class]:
            out.append(f"state class {state_class!r} is impossible for {device_class!r}")
    if "last_reset_value_template" in doc and state_class != "total":
        out.append("last_reset only goes with state_class total")
    if unit == "":
        out.append("an empty unit: leave it out")
    return out


def dashboard_problems(doc: Mapping[str, Any], source: str) -> list[str]:
    """Why the energy dashboard would refuse the sensor as a ``source``: ``energy`` (grid,
    solar, a device), ``gas`` or ``water``."""
    allowed = {
        "energy": {"energy": ENERGY_UNITS},
        "gas": {"energy": ENERGY_UNITS, "gas": GAS_UNITS},
        "water": {"water": WATER_UNITS},
    }[source]
    out = []
    device_class = doc.get("device_class")
    if device_class not in allowed:
        out.append(f"entity_unexpected_device_class {device_class!r}")
    elif doc.get("unit_of_measurement") not in allowed[device_class]:
        out.append(f"entity_unexpected_unit_{source} {doc.get('unit_of_measurement')!r}")
    state_class = doc.get("state_class")
    if state_class is None:
        out.append("statistics_not_defined")
    elif state_class not in STATE_CLASSES:
        out.append(f"entity_unexpected_state_class {state_class!r}")
    elif state_class == "measurement" and "last_reset_value_template" not in doc:
        out.append("entity_state_class_measurement_no_last_reset")
    return out


def statistics(states: Sequence[float], *, state_class: str) -> tuple[float, int]:
    """The sum the statistics engine books over ``states`` (in order) and the new meter cycles
    it saw. ``total_increasing``: a state below 90 % of the one before is a new cycle (the new
    value counts from 0: what was there is counted again); a smaller dip is subtracted.
    ``total`` (without last_reset): the differences, whatever their sign."""
    total, cycles = 0.0, 0
    previous: float | None = None
    for state in states:
        if state < 0 and state_class == "total_increasing":
            continue  # "state is negative": skipped
        if previous is not None:
            if state_class == "total_increasing" and state < 0.9 * previous:
                cycles += 1
                total += state
            else:
                total += state - previous
        previous = state
    return total, cycles


def all_problems(messages: Iterable[Message]) -> list[str]:
    """:func:`problems` of every message, each with its topic, and unique ids used twice."""
    out = []
    seen: dict[str, str] = {}
    for message in messages:
        out += [f"{message.topic}: {p}" for p in problems(message)]
        uid = config(message).get("unique_id")
        if isinstance(uid, str):
            if uid in seen:
                out.append(f"{message.topic}: unique_id {uid!r} also in {seen[uid]}")
            seen[uid] = message.topic
    return out
