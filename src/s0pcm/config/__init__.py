"""The configuration: one TOML file, checked thoroughly, turned into frozen dataclasses.

The schema (``docs/example.toml`` is a complete, commented example)::

    [logger]                      # optional table
    database = "..."              # SQLite file (relative: to this file) or postgresql://...
    timezone = "Europe/Amsterdam" # days and months are local; default: the system's zone
    commit_interval = 300         # seconds between database commits, 1..86400
    journal = "..."               # crash journal; default: next to the database
    raw_retention_days = 0        # 0 keeps the 10 s history forever

    [web]                         # optional table
    listen = "127.0.0.1:8080"     # host:port, [v6]:port; loopback by default
    public_read = false

    [modules.<name>]              # one table per module, at least one
    port = "auto"                 # or a device path, or a pyserial URL
    model = 5                     # required: 2 or 5
    framing = "7E1"
    thresholds = "T2=40;"         # optional, sent at the module's next start-up

    [modules.<name>.meters.<register>]   # at least one per module
    kind = "electricity"          # required: electricity, gas, water, heat, other
    pulses_per_unit = 1000        # required, > 0
    unit = "kWh"                  # default from the kind
    name = "..."                  # default: the key
    reading = 12345.678           # optional, together with reading_at (with offset)
    reading_at = 2026-11-01T12:00:00+01:00
    enabled = true
    key = "electricity"           # default "<name>.<register>"
    domoticz_idx = 12             # optional: the Domoticz device ([mqtt] domoticz = true)

    [mqtt]                        # optional table; absent: no MQTT (see docs/example.toml)
    host = "localhost"
    port = 1883                   # 8883 when tls = true
    username = "s0pcm"            # optional
    password_file = "..."         # or password = "...", or $S0PCM_MQTT_PASSWORD
    tls = false                   # ca_file, cert_file, key_file, tls_insecure with it
    client_id = "s0pcm-<hostname>"
    base_topic = "s0pcm"
    discovery_prefix = "homeassistant"   # "" turns discovery off
    domoticz = false
    outbox_max = 10000            # messages kept while the broker is away

Every problem raises :class:`~s0pcm.errors.ConfigError` naming the file, the dotted key and the
line where the key (or, for a missing key, its table) is written.

The package, bottom up: :mod:`.model` (the dataclasses and defaults), :mod:`.toml_lines` (where
the text writes each key), :mod:`.values` (typed values with errors that name them),
:mod:`.system` (what the check takes from this machine), :mod:`.check` (the schema) and
:mod:`.load` (text or a file in, a Config out).
"""

from .load import load_config, parse_config, read_text
from .model import (
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_DATABASE,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS,
    Config,
    LoggerSettings,
    ModuleSettings,
    MqttSettings,
    WebSettings,
)

__all__ = [
    "DEFAULT_COMMIT_INTERVAL",
    "DEFAULT_DATABASE",
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_CONNECTIONS",
    "Config",
    "LoggerSettings",
    "ModuleSettings",
    "MqttSettings",
    "WebSettings",
    "load_config",
    "parse_config",
    "read_text",
]
