"""Document envelopes: single-shot AES-256-GCM and the STREAM construction over it."""

import random
from collections.abc import Callable, Iterable
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil.crypto import aead
from veil.crypto.aead import open_document, open_stream, seal_document, seal_stream
from veil.crypto.errors import (
    DecryptionError,
    InvalidLength,
    NonCanonicalEncoding,
    UnsupportedVersion,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
DOC = "doc-42"
CHUNK = 1024  # the smallest chunk size allowed, so tests cross segment boundaries cheaply
SEGMENT = CHUNK + aead.TAG_SIZE
DOC_HEADER = 2 + 2 + len(DOC.encode())  # version, kind, id length, id
STREAM_HEADER = DOC_HEADER + 4 + 7  # ... chunk size, nonce prefix


def _split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, repeats allowed: empty pieces)."""
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _sealed_stream(plaintext: bytes, document_id: str = DOC) -> tuple[bytes, list[bytes]]:
    """The stream header and its segments, sealed with ``CHUNK``-byte chunks."""
    head, *segments = seal_stream(KEY, document_id, [plaintext], chunk_size=CHUNK)
    return head, segments


def _open_all(pieces: Iterable[bytes], document_id: str = DOC) -> bytes:
    return b"".join(open_stream(KEY, document_id, pieces))


def _raises_exactly(error: type[Exception], call: Callable[[], object]) -> None:
    with pytest.raises(error) as excinfo:
        call()
    assert type(excinfo.value) is error


# --- single-shot documents -------------------------------------------------------------


@given(plaintext=st.binary(max_size=4096), document_id=st.text(min_size=1, max_size=40))
def test_document_round_trip(plaintext: bytes, document_id: str) -> None:
    envelope = seal_document(KEY, document_id, plaintext)
    id_size = len(document_id.encode())
    assert len(envelope) == 4 + id_size + aead.NONCE_SIZE + len(plaintext) + aead.TAG_SIZE
    assert open_document(KEY, document_id, envelope) == plaintext


def test_document_layout() -> None:
    envelope = seal_document(KEY, DOC, b"hello")
    assert envelope[:2] == b"\x01\x10"  # version 1, kind DOCUMENT
    assert envelope[2:4] == len(DOC).to_bytes(2, "big")
    assert envelope[4:DOC_HEADER] == DOC.encode()


def test_empty_document() -> None:
    envelope = seal_document(KEY, DOC, b"")
    assert len(envelope) == DOC_HEADER + aead.NONCE_SIZE + aead.TAG_SIZE
    assert open_document(KEY, DOC, envelope) == b""


def test_every_seal_uses_a_fresh_nonce() -> None:
    first, second = (seal_document(KEY, DOC, b"same input") for _ in range(2))
    assert first != second
    nonce = slice(DOC_HEADER, DOC_HEADER + aead.NONCE_SIZE)
    assert first[nonce] != second[nonce]


def test_document_wrong_key_fails() -> None:
    envelope = seal_document(KEY, DOC, b"secret")
    _raises_exactly(DecryptionError, lambda: open_document(OTHER_KEY, DOC, envelope))


@pytest.mark.parametrize("other_id", ["doc-43", "doc-4", "doc-420", "DOC-42"])
def test_document_wrong_id_fails(other_id: str) -> None:
    envelope = seal_document(KEY, DOC, b"secret")
    _raises_exactly(DecryptionError, lambda: open_document(KEY, other_id, envelope))


@pytest.mark.parametrize(
    "where",
    ["id", "nonce", "ciphertext", "tag"],
)
def test_document_tampered_byte_fails(where: str) -> None:
    plaintext = b"a document of some length"
    envelope = seal_document(KEY, DOC, plaintext)
    index = {
        "id": 4,
        "nonce": DOC_HEADER + 5,
        "ciphertext": DOC_HEADER + aead.NONCE_SIZE + 3,
        "tag": len(envelope) - 1,
    }[where]
    tampered = _flip(envelope, index)
    _raises_exactly(DecryptionError, lambda: open_document(KEY, DOC, tampered))


@pytest.mark.parametrize(
    ("new_length", "expected"), [(5, DecryptionError), (0xFFFF, InvalidLength)]
)
def test_document_tampered_id_length(new_length: int, expected: type[Exception]) -> None:
    envelope = seal_document(KEY, DOC, b"secret")
    tampered = envelope[:2] + new_length.to_bytes(2, "big") + envelope[4:]
    _raises_exactly(expected, lambda: open_document(KEY, DOC, tampered))


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_document_bad_version_byte(version: int) -> None:
    envelope = seal_document(KEY, DOC, b"secret")
    bad = bytes([version]) + envelope[1:]
    _raises_exactly(UnsupportedVersion, lambda: open_document(KEY, DOC, bad))


def test_stream_is_not_a_document() -> None:
    stream = b"".join(seal_stream(KEY, DOC, [b"secret"], chunk_size=CHUNK))
    _raises_exactly(UnsupportedVersion, lambda: open_document(KEY, DOC, stream))


@pytest.mark.parametrize(
    "keep",
    [0, 1, 3, DOC_HEADER - 1, DOC_HEADER + aead.NONCE_SIZE - 1],
    ids=["empty", "in-version", "in-id-length", "in-id", "in-nonce"],
)
def test_document_truncated_header_is_invalid_length(keep: int) -> None:
    envelope = seal_document(KEY, DOC, b"secret")
    _raises_exactly(InvalidLength, lambda: open_document(KEY, DOC, envelope[:keep]))


def test_document_shorter_than_its_tag_is_invalid_length() -> None:
    envelope = seal_document(KEY, DOC, b"")
    for cut in range(1, aead.TAG_SIZE + 1):
        truncated = envelope[:-cut]
        _raises_exactly(InvalidLength, lambda t=truncated: open_document(KEY, DOC, t))


def test_document_truncated_ciphertext_fails() -> None:
    envelope = seal_document(KEY, DOC, b"secret payload")
    _raises_exactly(DecryptionError, lambda: open_document(KEY, DOC, envelope[:-1]))
    _raises_exactly(DecryptionError, lambda: open_document(KEY, DOC, envelope + b"\x00"))


# --- streams ---------------------------------------------------------------------------


@given(size=st.integers(0, 5 * CHUNK + 10), rnd=st.randoms(use_true_random=False), data=st.data())
def test_stream_round_trip_with_random_splits(
    size: int, rnd: random.Random, data: st.DataObject
) -> None:
    plaintext = rnd.randbytes(size)
    cuts = data.draw(st.lists(st.integers(0, size), max_size=8), label="input cuts")
    sealed = b"".join(seal_stream(KEY, DOC, _split(plaintext, cuts), chunk_size=CHUNK))
    segments = max(1, -(-size // CHUNK))
    assert len(sealed) == STREAM_HEADER + size + segments * aead.TAG_SIZE
    # The reader must not care how the sealed bytes arrive either.
    read_cuts = data.draw(st.lists(st.integers(0, len(sealed)), max_size=8), label="read cuts")
    assert _open_all(_split(sealed, read_cuts)) == plaintext


@pytest.mark.parametrize("size", [CHUNK + 1, 3 * CHUNK])
def test_stream_read_as_one_piece(size: int) -> None:
    sealed = b"".join(seal_stream(KEY, DOC, [bytes(size)], chunk_size=CHUNK))
    assert _open_all([sealed]) == bytes(size)


@pytest.mark.parametrize("size", [0, 1, CHUNK])
def test_stream_read_as_one_piece_within_one_chunk(size: int) -> None:
    sealed = b"".join(seal_stream(KEY, DOC, [bytes(size)], chunk_size=CHUNK))
    assert _open_all([sealed]) == bytes(size)


def test_stream_layout() -> None:
    head, segments = _sealed_stream(b"x" * (CHUNK + 1))
    assert len(head) == STREAM_HEADER
    assert head[:2] == b"\x01\x11"  # version 1, kind DOCUMENT_STREAM
    assert head[4:DOC_HEADER] == DOC.encode()
    assert int.from_bytes(head[DOC_HEADER : DOC_HEADER + 4], "big") == CHUNK
    assert [len(s) for s in segments] == [SEGMENT, 1 + aead.TAG_SIZE]


@pytest.mark.parametrize(
    "chunks", [[], [b""], [b"", b""]], ids=["no-chunks", "one-empty", "two-empty"]
)
def test_empty_stream(chunks: list[bytes]) -> None:
    head, *segments = seal_stream(KEY, DOC, chunks, chunk_size=CHUNK)
    assert [len(s) for s in segments] == [aead.TAG_SIZE]  # one empty, final segment
    assert list(open_stream(KEY, DOC, [head, *segments])) == [b""]


@pytest.mark.parametrize("count", [1, 3])
def test_stream_of_exact_multiple_of_chunk_size(count: int) -> None:
    plaintext = bytes(range(256)) * (4 * count)
    assert len(plaintext) == count * CHUNK
    head, segments = _sealed_stream(plaintext)
    # The last full chunk is the final segment: no empty segment after it.
    assert [len(s) for s in segments] == [SEGMENT] * count
    assert list(open_stream(KEY, DOC, [head, *segments])) == _split(
        plaintext, range(CHUNK, len(plaintext), CHUNK)
    )


def test_every_stream_uses_a_fresh_nonce_prefix() -> None:
    (first, _), (second, _) = _sealed_stream(b"same"), _sealed_stream(b"same")
    assert first[: DOC_HEADER + 4] == second[: DOC_HEADER + 4]
    assert first[DOC_HEADER + 4 :] != second[DOC_HEADER + 4 :]


THREE_SEGMENTS = bytes(range(256)) * 10  # 2560 bytes: 1024 + 1024 + 512


def test_stream_reordered_segments_fail() -> None:
    head, (a, b, c) = _sealed_stream(THREE_SEGMENTS)
    _raises_exactly(DecryptionError, lambda: _open_all([head, b, a, c]))


def test_stream_dropped_middle_segment_fails() -> None:
    head, (a, _, c) = _sealed_stream(THREE_SEGMENTS)
    _raises_exactly(DecryptionError, lambda: _open_all([head, a, c]))


@pytest.mark.parametrize(
    "size", [len(THREE_SEGMENTS), 3 * CHUNK], ids=["partial-last", "full-last"]
)
def test_stream_truncated_at_a_segment_boundary_fails(size: int) -> None:
    head, segments = _sealed_stream((bytes(range(256)) * 12)[:size])
    assert len(segments) == 3
    for keep in range(len(segments)):  # every proper prefix, down to the header alone
        cut = [head, *segments[:keep]]
        _raises_exactly(DecryptionError, lambda c=cut: _open_all(c))


def test_stream_truncation_is_reported_only_at_the_end() -> None:
    head, (a, b, _) = _sealed_stream(THREE_SEGMENTS)
    chunks = open_stream(KEY, DOC, [head, a, b])
    assert next(chunks) == THREE_SEGMENTS[:CHUNK]  # provisional until the iterator ends
    with pytest.raises(DecryptionError):
        next(chunks)


def test_stream_extra_segment_appended_fails() -> None:
    head, segments = _sealed_stream(THREE_SEGMENTS)
    _, other_segments = _sealed_stream(THREE_SEGMENTS)
    for extra in (segments[0], segments[-1], other_segments[-1]):
        extended = [head, *segments, extra]
        _raises_exactly(DecryptionError, lambda e=extended: _open_all(e))


@pytest.mark.parametrize("tail", [b"\x00", bytes(aead.TAG_SIZE), bytes(SEGMENT)])
def test_stream_bytes_after_the_end_fail(tail: bytes) -> None:
    for plaintext in (THREE_SEGMENTS, bytes(3 * CHUNK), b""):
        head, segments = _sealed_stream(plaintext)
        appended = [head, *segments, tail]
        _raises_exactly(DecryptionError, lambda a=appended: _open_all(a))


def test_stream_segment_from_another_stream_fails() -> None:
    head, (a, _, c) = _sealed_stream(THREE_SEGMENTS)
    _, (_, other_b, _) = _sealed_stream(THREE_SEGMENTS)
    _raises_exactly(DecryptionError, lambda: _open_all([head, a, other_b, c]))


@pytest.mark.parametrize("other_id", ["doc-43", "doc-4", "a-much-longer-document-id"])
def test_stream_under_another_document_id_fails(other_id: str) -> None:
    head, segments = _sealed_stream(THREE_SEGMENTS)
    _raises_exactly(DecryptionError, lambda: _open_all([head, *segments], other_id))


def test_stream_wrong_key_fails() -> None:
    head, segments = _sealed_stream(b"secret")
    opened = open_stream(OTHER_KEY, DOC, [head, *segments])
    _raises_exactly(DecryptionError, lambda: list(opened))


@pytest.mark.parametrize(
    "index", [STREAM_HEADER - 1, STREAM_HEADER + 5, -1], ids=["prefix", "body", "tag"]
)
def test_stream_tampered_byte_fails(index: int) -> None:
    sealed = b"".join(seal_stream(KEY, DOC, [THREE_SEGMENTS], chunk_size=CHUNK))
    tampered = _flip(sealed, index % len(sealed))
    pieces = _split(tampered, range(STREAM_HEADER, len(tampered), SEGMENT))
    _raises_exactly(DecryptionError, lambda: _open_all(pieces))


def _with_chunk_size(head: bytes, chunk_size: int) -> bytes:
    return head[:DOC_HEADER] + chunk_size.to_bytes(4, "big") + head[DOC_HEADER + 4 :]


@pytest.mark.parametrize(
    "chunk_size", [0, aead.MIN_CHUNK_SIZE - 1, aead.MAX_CHUNK_SIZE + 1, 2**32 - 1]
)
def test_stream_chunk_size_out_of_range_is_non_canonical(chunk_size: int) -> None:
    head, segments = _sealed_stream(b"secret")
    bad = [_with_chunk_size(head, chunk_size), *segments]
    _raises_exactly(NonCanonicalEncoding, lambda: _open_all(bad))


def test_stream_chunk_size_changed_within_range_fails() -> None:
    head, segments = _sealed_stream(THREE_SEGMENTS)
    changed = [_with_chunk_size(head, 2 * CHUNK), *segments]
    _raises_exactly(DecryptionError, lambda: _open_all(changed))


def test_stream_bad_version_or_kind() -> None:
    head, segments = _sealed_stream(b"secret")
    _raises_exactly(UnsupportedVersion, lambda: _open_all([b"\x02" + head[1:], *segments]))
    document = seal_document(KEY, DOC, b"a document long enough to hold a stream header")
    _raises_exactly(UnsupportedVersion, lambda: _open_all([document]))


def test_stream_truncated_header_is_invalid_length() -> None:
    head, _ = _sealed_stream(b"secret")
    for keep in (0, 2, STREAM_HEADER - 1):
        cut = head[:keep]
        _raises_exactly(InvalidLength, lambda c=cut: _open_all([c]))


def test_stream_header_alone_fails() -> None:
    head, _ = _sealed_stream(b"")
    _raises_exactly(DecryptionError, lambda: _open_all([head]))


@pytest.mark.parametrize("chunk_size", [0, aead.MIN_CHUNK_SIZE - 1, aead.MAX_CHUNK_SIZE + 1])
def test_seal_stream_refuses_chunk_size_out_of_range(chunk_size: int) -> None:
    _raises_exactly(ValueError, lambda: list(seal_stream(KEY, DOC, [b"x"], chunk_size=chunk_size)))


# --- caller mistakes -------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(24), bytes(31), bytes(33), bytearray(32)])
def test_key_of_wrong_length_or_type_is_refused(key: bytes) -> None:
    envelope = seal_document(KEY, DOC, b"x")
    stream = b"".join(seal_stream(KEY, DOC, [b"x"], chunk_size=CHUNK))
    _raises_exactly(ValueError, lambda: seal_document(key, DOC, b"x"))
    _raises_exactly(ValueError, lambda: open_document(key, DOC, envelope))
    # The stream functions are generators: they check on the first next().
    _raises_exactly(ValueError, lambda: list(seal_stream(key, DOC, [b"x"], chunk_size=CHUNK)))
    _raises_exactly(ValueError, lambda: list(open_stream(key, DOC, [stream])))


@pytest.mark.parametrize("document_id", ["", "x" * 0x10000])
def test_document_id_length_is_checked(document_id: str) -> None:
    _raises_exactly(ValueError, lambda: seal_document(KEY, document_id, b"x"))
    _raises_exactly(ValueError, lambda: list(seal_stream(KEY, document_id, [b"x"])))


def test_generated_keys_are_fresh_and_sized() -> None:
    first, second = aead.generate_key(), aead.generate_key()
    assert len(first) == aead.KEY_SIZE == 32
    assert first != second
    assert open_document(first, DOC, seal_document(first, DOC, b"x")) == b"x"
