"""A service's own sealing: AES-256-GCM under a key derived from its root secret.

The key service keeps each user's augmentation secret sealed in its database under
a key only its replicas hold (from ``VEIL_SERVICE_SECRET``), bound to the user id as
AAD, so a database dump alone opens nothing and a sealed value cannot be moved to
another user. Format: ``nonce (12 random bytes) || ciphertext || tag``.
"""

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from veil.crypto.errors import DecryptionError

_NONCE_SIZE: Final = 12


def derive_service_key(root: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose of a service, from its root secret (HKDF-SHA256)."""
    info = b"veil/v1 keyserver " + purpose
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(root)


class Sealer:
    """Seals and opens secrets under one service key; ``context`` is bound as AAD."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer(<hidden>)"

    def seal(self, secret: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, secret, context)

    def open(self, sealed: bytes, *, context: bytes) -> bytes:
        """The secret, or ``DecryptionError`` (tampered, another context or key)."""
        try:
            return self._aead.decrypt(sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:], context)
        except InvalidTag:
            raise DecryptionError from None
