"""The history store: pulses per meter at 10-second resolution, forever, in SQLite or PostgreSQL.

``open_store`` picks the backend from what the configuration says: a file path or
``sqlite:///absolute/path`` is a SQLite file, ``postgresql://user@host/db`` a PostgreSQL database.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from ..calendar import SLOT, Resolution
from ..errors import StoreError
from .base import Anchor, AnchorKind, Constants, Store

__all__ = [
    "SLOT",
    "Anchor",
    "AnchorKind",
    "Constants",
    "Resolution",
    "Store",
    "StoreError",
    "open_store",
]


def open_store(url_or_path: str, *, tz: ZoneInfo, readonly: bool = False) -> Store:
    """Open (creating or migrating as needed) the store at ``url_or_path``.

    ``tz`` is the user's time zone (local days, weeks, months, years). ``readonly``: never write
    (a dashboard or a check next to the daemon). Raises :class:`StoreError` when the database
    cannot be opened or is damaged, or the URL is not understood.
    """
    target = url_or_path.strip()
    scheme, sep, rest = target.partition("://")
    if not sep:
        if not target:
            raise StoreError(url_or_path, "no database given")
        from .sqlite import SqliteStore

        return SqliteStore(Path(target).expanduser(), tz=tz, readonly=readonly)
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(target, tz=tz, readonly=readonly)
    if scheme == "sqlite":
        path = rest.partition("?")[0]
        if not path.startswith("/") or path.strip("/") == "":
            raise StoreError(
                url_or_path, "a SQLite URL names an absolute path: sqlite:///path/to/file.db"
            )
        from .sqlite import SqliteStore

        return SqliteStore(Path("/" + path.lstrip("/")), tz=tz, readonly=readonly)
    raise StoreError(
        url_or_path,
        f"unknown kind of database {scheme!r}: use a file path, sqlite:///path or "
        "postgresql://user@host/database",
    )
