"""A :class:`~.module.Module` in real time on a pseudo-terminal, for the real link code.

The pty sits behind a stable symlink, so pyserial reads it as it reads the module's USB port. It
vanishes on an unplug, and the emulator tracks which bytes a reader actually consumed, so the
ground truth counts only what reached a reader. :meth:`PtyEmulator.command` reads the faults
asked for by name (what ``s0pcm emulate`` takes from its control FIFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import random
import struct
import termios
import time
import tty
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from .module import Fault, Module
from .truth import Line

__all__ = ["SETTLE_IN", "PtyEmulator"]

#: Seconds a reader must have had the port open before output goes to it (see PtyEmulator).
SETTLE_IN: Final = 0.25
#: The pty speed the emulator leaves for a reader to change (nobody opens a module at 50 baud).
_MARK_SPEED: Final = termios.B50


class PtyEmulator:
    """Runs a :class:`Module` in real time on a pseudo-terminal behind a stable symlink.

    Like a USB serial device, it only delivers while a reader has the port open: it sees a
    reader come and go (the pty master reads EIO while nobody has the other side open), holds
    its output for at most ``stale`` seconds while nobody reads (until the first reader came, it
    holds all of it: the first reader gets the start-up header), and asks the kernel how many
    bytes a reader left unread, so the ground truth counts exactly the lines a reader consumed.
    """

    def __init__(
        self,
        module: Module,
        *,
        link: Path,
        truth_path: Path | None = None,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[Fault] = (),
        clock: Callable[[], float] | None = None,
        tick: float | None = None,
        transcript_path: Path | None = None,
    ) -> None:
        self.module = module
        #: Every line a reader consumed, one JSON document per line (to trace a soak's loss).
        self.transcript_path = transcript_path
        self.link = Path(link)
        self.truth_path = truth_path
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds) or tuple(Fault)
        self.clock = clock or time.time
        self.tick = tick if tick is not None else min(0.05, module.interval / 4)
        self.stale = max(2.0, 2 * module.interval)
        self.readers = 0  # readers seen so far
        self._master = -1
        self._slave_name = ""
        self._reader_since: float | None = None  # since when a reader has the port, set up
        self._present_since: float | None = None  # since when something has it open
        self._written = 0  # bytes written to the pty since it was (re)opened or flushed
        self._queue: list[tuple[float, Line]] = []  # printed, not yet written
        self._unconfirmed: list[tuple[int, Line]] = []  # (end offset, line) written, not read
        self._requests: list[tuple[Fault, float | None]] = []
        self._truth_text = ""
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    # -- control

    def request(self, fault: Fault, *, duration: float | None = None) -> None:
        """Ask for a fault at the next tick (safe from a signal handler)."""
        self._requests.append((fault, duration))

    def command(self, text: str) -> None:
        """A fault by name, with an optional duration (``"unplug 5"``, ``"garbage"``), or
        ``"rate R"`` to set the rate of random faults per interval.

        Raises ValueError for an unknown command or a bad number.
        """
        kind, _, rest = text.strip().partition(" ")
        number = float(rest) if rest.strip() else None
        if number is not None and not 0 <= number < math.inf:
            raise ValueError(f"bad number {rest!r}")
        if kind == "rate":
            if number is None:
                raise ValueError("rate needs a number")
            self.fault_rate = number
            return
        self.request(Fault(kind), duration=number)

    def stop(self) -> None:
        self._stop.set()

    # -- pty

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = _MARK_SPEED
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._slave_name = os.ttyname(slave)
        os.close(slave)  # so the master reads EIO until a reader opens the slave
        os.set_blocking(master, False)
        self._master = master
        self._written = 0
        self._reader_since = self._present_since = None
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self._slave_name)
        tmp.replace(self.link)

    def _close(self) -> None:
        if self._master < 0:
            return
        self._settle(gone=True)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        os.close(self._master)
        self._master = -1
        self._reader_since = self._present_since = None

    def _poll(self, now: float) -> bool:
        """Whether a reader has the port open; takes what it wrote (threshold commands)."""
        try:
            data = os.read(self._master, 1024)
        except BlockingIOError:
            return True
        except OSError:
            return False  # EIO: nobody has the slave open
        if data:
            self.module.receive(data, now)
        return True

    def _mark(self, *, check: bool) -> bool:
        """The pty's speed as a marker: we set an odd one, a reader that opens the port sets its
        own (pyserial does, then empties the input). With ``check`` tell whether a reader has
        configured it; without, set the mark again (when the reader has gone)."""
        fd = os.open(self._slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            attrs = termios.tcgetattr(fd)
            if check:
                return bool(attrs[4] != _MARK_SPEED)
            attrs[4] = attrs[5] = _MARK_SPEED
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            return False
        finally:
            os.close(fd)

    def _settle(self, *, gone: bool = False) -> None:
        """Confirm the lines a reader consumed; when it has gone, the rest is lost."""
        if not self._unconfirmed:
            return
        fd = os.open(self._slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
            consumed = self._written - int(struct.unpack("i", buf)[0])
            while self._unconfirmed and self._unconfirmed[0][0] <= consumed:
                self._deliver(self._unconfirmed.pop(0)[1])
            if gone:
                termios.tcflush(fd, termios.TCIFLUSH)
                self._unconfirmed.clear()
                self._written = 0
        finally:
            os.close(fd)

    def _deliver(self, line: Line) -> None:
        self.module.truth.deliver(line)
        if self.transcript_path is not None:
            doc = {
                "at": round(self.clock(), 3),
                "life": line.life,
                "totals": line.totals,
                "corrupt": line.corrupt,
                "data": line.data.decode("ascii", "replace"),
            }
            with self.transcript_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(doc) + "\n")

    def _write(self, line: Line) -> None:
        try:
            n = os.write(self._master, line.data)
        except BlockingIOError:
            return  # the reader does not keep up: the line is lost, as on a real port
        self._written += n
        if n == len(line.data):
            self._unconfirmed.append((self._written, line))

    def _write_truth(self) -> None:
        if self.truth_path is None:
            return
        doc: dict[str, object] = {
            "model": self.module.model.label,
            "module_id": self.module.module_id,
            "thresholds": self.module.thresholds,
            **self.module.truth.as_dict(),
        }
        text = json.dumps(doc, indent=1) + "\n"
        if text == self._truth_text:
            return  # unchanged: spare the disk
        tmp = self.truth_path.with_name(self.truth_path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(self.truth_path)
        self._truth_text = text

    # -- main loop

    def _step(self, now: float, rng: random.Random) -> None:
        module = self.module
        # What the host wrote arrived before anything that happens at this tick.
        reader = self._master >= 0 and self._poll(now)
        printed: list[Line] = []
        while self._requests:
            fault, duration = self._requests.pop(0)
            printed += module.advance(now)
            printed += module.inject(fault, now, duration=duration)
        if self.fault_rate and rng.random() < self.fault_rate * self.tick / module.interval:
            printed += module.advance(now)
            printed += module.inject(rng.choice(self.fault_kinds), now)
        printed += module.advance(now)
        self._queue += [(now, line) for line in printed]
        if module.port_present and self._master < 0:
            self._open()
            reader = False  # a new pty: nobody has it open yet
        elif not module.port_present and self._master >= 0:
            self._close()
            self._queue.clear()  # printed while the port is gone: lost
        if self._master >= 0:
            if reader and self._present_since is None:
                self._present_since = now
            present = self._present_since
            if reader and self._reader_since is None and present is not None:
                # A reader counts once it has configured the port (and so emptied it), or after
                # a while for one that never does (cat).
                if self._mark(check=True) or now - present > 2.0:
                    self.readers += 1
                    self._reader_since = now
            elif not reader and self._present_since is not None:
                self._settle(gone=True)
                self._mark(check=False)
                self._reader_since = self._present_since = None
            if reader and now - (self._reader_since or now) >= SETTLE_IN:
                # The reader has settled in (pyserial empties the input when it opens, after
                # trying its framing): hand over the output.
                self._settle()
                for _, line in self._queue:
                    self._write(line)
                self._queue.clear()
        if self.readers:
            # Before the first reader the output waits (the module was plugged in for it); after
            # that, what nobody reads is lost, as a USB device's output is.
            self._queue = [(t, line) for t, line in self._queue if now - t <= self.stale]
        self._write_truth()

    async def run(self) -> None:
        """Power the module on and run until :meth:`stop`; the link is removed at the end."""
        rng = random.Random(self.module.rng.random())
        self._queue = [(self.clock(), line) for line in self.module.power_on(self.clock())]
        self._open()
        self.ready.set()
        try:
            while not self._stop.is_set():
                self._step(self.clock(), rng)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.tick)
        finally:
            self._close()
            self._write_truth()
            self.ready.clear()
