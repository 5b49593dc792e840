"""The board's messages: one canonical encoding each, and strict parsing that names
the defect."""

import contextlib
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil import vectors
from veil.crypto.keys import PrivateKey
from veil.crypto.schedule import SENDER_LIMIT
from veil.protocol import MeetingProof, b64encode
from veil.protocol.board import (
    KINDS,
    MAX_INVITEES_BYTES,
    Alive,
    Announce,
    BoardMessageError,
    Chat,
    End,
    HandOver,
    KeyPost,
    Leave,
    TooManyInvitees,
    member_digest,
    parse,
)

GROUP_KEY = PrivateKey.generate()
PROOF = MeetingProof.make("key", "m-1", "alice", 1_700_000_000, GROUP_KEY, b"ct")


BOB_JOINED = KeyPost.changes(("alice",), ("alice", "bob"))


def _key_post(**changes: object) -> KeyPost:
    members, base, joined, left = BOB_JOINED
    fields: dict[str, object] = {
        "epoch": 3, "encrypted_key": b"\x01\x02ct", "members_digest": members,
        "base_digest": base, "joined": joined, "left": left,
        "invitees": ("carol",), "host": "alice", "proof": PROOF,
    }  # fmt: skip
    fields.update(changes)
    return KeyPost(**fields)  # type: ignore[arg-type]


EXAMPLES = [
    Announce(7),
    Leave(SENDER_LIMIT - 1),
    _key_post(),
    _key_post(invitees=()),
    HandOver(9, PROOF),
    End(PROOF),
    Chat(2, 5, b"\x00" * 40),
    Alive(12, 42),
    Alive(12, None),
]


def test_the_kinds_are_the_protocols() -> None:
    assert {"announce", "leave", "key", "hand-over", "end", "chat", "alive"} == KINDS


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_its_canonical_body(message: object) -> None:
    body = bytes(message)  # type: ignore[call-overload]
    assert parse(message.KIND, body) == message  # type: ignore[attr-defined]
    data = json.loads(body)
    assert body == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def test_a_key_posts_body_is_exactly_as_documented() -> None:
    body = json.loads(bytes(_key_post()))
    assert body == {
        "encrypted_key": "AQJjdA", "epoch": 3, "host": "alice", "invitees": ["carol"],
        "members_digest": b64encode(member_digest(["alice", "bob"])),
        "base_digest": b64encode(member_digest(["alice"])), "joined": ["bob"], "left": [],
        "proof": PROOF.fields()["proof"], "timestamp": 1_700_000_000,
    }  # fmt: skip
    # docs/protocol.md §3.4: SHA-256("veil/v1 members" ‖ JSON(sorted members))
    assert (
        member_digest(["bob", "alice"])
        == hashlib.sha256(b'veil/v1 members["alice", "bob"]').digest()
    )


@pytest.mark.parametrize(
    ("kind", "body", "defect"),
    [
        ("announce", b'{"sender": 7}', "canonical"),
        ("announce", b'{"sender":7,"sender":7}', "canonical"),
        ("announce", b'{"sender":7,"x":1}', "exactly the fields"),
        ("announce", b'{"sender":true}', "integer"),
        ("announce", b'{"sender":-1}', "integer"),
        ("announce", b'{"sender":17592186044416}', "integer"),  # 2^44
        ("announce", b'{"sender":7.0}', "integer"),
        ("announce", b"[7]", "not a JSON object"),
        ("announce", b"\xff", "not UTF-8 JSON"),
        ("leave", b"{}", "exactly the fields"),
        ("chat", b'{"epoch":1,"sealed":"AA==","sender":2}', "base64url"),
        ("alive", b'{"deputy":null,"epoch":18446744073709551616}', "integer"),
        ("alive", b'{"deputy":"1","epoch":1}', "integer"),
        ("hand-over", b'{"proof":"AA","sender":1,"timestamp":1}', "proof are malformed"),
        ("end", b'{"proof":"AA","timestamp":-1}', "proof are malformed"),
        ("end", b'{"proof":"AA","timestamp":18446744073709551616}', "proof are malformed"),
        ("notice", b"{}", "unknown post kind"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_defect(
    kind: str, body: bytes, defect: str
) -> None:
    with pytest.raises(BoardMessageError, match=defect):
        parse(kind, body)


@pytest.mark.parametrize(
    ("change", "defect"),
    [
        ({"joined": ["dave", "bob"]}, "sorted"),
        ({"left": ["bob", "bob"]}, "sorted"),
        ({"joined": "alice"}, "list of user ids"),
        ({"left": [""]}, "list of user ids"),
        ({"joined": ["bob"], "left": ["bob"]}, "joined and left share a user"),
        ({"members_digest": "AAAA"}, "32-byte digest"),
        ({"base_digest": "a+b/"}, "base64url"),
        ({"base_digest": b64encode(member_digest(["alice", "bob"]))}, "leaves the list as it was"),
        ({"host": 3}, "user id"),
        ({"epoch": "42"}, "integer"),
    ],
)
def test_a_key_post_with_a_bad_field_is_refused(change: dict[str, object], defect: str) -> None:
    data = {**json.loads(bytes(_key_post())), **change}
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BoardMessageError, match=defect):
        KeyPost.parse(body)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_a_board_message_error(body: bytes) -> None:
    for kind in KINDS:
        with contextlib.suppress(BoardMessageError):
            parse(kind, body)


def test_secrets_stay_out_of_repr() -> None:
    assert "ct" not in repr(_key_post()) and "encrypted_key" not in repr(_key_post())
    assert "\\x00" not in repr(Chat(2, 5, b"\x00" * 40))


def test_a_key_post_carries_the_change_and_leads_to_its_digest() -> None:
    before, after = ("alice", "bob", "carol"), ("alice", "carol", "dave")
    post = _key_post(**dict(zip(KEY_CHANGE_FIELDS, KeyPost.changes(before, after), strict=True)))
    assert (post.joined, post.left) == (("dave",), ("bob",))
    assert post.apply(before) == after
    # A base that is not the one named, or a change that does not fit it, leads nowhere.
    assert post.apply(("alice", "bob")) is None
    assert post.apply(("alice", "carol", "dave")) is None  # Dave is in it already
    # No change: the post names its list, and the base is the list itself.
    same = KeyPost.changes(after, after)
    assert same == (member_digest(after), member_digest(after), (), ())


def test_a_change_too_large_to_carry_names_the_list_by_digest_alone() -> None:
    many = [f"user-{i:05d}" for i in range(5000)]
    members, base, joined, left = KeyPost.changes((), many)
    assert (base, joined, left) == (members, (), ())
    post = _key_post(members_digest=members, base_digest=base, joined=(), left=())
    assert len(bytes(post)) < 2048  # the same bytes at any meeting size
    assert post.apply(many) == tuple(many)


KEY_CHANGE_FIELDS = ("members_digest", "base_digest", "joined", "left")


def test_a_user_id_with_a_lone_surrogate_is_refused_by_name() -> None:
    """JSON may escape one (\\ud800), but it is no UTF-8: refused as malformed, not a
    crash when the body is re-encoded."""
    data = json.loads(bytes(_key_post()))
    data["invitees"] = ["\ud800"]
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BoardMessageError, match="invitees is a list of user ids"):
        KeyPost.parse(body)


def test_invitees_beyond_the_cap_are_refused_by_name() -> None:
    """At most MAX_INVITEES_BYTES of canonical JSON (UTF-8 bytes, not characters):
    a key post with more is refused when made and when parsed."""
    at_cap = vectors._invitees_at_cap()
    assert len(json.dumps(list(at_cap), ensure_ascii=False, separators=(",", ":")).encode()) == (
        MAX_INVITEES_BYTES
    )
    body = bytes(_key_post(invitees=at_cap))
    assert KeyPost.parse(body).invitees == at_cap
    over = body.replace(b'z"]', b'zz"]')
    with pytest.raises(TooManyInvitees, match="invitees take more than 16384 bytes"):
        KeyPost.parse(over)
    with pytest.raises(TooManyInvitees):
        _key_post(invitees=(*at_cap[:-1], at_cap[-1] + "z"))


def test_a_manager_carries_the_invitees_that_fit() -> None:
    few = ("zoë", "carol", "bob")
    assert KeyPost.carried(few) == ("bob", "carol", "zoë")
    many = [f"invitee-ü-{i:05d}" for i in range(5000)]  # about 95 kB
    carried = KeyPost.carried(many)
    assert carried == tuple(sorted(many))[: len(carried)]
    assert len(bytes(_key_post(invitees=carried))) < 64 * 1024  # the board takes it
    one_more = tuple(sorted(many))[: len(carried) + 1]
    with pytest.raises(TooManyInvitees):
        _key_post(invitees=one_more)
