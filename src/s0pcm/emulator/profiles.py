"""What is wired to the emulated module's registers: meters and the pulses they produce.

A rate is a pure function of time (a seeded household profile gives the same pulses to a
backfill and to a live run); a :class:`Source` turns it into whole pulses, carrying fractions so
none are lost.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_PULSE_MS", "HOUSEHOLD", "RateFn", "Source", "household", "steady"]

#: Pulses per second at a given Unix time.
RateFn = Callable[[float], float]

#: Length of the pulses the emulated meters produce, in ms (the S0 standard asks at least 30).
DEFAULT_PULSE_MS: Final = 50.0


def steady(rate: float) -> RateFn:
    """A constant rate in pulses per second."""
    return lambda t: rate


@functools.lru_cache(maxsize=256)
def _slot_draws(seed: int, kind: str, slot: int) -> tuple[float, float, float, float]:
    """Four uniform draws for a 5-minute slot: a pure function of (seed, kind, slot), so a
    backfill and a live run agree and tests are reproducible (cached: a slot is asked often)."""
    r = random.Random(f"{seed}:{kind}:{slot}")
    return r.random(), r.random(), r.random(), r.random()


def _local_hour(t: float) -> float:
    lt = time.localtime(t)
    return lt.tm_hour + lt.tm_min / 60 + lt.tm_sec / 3600


def household(kind: str, *, pulses_per_unit: float, seed: int = 0) -> RateFn:
    """A realistic daily profile for one meter of a household, in pulses per second.

    ``kind`` is electricity (W), gas (m³/h), water (L/min), heat (kW) or solar (a solar
    inverter's production, kW); ``pulses_per_unit`` the meter's constant in pulses per kWh, m³,
    L or kWh. Appliances and taps run in 5-minute slots
    drawn from a seeded random, so the profile is a pure function of time.
    """

    def electricity(t: float) -> float:
        h = _local_hour(t)
        watts = 150.0 + 60 * math.sin(t / 900)  # fridge and standby, wobbling
        if 6.5 <= h < 8.5:
            watts += 400
        if 17 <= h < 22.5:
            watts += 700 * math.sin(math.pi * (h - 17) / 5.5)
        slot = int(t // 300)
        on, which, _, _ = _slot_draws(seed, "el", slot)
        if on < 0.06:
            watts += (2000.0, 1200.0, 2200.0, 800.0)[int(which * 4)]  # kettle, oven, washer, dryer
        return watts / 1000 / 3600 * pulses_per_unit

    def gas(t: float) -> float:
        h = _local_hour(t)
        day = (t / 86400) % 365.25
        winter = 0.5 + 0.5 * math.cos(2 * math.pi * (day - 15) / 365.25)  # 1 mid-January
        m3h = 0.02  # cooking, pilot
        if 6 <= h < 9 or 16.5 <= h < 23:
            m3h += 1.1 * winter
        elif 0 <= h < 6:
            m3h += 0.15 * winter
        shower, _, _, _ = _slot_draws(seed, "gas", int(t // 300))
        if 6.5 <= h < 8 and shower < 0.3:
            m3h += 1.5  # shower on a combi boiler
        return m3h / 3600 * pulses_per_unit

    def water(t: float) -> float:
        h = _local_hour(t)
        shower, taps, machines, _ = _slot_draws(seed, "water", int(t // 300))
        lpm = 0.0
        if 6.5 <= h < 8 and shower < 0.35:
            lpm += 8.0  # shower
        if 7 <= h < 23 and taps < 0.12:
            lpm += 1.5  # toilet, taps
        if 18 <= h < 20 and machines < 0.1:
            lpm += 4.0  # dishwasher, washing machine
        return lpm / 60 * pulses_per_unit

    def heat(t: float) -> float:
        h = _local_hour(t)
        day = (t / 86400) % 365.25
        winter = 0.5 + 0.5 * math.cos(2 * math.pi * (day - 15) / 365.25)
        kw = 0.3 + (4.0 * winter if 6 <= h < 23 else 1.0 * winter)
        return kw / 3600 * pulses_per_unit

    def solar(t: float) -> float:
        # A 4 kWp roof in the Netherlands (52° N): from 8 hours of daylight in December to 16.5
        # in June, around solar noon (12:40 on the winter clock, 13:40 on the summer clock),
        # the sun higher in summer, and clouds that change by the day and the half hour.
        lt = time.localtime(t)
        h = lt.tm_hour + lt.tm_min / 60 + lt.tm_sec / 3600
        season = math.cos(2 * math.pi * (lt.tm_yday - 172) / 365.25)  # 1 at midsummer
        daylight = 12.2 + 4.3 * season
        noon = 12.67 + (1 if lt.tm_isdst > 0 else 0)
        x = (h - noon) / daylight + 0.5  # 0 at sunrise, 1 at sunset
        if not 0 < x < 1:
            return 0.0
        day, _, _, _ = _slot_draws(seed, "sun", int(t // 86400))
        cloud, _, _, _ = _slot_draws(seed, "cloud", int(t // 1800))
        sky = (0.25 + 0.75 * day) * (0.35 + 0.65 * cloud)
        kw = 4.0 * (0.55 + 0.45 * season) * math.pow(math.sin(math.pi * x), 1.5) * sky
        return kw / 3600 * pulses_per_unit

    profiles: dict[str, RateFn] = {
        "electricity": electricity,
        "gas": gas,
        "water": water,
        "heat": heat,
        "solar": solar,
    }
    try:
        return profiles[kind]
    except KeyError:
        raise ValueError(f"unknown profile kind {kind!r}; one of {', '.join(profiles)}") from None


#: The household wiring of the demo module: (kind, pulses per unit) for registers 1..5.
HOUSEHOLD: Final = (
    ("electricity", 1000.0),
    ("gas", 100.0),
    ("water", 1.0),
    ("solar", 1000.0),
    ("electricity", 1000.0),
)


@dataclass(slots=True)
class Source:
    """What is wired to one register: a meter producing pulses of a certain length."""

    rate: RateFn
    pulse_ms: float = DEFAULT_PULSE_MS
    _carry: float = 0.0

    def slots(self, start: float, count: int, *, width: float = 10.0) -> list[int]:
        """Whole pulses in ``count`` consecutive slots from ``start``, the rate taken once a
        minute (the profiles change by the 5 minutes): fast enough to write months of history."""
        out = []
        carry = self._carry
        per_minute = max(1, round(60 / width))
        rate = 0.0
        for i in range(count):
            if i % per_minute == 0:
                rate = max(0.0, self.rate(start + (i + per_minute / 2) * width)) * width
            carry += rate
            whole = int(carry)
            carry -= whole
            out.append(whole)
        self._carry = carry
        return out

    def pulses(self, t0: float, t1: float) -> int:
        """Whole pulses generated in [t0, t1); fractions carry over, so none are lost."""
        span = t1 - t0
        if span <= 0:
            return 0
        steps = max(1, math.ceil(span / 60))
        dt = span / steps
        self._carry += sum(max(0.0, self.rate(t0 + (i + 0.5) * dt)) for i in range(steps)) * dt
        whole = int(self._carry)
        self._carry -= whole
        return whole
