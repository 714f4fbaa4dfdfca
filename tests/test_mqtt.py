"""The MQTT client against a real Mosquitto (``mqtt_broker``): order at QoS 1, a broker killed
mid-stream, the last will of a killed logger, TLS checks, a wrong password, Home Assistant's
birth. A small encoder stands in for the real ones: each update is one event (not retained,
every one must arrive) and one of three retained states (only the newest counts)."""

# ruff: noqa: S106 - the passwords here are the tests' own

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from s0pcm.config import MqttSettings, load_config, parse_config
from s0pcm.emulator import Module, PtyEmulator, Source, steady
from s0pcm.logger.daemon import Daemon
from s0pcm.logger.runner import Update
from s0pcm.logger.status import collect_status, format_status
from s0pcm.publish import Message
from s0pcm.publish.mqtt import Announce, Encode, Publisher
from s0pcm.publish.outbox import Outbox
from tests.helpers.logger import S0PCM, emulator_process, stored, wait_for_lines, write_config
from tests.helpers.logger import logger as logger_process
from tests.helpers.mqtt import Broker, subscriber

EVENTS = "s0pcm/kast/events"
MODULE = "[modules.kast]\nmodel = 2\n[modules.kast.meters.1]\nkind = 'water'\npulses_per_unit = 1\n"


def settings(broker: Broker, **keys: object) -> MqttSettings:
    s = parse_config(MODULE + broker.toml(**keys)).mqtt
    assert s is not None
    return s


def update(n: int) -> Update:
    return Update(module="kast", at=1_800_000_000.0 + n, pulses={"kast.1": n})


def encode(u: Update) -> list[Message]:
    n = u.pulses["kast.1"]
    return [
        Message(topic=EVENTS, payload=b"%d" % n, retain=False),
        Message(topic=f"s0pcm/kast/{n % 3}/state", payload=b"%d" % n, retain=True),
    ]


def publisher(broker: Broker, tmp_path: Path, **keys: object) -> Publisher:
    backoff = keys.pop("backoff", (0.2, 1.0))
    announce = keys.pop("announce", list)
    delay = keys.pop("announce_delay", (1.0, 5.0))
    return Publisher(
        settings(broker, **keys),
        Outbox(tmp_path / "s0pcm.outbox", limit=10_000),
        encode=encode,
        announce=announce,  # type: ignore[arg-type]
        backoff=backoff,  # type: ignore[arg-type]
        announce_delay=delay,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running(pub: Publisher) -> AsyncIterator[Publisher]:
    task = asyncio.create_task(pub.run())
    try:
        yield pub
    finally:
        pub.stop()
        await asyncio.wait_for(task, 10)


def firsts(payloads: list[bytes]) -> list[int]:
    """Each message once, at its first arrival (QoS 1 may deliver one twice)."""
    return [int(p) for p in dict.fromkeys(payloads)]


async def retained(broker: Broker, topic: str, count: int) -> dict[str, bytes]:
    """What a new subscriber is given of ``topic`` (a filter) right away."""
    async with subscriber(broker, topic, identifier="fresh") as got:
        await got.wait(lambda: len(got.messages) >= count)
        await asyncio.sleep(0.2)
    assert all(m[2] for m in got.messages)
    return {m[0]: m[1] for m in got.messages}


async def test_messages_arrive_in_order_at_qos_1(mqtt_broker: Broker, tmp_path: Path) -> None:
    async with subscriber(mqtt_broker, "s0pcm/#") as got:
        pub = publisher(mqtt_broker, tmp_path)
        async with running(pub):
            for n in range(300):
                pub.on_update(update(n))
            await got.wait(lambda: len(got.payloads(EVENTS)) >= 300)
        await got.wait(lambda: got.payloads("s0pcm/status")[-1:] == [b"offline"])
    assert got.payloads(EVENTS) == [b"%d" % n for n in range(300)]
    assert {m[3] for m in got.messages} == {1}
    assert got.payloads("s0pcm/status") == [b"online", b"offline"]  # said at a clean stop
    assert len(pub.outbox) == 0
    assert pub.status.sent >= 300
    assert await retained(mqtt_broker, "s0pcm/kast/+/state", 3) == {
        f"s0pcm/kast/{r}/state": b"%d" % (297 + r) for r in range(3)
    }


async def test_broker_killed_mid_stream_loses_nothing(mqtt_broker: Broker, tmp_path: Path) -> None:
    total = 600
    async with subscriber(mqtt_broker, EVENTS, identifier="keeper", persistent=True) as got:
        await asyncio.sleep(1.5)  # the broker has saved the subscriber's session (every 1 s)
        pub = publisher(mqtt_broker, tmp_path, backoff=(0.2, 1.0))
        async with running(pub):

            async def produce() -> None:
                for n in range(total):
                    pub.on_update(update(n))  # as the logger does: never waits
                    await asyncio.sleep(0.01)

            producer = asyncio.create_task(produce())
            await got.wait(lambda: len(got.payloads(EVENTS)) >= 100)
            mqtt_broker.kill()
            await asyncio.sleep(3)
            assert not pub.status.connected
            waiting = len(pub.outbox)
            assert waiting > 100  # the logger went on; its messages wait on disk
            mqtt_broker.start()
            assert not producer.done()  # back while the stream goes on
            await producer
            await got.wait(lambda: len(set(got.payloads(EVENTS))) >= total, seconds=30)
            assert pub.status.connected
            assert "refused" not in (pub.status.last_error or "")
    assert firsts(got.payloads(EVENTS)) == list(range(total))
    assert len(pub.outbox) == 0
    # Retained: the newest of each, though the broker lost what it held (no autosave since).
    assert await retained(mqtt_broker, "s0pcm/kast/+/state", 3) == {
        f"s0pcm/kast/{r}/state": b"%d" % (total - 3 + r) for r in range(3)
    }


async def test_last_will_when_the_logger_is_killed(mqtt_broker: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path, model=2)
    config.write_text(config.read_text() + mqtt_broker.toml())
    with emulator_process(tmp_path, "--interval", "0.1"):
        async with subscriber(mqtt_broker, "s0pcm/status") as got:

            def said(payload: bytes) -> bool:
                return got.payloads("s0pcm/status")[-1:] == [payload]

            proc = logger_process(config)
            await got.wait(lambda: said(b"online"))
            proc.send_signal(signal.SIGTERM)  # a clean stop says offline itself
            assert proc.wait(timeout=20) == 0
            await got.wait(lambda: said(b"offline"))
            proc = logger_process(config)
            await got.wait(lambda: said(b"online"))
            proc.send_signal(signal.SIGKILL)  # no goodbye: the broker sends the will
            proc.wait(timeout=10)
            await got.wait(lambda: said(b"offline"))
    assert got.payloads("s0pcm/status") == [b"online", b"offline"] * 2
    assert await retained(mqtt_broker, "s0pcm/status", 1) == {"s0pcm/status": b"offline"}


async def test_the_logger_killed_while_the_broker_is_away_loses_no_message(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    """The outbox is written with the counts, not once a record: a logger SIGKILLed between
    two commits, with the broker away all along, has its messages made again from the
    journal at the next start. Every total of meter 1 reaches Domoticz, from the first."""
    import json

    config = write_config(tmp_path, model=2, commit_interval=60)
    text = config.read_text().replace(
        "[modules.kast.meters.1]\n", "[modules.kast.meters.1]\ndomoticz_idx = 7\n"
    )
    config.write_text(text + mqtt_broker.toml(domoticz=True))

    def totals(got: list[bytes]) -> list[int]:  # meter 1's Wh, as Domoticz got them
        return sorted({int(json.loads(p)["svalue"].split(";")[1]) for p in got})

    async with subscriber(mqtt_broker, "domoticz/in", persistent=True) as got:
        pass  # the broker keeps this session's messages while it is away
    mqtt_broker.stop()
    with emulator_process(tmp_path, "--interval", "0.1", "--rate", "1=10") as truth:
        first = logger_process(config)
        wait_for_lines(truth, 30)
        first.send_signal(signal.SIGKILL)  # between two commits: the journal has it all
        first.wait(timeout=10)
        mqtt_broker.start()
        second = logger_process(config)
        wait_for_lines(truth, 60)
    async with subscriber(mqtt_broker, "domoticz/in", persistent=True) as got:
        await got.wait(lambda: len(got.payloads("domoticz/in")) >= 30)
        await asyncio.sleep(1.5)  # the emulator has stopped: the last records are sent
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    seen = totals(got.payloads("domoticz/in"))
    assert seen[0] <= 3, seen[:10]  # the first run's records too, not only the second's
    assert max(b - a for a, b in itertools.pairwise(seen)) <= 3, seen
    assert seen[-1] == stored(config)[0]


async def test_tls_checks_the_ca_and_the_host_name(
    mqtt_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = mqtt_broker
    async with subscriber(b, EVENTS) as got:
        good = publisher(b, tmp_path / "good", tls=True, port=b.tls_port, ca_file=b.ca_file)
        async with running(good):
            good.on_update(update(1))
            await got.wait(lambda: got.payloads(EVENTS) == [b"1"])
        cases: list[tuple[str, dict[str, object], str]] = [
            ("ca", {"ca_file": b.other_ca_file, "port": b.tls_port}, "is not trusted by ca_file"),
            ("name", {"ca_file": b.ca_file, "port": b.wrong_name_port}, "is not for '127.0.0.1'"),
        ]
        for name, keys, wanted in cases:
            bad = publisher(b, tmp_path / name, tls=True, **keys)
            caplog.clear()
            async with running(bad):
                bad.on_update(update(2))
                deadline = time.monotonic() + 10
                while bad.status.failures < 2:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert not bad.status.connected
            assert wanted in (bad.status.last_error or ""), bad.status.last_error
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            assert wanted in errors[0].getMessage()
            assert len(bad.outbox) == 2  # kept for when it works
        # Checks off: the wrong CA is taken.
        insecure = publisher(
            b, tmp_path / "insecure", tls=True, port=b.tls_port, ca_file=b.other_ca_file,
            tls_insecure=True,
        )  # fmt: skip
        async with running(insecure):
            insecure.on_update(update(3))
            await got.wait(lambda: got.payloads(EVENTS) == [b"1", b"3"])


async def test_a_wrong_password_is_one_line_and_retries_back_off(
    mqtt_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="s0pcm.publish.mqtt")
    pub = publisher(mqtt_broker, tmp_path, password="wrong", backoff=(0.1, 0.4))
    async with running(pub):
        for n in range(5):
            pub.on_update(update(n))
        deadline = time.monotonic() + 15
        while pub.status.failures < 6:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert "refused the login of user 's0pcm'" in lines[0]
    assert "wrong" not in lines[0]
    assert "counting goes on" in lines[0]
    assert "Traceback" not in caplog.text
    waits = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.fullmatch(r"MQTT: next try in ([0-9.]+) s", r.getMessage()))
    ]
    assert len(waits) >= 5
    # Each wait a random 50-100 % of 0.1 s doubling up to 0.4 s.
    for wait, most in zip(waits, [0.1, 0.2, 0.4, 0.4, 0.4, 0.4], strict=False):
        assert most / 2 - 0.01 <= wait <= most + 0.01, waits
    assert len(pub.outbox) == 8  # nothing sent, nothing lost: 5 events, 3 states


def test_a_wrong_password_and_the_logger_keeps_counting(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, model=2)
    config.write_text(config.read_text() + mqtt_broker.toml(password="wrong"))
    log = tmp_path / "logger.log"
    with emulator_process(tmp_path, "--interval", "0.1", "--rate", "1=10") as truth:
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*S0PCM, "run", "--config", str(config), "--no-web"],
                stderr=err,
            )
        wait_for_lines(truth, 60)  # several seconds: tries at ~1, 2 and 4 s
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    text = log.read_text()
    refused = [line for line in text.splitlines() if "refused the login" in line]
    assert len(refused) == 1, text[-3000:]
    assert "Traceback" not in text
    assert stored(config)[0] >= 40  # counted and stored all along


async def test_home_assistant_birth_is_answered_after_a_delay(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    announced: list[float] = []

    def announce() -> list[Message]:
        announced.append(time.monotonic())
        n = len(announced)
        return [Message(topic="homeassistant/sensor/x/config", payload=b"%d" % n, retain=True)]

    b = mqtt_broker
    pub = publisher(b, tmp_path, announce=announce, announce_delay=(0.3, 0.5))
    async with subscriber(b, "homeassistant/sensor/#") as got, running(pub):
        await got.wait(lambda: len(got.messages) >= 1)
        assert len(announced) == 2  # at start and on connecting
        async with aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password
        ) as home_assistant:
            await home_assistant.publish("homeassistant/status", b"offline", qos=1)
            await asyncio.sleep(0.7)
            assert len(announced) == 2  # going away is not a birth
            said = time.monotonic()
            await home_assistant.publish("homeassistant/status", b"online", qos=1)
            await got.wait(lambda: got.payloads("homeassistant/sensor/x/config")[-1:] == [b"3"])
    assert 0.3 <= announced[2] - said <= 1.0


async def test_a_full_outbox_drops_the_oldest_events_and_says_so(
    mqtt_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the link is not up the logger's updates go on, the outbox keeps its bound, and
    the overflow is said once when it starts and once, with the count, when there is room."""
    dropped: list[tuple[int, bool]] = []
    pub = Publisher(
        settings(mqtt_broker),
        Outbox(tmp_path / "s0pcm.outbox", limit=100),
        encode=encode,
        on_dropped=lambda count, over: dropped.append((count, over)),
    )
    for n in range(150):  # not running yet: nothing is sent
        pub.on_update(update(n))
    assert len(pub.outbox) == 100
    assert pub.outbox.dropped == 150 - 97  # every event beyond the bound (3 are states)
    events = [int(e.message.payload) for e in pub.outbox.peek(200) if not e.message.retain]
    assert events == list(range(150 - 97, 150))  # the newest events, in order
    assert dropped == [(1, False)]  # said once, not once a record
    assert len([r for r in caplog.records if "outbox full" in r.getMessage()]) == 1
    async with running(pub):
        deadline = time.monotonic() + 10
        while len(pub.outbox):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    assert dropped == [(1, False), (150 - 97, True)]


async def test_the_logger_publishes_every_update_through_its_outbox(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    """The seam end to end: emulator, the real daemon with ``[mqtt]``, its publisher task, the
    broker. Every update arrives, in order; the retained state is the store's count."""
    path = write_config(tmp_path, commit_interval=0.3)
    path.write_text(path.read_text() + mqtt_broker.toml())
    config = load_config(path)

    def encoders(daemon: Daemon) -> tuple[Encode, Announce]:
        def encode(u: Update) -> list[Message]:
            counts = b",".join(b"%d" % v.pulses for v in u.values)
            return [Message(topic="s0pcm/kast/events", payload=counts, retain=False)] + [
                Message(topic=f"s0pcm/{v.key}/state", payload=b"%d" % v.pulses, retain=True)
                for v in u.values
            ]

        return encode, list

    module = Module(interval=0.1, sources=[Source(steady(3.0 + n)) for n in range(5)], seed=2)
    emulator = PtyEmulator(module, link=tmp_path / "s0", tick=0.02)
    emu_task = asyncio.create_task(emulator.run())
    await emulator.ready.wait()
    async with subscriber(mqtt_broker, "s0pcm/#") as got:
        daemon = Daemon(config, encoders=encoders)
        updates: list[bytes] = []
        daemon.subscribe(lambda u: updates.append(b",".join(b"%d" % v.pulses for v in u.values)))
        task = asyncio.create_task(daemon.run())
        await got.wait(lambda: len(got.payloads(EVENTS)) >= 20)
        assert daemon.publisher is not None
        assert daemon.publisher.status.connected
        emulator.stop()
        await emu_task
        await asyncio.sleep(0.3)
        daemon.stop()
        await task
        await got.wait(lambda: got.payloads("s0pcm/status")[-1:] == [b"offline"])
    assert got.payloads(EVENTS) == updates
    newest = await retained(mqtt_broker, "s0pcm/+/state", 5)
    assert [int(newest[f"s0pcm/{m.key}/state"]) for m in config.meters] == stored(path)


async def test_s0pcm_run_publishes_discovery_and_state_with_the_real_encoders(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    """``s0pcm run``'s encoders (``publish.encoders.for_daemon``) end to end: every meter is
    announced to Home Assistant under the module's id, its state topic named in the config
    carries the store's pulses, and Domoticz gets absolute values for the meter with an idx."""
    import json

    from s0pcm.publish.encoders import for_daemon

    path = write_config(tmp_path, commit_interval=0.3)
    text = path.read_text().replace(
        "[modules.kast.meters.1]\n", "[modules.kast.meters.1]\ndomoticz_idx = 7\n"
    )
    path.write_text(text + mqtt_broker.toml(domoticz=True))
    config = load_config(path)
    module = Module(interval=0.1, sources=[Source(steady(3.0 + n)) for n in range(5)], seed=3)
    emulator = PtyEmulator(module, link=tmp_path / "s0", tick=0.02)
    emu_task = asyncio.create_task(emulator.run())
    await emulator.ready.wait()
    async with subscriber(mqtt_broker, "#") as got:
        daemon = Daemon(config, encoders=for_daemon)
        task = asyncio.create_task(daemon.run())
        await got.wait(lambda: len(got.payloads("domoticz/in")) >= 10)
        emulator.stop()
        await emu_task
        await asyncio.sleep(0.3)
        daemon.stop()
        await task
    module_id = daemon.runners[0].health.module_id
    assert module_id
    configs = {
        m[0]: json.loads(m[1])
        for m in got.messages
        if m[0].startswith("homeassistant/") and m[0].endswith("/config") and m[1]
    }
    for meter in config.meters:
        state_topic = f"s0pcm/{module_id}/{meter.register}/state"
        mine = [c for c in configs.values() if c["state_topic"] == state_topic]
        assert any(c.get("state_class") == "total_increasing" for c in mine), meter.key
        last = json.loads(got.payloads(state_topic)[-1])
        assert last["pulses_total"] == stored(path)[meter.register - 1]
    domoticz = [json.loads(p) for p in got.payloads("domoticz/in")]
    assert {d["idx"] for d in domoticz} == {7}
    # What the logger saved of its link, as `s0pcm status` shows it after the logger stopped.
    readonly = Daemon(config, readonly=True)
    doc = collect_status(readonly, time.time(), logger=None)
    readonly.close()
    assert doc["mqtt"]["broker"] == f"{mqtt_broker.host}:{mqtt_broker.port}"
    assert doc["mqtt"]["connected"] is False
    # Every message the subscriber got but the two said beside the outbox (online, offline).
    assert doc["mqtt"]["sent"] == len(got.messages) - 2
    assert doc["mqtt"]["outbox"] == 0
    assert f"mqtt {mqtt_broker.host}:{mqtt_broker.port}: not connected, 0 messages waiting" in (
        format_status(doc)
    )
    assert all(isinstance(d["nvalue"], int) and isinstance(d["svalue"], str) for d in domoticz)
    # Announced under the module's name before its id was known; those configs are emptied
    # once, and what the broker keeps is under the id alone.
    by_name = {m[0] for m in got.messages if "/s0pcm_kast_" in m[0] and m[1]}
    assert by_name, "nothing was announced before the id was known"
    emptied = [m[0] for m in got.messages if "/config" in m[0] and not m[1]]
    assert sorted(emptied) == sorted(by_name)
    kept = await retained(mqtt_broker, "homeassistant/#", len(configs) - len(by_name))
    assert kept
    assert all(f"s0pcm_{module_id}_" in topic for topic in kept)

    # The logger restarted with meter 3 switched off: its configs (and no other) are emptied,
    # though this run never announced them.
    path.write_text(path.read_text().replace(
        "[modules.kast.meters.3]\n", "[modules.kast.meters.3]\nenabled = false\n"
    ))  # fmt: skip
    async with subscriber(mqtt_broker, "homeassistant/#", identifier="second") as again:
        await again.wait(lambda: len(again.messages) >= len(kept))
        daemon = Daemon(load_config(path), encoders=for_daemon)
        task = asyncio.create_task(daemon.run())
        await again.wait(lambda: any(not m[1] for m in again.messages))
        await asyncio.sleep(0.5)
        daemon.stop()
        await task
    removed = {m[0] for m in again.messages if not m[1]}
    assert removed == {t for t in kept if f"s0pcm_{module_id}_3_" in t}
    now = await retained(mqtt_broker, "homeassistant/#", len(kept) - len(removed))
    assert set(now) == set(kept) - removed
