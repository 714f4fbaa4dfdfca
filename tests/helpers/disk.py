"""A file system filled to the last byte (the disk tests and the soak benchmark)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fill"]


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 64, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    if os.write(fd, chunk) < size:
                        break
    finally:
        os.close(fd)
    return filler
