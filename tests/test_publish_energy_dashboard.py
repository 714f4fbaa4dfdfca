"""The sensor the energy dashboard is pointed at never decreases: a real logger on a real store
(SQLite), every update encoded as the MQTT client will, through module restarts (with and without
a start-up header), a correction downwards, a meter replacement with another constant and a
logger restart; Home Assistant's statistics rule (tests/helpers/homeassistant.py) then books
exactly what was counted."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s0pcm.config import load_config
from s0pcm.logger.daemon import Daemon
from s0pcm.logger.overrides import add_reading
from s0pcm.logger.runner import ModuleRunner, Update
from s0pcm.protocol import Header, Register, Telegram
from s0pcm.publish.homeassistant import ModuleInfo, announce
from s0pcm.publish.state import update_messages
from s0pcm.publish.topics import Topics
from tests.helpers.homeassistant import config, statistics, template_key
from tests.helpers.logger import write_config

TOPICS = Topics()


def dashboard_sensors(runner: ModuleRunner) -> dict[str, tuple[str, str]]:
    """Per meter key, the state JSON key and the state class of its energy-dashboard sensor, as
    announced for the runner's module under the id it printed (none before it did)."""
    info = ModuleInfo(health=runner.health, model=runner.settings.model, meters=runner.all_meters)
    docs = {d["unique_id"]: d for d in map(config, announce([info], topics=TOPICS))}
    out = {}
    for meter in runner.all_meters:
        doc = docs.get(f"s0pcm_{runner.health.module_id}_{meter.register}_counted")
        if doc is not None:
            out[meter.key] = (template_key(doc["value_template"]), doc["state_class"])
    return out


class Module:
    """The records of an S0PCM-5 with a steady flow of pulses: a module life at a time."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.totals = [0] * 5
        self.fed = [0] * 5
        self.step = 0

    def header(self, runner: ModuleRunner) -> None:
        self.at += 10
        self.totals = [0] * 5
        runner.apply(self.at, Header.make("8237", thresholds=(30,) * 5))

    def records(self, runner: ModuleRunner, n: int) -> None:
        for _ in range(n):
            self.at += 10
            self.step += 1
            counts = [(self.step * (r + 3)) % 7 + r for r in range(5)]
            self.totals = [t + c for t, c in zip(self.totals, counts, strict=True)]
            self.fed = [f + c for f, c in zip(self.fed, counts, strict=True)]
            registers = tuple(
                Register(interval=c, total=t) for c, t in zip(counts, self.totals, strict=True)
            )
            runner.apply(self.at, Telegram(module_id="8237", interval=10, registers=registers))


@contextlib.contextmanager
def logger(path: Path, seen: dict[str, list[dict[str, Any]]]) -> Iterator[Daemon]:
    """A logger on the store at ``path`` whose every update is encoded; each meter's state
    documents land in ``seen``."""
    daemon = Daemon(load_config(path))

    def encode(update: Update) -> None:
        runner = daemon.runner(update.module)
        for m in update_messages(
            update,
            meters=runner.all_meters,
            health=runner.health,
            stats=runner.ledger.stats,
            model=runner.settings.model,
            topics=TOPICS,
        ):
            if m.topic.endswith("/state"):
                doc = json.loads(m.payload)
                seen.setdefault(doc["key"], []).append(doc)

    unsubscribe = daemon.subscribe(encode)
    try:
        yield daemon
    finally:
        unsubscribe()
        daemon.commit()
        daemon.close()


def test_the_energy_dashboard_sensor_never_decreases(tmp_path: Path) -> None:
    """Module restarts, a correction downwards, a meter replacement with another constant and
    a logger restart: the reading goes back (twice), what was counted never does, and Home
    Assistant's statistics of it book exactly what was counted, with no new meter cycle."""
    path = write_config(tmp_path)
    seen: dict[str, list[dict[str, Any]]] = {}
    # Records at x0.5 s: a reading set 5 s after one holds from the next record's slot on.
    module = Module(math.floor(time.time() / 10) * 10 - 3000 + 0.5)
    key = "kast.1"
    with logger(path, seen) as daemon:
        runner = daemon.runners[0]
        module.header(runner)
        module.records(runner, 30)
        module.header(runner)  # the module restarts: totals from 0
        module.records(runner, 20)
        meter = next(m for m in runner.all_meters if m.key == key)
        reading = seen[key][-1]["reading"]
        add_reading(daemon.store, meter, at=module.at + 5, reading=reading / 2)
        daemon.load_settings()
        module.records(runner, 20)
        before_swap = module.fed[0]
        add_reading(
            daemon.store, meter, at=module.at + 5, reading=0.0, replaced=True, pulses_per_unit=500
        )
        daemon.load_settings()
        module.records(runner, 20)
    with logger(path, seen) as daemon:  # the logger restarts on the same store
        runner = daemon.runners[0]
        module.records(runner, 20)
        runner.apply(
            module.at + 10,
            Telegram(module_id="8237", interval=10, registers=(Register(0, 0),) * 5),
        )  # totals back without a header: a restart seen from the totals
        module.at += 10
        module.totals = [0] * 5
        module.records(runner, 20)
        held = runner.ledger.held
        announced = dashboard_sensors(runner)

    assert len(seen[key]) > 100
    assert set(seen) == set(announced)
    for k, states in seen.items():
        # What Home Assistant is told of the sensor the energy dashboard is pointed at.
        field, state_class = announced[k]
        counted = [d[field] for d in states]
        assert counted == sorted(counted), f"{k} went back"
        total, cycles = statistics(counted, state_class=state_class)
        assert cycles == 0
        assert math.isclose(total, counted[-1] - counted[0], abs_tol=1e-6)
    # The display reading did go back: pointed at it, Home Assistant would count a new cycle.
    readings = [d["reading"] for d in seen[key]]
    assert any(b < a for a, b in itertools.pairwise(readings))
    assert statistics(readings, state_class="total_increasing")[1] >= 1
    # What counted is each pulse in the constant it was counted with, to the last pulse.
    assert held == 0
    expected = before_swap / 1000 + (module.fed[0] - before_swap) / 500
    assert seen[key][-1][announced[key][0]] == pytest.approx(expected, abs=1e-6)


def test_a_logger_beside_a_running_module_keys_its_topics_by_the_id_from_the_first_record(
    tmp_path: Path,
) -> None:
    """No start-up header comes when the module was already running: the id its records print
    keys the topics and Home Assistant ids from the first record on, so they do not change
    (and entities are not replaced) when the module restarts one day."""
    seen: dict[str, list[dict[str, Any]]] = {}
    module = Module(math.floor(time.time() / 10) * 10 - 600 + 0.5)
    with logger(write_config(tmp_path), seen) as daemon:
        runner = daemon.runners[0]
        assert dashboard_sensors(runner) == {}  # announced under the name until then
        module.records(runner, 3)
        before = dashboard_sensors(runner)
        assert len(before) == 5
        module.header(runner)
        module.records(runner, 3)
        assert dashboard_sensors(runner) == before
        assert runner.health.module_id == "8237"
