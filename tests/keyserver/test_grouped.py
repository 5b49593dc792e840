"""Transform authorizations committed in groups (``veil.keyserver.grouped``): requests
that arrive while a group commits go together in the next one, each decided on its
own; a refused one spends its nonce and leaves the others' answers and audit entries
alone; a group whose transaction fails releases nothing and spends every nonce."""

import asyncio
import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.crypto.signing import SigningKey
from veil.keyserver import create_app
from veil.keyserver.auth import SignedCall, spend_all
from veil.keyserver.grouped import GroupedCommits, Pending
from veil.keyserver.maintenance import verify_audit
from veil.keyserver.models import AuditEntry
from veil.keyserver.routes import transforms
from veil.protocol import (
    DEVICE_HEADER,
    NONCE_HEADER,
    NONCE_SIZE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    b64decode,
    b64encode,
    request_message,
    sign_request,
)

Request = tuple[bytes, dict[str, str]]


def _transform_request(actor: Any, encrypted: bytes, group_id: str, signer: Any = None) -> Request:
    """A signed transform request, as bytes and headers (so it can be sent twice)."""
    raw = json.dumps({"encrypted_key": b64encode(encrypted), "group_id": group_id}).encode()
    headers = sign_request(
        signer or actor.signer, actor.device_id, "POST", "/v1/transform", "", raw,
        int(actor.clock()),
    )  # fmt: skip
    return raw, {**headers, "content-type": "application/json"}


def _send(client: TestClient, request: Request) -> Any:
    raw, headers = request
    return client.post("/v1/transform", content=raw, headers=headers)


@pytest.fixture
def hold_first_group(client: TestClient, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``hold(n)``: the next group's first request waits in its transaction until ``n``
    requests wait behind it, so that those form the following group together."""
    commits = client.app.state.transform_authorizations  # type: ignore[attr-defined]
    verify_all = transforms.verify_all
    behind = {"count": 0}
    holding = threading.Event()

    def held(*args: Any) -> Any:
        if behind["count"]:
            count, behind["count"] = behind["count"], 0
            holding.set()
            deadline = time.monotonic() + 10
            while commits.waiting < count and time.monotonic() < deadline:
                time.sleep(0.002)
        return verify_all(*args)

    monkeypatch.setattr(transforms, "verify_all", held)

    def hold(count: int) -> threading.Event:
        behind["count"] = count
        holding.clear()
        return holding

    return hold


def _together(
    client: TestClient,
    hold: Callable[[int], threading.Event],
    plug: Request,
    requests: list[Request],
) -> tuple[Any, list[Any]]:
    """``plug`` alone in a group, then ``requests``, all in the next group."""
    holding = hold(len(requests))
    with ThreadPoolExecutor(len(requests) + 1) as pool:
        first = pool.submit(_send, client, plug)
        assert holding.wait(10), "the plug's group did not begin"
        rest = [pool.submit(_send, client, request) for request in requests]
        return first.result(), [future.result() for future in rest]


def _audited_transforms(client: TestClient) -> int:
    service = client.app.state.service  # type: ignore[attr-defined]
    with service.sessions() as session:
        query = select(func.count()).where(AuditEntry.action == "transform")
        return int(session.execute(query).scalar_one())


def _opens(response: Any, device_key: PrivateKey, session_key: Plaintext) -> None:
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    assert decrypt(value, device_key) == session_key


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "encrypted_key" not in response.text


@pytest.fixture
def meeting(make_actor):  # type: ignore[no-untyped-def]
    """Alice's group g1 (she administers it) with members Bob and Carol; Dave
    registered but not a member; the session key encrypted to the group."""
    alice, bob, carol, dave = (make_actor(name) for name in ("alice", "bob", "carol", "dave"))
    group_key = alice.create_group("g1")
    for member in (bob, carol):
        assert alice.add_member("g1", group_key, member).status_code == 201
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, group_key.public_key, alice.signer))
    return alice, bob, carol, dave, group_key, session_key, encrypted


def test_requests_that_arrive_together_are_committed_as_one_group(
    client, meeting, hold_first_group
) -> None:  # type: ignore[no-untyped-def]
    _, bob, carol, _, _, session_key, encrypted = meeting
    commits = client.app.state.transform_authorizations
    groups, requests = commits.groups, commits.requests
    members = [bob, carol] * 4
    plug = _transform_request(bob, encrypted, "g1")
    first, rest = _together(
        client, hold_first_group, plug, [_transform_request(m, encrypted, "g1") for m in members]
    )
    _opens(first, bob.device_key, session_key)
    for member, response in zip(members, rest, strict=True):
        _opens(response, member.device_key, session_key)
    assert (commits.groups - groups, commits.requests - requests) == (2, 9)
    assert _audited_transforms(client) == 9
    metrics = client.get("/metrics").text  # the meeting's set-up asked for no transform
    assert "veil_transform_authorizations_total 9.0" in metrics
    assert "veil_transform_authorization_groups_total 2.0" in metrics


def test_a_refusal_in_a_group_is_its_own_and_spends_its_nonce(
    client, meeting, hold_first_group
) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave, group_key, session_key, encrypted = meeting
    stranger = bob.another_device()  # never added: no such device
    stranger.device_id = "not-a-device"
    bobs = _transform_request(bob, encrypted, "g1")
    daves = _transform_request(dave, encrypted, "g1")
    requests = [
        _transform_request(carol, encrypted, "g1"),
        daves,  # not a member
        _transform_request(carol, encrypted, "g1", signer=SigningKey.generate()),
        bobs,
        bobs,  # the same request twice: only one is answered
        _transform_request(stranger, encrypted, "g1"),
        _transform_request(carol, encrypted, "g1"),
    ]
    first, rest = _together(
        client, hold_first_group, _transform_request(bob, encrypted, "g1"), requests
    )
    _opens(first, bob.device_key, session_key)
    _opens(rest[0], carol.device_key, session_key)
    _error(rest[1], 403, "not_member")
    _error(rest[2], 401, "bad_signature")
    answered = [r for r in rest[3:5] if r.status_code == 200]
    assert len(answered) == 1, [r.text for r in rest[3:5]]
    _opens(answered[0], bob.device_key, session_key)
    _error(next(r for r in rest[3:5] if r.status_code != 200), 401, "replayed_request")
    _error(rest[5], 401, "unknown_device")
    _opens(rest[6], carol.device_key, session_key)
    assert _audited_transforms(client) == 4  # bob twice, carol twice: no refusal audited
    # Dave's refused request was spent in the group's transaction: once he is a member
    # it still cannot be replayed.
    assert alice.add_member("g1", group_key, dave).status_code == 201
    _error(_send(client, daves), 401, "replayed_request")
    _opens(_send(client, _transform_request(dave, encrypted, "g1")), dave.device_key, session_key)


def test_a_group_whose_transaction_fails_releases_nothing_and_spends_every_nonce(
    client, meeting, hold_first_group, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave, group_key, session_key, encrypted = meeting
    service = client.app.state.service
    transaction = service.transaction
    failing = {"next": False}

    @contextmanager
    def fails_to_commit(**kwargs: Any) -> Iterator[Any]:
        fail, failing["next"] = failing["next"], False  # a transaction begun after the flag
        with transaction(**kwargs) as session:
            yield session
            if fail:
                raise OperationalError("COMMIT", None, Exception("disk I/O error"))

    monkeypatch.setattr(service, "transaction", fails_to_commit)
    requests = [
        _transform_request(carol, encrypted, "g1"),
        _transform_request(dave, encrypted, "g1"),  # refused in its savepoint
        _transform_request(carol, encrypted, "g1", signer=SigningKey.generate()),
    ]
    plain = TestClient(client.app, raise_server_exceptions=False)  # shares the running app
    holding = hold_first_group(len(requests))
    with ThreadPoolExecutor(len(requests) + 1) as pool:
        first = pool.submit(_send, plain, _transform_request(bob, encrypted, "g1"))
        assert holding.wait(10)
        failing["next"] = True  # the held group commits; the next one fails
        rest = [pool.submit(_send, plain, request) for request in requests]
        _opens(first.result(), bob.device_key, session_key)
        answers = [future.result() for future in rest]
    for response in answers:
        assert response.status_code == 500, response.text
        assert "encrypted_key" not in response.text
    assert _audited_transforms(client) == 1  # the plug's alone
    # The two that authenticated are spent, whatever the outcome; the one whose
    # signature did not verify spent nothing (its nonce was never its device's).
    assert alice.add_member("g1", group_key, dave).status_code == 201
    for request in requests[:2]:
        _error(_send(client, request), 401, "replayed_request")
    _error(_send(client, requests[2]), 401, "bad_signature")


def _nonce_call(device_id: str) -> SignedCall:
    return SignedCall(device_id, b"", "", b64encode(secrets.token_bytes(NONCE_SIZE)), b"")


def _lock_waiters(service: Any) -> int:
    with service.engine.connect() as connection:
        query = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(connection.execute(query).scalar_one())


def test_groups_on_two_replicas_that_share_nonces_do_not_deadlock(client, settings) -> None:  # type: ignore[no-untyped-def]
    """A device's owner may send the same signed requests to two replicas, in either
    order: their groups insert the shared nonces in one order, so neither waits for
    the other while holding a nonce the other waits for (PostgreSQL would abort one
    group, failing every other request in it)."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("one SQLite writer at a time: no two groups wait for each other")
    service = client.app.state.service
    x, w, y = (_nonce_call("mallory-device") for _ in range(3))
    outcomes: dict[str, Any] = {}

    def group(name: str, calls: list[SignedCall]) -> None:
        try:
            with service.transaction() as session:
                outcomes[name] = spend_all(session, service.settings, calls)
        except Exception as error:  # the test reports it
            outcomes[name] = error

    def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)

    # A third transaction holds w, so that the first group stops between its nonces.
    with service.transaction() as holder:
        assert spend_all(holder, service.settings, [w]) == [True]
        first = threading.Thread(target=group, args=("first", [x, w, y]))
        first.start()
        wait_for(lambda: _lock_waiters(service) >= 1 or "first" in outcomes)
        second = threading.Thread(target=group, args=("second", [y, x]))
        second.start()
        wait_for(lambda: _lock_waiters(service) >= 2 or "second" in outcomes)
        holder.rollback()
    first.join(10)
    second.join(10)
    assert not isinstance(outcomes["first"], Exception), outcomes["first"]
    assert not isinstance(outcomes["second"], Exception), outcomes["second"]
    spent_x = [outcomes["first"][0], outcomes["second"][1]]
    spent_y = [outcomes["first"][2], outcomes["second"][0]]
    assert outcomes["first"][1] is True  # w: the holder's insert was rolled back
    assert sorted(spent_x) == [False, True] and sorted(spent_y) == [False, True]


def test_groups_on_two_replicas_answer_each_request_once_and_keep_one_chain(
    settings, meeting
) -> None:  # type: ignore[no-untyped-def]
    """Both replicas' groups at once, with refusals and the same requests sent to both:
    each granted request answered once and audited once, the chain whole."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    _, bob, carol, dave, _, session_key, encrypted = meeting
    with (
        TestClient(create_app(settings), raise_server_exceptions=False) as first,
        TestClient(create_app(settings), raise_server_exceptions=False) as second,
    ):
        before = _audited_transforms(first)
        sent: list[tuple[TestClient, Any, Request]] = []
        for round_ in range(12):
            for member in (bob, carol):
                request = _transform_request(member, encrypted, "g1")
                sent.append((first, member, request))
                sent.append((second, member, request))  # the same request on both
            sent.append(
                (first if round_ % 2 else second, dave, _transform_request(dave, encrypted, "g1"))
            )
            forged = _transform_request(bob, encrypted, "g1", signer=SigningKey.generate())
            sent.append((second if round_ % 2 else first, None, forged))
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda s: _send(s[0], s[2]), sent))
        granted = 0
        for index in range(0, len(sent), 6):
            for start in (index, index + 2):
                member, pair = sent[start][1], answers[start : start + 2]
                ok = [r for r in pair if r.status_code == 200]
                assert len(ok) == 1, [r.text for r in pair]
                _opens(ok[0], member.device_key, session_key)
                _error(next(r for r in pair if r.status_code != 200), 401, "replayed_request")
                granted += 1
            _error(answers[index + 4], 403, "not_member")
            _error(answers[index + 5], 401, "bad_signature")
        assert _audited_transforms(first) - before == granted == 24
        commits = [c.app.state.transform_authorizations for c in (first, second)]
        assert sum(c.requests for c in commits) == len(sent)
        assert any(c.groups < c.requests for c in commits)  # some groups held several
        assert verify_audit(settings.database_url).ok


class _NoDatabase:
    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield None


def _grants(service: Any, session: Any, group: list[Pending[Any]]) -> None:
    for pending in group:
        pending.grant(pending.item)


def _ask(commits: GroupedCommits[Any], item: Any) -> Any:
    async def ask() -> Any:
        return await asyncio.wait_for(commits.decide(_nonce_call("d"), item), 5)

    return asyncio.run(ask())


def test_a_drain_its_loop_cannot_run_still_answers_every_request() -> None:
    """A loop whose executor has shut down cannot run the drain: another thread does,
    or the queue would wait forever for a drain that never started."""
    commits = GroupedCommits[Any](_NoDatabase(), _grants)  # type: ignore[arg-type]

    async def on_a_closing_loop() -> Any:
        await asyncio.get_running_loop().shutdown_default_executor()
        return await asyncio.wait_for(commits.decide(_nonce_call("d"), "first"), 5)

    assert asyncio.run(on_a_closing_loop()) == "first"
    assert _ask(commits, "next") == "next"  # on another loop


def test_a_group_that_fails_with_stop_iteration_still_answers() -> None:
    """A future refuses StopIteration: its requests get another error, not silence."""

    def stops(service: Any, session: Any, group: list[Pending[Any]]) -> None:
        raise StopIteration

    commits = GroupedCommits[Any](_NoDatabase(), stops)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        _ask(commits, "first")
    commits._decide = _grants
    assert _ask(commits, "next") == "next"


def _with_nonce(actor: Any, encrypted: bytes, group_id: str | None, nonce: str) -> Request:
    """A signed transform request whose nonce is ``nonce``."""
    body: dict[str, str] = {"encrypted_key": b64encode(encrypted)}
    if group_id is not None:
        body["group_id"] = group_id
    raw, now = json.dumps(body).encode(), int(actor.clock())
    message = request_message(
        "POST", "/v1/transform", "", raw, now, nonce, device_id=actor.device_id
    )
    headers = {
        DEVICE_HEADER: actor.device_id,
        TIMESTAMP_HEADER: str(now),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: b64encode(actor.signer.sign(message)),
        "content-type": "application/json",
    }
    return raw, headers


def test_every_kind_of_refusal_in_one_group_is_its_own(
    client, meeting, make_actor, hold_first_group, settings
) -> None:  # type: ignore[no-untyped-def]
    """A revoked device, a removed member, an unknown group, a rotated signing key,
    beside the same device twice and two devices with the same nonce: each answered as
    alone, and only the granted audited."""
    alice, bob, carol, dave, group_key, session_key, encrypted = meeting
    erin = make_actor("erin")
    assert alice.add_member("g1", group_key, erin).status_code == 201
    laptop = bob.another_device()
    laptop.add_device()
    assert bob.signed("DELETE", f"/v1/devices/{laptop.device_id}").status_code == 200
    assert alice.remove_member("g1", group_key, "carol").status_code == 200
    stolen = erin.signer
    assert erin.rotate(PrivateKey.generate(), SigningKey.generate()).status_code == 200
    erin_before = dataclasses.replace(erin, signer=stolen)
    own = bytes(encrypt(session_key, bob.master, alice.signer))
    shared = b64encode(secrets.token_bytes(NONCE_SIZE))
    before = _audited_transforms(client)
    requests = [
        _transform_request(laptop, encrypted, "g1"),  # revoked
        _transform_request(carol, encrypted, "g1"),  # removed
        _transform_request(bob, encrypted, "nope"),  # no such group
        _transform_request(erin_before, encrypted, "g1"),  # a signing key rotated away
        _with_nonce(bob, encrypted, "g1", shared),
        _with_nonce(alice, own, None, shared),  # the same nonce, another device: fine
        _with_nonce(bob, own, None, b64encode(secrets.token_bytes(NONCE_SIZE))),
        _transform_request(alice, encrypted, "g1"),  # an admin, not a member
    ]
    first, rest = _together(
        client, hold_first_group, _transform_request(dave, encrypted, "g1"), requests
    )
    _error(first, 403, "not_member")
    _error(rest[0], 403, "device_revoked")
    _error(rest[1], 403, "not_member")
    _error(rest[2], 404, "not_found")
    _error(rest[3], 401, "bad_signature")
    _opens(rest[4], bob.device_key, session_key)
    assert rest[5].status_code == 200, rest[5].text  # alice's own user chain
    _opens(rest[6], bob.device_key, session_key)
    _error(rest[7], 403, "not_member")
    assert _audited_transforms(client) - before == 3
    assert verify_audit(settings.database_url).ok
