"""The meeting key schedule (DESIGN §4): session, per-sender SFrame and chat keys, KIDs.

The host encrypts a PRE plaintext per epoch; everyone derives the session key
``SK_n`` from it, and from ``SK_n`` each sender's SFrame base key and the chat key.
Every derivation is HKDF-SHA256 (RFC 5869) with a purpose label and length-prefixed
context, so no two purposes or meetings can share a key.

SFrame KIDs carry the sender, its stream and the epoch::

    kid = sender << 20 | stream << 16 | (epoch mod 2^16)

A *sender* is a number below 2^44 that one join of one device draws at random and
announces (signed): a client that restarts joins again and draws a new one. A *stream* (0-15)
is one media track of that join (audio, camera, screen...). Every (sender, stream,
epoch) has its own base key, so two SFrame senders never share a key and nonce space
(AES-GCM nonce reuse would leak plaintexts). The low 16 bits of the epoch tell a
receiver which epoch it holds (current or previous) a frame needs; the full epoch
goes into the key derivation.
"""

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from veil.crypto.keys import Plaintext

KEY_SIZE: Final = 32
EPOCH_BITS: Final = 16
STREAM_BITS: Final = 4
STREAM_LIMIT: Final = 2**STREAM_BITS
SENDER_LIMIT: Final = 2 ** (64 - EPOCH_BITS - STREAM_BITS)


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
