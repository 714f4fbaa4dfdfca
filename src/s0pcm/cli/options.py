"""What the commands share: the options several of them take (declared once here, so each
reads and behaves alike everywhere), logging, running a coroutine, and opening the
configuration, the store and the logger's side of it with the errors a user can act on."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import Config, load_config
from ..errors import S0pcmError
from ..link.events import FRAMING_7E1, Framing
from ..logger.daemon import Daemon
from ..logger.overrides import effective_meters
from ..meters import Meter
from ..store import Store, open_store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
#: One logger for every command, whichever module defines it.
log = logging.getLogger("s0pcm.cli")

#: A local date and time, as commands take them (times of day to the second).
LOCAL_TIME = click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])
#: A local day, or a local date and time.
DAY_OR_TIME = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])


def run_async(coro: Coroutine[Any, Any, T]) -> T:
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


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (instead of cancelling): for what stops in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


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


def setup_logging(verbose: int, *, shows_rejected: bool = False, as_json: bool = False) -> None:
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


# --- options -------------------------------------------------------------------------------------


def _framing(ctx: click.Context, param: click.Parameter, value: str) -> Framing:
    """``--framing`` parsed, so a wrong one is a usage error naming the option."""
    try:
        return Framing.parse(value)
    except S0pcmError as e:
        raise click.BadParameter(str(e)) from e


framing_option = click.option(
    "--framing",
    default=str(FRAMING_7E1).split()[1],
    show_default=True,
    callback=_framing,
    help="Data bits, parity, stop bits. The module uses 7E1; use 8N1 for the emulator's pty.",
)
verbose_option = click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="S0PCM_CONFIG",
    help="The configuration file (TOML); also from $S0PCM_CONFIG.",
)
meter_option = click.option(
    "--meter", "meter_key", required=True, help="Meter key (see `s0pcm status`)."
)
duration_option = click.option(
    "--duration", type=click.FloatRange(min=0), help="Stop after this many seconds."
)


def json_option(help: str) -> Callable[[F], F]:
    """``--json`` (as ``as_json``): what the command prints, as JSON; ``help`` says its shape."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def interval_option(help: str, *, least: float = 0.1) -> Callable[[F], F]:
    """``--interval``: seconds between a module's records, 10 by default as on a real module;
    ``least``: the shortest the command takes."""
    return click.option(
        "--interval",
        type=click.FloatRange(min=least),
        default=10.0,
        show_default=True,
        help=help,
    )


def model_option(help: str) -> Callable[[F], F]:
    """``--model``: an S0PCM-2 or an S0PCM-5 (default); ``help`` says what it is for."""
    return click.option(
        "--model", type=click.Choice(["2", "5"]), default="5", show_default=True, help=help
    )


def module_option(help: str) -> Callable[[F], F]:
    """``--module`` (as ``module_name``) of the configuration; see :func:`module_name`."""
    return click.option("--module", "module_name", help=help)


# --- opening what the configuration names --------------------------------------------------------


def load(path: Path) -> Config:
    """The configuration at ``path``."""
    try:
        return load_config(path)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e


def local(config: Config, when: datetime) -> float:
    """A local time given on the command line, in the logger's time zone, as a Unix time."""
    return when.replace(tzinfo=config.logger.timezone).timestamp()


def module_of(config: Config, given: str | None) -> str:
    """The module a command is about: as given, or the only one."""
    names = [m.name for m in config.modules]
    name = given or (names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        raise click.UsageError(f"--module: one of {', '.join(names)}")
    return name


def meter_of(config: Config, store: Store, key: str) -> Meter:
    """The meter ``key`` with what the dashboard changed of it."""
    for meter in effective_meters(config, store):
        if meter.key == key:
            return meter
    keys = ", ".join(m.key for m in config.meters)
    raise click.BadParameter(f"no meter {key!r}; one of {keys}", param_hint="--meter")


def store_of(config: Config, *, readonly: bool = False) -> Store:
    """The configured store (use it in ``with``); ``readonly`` for commands that only look
    (they create nothing, and work on a read-only disk)."""
    try:
        return open_store(config.logger.database, tz=config.logger.timezone, readonly=readonly)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e


def daemon_of(config: Config, *, readonly: bool = False) -> Daemon:
    """The logger's side of the store. For a command that writes counts (an import) it claims
    the store (so it refuses while the logger runs) and first replays what a crashed logger
    left in the journal, which its commit would otherwise empty. ``readonly`` (``status``) only
    looks, beside the running logger, and leaves the replay to the caller."""
    try:
        daemon = Daemon(config, readonly=readonly)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e
    if not readonly:
        daemon.recover()
    return daemon
