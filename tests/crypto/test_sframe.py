"""RFC 9605 SFrame: the published test vectors, the §4.3 header, and the receiver's checks.

The five Appendix C.3 encryptions are inlined below, so a fresh clone checks them with
nothing else present. The full vector file (289 headers, 3 AES-CTR-HMAC, 5 SFrame
encryptions) is read from ../shared/vectors/rfc9605/ when that folder is there; its
README gives the provenance.
"""

import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given
from hypothesis import strategies as st

from veil.crypto import sframe
from veil.crypto.errors import DecryptionError, InvalidLength, ReplayedFrame, UnknownKeyId
from veil.crypto.sframe import (
    DEFAULT_REPLAY_WINDOW,
    MAX_VALUE,
    CipherSuite,
    ReplayWindow,
    SFrameHeader,
    SFrameReceiver,
    SFrameSender,
    derive_key_salt,
    encode_header,
)

Vector = dict[str, Any]

VECTORS_FILE = Path(__file__).parents[3] / "shared" / "vectors" / "rfc9605" / "test-vectors.json"
VECTORS_ABSENT = f"RFC 9605 vector file not found at {VECTORS_FILE} (no ../shared checkout)"

# RFC 9605 Appendix C.3: the "sframe" entries of the JSON file the RFC cites as
# [TestVectors] (sframe-wg/sframe, commit 025d568a506937c901af8e7f0a663f39aeaf67ad,
# test-vectors/test-vectors.json), copied field for field. Long hex strings are split.
RFC9605_SFRAME_VECTORS: tuple[Vector, ...] = (
    {
        "cipher_suite": 1,
        "kid": 291,
        "ctr": 17767,
        "base_key": "000102030405060708090a0b0c0d0e0f",
        "sframe_key_label": "534672616d6520312e3020536563726574206b65792000000000000001230001",
        "sframe_salt_label": "534672616d6520312e30205365637265742073616c742000000000000001230001",
        "sframe_secret": "d926952ca8b7ec4a95941d1ada3a5203ceff8cceee34f574d23909eb314c40c0",
        "sframe_key": (
            "3f7d9a7c83ae8e1c8a11ae695ab59314b367e359fadac7b9c46b2bc6f81f46e1"
            "6b96f0811868d59402b7e870102720b3"
        ),
        "sframe_salt": "50b29329a04dc0f184ac3168",
        "metadata": "4945544620534672616d65205747",
        "nonce": "50b29329a04dc0f184ac740f",
        "aad": "99012345674945544620534672616d65205747",
        "pt": "64726166742d696574662d736672616d652d656e63",
        "ct": "9901234567449408b6f490086165b9d6f62b24ae1a59a56486b4ae8ed036b88912e24f11",
    },
    {
        "cipher_suite": 2,
        "kid": 291,
        "ctr": 17767,
        "base_key": "000102030405060708090a0b0c0d0e0f",
        "sframe_key_label": "534672616d6520312e3020536563726574206b65792000000000000001230002",
        "sframe_salt_label": "534672616d6520312e30205365637265742073616c742000000000000001230002",
        "sframe_secret": "d926952ca8b7ec4a95941d1ada3a5203ceff8cceee34f574d23909eb314c40c0",
        "sframe_key": (
            "e2ec5c797540310483b16bf6e7a570d2a27d192fe869c7ccd8584a8d9dab9154"
            "9fbe553f5113461ec6aa83bf3865553e"
        ),
        "sframe_salt": "e68ac8dd3d02fbcd368c5577",
        "metadata": "4945544620534672616d65205747",
        "nonce": "e68ac8dd3d02fbcd368c1010",
        "aad": "99012345674945544620534672616d65205747",
        "pt": "64726166742d696574662d736672616d652d656e63",
        "ct": "99012345673f31438db4d09434e43afa0f8a2f00867a2be085046a9f5cb4f101d607",
    },
    {
        "cipher_suite": 3,
        "kid": 291,
        "ctr": 17767,
        "base_key": "000102030405060708090a0b0c0d0e0f",
        "sframe_key_label": "534672616d6520312e3020536563726574206b65792000000000000001230003",
        "sframe_salt_label": "534672616d6520312e30205365637265742073616c742000000000000001230003",
        "sframe_secret": "d926952ca8b7ec4a95941d1ada3a5203ceff8cceee34f574d23909eb314c40c0",
        "sframe_key": (
            "2c5703089cbb8c583475e4fc461d97d18809df79b6d550f78eb6d50ffa80d892"
            "11d57909934f46f5405e38cd583c69fe"
        ),
        "sframe_salt": "38c16e4f5159700c00c7f350",
        "metadata": "4945544620534672616d65205747",
        "nonce": "38c16e4f5159700c00c7b637",
        "aad": "99012345674945544620534672616d65205747",
        "pt": "64726166742d696574662d736672616d652d656e63",
        "ct": "990123456717fc8af28a5a695afcfc6c8df6358a17e26b2fcb3bae32e443",
    },
    {
        "cipher_suite": 4,
        "kid": 291,
        "ctr": 17767,
        "base_key": "000102030405060708090a0b0c0d0e0f",
        "sframe_key_label": "534672616d6520312e3020536563726574206b65792000000000000001230004",
        "sframe_salt_label": "534672616d6520312e30205365637265742073616c742000000000000001230004",
        "sframe_secret": "d926952ca8b7ec4a95941d1ada3a5203ceff8cceee34f574d23909eb314c40c0",
        "sframe_key": "d34f547f4ca4f9a7447006fe7fcbf768",
        "sframe_salt": "75234edefe07819026751816",
        "metadata": "4945544620534672616d65205747",
        "nonce": "75234edefe07819026755d71",
        "aad": "99012345674945544620534672616d65205747",
        "pt": "64726166742d696574662d736672616d652d656e63",
        "ct": (
            "9901234567b7412c2513a1b66dbb48841bbaf17f598751176ad847681a69c6d0b091c07018ce4adb34eb"
        ),
    },
    {
        "cipher_suite": 5,
        "kid": 291,
        "ctr": 17767,
        "base_key": "000102030405060708090a0b0c0d0e0f",
        "sframe_key_label": "534672616d6520312e3020536563726574206b65792000000000000001230005",
        "sframe_salt_label": "534672616d6520312e30205365637265742073616c742000000000000001230005",
        "sframe_secret": (
            "0fc3ea6de6aac97a35f194cf9bed94d4b5230f1cb45a785c9fe5dce9c188938a"
            "b6ba005bc4c0a19181599e9d1bcf7b74aca48b60bf5e254e546d809313e083a3"
        ),
        "sframe_key": "d3e27b0d4a5ae9e55df01a70e6d4d28d969b246e2936f4b7a5d9b494da6b9633",
        "sframe_salt": "84991c167b8cd23c93708ec7",
        "metadata": "4945544620534672616d65205747",
        "nonce": "84991c167b8cd23c9370cba0",
        "aad": "99012345674945544620534672616d65205747",
        "pt": "64726166742d696574662d736672616d652d656e63",
        "ct": (
            "990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279"
        ),
    },
)

# Nt (tag bytes) and the hash of each suite, from RFC 9605 §4.5's table, not from the
# module under test.
TAG_SIZE = {1: 10, 2: 8, 3: 4, 4: 16, 5: 16}
SUITE_HASH: dict[int, type[hashes.SHA256] | type[hashes.SHA512]] = {
    1: hashes.SHA256,
    2: hashes.SHA256,
    3: hashes.SHA256,
    4: hashes.SHA256,
    5: hashes.SHA512,
}

KID = 7  # short form: a 1-byte header while the counter is below 8
BASE_KEY = bytes(range(32))


def _load_vector_file() -> dict[str, list[Vector]] | None:
    if not VECTORS_FILE.is_file():
        return None
    data: dict[str, list[Vector]] = json.loads(VECTORS_FILE.read_text())
    return data


VECTOR_FILE = _load_vector_file()


def _file_params(section: str, name: Any) -> list[Any]:
    """One pytest param per vector of ``section``; a single skipped one if the file is absent."""
    if VECTOR_FILE is None:
        return [pytest.param(None, id="file-absent", marks=pytest.mark.skip(reason=VECTORS_ABSENT))]
    return [pytest.param(v, id=name(v)) for v in VECTOR_FILE[section]]


def _suite_id(v: Vector) -> str:
    return f"suite{v['cipher_suite']}"


def _header_id(v: Vector) -> str:
    return f"kid{v['kid']:#x}-ctr{v['ctr']:#x}"


def _hex(v: Vector, field: str) -> bytes:
    return bytes.fromhex(v[field])


# --- full SFrame vectors (Appendix C.3) ---------------------------------------------


def check_key_schedule(v: Vector) -> None:
    """§4.4.2 step by step: the secret, the labels, then key and salt from the module."""
    suite, kid, base_key = CipherSuite(v["cipher_suite"]), v["kid"], _hex(v, "base_key")
    hash_cls = SUITE_HASH[suite]
    # HKDF-Extract with an empty salt is HMAC keyed with the empty string (RFC 5869 §2.2).
    secret = hmac.new(b"", base_key, hash_cls.name).digest()
    assert secret == _hex(v, "sframe_secret")
    context = kid.to_bytes(8, "big") + suite.to_bytes(2, "big")
    key_label, salt_label = (
        b"SFrame 1.0 Secret key " + context,
        b"SFrame 1.0 Secret salt " + context,
    )
    assert key_label == _hex(v, "sframe_key_label")
    assert salt_label == _hex(v, "sframe_salt_label")
    key_size = len(_hex(v, "sframe_key"))
    assert HKDFExpand(hash_cls(), key_size, key_label).derive(secret) == _hex(v, "sframe_key")
    assert HKDFExpand(hash_cls(), 12, salt_label).derive(secret) == _hex(v, "sframe_salt")
    assert derive_key_salt(suite, kid, base_key) == (_hex(v, "sframe_key"), _hex(v, "sframe_salt"))


def check_encryption(v: Vector) -> None:
    """§4.4.3: header, nonce, AAD and the exact ciphertext; §4.4.4: the receiver opens it."""
    suite, kid, ctr = CipherSuite(v["cipher_suite"]), v["kid"], v["ctr"]
    base_key, metadata = _hex(v, "base_key"), _hex(v, "metadata")
    pt, ct = _hex(v, "pt"), _hex(v, "ct")
    header = encode_header(kid, ctr)
    assert ct[: len(header)] == header
    assert SFrameHeader.parse(ct) == (SFrameHeader(kid, ctr), len(header))
    aad = header + metadata
    assert aad == _hex(v, "aad")
    state = sframe._KeyState(suite, kid, base_key, 1)
    nonce = state.nonce(ctr)
    assert nonce == _hex(v, "nonce")
    assert state.encrypt(nonce, pt, aad) == ct[len(header) :]
    assert len(ct) == len(header) + len(pt) + TAG_SIZE[suite]

    receiver = SFrameReceiver()
    receiver.add_key(kid, base_key, suite=suite)
    assert receiver.unprotect(ct, metadata) == pt


def check_sender(v: Vector) -> None:
    """``SFrameSender.protect`` itself gives the vector's frame at the vector's counter."""
    suite, kid, ctr = CipherSuite(v["cipher_suite"]), v["kid"], v["ctr"]
    sender = SFrameSender(kid, _hex(v, "base_key"), suite=suite)
    # The sender counts from 0 and has no setter; 17767 protect calls would only spend
    # time, so jump its private counter to the vector's.
    sender._seek(ctr)
    assert sender.protect(_hex(v, "pt"), _hex(v, "metadata")) == _hex(v, "ct")
    assert repr(sender) == f"SFrameSender(kid={kid}, ctr={ctr + 1})"


@pytest.mark.parametrize("vector", RFC9605_SFRAME_VECTORS, ids=_suite_id)
def test_appendix_c3_key_schedule(vector: Vector) -> None:
    check_key_schedule(vector)


@pytest.mark.parametrize("vector", RFC9605_SFRAME_VECTORS, ids=_suite_id)
def test_appendix_c3_encryption(vector: Vector) -> None:
    check_encryption(vector)


@pytest.mark.parametrize("vector", RFC9605_SFRAME_VECTORS, ids=_suite_id)
def test_appendix_c3_sender_output(vector: Vector) -> None:
    check_sender(vector)


def test_inline_vectors_cover_every_suite_once() -> None:
    assert [v["cipher_suite"] for v in RFC9605_SFRAME_VECTORS] == [int(s) for s in CipherSuite]


# --- the shared vector file -----------------------------------------------------------


def test_vector_file_holds_297_vectors() -> None:
    if VECTOR_FILE is None:
        pytest.skip(VECTORS_ABSENT)
    counts = {section: len(entries) for section, entries in VECTOR_FILE.items()}
    assert counts == {"header": 289, "aes_ctr_hmac": 3, "sframe": 5}
    assert sum(counts.values()) == 289 + 3 + 5 == 297


def test_inline_vectors_match_vector_file() -> None:
    if VECTOR_FILE is None:
        pytest.skip(VECTORS_ABSENT)
    assert list(RFC9605_SFRAME_VECTORS) == VECTOR_FILE["sframe"]


@pytest.mark.parametrize("vector", _file_params("header", _header_id))
def test_file_header_vector(vector: Vector) -> None:
    kid, ctr, encoded = vector["kid"], vector["ctr"], _hex(vector, "encoded")
    assert encode_header(kid, ctr).hex() == vector["encoded"]
    assert bytes(SFrameHeader(kid, ctr)) == encoded
    assert SFrameHeader.parse(encoded) == (SFrameHeader(kid, ctr), len(encoded))
    # What follows the header is the payload: parse must not read into it.
    assert SFrameHeader.parse(encoded + b"\xff" * 9) == (SFrameHeader(kid, ctr), len(encoded))
    for cut in range(len(encoded)):
        with pytest.raises(InvalidLength):
            SFrameHeader.parse(encoded[:cut])


@pytest.mark.parametrize("vector", _file_params("aes_ctr_hmac", _suite_id))
def test_file_aes_ctr_hmac_vector(vector: Vector) -> None:
    suite = CipherSuite(vector["cipher_suite"])
    key, enc_key, auth_key = _hex(vector, "key"), _hex(vector, "enc_key"), _hex(vector, "auth_key")
    nonce, aad, pt, ct = (_hex(vector, f) for f in ("nonce", "aad", "pt", "ct"))
    nt = TAG_SIZE[suite]

    # §4.5.1: the key is enc_key || auth_key, checked against the vector independently...
    assert key == enc_key + auth_key
    encryptor = Cipher(algorithms.AES(enc_key), modes.CTR(nonce + bytes(4))).encryptor()
    assert encryptor.update(pt) + encryptor.finalize() == ct[:-nt]
    lengths = b"".join(n.to_bytes(8, "big") for n in (len(aad), len(pt), nt))
    tag = hmac.new(auth_key, lengths + nonce + aad + ct[:-nt], "sha256").digest()[:nt]
    assert tag == ct[-nt:]

    # ...and the module's AEAD splits it the same way and produces the same bytes.
    aead = sframe._CtrHmac(key, sframe._PARAMS[suite])
    assert (aead._enc_key, aead._auth_key) == (enc_key, auth_key)
    assert aead.encrypt(nonce, pt, aad) == ct
    assert aead.decrypt(nonce, ct, aad) == pt
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, ct[:-1] + bytes([ct[-1] ^ 1]), aad)
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, ct, aad + b"x")
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, ct[: nt - 1], aad)


@pytest.mark.parametrize("vector", _file_params("sframe", _suite_id))
def test_file_sframe_vector(vector: Vector) -> None:
    check_key_schedule(vector)
    check_encryption(vector)
    check_sender(vector)


# --- §4.3 header ----------------------------------------------------------------------

counter_values = st.integers(0, 20) | st.integers(0, MAX_VALUE) | st.sampled_from([7, 8, MAX_VALUE])


def _extra_bytes(value: int) -> int:
    return 0 if value < 8 else (value.bit_length() + 7) // 8


@given(kid=counter_values, ctr=counter_values, payload=st.binary(max_size=16))
def test_header_round_trip_is_minimal(kid: int, ctr: int, payload: bytes) -> None:
    encoded = encode_header(kid, ctr)
    assert len(encoded) == 1 + _extra_bytes(kid) + _extra_bytes(ctr)
    assert bytes(SFrameHeader(kid, ctr)) == encoded
    assert SFrameHeader.parse(encoded + payload) == (SFrameHeader(kid, ctr), len(encoded))


def test_header_parse_rejects_empty_input() -> None:
    with pytest.raises(InvalidLength) as excinfo:
        SFrameHeader.parse(b"")
    assert type(excinfo.value) is InvalidLength


@pytest.mark.parametrize(
    "data",
    [b"\x80", b"\x08", b"\x8f" + bytes(8), b"\xf0" + bytes(7), encode_header(1000, 70000)[:3]],
    ids=[
        "kid-1-byte-missing",
        "ctr-1-byte-missing",
        "ctr-8th-byte-missing",
        "kid-8th-byte-missing",
        "ctr-cut",
    ],
)
def test_header_parse_rejects_truncated_extension(data: bytes) -> None:
    with pytest.raises(InvalidLength) as excinfo:
        SFrameHeader.parse(data)
    assert type(excinfo.value) is InvalidLength


@pytest.mark.parametrize(
    "make",
    [
        lambda: SFrameHeader(2**64, 0),
        lambda: SFrameHeader(0, 2**64),
        lambda: SFrameHeader(-1, 0),
        lambda: SFrameHeader(0, -1),
        lambda: derive_key_salt(CipherSuite.AES_128_GCM_SHA256_128, 2**64, BASE_KEY),
        lambda: SFrameSender(2**64, BASE_KEY),
        lambda: SFrameReceiver().add_key(2**64, BASE_KEY),
        lambda: encode_header(-1, 0),
        lambda: encode_header(0, -1),
    ],
    ids=[
        "header-kid-2^64",
        "header-ctr-2^64",
        "header-kid-negative",
        "header-ctr-negative",
        "derive-kid-2^64",
        "sender-kid-2^64",
        "receiver-kid-2^64",
        "encode-kid-negative",
        "encode-ctr-negative",
    ],
)
def test_values_outside_64_bits_are_refused(make: Any) -> None:
    with pytest.raises(ValueError) as excinfo:
        make()
    assert type(excinfo.value) is ValueError


@pytest.mark.parametrize("kid, ctr", [(2**64, 0), (0, 2**64)], ids=["kid-2^64", "ctr-2^64"])
def test_encode_header_refuses_values_outside_64_bits(kid: int, ctr: int) -> None:
    with pytest.raises(ValueError):
        encode_header(kid, ctr)


# --- sender and receiver --------------------------------------------------------------


def _pair(
    suite: CipherSuite = SFrameSender.DEFAULT_SUITE, window: int = DEFAULT_REPLAY_WINDOW
) -> tuple[SFrameSender, SFrameReceiver]:
    sender = SFrameSender(KID, BASE_KEY, suite=suite)
    receiver = SFrameReceiver(replay_window=window)
    receiver.add_key(KID, BASE_KEY, suite=suite)
    return sender, receiver


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
@given(frames=st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=40)), max_size=10))
def test_round_trip_every_suite_with_metadata(
    suite: CipherSuite, frames: list[tuple[bytes, bytes]]
) -> None:
    sender, receiver = _pair(suite)
    for ctr, (payload, metadata) in enumerate(frames):
        frame = sender.protect(payload, metadata)
        header = encode_header(KID, ctr)
        assert frame.startswith(header)
        assert len(frame) == len(header) + len(payload) + TAG_SIZE[suite]
        assert receiver.unprotect(frame, metadata) == payload


def test_default_suite_is_aes_256_gcm() -> None:
    assert SFrameSender.DEFAULT_SUITE is CipherSuite.AES_256_GCM_SHA512_128
    sender = SFrameSender(KID, BASE_KEY)
    receiver = SFrameReceiver()
    receiver.add_key(KID, BASE_KEY, suite=CipherSuite.AES_256_GCM_SHA512_128)
    assert receiver.unprotect(sender.protect(b"frame")) == b"frame"


def test_sender_counts_from_zero() -> None:
    sender = SFrameSender(KID, BASE_KEY)
    assert sender.kid == KID
    headers = [SFrameHeader.parse(sender.protect(b"x"))[0] for _ in range(10)]
    assert headers == [SFrameHeader(KID, ctr) for ctr in range(10)]


@pytest.mark.parametrize("start", [0, 250, 2**16 - 6, 2**24 - 6, 2**56 - 6, MAX_VALUE - 260])
@pytest.mark.parametrize("kid", [3, KID])
def test_sender_frames_follow_section_4_4_3_across_counter_blocks(start: int, kid: int) -> None:
    """The sender makes headers and nonces 256 counters at a time: each frame must still
    be the header, then the AEAD of the payload under salt XOR counter (§4.4.3)."""
    state = sframe._KeyState(CipherSuite.AES_256_GCM_SHA512_128, kid, BASE_KEY, 1)
    sender = SFrameSender(kid, BASE_KEY)
    sender._seek(start)
    for ctr in range(start, start + 12):
        header = encode_header(kid, ctr)
        expected = header + state.encrypt(state.nonce(ctr), b"frame", header + b"meta")
        assert sender.protect(b"frame", b"meta") == expected


def test_sender_refuses_to_reuse_the_last_counter() -> None:
    sender, receiver = _pair()
    sender._seek(MAX_VALUE)  # no public setter; 2^64 frames are out of reach
    frame = sender.protect(b"last")
    assert SFrameHeader.parse(frame)[0] == SFrameHeader(KID, MAX_VALUE)
    assert receiver.unprotect(frame) == b"last"
    with pytest.raises(OverflowError):
        sender.protect(b"one too many")


def test_tampered_payload_byte_fails() -> None:
    sender, receiver = _pair()
    frame = sender.protect(b"media payload", b"meta")
    for index in (1, len(frame) // 2, len(frame) - 1):
        with pytest.raises(DecryptionError) as excinfo:
            receiver.unprotect(_flip(frame, index), b"meta")
        assert type(excinfo.value) is DecryptionError


def test_tampered_header_counter_fails() -> None:
    sender, receiver = _pair()
    frame = sender.protect(b"media payload")
    assert frame[0] == 0x70  # KID 7, counter 0, both in short form
    with pytest.raises(DecryptionError) as excinfo:
        receiver.unprotect(b"\x71" + frame[1:])  # same body, counter 1
    assert type(excinfo.value) is DecryptionError


def test_wrong_metadata_fails() -> None:
    sender, receiver = _pair()
    frame = sender.protect(b"media payload", b"rtp header")
    for metadata in (b"", b"rtp headeR", b"rtp header\x00"):
        with pytest.raises(DecryptionError) as excinfo:
            receiver.unprotect(frame, metadata)
        assert type(excinfo.value) is DecryptionError
    assert receiver.unprotect(frame, b"rtp header") == b"media payload"


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_frame_shorter_than_its_tag_fails(suite: CipherSuite) -> None:
    sender, receiver = _pair(suite)
    frame = sender.protect(b"")  # header + tag only
    assert len(frame) == 1 + TAG_SIZE[suite]
    for cut in range(1, len(frame)):
        with pytest.raises(DecryptionError) as excinfo:
            receiver.unprotect(frame[:cut])
        assert type(excinfo.value) is DecryptionError
    assert receiver.unprotect(frame) == b""


def test_empty_frame_is_invalid_length() -> None:
    _, receiver = _pair()
    with pytest.raises(InvalidLength) as excinfo:
        receiver.unprotect(b"")
    assert type(excinfo.value) is InvalidLength


def test_truncated_extended_header_is_invalid_length() -> None:
    receiver = SFrameReceiver()
    receiver.add_key(1000, BASE_KEY)
    frame = SFrameSender(1000, BASE_KEY).protect(b"payload")
    assert frame[0] == 0x90  # KID in 2 extra bytes, counter 0 in short form
    for cut in (1, 2):
        with pytest.raises(InvalidLength) as excinfo:
            receiver.unprotect(frame[:cut])
        assert type(excinfo.value) is InvalidLength


def test_unknown_kid_fails() -> None:
    sender = SFrameSender(KID + 1, BASE_KEY)
    _, receiver = _pair()
    with pytest.raises(UnknownKeyId) as excinfo:
        receiver.unprotect(sender.protect(b"payload"))
    assert type(excinfo.value) is UnknownKeyId
    assert isinstance(excinfo.value, LookupError)


def test_removed_key_fails_with_unknown_kid() -> None:
    sender, receiver = _pair()
    assert receiver.unprotect(sender.protect(b"before")) == b"before"
    receiver.remove_key(KID)
    assert receiver.kids == frozenset()
    with pytest.raises(UnknownKeyId) as excinfo:
        receiver.unprotect(sender.protect(b"after"))
    assert type(excinfo.value) is UnknownKeyId
    receiver.remove_key(KID)  # removing an absent key is a no-op


def test_wrong_base_key_or_suite_fails() -> None:
    sender = SFrameSender(KID, BASE_KEY)
    frame = sender.protect(b"payload")
    other_key = SFrameReceiver()
    other_key.add_key(KID, bytes(32))
    other_suite = SFrameReceiver()
    other_suite.add_key(KID, BASE_KEY, suite=CipherSuite.AES_128_GCM_SHA256_128)
    for receiver in (other_key, other_suite):
        with pytest.raises(DecryptionError) as excinfo:
            receiver.unprotect(frame)
        assert type(excinfo.value) is DecryptionError


def test_same_frame_twice_is_a_replay() -> None:
    sender, receiver = _pair()
    frame = sender.protect(b"payload")
    assert receiver.unprotect(frame) == b"payload"
    with pytest.raises(ReplayedFrame) as excinfo:
        receiver.unprotect(frame)
    assert type(excinfo.value) is ReplayedFrame


def test_frame_behind_the_default_window_is_a_replay() -> None:
    sender, receiver = _pair()
    frames = [sender.protect(bytes([i % 256])) for i in range(DEFAULT_REPLAY_WINDOW + 1)]
    receiver.unprotect(frames[DEFAULT_REPLAY_WINDOW])
    with pytest.raises(ReplayedFrame) as excinfo:
        receiver.unprotect(frames[0])  # 128 behind the highest: outside
    assert type(excinfo.value) is ReplayedFrame
    assert receiver.unprotect(frames[1]) == b"\x01"  # 127 behind: the window's far edge


def test_out_of_order_frames_in_window_are_accepted_once_each() -> None:
    sender, receiver = _pair(window=4)
    frames = [sender.protect(bytes([i])) for i in range(6)]
    for i in (5, 3, 4, 2):
        assert receiver.unprotect(frames[i]) == bytes([i])
    for i in (1, 0, 2, 3, 4, 5):  # 1 and 0 are too old, the rest already seen
        with pytest.raises(ReplayedFrame):
            receiver.unprotect(frames[i])


def test_failed_authentication_does_not_consume_the_counter() -> None:
    sender, receiver = _pair()
    frame = sender.protect(b"genuine")
    with pytest.raises(DecryptionError):
        receiver.unprotect(_flip(frame, len(frame) - 1))
    assert receiver.unprotect(frame) == b"genuine"


def test_forged_frame_does_not_move_the_window() -> None:
    sender, receiver = _pair()
    frames = [sender.protect(b"genuine") for _ in range(3)]
    # A forged frame far ahead must not push the genuine ones behind the window.
    forged = encode_header(KID, 10_000) + frames[0][1:]
    with pytest.raises(DecryptionError):
        receiver.unprotect(forged)
    for frame in frames:
        assert receiver.unprotect(frame) == b"genuine"


def test_each_kid_has_its_own_window() -> None:
    receiver = SFrameReceiver()
    senders = [SFrameSender(kid, BASE_KEY) for kid in (1, 2)]
    for sender in senders:
        receiver.add_key(sender.kid, BASE_KEY)
    assert receiver.kids == frozenset({1, 2})
    for sender in senders:  # both send counter 0: no cross-KID replay
        assert receiver.unprotect(sender.protect(b"hello")) == b"hello"


def test_reprs_do_not_show_keys() -> None:
    sender, receiver = _pair()
    for text in (repr(sender), repr(receiver)):
        assert BASE_KEY.hex() not in text
    assert repr(receiver) == f"SFrameReceiver(kids=[{KID}])"


# --- replay window --------------------------------------------------------------------


def _see(window: ReplayWindow, ctr: int) -> None:
    """What the receiver does with an authenticated frame: ``check``, then ``accept``."""
    window.check(ctr)
    window.accept(ctr)


class _WindowModel:
    """The replay window's rule, stated plainly: the set of every counter accepted."""

    def __init__(self, size: int) -> None:
        self.size, self.seen, self.top = size, set[int](), -1

    def refuses(self, ctr: int) -> bool:
        return ctr <= self.top and (self.top - ctr >= self.size or ctr in self.seen)

    def accept(self, ctr: int) -> None:
        self.seen.add(ctr)
        self.top = max(self.top, ctr)


@given(
    size=st.integers(1, 12),
    steps=st.lists(
        st.tuples(st.sampled_from(["next", "near", "jump"]), st.integers(0, 40), st.booleans()),
        max_size=80,
    ),
)
def test_replay_window_agrees_with_the_set_of_seen_counters(
    size: int, steps: list[tuple[str, int, bool]]
) -> None:
    """In-order runs, frames behind and ahead, jumps past the window, and counters
    checked but never accepted (frames that failed to authenticate), in any mix."""
    window, model = ReplayWindow(size), _WindowModel(size)
    for kind, offset, authentic in steps:
        if kind == "next":
            ctr = model.top + 1
        elif kind == "near":
            ctr = max(0, model.top - 20 + offset)
        else:
            ctr = model.top + size + offset
        if model.refuses(ctr):
            with pytest.raises(ReplayedFrame):
                window.check(ctr)
            continue
        window.check(ctr)
        if authentic:
            window.accept(ctr)
            model.accept(ctr)
    assert window.top == model.top


@given(order=st.permutations(range(24)), replays=st.lists(st.integers(0, 23), max_size=8))
def test_receiver_accepts_each_frame_in_its_window_exactly_once(
    order: list[int], replays: list[int]
) -> None:
    sender, receiver = _pair(window=8)
    frames = [sender.protect(bytes([i])) for i in range(24)]
    model = _WindowModel(8)
    for ctr in [*order, *replays]:
        if model.refuses(ctr):
            with pytest.raises(ReplayedFrame):
                receiver.unprotect(frames[ctr])
        else:
            assert receiver.unprotect(frames[ctr]) == bytes([ctr])
            model.accept(ctr)


def test_replay_window_needs_a_positive_size() -> None:
    for size in (0, -1):
        with pytest.raises(ValueError):
            ReplayWindow(size)


def test_replay_window_of_size_one_accepts_only_increasing_counters() -> None:
    window = ReplayWindow(1)
    _see(window, 0)
    with pytest.raises(ReplayedFrame):
        window.check(0)
    _see(window, 1)
    _see(window, 10)
    for ctr in (10, 9, 1, 0):
        with pytest.raises(ReplayedFrame):
            window.check(ctr)
    _see(window, 11)


def test_replay_window_check_does_not_record() -> None:
    window = ReplayWindow(8)
    window.check(5)
    window.check(5)
    window.accept(5)
    with pytest.raises(ReplayedFrame):
        window.check(5)


def test_replay_window_accepts_out_of_order_counters_once() -> None:
    window = ReplayWindow(4)
    for ctr in (3, 1):
        _see(window, ctr)
    with pytest.raises(ReplayedFrame):
        window.check(1)
    _see(window, 2)
    _see(window, 0)  # 3 behind the top: the far edge of a window of 4
    for ctr in range(4):
        with pytest.raises(ReplayedFrame):
            window.check(ctr)
    _see(window, 4)
    with pytest.raises(ReplayedFrame):
        window.check(0)  # now 4 behind: outside


def test_replay_window_accept_refuses_what_a_stale_check_let_through() -> None:
    """Two frames checked before either is accepted: the second accept must not trust
    its check (a duplicate, or a counter the first one pushed out of the window)."""
    window = ReplayWindow(4)
    window.check(3)
    window.check(3)
    window.accept(3)
    with pytest.raises(ReplayedFrame):
        window.accept(3)
    window.check(5)
    window.check(2**33)
    window.accept(2**33)
    with pytest.raises(ReplayedFrame):
        window.accept(5)  # far behind: refused, not a shift by 2^33 bits


def test_replay_window_first_counter_may_be_the_largest() -> None:
    window = ReplayWindow()
    _see(window, MAX_VALUE)
    with pytest.raises(ReplayedFrame):
        window.check(MAX_VALUE)
    _see(window, MAX_VALUE - DEFAULT_REPLAY_WINDOW + 1)
    with pytest.raises(ReplayedFrame):
        window.check(MAX_VALUE - DEFAULT_REPLAY_WINDOW)


@pytest.mark.parametrize("jump", [DEFAULT_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW + 1, 10**6])
def test_replay_window_big_jump_forgets_old_counters(jump: int) -> None:
    window = ReplayWindow()
    for ctr in (0, 1, 2):
        _see(window, ctr)
    top = 2 + jump
    _see(window, top)
    for ctr in (top - 1, top - DEFAULT_REPLAY_WINDOW + 1):
        if ctr > 2:
            _see(window, ctr)
    for ctr in (top, top - 1, top - DEFAULT_REPLAY_WINDOW, 2, 1, 0):
        with pytest.raises(ReplayedFrame):
            window.check(ctr)


def test_replay_window_jump_to_the_largest_counter() -> None:
    window = ReplayWindow()
    _see(window, 0)
    _see(window, MAX_VALUE)
    with pytest.raises(ReplayedFrame):
        window.check(0)


def test_receiver_survives_a_counter_jump_to_the_largest_value() -> None:
    sender, receiver = _pair()
    receiver.unprotect(sender.protect(b"first"))
    sender._seek(MAX_VALUE)  # no public setter
    assert receiver.unprotect(sender.protect(b"last")) == b"last"


def test_adding_the_same_key_again_keeps_the_replay_window() -> None:
    sender = SFrameSender(KID, BASE_KEY)
    receiver = SFrameReceiver()
    receiver.add_key(KID, BASE_KEY)
    frame = sender.protect(b"once")
    assert receiver.unprotect(frame) == b"once"
    receiver.add_key(KID, BASE_KEY)  # a no-op: the window survives
    with pytest.raises(ReplayedFrame):
        receiver.unprotect(frame)


def test_a_different_key_for_a_kid_in_use_is_refused() -> None:
    receiver = SFrameReceiver()
    receiver.add_key(KID, BASE_KEY)
    with pytest.raises(ValueError, match="different key"):
        receiver.add_key(KID, bytes(32))
    with pytest.raises(ValueError, match="different key"):
        receiver.add_key(KID, BASE_KEY, suite=CipherSuite.AES_128_GCM_SHA256_128)


def test_receiver_refuses_a_bad_window_size_at_once() -> None:
    with pytest.raises(ValueError):
        SFrameReceiver(replay_window=0)
