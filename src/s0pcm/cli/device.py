"""The commands that talk to a module: read what it prints, set its thresholds, and emulate
one on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..emulator import HOUSEHOLD, Fault, Module, PtyEmulator, Source, household, steady
from ..errors import ProtocolError
from ..link.events import (
    Connected,
    Disconnected,
    Event,
    Framing,
    Received,
    ThresholdsResult,
    ThresholdsSent,
)
from ..link.port import Link
from ..protocol import Header, Model, Rejected, Telegram, parse_thresholds
from .options import (
    duration_option,
    framing_option,
    interval_option,
    json_option,
    log,
    model_option,
    run_async,
    setup_logging,
    verbose_option,
)

# --- read ----------------------------------------------------------------------------------------


def event_dict(event: Event) -> dict[str, Any]:
    """An event as a flat JSON-ready object with a ``type`` field."""
    if isinstance(event, Received):
        record = event.record
        kind = {Header: "header", Telegram: "telegram", Rejected: "rejected"}[type(record)]
        out: dict[str, Any] = {"type": kind, "at": event.at, **dataclasses.asdict(record)}
        if isinstance(record, Telegram):
            out["registers"] = [
                {"register": n, "interval": r.interval, "total": r.total}
                for n, r in enumerate(record.registers, start=1)
            ]
        return out
    kinds: dict[type, str] = {
        Connected: "connected",
        Disconnected: "disconnected",
        ThresholdsSent: "thresholds_sent",
        ThresholdsResult: "thresholds_result",
    }
    out = {"type": kinds[type(event)], **dataclasses.asdict(event)}
    if isinstance(event, ThresholdsSent | ThresholdsResult):
        out["command"] = event.command.to_command()
    if isinstance(event, ThresholdsResult):
        out["header"] = event.header.to_line()
    return out


def event_text(event: Event) -> str:
    """An event as one human-readable line."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    if isinstance(event, Received):
        r = event.record
        if isinstance(r, Header):
            th = "/".join(map(str, r.thresholds)) + " ms" if r.thresholds else "none"
            return f"{stamp} header    module {r.module_id}: {r.text} (thresholds: {th})"
        if isinstance(r, Telegram):
            regs = "  ".join(
                f"M{n} {x.interval:>3} {x.total:>8}" for n, x in enumerate(r.registers, start=1)
            )
            return f"{stamp} telegram  module {r.module_id} I={r.interval}s  {regs}"
        return f"{stamp} rejected  {r.reason}: {r.raw!r}"
    if isinstance(event, Connected):
        return f"{stamp} connected {event.port}"
    if isinstance(event, Disconnected):
        return f"{stamp} disconnected {event.port}: {event.reason}"
    if isinstance(event, ThresholdsSent):
        return f"{stamp} sent thresholds {event.command.to_command()}"
    verdict = "took" if event.taken else "did NOT take"
    return (
        f"{stamp} module {verdict} thresholds {event.command.to_command()} "
        f"(header: {event.header.to_line()})"
    )


@click.command()
@click.argument("port", required=False)
@json_option("One JSON object per line, with 'type'.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many lines received.")
@framing_option
@verbose_option
def read(
    port: str | None, as_json: bool, count: int | None, framing: Framing, verbose: int
) -> None:
    """Print every line the module sends, as it arrives.

    PORT is the serial device; without it the module is found by its USB vendor id. The port is
    reopened after an unplug and when no data record arrives for 3 intervals.

    \b
    Example:
        s0pcm read /dev/ttyACM0
        s0pcm read /tmp/s0 --framing 8N1 --json --count 5
    """
    setup_logging(verbose, shows_rejected=True)

    async def go() -> None:
        link = Link(port, framing=framing)
        received = 0
        async for event in link.events():
            line = json.dumps(event_dict(event)) if as_json else event_text(event)
            click.echo(line)
            if isinstance(event, Received):
                received += 1
                if count is not None and received >= count:
                    link.close()
                    return

    run_async(go())


# --- set-thresholds ------------------------------------------------------------------------------


@click.command("set-thresholds")
@click.argument("args", nargs=-1, required=True, metavar="[PORT] COMMAND")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds to wait for the module's start-ups.",
)
@model_option("S0PCM-2 or S0PCM-5 (which registers exist).")
@framing_option
@verbose_option
def set_thresholds(
    args: tuple[str, ...], timeout: float, model: str, framing: Framing, verbose: int
) -> None:
    """Set the pulse thresholds (ms) of registers, and confirm the module took them.

    The module accepts a command only in the first 10 s after power-up. This waits for a start-up
    header (unplug and replug the module), sends COMMAND at once, then waits for the next start-up
    header, which shows the thresholds in force. Exit status 0 when the module took them, 1 when
    it did not, 2 on a timeout.

    \b
    Example:
        s0pcm set-thresholds /dev/ttyACM0 'T2=40;'
        s0pcm set-thresholds 'T3=50;T5=90;'
    """
    setup_logging(verbose, shows_rejected=True)
    if len(args) > 2:
        raise click.UsageError("expected [PORT] COMMAND")
    port, text = (None, args[0]) if len(args) == 1 else args
    try:
        command = parse_thresholds(text, model=Model(int(model)))
    except ProtocolError as e:
        raise click.BadParameter(e.reason, param_hint="COMMAND") from e

    async def go() -> int:
        link = Link(port, framing=framing)
        link.send_thresholds(command)
        click.echo(
            f"Waiting for the module to start up (unplug and replug it) to send "
            f"{command.to_command()} ..."
        )
        try:
            async with asyncio.timeout(timeout):
                async for event in link.events():
                    if isinstance(event, ThresholdsSent):
                        click.echo(
                            f"Sent {event.command.to_command()}. Waiting for the next start-up "
                            "to confirm (unplug and replug once more) ..."
                        )
                    elif isinstance(event, ThresholdsResult):
                        click.echo(event_text(event))
                        if event.taken:
                            link.close()
                            return 0
                    elif isinstance(event, Received) and isinstance(event.record, Header):
                        click.echo(event_text(event))
        except TimeoutError:
            click.echo(f"No confirmation within {timeout:g} s.", err=True)
            return 2
        return 1

    sys.exit(run_async(go()))


# --- emulate -------------------------------------------------------------------------------------


def _pairs(name: str, values: tuple[str, ...], registers: int) -> dict[int, float]:
    """The repeated ``REGISTER=VALUE`` of option ``name``, by register (the last one wins)."""
    out: dict[int, float] = {}
    for item in values:
        reg, sep, val = item.partition("=")
        try:
            r, v = int(reg), float(val)
        except ValueError:
            r, v = 0, -1.0
        if not sep or not 1 <= r <= registers or v < 0:
            raise click.BadParameter(
                f"{item!r}: expected REGISTER=VALUE with register 1..{registers}, value >= 0",
                param_hint=name,
            )
        out[r] = v
    return out


@click.command()
@click.option(
    "--link",
    "link_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Stable symlink to the emulated port (kept across unplug/replug).",
)
@model_option("Emulate an S0PCM-2 or an S0PCM-5.")
@click.option(
    "--id",
    "module_id",
    default="8237",
    show_default=True,
    help="Module id printed in the header and every record.",
)
@interval_option("Seconds between data records (fractions for tests).", least=0.05)
@click.option(
    "--firmware",
    default="V0.6",
    show_default=True,
    help="Firmware version; before V0.6 the header has no thresholds.",
)
@click.option("--header-space", is_flag=True, help="Print '/ID: S0 ...' with a space.")
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="REGISTER=PULSES_PER_SECOND",
    help="A steady pulse rate for a register (repeatable).",
)
@click.option(
    "--profile",
    type=click.Choice(["household"]),
    help="Realistic daily profile: electricity, gas, water, solar (production), electricity.",
)
@click.option(
    "--pulse-ms",
    "pulse_ms",
    multiple=True,
    metavar="REGISTER=MS",
    help="Length of the meter's pulses (default 50 ms); shorter than the threshold "
    "means not counted.",
)
@click.option("--thresholds", "initial", help="Initial thresholds as a command, e.g. 'T2=40;'.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(path_type=Path),
    help="Keep a JSON ground truth here: per register pulses generated, counted by "
    "the module, and reported intact to a reader; restarts; faults.",
)
@click.option(
    "--transcript",
    "transcript_path",
    type=click.Path(path_type=Path),
    help="Append every line a reader consumed here, one JSON document each: when, the "
    "module life, the totals it carries intact (to trace a count back to its lines).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Random faults per interval (0.1 = one fault every 10 intervals on average).",
)
@click.option(
    "--faults",
    "fault_kinds",
    default=",".join(Fault),
    show_default=True,
    help="Kinds of random faults to draw from, comma-separated.",
)
@click.option(
    "--control",
    "control_path",
    type=click.Path(path_type=Path),
    help="Create a FIFO here; write a fault to it to inject it now, e.g. "
    "'echo \"unplug 5\" > FIFO'.",
)
@duration_option
@verbose_option
def emulate(
    link_path: Path,
    model: str,
    module_id: str,
    interval: float,
    firmware: str,
    header_space: bool,
    rates: tuple[str, ...],
    profile: str | None,
    pulse_ms: tuple[str, ...],
    initial: str | None,
    seed: int,
    truth_path: Path | None,
    transcript_path: Path | None,
    fault_rate: float,
    fault_kinds: str,
    control_path: Path | None,
    duration: float | None,
    verbose: int,
) -> None:
    """Run a virtual S0PCM-2 or S0PCM-5 on a pseudo-terminal.

    A pseudo-terminal carries no parity: readers fall back to 8N1 and mask to 7 bits. Faults on
    demand: SIGUSR1 restarts the module, SIGUSR2 unplugs and replugs it, and with --control any
    fault written to the FIFO happens at once ('rate R' there sets --fault-rate). Random faults
    are drawn with --fault-rate from: restart, unplug, drop, garbage, truncate, merge, stall,
    spike, noise.

    \b
    Example:
        s0pcm emulate --link /tmp/s0 --interval 0.2 --rate 1=5 --rate 3=0.5 &
        s0pcm read /tmp/s0 --framing 8N1 --json
    """
    setup_logging(verbose)
    m = Model(int(model))
    if not module_id.isdigit():
        raise click.BadParameter("must be a number", param_hint="--id")
    steady_rates = _pairs("--rate", rates, m.value)
    widths = _pairs("--pulse-ms", pulse_ms, m.value)
    try:
        kinds = [Fault(k.strip()) for k in fault_kinds.split(",") if k.strip()]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--faults") from e
    thresholds: list[int] | None = None
    if initial:
        try:
            cmd = parse_thresholds(initial, model=m)
        except ProtocolError as e:
            raise click.BadParameter(e.reason, param_hint="--thresholds") from e
        thresholds = [30] * m.value
        for reg, ms in cmd.values:
            thresholds[reg - 1] = ms
    sources = []
    for n in range(1, m.value + 1):
        rate: Callable[[float], float]
        if n in steady_rates:
            rate = steady(steady_rates[n])
        elif profile == "household":
            kind, ppu = HOUSEHOLD[n - 1]
            rate = household(kind, pulses_per_unit=ppu, seed=seed + n)
        else:
            rate = steady(0.0)
        sources.append(Source(rate, pulse_ms=widths.get(n, 50.0)))
    module = Module(
        model=m,
        module_id=module_id,
        interval=interval,
        firmware=firmware,
        thresholds=thresholds,
        sources=sources,
        header_space=header_space,
        seed=seed,
    )
    emulator = PtyEmulator(
        module,
        link=link_path,
        truth_path=truth_path,
        fault_rate=fault_rate,
        fault_kinds=kinds,
        transcript_path=transcript_path,
    )

    async def go() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, emulator.request, Fault.RESTART)
        loop.add_signal_handler(signal.SIGUSR2, emulator.request, Fault.UNPLUG)
        if duration is not None:
            loop.call_later(duration, emulator.stop)
        if control_path is not None:
            _control_fifo(control_path, emulator)
        task = asyncio.ensure_future(emulator.run())
        await emulator.ready.wait()
        click.echo(f"{m.label} {module_id} on {link_path} (every {interval:g} s)", err=True)
        await task

    try:
        run_async(go())
    finally:
        if control_path is not None:
            control_path.unlink(missing_ok=True)


def _control_fifo(path: Path, emulator: PtyEmulator) -> None:
    """Read fault commands, one per line, from a FIFO at ``path``."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.mkfifo(path, 0o600)
    # Opened read-write, so the FIFO never reports end-of-file between writers.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    pending = b""

    def readable() -> None:
        nonlocal pending
        pending += os.read(fd, 4096)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            text = line.decode("ascii", "replace").strip()
            if not text:
                continue
            try:
                emulator.command(text)
            except ValueError:
                log.warning(
                    "control: not a command: %r (rate R, or one of %s)", text, ", ".join(Fault)
                )

    asyncio.get_running_loop().add_reader(fd, readable)
