"""The logger and what looks at its store: run it, serve the dashboard, its status, and the
password and API tokens of the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import Config
from ..errors import redact
from ..logger.daemon import Daemon
from ..logger.status import collect_status, format_status
from ..publish.encoders import for_daemon

if TYPE_CHECKING:
    from starlette.applications import Starlette
from .options import (
    config_option,
    daemon_of,
    json_option,
    load,
    log,
    run_async,
    setup_logging,
    stop_on_signals,
    store_of,
    verbose_option,
)


@click.command()
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
    setup_logging(max(verbose, 1), as_json=log_json)
    config = load(config_path)

    async def go() -> None:
        daemon = Daemon(config, encoders=for_daemon)
        log.info("logging %d module(s) to %s", len(config.modules), redact(config.logger.database))
        await run_with_web(daemon, config, web=not no_web, config_path=config_path)

    run_async(go())


def say_if_no_password(app: Starlette, config_path: Path) -> None:
    """A fresh install has no password: say how to set one where the owner looks first."""
    if not app.state.context.auth.password_set():
        log.warning(
            "the dashboard has no password yet: Settings and every change stay locked until "
            "you set one with: s0pcm passwd --config %s",
            config_path,
        )


async def run_with_web(
    daemon: Daemon, config: Config, *, web: bool, config_path: Path | None = None
) -> None:
    """Run ``daemon`` (and the dashboard over its store) until SIGINT or SIGTERM."""
    stop = stop_on_signals()
    task = asyncio.create_task(daemon.run())
    server = None
    if web:
        from ..web import create_app, serve

        app = create_app(config=config, store=daemon.store, daemon=daemon)
        if config_path is not None:
            say_if_no_password(app, config_path)

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


@click.command("serve")
@config_option
@verbose_option
def serve_command(config_path: Path, verbose: int) -> None:
    """Serve the dashboard and API over the history, without reading a module.

    For a second machine, or while the logger runs elsewhere on a shared database.

    \b
    Example:
        s0pcm serve --config /etc/s0pcm/s0pcm.toml
    """
    setup_logging(max(verbose, 1))
    config = load(config_path)

    from ..web import create_app, serve

    async def go() -> None:
        with store_of(config) as store:
            stop = stop_on_signals()
            app = create_app(config=config, store=store)
            say_if_no_password(app, config_path)
            log.info("dashboard on %s://%s/", config.web.scheme, config.web.listen)
            await serve(app, host=config.web.host, port=config.web.port, stop=stop)

    run_async(go())


@click.command()
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
    with store_of(load(config_path)) as store:
        set_password(store, password, revoke_tokens=revoke_tokens)
    tokens = "; every token revoked" if revoke_tokens else ""
    click.echo(f"password set; every session ended{tokens}")


@click.group()
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

    config = load(config_path)
    with store_of(config) as store:
        try:
            click.echo(new_token(store, name, days=days))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="NAME") from None


@token.command("list")
@config_option
def token_list(config_path: Path) -> None:
    """The tokens: id, name, made, expires (never the tokens themselves).

    \b
    Example:
        s0pcm token list --config /etc/s0pcm/s0pcm.toml
    """
    from ..web.auth import AUTH_KEY, list_tokens

    config = load(config_path)
    with store_of(config, readonly=True) as store:
        doc = store.state(AUTH_KEY)
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
    with store_of(load(config_path)) as store:
        gone = revoke_tokens(store, None if every else which)
    if not gone:
        raise click.ClickException(f"no token has the id or name {which!r} (see: s0pcm token list)")
    for info in gone:
        click.echo(f"revoked {info.id}  {info.name}")


@click.command()
@config_option
@json_option("One JSON document.")
def status(config_path: Path, as_json: bool) -> None:
    """Per meter the reading, the pulses counted and the live rate; per module its health.

    Reads the database and the journal, so it is exact up to the last record the running logger
    received.

    \b
    Example:
        s0pcm status --config /etc/s0pcm/s0pcm.toml
    """
    setup_logging(0)
    config = load(config_path)
    # Read-only: creates nothing, works on a read-only disk and beside the running logger.
    with contextlib.closing(daemon_of(config, readonly=True)) as daemon:
        logger = daemon.journal.running() or daemon.store.claimed_by()
        daemon.recover()
        doc = collect_status(daemon, time.time(), logger=logger)
    click.echo(json.dumps(doc, indent=1) if as_json else format_status(doc))
