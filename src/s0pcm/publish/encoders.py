"""What ``s0pcm run`` publishes over MQTT: the encoders of :mod:`.state`, :mod:`.homeassistant`
and :mod:`.domoticz` over one daemon's runners, as the :class:`~.mqtt.Publisher` wants them.

Every message comes from the update in hand and the runner's health: nothing here reads the
store. When a module's id becomes known (its first header or record), its topics move from the
configured name to the id: the publisher announces again, and the configs under the name are
emptied (``Outbox.announce``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import Message
from .domoticz import domoticz_messages
from .homeassistant import ModuleInfo, announce
from .state import update_messages
from .topics import Topics, module_key

if TYPE_CHECKING:
    from ..config import MqttSettings
    from ..logger.daemon import Daemon
    from ..logger.runner import ModuleRunner, Update
    from .mqtt import Announce, Encode

__all__ = ["for_daemon"]


def for_daemon(daemon: Daemon) -> tuple[Encode, Announce]:
    """The daemon's ``(encode, announce)`` for its ``[mqtt]`` settings."""
    settings: MqttSettings | None = daemon.config.mqtt
    assert settings is not None
    topics = Topics(base=settings.base_topic, discovery_prefix=settings.discovery_prefix)
    runners = {r.name: r for r in daemon.runners}
    announced: dict[str, str] = {name: module_key(r.health) for name, r in runners.items()}

    def info(runner: ModuleRunner) -> ModuleInfo:
        return ModuleInfo(
            health=runner.health, model=runner.settings.model, meters=runner.all_meters
        )

    def encode(update: Update) -> Sequence[Message]:
        runner = runners.get(update.module)
        if runner is None:
            return []
        out: list[Message] = []
        key = module_key(runner.health)
        if topics.discovery and announced.get(runner.name) != key:
            # The id is known now: the entities move to it, and those under the name go.
            announced[runner.name] = key
            if daemon.publisher is not None:
                daemon.publisher.reannounce()
        out += update_messages(
            update,
            meters=runner.all_meters,
            health=runner.health,
            stats=runner.ledger.stats,
            model=runner.settings.model,
            topics=topics,
        )
        if settings.domoticz:
            idx = {m.key: m.domoticz_idx for m in runner.all_meters if m.domoticz_idx}
            out += domoticz_messages(update, meters=runner.all_meters, idx=idx)
        return out

    def announce_all() -> Sequence[Message]:
        if not topics.discovery:
            return []
        return announce([info(r) for r in runners.values()], topics=topics)

    return encode, announce_all
