"""PRE key pairs, the key service's augmentation secret, and PRE plaintexts.

These are small value types in the manner of PyNaCl: ``generate()``, strict
``from_bytes``/``from_secret_bytes``, ``SIZE`` constants. Secrets hide themselves:
their ``repr`` is masked, ``hash()`` raises, equality is constant time, and their
bytes leave only through ``to_secret_bytes()``.
"""

import hmac
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from veil.crypto import pairing as pg
from veil.crypto.encoding import Kind, Reader, header
from veil.crypto.errors import IdentityElement


class _SecretScalar:
    """A secret scalar; the base of ``PrivateKey`` and ``AugmentationSecret``."""

    SIZE: ClassVar[int] = pg.SCALAR_SIZE
    __slots__ = ("_neg_q", "_scalar")

    def __init__(self, scalar: pg.Fr) -> None:
        if scalar.is_zero():
            raise ValueError(f"{type(self).__name__} cannot be zero")
        self._scalar = scalar
        self._neg_q: pg.G2 | None = None

    @classmethod
    def generate(cls) -> Self:
        return cls(pg.random_scalar())

    @classmethod
    def from_secret_bytes(cls, data: bytes) -> Self:
        return cls(pg.decode_scalar(data))

    def to_secret_bytes(self) -> bytes:
        return pg.encode_scalar(self._scalar)

    def negated_q(self) -> pg.G2:
        """``-k * Q``, computed once (blinded): the form in which the secret is used."""
        if self._neg_q is None:
            self._neg_q = pg.mul_secret(pg.Q, -self._scalar)
        return self._neg_q

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"

    def __hash__(self) -> int:
        raise TypeError(f"{type(self).__name__} is not hashable")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _SecretScalar)
            and type(other) is type(self)
            and (hmac.compare_digest(self.to_secret_bytes(), other.to_secret_bytes()))
        )


class AugmentationSecret(_SecretScalar):
    """The key service's per-user secret ``s`` (DESIGN §2, augmentation).

    A user's master public key is ``pk_client + s*P``; transform keys made by the
    client are finished by the service with ``hashedK - s*Q``.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A PRE public key ``a*P`` in G1. Wire form: version, kind, 48-byte point."""

    point: pg.G1
    SIZE: ClassVar[int] = 2 + pg.G1_SIZE

    def __post_init__(self) -> None:
        # The wire decoder refuses the identity, but a key built in-process (an
        # augmentation, a caller's own arithmetic) must be refused too: everything
        # encrypted to the identity pairs to 1, so its body is the plaintext itself.
        if not isinstance(self.point, pg.G1):
            raise TypeError("a public key is a G1 point")
        if self.point.is_zero():
            raise IdentityElement("public key: the identity is not a public key")

    @classmethod
    def from_bytes(cls, data: bytes) -> "PublicKey":
        reader = Reader(data, "public key")
        reader.expect_header(Kind.PUBLIC_KEY)
        point = pg.decode_g1(reader.take(pg.G1_SIZE), what="public key")
        reader.finish()
        return cls(point)

    def __bytes__(self) -> bytes:
        return header(Kind.PUBLIC_KEY) + pg.encode_g1(self.point)

    def augment(self, secret: AugmentationSecret) -> "PublicKey":
        """``self + s*P``: the master public key of a user whose service secret is ``s``."""
        return PublicKey(self.point + pg.mul_secret(pg.P, secret._scalar))

    def __repr__(self) -> str:
        return f"PublicKey({pg.encode_g1(self.point).hex()[:16]}…)"


class PrivateKey(_SecretScalar):
    """A PRE private key ``a``. Made on the client; device keys never leave the device."""

    __slots__ = ("_public",)

    def __init__(self, scalar: pg.Fr) -> None:
        super().__init__(scalar)
        self._public = PublicKey(pg.mul_secret(pg.P, scalar))

    @property
    def public_key(self) -> PublicKey:
        return self._public


class Plaintext:
    """A PRE plaintext: a uniform element of GT. Symmetric keys are derived from it."""

    SIZE: Final = pg.GT_SIZE
    __slots__ = ("_value",)

    def __init__(self, value: pg.GT) -> None:
        self._value = value

    @classmethod
    def generate(cls) -> "Plaintext":
        return cls(pg.random_gt())

    @classmethod
    def from_secret_bytes(cls, data: bytes) -> "Plaintext":
        return cls(pg.decode_gt(data, what="plaintext"))

    def to_secret_bytes(self) -> bytes:
        return pg.encode_gt(self._value)

    @property
    def element(self) -> pg.GT:
        return self._value

    def derive_key(self, purpose: str, *, context: bytes = b"", length: int = 32) -> bytes:
        """HKDF-SHA256 (RFC 5869) of the plaintext, labelled by ``purpose`` and ``context``."""
        label = purpose.encode() if isinstance(purpose, str) else b""
        if not 0 < len(label) <= 0xFFFF:
            raise ValueError("a key derivation needs a purpose label (1 to 65535 bytes)")
        info = b"veil/v1 " + len(label).to_bytes(2, "big") + label + context
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info)
        return hkdf.derive(self.to_secret_bytes())

    def __repr__(self) -> str:
        return "Plaintext(<secret>)"

    def __hash__(self) -> int:
        raise TypeError("Plaintext is not hashable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plaintext) and hmac.compare_digest(
            self.to_secret_bytes(), other.to_secret_bytes()
        )
