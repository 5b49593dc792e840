"""The dev IdP (``veil.idp``) as an OIDC provider: discovery, a default audience the
services take, any user name; and the three services wired through discovery, as
``veil serve`` runs them, with an SDK device whose IdP subject is ``auth0|...``."""

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from veil.client import Device, MemoryDeviceStore
from veil.idp import DevIdentityProvider, create_app
from veil.keyserver import KeyServerSettings
from veil.protocol import KEYSERVER_AUDIENCE
from veil.protocol.board import Announce
from veil.stack import stack_in_thread
from veil.web.tokens import JwtVerifier

from .conftest import Served


def test_discovery_names_the_issuer_and_its_keys(serve: Any) -> None:
    provider = DevIdentityProvider()
    served: Served = serve(create_app(provider))
    provider.issuer = served.url  # served at a URL, the issuer is that URL
    document = httpx.get(served.url + "/.well-known/openid-configuration").json()
    assert document["issuer"] == served.url
    assert document["jwks_uri"] == served.url + "/.well-known/jwks.json"
    assert document["token_endpoint"] == served.url + "/token"
    assert document["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert httpx.get(document["jwks_uri"]).json() == provider.jwks()


def test_an_in_process_provider_names_its_keys_where_it_is_asked() -> None:
    client = TestClient(create_app(DevIdentityProvider()), base_url="http://idp.test")
    document = client.get("/.well-known/openid-configuration").json()
    assert (document["issuer"], document["jwks_uri"]) == (
        "veil-dev-idp", "http://idp.test/.well-known/jwks.json",
    )  # fmt: skip


def test_a_token_asked_for_without_an_audience_is_the_key_services(serve: Any) -> None:
    provider = DevIdentityProvider()
    served: Served = serve(create_app(provider))
    provider.issuer = served.url
    token = httpx.post(served.url + "/token", json={"sub": "auth0|123"}).json()["token"]
    settings = KeyServerSettings(  # the key service's defaults, found by discovery
        database_url="sqlite://", service_secret=bytes(32), audience=KEYSERVER_AUDIENCE,
        issuer_url=served.url,
    )  # fmt: skip
    identity = asyncio.run(JwtVerifier(settings).verify(token, fresh=False))
    assert identity.user_id == "auth0~7C123"


def test_the_token_endpoint_takes_any_name_but_control_characters() -> None:
    client = TestClient(create_app(DevIdentityProvider()))
    for sub in ("auth0|123", "ann+x@example.com", "Ålice Example"):
        assert client.post("/token", json={"sub": sub}).status_code == 200
    for sub in ("", "a\nb", "a\x00b", "x" * 257):
        response = client.post("/token", json={"sub": sub})
        assert response.status_code == 422, sub


def test_services_wired_by_discovery_serve_a_device_of_an_auth0_user(tmp_path: Path) -> None:
    idp = DevIdentityProvider()
    with stack_in_thread(tmp_path, idp=idp, discovery=True) as endpoints:
        assert idp.issuer == endpoints.idp_url

        async def main() -> None:
            async def tokens(audience: str) -> str:
                async with httpx.AsyncClient() as http:
                    body = {"sub": "auth0|alice", "audience": audience}
                    response = await http.post(f"{endpoints.idp_url}/token", json=body)
                    return str(response.json()["token"])

            device = await Device.initialize(
                keyserver_url=endpoints.keyserver_url,
                conference_url=endpoints.conference_url,
                tokens=tokens,
                store=MemoryDeviceStore(secrets.token_bytes(32)),
            )
            async with device:
                assert device.user_id == "auth0~7Calice"
                document = await device.documents.encrypt(b"mapped", users=[])
                assert await device.documents.decrypt(document) == b"mapped"
                board = device.board("auth0-room")
                await board.connect()
                assert await board.post(Announce.KIND, bytes(Announce(1))) == 1
                assert (await board.next(10)).user_id == "auth0~7Calice"
                await board.close()

        asyncio.run(main())
