"""Home Assistant MQTT discovery: one device per module, its meters as sensors in real units.

Per-entity discovery (``<prefix>/<component>/<unique_id>/config``), not device-based discovery:
Domoticz's own discovery reader understands only the former (research, section 3.3). Every
config is retained and carries the whole device, ``origin`` and the availability list, so Home
Assistant can take them in any order, at any time.

Per meter (switched-off meters have none), from one declarative table (:data:`FIELDS`):

* ``counted`` -- what s0pcm counted since logging began: ``total_increasing``, the sensor the
  energy dashboard is pointed at. It never decreases (a module restart, a logger restart, a
  correction or a replacement does not move it), so Home Assistant never takes a drop for a new
  meter cycle and counts the whole value again.
* ``reading`` -- the meter's display: the same device class and unit but no state class, so the
  statistics engine keeps none of it and the energy dashboard does not offer it (a correction or
  a replacement moves it, which would book a negative or a doubled hour).
* ``today`` -- counted since local midnight; no state class (Home Assistant's statistics of
  ``counted`` give its days).
* ``rate`` -- power (W, kW) or flow (L/min, m³/h): ``measurement``.

Per module, as ``entity_category: diagnostic``: the link (a connectivity binary sensor on the
module's status topic), firmware, last record (a timestamp), rejected lines and start-ups, each
its own entity (attributes that change with every record would force a state write each time).

Identity never follows a name: ``unique_id`` is ``s0pcm_<module_id>_<register>_<field>`` (and
``s0pcm_<module_id>_<field>`` per module), the device's identifier ``s0pcm_<module_id>``.
Names and ``default_entity_id`` (the deprecated ``object_id``'s successor, only read when an
entity is first added) follow the configuration. Nothing here deletes and recreates an entity:
:meth:`Outbox.announce <s0pcm.publish.outbox.Outbox.announce>` sends an empty retained config
only for an entity the announcement before held and this one does not (kept across restarts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from .. import __version__
from ..logger.runner import Health
from ..meters import Kind, Meter
from ..protocol import Model
from . import Message
from .state import payload
from .topics import Topics, module_key

__all__ = [
    "FIELDS",
    "MANUFACTURER",
    "Field",
    "ModuleInfo",
    "announce",
    "meter_configs",
    "module_configs",
]

#: Who makes the S0PCM (the device's manufacturer in Home Assistant).
MANUFACTURER: Final = "SmartMeterDashboard"
#: Decimals Home Assistant shows by default, per unit (what one pulse is worth, roughly).
PRECISION: Final = {
    "kWh": 3, "Wh": 0, "MWh": 6, "GJ": 3, "MJ": 1, "m³": 3, "L": 0,
    "W": 0, "kW": 3, "L/min": 1, "m³/h": 3,
}  # fmt: skip
#: What a meter's rate is called, by kind.
RATE_NAMES: Final = {
    Kind.ELECTRICITY: "power",
    Kind.HEAT: "power",
    Kind.GAS: "flow",
    Kind.WATER: "flow",
    Kind.OTHER: "rate",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleInfo:
    """What discovery needs of one module: its health (id, name, firmware), model, meters."""

    health: Health
    model: Model
    meters: tuple[Meter, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One sensor of a meter: the state JSON's key it shows and how Home Assistant treats it."""

    #: The key in the meter's state JSON, and the last part of the ``unique_id``.
    key: str
    #: The entity's name after the meter's (None: by kind, :data:`RATE_NAMES`).
    label: str | None
    #: Whether it is the rate (power or flow: rate unit and rate device class) or a quantity.
    rate: bool
    state_class: str | None


FIELDS: Final = (
    Field(key="counted", label="consumption", rate=False, state_class="total_increasing"),
    Field(key="reading", label="reading", rate=False, state_class=None),
    Field(key="today", label="today", rate=False, state_class=None),
    Field(key="rate", label=None, rate=True, state_class="measurement"),
)


def _slug(text: str) -> str:
    """``text`` as an entity id part (``[a-z0-9_]``); empty when nothing of it is left."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _origin() -> dict[str, Any]:
    return {"name": "s0pcm", "sw_version": __version__}


def _device(info: ModuleInfo) -> dict[str, Any]:
    h = info.health
    device: dict[str, Any] = {
        "identifiers": [f"s0pcm_{module_key(h)}"],
        "name": f"S0PCM {h.module}",
        "manufacturer": MANUFACTURER,
        "model": info.model.label,
    }
    if h.firmware:
        device["sw_version"] = h.firmware
    if h.module_id:
        device["serial_number"] = h.module_id
    return device


def _common(info: ModuleInfo, *, topics: Topics, link: bool) -> dict[str, Any]:
    """What every config of the module carries. ``link``: unavailable while the module's link
    is down too (its meters), not only while the logger is (its diagnostics, which say why)."""
    module = module_key(info.health)
    availability = [{"topic": topics.status}]
    if link:
        availability.append({"topic": topics.module_status(module)})
    return {
        "availability": availability,
        "availability_mode": "all",
        "device": _device(info),
        "origin": _origin(),
    }


def meter_configs(meter: Meter, info: ModuleInfo, *, topics: Topics) -> list[Message]:
    """The discovery configs of one meter's sensors (:data:`FIELDS`)."""
    module = module_key(info.health)
    spec = meter.spec
    out = []
    for field in FIELDS:
        unit = spec.rate_unit if field.rate else meter.unit
        device_class = spec.rate_device_class if field.rate else spec.device_class
        label = field.label or RATE_NAMES[meter.kind]
        unique_id = f"s0pcm_{module}_{meter.register}_{field.key}"
        slug = _slug(meter.name) or f"m{meter.register}"
        config: dict[str, Any] = {
            "name": f"{meter.name} {label}",
            "unique_id": unique_id,
            "default_entity_id": f"sensor.s0pcm_{module}_{slug}_{_slug(label)}",
            "state_topic": topics.state(module, meter.register),
            "value_template": f"{{{{ value_json.{field.key} }}}}",
        }
        if device_class is not None and unit:
            config["device_class"] = device_class
        if unit:
            config["unit_of_measurement"] = unit
        if field.state_class is not None:
            config["state_class"] = field.state_class
        if unit in PRECISION:
            config["suggested_display_precision"] = PRECISION[unit]
        config |= _common(info, topics=topics, link=True)
        out.append(
            Message(topic=topics.config("sensor", unique_id), payload=payload(config), retain=True)
        )
    return out


def module_configs(info: ModuleInfo, *, topics: Topics) -> list[Message]:
    """The module's diagnostic entities: link, firmware, last record, rejected lines, start-ups."""
    module = module_key(info.health)
    health = topics.health(module)
    entities: list[tuple[str, str, str, dict[str, Any]]] = [
        ("binary_sensor", "link", "Link", {
            "state_topic": topics.module_status(module),
            "payload_on": "online", "payload_off": "offline", "device_class": "connectivity",
        }),
        ("sensor", "firmware", "Firmware", {
            "state_topic": health, "value_template": "{{ value_json.firmware }}",
        }),
        ("sensor", "last_record", "Last record", {
            "state_topic": health, "value_template": "{{ value_json.last_record }}",
            "device_class": "timestamp",
        }),
        ("sensor", "rejected", "Rejected lines", {
            "state_topic": health, "value_template": "{{ value_json.rejected }}",
            "state_class": "total_increasing",
        }),
        ("sensor", "restarts", "Start-ups", {
            "state_topic": health, "value_template": "{{ value_json.restarts }}",
            "state_class": "total_increasing",
        }),
    ]  # fmt: skip
    out = []
    for component, key, name, options in entities:
        unique_id = f"s0pcm_{module}_{key}"
        config = {
            "name": name,
            "unique_id": unique_id,
            "default_entity_id": f"{component}.{unique_id}",
            "entity_category": "diagnostic",
            **options,
            **_common(info, topics=topics, link=False),
        }
        out.append(
            Message(topic=topics.config(component, unique_id), payload=payload(config), retain=True)
        )
    return out


def announce(modules: Iterable[ModuleInfo], *, topics: Topics) -> list[Message]:
    """Every discovery config: at connect, when ``<prefix>/status`` says ``online`` (after a
    random delay: the client's), and whenever a module's configs change (its id or firmware
    learnt, a meter renamed or switched). None when discovery is off."""
    if not topics.discovery:
        return []
    out = []
    for info in modules:
        out += module_configs(info, topics=topics)
        for meter in info.meters:
            if meter.enabled:
                out += meter_configs(meter, info, topics=topics)
    return out
