"""Ed25519 device signatures (RFC 8032), through ``cryptography``.

Devices sign key-service requests, board posts, ciphertexts and transform keys.
``verify`` returns nothing or raises ``InvalidSignature``.
"""

import hmac
from typing import Final

from cryptography.exceptions import InvalidSignature as _CryptographyInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from veil.crypto.errors import (
    InvalidLength,
    InvalidSignature,
    NonCanonicalEncoding,
    NotInSubgroup,
    NotOnCurve,
)

SIGNATURE_SIZE: Final = 64
_ED25519_P: Final = 2**255 - 19


def _y(hex_le: str) -> int:
    return int.from_bytes(bytes.fromhex(hex_le), "little") & ((1 << 255) - 1)


# The y coordinates of the points of order 1, 2, 4 and 8 (libsodium's blocklist): a key
# among them verifies forged signatures for every message, so none is accepted.
_SMALL_ORDER_Y: Final = frozenset(
    {
        0,
        1,
        _ED25519_P - 1,
        _y("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        _y("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    }
)


class VerifyingKey:
    """An Ed25519 public key (32 bytes)."""

    SIZE: Final = 32
    __slots__ = ("_key", "_raw")

    def __init__(self, data: bytes) -> None:
        if len(data) != self.SIZE:
            raise InvalidLength(f"Ed25519 public key: expected {self.SIZE} bytes, got {len(data)}")
        self._raw = bytes(data)
        y = int.from_bytes(self._raw, "little") & ((1 << 255) - 1)
        if y >= _ED25519_P:
            raise NonCanonicalEncoding("Ed25519 public key: y is not below the field modulus")
        if y in _SMALL_ORDER_Y:
            raise NotInSubgroup("Ed25519 public key: a point of small order")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self._raw)
        except ValueError:
            raise NotOnCurve("Ed25519 public key: not a curve point") from None

    def __bytes__(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyingKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyingKey({self._raw.hex()[:16]}…)"

    def verify(self, signature: bytes, message: bytes) -> None:
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature
        try:
            self._key.verify(signature, message)
        except _CryptographyInvalidSignature:
            raise InvalidSignature from None


class SigningKey:
    """An Ed25519 private key. Its bytes leave only through ``to_secret_bytes``."""

    SIZE: Final = 32
    __slots__ = ("_key", "_verifying_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._verifying_key = VerifyingKey(key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_secret_bytes(cls, data: bytes) -> "SigningKey":
        if len(data) != cls.SIZE:
            raise InvalidLength(f"Ed25519 private key: expected {cls.SIZE} bytes, got {len(data)}")
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    def to_secret_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    @property
    def verifying_key(self) -> VerifyingKey:
        return self._verifying_key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(<secret>, verifying_key={self._verifying_key!r})"

    def __hash__(self) -> int:
        raise TypeError("SigningKey is not hashable (it would leak through hash tables)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningKey) and hmac.compare_digest(
            self.to_secret_bytes(), other.to_secret_bytes()
        )
