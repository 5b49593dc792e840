"""Ed25519 device signatures, including RFC 8032 §7.1 TEST 1."""

import pytest

from veil.crypto.errors import (
    InvalidLength,
    InvalidSignature,
    NonCanonicalEncoding,
    NotInSubgroup,
)
from veil.crypto.signing import SigningKey, VerifyingKey

RFC8032_TEST1 = {
    "secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
}


def test_rfc8032_test_1() -> None:
    key = SigningKey.from_secret_bytes(bytes.fromhex(RFC8032_TEST1["secret"]))
    assert bytes(key.verifying_key).hex() == RFC8032_TEST1["public"]
    assert key.sign(b"").hex() == RFC8032_TEST1["signature"]
    VerifyingKey(bytes.fromhex(RFC8032_TEST1["public"])).verify(key.sign(b""), b"")


def test_bad_signatures_and_lengths() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"post")
    with pytest.raises(InvalidSignature):
        key.verifying_key.verify(signature, b"posT")
    with pytest.raises(InvalidSignature):
        SigningKey.generate().verifying_key.verify(signature, b"post")
    with pytest.raises(InvalidSignature):
        key.verifying_key.verify(signature[:-1], b"post")
    with pytest.raises(InvalidLength):
        VerifyingKey(bytes(31))


def test_signing_key_hides_itself() -> None:
    key = SigningKey.generate()
    assert key.to_secret_bytes().hex() not in repr(key)
    with pytest.raises(TypeError):
        hash(key)
    assert SigningKey.from_secret_bytes(key.to_secret_bytes()) == key


SMALL_ORDER_KEYS = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]


@pytest.mark.parametrize("raw", SMALL_ORDER_KEYS)
def test_small_order_keys_are_refused(raw: str) -> None:
    # With A of small order, (R = identity, S = 0) verifies for every message.
    with pytest.raises(NotInSubgroup):
        VerifyingKey(bytes.fromhex(raw))


def test_non_canonical_key_is_refused() -> None:
    with pytest.raises(NonCanonicalEncoding):
        VerifyingKey(bytes.fromhex("ed" + "ff" * 30 + "7f"))  # y = p
