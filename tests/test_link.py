"""The serial link against the emulator on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from s0pcm.emulator import Fault, Module, PtyEmulator, Source, steady
from s0pcm.errors import ConfigError, LinkError
from s0pcm.link.events import (
    FRAMING_7E1,
    FRAMING_8N1,
    Connected,
    Disconnected,
    Event,
    Framing,
    Received,
    ThresholdsResult,
    ThresholdsSent,
)
from s0pcm.link.port import Link
from s0pcm.protocol import Header, Model, Rejected, Telegram, parse_thresholds
from tests.helpers.agreement import assert_agree

INTERVAL = 0.1


@contextlib.asynccontextmanager
async def emulated(module: Module, tmp_path: Path) -> AsyncIterator[PtyEmulator]:
    """The module on a pty at tmp_path/s0, recording what it delivers."""
    emulator = PtyEmulator(module, link=tmp_path / "s0", tick=0.02)
    module.truth.transcript = []
    task = asyncio.create_task(emulator.run())
    await emulator.ready.wait()
    try:
        yield emulator
    finally:
        emulator.stop()
        await task


def fast_link(path: Path, **kw: object) -> Link:
    link = Link(str(path), backoff_min=0.05, backoff_max=0.2, **kw)  # type: ignore[arg-type]
    link.interval = INTERVAL
    return link


async def collect(
    events_of: AsyncIterator[Event],
    until: Callable[[list[Event]], bool],
    *,
    limit: float = 20.0,
) -> list[Event]:
    """Events until ``until(events)`` holds (the timeout only guards against a hang).

    Takes the link's one event iterator, so that calling it again goes on where it stopped.
    """
    events: list[Event] = []
    async with asyncio.timeout(limit):
        async for event in events_of:
            events.append(event)
            if until(events):
                break
    return events


def received(events: list[Event]) -> list[Header | Telegram | Rejected]:
    return [e.record for e in events if isinstance(e, Received)]


def count(kind: type, events: list[Event]) -> int:
    return sum(isinstance(r, kind) for r in received(events))


def module(model: Model = Model.S0PCM5, **kw: object) -> Module:
    sources = [Source(steady(3.0 + n)) for n in range(model.value)]
    return Module(model=model, interval=INTERVAL, sources=sources, **kw)  # type: ignore[arg-type]


async def test_reads_header_and_telegrams_through_7e1_fallback(tmp_path: Path) -> None:
    async with emulated(module(), tmp_path):
        link = Link(str(tmp_path / "s0"))  # default framing 7E1; the pty only carries 8N1
        stream = link.events()
        assert link.framing == FRAMING_7E1
        events = await collect(stream, lambda ev: count(Telegram, ev) >= 5)
        link.close()
    assert isinstance(events[0], Connected)
    recs = received(events)
    assert isinstance(recs[0], Header)
    assert recs[0].thresholds == (30, 30, 30, 30, 30)
    totals = [r.registers[0].total for r in recs if isinstance(r, Telegram)]
    assert totals == sorted(totals)
    assert totals[-1] > 0
    assert count(Telegram, events) == 5
    assert count(Rejected, events) == 0


SCENARIO = [
    Fault.GARBAGE,
    Fault.TRUNCATE,
    Fault.NOISE,
    Fault.MERGE,
    Fault.SPIKE,
    Fault.RESTART,
    Fault.STALL,
    Fault.DROP,
    Fault.UNPLUG,
    Fault.GARBAGE,
    Fault.TRUNCATE,
]


@pytest.mark.parametrize(
    ("model", "firmware", "space"),
    [
        (Model.S0PCM5, "V0.6", False),
        (Model.S0PCM5, "V0.6", True),
        (Model.S0PCM2, "V0.6", True),
        (Model.S0PCM2, "V0.4", False),
    ],
)
async def test_every_fault_agrees_with_the_ground_truth(
    tmp_path: Path, model: Model, firmware: str, space: bool
) -> None:
    m = module(model, firmware=firmware, header_space=space, seed=7)
    events: list[Event] = []
    changed = asyncio.Condition()

    async def until(pred: Callable[[Event], bool]) -> None:
        async with asyncio.timeout(10), changed:
            await changed.wait_for(lambda: pred(events[-1]))

    async with emulated(m, tmp_path) as emulator:
        link = fast_link(tmp_path / "s0", framing=FRAMING_8N1)

        async def read() -> None:
            async for event in link.events():
                async with changed:
                    events.append(event)
                    changed.notify_all()

        reader = asyncio.create_task(read())
        await asyncio.sleep(3 * INTERVAL)
        for fault in SCENARIO:
            emulator.request(fault)
            # Let the fault play out and a few good records follow.
            await asyncio.sleep(4 * INTERVAL)
            if fault in (Fault.DROP, Fault.UNPLUG):
                await until(lambda e: isinstance(e, Received))
                await asyncio.sleep(4 * INTERVAL)
        await asyncio.sleep(3 * INTERVAL)
    # The emulator is gone: the reader drains what it had and sees the port vanish.
    await until(lambda e: isinstance(e, Disconnected))
    link.close()
    await reader
    assert m.truth.transcript is not None
    assert_agree(m.truth.transcript, received(events))
    assert sum(isinstance(e, Connected) for e in events) >= 3  # first, after drop, after unplug
    headers = [r for r in received(events) if isinstance(r, Header)]
    assert len(headers) >= 3  # power-on, restart, replug
    assert all(h.space is space for h in headers)
    assert all((h.thresholds is None) == (firmware == "V0.4") for h in headers)
    assert count(Rejected, events) > 0  # counted by kind in the runner's health
    assert m.truth.restarts == 2
    assert all(r.reported > 0 for r in m.truth.registers)


async def test_watchdog_reopens_a_silent_port(tmp_path: Path) -> None:
    async with emulated(module(), tmp_path) as emulator:
        link = fast_link(tmp_path / "s0", watchdog=3)
        stream = link.events()
        await collect(stream, lambda ev: count(Telegram, ev) >= 2)
        emulator.request(Fault.STALL, duration=40 * INTERVAL)
        events = await collect(stream, lambda ev: isinstance(ev[-1], Disconnected))
        events += await collect(
            stream, lambda ev: isinstance(ev[-1], Received) and isinstance(ev[-1].record, Telegram)
        )
        link.close()
    gone = [e for e in events if isinstance(e, Disconnected)]
    assert gone
    assert gone[0].reason.startswith("watchdog")
    assert sum(e.reason.startswith("watchdog") for e in gone) >= 1
    assert any(isinstance(e, Connected) for e in events)


async def test_thresholds_sent_at_startup_and_confirmed_by_next_header(tmp_path: Path) -> None:
    command = parse_thresholds("T2=40;T5=90;")
    m = module()
    async with emulated(m, tmp_path) as emulator:
        link = fast_link(tmp_path / "s0")
        stream = link.events()
        link.send_thresholds(command)
        # The first header (power-on) opens the module's window: the link sends at once.
        events = await collect(stream, lambda ev: isinstance(ev[-1], ThresholdsSent))
        assert isinstance(received(events)[0], Header)
        await asyncio.sleep(3 * INTERVAL)
        assert m.thresholds == [30, 40, 30, 30, 90]
        emulator.request(Fault.RESTART)
        events = await collect(stream, lambda ev: isinstance(ev[-1], ThresholdsResult))
        link.close()
    result = events[-1]
    assert isinstance(result, ThresholdsResult)
    assert result.taken
    assert result.header.thresholds == (30, 40, 30, 30, 90)
    assert link.thresholds_pending is None


async def test_thresholds_not_taken_are_reported_and_sent_again(tmp_path: Path) -> None:
    command = parse_thresholds("T1=45;")
    m = module(listen_window=0.0)  # the window has closed before the command arrives
    async with emulated(m, tmp_path) as emulator:
        link = fast_link(tmp_path / "s0")
        stream = link.events()
        link.send_thresholds(command)
        await collect(stream, lambda ev: isinstance(ev[-1], ThresholdsSent))
        emulator.request(Fault.RESTART)
        events = await collect(stream, lambda ev: isinstance(ev[-1], ThresholdsSent))
        link.close()
    results = [e for e in events if isinstance(e, ThresholdsResult)]
    assert len(results) == 1
    assert not results[0].taken
    assert m.thresholds == [30] * 5
    assert link.thresholds_pending == command


async def test_thresholds_already_in_force_are_confirmed_without_sending(tmp_path: Path) -> None:
    async with emulated(module(thresholds=[30, 40, 30, 30, 30]), tmp_path):
        link = fast_link(tmp_path / "s0")
        stream = link.events()
        link.send_thresholds(parse_thresholds("T2=40"))
        events = await collect(stream, lambda ev: isinstance(ev[-1], ThresholdsResult))
        link.close()
    assert not any(isinstance(e, ThresholdsSent) for e in events)
    result = events[-1]
    assert isinstance(result, ThresholdsResult)
    assert result.taken


async def test_port_is_opened_exclusively(tmp_path: Path) -> None:
    async with emulated(module(), tmp_path):
        first = fast_link(tmp_path / "s0")
        # Keep the event iterator: dropped, its finaliser would close the port (and free the
        # lock) while the second open is still running in the executor.
        stream = first.events()
        await collect(stream, lambda ev: count(Telegram, ev) >= 1)
        second = fast_link(tmp_path / "s0")
        with pytest.raises(LinkError, match="lock"):
            await second._open(str(tmp_path / "s0"))
        first.close()


async def test_missing_port_is_retried_until_it_appears(tmp_path: Path) -> None:
    link = fast_link(tmp_path / "s0")
    events: list[Event] = []

    async def read() -> None:
        async for event in link.events():
            events.append(event)
            if isinstance(event, Received) and isinstance(event.record, Telegram):
                link.close()

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.5)
    assert events == []  # no port yet: waiting, not failing
    async with emulated(module(), tmp_path):
        async with asyncio.timeout(10):
            await reader
    assert isinstance(events[0], Connected)


def test_framing_parses_and_rejects() -> None:
    assert Framing.parse("8n1") == FRAMING_8N1
    assert Framing.parse("7E1") == FRAMING_7E1
    assert str(FRAMING_7E1) == "9600 7E1"
    with pytest.raises(ConfigError, match="framing"):
        Framing.parse("9X3")


def test_auto_detect_without_a_module_says_so() -> None:
    with pytest.raises(LinkError, match="no S0PCM found"):
        Link(None)._resolve()


def test_parity_checking_and_marking_are_turned_on() -> None:
    """pyserial turns INPCK off; the link turns it (and PARMRK) on for a port with parity. A
    pseudo-terminal has no parity, but keeps the flags, so the settings themselves are tested."""
    import os
    import termios

    from s0pcm.link.port import mark_parity_errors

    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[0] |= termios.IGNPAR | termios.ISTRIP
        attrs[0] &= ~(termios.INPCK | termios.PARMRK)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        mark_parity_errors(slave)
        iflag = termios.tcgetattr(slave)[0]
        assert iflag & termios.INPCK
        assert iflag & termios.PARMRK
        assert not iflag & (termios.IGNPAR | termios.ISTRIP)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_a_byte_marked_with_a_parity_error_rejects_its_line(chunk: int) -> None:
    from s0pcm.protocol import Decoder, Rejected, Telegram

    good = b"ID:8237:I:10:M1:3:24130:M2:0:0\r\n"
    marked = b"ID:8237:I:10:M1:3:24\xff\x0040:M2:0:0\r\n"  # '1' arrived with bad parity as '@'
    end_hit = b"ID:8237:I:10:M1:3:24131:M2:0:0\xff\x00\n"  # the line end itself: lines merge
    data = good + marked + good + end_hit + good + b"\xff\xff" + good
    decoder = Decoder(parity_marks=True)
    decoder.feed(b"\r\n")  # past the first-line-after-connect rule
    out = []
    for i in range(0, len(data), chunk):
        out += decoder.feed(data[i : i + chunk])
    kinds = [type(r).__name__ for r in out]
    # good, marked, good, end-hit merged with the next good, a literal 0xff before a good.
    assert kinds == ["Telegram", "Rejected", "Telegram", "Rejected", "Rejected"]
    assert [r.reason.startswith("parity error") for r in out if isinstance(r, Rejected)] == [
        True,
        True,
        False,
    ]
    assert isinstance(out[0], Telegram)
    assert out[0].registers[0].total == 24130
    # Without marking (8N1 on a pseudo-terminal) the same bytes are only masked to 7 bits.
    plain = Decoder()
    plain.feed(b"\r\n")
    assert isinstance(plain.feed(good)[0], Telegram)


async def test_a_port_gone_while_being_set_up_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device vanishes between opening the port and setting it up (the soak met it: the
    logger exited). That moment cannot be hit on purpose with a real pty, so the set-up fails
    once as pyserial does then; the link retries and reads on."""
    import serial
    import serial_asyncio_fast

    real = serial_asyncio_fast.connection_for_serial
    calls = 0

    async def flaky(*args: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise serial.SerialException("Could not configure port: (5, 'Input/output error')")
        return await real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(serial_asyncio_fast, "connection_for_serial", flaky)
    link = fast_link(tmp_path / "s0")
    async with emulated(module(), tmp_path):
        async with asyncio.timeout(10):
            async for event in link.events():
                if isinstance(event, Received) and isinstance(event.record, Telegram):
                    link.close()
    assert calls == 2
