"""Many at once: members added in one request and one transaction (each checked and
audited as one added alone; one refused refuses all, nothing written), and many devices'
public records in one lookup."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from veil.client.keyserver import add_member_body
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt
from veil.keyserver.maintenance import verify_audit
from veil.keyserver.models import AuditEntry
from veil.protocol import MAX_ADD_MEMBERS, MAX_LOOKUP_DEVICES, b64encode


def _bodies(admin: Any, group_id: str, group_key: PrivateKey, members: list[Any]) -> list[Any]:
    return [
        add_member_body(
            group_id, group_key, user_id=m.name, master=m.master, signer=admin.signer,
            now=int(admin.clock()),
        )
        for m in members
    ]  # fmt: skip


def _batch(admin: Any, group_id: str, bodies: list[Any]) -> Any:
    return admin.signed("POST", f"/v1/groups/{group_id}/members/batch", {"members": bodies})


def _members(admin: Any, group_id: str) -> list[str]:
    response = admin.signed("GET", f"/v1/groups/{group_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["members"])


def _added(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(AuditEntry.subject).where(AuditEntry.action == "group.add_member")
        ).all()
    engine.dispose()
    return [row[0] for row in rows]


def test_members_added_in_one_request_are_each_checked_and_audited(
    make_actor: Any, database_url: str
) -> None:
    alice, *others = (make_actor(name) for name in ("alice", "bob", "carol", "dave"))
    group_key = alice.create_group("g1")
    response = _batch(alice, "g1", _bodies(alice, "g1", group_key, others))
    assert response.status_code == 201, response.text
    assert _members(alice, "g1") == ["bob", "carol", "dave"]
    assert _added(database_url) == ["g1/bob", "g1/carol", "g1/dave"]
    assert verify_audit(database_url).ok
    value = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    for member in others:  # each member's transform key is the one its body carried
        assert member.transform(value, "g1").status_code == 200


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("spoil", "status", "code"),  # each spoils members[1] or members[2]
    [
        # Dave's transform key is for Bob's master key
        (lambda b, others: b[2].update(transform_key=b[0]["transform_key"]), 422,
         "transform_key_mismatch"),
        (lambda b, others: b[1].update(proof=b[0]["proof"]), 403, "invalid_proof"),
        (lambda b, others: b[2].update(timestamp=b[2]["timestamp"] - 3600), 400, "stale_proof"),
        (lambda b, others: b[1].update(user_id="nobody"), 404, "not_found"),
        (lambda b, others: b[2].update(transform_key=b64encode(b"\x01" * 40)), 422,
         "invalid_encoding"),
    ],
)  # fmt: skip
def test_one_bad_member_refuses_the_whole_batch_and_nothing_is_written(
    make_actor: Any, database_url: str, spoil: Any, status: int, code: str
) -> None:
    alice, *others = (make_actor(name) for name in ("alice", "bob", "carol", "dave"))
    group_key = alice.create_group("g1")
    bodies = _bodies(alice, "g1", group_key, others)
    before = [dict(b) for b in bodies]
    spoil(bodies, others)
    response = _batch(alice, "g1", bodies)
    _refused(response, status, code)
    spoilt = next(i for i, (b, a) in enumerate(zip(bodies, before, strict=True)) if b != a)
    assert response.json()["error"]["message"].startswith(f"members[{spoilt}] (")
    assert _members(alice, "g1") == []
    assert _added(database_url) == []
    # The same batch, unspoilt, goes through: nothing half-written stands in its way.
    assert _batch(alice, "g1", _bodies(alice, "g1", group_key, others)).status_code == 201


def test_a_batch_naming_a_member_already_in_the_group_adds_no_one(
    make_actor: Any, database_url: str
) -> None:
    alice, bob, carol = (make_actor(name) for name in ("alice", "bob", "carol"))
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, carol).status_code == 201
    response = _batch(alice, "g1", _bodies(alice, "g1", group_key, [bob, carol]))
    _refused(response, 409, "already_member")
    assert "'carol'" in response.json()["error"]["message"]
    assert _members(alice, "g1") == ["carol"]
    assert _added(database_url) == ["g1/carol"]


def test_only_an_admin_adds_members_in_a_batch(make_actor: Any, client: TestClient) -> None:
    alice, bob, carol = (make_actor(name) for name in ("alice", "bob", "carol"))
    group_key = alice.create_group("g1")
    bodies = _bodies(alice, "g1", group_key, [carol])
    # Bob holds proofs made with the group key (say, copied), but he is no admin.
    _refused(_batch(bob, "g1", bodies), 403, "not_admin")
    unsigned = client.post("/v1/groups/g1/members/batch", json={"members": bodies})
    _refused(unsigned, 401, "unsigned_request")
    assert _members(alice, "g1") == []
    _refused(_batch(alice, "nope", bodies), 404, "not_found")


def test_a_batch_is_bounded_and_names_each_user_once(make_actor: Any) -> None:
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    body = _bodies(alice, "g1", group_key, [bob])[0]
    _refused(_batch(alice, "g1", [body, body]), 422, "validation_error")
    _refused(_batch(alice, "g1", []), 422, "validation_error")
    _refused(_batch(alice, "g1", [body] * (MAX_ADD_MEMBERS + 1)), 422, "validation_error")
    assert _members(alice, "g1") == []


def test_device_records_are_looked_up_many_at_once(make_actor: Any, client: TestClient) -> None:
    alice, bob = make_actor("alice"), make_actor("bob")
    other = bob.another_device()
    other.add_device()
    assert other.signed("DELETE", f"/v1/devices/{bob.device_id}").status_code == 200
    ids = [alice.device_id, bob.device_id, other.device_id, "unknown-device"]
    response = client.post("/v1/devices/lookup", json={"device_ids": ids})
    assert response.status_code == 200, response.text
    records = {r["device_id"]: r for r in response.json()["devices"]}
    assert set(records) == set(ids[:3])  # the unknown one left out
    assert {i: records[i]["status"] for i in ids[:3]} == {
        alice.device_id: "active", bob.device_id: "revoked", other.device_id: "active"
    }  # fmt: skip
    assert records[alice.device_id] == client.get(f"/v1/devices/{alice.device_id}").json()


@pytest.mark.parametrize("device_ids", [[], ["a/b"], [""], ["d"] * (MAX_LOOKUP_DEVICES + 1), "d1"])
def test_a_device_lookup_is_bounded_and_takes_ids_only(client: TestClient, device_ids: Any) -> None:
    response = client.post("/v1/devices/lookup", json={"device_ids": device_ids})
    _refused(response, 422, "validation_error")
