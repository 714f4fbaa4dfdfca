"""Debian's Chromium as the browser tests (and the page benchmark) run it."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
