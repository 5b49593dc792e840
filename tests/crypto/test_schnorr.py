"""Schnorr proofs of possession with PRE key pairs, plain and augmented."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil.crypto import pairing as pg
from veil.crypto import schnorr
from veil.crypto.errors import (
    InvalidLength,
    InvalidSignature,
    NonCanonicalEncoding,
    UnsupportedVersion,
)
from veil.crypto.keys import AugmentationSecret, PrivateKey
from veil.crypto.schnorr import SchnorrSignature


@given(st.binary(max_size=256))
def test_sign_verify_round_trip(message: bytes) -> None:
    key = PrivateKey.generate()
    signature = SchnorrSignature.from_bytes(bytes(schnorr.sign(message, key)))
    schnorr.verify(signature, message, key.public_key)


def test_wrong_message_key_or_signature_fails() -> None:
    key, other = PrivateKey.generate(), PrivateKey.generate()
    signature = schnorr.sign(b"add device", key)
    with pytest.raises(InvalidSignature):
        schnorr.verify(signature, b"add devicf", key.public_key)
    with pytest.raises(InvalidSignature):
        schnorr.verify(signature, b"add device", other.public_key)
    forged = SchnorrSignature(signature.commitment, signature.response + pg.random_scalar())
    with pytest.raises(InvalidSignature):
        schnorr.verify(forged, b"add device", key.public_key)
    moved = SchnorrSignature(pg.P * pg.random_scalar(), signature.response)
    with pytest.raises(InvalidSignature):
        schnorr.verify(moved, b"add device", key.public_key)


def test_augmented_master_key() -> None:
    client = PrivateKey.generate()
    secret = AugmentationSecret.generate()
    master = client.public_key.augment(secret)
    proof = schnorr.sign(b"add device", client, public_key=master)
    schnorr.verify(proof, b"add device", master, augmentation=secret)
    # Without the service's secret, or with another one, the proof does not verify.
    with pytest.raises(InvalidSignature):
        schnorr.verify(proof, b"add device", master)
    with pytest.raises(InvalidSignature):
        schnorr.verify(proof, b"add device", master, augmentation=AugmentationSecret.generate())
    # A proof bound to the client key is not a proof for the master key.
    unbound = schnorr.sign(b"add device", client)
    with pytest.raises(InvalidSignature):
        schnorr.verify(unbound, b"add device", master, augmentation=secret)


def test_wire_format_is_strict() -> None:
    raw = bytes(schnorr.sign(b"m", PrivateKey.generate()))
    assert len(raw) == SchnorrSignature.SIZE == 82
    with pytest.raises(InvalidLength):
        SchnorrSignature.from_bytes(raw + b"\x00")
    with pytest.raises(NonCanonicalEncoding):
        SchnorrSignature.from_bytes(raw[:-32] + pg.R.to_bytes(32, "big"))
    with pytest.raises(TypeError):
        schnorr.verify(raw, b"m", PrivateKey.generate().public_key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("version", UnsupportedVersion),
        ("kind", UnsupportedVersion),
        ("R", InvalidSignature),
        ("s", InvalidSignature),
    ],
)
def test_signature_field_tampering(field: str, expected: type[Exception]) -> None:
    key = PrivateKey.generate()
    raw = bytes(schnorr.sign(b"add member", key))
    replacement = {
        "version": (0, b"\x02"),
        "kind": (1, b"\x03"),
        "R": (2, pg.encode_g1(pg.P * pg.random_scalar())),
        "s": (50, pg.encode_scalar(pg.random_scalar())),
    }
    offset, new = replacement[field]
    tampered = raw[:offset] + new + raw[offset + len(new) :]
    with pytest.raises(expected):
        schnorr.verify(SchnorrSignature.from_bytes(tampered), b"add member", key.public_key)
