"""Every fixture more than one test module uses, declared once, here; the work behind them is in
``tests/helpers/``, which holds all the test modules share (no test module imports another).
A fixture only one module uses stays in that module.

* ``samples_dir``: the real field captures.
* ``pg_cluster`` (session), ``pg_url``: a throwaway PostgreSQL cluster, a database of its own per
  test (:mod:`tests.helpers.pg`; without PostgreSQL the tests that need it fail, saying what to
  install).
* ``backend`` (SQLite and PostgreSQL, one test each), ``store``: the history store on both
  backends (:mod:`tests.helpers.store`).
* ``web_history`` (module): a store of known history (:func:`tests.helpers.web.build_history`);
  ``history_store`` (module): that store, read-only, to check answers against.
* ``web_server`` (module): the app without a logger over ``web_history``'s store, its clock fixed.
  Do not write through it in tests that share it (use ``fresh_server``).
* ``fresh_server``: the same over a private copy of the store, for tests that write, log in
  wrongly (the login rate limit is per client address) or fuzz.
* ``live_server``: the emulator, the real logger and the app with it
  (:func:`tests.helpers.web.live_server`).
* ``mqtt_broker``: a real Mosquitto on free ports, with passwords and TLS listeners
  (:mod:`tests.helpers.mqtt`).
* ``web_client``: an ``httpx.Client`` on ``web_server``, not logged in; ``web_login``: one logged
  in, sending the session cookie and the ``X-CSRF-Token`` header by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.register_assert_rewrite("tests.helpers")

from s0pcm.store import Store  # noqa: E402
from tests.helpers import SAMPLES_DIR  # noqa: E402
from tests.helpers import mqtt as _mqtt  # noqa: E402
from tests.helpers import pg as _pg  # noqa: E402
from tests.helpers import web as _web  # noqa: E402
from tests.helpers.store import Backend  # noqa: E402


@pytest.fixture
def samples_dir() -> Path:
    """Directory of the field samples (raw bytes as the module prints them)."""
    return SAMPLES_DIR


# -- stores ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[_pg.Cluster]:
    with _pg.cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: _pg.Cluster) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    with _pg.database(pg_cluster) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "history.db"))
    return Backend("postgresql", request.getfixturevalue("pg_url"))


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    with backend.open() as opened:
        yield opened


# -- web servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_history(tmp_path_factory: pytest.TempPathFactory) -> _web.History:
    return _web.build_history(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def history_store(web_history: _web.History) -> Iterator[Store]:
    with web_history.open() as opened:
        yield opened


@pytest.fixture(scope="module")
def web_server(web_history: _web.History) -> Iterator[_web.WebServer]:
    with _web.history_server(web_history) as server:
        yield server


@pytest.fixture
def fresh_server(web_history: _web.History, tmp_path: Path) -> Iterator[_web.WebServer]:
    with _web.history_server(_web.copy_history(web_history, tmp_path)) as server:
        yield server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[_web.WebServer]:
    with _web.live_server(tmp_path) as server:
        yield server


@pytest.fixture
def web_client(web_server: _web.WebServer) -> Iterator[httpx.Client]:
    with web_server.client() as client:
        yield client


@pytest.fixture
def web_login(web_server: _web.WebServer) -> Iterator[httpx.Client]:
    with web_server.client() as client:
        _web.login(client)
        yield client


# -- MQTT -----------------------------------------------------------------------------------------


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[_mqtt.Broker]:
    """A real Mosquitto of this test's own (:mod:`tests.helpers.mqtt`)."""
    with _mqtt.broker(tmp_path / "mosquitto") as broker:
        yield broker
