"""Both services document the error body they send: ``{"error": {"code", "message"}}``,
not FastAPI's default ``{"detail": [...]}``."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from veil.conference import ConferenceSettings
from veil.conference.app import create_app as create_conference
from veil.idp import DevIdentityProvider
from veil.idp.provider import create_app as create_idp_app
from veil.keyserver import KeyServerSettings
from veil.keyserver.app import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE
from veil.web.errors import ErrorBody

JWKS = DevIdentityProvider().jwks()


@pytest.fixture(params=["keyserver", "conference"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    database_url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    if request.param == "keyserver":
        app = create_keyserver(
            KeyServerSettings(
                database_url=database_url,
                service_secret=secrets.token_bytes(32),
                issuer="i",
                audience="veil-keyserver",
                jwks=JWKS,
            )
        )
    else:
        app = create_conference(
            ConferenceSettings(
                database_url=database_url,
                keyserver_url="http://127.0.0.1:1",
                issuer="i",
                audience=CONFERENCE_AUDIENCE,
                jwks=JWKS,
            )
        )
    with TestClient(app) as client:
        yield client


def test_every_operation_documents_the_error_body_it_sends(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    refusal = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {k: v for k, v in operation["responses"].items() if k[0] in "45"}
            assert errors, f"{method} {path} documents no error"
            for answer in errors.values():
                assert answer["content"]["application/json"]["schema"] == refusal


def test_routes_that_transform_document_their_503(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    transforming = [
        ("/v1/transform", "post"),
        ("/v1/documents/{document_id}/key", "get"),
        ("/v1/groups/{group_id}/private-key", "get"),
    ]
    if "/v1/transform" not in paths:
        pytest.skip("the conference service does not transform")
    for path, method in transforming:
        answer = paths[path][method]["responses"]["503"]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_refusals_have_the_documented_body(client: TestClient) -> None:
    refusals = [
        client.get("/v1/nowhere"),  # 404
        client.post("/v1/users/me/share"),  # 401: no bearer token
        client.post("/v1/users/me/share", headers={"Authorization": "Bearer x.y.z"}),
    ]
    if "/v1/transform" in client.get("/openapi.json").json()["paths"]:  # the key service
        refusals.append(client.post("/v1/transform", json={"encrypted_key": "AQ"}))  # unsigned
    for response in refusals:
        assert 400 <= response.status_code < 500, response.text
        ErrorBody.model_validate(response.json())  # and nothing else (extra="forbid")


def test_the_api_document_is_served_and_no_page_that_needs_a_cdn(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 404
        message = ErrorBody.model_validate(response.json()).error.message
        assert f"no {page} page" in message and "GET /openapi.json" in message
        assert page not in client.get("/openapi.json").json()["paths"]


def test_the_dev_idp_says_why_it_has_no_docs_page() -> None:
    with TestClient(create_idp_app()) as idp:
        for page in ("/docs", "/redoc"):
            response = idp.get(page)
            assert response.status_code == 404
            assert "a public CDN" in response.json()["error"]["message"]
