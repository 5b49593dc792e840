"""Schnorr signatures with PRE key pairs over G1: proofs of possession.

A client proves it holds a user's or group's private key ``a`` (for ``pk = a*P``)
by signing a message the key service chose the shape of (timestamp, transform
key, JWT, public key). ``R = k*P``, ``c = H(R, pk, message)``, ``s = k + c*a``;
the check is ``s*P == R + c*pk``.

Augmented keys (DESIGN §2): a user's master key ``pk`` is ``pk_client + sigma*P``
and the client holds only ``a_client``. The proof is made with ``a_client`` but
binds the *master* key in the challenge; the key service, which holds ``sigma``,
verifies it against ``pk - sigma*P``.

Wire form: ``01 04 | R:48 | s:32`` (82 bytes).
"""

from dataclasses import dataclass
from typing import ClassVar, Final

from veil.crypto import pairing as pg
from veil.crypto.encoding import Kind, Reader, header
from veil.crypto.errors import InvalidSignature
from veil.crypto.keys import AugmentationSecret, PrivateKey, PublicKey

_DOMAIN: Final = b"veil/v1 schnorr-g1"


@dataclass(frozen=True, slots=True)
class SchnorrSignature:
    commitment: pg.G1  # R
    response: pg.Fr  # s
    SIZE: ClassVar[int] = 2 + pg.G1_SIZE + pg.SCALAR_SIZE

    def __bytes__(self) -> bytes:
        return (
            header(Kind.SCHNORR_SIGNATURE)
            + pg.encode_g1(self.commitment)
            + pg.encode_scalar(self.response)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "SchnorrSignature":
        reader = Reader(data, "Schnorr signature")
        reader.expect_header(Kind.SCHNORR_SIGNATURE)
        commitment = pg.decode_g1(reader.take(pg.G1_SIZE), what="Schnorr signature R")
        response = pg.decode_scalar(reader.take(pg.SCALAR_SIZE))
        reader.finish()
        return cls(commitment, response)


def _challenge(commitment: pg.G1, public_key: PublicKey, message: bytes) -> pg.Fr:
    return pg.hash_to_scalar(_DOMAIN, pg.encode_g1(commitment), bytes(public_key), message)


def sign(
    message: bytes, signer: PrivateKey, *, public_key: PublicKey | None = None
) -> SchnorrSignature:
    """Sign with ``signer``. ``public_key`` is the key the proof is bound to: the
    signer's own by default, or the augmented master key that contains it."""
    k = pg.random_scalar()
    commitment = pg.mul_secret(pg.P, k)
    c = _challenge(commitment, public_key or signer.public_key, message)
    return SchnorrSignature(commitment, k + c * signer._scalar)


def verify(
    signature: SchnorrSignature,
    message: bytes,
    public_key: PublicKey,
    *,
    augmentation: AugmentationSecret | None = None,
) -> None:
    """Return nothing or raise ``InvalidSignature``. With ``augmentation``, ``public_key``
    is an augmented master key and the proof was made with its client part."""
    if not isinstance(signature, SchnorrSignature):
        raise TypeError("verify() takes a SchnorrSignature")
    c = _challenge(signature.commitment, public_key, message)
    key_point = public_key.point
    if augmentation is not None:
        key_point = key_point - pg.mul_secret(pg.P, augmentation._scalar)
    if pg.P * signature.response != signature.commitment + key_point * c:
        raise InvalidSignature
