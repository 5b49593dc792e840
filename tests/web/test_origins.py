"""Browsers: CORS for the origins a deployment allows, and WebSockets refused (403 at
the handshake) from any other origin; clients that are not browsers send no Origin and
are not affected."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from veil.conference import ConferenceSettings
from veil.conference import create_app as create_conference
from veil.idp import DevIdentityProvider
from veil.idp import create_app as create_idp
from veil.keyserver import KeyServerSettings
from veil.keyserver import create_app as create_keyserver
from veil.web.origins import parse_origins

PAGE = "https://meet.example"
OTHER = "https://evil.example"


def _keyserver(tmp_path: Any, idp: DevIdentityProvider) -> TestClient:
    settings = KeyServerSettings(
        database_url=f"sqlite:///{tmp_path / 'k.sqlite3'}", service_secret=bytes(32),
        audience=idp.audience, issuer=idp.issuer, jwks=idp.jwks(), cors_origins=(PAGE,),
    )  # fmt: skip
    return TestClient(create_keyserver(settings))


def test_a_page_on_an_allowed_origin_may_send_signed_requests(tmp_path: Any) -> None:
    with _keyserver(tmp_path, DevIdentityProvider()) as client:
        preflight = client.options(
            "/v1/transform",
            headers={
                "origin": PAGE,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,veil-device,veil-timestamp,"
                "veil-nonce,veil-signature,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == PAGE
        allowed = preflight.headers["access-control-allow-headers"].lower()
        for header in ("veil-device", "veil-signature", "authorization", "content-type"):
            assert header in allowed
        answer = client.get("/healthz", headers={"origin": PAGE})
        assert answer.headers["access-control-allow-origin"] == PAGE
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


def test_a_page_on_another_origin_gets_no_cors(tmp_path: Any) -> None:
    with _keyserver(tmp_path, DevIdentityProvider()) as client:
        preflight = client.options(
            "/v1/transform",
            headers={"origin": OTHER, "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        assert (
            "access-control-allow-origin"
            not in client.get("/healthz", headers={"origin": OTHER}).headers
        )


def test_websockets_from_another_origin_are_refused_at_the_handshake(tmp_path: Any) -> None:
    idp = DevIdentityProvider(audience="veil-conference")
    settings = ConferenceSettings(
        database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", keyserver_url="http://127.0.0.1:9",
        audience="veil-conference", issuer=idp.issuer, jwks=idp.jwks(), cors_origins=(PAGE,),
    )  # fmt: skip
    with TestClient(create_conference(settings)) as client:
        for channel in ("board", "media"):
            url = f"/v1/rooms/r1/{channel}"
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect(url, headers={"origin": OTHER}),
            ):
                pass
            assert refused.value.code == 1008
            # The allowed origin, and a client that sends none, get the challenge.
            for headers in ({"origin": PAGE}, {}):
                with client.websocket_connect(f"/v1/rooms/r1/{channel}", headers=headers) as ws:
                    assert ws.receive_json()["type"] == "challenge"


def test_the_dev_idp_answers_its_page() -> None:
    with TestClient(create_idp(DevIdentityProvider(), cors_origins=(PAGE,))) as client:
        answer = client.post("/token", json={"sub": "alice"}, headers={"origin": PAGE})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == PAGE


@pytest.mark.parametrize(
    "value", ["http://x/path", "ftp://x", "HTTPS://X", "https://x?q", "https://u@x", "x"]
)
def test_what_is_not_an_origin_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        parse_origins(value)
    assert parse_origins(" https://a.example , http://127.0.0.1:8471") == (
        "https://a.example",
        "http://127.0.0.1:8471",
    )
