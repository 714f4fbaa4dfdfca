"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Real field captures, byte for byte, with their sources in README.md there.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


@pytest.fixture
def samples_dir() -> Path:
    """Directory of the field samples (raw bytes as the module prints them)."""
    return SAMPLES_DIR
