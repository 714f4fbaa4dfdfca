"""The ``s0pcm`` command: a thin layer of commands over the library.

Every command has ``--help`` with an example; tests check that they do. The commands live by
what they work on: a module (:mod:`.device`), the logger and its dashboard (:mod:`.logger`), the
history (:mod:`.data`) and the demo (:mod:`.demo`); what several share is in :mod:`.options`.
"""

from __future__ import annotations

import os

import click

from .. import __version__
from . import data, demo, device, logger

__all__ = ["main"]


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


for _command in (
    device.read,
    device.set_thresholds,
    device.emulate,
    logger.run,
    logger.serve_command,
    logger.status,
    logger.passwd,
    logger.token,
    data.backup,
    data.check,
    data.import_capture_command,
    data.import_legacy,
    data.set_reading_command,
    data.export,
    demo.demo,
):
    main.add_command(_command)
