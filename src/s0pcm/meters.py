"""Meters are data: one declarative description per register drives everything downstream.

The ledger counts pulses per register; a :class:`Meter` says what those pulses mean (kind, unit,
pulses per unit, the reading on the meter's display at a given moment). The store, MQTT
discovery and the dashboard all read the same table (:data:`KINDS`) for units, rate units and
Home Assistant classes, so a kind is described once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CONSTANT_MAX",
    "CONSTANT_MIN",
    "KINDS",
    "Direction",
    "Kind",
    "KindSpec",
    "Meter",
    "constant_problem",
]


class Kind(StrEnum):
    ELECTRICITY = "electricity"
    GAS = "gas"
    WATER = "water"
    HEAT = "heat"
    OTHER = "other"


class Direction(StrEnum):
    """Which way a meter counts: what the house uses, or what it makes or returns (a solar
    inverter, a battery's discharge, a grid-return sub-meter). Production is kept and shown
    apart, priced by the feed-in tariffs, and netted against consumption of the same kind."""

    CONSUMPTION = "consumption"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What a kind of meter measures and how its rate is shown."""

    kind: Kind
    #: Unit of the reading when the configuration names none.
    unit: str
    #: Units the reading may be given in, with their size in the default unit.
    units: tuple[tuple[str, float], ...]
    #: Unit of the live rate (power or flow) and how many of it one default unit per hour is.
    rate_unit: str
    rate_per_unit_hour: float
    #: Home Assistant device classes for the reading and the rate.
    device_class: str | None
    rate_device_class: str | None


KINDS: Final[dict[Kind, KindSpec]] = {
    spec.kind: spec
    for spec in (
        # 1 kWh per hour is 1000 W.
        KindSpec(Kind.ELECTRICITY, "kWh", (("kWh", 1.0), ("Wh", 0.001)), "W", 1000.0,
                 "energy", "power"),
        # 1 m³ per hour is 1 m³/h.
        KindSpec(Kind.GAS, "m³", (("m³", 1.0), ("L", 0.001)), "m³/h", 1.0, "gas",
                 "volume_flow_rate"),
        # 1 m³ per hour is 1000/60 L/min.
        KindSpec(Kind.WATER, "m³", (("m³", 1.0), ("L", 0.001)), "L/min", 1000.0 / 60,
                 "water", "volume_flow_rate"),
        # 1 GJ per hour is 277.8 kW; 1 kWh per hour is 1 kW.
        KindSpec(Kind.HEAT, "GJ", (("GJ", 1.0), ("MJ", 0.001), ("kWh", 0.0036), ("MWh", 3.6)),
                 "kW", 1e6 / 3600, "energy", "power"),
        KindSpec(Kind.OTHER, "", (("", 1.0),), "/h", 1.0, None, None),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Meter:
    """A meter wired to one register of one module."""

    #: Stable identifier (``<module>.<register>`` unless configured); history is kept under it.
    key: str
    name: str
    module: str
    register: int
    kind: Kind
    #: Unit of the reading, e.g. kWh, m³, L.
    unit: str
    #: Pulses per unit (the meter's constant, e.g. 1000 imp/kWh, 1 imp/L).
    pulses_per_unit: float
    #: The reading on the meter's display at ``reading_at`` (Unix time); None: start at 0.
    reading: float | None = None
    reading_at: float | None = None
    enabled: bool = True
    #: The Domoticz device this meter's values go to (``domoticz/in``); None: none.
    domoticz_idx: int | None = None
    direction: Direction = Direction.CONSUMPTION

    @property
    def produces(self) -> bool:
        return self.direction is Direction.PRODUCTION

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    def rate_factor(self) -> float:
        """Rate units per (pulse per second): multiply a pulse rate to get W, L/min, ..."""
        per_unit = dict(self.spec.units).get(self.unit, 1.0)
        return 3600.0 / self.pulses_per_unit * per_unit * self.spec.rate_per_unit_hour


#: Bounds of a meter's constant (pulses per unit). S0 meters give 1 to 10,000 pulses per unit;
#: the bounds leave room either way and keep every reading finite. Used by the configuration,
#: the API's declarations, the CLI and the stored overrides alike: one rule, one set of bounds.
CONSTANT_MIN: Final = 1e-6
CONSTANT_MAX: Final = 1e9


def constant_problem(value: float) -> str | None:
    """Why ``value`` cannot be a meter's constant (``"must be ..."``), or None when it can."""
    if not (math.isfinite(value) and value > 0):
        return f"must be a number > 0, got {value:g}"
    if value < CONSTANT_MIN:
        return f"must be at least {CONSTANT_MIN:g}, got {value:g}"
    if value > CONSTANT_MAX:
        return f"must be at most {CONSTANT_MAX:g}, got {value:g}"
    return None
