"""The store's two backends behind one handle: a SQLite file or a PostgreSQL database (the
``backend`` fixture in ``tests/conftest.py`` gives each test both)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from s0pcm.store import Store, open_store
from tests.helpers import TZ

__all__ = ["Backend"]


@dataclass
class Backend:
    name: str
    #: Path (SQLite) or URL (PostgreSQL).
    target: str

    def open(self, tz: ZoneInfo = TZ, *, readonly: bool = False) -> Store:
        return open_store(self.target, tz=tz, readonly=readonly)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run SQL (``?`` placeholders) behind the store's back, to damage it on purpose."""
        if self.name == "sqlite":
            with contextlib.closing(sqlite3.connect(self.target)) as lite, lite:
                lite.execute(sql, params)
        else:
            with psycopg.connect(self.target, autocommit=True) as pg:
                pg.execute(sql.replace("?", "%s"), params)
