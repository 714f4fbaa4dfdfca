"""Typed values out of a TOML table, each problem a ConfigError that names file, key and line.

The schema (:mod:`.check`) asks for "an optional string", "a number", "a boolean"...; this says
what was wrong the same way for every key, with the value as the user wrote it.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Collection
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .toml_lines import KeyPath, Locator, dotted


def describe(value: object) -> str:
    """A value as the user wrote it, with its TOML type, for "got ..." in messages."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {quote(value)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, datetime):
        kind = "date-time" if value.tzinfo is not None else "local date-time (no offset)"
        return f"the {kind} {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, time):
        return f"the time {value.isoformat()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)  # pragma: no cover - tomllib produces nothing else


def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1)
        close = [c for c in choices if c.lower() in close][:1]
    return f"; did you mean {quote(close[0])}?" if close else ""


class TableReader:
    """Reads the values of one document; :class:`~.check.Checker` adds the schema.

    Apart from the schema so that a wrong type, an empty string or an unknown key is worded once,
    the same for every key, and the schema reads as what each key may be.
    """

    def __init__(self, file: str, locator: Locator, base: Path) -> None:
        self.file = file
        self.locator = locator
        #: The directory relative paths are relative to.
        self.base = base

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            message, file=self.file, key=dotted(path) or None, line=self.locator.line(path)
        )

    def table(self, value: object, path: KeyPath, known: Collection[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, got {describe(value)}")
        for key in value:
            if key not in known:
                hint = suggest(key, known) or f" (known keys: {', '.join(known)})"
                raise self.error((*path, key), f"unknown key {quote(key)}{hint}")
        return value

    def string(self, table: dict[str, Any], path: KeyPath, key: str) -> str | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, str):
            raise self.error((*path, key), f"must be a string, got {describe(value)}")
        if not value.strip():
            raise self.error((*path, key), "must not be empty")
        return value.strip()

    def number(self, table: dict[str, Any], path: KeyPath, key: str, what: str) -> float | None:
        """A finite int or float (a bool is not a number); ``what`` says what is wanted."""
        if key not in table:
            return None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error((*path, key), f"must be {what}, got {describe(value)}")
        if not math.isfinite(value):
            raise self.error((*path, key), f"must be {what}, got {describe(value)}")
        return float(value)

    def strings(self, table: dict[str, Any], path: KeyPath, key: str) -> tuple[str, ...]:
        """An optional array of non-empty strings (a lone string is taken as one)."""
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error((*path, key), f"must be an array of strings, got {describe(value)}")
        return tuple(v.strip() for v in value)

    def integer(self, table: dict[str, Any], path: KeyPath, key: str, what: str) -> int | None:
        if key not in table:
            return None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error((*path, key), f"must be {what}, got {describe(value)}")
        return value

    def boolean(self, table: dict[str, Any], path: KeyPath, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.error((*path, key), f"must be true or false, got {describe(value)}")
        return value

    def local_path(self, text: str) -> Path:
        return self.base / os.path.expanduser(text)
