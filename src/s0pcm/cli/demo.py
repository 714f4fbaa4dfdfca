"""``s0pcm demo``: the emulator, the logger and the dashboard together, without a module."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import tempfile
from pathlib import Path

import click

from ..logger.daemon import Daemon
from ..tools.demo import prepare_demo
from .logger import run_with_web
from .options import duration_option, interval_option, run_async, setup_logging


@click.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port of the dashboard (on 127.0.0.1).",
)
@interval_option("Seconds between the emulated module's records (the real one: 10).")
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
@duration_option
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
    setup_logging(0)
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
                await run_with_web(daemon, config, web=True)
            finally:
                emulator.stop()
                await task

        run_async(go())
