"""Cross-language vectors: values made by one SDK and checked by the other.

``python -m veil.vectors make`` prints a JSON document of values made by this (the
Python) SDK, which the browser SDK's tests (``web/test``) check entry by entry;
``python -m veil.vectors check FILE`` checks a document the browser SDK made
(``npm run vectors`` in ``web/``) with this SDK, and exits 1 naming every entry that
fails. Both kinds of document have the same shape, so each side makes what the other
checks. Secrets in them are test keys, made for the document and used nowhere else.
"""

import functools
import json
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from veil import protocol
from veil.client.meeting.epochs import security_code
from veil.crypto import aead, chat, escrow, schedule, schnorr, sframe
from veil.crypto import pairing as pg
from veil.crypto.errors import DecryptionError, VeilCryptoError
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import (
    EncryptedValue,
    TransformKey,
    decrypt,
    encrypt,
    generate_transform_key,
    transform_chain,
)
from veil.crypto.schedule import SENDER_LIMIT
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.protocol import board
from veil.protocol.board import member_digest

FORMAT = "veil-vectors/1"


def make() -> dict[str, Any]:
    """Fresh values of every kind the other SDK checks."""
    return {
        "format": FORMAT, "made_by": "python", "pairing": _pairing(), "pre": _pre(),
        "schnorr": _schnorr(), "meeting": _meeting(), "wire": _wire(),
        "envelopes": _envelopes(),
        "board": _board(),
    }  # fmt: skip


def _board() -> dict[str, Any]:
    group = PrivateKey.generate()
    proof = protocol.MeetingProof.make("key", "m-1", "alice", 2**40, group, b"k")
    before, after = ["alice", "bob", "zoë"], ["alice", "carol", "zoë", "ü\U0001f600"]
    messages: list[board.BoardMessage] = [
        board.Announce(SENDER_LIMIT - 1),
        board.Leave(0),
        board.KeyPost(
            2**63, b"k", *board.KeyPost.changes(before, after), ("dave",), "alice", proof
        ),
        board.HandOver(17, proof),
        board.End(proof),
        board.Chat(3, 4, b"sealed"),
        board.Alive(5, None),
        board.Alive(6, 7),
        board.KeyPost(
            1, b"k", *board.KeyPost.changes(before, before), _invitees_at_cap(), "alice", proof
        ),
    ]
    valid = bytes(messages[5])
    at_cap = bytes(messages[-1])
    return {
        "group_public_key": bytes(group.public_key).hex(),
        "changes": {"before": before, "after": after},
        "posts": [{"kind": m.KIND, "body": bytes(m).hex()} for m in messages],
        "refused": [
            {"kind": "chat", "body": valid.replace(b":", b": ", 1).hex()},
            {"kind": "chat", "body": valid.replace(b'"epoch":3', b'"epoch":3.0').hex()},
            {"kind": "chat", "body": (b"\xff" + valid).hex()},
            {"kind": "announce", "body": b'{"sender":17592186044416}'.hex()},
            {"kind": "alive", "body": b'{"deputy":"1","epoch":1}'.hex()},
            {"kind": "key", "body": bytes(messages[2]).replace(b'"dave"', b'"\\ud800"').hex()},
            {"kind": "notice", "body": b"{}".hex()},
            # one byte over MAX_INVITEES_BYTES (its last invitee one character longer)
            {"kind": "key", "body": at_cap.replace(b'z"]', b'zz"]').hex()},
        ],
    }


def _invitees_at_cap() -> tuple[str, ...]:
    """Invitees whose canonical JSON takes exactly ``MAX_INVITEES_BYTES`` (UTF-8, with
    two-byte characters): the boundary both SDKs must draw in the same place."""
    invitees = [f"a-ü-{i:05d}" for i in range(1250)]  # 12 bytes and a comma each
    used = len(json.dumps(invitees, ensure_ascii=False, separators=(",", ":")).encode())
    return (*invitees, "z" * (board.MAX_INVITEES_BYTES - used - 3))  # ',"' and '"'


def _envelopes() -> dict[str, Any]:
    key, stream_key = aead.generate_key(), aead.generate_key()
    text, long_text = "a transcript ✓".encode(), secrets.token_bytes(2 * 1024 + 500)
    ks_share, platform_share = escrow.new_share(), escrow.new_share()
    password = escrow.split_trust_password(ks_share, platform_share)
    secret = secrets.token_bytes(32)
    sealed = b"".join(aead.seal_stream(stream_key, "rec-1", [long_text], chunk_size=1024))
    return {
        "document": {
            "key": key.hex(), "id": "doc-é", "plaintext": text.hex(),
            "envelope": aead.seal_document(key, "doc-é", text).hex(),
        },
        "stream": {
            "key": stream_key.hex(), "id": "rec-1", "plaintext": long_text.hex(),
            "sealed": sealed.hex(),
        },
        "escrow": {
            "keyserver_share": ks_share.hex(), "platform_share": platform_share.hex(),
            "password": password.hex(), "secret": secret.hex(), "context": b"alice".hex(),
            "blob": escrow.seal_escrow(secret, password, context=b"alice").hex(),
        },
    }  # fmt: skip


QUERIES = (
    "", "b=2&a=1", "a=1&a=0", "x=a+b&y=%2F%20z", "k", "k=&j=", "e=%C3%A9&%E2%9C%93=1",
    "timestamp=1733325000&proof=AQSx-_y", "&&a=1&", "z=~._-*'()!",
)  # fmt: skip
IDS = ("alice", "auth0~7C123", ".", "..", "a/b", "é ü", "x%2Fy", "…")


def _wire() -> dict[str, Any]:
    signer = SigningKey.generate()
    device = protocol.device_id_for(bytes(signer.verifying_key))
    requests: list[dict[str, Any]] = []
    for method, path, query, body in (
        ("POST", "/v1/transform", "", b'{"encrypted_key":"AQ"}'),
        ("GET", f"/v1/groups/{protocol.path_segment('é ü')}/digest", "", b""),
        ("DELETE", "/v1/groups/g1/members/bob", "timestamp=17&proof=AQ", b""),
    ):
        timestamp = 1_733_325_000 + len(requests)
        signed = protocol.signed_path(path)
        headers = protocol.sign_request(signer, device, method, signed, query, body, timestamp)
        message = protocol.request_message(
            method, protocol.signed_path(path), query, body, timestamp,
            headers[protocol.NONCE_HEADER], device_id=device,
        )  # fmt: skip
        requests.append(
            {
                "method": method, "path": path, "query": query, "body": body.hex(),
                "timestamp": timestamp, "device_id": device, "headers": headers,
                "message": message.hex(),
            }
        )  # fmt: skip
    post_id, challenge = secrets.token_bytes(16), secrets.token_bytes(32)
    return {
        "b64": [
            {"bytes": b.hex(), "text": protocol.b64encode(b)}
            for b in (b"", b"\xff", b"ab", b"abc", secrets.token_bytes(31))
        ],
        "path_segments": [{"id": i, "segment": protocol.path_segment(i)} for i in IDS],
        "queries": [{"query": q, "canonical": protocol.canonical_query(q)} for q in QUERIES],
        "signer": bytes(signer.verifying_key).hex(),
        "requests": requests,
        "messages": {
            "device_id": device,
            "post": protocol.post_message("m-1", post_id, "key", device, 17, b"{}").hex(),
            "post_inputs": {
                "room": "m-1",
                "post_id": post_id.hex(),
                "kind": "key",
                "timestamp": 17,
                "body": "7b7d",
            },
            "hello": protocol.hello_message("m-1", "board", challenge, device).hex(),
            "challenge": challenge.hex(),
            "group_proof": protocol.meeting_proof_message(
                "key", "m-1", "alice", 2**40, b"\x01\x02"
            ).hex(),
            "device_cert": protocol.device_certificate_message(
                "alice", device, b"\x01" * 50, b"\x02" * 32
            ).hex(),
            "device_proof": protocol.device_proof_message(
                99, b"\x03" * 10, "a.b.c", b"\x04" * 50, b"\x05" * 32
            ).hex(),
        },
    }


def _schnorr() -> list[dict[str, str]]:
    entries = []
    for message in (b"", b"veil/v1 proof", secrets.token_bytes(64)):
        key = PrivateKey.generate()
        entries.append(
            {
                "key": key.to_secret_bytes().hex(),
                "public_key": bytes(key.public_key).hex(),
                "message": message.hex(),
                "signature": bytes(schnorr.sign(message, key)).hex(),
            }
        )
    return entries


MEMBER_LISTS = (
    ["alice"],
    ["bob", "alice", "carol"],
    ["zoë", "auth0~7C123", "émile", "ü\U0001f600"],
)


def _frames(
    session: bytes, meeting_id: str, epoch: int, sender: int, stream: int
) -> list[dict[str, str]]:
    """Media frames under the sender's key (RFC 9605 suite 5), the meeting id as metadata."""
    base = schedule.sender_base_key(
        session, meeting_id=meeting_id, epoch=epoch, sender=sender, stream=stream
    )
    kid = schedule.media_kid(epoch=epoch, sender=sender, stream=stream)
    protector = sframe.SFrameSender(kid, base)
    payloads = [b"", b"\x00" * 7, secrets.token_bytes(1200)]
    return [
        {"payload": payload.hex(), "frame": protector.protect(payload, meeting_id.encode()).hex()}
        for payload in payloads
    ]


def _meeting() -> dict[str, Any]:
    plaintext = Plaintext.generate()
    meeting_id, epoch, sender, stream = "m-" + secrets.token_hex(4), 2**40 + 3, SENDER_LIMIT - 5, 3
    session = schedule.session_key(plaintext, meeting_id=meeting_id, epoch=epoch)
    text = "héllo, Veil".encode()
    return {
        "schedule": {
            "plaintext": plaintext.to_secret_bytes().hex(),
            "meeting_id": meeting_id,
            "epoch": str(epoch),
            "sender": str(sender),
            "stream": stream,
            "session_key": session.hex(),
            "base_key": schedule.sender_base_key(
                session, meeting_id=meeting_id, epoch=epoch, sender=sender, stream=stream
            ).hex(),
            "chat_key": schedule.chat_key(session, meeting_id=meeting_id, epoch=epoch).hex(),
            "kid": str(schedule.media_kid(epoch=epoch, sender=sender, stream=stream)),
            "frames": _frames(session, meeting_id, epoch, sender, stream),
            "chat": {
                "text": text.hex(),
                "sealed": chat.seal(
                    session, text, meeting_id=meeting_id, epoch=epoch, sender=sender
                ).hex(),
            },
        },
        "members": [
            {
                "members": members,
                "digest": member_digest(members).hex(),
                "code": security_code(session, epoch, members),
            }
            for members in MEMBER_LISTS
        ],
    }


def _pairing() -> dict[str, Any]:
    scalars = [1, 2, pg.R - 1, *(secrets.randbelow(pg.R - 1) + 1 for _ in range(3))]
    fr = [pg.decode_scalar(k.to_bytes(32, "big")) for k in scalars]
    return {
        "g1": [
            {"scalar": _hex32(k), "point": pg.encode_g1(pg.P * f).hex()}
            for k, f in zip(scalars, fr, strict=True)
        ],
        "g2": [
            {"scalar": _hex32(k), "point": pg.encode_g2(pg.Q * f).hex()}
            for k, f in zip(scalars, fr, strict=True)
        ],
        "gt": [
            {
                "scalar": _hex32(k),
                "full": pg.encode_gt(pg.pow_secret(pg.gt_generator(), f)).hex(),
                "compressed": pg.compress_gt(pg.pow_secret(pg.gt_generator(), f)).hex(),
            }
            for k, f in zip(scalars, fr, strict=True)
        ],
        "hash_to_g2": [
            {"message": m.hex(), "point": pg.encode_g2(pg.hash_to_g2(m)).hex()}
            for m in (b"", b"veil", secrets.token_bytes(100))
        ],
        "refused": _refused_encodings(),
    }


def _refused_encodings() -> list[dict[str, str]]:
    g1 = bytearray(pg.encode_g1(pg.P))
    uncompressed = bytes([g1[0] & 0x7F]) + bytes(g1[1:])
    not_on_curve = _first_x(lambda x: not _on_g1(x))
    random_c = b"".join(secrets.randbelow(pg.PRIME).to_bytes(48, "big") for _ in range(6))
    return [
        {"kind": "g1", "bytes": bytes(47).hex(), "error": "InvalidLength"},
        {"kind": "g1", "bytes": uncompressed.hex(), "error": "NonCanonicalEncoding"},
        {"kind": "g1", "bytes": (bytes([0xC0]) + bytes(47)).hex(), "error": "IdentityElement"},
        {"kind": "g1", "bytes": not_on_curve.hex(), "error": "NotOnCurve"},
        {
            "kind": "g1",
            "bytes": (pg.PRIME | (0x80 << 376)).to_bytes(48, "big").hex(),
            "error": "NonCanonicalEncoding",
        },
        {"kind": "gt", "bytes": bytes(288).hex(), "error": "IdentityElement"},
        {"kind": "gt", "bytes": random_c.hex(), "error": "NotInSubgroup"},
        {
            "kind": "gt",
            "bytes": (pg.PRIME.to_bytes(48, "big") + bytes(240)).hex(),
            "error": "NonCanonicalEncoding",
        },
        {"kind": "gt", "bytes": bytes(287).hex(), "error": "InvalidLength"},
    ]


def _on_g1(x: int) -> bool:
    return pow((x**3 + 4) % pg.PRIME, (pg.PRIME - 1) // 2, pg.PRIME) == 1


def _first_x(wanted: Callable[[int], bool]) -> bytes:
    x = 1
    while not wanted(x):
        x += 1
    out = bytearray(x.to_bytes(48, "big"))
    out[0] |= 0x80
    return bytes(out)


def _pre() -> dict[str, Any]:
    group, user, device = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    author, service = SigningKey.generate(), SigningKey.generate()
    plaintext = Plaintext.generate()
    keys = [
        generate_transform_key(group, user.public_key, author),
        generate_transform_key(user, device.public_key, author),
    ]
    level0 = encrypt(plaintext, group.public_key, author)
    level1 = transform_chain(level0, keys[:1], service)
    level2 = transform_chain(level0, keys, service)
    tampered = bytearray(bytes(level2))
    tampered[-1] ^= 1
    return {
        "chains": [
            {
                "keys": [k.to_secret_bytes().hex() for k in (group, user, device)],
                "public_keys": [bytes(k.public_key).hex() for k in (group, user, device)],
                "plaintext": plaintext.to_secret_bytes().hex(),
                "author": bytes(author.verifying_key).hex(),
                "levels": [bytes(v).hex() for v in (level0, level1, level2)],
                "transform_keys": [bytes(k).hex() for k in keys],
            }
        ],
        "refused": [
            {"kind": "ciphertext", "bytes": bytes(tampered).hex(), "error": "InvalidSignature"},
            {
                "kind": "ciphertext",
                "bytes": (b"\x01" + bytes(level0)[1:]).hex(),
                "error": "UnsupportedVersion",
            },
            {
                "kind": "ciphertext",
                "bytes": (bytes(level0) + b"\x00").hex(),
                "error": "InvalidLength",
            },
        ],
    }


def _hex32(n: int) -> str:
    return n.to_bytes(32, "big").hex()


# --- checking the other side's values ---------------------------------------------------


class _Mismatch(Exception):
    pass


def _require(ok: bool) -> None:
    if not ok:
        raise _Mismatch


class _Failures(list[str]):
    @contextmanager
    def entry(self, name: str) -> Iterator[None]:
        """Record the entry ``name`` as failed if the block raises (and go on)."""
        try:
            yield
        except _Mismatch:
            self.append(f"{name}: mismatch")
        except Exception as error:
            self.append(f"{name}: {type(error).__name__}: {error}")


_DECODERS: dict[str, Callable[[bytes], object]] = {
    "g1": pg.decode_g1,
    "g2": pg.decode_g2,
    "gt": pg.decompress_gt,
    "ciphertext": lambda raw: EncryptedValue.from_bytes(raw).verify(),
    "transform_key": lambda raw: TransformKey.from_bytes(raw).verify(),
}


def check(document: dict[str, Any]) -> list[str]:
    """Every entry of ``document`` this SDK disagrees with, named; empty if none."""
    if document.get("format") != FORMAT:
        return [f"format: expected {FORMAT!r}"]
    failures = _Failures()
    pairing = document["pairing"]
    for i, entry in enumerate(pairing["g1"]):
        with failures.entry(f"pairing.g1[{i}]"):
            k = pg.decode_scalar(bytes.fromhex(entry["scalar"]))
            _require(pg.encode_g1(pg.P * k).hex() == entry["point"])
    for i, entry in enumerate(pairing["g2"]):
        with failures.entry(f"pairing.g2[{i}]"):
            k = pg.decode_scalar(bytes.fromhex(entry["scalar"]))
            _require(pg.encode_g2(pg.Q * k).hex() == entry["point"])
    for i, entry in enumerate(pairing["gt"]):
        k = pg.decode_scalar(bytes.fromhex(entry["scalar"]))
        x = pg.pow_secret(pg.gt_generator(), k)
        with failures.entry(f"pairing.gt[{i}].full"):
            _require(pg.encode_gt(x).hex() == entry["full"])
        with failures.entry(f"pairing.gt[{i}].compressed"):
            _require(pg.compress_gt(x).hex() == entry["compressed"])
            _require(pg.decompress_gt(bytes.fromhex(entry["compressed"])) == x)
    for i, entry in enumerate(pairing["hash_to_g2"]):
        with failures.entry(f"pairing.hash_to_g2[{i}]"):
            point = pg.hash_to_g2(bytes.fromhex(entry["message"]))
            _require(pg.encode_g2(point).hex() == entry["point"])
    for i, entry in enumerate([*pairing["refused"], *document["pre"]["refused"]]):
        with failures.entry(f"refused[{i}] ({entry['kind']}, {entry['error']})"):
            _require(_refuses(_DECODERS[entry["kind"]], entry))
    for i, chain in enumerate(document["pre"]["chains"]):
        _check_chain(f"pre.chains[{i}]", chain, failures)
    for i, entry in enumerate(document["schnorr"]):
        with failures.entry(f"schnorr[{i}]"):
            key = PrivateKey.from_secret_bytes(bytes.fromhex(entry["key"]))
            _require(bytes(key.public_key).hex() == entry["public_key"])
            signature = schnorr.SchnorrSignature.from_bytes(bytes.fromhex(entry["signature"]))
            _require(bytes(signature).hex() == entry["signature"])
            schnorr.verify(signature, bytes.fromhex(entry["message"]), key.public_key)
    _check_meeting(document["meeting"], failures)
    _check_wire(document["wire"], failures)
    _check_envelopes(document["envelopes"], failures)
    _check_board(document["board"], failures)
    return failures


def _check_board(posts: dict[str, Any], failures: _Failures) -> None:
    for i, entry in enumerate(posts["posts"]):
        with failures.entry(f"board.posts[{i}] ({entry['kind']})"):
            body = bytes.fromhex(entry["body"])
            _require(bytes(board.parse(entry["kind"], body)) == body)
    for i, entry in enumerate(posts["refused"]):
        with failures.entry(f"board.refused[{i}] ({entry['kind']})"):
            attempt = functools.partial(board.parse, entry["kind"], bytes.fromhex(entry["body"]))
            _require(_refuses_with(board.BoardMessageError, attempt))
    with failures.entry("board.changes"):
        change = posts["changes"]
        key = next(
            board.KeyPost.parse(bytes.fromhex(e["body"]))
            for e in posts["posts"]
            if e["kind"] == "key"
        )
        made = board.KeyPost.changes(change["before"], change["after"])
        _require(made == (key.members_digest, key.base_digest, key.joined, key.left))
        _require(key.apply(change["before"]) == tuple(sorted(change["after"])))


def _check_envelopes(envelopes: dict[str, Any], failures: _Failures) -> None:
    doc, stream, kept = envelopes["document"], envelopes["stream"], envelopes["escrow"]
    with failures.entry("envelopes.document"):
        key, envelope = bytes.fromhex(doc["key"]), bytes.fromhex(doc["envelope"])
        _require(aead.open_document(key, doc["id"], envelope).hex() == doc["plaintext"])
        _require(_refuses_with(DecryptionError, lambda: aead.open_document(key, "other", envelope)))
    with failures.entry("envelopes.stream"):
        key, sealed = bytes.fromhex(stream["key"]), bytes.fromhex(stream["sealed"])
        opened = b"".join(aead.open_stream(key, stream["id"], [sealed[:100], sealed[100:]]))
        _require(opened.hex() == stream["plaintext"])
        cut = sealed[: -(16 + 100)]
        _require(
            _refuses_with(
                DecryptionError, lambda: b"".join(aead.open_stream(key, stream["id"], [cut]))
            )
        )
    with failures.entry("envelopes.escrow"):
        shares = bytes.fromhex(kept["keyserver_share"]), bytes.fromhex(kept["platform_share"])
        password = escrow.split_trust_password(*shares)
        _require(password.hex() == kept["password"])
        blob, context = bytes.fromhex(kept["blob"]), bytes.fromhex(kept["context"])
        _require(escrow.open_escrow(blob, password, context=context).hex() == kept["secret"])
        _require(
            _refuses_with(
                DecryptionError, lambda: escrow.open_escrow(blob, password, context=b"bob")
            )
        )


def _refuses_with(kind: type[Exception], attempt: Callable[[], object]) -> bool:
    try:
        attempt()
    except kind:
        return True
    return False


def _check_wire(wire: dict[str, Any], failures: _Failures) -> None:
    for i, entry in enumerate(wire["b64"]):
        with failures.entry(f"wire.b64[{i}]"):
            _require(protocol.b64encode(bytes.fromhex(entry["bytes"])) == entry["text"])
            _require(protocol.b64decode(entry["text"]).hex() == entry["bytes"])
    for i, entry in enumerate(wire["path_segments"]):
        with failures.entry(f"wire.path_segments[{i}]"):
            _require(protocol.path_segment(entry["id"]) == entry["segment"])
    for i, entry in enumerate(wire["queries"]):
        with failures.entry(f"wire.queries[{i}]"):
            _require(protocol.canonical_query(entry["query"]) == entry["canonical"])
    signer = VerifyingKey(bytes.fromhex(wire["signer"]))
    for i, r in enumerate(wire["requests"]):
        with failures.entry(f"wire.requests[{i}]"):
            headers = r["headers"]
            message = protocol.request_message(
                r["method"], protocol.signed_path(r["path"]), r["query"], bytes.fromhex(r["body"]),
                r["timestamp"], headers[protocol.NONCE_HEADER], device_id=r["device_id"],
            )  # fmt: skip
            _require(message.hex() == r["message"])
            _require(headers[protocol.DEVICE_HEADER] == r["device_id"])
            signer.verify(protocol.b64decode(headers[protocol.SIGNATURE_HEADER]), message)
    m = wire["messages"]
    with failures.entry("wire.messages"):
        _require(protocol.device_id_for(bytes(signer)) == m["device_id"])
        post = m["post_inputs"]
        made = protocol.post_message(
            post["room"], bytes.fromhex(post["post_id"]), post["kind"], m["device_id"],
            post["timestamp"], bytes.fromhex(post["body"]),
        )  # fmt: skip
        _require(made.hex() == m["post"])
        hello = protocol.hello_message(
            "m-1", "board", bytes.fromhex(m["challenge"]), m["device_id"]
        )
        _require(hello.hex() == m["hello"])
        proof = protocol.meeting_proof_message("key", "m-1", "alice", 2**40, b"\x01\x02")
        _require(proof.hex() == m["group_proof"])
        cert = protocol.device_certificate_message(
            "alice", m["device_id"], b"\x01" * 50, b"\x02" * 32
        )
        _require(cert.hex() == m["device_cert"])
        adding = protocol.device_proof_message(
            99, b"\x03" * 10, "a.b.c", b"\x04" * 50, b"\x05" * 32
        )
        _require(adding.hex() == m["device_proof"])


def _check_meeting(meeting: dict[str, Any], failures: _Failures) -> None:
    plan = meeting["schedule"]
    meeting_id, epoch, sender = plan["meeting_id"], int(plan["epoch"]), int(plan["sender"])
    plaintext = Plaintext.from_secret_bytes(bytes.fromhex(plan["plaintext"]))
    session = schedule.session_key(plaintext, meeting_id=meeting_id, epoch=epoch)
    with failures.entry("meeting.schedule"):
        _require(session.hex() == plan["session_key"])
        base = schedule.sender_base_key(
            session, meeting_id=meeting_id, epoch=epoch, sender=sender, stream=plan["stream"]
        )
        _require(base.hex() == plan["base_key"])
        _require(
            schedule.chat_key(session, meeting_id=meeting_id, epoch=epoch).hex() == plan["chat_key"]
        )
        kid = schedule.media_kid(epoch=epoch, sender=sender, stream=plan["stream"])
        _require(str(kid) == plan["kid"])
    with failures.entry("meeting.schedule.frames"):
        receiver = sframe.SFrameReceiver()
        receiver.add_key(int(plan["kid"]), bytes.fromhex(plan["base_key"]))
        for frame in plan["frames"]:
            payload = receiver.unprotect(bytes.fromhex(frame["frame"]), meeting_id.encode())
            _require(payload.hex() == frame["payload"])
    with failures.entry("meeting.schedule.chat"):
        sealed = bytes.fromhex(plan["chat"]["sealed"])
        opened = chat.open_sealed(
            session, sealed, meeting_id=meeting_id, epoch=epoch, sender=sender
        )
        _require(opened.hex() == plan["chat"]["text"])
    for i, entry in enumerate(meeting["members"]):
        with failures.entry(f"meeting.members[{i}]"):
            _require(member_digest(entry["members"]).hex() == entry["digest"])
            _require(security_code(session, epoch, entry["members"]) == entry["code"])


def _refuses(decode: Callable[[bytes], object], entry: dict[str, str]) -> bool:
    try:
        decode(bytes.fromhex(entry["bytes"]))
    except VeilCryptoError as error:
        return type(error).__name__ == entry["error"]
    return False


def _check_chain(name: str, chain: dict[str, Any], failures: _Failures) -> None:
    """Group -> user -> device: each level the document holds opens with its key (and
    the origin check), the transform keys verify and name the next key, and this SDK
    moves the level-0 value along them to a value the device opens."""
    keys = [PrivateKey.from_secret_bytes(bytes.fromhex(k)) for k in chain["keys"]]
    with failures.entry(f"{name}.public_keys"):
        _require([bytes(k.public_key).hex() for k in keys] == chain["public_keys"])
    plaintext = Plaintext.from_secret_bytes(bytes.fromhex(chain["plaintext"]))
    values = [EncryptedValue.from_bytes(bytes.fromhex(v)) for v in chain["levels"]]
    origin = values[0].verify()
    for level, value in enumerate(values):
        with failures.entry(f"{name}.levels[{level}]"):
            _require(decrypt(value.verify(), keys[level], origin=origin) == plaintext)
    hops = []
    for hop, raw in enumerate(chain["transform_keys"]):
        with failures.entry(f"{name}.transform_keys[{hop}]"):
            key = TransformKey.from_bytes(bytes.fromhex(raw)).verify()
            _require(key.to_public_key == keys[hop + 1].public_key)
            hops.append(key)
    with failures.entry(f"{name}.transformed_here"):
        moved = transform_chain(origin, hops, SigningKey.generate())
        _require(decrypt(moved, keys[2], origin=origin) == plaintext)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["make"]:
        json.dump(make(), sys.stdout, indent=1)
        print()
        return 0
    if argv[1:2] == ["check"] and len(argv) == 3:
        with open(argv[2], encoding="utf-8") as handle:
            failures = check(json.load(handle))
        for failure in failures:
            print(failure, file=sys.stderr)
        return 1 if failures else 0
    print("usage: python -m veil.vectors make | check FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
