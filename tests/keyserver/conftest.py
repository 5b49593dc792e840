"""Key service fixtures: a dev IdP, a settable clock, SQLite and PostgreSQL databases,
and ``Actor``s (a user with a device) that speak the real HTTP API."""

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from veil.bench.keyserver import PLACEHOLDER_ESCROW
from veil.client.keyserver import add_member_body, create_group_body, device_keys_body
from veil.crypto import schnorr
from veil.crypto.keys import PrivateKey, PublicKey
from veil.crypto.signing import SigningKey
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings, create_app
from veil.protocol import (
    b64decode,
    b64encode,
    group_proof_message,
    sign_request,
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def idp(clock: Clock) -> DevIdentityProvider:
    return DevIdentityProvider(clock=clock)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keyserver.sqlite3'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def settings(database_url: str, idp: DevIdentityProvider, clock: Clock) -> KeyServerSettings:
    return KeyServerSettings(
        database_url=database_url,
        service_secret=secrets.token_bytes(32),
        issuer=idp.issuer,
        audience=idp.audience,
        jwks=idp.jwks(),
        clock=clock,
    )


@pytest.fixture
def client(settings: KeyServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=True) as test_client:
        yield test_client


@dataclass
class Actor:
    """A user with one device, driving the key service as the SDK will."""

    name: str
    client: TestClient
    idp: DevIdentityProvider
    clock: Clock
    user_key: PrivateKey = field(default_factory=PrivateKey.generate)
    device_key: PrivateKey = field(default_factory=PrivateKey.generate)
    signer: SigningKey = field(default_factory=SigningKey.generate)
    device_id: str = ""
    master: PublicKey | None = None

    def token(self, **claims: Any) -> str:
        return self.idp.issue(self.name, **claims)

    def bearer(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**claims)}"}

    def register(self) -> "Actor":
        escrow = PLACEHOLDER_ESCROW
        response = self.client.post(
            "/v1/users",
            headers=self.bearer(),
            json={
                "public_key": b64encode(bytes(self.user_key.public_key)),
                "escrow": b64encode(escrow),
            },
        )
        assert response.status_code == 201, response.text
        self.master = PublicKey.from_bytes(b64decode(response.json()["master_public_key"]))
        self.add_device()
        return self

    def device_body(
        self, device_key: PrivateKey, signer: SigningKey, token: str, device_id: str | None = None
    ) -> dict[str, Any]:
        """A device's keys with the user's proof and certificate (``device_id``: of the
        device whose keys rotate; a new device's id is its signing key's digest)."""
        assert self.master is not None
        return device_keys_body(
            token,
            user_id=self.name,
            device_id=device_id,
            user_key=self.user_key,
            master=self.master,
            device_key=device_key.public_key,
            signer=signer,
            now=int(self.clock()),
        )

    def another_device(self) -> "Actor":
        """The same user on a new device (new PRE and signing keys), not yet added."""
        return dataclasses.replace(
            self, device_key=PrivateKey.generate(), signer=SigningKey.generate(), device_id=""
        )

    def rotate(
        self,
        device_key: PrivateKey,
        signer: SigningKey,
        *,
        device_id: str | None = None,
        token: str | None = None,
    ) -> Any:
        """Replace a device's keys (by default this device's, with this user's JWT)."""
        device_id = device_id or self.device_id
        token = token or self.token()
        return self.signed(
            "PUT",
            f"/v1/devices/{device_id}/keys",
            self.device_body(device_key, signer, token, device_id),
            headers={"Authorization": f"Bearer {token}"},
        )

    def add_device(self) -> str:
        token = self.token()
        response = self.client.post(
            "/v1/devices",
            headers={"Authorization": f"Bearer {token}"},
            json=self.device_body(self.device_key, self.signer, token),
        )
        assert response.status_code == 201, response.text
        self.device_id = response.json()["device_id"]
        return self.device_id

    def signed(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        signed = sign_request(
            self.signer, self.device_id, method, path, query, raw, int(self.clock())
        )
        url = f"{path}?{query}" if query else path
        return self.client.request(
            method,
            url,
            content=raw,
            headers={**signed, "content-type": "application/json", **(headers or {})},
        )

    def create_group(self, group_id: str) -> PrivateKey:
        assert self.master is not None
        group_key = PrivateKey.generate()
        body = create_group_body(
            group_id,
            group_key,
            user_id=self.name,
            master=self.master,
            signer=self.signer,
            now=int(self.clock()),
        )
        response = self.signed("POST", "/v1/groups", body)
        assert response.status_code == 201, response.text
        return group_key

    def add_member(self, group_id: str, group_key: PrivateKey, member: "Actor") -> Any:
        assert member.master is not None
        body = add_member_body(
            group_id,
            group_key,
            user_id=member.name,
            master=member.master,
            signer=self.signer,
            now=int(self.clock()),
        )
        return self.signed("POST", f"/v1/groups/{group_id}/members", body)

    def remove_member(self, group_id: str, group_key: PrivateKey, user_id: str) -> Any:
        now = int(self.clock())
        proof = schnorr.sign(
            group_proof_message("remove-member", group_id, user_id, now), group_key
        )
        return self.signed(
            "DELETE",
            f"/v1/groups/{group_id}/members/{user_id}",
            query=f"timestamp={now}&proof={b64encode(bytes(proof))}",
        )

    def transform(self, encrypted: bytes, group_id: str | None = None) -> Any:
        body: dict[str, Any] = {"encrypted_key": b64encode(encrypted)}
        if group_id is not None:
            body["group_id"] = group_id
        return self.signed("POST", "/v1/transform", body)


@pytest.fixture
def make_actor(client: TestClient, idp: DevIdentityProvider, clock: Clock):  # type: ignore[no-untyped-def]
    def make(name: str) -> Actor:
        return Actor(name, client, idp, clock).register()

    return make
