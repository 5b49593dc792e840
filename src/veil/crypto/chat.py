"""Meeting chat sealing: AES-256-GCM under the epoch's chat key (``schedule.chat_key``).

A sealed message is ``nonce (12 random bytes) || ciphertext || tag``. The AAD binds
it to its meeting, epoch and sender number, so a message cannot be replayed into
another meeting or epoch, or shown as another sender's:

    "veil-chat-v1" || meeting id (UTF-8) || 0x00 || "<epoch>:<sender>" (ASCII decimal)
"""

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.crypto.errors import DecryptionError, InvalidLength
from veil.crypto.schedule import chat_key

NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16


def _aad(meeting_id: str, epoch: int, sender: int) -> bytes:
    return b"veil-chat-v1" + meeting_id.encode() + b"\0" + f"{epoch}:{sender}".encode()


def seal(session_key: bytes, text: bytes, *, meeting_id: str, epoch: int, sender: int) -> bytes:
    """``text`` sealed for the meeting's members holding ``epoch``'s session key."""
    key = chat_key(session_key, meeting_id=meeting_id, epoch=epoch)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, text, _aad(meeting_id, epoch, sender))


def open_sealed(
    session_key: bytes, sealed: bytes, *, meeting_id: str, epoch: int, sender: int
) -> bytes:
    """The text, or ``DecryptionError`` (another key, meeting, epoch or sender, or
    tampered); ``InvalidLength`` if too short to be a sealed message."""
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise InvalidLength("a sealed chat message is at least 28 bytes")
    key = chat_key(session_key, meeting_id=meeting_id, epoch=epoch)
    try:
        return AESGCM(key).decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _aad(meeting_id, epoch, sender)
        )
    except InvalidTag:
        raise DecryptionError from None
