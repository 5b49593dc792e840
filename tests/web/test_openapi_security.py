"""Both services' OpenAPI documents say how each call authenticates: a bearer JWT, a
device-signed request (the four ``Veil-*`` headers together), both, or nothing. What
they say is checked against the running apps: a call made without credentials asks
for exactly the ones its operation declares."""

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from veil.conference import ConferenceSettings
from veil.conference.app import create_app as create_conference
from veil.crypto.signing import SigningKey
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings
from veil.keyserver.app import create_app as create_keyserver
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    DEVICE_HEADER,
    KEYSERVER_AUDIENCE,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    device_id_for,
    sign_request,
)
from veil.web.openapi import SIGNED_REQUEST, bearer_jwt, document_security

SIGNATURE_SCHEMES = {"veilDevice", "veilTimestamp", "veilNonce", "veilSignature"}
ASKS_FOR = {"missing_token": "jwt", "unsigned_request": "signature"}
"""The refusal of a call that lacks a credential -> the credential it lacks."""


class Service:
    def __init__(self, client: TestClient, audience: str, token: str) -> None:
        self.client, self.audience, self.token = client, audience, token
        self.schema: dict[str, Any] = client.get("/openapi.json").json()

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for path, operations in self.schema["paths"].items():
            for method, operation in operations.items():
                yield method.upper(), path, operation


@contextmanager
def running(kind: str, tmp_path: Path) -> Iterator[Service]:
    database_url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    audience = KEYSERVER_AUDIENCE if kind == "keyserver" else CONFERENCE_AUDIENCE
    idp = DevIdentityProvider(audience=audience)
    common = {"issuer": idp.issuer, "audience": audience, "jwks": idp.jwks()}
    if kind == "keyserver":
        app = create_keyserver(
            KeyServerSettings(
                database_url=database_url, service_secret=secrets.token_bytes(32), **common
            )
        )
    else:
        app = create_conference(
            ConferenceSettings(
                database_url=database_url, keyserver_url="http://127.0.0.1:1", **common
            )
        )
    with TestClient(app) as client:
        yield Service(client, audience, idp.issue("alice"))


@pytest.fixture(params=["keyserver", "conference"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    with running(request.param, tmp_path) as service:
        yield service


@pytest.fixture
def keyserver(tmp_path: Path) -> Iterator[Service]:
    with running("keyserver", tmp_path) as service:
        yield service


def needs(requirement: dict[str, list[str]]) -> set[str]:
    """The credentials one security requirement names."""
    kinds = set()
    if "jwt" in requirement:
        kinds.add("jwt")
    if SIGNATURE_SCHEMES & set(requirement):
        assert set(requirement) >= SIGNATURE_SCHEMES, f"some signature headers only: {requirement}"
        kinds.add("signature")
    assert set(requirement) <= SIGNATURE_SCHEMES | {"jwt"}, requirement
    return kinds


def asks_for(service: Service, method: str, path: str) -> tuple[set[str], int]:
    """Call the operation without credentials, then with each one it asks for (a valid
    JWT; signature headers well formed, from a device the service does not know) until
    it asks for none: the credentials it asked for, and the first answer's status."""
    url = path.replace("{", "").replace("}", "")  # each path parameter: its own name
    signer = SigningKey.generate()
    headers: dict[str, str] = {}
    asked: set[str] = set()
    first = None
    for _ in range(3):
        response = service.client.request(method, url, headers=headers)
        first = first or response.status_code
        code = response.json().get("error", {}).get("code") if response.status_code == 401 else None
        kind = ASKS_FOR.get(code or "")
        if kind is None:
            return asked, first
        assert kind not in asked, f"{method} {path} asked twice for {kind}: {response.text}"
        asked.add(kind)
        if kind == "jwt":
            headers["Authorization"] = f"Bearer {service.token}"
        else:
            device_id = device_id_for(bytes(signer.verifying_key))
            headers |= sign_request(signer, device_id, method, url, "", b"", int(time.time()))
    raise AssertionError(f"{method} {path} kept asking for credentials")


def test_every_operation_declares_what_its_dependencies_ask_for(service: Service) -> None:
    seen = 0
    for method, path, operation in service.operations():
        assert "security" in operation, f"{method} {path} says nothing about security"
        declared = operation["security"]
        assert len(declared) <= 1, f"{method} {path}: alternatives {declared}"
        expected = needs(declared[0]) if declared else set()
        asked, first_status = asks_for(service, method, path)
        assert asked == expected, f"{method} {path} asks for {asked}, declares {declared}"
        if not declared:  # an open route never refuses for want of credentials
            assert first_status != 401, f"{method} {path}"
        seen += 1
    assert seen >= 3


def test_the_schemes_say_what_the_service_takes(service: Service) -> None:
    schemes = service.schema["components"]["securitySchemes"]
    jwt = schemes["jwt"]
    assert (jwt["type"], jwt["scheme"], jwt["bearerFormat"]) == ("http", "bearer", "JWT")
    assert f"`{service.audience}`" in jwt["description"]
    used = {name for _, _, op in service.operations() for req in op["security"] for name in req}
    assert used == set(schemes), "every declared scheme is used, and only those"


def test_signature_headers_are_the_ones_the_key_service_reads(keyserver: Service) -> None:
    schemes = keyserver.schema["components"]["securitySchemes"]
    headers = {
        name: (scheme["type"], scheme["in"], scheme["name"].lower())
        for name, scheme in schemes.items()
        if name in SIGNATURE_SCHEMES
    }
    assert sorted(headers.values()) == sorted(
        ("apiKey", "header", header)
        for header in (DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
    )
    for name in SIGNATURE_SCHEMES:
        description = schemes[name]["description"]
        assert "`veil-request-v2` LF *device id* LF *METHOD*" in description, name
        assert "docs/protocol.md" in description, name


def test_signed_routes_list_every_signature_header(keyserver: Service) -> None:
    paths = keyserver.schema["paths"]
    signed = {name: [] for name in SIGNATURE_SCHEMES}
    assert paths["/v1/transform"]["post"]["security"] == [signed]  # openapi_extra
    assert paths["/v1/groups"]["get"]["security"] == [signed]
    assert paths["/v1/groups/{group_id}/membership"]["get"]["security"] == [signed]
    assert paths["/v1/devices/{device_id}/keys"]["put"]["security"] == [{**signed, "jwt": []}]
    assert paths["/v1/users"]["post"]["security"] == [{"jwt": []}]
    for open_route in ("/healthz", "/readyz", "/v1/service", "/v1/groups/{group_id}/public-key"):
        assert paths[open_route]["get"]["security"] == []


def test_credentials_are_schemes_not_parameters(service: Service) -> None:
    credentials = {"authorization", DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER}
    for method, path, operation in service.operations():
        headers = {
            p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
        }
        assert not headers & credentials, f"{method} {path}"


def test_a_scheme_named_but_not_declared_is_refused() -> None:
    app = FastAPI()
    bearer = bearer_jwt(service="test", audience="a", setting="A")

    @app.get("/one", openapi_extra={"security": SIGNED_REQUEST})
    def one(token: str | None = Depends(bearer)) -> None: ...

    document_security(app, [bearer])
    with pytest.raises(ValueError, match="undeclared security schemes"):
        app.openapi()
