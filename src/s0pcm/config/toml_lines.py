"""Where TOML text writes each key, so that an error can name the file, the key and the line.

``tomllib`` gives values but no positions, so :class:`Locator` scans the raw text (which
``tomllib`` has already accepted) for the line of every table header, key and inline-table key.
For text ``tomllib`` refuses, :func:`syntax_error` names the line it gives and, best effort, the
key that line writes.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import tomllib
from typing import Final

from ..errors import ConfigError

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")

#: A key as its parts: ``("modules", "meter kast", "port")`` is ``modules."meter kast".port``.
KeyPath = tuple[str, ...]


class _Stop(Exception):
    """The locator met text it does not follow; it keeps what it found so far."""


_ESCAPES: Final = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "e": "\x1b"}


class Locator:
    """The line of every table header, key and inline-table key of TOML text.

    Only runs on text ``tomllib`` accepted, so it need not diagnose anything: it follows the
    structure (headers, dotted and quoted keys, strings of all four kinds, arrays and inline tables
    spanning lines) and records the first line where each key path appears, including the tables
    a header or dotted key defines implicitly. Keys inside arrays are not recorded.
    """

    def __init__(self, text: str, *, scan: bool = True) -> None:
        self.text = text
        self.pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[KeyPath, int] = {}
        if scan:
            with contextlib.suppress(_Stop, IndexError, ValueError):
                self._document()

    @classmethod
    def key_of(cls, fragment: str, *, then: str = "") -> KeyPath | None:
        """The (dotted) key that ``fragment`` is, up to ``then``; None if it is not one."""
        locator = cls(fragment, scan=False)
        try:
            key = locator._key()
        except (_Stop, IndexError, ValueError):
            return None
        rest = fragment[locator.pos :]
        return key if (rest.startswith(then) if then else not rest) else None

    def line(self, path: KeyPath) -> int | None:
        """Line of ``path``, or of the nearest enclosing table that is written down."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    # -- structure ---------------------------------------------------------------------------

    def _record(self, path: KeyPath, pos: int) -> None:
        line = self.line_at(pos)
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], line)

    def _document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.text[start] == "[":
                double = self.text.startswith("[[", start)
                self.pos += 2 if double else 1
                table = self._key()
                self._skip_blank()
                self._expect("]]" if double else "]")
                self._record(table, start)
            else:
                key = table + self._key()
                self._record(key, start)
                self._skip_blank()
                self._expect("=")
                self._skip_blank()
                self._value(key)
            self._skip_blank()
            if self.pos == start:
                raise _Stop

    def _expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _Stop
        self.pos += len(token)

    def _skip_blank(self, *, newlines: bool = False) -> None:
        """Skip spaces, tabs and a comment; with ``newlines``, also line ends and blank lines."""
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self.pos += 1
            elif c == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _key(self) -> KeyPath:
        parts = []
        while True:
            self._skip_blank()
            parts.append(self._simple_key())
            self._skip_blank()
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def _simple_key(self) -> str:
        text = self.text
        if text.startswith('"', self.pos):
            return self._basic_string()
        if text.startswith("'", self.pos):
            end = text.index("'", self.pos + 1)
            key = text[self.pos + 1 : end]
            self.pos = end + 1
            return key
        m = _BARE_KEY.match(text, self.pos)
        if m is None:
            raise _Stop
        self.pos = m.end()
        return m.group()

    def _basic_string(self) -> str:
        text = self.text
        self.pos += 1
        out: list[str] = []
        while True:
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\":
                e = text[self.pos + 1]
                if e in "uU":
                    size = 4 if e == "u" else 8
                    out.append(chr(int(text[self.pos + 2 : self.pos + 2 + size], 16)))
                    self.pos += 2 + size
                else:
                    out.append(_ESCAPES.get(e, e))
                    self.pos += 2
            else:
                out.append(c)
                self.pos += 1

    def _value(self, path: KeyPath | None) -> None:
        """Skip a value; record the keys of inline tables under ``path`` (None: record nothing)."""
        text = self.text
        if text.startswith(('"""', "'''"), self.pos):
            self._multiline_string()
        elif text.startswith('"', self.pos):
            self._basic_string()
        elif text.startswith("'", self.pos):
            self.pos = text.index("'", self.pos + 1) + 1
        elif text.startswith("[", self.pos):
            self._array()
        elif text.startswith("{", self.pos):
            self._inline_table(path)
        else:
            # Numbers, booleans, dates and times (which may hold one space): up to a delimiter.
            while self.pos < len(text) and text[self.pos] not in ",]}#\r\n":
                self.pos += 1

    def _multiline_string(self) -> None:
        text = self.text
        quote = text[self.pos]
        p = self.pos + 3
        while True:
            if quote == '"' and text[p] == "\\":
                p += 2
            elif text.startswith(quote * 3, p):
                p += 3
                # Up to two more quotes right before the delimiter belong to the string.
                for _ in range(2):
                    if text.startswith(quote, p):
                        p += 1
                self.pos = p
                return
            elif p >= len(text):
                raise _Stop
            else:
                p += 1

    def _array(self) -> None:
        self.pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return
            start = self.pos
            self._value(None)
            self._skip_blank(newlines=True)
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.pos == start:
                raise _Stop

    def _inline_table(self, path: KeyPath | None) -> None:
        self.pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            start = self.pos
            key = self._key()
            if path is not None:
                self._record(path + key, start)
            self._skip_blank()
            self._expect("=")
            self._skip_blank()
            self._value(None if path is None else path + key)
            if self.pos == start:
                raise _Stop


def dotted(path: KeyPath) -> str:
    """``modules."meter kast".port``: TOML's own spelling of a key path."""
    return ".".join(
        p if _BARE_KEY.fullmatch(p) else json.dumps(p, ensure_ascii=False) for p in path
    )


_SYNTAX_AT: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_SYNTAX_END: Final = re.compile(r"\s*\(at end of document\)\s*$")
_HEADER_LINE: Final = re.compile(r"\s*\[")


def syntax_error(e: tomllib.TOMLDecodeError, text: str, path: str) -> ConfigError:
    """A TOML syntax error with the file, the line and (best effort) the key being written."""
    message = str(e)
    line: int | None = None
    m = _SYNTAX_AT.search(message)
    if m is not None:
        line = int(m.group(1))
        message = f"{message[: m.start()]} (column {m.group(2)})"
    elif (m := _SYNTAX_END.search(message)) is not None:
        line = max(1, len(text.splitlines()))
        message = f"{message[: m.start()]} at the end of the file"
    key = _key_on_line(text, line)
    return ConfigError(f"TOML syntax error: {message}", file=path, key=key, line=line)


def _key_on_line(text: str, line: int | None) -> str | None:
    """The key a line of broken TOML writes: the last table header above it plus its key."""
    if line is None:
        return None
    lines = text.splitlines()[:line]
    if not lines:
        return None

    table: KeyPath = ()
    for above in reversed(lines[:-1]):
        if _HEADER_LINE.match(above):
            table = Locator.key_of(above.strip().lstrip("["), then="]") or ()
            break
    own = lines[-1]
    if _HEADER_LINE.match(own):
        found = Locator.key_of(own.strip().lstrip("["), then="]")
        return dotted(found) if found else None
    if "=" not in own:
        return dotted(table) if table else None
    found = Locator.key_of(own.split("=", 1)[0].strip())
    path = table + found if found else table
    return dotted(path) if path else None
