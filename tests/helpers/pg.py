"""A throwaway PostgreSQL cluster for the tests (the fixtures over it are in ``tests/conftest.py``).

:func:`cluster` (the session's ``pg_cluster``) runs ``initdb`` and ``pg_ctl`` in a temporary
directory, on a free port of 127.0.0.1 with its socket in that directory, durability off (nothing
here needs to survive a crash), and removes it all at the end. ``initdb`` refuses to run as root,
so as root the cluster runs as the ``postgres`` user (``runuser``). :func:`database` (``pg_url``)
gives each test a database of its own.

Without PostgreSQL the tests that need it FAIL, saying what to install: CI installs it, and a
silent skip would hide the whole backend.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.helpers import free_port

__all__ = ["Cluster", "cluster", "database", "find_program"]

_names = itertools.count(1)
_INITDB = ("-E", "UTF8", "--locale=C", "--no-sync")


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def find_program(name: str) -> str | None:
    """``name`` on PATH, else in the newest /usr/lib/postgresql/*/bin (Debian's layout)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode:
        detail = done.stdout + done.stderr
        if log is not None and log.exists():
            detail += "\n--- server log ---\n" + log.read_text(errors="replace")[-4000:]
        pytest.fail(f"{what} failed ({' '.join(command)}):\n{detail}", pytrace=False)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    initdb, pg_ctl = find_program("initdb"), find_program("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail(
            "PostgreSQL is not installed: initdb/pg_ctl not found on PATH or in "
            "/usr/lib/postgresql/*/bin. Install it (Debian: apt-get install postgresql) "
            "to test the PostgreSQL store.",
            pytrace=False,
        )
    base = Path(tempfile.mkdtemp(prefix="s0pcm-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.fail(
                "running as root, and initdb refuses root: need a 'postgres' user to run the "
                "test cluster as (the postgresql package creates it)",
                pytrace=False,
            )
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    started = False
    try:
        _run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", *_INITDB],
            "initdb",
        )
        for attempt in range(3):
            port = free_port()
            options = (
                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            command = [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", options]
            done = subprocess.run(
                [*command, "-w", "-t", "60", "start"],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            if done.returncode == 0:
                started = True
                break
            if attempt == 2:  # the port may have been taken meanwhile: try another
                tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
                pytest.fail(
                    f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n{tail}", pytrace=False
                )
        yield Cluster("127.0.0.1", port, "postgres")
    finally:
        if started:
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                check=False,
                timeout=120,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def database(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a new, empty database in ``pg_cluster``, dropped at the end."""
    name = f"s0pcm_test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_cluster.url(name)
    finally:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
