"""Ids and URL paths at the key service (issue 16, §1): ``.`` and ``..`` fit the id
alphabet but are URL dot-segments, so no id may be one; and a path whose ids hold an
encoded ``/`` is refused rather than routed as the separator it decodes to.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture)."""

from typing import Any

import pytest

from veil.client.keyserver import create_group_body
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt
from veil.protocol import b64encode, sign_request


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def signed(actor: Any, method: str, sent: str, signed_path: str, raw: bytes = b"") -> Any:
    """A request for the path ``sent`` (percent-encoded), signed over ``signed_path``
    (what the service routes once it decoded ``sent``)."""
    headers = sign_request(
        actor.signer, actor.device_id, method, signed_path, "", raw, int(actor.clock())
    )
    headers["content-type"] = "application/json"
    return actor.client.request(method, sent, content=raw, headers=headers)


@pytest.mark.parametrize("dots", [".", ".."])
def test_dot_segment_ids_in_paths_are_422(make_actor: Any, dots: str) -> None:
    alice = make_actor("alice")
    encoded = "%2E" * len(dots)  # as sent: a literal one is gone before it leaves
    for suffix in ("", "/membership", "/private-key"):
        response = signed(
            alice, "GET", f"/v1/groups/{encoded}{suffix}", f"/v1/groups/{dots}{suffix}"
        )
        assert_error(response, 422, "validation_error")
    assert_error(alice.client.get(f"/v1/devices/{encoded}"), 422, "validation_error")
    assert_error(alice.client.get(f"/v1/groups/{encoded}/public-key"), 422, "validation_error")
    response = signed(alice, "GET", f"/v1/documents/{encoded}/key", f"/v1/documents/{dots}/key")
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("dots", [".", ".."])
def test_dot_segment_ids_in_bodies_are_422(make_actor: Any, dots: str) -> None:
    """A group or document named ``..`` could be created, and then never be addressed."""
    alice = make_actor("alice")
    body = create_group_body(
        dots, PrivateKey.generate(), user_id="alice", master=alice.master,
        signer=alice.signer, now=int(alice.clock()),
    )  # fmt: skip
    assert_error(alice.signed("POST", "/v1/groups", body), 422, "validation_error")
    value = encrypt(Plaintext.generate(), alice.master, alice.signer)
    grant = {
        "grantee_kind": "user",
        "grantee_id": "alice",
        "encrypted_key": b64encode(bytes(value)),
    }
    document = {"document_id": dots, "kind": "file", "grants": [grant]}
    assert_error(alice.signed("POST", "/v1/documents", document), 422, "validation_error")
    for name in (".a", "...", "a..b"):  # dots, but not a dot-segment: ids like any other
        assert (
            alice.signed("POST", "/v1/documents", {**document, "document_id": name}).status_code
            == 201
        )


def test_an_encoded_slash_is_refused_not_routed(make_actor: Any) -> None:
    """``DELETE /v1/groups/g%2Fadmins%2Fbob`` means the group ``g/admins/bob``; the
    service routes decoded paths, where it is the route removing bob's admin role, with
    a signature over that very path. It is refused: no id holds a ``/``."""
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g")
    assert alice.add_member("g", group_key, bob).status_code == 201
    admin = encrypt(Plaintext.generate(), bob.master, alice.signer)
    added = alice.signed(
        "POST", "/v1/groups/g/admins",
        {"user_id": "bob", "encrypted_key": b64encode(bytes(admin)), "key_envelope": "AAAA"},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    response = signed(alice, "DELETE", "/v1/groups/g%2Fadmins%2Fbob", "/v1/groups/g/admins/bob")
    assert_error(response, 422, "invalid_id")
    response = signed(alice, "DELETE", "/v1/groups/g%2fadmins%2fbob", "/v1/groups/g/admins/bob")
    assert_error(response, 422, "invalid_id")  # lower-case hex too
    assert alice.signed("GET", "/v1/groups/g").json()["admins"] == ["alice", "bob"]
