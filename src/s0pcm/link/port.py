"""The serial link to a module: open, read, reconnect, watchdog, threshold commands.

A thin I/O shell over :class:`s0pcm.protocol.Decoder`: it owns the port and the clock, nothing
about the protocol. It yields :data:`Event` values forever (until closed): what was received, and
what happened to the connection. A failed open, an unplugged cable or a silent module never ends
the iterator; the link waits (with back-off) and opens the port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import termios
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

import serial
import serial_asyncio_fast
from serial.tools import list_ports

from ..errors import LinkError, S0pcmError
from ..protocol import Decoder, Header, Model, Rejected, Telegram, Thresholds
from .events import (
    FRAMING_7E1,
    FRAMING_8N1,
    Connected,
    Disconnected,
    Event,
    Framing,
    Received,
    ThresholdsResult,
    ThresholdsSent,
)
from .noise import NoiseLog

__all__ = [
    "Link",
    "find_ports",
    "mark_parity_errors",
]

log = logging.getLogger(__name__)
#: Rejected lines are logged here, so a front end that shows them itself can silence this one.
rejected_log = logging.getLogger("s0pcm.link.rejected")

#: USB vendor ids the module shows up with: Arduino (two ids) or a CH340 bridge.
USB_VENDOR_IDS: Final = frozenset({0x2341, 0x2A03, 0x1A86})
#: Seconds the module waits between records, when no record told us yet.
DEFAULT_INTERVAL: Final = 10.0


def mark_parity_errors(fd: int) -> None:
    """Have the kernel check the parity bit and mark a byte that fails it.

    pyserial turns input parity checking off, so at 7E1 a flipped bit would pass as a wrong
    character. With INPCK and PARMRK (and neither IGNPAR nor ISTRIP) a byte with a parity or
    framing error arrives as ``\\377 \\0 byte``, which the decoder turns into a rejected line.
    """
    attrs = termios.tcgetattr(fd)
    attrs[0] |= termios.INPCK | termios.PARMRK
    attrs[0] &= ~(termios.IGNPAR | termios.ISTRIP)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


# --- events --------------------------------------------------------------------------------------


# --- finding the port ----------------------------------------------------------------------------


def find_ports() -> list[str]:
    """Ports that look like an S0PCM, best first: stable /dev/serial/by-id names when present."""
    by_id = {os.path.realpath(p): p for p in sorted(glob.glob("/dev/serial/by-id/*"))}
    found = []
    for info in list_ports.comports():
        if info.vid in USB_VENDOR_IDS:
            found.append(by_id.get(os.path.realpath(info.device), info.device))
    return found


# --- the link ------------------------------------------------------------------------------------


_CSIZE: Final = {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}


class _Watchdog(Exception):
    pass


class Link:
    """A module on a serial port, as an async stream of :data:`Event`.

    Usage::

        link = Link("/dev/ttyACM0")
        async for event in link.events():
            ...

    ``port=None`` finds the module by USB vendor id (see :func:`find_ports`) on every (re)connect.
    ``watchdog`` reopens the port when no data record arrives for that many intervals.
    A threshold command set with :meth:`send_thresholds` is written the moment a start-up header
    arrives (the module only listens for 10 s after power-up); the next start-up header tells
    whether it took, reported as :class:`ThresholdsResult`.
    """

    def __init__(
        self,
        port: str | None = None,
        *,
        framing: Framing = FRAMING_7E1,
        model: Model | None = None,
        watchdog: float = 3.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        exclusive: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.port = port
        self.framing = framing
        self.decoder = Decoder(model=model)
        self.watchdog = watchdog
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.exclusive = exclusive
        self.clock = clock
        #: What the log says of rejected lines: a few whole, then summaries.
        self.noise = NoiseLog()
        self.interval = DEFAULT_INTERVAL
        self.connected_port: str | None = None
        self._pending: Thresholds | None = None
        self._sent: Thresholds | None = None
        self._closed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._iterating = False
        self._fallback: dict[str, Framing] = {}

    def send_thresholds(self, command: Thresholds | None) -> None:
        """Queue ``command`` for the module's next start-up (None cancels)."""
        self._pending = command
        self._sent = None

    @property
    def thresholds_pending(self) -> Thresholds | None:
        return self._pending

    def close(self) -> None:
        """End :meth:`events` (from another task)."""
        self._closed.set()
        if self._writer is not None:
            self._writer.close()

    def _resolve(self) -> str:
        if self.port is not None:
            return self.port
        ports = find_ports()
        if not ports:
            raise LinkError(None, "no S0PCM found (USB vendor 2341, 2a03 or 1a86)")
        return ports[0]

    def _open_port(self, port: str, framing: Framing) -> serial.Serial:
        """Open the port (blocking; run in an executor). Never leaves a half-open port behind."""
        ser = serial.Serial(
            baudrate=framing.baudrate,
            bytesize=framing.bytesize,
            parity=framing.parity,
            stopbits=framing.stopbits,
            timeout=0,
            xonxoff=False,
            rtscts=False,
            exclusive=self.exclusive,
        )
        ser.port = port
        try:
            ser.open()
            # Some ports (pseudo-terminals) accept 7-bit framing once and then refuse it, or
            # silently keep 8 bits: check what the port really took, and apply it a second time.
            ser.timeout = 0
            size = termios.tcgetattr(ser.fileno())[2] & termios.CSIZE
            if size != _CSIZE[framing.bytesize]:
                raise termios.error(22, f"port keeps another character size than {framing}")
            if framing.parity != "N":
                mark_parity_errors(ser.fileno())
        except BaseException:
            ser.close()
            raise
        return ser

    async def _open(self, port: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open ``port`` with our framing, as an asyncio stream pair.

        A pseudo-terminal (the emulator, a serial-over-network bridge) refuses 7-bit framing;
        then the port is read as 8N1, which loses nothing since the decoder masks every byte
        to 7 bits anyway.
        """
        loop = asyncio.get_running_loop()
        framing = self._fallback.get(port, self.framing)
        while True:
            try:
                ser = await loop.run_in_executor(None, self._open_port, port, framing)
                if framing != self.framing:
                    self._fallback[port] = framing  # no need to try again on reconnect
                self.decoder.parity_marks = framing.parity != "N"
                break
            except termios.error as e:
                if framing == FRAMING_8N1:
                    raise LinkError(port, f"cannot set {framing} framing: {e}") from e
                log.info("%s refuses %s framing; reading it as 8N1 (7-bit masked)", port, framing)
                framing = FRAMING_8N1
            except (serial.SerialException, OSError, ValueError) as e:
                raise LinkError(port, str(e)) from e
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await serial_asyncio_fast.connection_for_serial(
                loop, lambda: protocol, ser
            )
        except (serial.SerialException, OSError, termios.error) as e:
            # The device went away between opening and setting it up (a USB bridge unplugged
            # at that moment; the soak met it): retry as for any port that will not open.
            with contextlib.suppress(Exception):
                ser.close()
            raise LinkError(port, f"port gone while setting it up: {e}") from e
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    async def events(self) -> AsyncIterator[Event]:
        """Events until :meth:`close`; reconnects on every failure.

        One iterator per link: a second one would fight the first for the (exclusive) port.
        """
        if self._iterating:
            raise S0pcmError("Link.events() is already being iterated")
        self._iterating = True
        try:
            async for event in self._events():
                yield event
        finally:
            self._iterating = False

    async def _events(self) -> AsyncIterator[Event]:
        backoff = self.backoff_min
        last_failure = ""
        while not self._closed.is_set():
            try:
                port = self._resolve()
                reader, writer = await self._open(port)
            except LinkError as e:
                if str(e) != last_failure:
                    log.warning("cannot open port: %s (retrying)", e)
                    last_failure = str(e)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            last_failure = ""
            self._writer = writer
            self.connected_port = port
            self.decoder.reset()
            self.noise.opened(time.monotonic())
            log.info("connected to %s (%s)", port, self.framing)
            yield Connected(at=self.clock(), port=port)
            reason = "closed"
            try:
                async for event in self._read(reader, writer):
                    if isinstance(event, Received) and isinstance(event.record, Telegram):
                        backoff = self.backoff_min
                    yield event
            except _Watchdog:
                reason = f"watchdog: no data record for {self.watchdog:g} intervals"
            except (serial.SerialException, OSError, ConnectionError) as e:
                reason = f"port error: {e}"
            finally:
                self._writer = None
                self.connected_port = None
                writer.close()
            (log.info if self._closed.is_set() else log.warning)(
                "disconnected from %s: %s", port, reason
            )
            yield Disconnected(at=self.clock(), port=port, reason=reason)
            if not self._closed.is_set():
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> AsyncIterator[Event]:
        # The watchdog runs on the monotonic clock: a step of the wall clock is not silence.
        deadline = time.monotonic() + self.watchdog * self.interval
        while not self._closed.is_set():
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise _Watchdog
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout)
            except TimeoutError:
                raise _Watchdog from None
            if not data:
                if self._closed.is_set():
                    return
                raise ConnectionError("end of stream")
            now = self.clock()
            for record in self.decoder.feed(data):
                if isinstance(record, Telegram):
                    self.interval = float(record.interval)
                    deadline = time.monotonic() + self.watchdog * self.interval
                noise = (
                    self.noise.rejected(time.monotonic(), record.reason, record.raw)
                    if isinstance(record, Rejected)
                    else self.noise.valid(time.monotonic())
                )
                for line in noise:  # a few lines, however noisy the port (see s0pcm.link.noise)
                    rejected_log.warning("%s", line)
                yield Received(at=now, record=record)
                if isinstance(record, Header):
                    for event in self._on_startup(record, writer, now):
                        yield event

    def _on_startup(self, header: Header, writer: asyncio.StreamWriter, now: float) -> list[Event]:
        """A start-up header: confirm the last threshold command, send a pending one."""
        log.info("module %s started: %s", header.module_id, header.text)
        events: list[Event] = []
        wanted = self._pending
        if wanted is None:
            return events
        if self._sent is not None or wanted.confirmed_by(header):
            taken = wanted.confirmed_by(header)
            events.append(ThresholdsResult(at=now, command=wanted, header=header, taken=taken))
            if taken:
                self._pending = self._sent = None
                return events
            log.warning("module did not take thresholds %s; sending again", wanted.to_command())
        writer.write(wanted.to_command().encode("ascii"))
        self._sent = wanted
        log.info("sent thresholds %s", wanted.to_command())
        events.append(ThresholdsSent(at=now, command=wanted))
        return events
