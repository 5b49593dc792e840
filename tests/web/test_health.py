"""``GET /healthz`` on both services: 200 while the database answers, 503 when not."""

import secrets
import socket
import sqlite3
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from veil.conference import ConferenceSettings
from veil.conference.app import create_app as create_conference
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings
from veil.keyserver.app import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE
from veil.web.database import create_db_engine
from veil.web.errors import install_handlers
from veil.web.health import add_health_route

JWKS = DevIdentityProvider().jwks()


def test_the_key_service_is_healthy_on_its_database(tmp_path: Path) -> None:
    settings = KeyServerSettings(
        database_url=f"sqlite:///{tmp_path / 'keys.sqlite3'}",
        service_secret=secrets.token_bytes(32),
        issuer="i",
        audience="veil-keyserver",
        jwks=JWKS,
    )
    with TestClient(create_keyserver(settings)) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_conference_service_is_healthy_on_its_database(tmp_path: Path) -> None:
    settings = ConferenceSettings(
        database_url=f"sqlite:///{tmp_path / 'conference.sqlite3'}",
        keyserver_url="http://127.0.0.1:1",
        issuer="i",
        audience=CONFERENCE_AUDIENCE,
        jwks=JWKS,
    )
    with TestClient(create_conference(settings)) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_a_write_lock_held_elsewhere_does_not_fail_the_probe(tmp_path: Path) -> None:
    """SQLite writers queue on BEGIN IMMEDIATE; a probe must not queue with them."""
    database = tmp_path / "busy.sqlite3"
    app = FastAPI()
    install_handlers(app)
    add_health_route(app, create_db_engine(f"sqlite:///{database}"))
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200  # the database exists, in WAL mode
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert client.get("/healthz").status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_database_that_never_answers_is_503_not_a_hung_probe() -> None:
    # A listening socket nobody accepts from: the TCP handshake completes, then silence.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        app = FastAPI()
        install_handlers(app)
        engine = create_db_engine(f"postgresql://veil@127.0.0.1:{port}/none?connect_timeout=30")
        connects = 0
        connect = engine.raw_connection

        def counted():  # type: ignore[no-untyped-def]
            nonlocal connects
            connects += 1
            return connect()

        engine.raw_connection = counted  # type: ignore[method-assign]
        add_health_route(app, engine)
        with TestClient(app) as client:
            for _ in range(3):
                response = client.get("/healthz")
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "unavailable"
        assert connects == 1  # later probes joined the stuck one instead of adding threads


def test_a_database_that_does_not_answer_is_503() -> None:
    app = FastAPI()
    install_handlers(app)
    # Nothing listens on port 1: the connection is refused at once.
    add_health_route(app, create_db_engine("postgresql://veil:hunter2@127.0.0.1:1/none"))
    response = TestClient(app).get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert "hunter2" not in response.text


def test_a_postgresql_password_survives_the_driver_switch() -> None:
    # SQLAlchemy's str(URL) masks passwords: the engine must get the real one.
    engine = create_db_engine("postgresql://veil:hunter2@127.0.0.1:1/none")
    assert (engine.url.drivername, engine.url.password) == ("postgresql+psycopg", "hunter2")
