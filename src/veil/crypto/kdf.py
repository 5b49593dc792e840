"""Veil's key schedule (DESIGN §2, §4) and user-key escrow.

Meeting keys: the host encrypts a PRE plaintext per epoch; everyone derives the
session key ``SK_n`` from it, and from ``SK_n`` each sender's SFrame base key and
the chat key. Every derivation is HKDF-SHA256 (RFC 5869) with a purpose label and
length-prefixed context, so no two purposes or meetings can share a key.

SFrame KIDs carry the sender, its stream and the epoch::

    kid = sender << 20 | stream << 16 | (epoch mod 2^16)

A *sender* is a number below 2^44 that one join of one device draws at random and
announces (signed): a client that restarts joins again and draws a new one. A *stream* (0-15)
is one media track of that join (audio, camera, screen...). Every (sender, stream,
epoch) has its own base key, so two SFrame senders never share a key and nonce space
(AES-GCM nonce reuse would leak plaintexts). The low 16 bits of the epoch tell a
receiver which epoch it holds (current or previous) a frame needs; the full epoch
goes into the key derivation.

Escrow: a user's master private key is stored at the key service under
AES-256-GCM with a key from PBKDF2-HMAC-SHA256 (at least 600,000 iterations, the
OWASP 2023 figure) of a password; by default the password is made from two
128-bit shares, one held by the key service and one by the platform::

    01 20 | iterations:4 | salt:16 | nonce:12 | ciphertext+tag
"""

import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from veil.crypto.encoding import Kind, Reader, header
from veil.crypto.errors import DecodeError, DecryptionError, InvalidLength
from veil.crypto.keys import Plaintext

KEY_SIZE: Final = 32
SHARE_SIZE: Final = 16
MIN_ITERATIONS: Final = 600_000
MAX_ITERATIONS: Final = 10_000_000
"""Upper bound on what ``open_escrow`` accepts, so a hostile blob cannot stall a client."""
EPOCH_BITS: Final = 16
STREAM_BITS: Final = 4
STREAM_LIMIT: Final = 2**STREAM_BITS
SENDER_LIMIT: Final = 2 ** (64 - EPOCH_BITS - STREAM_BITS)
_SALT_SIZE: Final = 16
_NONCE_SIZE: Final = 12


def _context(meeting_id: str, *numbers: int) -> bytes:
    if not isinstance(meeting_id, str):
        raise TypeError("meeting_id must be a str")
    raw = meeting_id.encode()
    if not 0 < len(raw) <= 0xFFFF:
        raise ValueError("meeting_id must be 1 to 65535 bytes of UTF-8")
    for n in numbers:
        if not 0 <= n < 2**64:
            raise ValueError("epochs and senders are unsigned 64-bit numbers")
    return len(raw).to_bytes(2, "big") + raw + b"".join(n.to_bytes(8, "big") for n in numbers)


def _expand(key: bytes, label: bytes, context: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError(f"a session key is {KEY_SIZE} bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=label + context)
    return hkdf.derive(key)


def session_key(plaintext: Plaintext, *, meeting_id: str, epoch: int) -> bytes:
    """``SK_n``: the meeting's session key for ``epoch``, from its PRE plaintext."""
    return plaintext.derive_key("meeting session key", context=_context(meeting_id, epoch))


def _check_source(sender: int, stream: int) -> None:
    if not 0 <= sender < SENDER_LIMIT:
        raise ValueError("a sender number lies in [0, 2^44)")
    if not 0 <= stream < STREAM_LIMIT:
        raise ValueError("a stream number lies in [0, 16)")


def sender_base_key(
    session_key: bytes, *, meeting_id: str, epoch: int, sender: int, stream: int = 0
) -> bytes:
    """One sender's SFrame base key for one stream: its own key and nonce space."""
    _check_source(sender, stream)
    context = _context(meeting_id, epoch, sender, stream)
    return _expand(session_key, b"veil/v1 sframe base", context)


def chat_key(session_key: bytes, *, meeting_id: str, epoch: int) -> bytes:
    """The AES-256-GCM key for the meeting's chat during ``epoch``."""
    return _expand(session_key, b"veil/v1 chat", _context(meeting_id, epoch))


def media_kid(*, epoch: int, sender: int, stream: int = 0) -> int:
    _check_source(sender, stream)
    if not 0 <= epoch < 2**64:
        raise ValueError("an epoch lies in [0, 2^64)")
    return (
        (sender << (EPOCH_BITS + STREAM_BITS))
        | (stream << EPOCH_BITS)
        | (epoch & (2**EPOCH_BITS - 1))
    )


def parse_media_kid(kid: int) -> tuple[int, int, int]:
    """``(epoch mod 2^16, sender, stream)`` from a KID made by ``media_kid``."""
    if not 0 <= kid < 2**64:
        raise ValueError("an SFrame KID lies in [0, 2^64)")
    return (
        kid & (2**EPOCH_BITS - 1),
        kid >> (EPOCH_BITS + STREAM_BITS),
        (kid >> EPOCH_BITS) & (STREAM_LIMIT - 1),
    )


# --- escrow ---------------------------------------------------------------------------


def new_share() -> bytes:
    """A fresh 128-bit share of a split-trust escrow password."""
    return os.urandom(SHARE_SIZE)


def split_trust_password(keyserver_share: bytes, platform_share: bytes) -> bytes:
    """The escrow password from the key service's and the platform's shares."""
    for share in (keyserver_share, platform_share):
        if not isinstance(share, bytes) or len(share) != SHARE_SIZE:
            raise ValueError(f"each share is {SHARE_SIZE} bytes")
    label = b"veil/v1 split-trust password"
    return hashlib.sha256(label + keyserver_share + platform_share).digest()


def _escrow_key(password: bytes, salt: bytes, iterations: int) -> bytes:
    if not password:
        raise ValueError("an escrow password must not be empty")
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, iterations=iterations)
    return kdf.derive(password)


def seal_escrow(
    secret: bytes, password: bytes, *, context: bytes, iterations: int = MIN_ITERATIONS
) -> bytes:
    """Encrypt ``secret`` under ``password``; ``context`` (e.g. the user id) is bound as AAD."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must lie in [{MIN_ITERATIONS}, {MAX_ITERATIONS}]")
    salt, nonce = os.urandom(_SALT_SIZE), os.urandom(_NONCE_SIZE)
    head = header(Kind.ESCROW) + iterations.to_bytes(4, "big") + salt + nonce
    key = _escrow_key(password, salt, iterations)
    return head + AESGCM(key).encrypt(nonce, secret, head + context)


def _read_escrow(blob: bytes) -> tuple[int, bytes, bytes, bytes]:
    reader = Reader(blob, "escrow blob")
    reader.expect_header(Kind.ESCROW)
    iterations = reader.uint(4)
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise DecodeError(f"escrow blob: {iterations} PBKDF2 iterations is out of policy")
    salt = reader.take(_SALT_SIZE)
    nonce = reader.take(_NONCE_SIZE)
    if reader.remaining() < 16:
        raise InvalidLength("escrow blob: shorter than its tag")
    return iterations, salt, nonce, reader.take(reader.remaining())


def check_escrow(blob: bytes) -> None:
    """``DecodeError`` unless ``blob`` is a well-formed escrow blob within the KDF policy
    (what a key service can check without the password)."""
    _read_escrow(blob)


def open_escrow(blob: bytes, password: bytes, *, context: bytes) -> bytes:
    """Decrypt an escrow blob; ``DecryptionError`` for a wrong password or context."""
    iterations, salt, nonce, body = _read_escrow(blob)
    key = _escrow_key(password, salt, iterations)
    try:
        return AESGCM(key).decrypt(nonce, body, blob[: len(blob) - len(body)] + context)
    except InvalidTag:
        raise DecryptionError from None
