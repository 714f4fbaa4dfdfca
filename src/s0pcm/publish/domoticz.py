"""Domoticz: ``udevice`` commands on ``domoticz/in`` for the meters given a ``domoticz_idx``.

Domoticz checks JSON types exactly (``idx`` and ``nvalue`` integers, ``svalue`` a string; else
"invalid data") and only updates a device that exists: the user creates a Dummy hardware's
virtual sensor per meter and puts its idx in the configuration. Per kind
(:data:`DEVICE_TYPES`):

* electricity and heat: **General/kWh** ("Electric (Instant+Counter)"), ``"W;Wh"``;
* gas: **P1 Gas** (``svalue`` in litres: Domoticz divides by 1000 itself), or a Counter of type
  Gas with divider 1000 (the same payload);
* water and other: **Counter** ("RFXMeter counter") in thousandths of the meter's unit, with
  the divider set to :data:`COUNTER_DIVIDER` (1000) on the device or in Settings → Meters
  (Domoticz's defaults are 100 for gas and water): so water counts litres and shows m³.

Every value is absolute and is what s0pcm counted (``counted``: it only grows), never an
increment: Domoticz derives its day and month usage from the differences, a QoS 1 redelivery
or a repeated message changes nothing, and a correction or replacement of the meter's display
reading books no negative day. (Set the device's meter offset in Domoticz to show the display's
reading.) A rate not known yet is sent as 0 W (General/kWh needs a number there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

from ..logger.runner import Update
from ..logger.snapshot import MeterValues
from ..meters import Kind, Meter
from . import Message
from .state import payload
from .topics import DOMOTICZ_IN

__all__ = [
    "COUNTER_DIVIDER",
    "DEVICE_TYPES",
    "DeviceType",
    "domoticz_messages",
    "svalue",
    "udevice",
]


class DeviceType(StrEnum):
    """The Domoticz device (type/subtype) a meter is sent to."""

    KWH = "General/kWh"
    P1_GAS = "P1 Gas"
    COUNTER = "RFXMeter/Counter"


DEVICE_TYPES: Final = {
    Kind.ELECTRICITY: DeviceType.KWH,
    Kind.HEAT: DeviceType.KWH,
    Kind.GAS: DeviceType.P1_GAS,
    Kind.WATER: DeviceType.COUNTER,
    Kind.OTHER: DeviceType.COUNTER,
}
#: What a Counter's value is divided by to show the meter's unit (set it on the device).
COUNTER_DIVIDER: Final = 1000
#: Wh in one of the kind's default unit (kWh; GJ for heat).
_WH: Final = {Kind.ELECTRICITY: 1000.0, Kind.HEAT: 1e9 / 3600}
#: W in one of the kind's rate unit.
_W: Final = {"W": 1.0, "kW": 1000.0}


def _in_default_unit(meter: Meter, value: float) -> float:
    """``value`` (in the meter's unit) in its kind's default unit (kWh, m³, GJ, ...)."""
    return value * dict(meter.spec.units).get(meter.unit, 1.0)


def svalue(meter: Meter, values: MeterValues) -> str:
    """The ``svalue`` for the meter's device type (:data:`DEVICE_TYPES`)."""
    kind = DEVICE_TYPES[meter.kind]
    counted = _in_default_unit(meter, values.counted)
    if kind is DeviceType.KWH:
        watts = (values.rate or 0.0) * _W[meter.spec.rate_unit]
        return f"{watts:.1f};{round(counted * _WH[meter.kind])}"
    # P1 Gas takes litres (m³ x 1000); a Counter thousandths of the meter's unit: gas and water
    # are in m³ here, so both are litres; another meter counts in its own unit.
    return str(round(counted * COUNTER_DIVIDER))


def udevice(meter: Meter, values: MeterValues, *, idx: int) -> Message:
    """One device update. Not retained: ``domoticz/in`` is one topic for every device."""
    doc: dict[str, Any] = {
        "command": "udevice",
        "idx": int(idx),
        "nvalue": 0,
        "svalue": svalue(meter, values),
    }
    return Message(topic=DOMOTICZ_IN, payload=payload(doc), retain=False)


def domoticz_messages(
    update: Update, *, meters: Iterable[Meter], idx: Mapping[str, int]
) -> list[Message]:
    """The updates for the update's enabled meters that have an idx (``idx``: meter key →
    ``domoticz_idx``)."""
    by_key = {m.key: m for m in meters}
    out = []
    for values in update.values:
        meter = by_key.get(values.key)
        if meter is None or not meter.enabled or values.key not in idx:
            continue
        out.append(udevice(meter, values, idx=idx[values.key]))
    return out
