"""Request ids, access lines, ``/metrics`` and ``/readyz`` on both services."""

import asyncio
import io
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.concurrency import run_in_threadpool

from veil.conference import ConferenceSettings
from veil.conference.app import create_app as create_conference
from veil.conference.fanout import MemoryFanout
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings
from veil.keyserver.app import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE, b64encode
from veil.web.errors import install_handlers
from veil.web.logs import REQUEST_ID, JsonFormatter
from veil.web.metrics import HttpMetrics, add_metrics_route, new_registry
from veil.web.observe import Observe

JWKS = DevIdentityProvider().jwks()
GENERATED = re.compile(r"[0-9a-f]{32}")


def keyserver_app(tmp_path: Path, **settings: Any) -> FastAPI:
    return create_keyserver(
        KeyServerSettings(
            database_url=f"sqlite:///{tmp_path / 'keys.sqlite3'}",
            service_secret=secrets.token_bytes(32),
            issuer="i",
            audience=KEYSERVER_AUDIENCE,
            jwks=JWKS,
            **settings,
        )
    )


def conference_app(
    tmp_path: Path, keyserver_url: str = "http://127.0.0.1:1", **options: Any
) -> FastAPI:
    settings = ConferenceSettings(
        database_url=f"sqlite:///{tmp_path / 'conference.sqlite3'}",
        keyserver_url=keyserver_url,
        issuer="i",
        audience=CONFERENCE_AUDIENCE,
        jwks=JWKS,
        fanout_url=options.pop("fanout_url", None),
    )
    return create_conference(settings, **options)


class Lines:
    """Read the captured lines while the test runs."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def __call__(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def logged() -> Iterator[Lines]:
    captured = Lines()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("veil")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def small_app() -> FastAPI:
    """An app whose route logs on the event loop and in a worker thread."""
    app = FastAPI()
    install_handlers(app)
    log = logging.getLogger("veil.test")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        log.info("on the loop")
        await run_in_threadpool(log.info, "in a thread")
        await asyncio.create_task(asyncio.sleep(0))
        return {"thing": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    registry = new_registry()
    add_metrics_route(app, registry)
    app.add_middleware(Observe, service="test", metrics=HttpMetrics(registry))
    return app


# Request ids


def test_a_well_formed_request_id_is_kept_echoed_and_on_every_line(logged: Lines) -> None:
    client = TestClient(small_app())
    for given in (
        "req-1",
        "0f8e2c1a-5b7d-4e6f-9a0b-1c2d3e4f5a6b",
        "Root=1-5e1b4151:x/y+z@q_",
        "a" * 64,
    ):
        response = client.get("/things/t", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given
        request_lines = logged()[-3:]
        assert [line["message"] for line in request_lines] == [
            "on the loop",
            "in a thread",
            "GET /things/t 200",
        ]
        assert {line["request_id"] for line in request_lines} == {given}


@pytest.mark.parametrize(
    "given", [b"", b"a" * 65, b"a b", b"a;b", b"<script>", "\u00e9".encode(), b"a\tb"]
)
def test_a_malformed_request_id_is_replaced(logged: Lines, given: bytes) -> None:
    response = TestClient(small_app()).get("/things/t", headers={"X-Request-ID": given})
    generated = response.headers["x-request-id"]
    assert GENERATED.fullmatch(generated)
    assert {line["request_id"] for line in logged()} == {generated}


def test_each_request_gets_its_own_id_and_none_outlives_it(logged: Lines) -> None:
    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=small_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ids = [(await client.get("/things/t")).headers["x-request-id"] for _ in range(3)]
        assert REQUEST_ID.get() is None  # the requests ran in this task
        return ids

    ids = asyncio.run(run())
    assert len(set(ids)) == 3 and all(GENERATED.fullmatch(i) for i in ids)


def test_a_failing_request_is_logged_with_its_id_and_counted_as_500(logged: Lines) -> None:
    client = TestClient(small_app(), raise_server_exceptions=False)
    response = client.get("/boom", headers={"X-Request-ID": "failing-1"})
    assert response.status_code == 500
    (line,) = [line for line in logged() if line["logger"] == "veil.access"]
    assert (line["level"], line["status"], line["request_id"]) == ("warning", 500, "failing-1")
    metrics = client.get("/metrics").text
    assert 'veil_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in metrics


def test_the_conference_service_echoes_the_id_on_websockets(tmp_path: Path, logged: Lines) -> None:
    with TestClient(conference_app(tmp_path)) as client:
        path = "/v1/rooms/room-1/board"
        with client.websocket_connect(path, headers={"X-Request-ID": "ws-1"}) as websocket:
            assert (b"x-request-id", b"ws-1") in (websocket.extra_headers or [])
            assert websocket.receive_json()["type"] == "challenge"
            websocket.send_json({"type": "hello"})
            assert websocket.receive_json()["code"] == "bad_hello"
    (line,) = [line for line in logged() if line.get("method") == "WEBSOCKET"]
    assert line["request_id"] == "ws-1"
    assert (line["route"], line["close_code"], line["close_reason"]) == (
        "/v1/rooms/{room_id}/board",
        4401,
        "bad_hello",
    )


# Access lines


def test_access_lines_say_what_was_answered_and_not_the_query(
    tmp_path: Path, logged: Lines
) -> None:
    with TestClient(keyserver_app(tmp_path)) as client:
        client.delete("/v1/groups/g-1/members/bob?proof=c2VjcmV0LXByb29m&timestamp=1")
        client.get("/healthz")
    access = [line for line in logged() if line["logger"] == "veil.access"]
    removal, probe = access
    assert removal["level"] == "info"
    assert removal["route"] == "/v1/groups/{group_id}/members/{user_id}"
    assert removal["path"] == "/v1/groups/g-1/members/bob"
    assert (removal["method"], removal["status"], removal["service"]) == (
        "DELETE",
        401,
        "keyserver",
    )
    assert isinstance(removal["duration_ms"], float)
    assert "c2VjcmV0LXByb29m" not in json.dumps(access)
    assert (probe["level"], probe["route"]) == ("debug", "/healthz")  # probes are debug


# /metrics


@pytest.fixture(params=["keyserver", "conference"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    app = keyserver_app(tmp_path) if request.param == "keyserver" else conference_app(tmp_path)
    with TestClient(app) as client:
        yield client


def test_metrics_are_served_in_the_prometheus_format_outside_the_api(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE veil_http_requests_total counter" in response.text
    assert "process_cpu_seconds_total" in response.text
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    paths = client.get("/openapi.json").json()["paths"]
    assert "/metrics" not in paths
    assert {"/healthz", "/readyz"} <= set(paths)


def test_requests_are_counted_by_route_template_never_by_path(tmp_path: Path) -> None:
    with TestClient(keyserver_app(tmp_path)) as client:
        for n in range(20):
            client.get(f"/v1/groups/group-{n}")
            client.get(f"/nowhere/{n}")
        client.request("PROPFIND", "/healthz")
        text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("veil_http_requests")]
    assert not [line for line in series if "group-" in line or "/nowhere" in line]
    route = 'method="GET",route="/v1/groups/{group_id}"'
    assert f'veil_http_requests_total{{{route},status="401"}} 20.0' in text
    assert f"veil_http_request_duration_seconds_count{{{route}}} 20.0" in text
    assert f'veil_http_request_duration_seconds_bucket{{le="0.0005",{route}}}' in text
    assert 'veil_http_requests_total{method="GET",route="unrouted",status="404"} 20.0' in text
    assert 'veil_http_requests_total{method="OTHER",route="/healthz",status="405"} 1.0' in text


def test_a_body_refused_before_routing_is_counted_as_unrouted(tmp_path: Path) -> None:
    with TestClient(keyserver_app(tmp_path, max_body_bytes=1024)) as client:
        response = client.post("/v1/transform", content=b"{" + b" " * 2000 + b"}")
        assert response.status_code == 413
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
        text = client.get("/metrics").text
    assert 'veil_http_requests_total{method="POST",route="unrouted",status="413"} 1.0' in text


def test_the_key_service_reports_its_transformer(tmp_path: Path) -> None:
    with TestClient(keyserver_app(tmp_path)) as client:
        text = client.get("/metrics").text
    for name in (
        'veil_transforms_total{outcome="ok"} 0.0',
        "veil_transform_workers 0.0",  # transforms run in a thread here
        "veil_transform_workers_busy 0.0",
        "veil_transform_queue_depth 0.0",
    ):
        assert name in text


def test_the_conference_service_reports_its_rooms(tmp_path: Path) -> None:
    with TestClient(conference_app(tmp_path)) as client:
        text = client.get("/metrics").text
    for name in (
        "# TYPE veil_board_posts_total counter",  # (samples by result, from the first post)
        "veil_relay_frames_received_total 0.0",
        "veil_relay_frames_forwarded_total 0.0",
        "veil_relay_frames_skipped_total 0.0",
        'veil_relay_frames_dropped_total{reason="rate_limited"} 0.0',
        'veil_conference_connections{channel="media"} 0.0',
        "veil_conference_connected_devices 0.0",
        "veil_conference_rooms 0.0",
    ):
        assert name in text


# /readyz


def test_the_key_service_is_ready_with_its_database_and_transformer(tmp_path: Path) -> None:
    with TestClient(keyserver_app(tmp_path)) as client:
        response = client.get("/readyz")
        assert (response.status_code, response.json()) == (
            200,
            {"status": "ready", "checks": {"database": "ok", "transform_workers": "in a thread"}},
        )
        client.app.state.service.transformer.close()  # type: ignore[attr-defined]
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "not_ready",
        "message": "transform_workers: the transform worker pool is closed",
    }


def test_the_key_service_counts_its_worker_processes(tmp_path: Path) -> None:
    with TestClient(keyserver_app(tmp_path, transform_workers=1)) as client:
        assert client.get("/readyz").json()["checks"]["transform_workers"] == (
            "1 of 1 worker processes running"
        )
        text = client.get("/metrics").text
        assert "veil_transform_workers 1.0" in text
        assert "veil_transform_workers_alive 1.0" in text


def test_the_conference_service_is_ready_when_the_key_service_answers(tmp_path: Path) -> None:
    keys = keyserver_app(tmp_path)
    app = conference_app(tmp_path)
    with TestClient(keys), TestClient(app) as client:
        service = app.state.service
        service.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=keys), base_url="http://keys.invalid"
        )
        response = client.get("/readyz")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "fanout": "memory", "keyserver": "ok"}},
    )


class BrokenFanout(MemoryFanout):
    async def ping(self) -> str:
        raise ConnectionError("redis://:hunter2@redis.internal:6379 refused")


def test_the_conference_service_names_what_is_not_ready(tmp_path: Path) -> None:
    with TestClient(conference_app(tmp_path, fanout=BrokenFanout())) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "not_ready",
        "message": "fanout: the fan-out backend does not answer (ConnectionError); "
        "keyserver: the key service does not answer (ConnectError)",
    }
    assert "hunter2" not in response.text


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(("scheme", "port"), [("redis", 6379), ("nats", 4222)])
def test_readiness_pings_the_fanout_backend(tmp_path: Path, scheme: str, port: int) -> None:
    if not _answers(port):
        pytest.skip(f"{scheme} is not running on 127.0.0.1:{port}")
    with TestClient(conference_app(tmp_path, fanout_url=f"{scheme}://127.0.0.1:{port}")) as client:
        checks = client.get("/readyz").json()
    assert "fanout" not in checks["error"]["message"]  # only the key service is missing
    with TestClient(
        conference_app(tmp_path / "down", fanout_url=f"{scheme}://127.0.0.1:1")
    ) as client:
        message = client.get("/readyz").json()["error"]["message"]
    assert message.startswith("fanout: ")  # refused, or no answer within PROBE_SECONDS


# Logging configuration


def test_veil_serve_refuses_an_unknown_log_level() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "veil.cli", "serve", "--idp"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VEIL_LOG_LEVEL": "loud"},
        check=False,
    )
    assert run.returncode == 2
    assert "VEIL_LOG_LEVEL must be one of debug, info, warning, error" in run.stderr


def test_the_printed_configuration_logs_json_for_uvicorn(tmp_path: Path) -> None:
    config = tmp_path / "log-config.json"
    printed = subprocess.run(
        [sys.executable, "-m", "veil.web.logs", "debug"], capture_output=True, text=True, check=True
    )
    config.write_text(printed.stdout)
    script = (
        "import json, logging, logging.config, sys\n"
        f"logging.config.dictConfig(json.load(open({str(config)!r})))\n"
        "logging.getLogger('veil.x').debug('kept', extra={'room': 'r'})\n"
        "logging.getLogger('sqlalchemy.engine.Engine').info('INSERT (secret params)')\n"
        "logging.getLogger('uvicorn.error').debug('< TEXT {\"token\": ...}')\n"
        "logging.getLogger('uvicorn.error').info('started')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("veil.x", "kept"),
        ("uvicorn.error", "started"),
    ]
    assert lines[0]["room"] == "r" and lines[0]["level"] == "debug"


def test_the_formatter_writes_one_object_and_redacts_what_looks_secret() -> None:
    jwt = DevIdentityProvider().issue("alice", aud=KEYSERVER_AUDIENCE)
    key = b64encode(secrets.token_bytes(32))
    while not (re.search("[0-9]", key) and re.search("[A-Z]", key) and re.search("[a-z]", key)):
        key = b64encode(secrets.token_bytes(32))
    kept = [
        "a" * 64,  # a hex digest: not random-looking base64url
        "test_every_operation_documents_the_error_body_it_sends",
        "meeting-5f0c2a9e1b7d4c3a8e6f0b1d",
        "Root=1-5e1b4151-5ac6c58f1c1b2c2d3e4f5a6b",
    ]
    logger = logging.getLogger("veil.test.formatter")
    record = logger.makeRecord(
        logger.name,
        logging.ERROR,
        __file__,
        1,
        "token %s key %s kept %s",
        (jwt, key, " ".join(kept)),
        None,
        extra={"room": "r-1", "blob": key, "count": 3},
    )
    try:
        raise ValueError(f"input_value={key!r}")
    except ValueError:
        record.exc_info = sys.exc_info()
    token = REQUEST_ID.set("req-9")
    try:
        line = JsonFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == f"token [redacted] key [redacted] kept {' '.join(kept)}"
    assert (entry["level"], entry["logger"], entry["request_id"]) == (
        "error",
        "veil.test.formatter",
        "req-9",
    )
    assert (entry["room"], entry["blob"], entry["count"]) == ("r-1", "[redacted]", 3)
    assert "input_value='[redacted]'" in entry["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert jwt not in line and key not in line
