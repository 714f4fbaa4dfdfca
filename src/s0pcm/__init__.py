"""s0pcm: datalogger and dashboard for the S0 Pulse Counter Module (S0PCM-2 / S0PCM-5)."""

from .errors import ConfigError, LinkError, ProtocolError, S0pcmError
from .protocol import (
    Decoder,
    Header,
    Model,
    Register,
    Rejected,
    Telegram,
    Thresholds,
    parse_header,
    parse_line,
    parse_telegram,
    parse_thresholds,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Decoder",
    "Header",
    "LinkError",
    "Model",
    "ProtocolError",
    "Register",
    "Rejected",
    "S0pcmError",
    "Telegram",
    "Thresholds",
    "__version__",
    "parse_header",
    "parse_line",
    "parse_telegram",
    "parse_thresholds",
]
