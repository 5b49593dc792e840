"""Document envelopes: AES-256-GCM under a fresh data-encryption key (DEK) per object.

Single-shot (documents, chat transcripts, abuse reports)::

    01 10 | id_len:2 | document_id | nonce:12 | ciphertext+tag

Streaming (large files, recordings): the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár (CRYPTO 2015) over AES-256-GCM::

    01 11 | id_len:2 | document_id | chunk_size:4 | nonce_prefix:7 | segment...

Segment ``i`` seals ``chunk_size`` bytes (the final one 0..``chunk_size``) under the
nonce ``nonce_prefix || i:4 || last:1``, where ``last`` is 1 only for the final
segment. A moved segment fails (wrong counter), a cut stream fails (its new last
segment was sealed as not-last), an extended one fails (the old last segment is no
longer last). In both forms the header, and so the document id, is the associated
data: an envelope opened under another document id fails.

``open_stream`` yields each chunk as soon as it authenticates; a truncated stream
raises only at its end, so a consumer must treat output as provisional until the
iterator finishes.
"""

import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.crypto.encoding import Kind, Reader, header
from veil.crypto.errors import DecryptionError, InvalidLength, NonCanonicalEncoding

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
DEFAULT_CHUNK_SIZE: Final = 64 * 1024
MIN_CHUNK_SIZE: Final = 1024
MAX_CHUNK_SIZE: Final = 16 * 1024 * 1024
_PREFIX_SIZE: Final = 7
_MAX_SEGMENTS: Final = 2**32


def generate_key() -> bytes:
    """A fresh 256-bit DEK. Use one per object."""
    return os.urandom(KEY_SIZE)


def _aead(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"a document key is {KEY_SIZE} bytes")
    return AESGCM(key)


def _id_field(document_id: str) -> bytes:
    if not isinstance(document_id, str):
        raise TypeError("a document id is a str")
    raw = document_id.encode()
    if not raw or len(raw) > 0xFFFF:
        raise ValueError("a document id is 1 to 65535 bytes of UTF-8")
    return len(raw).to_bytes(2, "big") + raw


def seal_document(key: bytes, document_id: str, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` as the document ``document_id`` under ``key``."""
    aead = _aead(key)
    head = header(Kind.DOCUMENT) + _id_field(document_id) + os.urandom(NONCE_SIZE)
    return head + aead.encrypt(head[-NONCE_SIZE:], plaintext, head)


def open_document(key: bytes, document_id: str, envelope: bytes) -> bytes:
    """Decrypt an envelope made by ``seal_document``; ``DecryptionError`` if anything differs."""
    aead = _aead(key)
    reader = Reader(envelope, "document envelope")
    reader.expect_header(Kind.DOCUMENT)
    found_id = reader.take(reader.uint(2))
    nonce = reader.take(NONCE_SIZE)
    if reader.remaining() < TAG_SIZE:
        raise InvalidLength("document envelope: shorter than its tag")
    body = reader.take(reader.remaining())
    expected = header(Kind.DOCUMENT) + _id_field(document_id) + nonce
    head = header(Kind.DOCUMENT) + len(found_id).to_bytes(2, "big") + found_id + nonce
    try:
        if head != expected:
            raise InvalidTag
        return aead.decrypt(nonce, body, head)
    except InvalidTag:
        raise DecryptionError from None


def _segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= _MAX_SEGMENTS:
        raise ValueError("stream exceeds 2^32 segments")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def seal_stream(
    key: bytes,
    document_id: str,
    chunks: Iterable[bytes],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Yield the stream header, then one sealed segment per ``chunk_size`` bytes of input.

    Arguments are checked at the call, before the first chunk is read."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must lie in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")
    aead = _aead(key)
    prefix = os.urandom(_PREFIX_SIZE)
    head = (
        header(Kind.DOCUMENT_STREAM)
        + _id_field(document_id)
        + chunk_size.to_bytes(4, "big")
        + prefix
    )
    return _seal_segments(aead, head, prefix, chunks, chunk_size)


def _seal_segments(
    aead: AESGCM, head: bytes, prefix: bytes, chunks: Iterable[bytes], chunk_size: int
) -> Iterator[bytes]:
    yield head
    buffer = bytearray()
    index = 0
    for chunk in chunks:
        buffer += chunk
        # Keep back at least one byte past a full chunk: only the final segment
        # may be sealed as last, and we cannot know it is final until input ends.
        while len(buffer) > chunk_size:
            nonce = _segment_nonce(prefix, index, False)
            yield aead.encrypt(nonce, bytes(buffer[:chunk_size]), head)
            del buffer[:chunk_size]
            index += 1
    yield aead.encrypt(_segment_nonce(prefix, index, True), bytes(buffer), head)


def open_stream(key: bytes, document_id: str, data: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the plaintext chunks of a stream made by ``seal_stream``.

    Raises ``DecryptionError`` on any reordered, altered, truncated or extended
    segment, or on a stream sealed for another document id. The key and id are
    checked at the call; the stream as it is read.
    """
    return _open_segments(_aead(key), _id_field(document_id), data)


def _open_segments(aead: AESGCM, expected_id: bytes, data: Iterable[bytes]) -> Iterator[bytes]:
    fixed = 2 + len(expected_id) + 4 + _PREFIX_SIZE
    buffer = bytearray()
    pieces = iter(data)
    for piece in pieces:
        buffer += piece
        if len(buffer) >= fixed:
            break
    if len(buffer) < fixed:
        raise InvalidLength("document stream: shorter than its header")
    reader = Reader(bytes(buffer[:fixed]), "document stream header")
    reader.expect_header(Kind.DOCUMENT_STREAM)
    if reader.take(len(expected_id)) != expected_id:
        raise DecryptionError
    chunk_size = reader.uint(4)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise NonCanonicalEncoding(f"document stream: chunk size {chunk_size} out of range")
    prefix = reader.take(_PREFIX_SIZE)
    head = bytes(buffer[:fixed])
    del buffer[:fixed]
    segment = chunk_size + TAG_SIZE
    index = 0

    def _open(sealed: bytes, last: bool) -> bytes:
        try:
            return aead.decrypt(_segment_nonce(prefix, index, last), sealed, head)
        except InvalidTag:
            raise DecryptionError from None

    # The piece that completed the header may already hold whole segments.
    for piece in itertools.chain((b"",), pieces):
        buffer += piece
        while len(buffer) > segment:
            yield _open(bytes(buffer[:segment]), False)
            del buffer[:segment]
            index += 1
    if len(buffer) < TAG_SIZE:
        raise DecryptionError
    yield _open(bytes(buffer), True)
