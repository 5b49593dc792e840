"""Strict parsing of Veil's versioned wire formats.

Every structure starts with two bytes: its format's version (``version_of``) and a
kind byte naming the structure, so a public key can never be read as a ciphertext.
The readers here check lengths exactly and reject trailing bytes.
"""

from enum import IntEnum

from veil.crypto.errors import InvalidLength, UnsupportedVersion

VERSION = 1
"""Suite 1: BLS12-381, SHA-256, RFC 9380 hash-to-G2, Ed25519, AES-256-GCM."""


class Kind(IntEnum):
    PUBLIC_KEY = 0x01
    CIPHERTEXT = 0x02
    TRANSFORM_KEY = 0x03
    SCHNORR_SIGNATURE = 0x04
    DOCUMENT = 0x10
    DOCUMENT_STREAM = 0x11
    ESCROW = 0x20


_COMPRESSED_GT = 2
"""The version of the formats that carry GT elements, since they travel compressed
(288 bytes instead of 576: ``veil.crypto.pairing.compress_gt``); version 1 of them is
refused by name."""


def version_of(kind: Kind) -> int:
    return _COMPRESSED_GT if kind in (Kind.CIPHERTEXT, Kind.TRANSFORM_KEY) else VERSION


def header(kind: Kind) -> bytes:
    return bytes((version_of(kind), kind))


class Reader:
    """Consumes a byte string front to back; every shortfall is an ``InvalidLength``."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    def expect_header(self, kind: Kind) -> None:
        version, found = self.take(2)
        if version != version_of(kind):
            raise UnsupportedVersion(f"{self._what}: unsupported version {version}")
        if found != kind:
            raise UnsupportedVersion(f"{self._what}: kind byte {found:#04x} is not {kind.name}")

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise InvalidLength(
                f"{self._what}: truncated (needs {end} bytes, has {len(self._data)})"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise InvalidLength(f"{self._what}: {len(self._data) - self._pos} trailing bytes")
