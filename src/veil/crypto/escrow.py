"""User-key escrow (DESIGN §2).

A user's master private key is stored at the key service under AES-256-GCM with a
key from PBKDF2-HMAC-SHA256 (at least 600,000 iterations, the OWASP 2023 figure) of
a password; by default the password is made from two 128-bit shares, one held by the
key service and one by the platform::

    01 20 | iterations:4 | salt:16 | nonce:12 | ciphertext+tag
"""

import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from veil.crypto.encoding import Kind, Reader, header
from veil.crypto.errors import DecodeError, DecryptionError, InvalidLength

KEY_SIZE: Final = 32
SHARE_SIZE: Final = 16
MIN_ITERATIONS: Final = 600_000
MAX_ITERATIONS: Final = 10_000_000
"""Upper bound on what ``open_escrow`` accepts, so a hostile blob cannot stall a client."""
_SALT_SIZE: Final = 16
_NONCE_SIZE: Final = 12


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
