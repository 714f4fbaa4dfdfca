"""Publishers: every one an encoder of the logger's updates, none a reader of the store.

The module runner pushes one :class:`~s0pcm.logger.runner.Update` per record (with every meter's
live values) to each subscriber (``Daemon.subscribe``). A publisher turns it into
:class:`Message` values (MQTT state, Home Assistant discovery, Domoticz ``domoticz/in``), which
the MQTT client sends through its outbox; Prometheus reads the same live values on a scrape.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One MQTT message to send. ``retain``: the broker keeps the newest per topic (state,
    discovery, availability); the outbox keeps only the newest unsent one per retained topic,
    and every message of a topic that is not retained (events), in order."""

    topic: str
    payload: bytes
    retain: bool
    qos: int = 1
