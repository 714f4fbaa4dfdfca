"""A real Mosquitto for the tests, from a configuration file of its own, on free ports of
127.0.0.1: no anonymous clients (a password file made by ``mosquitto_passwd``), a plain listener,
a TLS listener with a test CA (``trustme``) whose certificate names 127.0.0.1 and localhost, and
a second TLS listener whose certificate names only ``broker.example`` (for host-name checks).

Persistence is on, saved every second: a subscriber's session (``clean_session`` false) outlives
a broker killed with SIGKILL, so a test can kill it mid-stream and still see every message that
was sent after it came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiomqtt
import trustme

from . import free_port

__all__ = ["MOSQUITTO", "Broker", "Received", "broker", "subscriber"]

MOSQUITTO: Final = "/usr/sbin/mosquitto"
USER: Final = "s0pcm"
PASSWORD: Final = "correct horse battery"  # noqa: S105 - the test broker's


@dataclass
class Broker:
    """A Mosquitto process and what a client needs to reach it."""

    dir: Path
    port: int
    tls_port: int
    #: A TLS listener whose certificate names only ``broker.example``.
    wrong_name_port: int
    #: The CA the broker's certificates are signed by (PEM file).
    ca_file: Path
    #: Another CA, which signed none of them.
    other_ca_file: Path
    host: str = "127.0.0.1"
    username: str = USER
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf(self) -> Path:
        return self.dir / "mosquitto.conf"

    @property
    def log(self) -> Path:
        return self.dir / "mosquitto.log"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        for port in (self.port, self.tls_port, self.wrong_name_port):
            while True:
                assert self.process.poll() is None, self.log.read_text()[-2000:]
                with contextlib.suppress(OSError), socket.create_connection((self.host, port)):
                    break
                assert time.monotonic() < deadline, "mosquitto did not listen"
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to anyone, nothing saved since the last autosave."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def toml(self, **overrides: object) -> str:
        """An ``[mqtt]`` table for this broker (plain listener), with keys replaced or added."""
        keys: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "client_id": "s0pcm-test",
        }
        keys.update(overrides)
        lines = ["[mqtt]"]
        for key, value in keys.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {str(value).lower()}")
            elif isinstance(value, int):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f'{key} = "{value}"')
        return "\n".join(lines) + "\n"


def _write(broker: Broker, ca: trustme.CA) -> None:
    d = broker.dir
    passwd = d / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), broker.username, broker.password],
        check=True,
        capture_output=True,
    )
    ca.cert_pem.write_to_path(str(broker.ca_file))
    trustme.CA().cert_pem.write_to_path(str(broker.other_ca_file))
    good = ca.issue_cert("127.0.0.1", "localhost")
    wrong = ca.issue_cert("broker.example")
    for name, leaf in (("server", good), ("wrong", wrong)):
        leaf.private_key_pem.write_to_path(str(d / f"{name}.key"))
        leaf.cert_chain_pems[0].write_to_path(str(d / f"{name}.pem"))
    tls = "\n".join(
        f"listener {port} 127.0.0.1\ncafile {broker.ca_file}\ncertfile {d / name}.pem\n"
        f"keyfile {d / name}.key\n"
        for port, name in ((broker.tls_port, "server"), (broker.wrong_name_port, "wrong"))
    )
    broker.conf.write_text(
        f"""# The tests' broker: written by tests/helpers/mqtt.py
# Started by root, it would become user "mosquitto", who cannot read the test's directory.
user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
password_file {passwd}
persistence true
persistence_location {d}/
autosave_interval 1
log_dest stdout
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
listener {broker.port} 127.0.0.1
{tls}"""
    )


@contextlib.contextmanager
def broker(directory: Path) -> Iterator[Broker]:
    """A started broker in ``directory`` (its files: configuration, passwords, certificates,
    log, persistence), stopped after."""
    assert shutil.which(MOSQUITTO) or Path(MOSQUITTO).exists(), "install mosquitto"
    directory.mkdir(parents=True, exist_ok=True)
    b = Broker(
        dir=directory,
        port=free_port(),
        tls_port=free_port(),
        wrong_name_port=free_port(),
        ca_file=directory / "ca.pem",
        other_ca_file=directory / "other-ca.pem",
    )
    _write(b, trustme.CA())
    b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class Received:
    """What a subscriber got, in arrival order: (topic, payload, retained, QoS)."""

    messages: list[tuple[str, bytes, bool, int]] = field(default_factory=list)
    #: Set each time the subscription is (re)made.
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def payloads(self, topic: str) -> list[bytes]:
        return [m[1] for m in self.messages if m[0] == topic]

    async def wait(self, check: Callable[[], bool], seconds: float = 20) -> None:
        """Until ``check()`` is true."""
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, f"not received in {seconds} s: {self.messages[-5:]}"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def subscriber(
    b: Broker, *topics: str, identifier: str = "test-subscriber", persistent: bool = False
) -> AsyncIterator[Received]:
    """A client subscribed to ``topics`` at QoS 1 that reconnects (every 50 ms) when the broker
    goes away; ``persistent``: its session (and the messages queued for it) is kept by the
    broker between connections."""
    received = Received()

    async def run() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    b.host,
                    b.port,
                    username=b.username,
                    password=b.password,
                    identifier=identifier,
                    clean_session=not persistent,
                ) as client:
                    for topic in topics:
                        await client.subscribe(topic, qos=1)
                    received.subscribed.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        received.messages.append((m.topic.value, payload, m.retain, m.qos))
            except aiomqtt.MqttError:
                received.subscribed.clear()
                await asyncio.sleep(0.05)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(received.subscribed.wait(), 10)
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
