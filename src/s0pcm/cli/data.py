"""The commands over the history: back it up, check it, bring counts into it (a capture, the
reader used before, a meter's reading) and export it."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

import click

from ..calendar import Resolution
from ..errors import ReadingExists, S0pcmError, redact
from ..logger.overrides import add_reading
from ..meters import constant_problem
from ..tools.export import write_csv
from ..tools.imports import import_capture, take_over_legacy
from ..tools.legacy import read_measurement_yaml
from .options import (
    DAY_OR_TIME,
    LOCAL_TIME,
    config_option,
    daemon_of,
    interval_option,
    load,
    local,
    meter_of,
    meter_option,
    module_of,
    module_option,
    store_of,
)


@click.command()
@config_option
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def backup(config_path: Path, destination: Path) -> None:
    """Copy the database consistently while the logger runs.

    \b
    Example:
        s0pcm backup --config /etc/s0pcm/s0pcm.toml /media/usb/s0pcm-backup.sqlite
    """
    config = load(config_path)
    if destination.exists():
        raise click.ClickException(f"{destination} exists; not overwriting it")
    with store_of(config) as store:
        store.backup(destination)
    click.echo(f"backed up {redact(config.logger.database)} to {destination}")


@click.command()
@config_option
def check(config_path: Path) -> None:
    """Check the database's integrity (exit status 1 on problems).

    \b
    Example:
        s0pcm check --config /etc/s0pcm/s0pcm.toml
    """
    with store_of(load(config_path), readonly=True) as store:
        problems = store.check()
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    click.echo("ok")


@click.command("import-capture")
@config_option
@module_option("The module the capture is of (default: the only one).")
@click.option(
    "--start", type=LOCAL_TIME, help="Local time of the first line, for captures without times."
)
@interval_option("Seconds between records, for captures without times.")
@click.argument("capture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_capture_command(
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
    config = load(config_path)
    name = module_of(config, module_name)
    begin = None if start is None else local(config, start)
    with contextlib.closing(daemon_of(config)) as daemon:
        try:
            with click.progressbar(length=capture.stat().st_size, label="importing") as bar:
                done = import_capture(
                    daemon, name, capture, start=begin, interval=interval, progress=bar.update
                )
        except S0pcmError as e:
            raise click.ClickException(str(e)) from e
    click.echo(
        f"imported {done.lines} lines: {done.records} records, {done.rejected} rejected, "
        f"{done.restarts} restarts, {done.spikes} spikes"
    )


@click.command("import-legacy")
@config_option
@module_option("The module the file belongs to (default: the only one).")
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
    config = load(config_path)
    name = module_of(config, module_name)
    try:
        totals = read_measurement_yaml(measurement)
    except S0pcmError as e:
        raise click.ClickException(str(e)) from e
    with contextlib.closing(daemon_of(config)) as daemon:
        done = take_over_legacy(daemon, name, totals, mtime=measurement.stat().st_mtime)
    for taken in done.registers:
        if (meter := taken.meter) is None:
            click.echo(f"register {taken.register}: no meter configured, skipped")
        else:
            click.echo(f"{meter.name}: {taken.reading:,.3f} {meter.unit} ({taken.pulses:,} pulses)")
    if done.counters:
        click.echo("module counters taken over: pulses since then will be recovered")


@click.command("set-reading")
@config_option
@meter_option
@click.option("--reading", type=float, required=True, help="What the meter's display shows.")
@click.option(
    "--at", "at", type=LOCAL_TIME, help="Local time the display showed it (default: now)."
)
@click.option("--replaced", is_flag=True, help="A new physical meter from this moment on.")
@click.option(
    "--pulses-per-unit",
    type=click.FloatRange(min=0, min_open=True),
    help="The new meter's constant, when it differs (with --replaced).",
)
def set_reading_command(
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
    config = load(config_path)
    if pulses_per_unit is not None and not replaced:
        raise click.UsageError("--pulses-per-unit goes with --replaced")
    problem = None if pulses_per_unit is None else constant_problem(pulses_per_unit)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--pulses-per-unit")
    if not math.isfinite(reading):
        raise click.BadParameter("must be a finite number", param_hint="--reading")
    when = time.time() if at is None else local(config, at)
    with store_of(config) as store:
        meter = meter_of(config, store, meter_key)
        try:
            before = add_reading(
                store, meter, at=when, reading=reading, replaced=replaced,
                pulses_per_unit=pulses_per_unit,
            )  # fmt: skip
            store.commit()  # beside a running logger: now, not at its next commit
        except ReadingExists as e:
            raise click.ClickException(str(e)) from e
    was = "" if before is None else f" (was {before:,.3f})"
    # In the logger's time zone (the one the dashboard shows), not the machine's or UTC.
    local_when = datetime.fromtimestamp(when, config.logger.timezone)
    click.echo(
        f"{meter.name}: {reading:,.3f} {meter.unit} from {local_when:%Y-%m-%d %H:%M:%S %Z}{was}"
    )


@click.command()
@config_option
@meter_option
@click.option("--from", "start", required=True, type=DAY_OR_TIME, help="Local start (inclusive).")
@click.option("--to", "end", required=True, type=DAY_OR_TIME, help="Local end (exclusive).")
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

    Rows from the start of logging to now (no rows before the first record or for the future),
    including what the running logger has not committed yet.

    \b
    Example:
        s0pcm export --config s0pcm.toml --meter electricity --from 2026-01-01 --to 2027-01-01 \\
            --resolution month --output 2026.csv
    """
    config = load(config_path)
    t0, t1 = local(config, start), local(config, end)
    if t1 <= t0:
        raise click.BadParameter("must be after --from", param_hint="--to")
    # Read-only, with what the running logger has journalled since its last commit (the last
    # minutes are in the export too), as `status` reads it.
    with contextlib.closing(daemon_of(config, readonly=True)) as daemon:
        daemon.recover()
        meter = meter_of(config, daemon.store, meter_key)
        write_csv(
            daemon.store, meter, t0, t1, Resolution(resolution), output,
            tz=config.logger.timezone, now=time.time(),
        )  # fmt: skip
