"""Wire conventions shared by the services and the SDK (pure functions, no I/O).

Signed requests: a device signs, with its Ed25519 key, the canonical string

    veil-request-v2 \\n DEVICE \\n METHOD \\n PATH \\n QUERY \\n SHA-256(body) hex \\n
    TIMESTAMP \\n NONCE

where DEVICE is the signing device's id (so a signature made by one device cannot be
presented under another device's id), PATH is the path as the service routes it
(percent-decoded), QUERY is the query string's pairs sorted and re-encoded, TIMESTAMP
is Unix seconds and NONCE is 16 random bytes, base64url. The request carries them in
the ``Veil-Device``, ``Veil-Timestamp``, ``Veil-Nonce`` and ``Veil-Signature``
headers. Version 1 (without DEVICE) is no longer accepted.
"""

import base64
import binascii
import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode

from veil.crypto import schnorr
from veil.crypto.keys import PrivateKey, PublicKey
from veil.crypto.signing import SigningKey

DEVICE_HEADER = "veil-device"
TIMESTAMP_HEADER = "veil-timestamp"
NONCE_HEADER = "veil-nonce"
SIGNATURE_HEADER = "veil-signature"
NONCE_SIZE = 16

KEYSERVER_AUDIENCE = "veil-keyserver"
CONFERENCE_AUDIENCE = "veil-conference"
"""Default JWT audiences (``aud``) of the two services. They must differ: each service
releases one split-trust share to a token of the user, so a service able to replay the
tokens it receives at the other could collect both shares and open the user's escrow."""

MAX_ADD_MEMBERS = 100
"""Members one ``POST /v1/groups/{id}/members/batch`` adds: about 100 kB of body, and
about 0.4 s of checks in one transaction."""
MAX_LOOKUP_DEVICES = 500
"""Device ids one ``POST /v1/devices/lookup`` asks about."""

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    """Strict base64url: only the URL alphabet, no padding, canonical trailing bits."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url without padding") from None
    if b64encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def path_segment(value: str) -> str:
    """``value`` (an id) as one URL path segment: every character but the unreserved
    ones percent-encoded, and a segment of dots only (``.``, ``..``) written ``%2E``,
    which URL normalization would otherwise remove with the segment before it. So an
    id can neither leave its segment nor move the request to another route: what does
    not fit the services' id rule reaches the route it was meant for and is refused
    there. ``ValueError`` for an empty value, which would leave no segment at all."""
    if not value:
        raise ValueError("an id in a URL path is not empty")
    if value.strip(".") == "":
        return "%2E" * len(value)
    return quote(value, safe="")


def signed_path(path: str) -> str:
    """The PATH a request signature covers for a path as sent (its ids made with
    ``path_segment``): percent-decoded, as the key service routes it."""
    return unquote(path)


def canonical_query(query: str) -> str:
    return urlencode(sorted(parse_qsl(query, keep_blank_values=True)))


def request_message(
    method: str, path: str, query: str, body: bytes, timestamp: int, nonce: str, *, device_id: str
) -> bytes:
    """The canonical string a device signs for one request (see the module docstring).
    ``ValueError`` for a device id with a line break, which would make it ambiguous."""
    if "\n" in device_id:
        raise ValueError("a device id has no line break")
    return "\n".join(
        (
            "veil-request-v2",
            device_id,
            method.upper(),
            path,
            canonical_query(query),
            hashlib.sha256(body).hexdigest(),
            str(timestamp),
            nonce,
        )
    ).encode()


def sign_request(
    key: SigningKey,
    device_id: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: int,
) -> dict[str, str]:
    """The headers that authenticate one request from ``device_id``."""
    nonce = b64encode(secrets.token_bytes(NONCE_SIZE))
    message = request_message(method, path, query, body, timestamp, nonce, device_id=device_id)
    signature = key.sign(message)
    return {
        DEVICE_HEADER: device_id,
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: b64encode(signature),
    }


ESCROW_DOCUMENT_PREFIX = "veil-escrow."
"""Document ids under this prefix are reserved: ``veil-escrow.<user>`` holds the grant
of that user's escrow password in device-approval mode, and the key service lets only
a device of ``<user>`` create it (anyone else could otherwise create it first, before
the user registers, and lock the user out of approval mode)."""


def escrow_document_id(user_id: str) -> str:
    """The id of ``user_id``'s escrow-password document (device-approval mode)."""
    return ESCROW_DOCUMENT_PREFIX + user_id


def device_id_for(signing_key: bytes) -> str:
    """A device's id: a digest of the signing key it registered with, so a new device
    knows its id before any service answers (device approval needs this). The id stays
    when the device later rotates its keys."""
    return hashlib.sha256(b"veil-device-id-v1" + signing_key).hexdigest()[:32]


def device_proof_message(
    timestamp: int,
    transform_key: bytes,
    token: str,
    user_public_key: bytes,
    device_signing_key: bytes,
) -> bytes:
    """What a Schnorr proof with the user's key covers when a device is added: the
    timestamp, the user -> device transform key, the JWT, the user's public key, and the
    device's signing key (so a captured request cannot be replayed for another key)."""
    fields = (transform_key, token.encode(), user_public_key, device_signing_key)
    return (
        b"veil-add-device-v2"
        + timestamp.to_bytes(8, "big")
        + b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    )


def group_proof_message(
    action: str, group_id: str, subject: str, timestamp: int, payload: bytes = b""
) -> bytes:
    """What a Schnorr proof with a group's key covers for a change to the group:
    the action, the group, the user it concerns, when, and what it carries."""
    parts = [p.encode() for p in (action, group_id, subject)] + [payload]
    fields = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    return b"veil-group-v1" + fields + timestamp.to_bytes(8, "big")


def _fields(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def post_message(
    room_id: str, post_id: bytes, kind: str, device_id: str, timestamp: int, body: bytes
) -> bytes:
    """What a device signs to post on a meeting's board: the room, a random post id
    (so the board refuses a replayed post), the kind, the poster, when, and the body."""
    return (
        b"veil-post-v1"
        + _fields(room_id.encode(), post_id, kind.encode(), device_id.encode(), body)
        + timestamp.to_bytes(8, "big")
    )


def device_certificate_message(
    user_id: str, device_id: str, public_key: bytes, signing_key: bytes
) -> bytes:
    """What a user's key certifies (a Schnorr signature checked against the user's
    client public key) for each of its devices: whose device it is, its id and its
    keys. The key service publishes the certificate with the device's record, and
    clients check it against the user's pinned keys, so the key service cannot present
    keys of its own as a user's device."""
    return b"veil-device-cert-v1" + _fields(
        user_id.encode(), device_id.encode(), public_key, signing_key
    )


def certify_device(
    user_key: PrivateKey, user_id: str, device_id: str, public_key: bytes, signing_key: bytes
) -> bytes:
    """The user's certificate of a device's id and keys (made with the user's client key)."""
    message = device_certificate_message(user_id, device_id, public_key, signing_key)
    return bytes(schnorr.sign(message, user_key))


def check_device_certificate(
    certificate: bytes,
    identity: PublicKey,
    user_id: str,
    device_id: str,
    public_key: bytes,
    signing_key: bytes,
) -> None:
    """Nothing, or ``DecodeError`` (malformed) or ``InvalidSignature`` (not made by
    ``identity`` for this user, device id and keys). The key service checks it when a
    device registers or rotates; clients when they trust a device's record."""
    message = device_certificate_message(user_id, device_id, public_key, signing_key)
    schnorr.verify(schnorr.SchnorrSignature.from_bytes(certificate), message, identity)


def hello_message(room_id: str, channel: str, challenge: bytes, device_id: str) -> bytes:
    """What a device signs to open a board or media connection: the server's fresh
    challenge, so a captured hello cannot open another connection."""
    return b"veil-hello-v1" + _fields(
        room_id.encode(), channel.encode(), challenge, device_id.encode()
    )


class MediaKind(enum.IntEnum):
    """The media relay's routing header: one byte in front of each SFrame frame."""

    AUDIO = 1
    VIDEO = 2
    DATA = 3


def meeting_proof_message(
    action: str, meeting_id: str, user_id: str, timestamp: int, payload: bytes = b""
) -> bytes:
    """What a meeting admin proves with the meeting group's private key on a ``key`` post
    (over the encrypted key) or an ``end`` post: only admins hold that key, so anyone who
    reads the group's public key can tell such a post from a member's or an outsider's."""
    return group_proof_message(f"meeting-{action}", meeting_id, user_id, timestamp, payload)


@dataclass(frozen=True)
class MeetingProof:
    """A meeting admin's proof on a board post: the ``timestamp`` and ``proof`` fields of
    the post's JSON body. Made by clients; checked by clients and, for ``end``, by the
    conference service."""

    timestamp: int
    signature: schnorr.SchnorrSignature

    @classmethod
    def make(
        cls,
        action: str,
        meeting_id: str,
        user_id: str,
        now: int,
        group_key: PrivateKey,
        payload: bytes = b"",
    ) -> "MeetingProof":
        message = meeting_proof_message(action, meeting_id, user_id, now, payload)
        return cls(now, schnorr.sign(message, group_key))

    @classmethod
    def read(cls, body: object) -> "MeetingProof":
        """Strictly decode the fields of a post body; ``ValueError`` if malformed."""
        if not isinstance(body, dict):
            raise ValueError("a proved post's body is a JSON object")
        timestamp, proof = body.get("timestamp"), body.get("proof")
        if type(timestamp) is not int or not 0 <= timestamp < 2**64 or not isinstance(proof, str):
            raise ValueError(
                "a proved post has an integer timestamp in [0, 2^64) and a base64url proof"
            )
        return cls(timestamp, schnorr.SchnorrSignature.from_bytes(b64decode(proof)))

    def fields(self) -> dict[str, object]:
        return {"timestamp": self.timestamp, "proof": b64encode(bytes(self.signature))}

    def verify(
        self,
        action: str,
        meeting_id: str,
        user_id: str,
        group_key: PublicKey,
        payload: bytes = b"",
    ) -> None:
        """Nothing, or ``InvalidSignature``."""
        message = meeting_proof_message(action, meeting_id, user_id, self.timestamp, payload)
        schnorr.verify(self.signature, message, group_key)
