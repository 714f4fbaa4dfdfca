"""The store's state documents every request reads (``_auth``, ``_meters``, ``_tariffs``), kept
for a moment.

Reading one is a query under the store's lock, and the request handlers check tokens and look up
meters on the event loop: while a worker thread holds the lock for a long query, every request
and the live stream would wait. Kept for two seconds, a document is read from the store once per
two seconds at most; the app's own writes go through here, so they show at once, and changes made
elsewhere (``s0pcm passwd`` in another process) within two seconds.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ..store import Store

__all__ = ["Documents"]

TTL: Final = 2.0


class Documents:
    def __init__(
        self, store: Store, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._kept: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The document (a copy the caller may change), None if there is none."""
        kept = self._kept.get(key)
        now = self.clock()
        if kept is None or now - kept[0] > self.ttl:
            kept = (now, self.store.state(key))
            self._kept[key] = kept
        return copy.deepcopy(kept[1])

    def set(self, key: str, doc: Mapping[str, Any]) -> None:
        """Write ``doc`` (with the store's next commit) and keep it."""
        self.store.set_state(key, doc)
        self._kept[key] = (self.clock(), copy.deepcopy(dict(doc)))

    def forget(self, key: str) -> None:
        self._kept.pop(key, None)
