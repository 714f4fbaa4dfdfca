"""The entry points: configuration text, or the file that holds it, in; a :class:`Config` out."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from ..errors import ConfigError, InputFileError
from .check import Checker
from .model import Config
from .toml_lines import Locator, syntax_error


def read_text(
    path: str | os.PathLike[str], *, what: str, error: type[InputFileError] = ConfigError
) -> tuple[str, str]:
    """``(name, text)`` of a UTF-8 file the user gave; errors (``error``) name the file (and
    the line of a bad byte). ``what`` says what the file is, for the message."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as e:
        raise error(f"cannot read the {what}: {e.strerror or e}", file=name) from e
    try:
        return name, data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error("is not UTF-8 text", file=name, line=line) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the configuration file at ``path``."""
    name, text = read_text(path, what="configuration")
    return parse_config(text, path=name)


def parse_config(text: str, *, path: str = "<string>") -> Config:
    """Check configuration text; ``path`` names it in errors and anchors relative paths.

    Relative paths in the text are relative to the directory of ``path``, or to the working
    directory when ``path`` is not a file name (``<string>``).
    """
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise syntax_error(e, text, path) from None
    base = Path.cwd() if path.startswith("<") else Path(os.path.abspath(path)).parent
    return Checker(path, Locator(text), base).config(data)
