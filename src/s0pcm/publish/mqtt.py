"""The MQTT client: the outbox sent to the broker at QoS 1, in order, whatever the broker does.

:class:`Publisher` has two halves that never wait on each other:

* :meth:`Publisher.on_update`, the logger's listener (``Daemon.subscribe``): it encodes the
  update (the encoder is given: state, discovery, Domoticz are written elsewhere) and puts the
  messages into the :class:`~s0pcm.publish.outbox.Outbox`. Nothing else; the logger goes on.
* :meth:`Publisher.run`, a task of its own: connect (last will ``<base>/status`` = ``offline``,
  retained), say ``online`` (retained), announce (discovery), then send the outbox oldest first,
  one message at a time, removing each when its PUBACK comes (aiomqtt's publish awaits it), so
  the order holds across reconnects and at most the one message in flight is sent twice.
  A lost broker is tried again with exponential back-off and jitter (1 s doubling to 60 s, each
  wait a random 50-100 % of that), so a hundred loggers do not come back in step. A problem is
  logged once, in one line, until it changes or the link is back: a wrong password does not
  print a traceback every minute, and the logger keeps counting all along.

Home Assistant's birth message (``<discovery_prefix>/status`` = ``online``, after it restarts)
is answered with the announcement again, after a random 1-5 s: Home Assistant asks for it that
way so that a hundred devices do not answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ..config import MqttSettings
from . import Message
from .outbox import Outbox

if TYPE_CHECKING:
    from ..logger.runner import Update

__all__ = ["Announce", "Encode", "LinkStatus", "Publisher", "tls_context"]

log = logging.getLogger(__name__)

#: Turns one update into the messages to send (state, events, Domoticz...).
Encode = Callable[["Update"], Sequence[Message]]
#: Every message that announces the logger's entities (Home Assistant discovery configs).
Announce = Callable[[], Sequence[Message]]

#: Seconds a publish may wait for its PUBACK before the link is taken for lost.
PUBLISH_TIMEOUT: Final = 15.0
KEEPALIVE: Final = 30
#: Seconds between tries after a failure: the first, and the most.
BACKOFF: Final = (1.0, 60.0)
#: Home Assistant's birth is answered after a random delay in this range (seconds).
ANNOUNCE_DELAY: Final = (1.0, 5.0)
#: Messages taken from the outbox at once.
BATCH: Final = 50


@dataclass(slots=True, kw_only=True)
class LinkStatus:
    """How the MQTT link is doing, for the dashboard and ``status``."""

    broker: str
    connected: bool = False
    #: When the link came up (connected) or went down (Unix time).
    since: float | None = None
    #: When the last message was acknowledged.
    last_publish: float | None = None
    #: The last problem, in one line (None: none since the link came up).
    last_error: str | None = None
    #: Messages acknowledged by the broker since start.
    sent: int = 0
    #: Failed connection tries in a row.
    failures: int = 0
    #: Messages waiting in the outbox, and events its overflow dropped (ever), as last seen.
    outbox: int = 0
    dropped: int = 0

    def view(self) -> dict[str, Any]:
        """What the health document shows and the logger saves (``_mqtt`` in the store)."""
        return dataclasses.asdict(self)


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context of ``[mqtt]`` (None without TLS): the broker's certificate checked
    against ``ca_file`` (or the system's CAs) and its host name, unless ``tls_insecure``."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(
        cafile=None if settings.ca_file is None else str(settings.ca_file)
    )
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


def explain(error: BaseException, settings: MqttSettings) -> str:
    """What went wrong, in one line a user can act on (never the password)."""
    broker = settings.broker
    text = str(error)
    cause = error.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    rc = getattr(error, "rc", None)
    code = getattr(rc, "value", rc)
    if isinstance(error, MqttConnectError) and code in (4, 5, 134, 135):
        who = f"user {settings.username!r}" if settings.username else "an anonymous client"
        return f"broker {broker} refused the login of {who}: {text}"
    if "mismatch" in text and "certificate" in text:
        return f"TLS: the certificate of broker {broker} is not for {settings.host!r}: {text}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        source = f"ca_file {settings.ca_file}" if settings.ca_file else "the system's CAs"
        return f"TLS: the certificate of broker {broker} is not trusted by {source}: {text}"
    if "SSL" in text or "TLS" in text:
        return f"TLS with broker {broker} failed: {text}"
    return f"broker {broker}: {text or type(error).__name__}"


class Publisher:
    """The outbox's sender and the logger's listener (see the module's documentation)."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        *,
        encode: Encode,
        announce: Announce = lambda: (),
        on_dropped: Callable[[int, bool], None] = lambda count, over: None,
        backoff: tuple[float, float] = BACKOFF,
        announce_delay: tuple[float, float] = ANNOUNCE_DELAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``encode``/``announce``: the messages of an update, and of the announcement.
        ``on_dropped``: told when the outbox's overflow starts dropping old events (how many
        at first, and False), and when it has room again (how many in all, and True).
        ``backoff``: the first and the longest wait between tries, in seconds."""
        self.settings = settings
        self.outbox = outbox
        self.encode = encode
        self.announce = announce
        self.on_dropped = on_dropped
        self.backoff = backoff
        self.announce_delay = announce_delay
        self.clock = clock
        self.status = LinkStatus(broker=settings.broker, outbox=len(outbox), dropped=outbox.dropped)
        self.status_topic = f"{settings.base_topic}/status"
        self.birth_topic = (
            f"{settings.discovery_prefix}/status" if settings.discovery_prefix else None
        )
        self._tls = tls_context(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._said: str | None = None
        self._announcing: asyncio.TimerHandle | None = None
        #: Events dropped since the outbox became full (0: it is not).
        self._dropping = 0

    # -- the listener's half: never waits

    def on_update(self, update: Update) -> None:
        """The logger's listener: encode ``update`` and queue its messages (see :meth:`put`)."""
        try:
            messages = self.encode(update)
        except Exception:
            log.exception("MQTT: cannot encode the update of module %s", update.module)
            return
        self.put(messages)

    def put(self, messages: Sequence[Message]) -> None:
        """Queue ``messages`` in the outbox and wake the sender. Whatever goes wrong here loses
        these messages (the next update carries the retained values again), never the
        logger's counting."""
        if not messages:
            return
        try:
            dropped = self.outbox.put(messages)
        except Exception as e:
            self._say(f"cannot queue MQTT messages in {self.outbox.path}: {e}", logging.ERROR)
            return
        self._queued(dropped)

    def _queued(self, dropped: int) -> None:
        """Messages are in the outbox (``dropped`` old events made room): wake the sender."""
        self.status.outbox, self.status.dropped = len(self.outbox), self.outbox.dropped
        if dropped:
            if not self._dropping:  # said once while it stays full, not once a record
                log.warning("MQTT outbox full (%d messages): dropping the oldest events unsent",
                            self.outbox.limit)  # fmt: skip
                self.on_dropped(dropped, False)
            self._dropping += dropped
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def reannounce(self) -> None:
        """Queue the whole announcement (``announce``) through :meth:`Outbox.announce
        <s0pcm.publish.outbox.Outbox.announce>`, which empties the configs it no longer holds:
        at start, on connecting, on Home Assistant's birth, and when an encoder learns
        something that changes the configs (a module's id). An announcement that cannot be
        encoded changes nothing (it is not taken for one that holds no entities)."""
        try:
            messages = self.announce()
        except Exception:
            log.exception("MQTT: cannot encode the announcement")
            return
        try:
            dropped, emptied = self.outbox.announce(messages)
        except Exception as e:
            self._say(f"cannot queue MQTT messages in {self.outbox.path}: {e}", logging.ERROR)
            return
        if emptied:
            log.info("MQTT: %d discovery configs no longer announced are removed", emptied)
        self._queued(dropped)

    # -- the sender's half

    def stop(self) -> None:
        """End :meth:`run`: ``offline`` is said (retained) when the link is up, then it
        disconnects cleanly (the broker sends the will only when the link breaks)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Until :meth:`stop`: keep the link up and the outbox sent."""
        self._loop = asyncio.get_running_loop()
        self.reannounce()
        delay = self.backoff[0]
        try:
            while not self._stopping.is_set():
                try:
                    await self._session()
                except aiomqtt.MqttError as e:
                    self._down(e)
                except OSError as e:  # the TLS files, read as the link comes up
                    self._down(e)
                if self._stopping.is_set():
                    break
                if self.status.failures <= 1:  # the link broke, or a first try failed
                    delay = self.backoff[0]
                wait = delay * random.uniform(0.5, 1.0)
                log.debug("MQTT: next try in %.2f s", wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
                delay = min(delay * 2, self.backoff[1])
        finally:
            if self._announcing is not None:
                self._announcing.cancel()
            self.status.connected = False

    def _client(self) -> aiomqtt.Client:
        """A new client per connection: nothing of an old session (paho's own resends) comes
        between the outbox and the broker."""
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=s.client_id,
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            tls_context=self._tls,
            keepalive=KEEPALIVE,
            timeout=PUBLISH_TIMEOUT,
            clean_session=True,
        )

    async def _session(self) -> None:
        """One connection, from CONNACK until it breaks or :meth:`stop`."""
        async with self._client() as client:
            await client.publish(self.status_topic, b"online", qos=1, retain=True)
            if self.birth_topic is not None:
                await client.subscribe(self.birth_topic, qos=1)
            self._up()
            self.reannounce()  # a broker that lost its retained messages gets them again
            sender = asyncio.create_task(self._send(client), name="mqtt send")
            listener = asyncio.create_task(self._listen(client), name="mqtt listen")
            try:
                done, _ = await asyncio.wait(
                    (sender, listener), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (sender, listener):
                    task.cancel()
                await asyncio.gather(sender, listener, return_exceptions=True)
            for task in done:
                task.result()  # the link's error, if it broke
            if self._stopping.is_set():
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(
                        self.status_topic, b"offline", qos=1, retain=True, timeout=2.0
                    )

    async def _send(self, client: aiomqtt.Client) -> None:
        """The outbox, oldest first, each removed on its PUBACK; returns on stop."""
        while not self._stopping.is_set():
            entries = self.outbox.peek(BATCH)
            if not entries:
                self._wake.clear()
                await self._wake.wait()
                continue
            for entry in entries:
                if self._stopping.is_set():
                    return
                m = entry.message
                await client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
                self.outbox.ack(entry.seq)
                self.status.outbox = len(self.outbox)
                self.status.sent += 1
                self.status.last_publish = self.clock()
                if self._dropping and len(self.outbox) < self.outbox.limit * 0.9:
                    log.warning("MQTT outbox: %d events were dropped unsent while it was full",
                                self._dropping)  # fmt: skip
                    self.on_dropped(self._dropping, True)
                    self._dropping = 0

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Home Assistant's birth; raises when the link breaks (that ends the session)."""
        async for message in client.messages:
            if self.birth_topic is None or not message.topic.matches(self.birth_topic):
                continue
            if message.payload == b"online" and self._loop is not None:
                if self._announcing is not None:
                    self._announcing.cancel()
                delay = random.uniform(*self.announce_delay)
                log.info("MQTT: Home Assistant started: announcing again in %.1f s", delay)
                self._announcing = self._loop.call_later(delay, self.reannounce)

    # -- what is said about the link

    def _up(self) -> None:
        status = self.status
        if status.failures:
            log.info("MQTT: connected to %s after %d failed tries; %d messages to send",
                     status.broker, status.failures, len(self.outbox))  # fmt: skip
        else:
            log.info("MQTT: connected to %s; %d messages to send", status.broker,
                     len(self.outbox))  # fmt: skip
        status.connected, status.since, status.failures = True, self.clock(), 0
        status.last_error = None
        self._said = None

    def _down(self, error: BaseException) -> None:
        status = self.status
        problem = explain(error, self.settings)
        lost = status.connected
        if lost:  # a broken link is tried again after the shortest wait, a refused one later
            status.connected, status.since = False, self.clock()
            self._said = None
            status.failures = 0
        else:
            status.failures += 1
        status.last_error = problem
        self._say(
            f"MQTT: {'lost the link: ' if lost else ''}{problem}; trying again with back-off "
            f"({len(self.outbox)} messages wait in the outbox, counting goes on)",
            logging.WARNING if lost else logging.ERROR,
            key=problem,
        )

    def _say(self, line: str, level: int, *, key: str | None = None) -> None:
        """``line`` once: the same problem again is only debug (one line, not one a try)."""
        key = key or line
        if key == self._said:
            log.debug("%s", line)
            return
        self._said = key
        log.log(level, "%s", line)
