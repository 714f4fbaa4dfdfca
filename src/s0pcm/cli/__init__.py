"""The ``s0pcm`` command: a thin layer of commands over the library.

Every command has ``--help`` with an example; tests check that they do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from .. import __version__
from ..calendar import Resolution
from ..config import Config, load_config
from ..emulator import HOUSEHOLD, Fault, Module, PtyEmulator, Source, household, steady
from ..errors import ProtocolError, S0pcmError, redact
from ..link.capture import read_capture
from ..link.events import (
    FRAMING_7E1,
    Connected,
    Disconnected,
    Event,
    Framing,
    Received,
    ThresholdsResult,
    ThresholdsSent,
)
from ..link.port import Link
from ..logger.daemon import Daemon
from ..logger.overrides import add_reading, effective_meters
from ..logger.status import collect_status, format_status
from ..meters import Meter
from ..protocol import Header, Model, Rejected, Telegram, parse_thresholds
from ..store import Anchor, AnchorKind, Store, open_store
from ..tools.demo import prepare_demo
from ..tools.export import write_csv
from ..tools.legacy import read_measurement_yaml

T = TypeVar("T")
log = logging.getLogger("s0pcm.cli")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; Ctrl-C and SIGTERM end it cleanly (exit status 0)."""

    async def main() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await coro

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise SystemExit(0) from None
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e


def _framing(ctx: click.Context, param: click.Parameter, value: str) -> Framing:
    try:
        return Framing.parse(value)
    except S0pcmError as e:
        raise click.BadParameter(str(e)) from e


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald, Loki and friends."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def _logging(verbose: int, *, shows_rejected: bool = False, as_json: bool = False) -> None:
    """Log to stderr; commands that print rejected lines themselves silence their log."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(
        _JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])
    if shows_rejected and verbose == 0:
        logging.getLogger("s0pcm.link.rejected").setLevel(logging.ERROR)


framing_option = click.option(
    "--framing",
    default=str(FRAMING_7E1).split()[1],
    show_default=True,
    callback=_framing,
    help="Data bits, parity, stop bits. The module uses 7E1; use 8N1 for the emulator's pty.",
)
verbose_option = click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s0pcm")
def main() -> None:
    """Datalogger and dashboard for the S0 Pulse Counter Module (S0PCM-2 / S0PCM-5).

    \b
    Example:
        s0pcm emulate --link /tmp/s0 --interval 0.5 &
        s0pcm read /tmp/s0 --framing 8N1
    """
    # Whatever s0pcm creates (database, journal, backups, exports) is its owner's alone: the
    # database holds the session secret and the password and token hashes.
    os.umask(os.umask(0o077) | 0o077)


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


@main.command()
@click.argument("port", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with 'type'.")
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
    _logging(verbose, shows_rejected=True)

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

    _run(go())


# --- set-thresholds ------------------------------------------------------------------------------


@main.command("set-thresholds")
@click.argument("args", nargs=-1, required=True, metavar="[PORT] COMMAND")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds to wait for the module's start-ups.",
)
@click.option(
    "--model",
    type=click.Choice(["2", "5"]),
    default="5",
    show_default=True,
    help="S0PCM-2 or S0PCM-5 (which registers exist).",
)
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
    _logging(verbose, shows_rejected=True)
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

    sys.exit(_run(go()))


# --- emulate -------------------------------------------------------------------------------------


def _pairs(name: str, values: tuple[str, ...], registers: int) -> dict[int, float]:
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


@main.command()
@click.option(
    "--link",
    "link_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Stable symlink to the emulated port (kept across unplug/replug).",
)
@click.option(
    "--model",
    type=click.Choice(["2", "5"]),
    default="5",
    show_default=True,
    help="Emulate an S0PCM-2 or an S0PCM-5.",
)
@click.option(
    "--id",
    "module_id",
    default="8237",
    show_default=True,
    help="Module id printed in the header and every record.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=10.0,
    show_default=True,
    help="Seconds between data records (fractions for tests).",
)
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
    help="Realistic daily profile: electricity, gas, water, heat, electricity.",
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
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds.")
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
    _logging(verbose)
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
        _run(go())
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


# --- the logger ----------------------------------------------------------------------------------

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="S0PCM_CONFIG",
    help="The configuration file (TOML); also from $S0PCM_CONFIG.",
)


def _config(path: Path) -> Config:
    try:
        return load_config(path)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e


@main.command()
@config_option
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (structured).")
@click.option("--no-web", is_flag=True, help="Log only; do not serve the dashboard.")
@verbose_option
def run(config_path: Path, log_json: bool, no_web: bool, verbose: int) -> None:
    """Run the logger and the dashboard: read every module, keep the history, serve the web.

    Commits to the database every `commit_interval` seconds and at exit; SIGTERM and Ctrl-C stop
    it cleanly. Pulses counted between commits are journalled and recovered after a crash. The
    dashboard listens on [web] listen (127.0.0.1:8080 unless configured).

    \b
    Example:
        s0pcm run --config /etc/s0pcm/s0pcm.toml
    """
    _logging(max(verbose, 1), as_json=log_json)
    config = _config(config_path)

    async def go() -> None:
        daemon = Daemon(config)
        log.info("logging %d module(s) to %s", len(config.modules), redact(config.logger.database))
        await _with_web(daemon, config, web=not no_web)

    _run(go())


async def _with_web(daemon: Daemon, config: Config, *, web: bool) -> None:
    """Run ``daemon`` (and the dashboard over its store) until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(daemon.run())
    server = None
    if web:
        from ..web import create_app, serve

        app = create_app(config=config, store=daemon.store, daemon=daemon)

        async def web_server() -> None:
            try:
                await serve(app, host=config.web.host, port=config.web.port, stop=stop)
            except OSError as e:
                # The logger goes on counting without its dashboard.
                log.error("dashboard not started on %s: %s", config.web.listen, e)

        server = asyncio.create_task(web_server())
        log.info("dashboard on %s://%s/", config.web.scheme, config.web.listen)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    if server is not None:
        await server  # the web stops before the store closes
    daemon.stop()
    await task


@main.command("serve")
@config_option
@verbose_option
def serve_command(config_path: Path, verbose: int) -> None:
    """Serve the dashboard and API over the history, without reading a module.

    For a second machine, or while the logger runs elsewhere on a shared database.

    \b
    Example:
        s0pcm serve --config /etc/s0pcm/s0pcm.toml
    """
    _logging(max(verbose, 1))
    config = _config(config_path)

    from ..web import create_app, serve

    async def go() -> None:
        store = _store(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app = create_app(config=config, store=store)
        log.info("dashboard on %s://%s/", config.web.scheme, config.web.listen)
        try:
            await serve(app, host=config.web.host, port=config.web.port, stop=stop)
        finally:
            store.close()

    _run(go())


@main.command()
@config_option
@click.password_option("--password", help="The new password (asked for when not given).")
@click.option(
    "--revoke-tokens", is_flag=True, help="Revoke every API token too (the old password leaked?)."
)
def passwd(config_path: Path, password: str, revoke_tokens: bool) -> None:
    """Set the password that settings and every change in the dashboard need.

    Stored scrypt-hashed in the database. Every session logged in with the old password ends;
    API tokens keep working unless --revoke-tokens is given.

    \b
    Example:
        s0pcm passwd --config /etc/s0pcm/s0pcm.toml --revoke-tokens
    """
    from ..web import set_password

    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    store = _store(_config(config_path))
    try:
        set_password(store, password, revoke_tokens=revoke_tokens)
    finally:
        store.close()
    tokens = "; every token revoked" if revoke_tokens else ""
    click.echo(f"password set; every session ended{tokens}")


@main.group()
def token() -> None:
    """API tokens for scripts and Home Assistant: make, list and revoke them.

    \b
    Example:
        s0pcm token new --config /etc/s0pcm/s0pcm.toml home-assistant
        s0pcm token list --config /etc/s0pcm/s0pcm.toml
    """


@token.command("new")
@config_option
@click.argument("name")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True, max=3650),
    help="It stops working this many days from now (default: when revoked).",
)
def token_new(config_path: Path, name: str, days: float | None) -> None:
    """Make a token named NAME (what it is for); printed once, stored hashed.

    \b
    Example:
        s0pcm token new --config /etc/s0pcm/s0pcm.toml home-assistant --days 365
    """
    from ..web import new_token

    config = _config(config_path)
    store = _store(config)
    try:
        try:
            click.echo(new_token(store, name, days=days))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="NAME") from None
    finally:
        store.close()


@token.command("list")
@config_option
def token_list(config_path: Path) -> None:
    """The tokens: id, name, made, expires (never the tokens themselves).

    \b
    Example:
        s0pcm token list --config /etc/s0pcm/s0pcm.toml
    """
    from ..web.auth import AUTH_KEY, list_tokens

    config = _config(config_path)
    store = _store(config, readonly=True)
    try:
        doc = store.state(AUTH_KEY)
    finally:
        store.close()
    infos = list_tokens(doc if isinstance(doc, dict) else {})
    if not infos:
        click.echo("no tokens")
        return
    now = time.time()
    tz = config.logger.timezone

    def local(t: float | None) -> str:
        if t is None:
            return "never"
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")

    for info in infos:
        state = " (expired)" if info.expired(now) else ""
        click.echo(
            f"{info.id}  {info.name}  made {local(info.created)}  "
            f"expires {local(info.expires)}{state}"
        )


@token.command("revoke")
@config_option
@click.argument("which", required=False)
@click.option("--all", "every", is_flag=True, help="Revoke every token.")
def token_revoke(config_path: Path, which: str | None, every: bool) -> None:
    """Revoke the token with id WHICH (or every token named WHICH); it stops working within
    two seconds, in every process.

    \b
    Example:
        s0pcm token revoke --config /etc/s0pcm/s0pcm.toml 3f2a9c01b7de
    """
    from ..web.auth import revoke_tokens

    if (which is None) == (not every):
        raise click.UsageError("name one token (its id or name), or give --all")
    store = _store(_config(config_path))
    try:
        gone = revoke_tokens(store, None if every else which)
    finally:
        store.close()
    if not gone:
        raise click.ClickException(f"no token has the id or name {which!r} (see: s0pcm token list)")
    for info in gone:
        click.echo(f"revoked {info.id}  {info.name}")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def status(config_path: Path, as_json: bool) -> None:
    """Per meter the reading, the pulses counted and the live rate; per module its health.

    Reads the database and the journal, so it is exact up to the last record the running logger
    received.

    \b
    Example:
        s0pcm status --config /etc/s0pcm/s0pcm.toml
    """
    _logging(0)
    config = _config(config_path)
    try:
        # Read-only: creates nothing, works on a read-only disk and beside the running logger.
        daemon = Daemon(config, readonly=True)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e
    try:
        logger = daemon.journal.running() or daemon.store.claimed_by()
        daemon.recover()
        doc = collect_status(daemon, time.time(), logger=logger)
    finally:
        daemon.close()
    click.echo(json.dumps(doc, indent=1) if as_json else format_status(doc))


@main.command()
@config_option
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def backup(config_path: Path, destination: Path) -> None:
    """Copy the database consistently while the logger runs.

    \b
    Example:
        s0pcm backup --config /etc/s0pcm/s0pcm.toml /media/usb/s0pcm-backup.sqlite
    """
    config = _config(config_path)
    if destination.exists():
        raise click.ClickException(f"{destination} exists; not overwriting it")
    store = _store(config)
    try:
        store.backup(destination)
    finally:
        store.close()
    click.echo(f"backed up {redact(config.logger.database)} to {destination}")


@main.command()
@config_option
def check(config_path: Path) -> None:
    """Check the database's integrity (exit status 1 on problems).

    \b
    Example:
        s0pcm check --config /etc/s0pcm/s0pcm.toml
    """
    store = _store(_config(config_path), readonly=True)
    try:
        problems = store.check()
    finally:
        store.close()
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    click.echo("ok")


def _module_name(config: Config, given: str | None) -> str:
    """The module a command is about: as given, or the only one."""
    names = [m.name for m in config.modules]
    name = given or (names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        raise click.UsageError(f"--module: one of {', '.join(names)}")
    return name


def _meter(config: Config, store: Store, key: str) -> Meter:
    """The meter ``key`` with what the dashboard changed of it."""
    for meter in effective_meters(config, store):
        if meter.key == key:
            return meter
    keys = ", ".join(m.key for m in config.meters)
    raise click.BadParameter(f"no meter {key!r}; one of {keys}", param_hint="--meter")


def _store(config: Config, *, readonly: bool = False) -> Store:
    """The configured store; ``readonly`` for commands that only look (they create nothing,
    and work on a read-only disk)."""
    try:
        return open_store(config.logger.database, tz=config.logger.timezone, readonly=readonly)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e


@main.command("import-capture")
@config_option
@click.option(
    "--module", "module_name", help="The module the capture is of (default: the only one)."
)
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Local time of the first line, for captures without times.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between records, for captures without times.",
)
@click.argument("capture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_capture(
    config_path: Path,
    module_name: str | None,
    start: datetime | None,
    interval: float,
    capture: Path,
) -> None:
    """Replay a capture of what a module printed into the history.

    Lines may start with the time they were received (Unix or ISO 8601); `s0pcm read --json`
    output works too. The lines go through the same checks and ledger as live ones. Stop the
    logger first, or import into another database.

    \b
    Example:
        s0pcm import-capture --config s0pcm.toml --start '2026-01-01 00:00:00' capture.txt
    """
    config = _config(config_path)
    name = _module_name(config, module_name)
    begin = None if start is None else start.replace(tzinfo=config.logger.timezone).timestamp()
    daemon = _writer(config)
    runner = daemon.runner(name)
    before = dataclasses.replace(runner.ledger.stats)
    records = 0
    try:
        with click.progressbar(length=capture.stat().st_size, label="importing") as bar:
            done = 0
            for position, at, record in read_capture(capture, start=begin, interval=interval):
                runner.apply(at, record)
                records += 1
                bar.update(position - done)
                done = position
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e
    finally:
        daemon.commit()
        daemon.close()
    now, was = runner.ledger.stats, before
    click.echo(
        f"imported {records} lines: {now.telegrams - was.telegrams} records, "
        f"{now.rejected - was.rejected} rejected, "
        f"{now.restarts + now.headers - was.restarts - was.headers} restarts, "
        f"{now.spikes - was.spikes} spikes"
    )


@main.command("import-legacy")
@config_option
@click.option(
    "--module", "module_name", help="The module the file belongs to (default: the only one)."
)
@click.argument("measurement", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_legacy(config_path: Path, module_name: str | None, measurement: Path) -> None:
    """Take over the totals of the reader you used before (its measurement.yaml).

    Reads the file of ualex73/docker-s0pcm-reader, darkrain-nl's Home Assistant add-on (YAML or
    JSON) or hansij66/S0PCM2MQTT. Each meter's reading goes on from the old reader's total; when
    the file has the module's last counter, the pulses since the old reader stopped are
    recovered from the module, once the logger runs.

    \b
    Example:
        s0pcm import-legacy --config s0pcm.toml /share/s0pcm/measurement.yaml
    """
    config = _config(config_path)
    name = _module_name(config, module_name)
    try:
        totals = read_measurement_yaml(measurement)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e
    at = next((t.updated_at for t in totals if t.updated_at), None) or measurement.stat().st_mtime
    daemon = _writer(config)
    runner = daemon.runner(name)
    try:
        for t in totals:
            meter = runner.meters.get(t.register)
            if meter is None:
                click.echo(f"register {t.register}: no meter configured, skipped")
                continue
            kind = AnchorKind.CORRECTION if daemon.store.anchors(meter.key) else AnchorKind.INITIAL
            reading = t.total / meter.pulses_per_unit
            daemon.store.add_anchor(Anchor(meter.key, at, reading, meter.pulses_per_unit, kind))
            click.echo(f"{meter.name}: {reading:,.3f} {meter.unit} ({t.total:,} pulses)")
        counters = {t.register: t.pulsecount for t in totals}
        registers = runner.settings.model.value
        if all(counters.get(n) is not None for n in range(1, registers + 1)):
            known = [int(counters[n] or 0) for n in range(1, registers + 1)]
            if runner.ledger.take_over(known, at):
                click.echo("module counters taken over: pulses since then will be recovered")
        daemon.commit()
    finally:
        daemon.close()


def _writer(config: Config) -> Daemon:
    """The logger's side of the store for a command that writes counts (an import): it claims
    the store (so it refuses while the logger runs) and first replays what a crashed logger
    left in the journal, which its commit would otherwise empty."""
    try:
        daemon = Daemon(config)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e
    daemon.recover()
    return daemon


@main.command("set-reading")
@config_option
@click.option("--meter", "meter_key", required=True, help="Meter key (see `s0pcm status`).")
@click.option("--reading", type=float, required=True, help="What the meter's display shows.")
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Local time the display showed it (default: now).",
)
@click.option("--replaced", is_flag=True, help="A new physical meter from this moment on.")
@click.option(
    "--pulses-per-unit",
    type=click.FloatRange(min=0, min_open=True),
    help="The new meter's constant, when it differs (with --replaced).",
)
def set_reading(
    config_path: Path,
    meter_key: str,
    reading: float,
    at: datetime | None,
    replaced: bool,
    pulses_per_unit: float | None,
) -> None:
    """Set a meter's reading again, or record that the meter was replaced.

    History is never rewritten: the new reading is an anchor from its moment on, and the change
    is an event. Works while the logger runs.

    \b
    Example:
        s0pcm set-reading --config s0pcm.toml --meter electricity --reading 12350.2
        s0pcm set-reading --config s0pcm.toml --meter water --reading 0 --replaced
    """
    config = _config(config_path)
    if pulses_per_unit is not None and not replaced:
        raise click.UsageError("--pulses-per-unit goes with --replaced")
    if pulses_per_unit is not None and not math.isfinite(pulses_per_unit):
        raise click.BadParameter("must be a finite number", param_hint="--pulses-per-unit")
    if not math.isfinite(reading):
        raise click.BadParameter("must be a finite number", param_hint="--reading")
    when = time.time() if at is None else at.replace(tzinfo=config.logger.timezone).timestamp()
    store = _store(config)
    try:
        meter = _meter(config, store, meter_key)
        if any(a.at == when for a in store.anchors(meter.key)):
            raise click.ClickException(f"{meter.name} already has a reading at {time.ctime(when)}")
        before = add_reading(
            store, meter, at=when, reading=reading, replaced=replaced,
            pulses_per_unit=pulses_per_unit,
        )  # fmt: skip
        store.commit()
    finally:
        store.close()
    was = "" if before is None else f" (was {before:,.3f})"
    click.echo(f"{meter.name}: {reading:,.3f} {meter.unit} from {time.ctime(when)}{was}")


_DAY_OR_TIME = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]


@main.command()
@config_option
@click.option("--meter", "meter_key", required=True, help="Meter key (see `s0pcm status`).")
@click.option(
    "--from",
    "start",
    required=True,
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Local start (inclusive).",
)
@click.option(
    "--to",
    "end",
    required=True,
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Local end (exclusive).",
)
@click.option(
    "--resolution",
    type=click.Choice([r.value for r in Resolution]),
    default="day",
    show_default=True,
    help="Rows per 10 s interval, hour, day, week, month or year.",
)
@click.option("--output", type=click.File("w"), default="-", help="CSV file (default: stdout).")
def export(
    config_path: Path,
    meter_key: str,
    start: datetime,
    end: datetime,
    resolution: str,
    output: TextIO,
) -> None:
    """Export consumption as CSV: per period its start, pulses, consumption and reading at end.

    \b
    Example:
        s0pcm export --config s0pcm.toml --meter electricity --from 2026-01-01 --to 2027-01-01 \\
            --resolution month --output 2026.csv
    """
    config = _config(config_path)
    tz = config.logger.timezone
    t0, t1 = start.replace(tzinfo=tz).timestamp(), end.replace(tzinfo=tz).timestamp()
    if t1 <= t0:
        raise click.BadParameter("must be after --from", param_hint="--to")
    store = _store(config, readonly=True)
    try:
        meter = _meter(config, store, meter_key)
        write_csv(store, meter, t0, t1, Resolution(resolution), output, tz=tz)
    finally:
        store.close()


# --- demo ----------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port of the dashboard (on 127.0.0.1).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between the emulated module's records (the real one: 10).",
)
@click.option(
    "--days",
    type=click.IntRange(0, 3650),
    default=90,
    show_default=True,
    help="Days of history written before the live module starts.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's files here (default: a temporary directory).",
)
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds.")
def demo(
    port: int, interval: float, days: int, data_dir: Path | None, duration: float | None
) -> None:
    """Try s0pcm without a module: an emulated S0PCM-5 of a household, the logger and the
    dashboard, with months of history.

    \b
    Example:
        s0pcm demo
        s0pcm demo --port 8081 --interval 2 --days 30
    """
    _logging(0)
    with contextlib.ExitStack() as stack:
        directory = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with click.progressbar(length=days * 24 + 1, label="writing history") as bar:
            config, store, emulator = prepare_demo(
                directory, port=port, interval=interval, days=days, progress=bar.update
            )
        from ..web import set_password

        password = secrets.token_urlsafe(9)
        set_password(store, password)

        async def go() -> None:
            task = asyncio.create_task(emulator.run())
            await emulator.ready.wait()
            daemon = Daemon(config, store=store)
            click.echo(f"Dashboard: http://127.0.0.1:{port}/   (settings password: {password})")
            click.echo(f"Emulated S0PCM-5 on {directory / 's0pcm'}; Ctrl-C to stop.")
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, os.kill, os.getpid(), signal.SIGINT)
            try:
                await _with_web(daemon, config, web=True)
            finally:
                emulator.stop()
                await task

        _run(go())
