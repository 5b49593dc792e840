"""The board's messages: one canonical encoding each, and strict parsing that names
the defect."""

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil.crypto.keys import PrivateKey
from veil.crypto.schedule import SENDER_LIMIT
from veil.protocol import MeetingProof
from veil.protocol.board import (
    KINDS,
    Alive,
    Announce,
    BoardMessageError,
    Chat,
    End,
    HandOver,
    KeyPost,
    Leave,
    parse,
)

GROUP_KEY = PrivateKey.generate()
PROOF = MeetingProof.make("key", "m-1", "alice", 1_700_000_000, GROUP_KEY, b"ct")


def _key_post(**changes: object) -> KeyPost:
    fields: dict[str, object] = {
        "epoch": 3, "encrypted_key": b"\x01\x02ct", "members": ("alice", "bob"),
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
        "encrypted_key": "AQJjdA", "epoch": 3, "host": "alice",
        "invitees": ["carol"], "members": ["alice", "bob"],
        "proof": PROOF.fields()["proof"], "timestamp": 1_700_000_000,
    }  # fmt: skip


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
        ({"members": ["bob", "alice"]}, "sorted"),
        ({"members": ["alice", "alice"]}, "sorted"),
        ({"members": "alice"}, "list of user ids"),
        ({"members": [""]}, "list of user ids"),
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
