"""The link's plain data: the framing it opens a port with, and what it reports (lines
received, what happened to the connection).

Kept apart from the port: the configuration, the journal, a replayed capture and a future
collector use these without loading pyserial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import ConfigError
from ..protocol import Header, Rejected, Telegram, Thresholds

__all__ = [
    "FRAMING_7E1",
    "FRAMING_8N1",
    "Connected",
    "Disconnected",
    "Event",
    "Framing",
    "Received",
    "ThresholdsResult",
    "ThresholdsSent",
]


@dataclass(frozen=True, slots=True)
class Framing:
    """Serial framing. The module talks 9600 7E1; a pseudo-terminal only carries 8N1."""

    baudrate: int = 9600
    bytesize: int = 7
    parity: str = "E"
    stopbits: int = 1

    @classmethod
    def parse(cls, text: str, *, baudrate: int = 9600) -> Framing:
        """``7E1``, ``8N1``...: data bits, parity (N/E/O/M/S), stop bits."""
        t = text.strip().upper()
        if len(t) != 3 or t[0] not in "5678" or t[1] not in "NEOMS" or t[2] not in "12":
            raise ConfigError(f"framing {text!r} is not like 7E1 or 8N1", key="framing")
        return cls(baudrate, int(t[0]), t[1], int(t[2]))

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


FRAMING_7E1: Final = Framing()
FRAMING_8N1: Final = Framing(bytesize=8, parity="N")


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    at: float
    port: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    at: float
    port: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """A line from the module: a header, a data record, or a rejected line with its reason."""

    at: float
    record: Header | Telegram | Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdsSent:
    at: float
    command: Thresholds


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdsResult:
    """The start-up header after a threshold command: whether the module took it."""

    at: float
    command: Thresholds
    header: Header
    taken: bool


Event = Connected | Disconnected | Received | ThresholdsSent | ThresholdsResult
