"""The MQTT topic layout, in one place: every publisher and the client build topics here.

Topics are keyed by what does not change when a user edits the configuration: the id the module
prints (``ID:8237``, kept in :attr:`Health.module_id <s0pcm.logger.runner.Health.module_id>`)
and the register number. Until a module has printed its id the configured module name stands in
(a name is letters, digits, ``_`` and ``-``, so it is a valid topic level and a valid Home
Assistant object id alike):

=====================================  =========  =============================================
``<base>/status``                      retained   the logger: ``online``, last will ``offline``
``<base>/<module_id>/status``          retained   the module's link: ``online`` / ``offline``
``<base>/<module_id>/<register>/state`` retained  one meter's JSON (:mod:`.state`)
``<base>/<module_id>/health``          retained   the module's health JSON
``<base>/<module_id>/events``          not        every device event, one JSON each
``<prefix>/<component>/<id>/config``   retained   Home Assistant discovery (:mod:`.homeassistant`)
``<prefix>/status``                    (theirs)   Home Assistant's birth: ``online`` → re-announce
``domoticz/in``                        not        Domoticz ``udevice`` (:mod:`.domoticz`)
=====================================  =========  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..logger.runner import Health

__all__ = ["DOMOTICZ_IN", "OFFLINE", "ONLINE", "Topics", "module_key"]

#: Availability payloads (Home Assistant's defaults, so discovery need not name them).
ONLINE: Final = "online"
OFFLINE: Final = "offline"
#: Where Domoticz's MQTT client hardware listens (its default).
DOMOTICZ_IN: Final = "domoticz/in"


def module_key(health: Health) -> str:
    """The module's level in every topic and its part of every Home Assistant id: the id it
    prints, or its configured name until it has printed one."""
    return health.module_id or health.module


@dataclass(frozen=True, slots=True, kw_only=True)
class Topics:
    """The topics under ``base`` (``[mqtt] base_topic``) and ``discovery_prefix`` (``""``:
    Home Assistant discovery is off)."""

    base: str = "s0pcm"
    discovery_prefix: str = "homeassistant"

    @property
    def discovery(self) -> bool:
        """Whether Home Assistant discovery is on."""
        return bool(self.discovery_prefix)

    @property
    def status(self) -> str:
        """The logger's availability (its last will)."""
        return f"{self.base}/status"

    def module_status(self, module: str) -> str:
        """The module's link: ``online`` while its port is open and records arrive."""
        return f"{self.base}/{module}/status"

    def state(self, module: str, register: int) -> str:
        return f"{self.base}/{module}/{register}/state"

    def health(self, module: str) -> str:
        return f"{self.base}/{module}/health"

    def events(self, module: str) -> str:
        return f"{self.base}/{module}/events"

    def config(self, component: str, object_id: str) -> str:
        """A discovery config: ``<prefix>/<component>/<object_id>/config``, no node id (Home
        Assistant's advice for entities with a ``unique_id``: the object id is that id)."""
        return f"{self.discovery_prefix}/{component}/{object_id}/config"

    @property
    def homeassistant_status(self) -> str:
        """Home Assistant's birth and will: ``online`` asks for every config again."""
        return f"{self.discovery_prefix}/status"
