"""Who may reach the dashboard and how much of the machine it may take: tokens (listed, revoked,
expiring, made only in a session), durable logout, `passwd` revoking, the Host allow-list,
HTTPS (direct and behind a trusted proxy), ISO currencies, and slow, cut-short and too many
clients — the last one also under a real low file-descriptor limit beside a running logger."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from s0pcm.cli import main
from s0pcm.config import load_config
from s0pcm.errors import ConfigError
from s0pcm.store import open_store
from s0pcm.web import new_token
from tests.helpers import free_port
from tests.helpers.logger import S0PCM, emulator_process, stored, wait_for_lines
from tests.helpers.logger import write_config as logger_config
from tests.helpers.web import (
    PASSWORD,
    TZ,
    History,
    WebServer,
    copy_history,
    history_server,
    login,
    write_config,
)

DAY = 86400.0


@pytest.fixture
def history(web_history: History, tmp_path: Path) -> History:
    return copy_history(web_history, tmp_path)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- tokens ---------------------------------------------------------------------------------------


def test_tokens_are_listed_revoked_and_made_only_in_a_session(history: History) -> None:
    with history_server(history) as server, server.client() as client:
        login(client)
        made = client.post("/api/tokens", json={"name": "home assistant", "days": 30})
        assert made.status_code == 201, made.text
        doc = made.json()
        assert doc["name"] == "home assistant"
        assert doc["expires"] == pytest.approx(history.now + 30 * DAY, abs=1)
        assert doc["expired"] is False
        token = doc["token"]
        listed = client.get("/api/tokens").json()
        assert [t["name"] for t in listed] == ["tests", "home assistant"]
        assert {tuple(sorted(t)) for t in listed} == {
            ("created", "expired", "expires", "id", "name")
        }
        assert token not in json.dumps(listed)
        assert listed[1]["id"] == doc["id"]
        # A token reads and writes, but cannot breed tokens nor see or revoke them.
        with server.client(headers=_bearer(token)) as robot:
            assert robot.get("/api/meters").status_code == 200
            for method, path, body in (
                ("POST", "/api/tokens", {"name": "more"}),
                ("GET", "/api/tokens", None),
                ("DELETE", f"/api/tokens/{listed[0]['id']}", None),
            ):
                refused = robot.request(method, path, json=body)
                assert refused.status_code == 403, (method, path)
                assert refused.json()["error"] == "a session is needed"
            # Revoked in the session: the token stops at once.
            assert client.delete(f"/api/tokens/{doc['id']}").status_code == 204
            assert robot.get("/api/meters").status_code == 401
        gone = client.delete(f"/api/tokens/{doc['id']}")
        assert gone.status_code == 404
        assert gone.json()["error"] == "no such token"
        assert [t["name"] for t in client.get("/api/tokens").json()] == ["tests"]
        # The revoked token was a session's to revoke: the other one still works.
        with server.client(headers=_bearer(history.token)) as other:
            assert other.get("/api/meters").status_code == 200


def test_an_expired_token_is_refused_and_listed_as_expired(history: History) -> None:
    with open_store(str(history.database), tz=TZ) as store:
        old = new_token(store, "old", days=1, now=history.now - 2 * DAY)
        fresh = new_token(store, "fresh", days=1, now=history.now - 0.5 * DAY)
    with history_server(history) as server:
        with server.client(headers=_bearer(old)) as client:
            assert client.get("/api/meters").status_code == 401
        with server.client(headers=_bearer(fresh)) as client:
            assert client.get("/api/meters").status_code == 200
        with server.client() as client:
            login(client)
            states = {t["name"]: t["expired"] for t in client.get("/api/tokens").json()}
    assert states == {"tests": False, "old": True, "fresh": False}


def test_cli_makes_lists_and_revokes_tokens_and_passwd_revokes_them_all(
    history: History,
) -> None:
    runner = CliRunner()
    config = str(history.config_path)
    made = runner.invoke(main, ["token", "new", "--config", config, "grafana", "--days", "90"])
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    assert token.startswith("s0pcm_")
    listed = runner.invoke(main, ["token", "list", "--config", config])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 2
    assert " tests " in lines[0]
    assert "expires never" in lines[0]
    assert " grafana " in lines[1]
    assert "expires never" not in lines[1]
    assert token not in listed.output
    nothing = runner.invoke(main, ["token", "revoke", "--config", config, "nope"])
    assert nothing.exit_code == 1
    assert "no token has the id or name 'nope'" in nothing.output
    assert runner.invoke(main, ["token", "revoke", "--config", config]).exit_code == 2
    with history_server(history) as server:
        with server.client(headers=_bearer(token)) as robot:
            assert robot.get("/api/meters").status_code == 200
            revoked = runner.invoke(main, ["token", "revoke", "--config", config, "grafana"])
            assert revoked.exit_code == 0, revoked.output
            assert revoked.output.startswith("revoked ")
            _until(lambda: robot.get("/api/meters").status_code == 401)
        with server.client() as client, server.client(headers=_bearer(history.token)) as other:
            login(client)
            assert client.get("/api/meters").status_code == 200
            assert other.get("/api/meters").status_code == 200
            out = runner.invoke(
                main,
                ["passwd", "--config", config, "--password", "a new one!", "--revoke-tokens"],
            )
            assert out.exit_code == 0, out.output
            assert "every session ended; every token revoked" in out.output
            # Another process changed the store: within the documents' two seconds.
            _until(lambda: other.get("/api/meters").status_code == 401)
            assert client.get("/api/meters").status_code == 401
            assert client.get("/api/session").json()["logged_in"] is False
    assert runner.invoke(main, ["token", "list", "--config", config]).output == "no tokens\n"


def test_a_logout_does_not_undo_a_passwd_made_elsewhere(history: History) -> None:
    """The logout writes the ``_auth`` document back whole; from the documents' two-second
    cache it would restore the old password and tokens that `passwd --revoke-tokens` had just
    replaced in another process."""
    runner = CliRunner()
    with history_server(history) as server, server.client() as client:
        login(client)
        assert client.get("/api/tokens").status_code == 200  # the document is in the cache
        out = runner.invoke(
            main, ["passwd", "--config", str(history.config_path), "--password",
                   "the new one!", "--revoke-tokens"],
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        client.post("/api/logout")  # at once, within the cache's two seconds
        time.sleep(2.5)
        with server.client(headers=_bearer(history.token)) as robot:
            assert robot.get("/api/meters").status_code == 401
        with server.client() as fresh:
            assert fresh.post("/api/login", json={"password": PASSWORD}).status_code == 401
            login(fresh, "the new one!")
            # An id is an id: a token named like another's id is not revoked by it.
            made = fresh.post("/api/tokens", json={"name": "x"}).json()
            fresh.post("/api/tokens", json={"name": made["id"][::-1]})
            assert fresh.delete(f"/api/tokens/{made['id'][::-1]}").status_code == 404
            assert len(fresh.get("/api/tokens").json()) == 2


def _until(check: object, seconds: float = 5.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


# -- sessions -------------------------------------------------------------------------------------


def test_logout_holds_across_restarts_and_other_servers(history: History) -> None:
    with history_server(history) as first, history_server(history) as second:
        with first.client() as client:
            csrf = login(client)
            cookie = client.cookies["s0pcm_session"]
            assert client.post("/api/logout").status_code == 200
        # The same cookie, replayed: refused here and in the other process-alike at once (its
        # documents are at most two seconds old).
        for server in (first, second):
            with server.client(cookies={"s0pcm_session": cookie}) as replay:
                _until(lambda r=replay: r.get("/api/session").json()["logged_in"] is False)
                put = replay.put(
                    "/api/meters/power", json={"name": "x"}, headers={"X-CSRF-Token": csrf}
                )
                assert put.status_code == 401
    with history_server(history) as restarted:
        with restarted.client(cookies={"s0pcm_session": cookie}) as replay:
            assert replay.get("/api/session").json()["logged_in"] is False
        with restarted.client() as client:
            login(client)  # a new login still works
            assert client.get("/api/tokens").status_code == 200


# -- host names, HTTPS, proxies -------------------------------------------------------------------


def test_only_known_host_names_are_answered(web_history: History, tmp_path: Path) -> None:
    history = copy_history(
        web_history,
        tmp_path,
        web='allowed_hosts = ["s0pcm.home.arpa", "*.lan"]\nlisten = "dash.example:8080"',
    )
    machine = socket.gethostname()
    good = [
        "127.0.0.1", "127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080",
        "192.168.1.20", "s0pcm.home.arpa", "s0pcm.home.arpa:8080", "pi.lan", machine,
        f"{machine}.local", "app.localhost", "dash.example:8080",  # the name it listens on
    ]  # fmt: skip
    bad = ["evil.example", "evil.example:8080", "home.arpa", "lan", "s0pcm.home.arpa.evil", ""]
    with history_server(history) as server, server.client() as client:
        for host in good:
            answer = client.get("/api/session", headers={"Host": host})
            assert answer.status_code == 200, host
        for host in bad:
            answer = client.get("/api/session", headers={"Host": host})
            assert answer.status_code == 400, host
            assert answer.json()["error"] == "unknown host"
            assert "allowed_hosts" in answer.json()["detail"]
        page = client.get("/", headers={"Host": "rebind.attacker.example"})
        assert page.status_code == 400


@pytest.mark.parametrize(
    ("lines", "key", "message"),
    [
        ('allowed_hosts = ["ok.lan", "not a name"]', "web.allowed_hosts", "item 2"),
        ("allowed_hosts = 5", "web.allowed_hosts", "array of strings"),
        ('trusted_proxies = ["10.0.0.300"]', "web.trusted_proxies", "not an IP address"),
        ('tls_certificate = "cert.pem"', "web.tls_certificate", "cannot read"),
        ("max_connections = 2", "web.max_connections", "4..10000"),
    ],
)
def test_web_settings_errors_name_the_key_and_line(
    tmp_path: Path, lines: str, key: str, message: str
) -> None:
    path = write_config(tmp_path, web=lines)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert info.value.line == 8  # [logger] 1-4, [web] 6, public_read 7
    assert message in str(info.value)


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_serves_secure_cookies(web_history: History, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    history = copy_history(
        web_history, tmp_path, web=f'tls_certificate = "{cert}"\ntls_key = "{key}"'
    )
    (tmp_path / "half").mkdir()
    only_cert = write_config(tmp_path / "half", web=f'tls_certificate = "{cert}"')
    with pytest.raises(ConfigError, match="needs tls_key too"):
        load_config(only_cert)
    context = ssl.create_default_context(cafile=str(cert))
    with history_server(history) as server:
        url = server.url.replace("http://", "https://")
        with httpx.Client(base_url=url, verify=context, timeout=30) as client:
            answer = client.post("/api/login", json={"password": PASSWORD})
            assert answer.status_code == 200
            cookie = answer.headers["set-cookie"]
            assert "Secure" in cookie
            assert "HttpOnly" in cookie
        plain = httpx.Client(base_url=server.url, timeout=5)
        with plain, pytest.raises(httpx.TransportError):  # no TLS: no answer
            plain.get("/api/session")


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_headers_count_only_from_a_trusted_proxy(
    web_history: History, tmp_path: Path, trusted: bool
) -> None:
    history = copy_history(web_history, tmp_path, web='trusted_proxies = ["127.0.0.9/8"]' * trusted)
    with history_server(history) as server, server.client() as client:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
        answer = client.post("/api/login", json={"password": PASSWORD}, headers=forwarded)
        assert answer.status_code == 200
        assert ("Secure" in answer.headers["set-cookie"]) is trusted
        # Failed logins from "many addresses": behind a trusted proxy they are many clients;
        # otherwise one client that cannot dodge the limit with a header.
        codes = [
            client.post(
                "/api/login", json={"password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(7)
        ]  # fmt: skip
    assert codes == ([401] * 7 if trusted else [401] * 5 + [429] * 2)


def test_currencies_are_iso_4217(history: History) -> None:
    with history_server(history) as server, server.client() as client:
        login(client)
        for currency, status in (("€", 400), ("Euro", 400), ("XYZ", 400), ("gbp", 200)):
            answer = client.put("/api/tariffs", json={"currency": currency, "tariffs": []})
            assert answer.status_code == status, currency
            if status == 400:
                assert answer.json()["error"] == "bad currency"
        assert client.get("/api/tariffs").json()["currency"] == "GBP"


# -- slow, cut-short and too many clients ---------------------------------------------------------


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deadlines of a second, so the test needs no ten."""
    monkeypatch.setattr("s0pcm.web.server.HEAD_TIMEOUT", 1.0)
    monkeypatch.setattr("s0pcm.web.params.BODY_TIMEOUT", 1.0)


def _connect(server: WebServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before it closed ``sock`` (fails if it stays open)."""
    sock.settimeout(seconds)
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


@pytest.mark.usefixtures("quick")
def test_slow_and_vanishing_clients_are_cut_off_quietly(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with history_server(history) as server:
        idle = _connect(server)
        started = time.monotonic()
        assert _closed_within(idle, 5) == b""
        assert time.monotonic() - started < 4
        dribbler = _connect(server)
        started = time.monotonic()
        cut_off = False
        for byte in b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 60:
            try:  # reset or broken pipe once the server has closed it
                dribbler.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut_off = True
                break
            time.sleep(0.1)
        assert cut_off, "a head sent over 10 s was still being read"
        assert time.monotonic() - started < 4
        slow_body = _connect(server)
        slow_body.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 50\r\n\r\n{"pass'
        )
        slow_body.settimeout(5)
        answer = slow_body.recv(4096)
        while b"\r\n\r\n" in answer and b"body too slow" not in answer:
            more = slow_body.recv(4096)  # the head and the body may come in two segments
            if not more:
                break
            answer += more
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:40]
        assert b"body too slow" in answer
        for _ in range(20):  # bodies cut short, unthrottled: not one traceback
            cut = _connect(server)
            cut.sendall(
                b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"password": "x'
            )
            cut.close()
        time.sleep(0.5)
        with server.client() as client:
            assert client.get("/api/session").status_code == 200
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == []


def test_connections_beyond_the_cap_are_turned_away_at_once(
    web_history: History, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = copy_history(web_history, tmp_path, web="max_connections = 4")
    with history_server(history) as server:
        held = [_connect(server) for _ in range(4)]
        time.sleep(0.2)
        extra = [_connect(server) for _ in range(6)]
        for sock in extra:
            answer = _closed_within(sock, 3)
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"too many connections" in answer
        for sock in held + extra:
            sock.close()
        time.sleep(0.2)
        with server.client() as client:
            assert client.get("/api/session").status_code == 200
    refused = [r for r in caplog.records if "max_connections" in r.getMessage()]
    assert len(refused) == 1  # one line, not one per connection


@pytest.fixture
def fd_headroom() -> Iterator[None]:
    """The test opens some 250 sockets itself."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
@pytest.mark.usefixtures("fd_headroom")
def test_a_flood_under_a_low_fd_limit_leaves_the_logger_its_port(tmp_path: Path) -> None:
    """230 idle connections to a logger limited to 200 file descriptors (prlimit): the
    dashboard stays up, the logger reopens its port after a drop and counts every pulse, and the
    log stays a few lines."""
    web = free_port()
    config = logger_config(tmp_path, commit_interval=0.3, listen=f"127.0.0.1:{web}")
    log = tmp_path / "run.log"
    args = ("--interval", "0.1", "--rate", "1=10", "--rate", "3=4")
    with emulator_process(tmp_path, *args) as truth:
        with log.open("wb") as out:
            run = subprocess.Popen(
                ["prlimit", "--nofile=200:200", *S0PCM, "run", "--config", str(config)],
                stderr=out, stdout=out,
            )  # fmt: skip
        try:
            wait_for_lines(truth, 10)
            flood: list[socket.socket] = []
            for _ in range(230):
                try:
                    flood.append(socket.create_connection(("127.0.0.1", web), timeout=5))
                except OSError:
                    break
            seen = json.loads(truth.read_text())["lines"]
            (tmp_path / "control").write_text("drop 1\n")  # the port vanishes, comes back
            time.sleep(2.0)
            wait_for_lines(truth, seen + 30)  # read again: the port was reopened
            with httpx.Client(base_url=f"http://127.0.0.1:{web}", timeout=10) as client:
                deadline = time.monotonic() + 20  # the flood is cut off by the head deadline
                while True:
                    try:
                        if client.get("/api/session").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "the dashboard never answered"
                    time.sleep(0.2)
            for sock in flood:
                sock.close()
            (tmp_path / "control").write_text("rate 0\n")
            time.sleep(1.5)
        finally:
            run.terminate()
            assert run.wait(timeout=20) == 0
    reported = [r["reported"] for r in json.loads(truth.read_text())["registers"]]
    assert stored(config) == reported
    assert reported[0] > 0
    text = log.read_text()
    assert "Traceback" not in text
    assert "Too many open files" not in text
    assert len(text) < 5000, text[-2000:]
    assert len(flood) == 230
    assert os.path.exists(tmp_path / "s0pcm.sqlite")
