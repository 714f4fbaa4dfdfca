"""``s0pcm demo``: the whole system on one machine without a module.

An emulated S0PCM-5 of a household (electricity, gas, water and a solar roof's inverter) on a
pseudo-terminal, the logger on
a fresh SQLite file with months of history already in it (the same household profiles, so the
history and the live module tell one story), a Dutch household's contract as its tariffs, and
the dashboard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ..config import Config, load_config
from ..costs.tariffs import STATE_KEY as TARIFFS_KEY
from ..emulator import HOUSEHOLD, Module, PtyEmulator, Source, household
from ..meters import Meter
from ..protocol import Model
from ..store import Anchor, AnchorKind, Store, open_store
from .backfill import backfill

__all__ = ["DEMO_METERS", "prepare_demo"]

#: Register, key, name, kind, direction, unit, pulses per unit, reading at the start of the
#: history.
DEMO_METERS = (
    (1, "electricity", "Electricity", "electricity", "consumption", "kWh", 1000, 23456.789),
    (2, "gas", "Gas", "gas", "consumption", "m³", 100, 7654.321),
    (3, "water", "Water", "water", "consumption", "m³", 1000, 1234.567),
    (4, "solar", "Solar", "electricity", "production", "kWh", 1000, 8765.432),
)


ALL_WEEK: Final = [0, 1, 2, 3, 4, 5, 6]


def dutch_contract(valid_from: str) -> dict[str, Any]:
    """A Dutch household's contract, as the demo's tariffs (prices of 2026, taxes included):
    electricity at a peak (weekdays 07:00-23:00) and an off-peak price with the network's
    fixed charges, gas at one price with its own, the water company's price per m³, and the
    supplier's compensation for the solar roof's production (its feed-in tariff) less a
    feed-in fee."""

    def flat(price: float) -> list[dict[str, Any]]:
        return [{"name": "all", "days": ALL_WEEK, "start": "00:00", "end": "24:00",
                 "price": price}]  # fmt: skip

    return {
        "currency": "EUR",
        "tariffs": [
            {"kind": "electricity", "valid_from": valid_from, "valid_to": None,
             "fixed_per_day": 0.42, "periods": [
                 {"name": "peak", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00",
                  "price": 0.29},
                 {"name": "off-peak", "days": [0, 1, 2, 3, 4], "start": "23:00", "end": "07:00",
                  "price": 0.26},
                 {"name": "off-peak", "days": [5, 6], "start": "00:00", "end": "24:00",
                  "price": 0.26}]},
            {"kind": "gas", "valid_from": valid_from, "valid_to": None, "fixed_per_day": 0.68,
             "periods": flat(1.38)},
            {"kind": "water", "valid_from": valid_from, "valid_to": None, "fixed_per_day": 0.16,
             "periods": flat(1.09)},
            {"kind": "electricity", "direction": "production", "valid_from": valid_from,
             "valid_to": None, "fixed_per_day": 0.12, "periods": flat(0.09)},
        ],
    }  # fmt: skip


def write_demo_config(directory: Path, *, port: int, interval: float) -> Path:
    meters = "\n".join(
        f"""[modules.demo.meters.{reg}]
name = "{name}"
kind = "{kind}"
direction = "{direction}"
unit = "{unit}"
pulses_per_unit = {ppu}
key = "{key}"
"""
        for reg, key, name, kind, direction, unit, ppu, _ in DEMO_METERS
    )
    path = directory / "s0pcm.toml"
    path.write_text(
        f"""# Written by `s0pcm demo`: an emulated S0PCM-5 of a household.
[logger]
database = "{directory / "s0pcm.sqlite"}"
commit_interval = {max(1.0, min(300.0, 30 * interval)):g}

[web]
listen = "127.0.0.1:{port}"
public_read = true

[modules.demo]
port = "{directory / "s0pcm"}"
model = 5
{meters}"""
    )
    return path


def _sources() -> list[Source]:
    """The household of the demo: the same profiles for history and live pulses.

    The profiles count electricity and solar per kWh, gas per m³ and water per litre, which
    matches the meters above (1000 pulses per m³ of water is one per litre).
    """
    return [
        Source(household(kind, pulses_per_unit=ppu, seed=n))
        for n, (kind, ppu) in enumerate(HOUSEHOLD, start=1)
    ]


def prepare_demo(
    directory: Path,
    *,
    port: int,
    interval: float,
    days: int,
    progress: Callable[[int], None] | None = None,
    now: float | None = None,
) -> tuple[Config, Store, PtyEmulator]:
    """Configuration, a store with ``days`` of history, and the emulated module (not started)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = load_config(write_demo_config(directory, port=port, interval=interval))
    store = open_store(config.logger.database, tz=config.logger.timezone)
    start = (now or time.time()) - days * 86400
    sources = _sources()
    meters: dict[int, Meter] = {m.register: m for m in config.meters}
    if not store.meters():
        for reg, *_, ppu, reading in DEMO_METERS:
            store.add_anchor(
                Anchor(
                    meter=meters[reg].key,
                    at=start,
                    reading=reading,
                    pulses_per_unit=ppu,
                    kind=AnchorKind.INITIAL,
                )
            )
        # A contract from the first day of the history, so every cost is priced.
        first = datetime.fromtimestamp(start, config.logger.timezone).date().isoformat()
        store.set_state(TARIFFS_KEY, dutch_contract(first))
        backfill(
            store,
            [(meters[reg], sources[reg - 1]) for reg in meters],
            start=start,
            end=now or time.time(),
            progress=progress,
        )
    module = Module(model=Model.S0PCM5, module_id="8237", interval=interval, sources=sources)
    emulator = PtyEmulator(module, link=directory / "s0pcm")
    return config, store, emulator
