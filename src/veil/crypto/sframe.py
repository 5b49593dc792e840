"""SFrame (RFC 9605): end-to-end encryption of media frames.

``SFrameHeader`` is the §4.3 header; ``derive_key_salt`` the §4.4.2 key schedule;
``SFrameSender`` and ``SFrameReceiver`` the §4.4.3/§4.4.4 encryption and decryption
with the cipher suites of §4.5 (1-5; Veil uses 5, AES_256_GCM_SHA512_128, unless
told otherwise). The receiver keeps a sliding replay window per key (§7.3 leaves
replay protection to the application; the window is that of RFC 4303 §3.4.3).
"""

import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from veil.crypto.errors import DecryptionError, InvalidLength, ReplayedFrame, UnknownKeyId

MAX_VALUE: Final = 2**64 - 1
"""KIDs and counters are at most 64 bits (§4.3)."""
DEFAULT_REPLAY_WINDOW: Final = 128


class CipherSuite(IntEnum):
    """RFC 9605 §4.5 (and its IANA registry)."""

    AES_128_CTR_HMAC_SHA256_80 = 1
    AES_128_CTR_HMAC_SHA256_64 = 2
    AES_128_CTR_HMAC_SHA256_32 = 3
    AES_128_GCM_SHA256_128 = 4
    AES_256_GCM_SHA512_128 = 5


@dataclass(frozen=True, slots=True)
class _Params:
    hash: type[hashes.SHA256] | type[hashes.SHA512]
    nka: int  # AES key size inside a CTR+HMAC key; 0 for GCM
    nk: int
    nt: int
    nn: int = 12


_PARAMS: Final = {
    CipherSuite.AES_128_CTR_HMAC_SHA256_80: _Params(hashes.SHA256, 16, 48, 10),
    CipherSuite.AES_128_CTR_HMAC_SHA256_64: _Params(hashes.SHA256, 16, 48, 8),
    CipherSuite.AES_128_CTR_HMAC_SHA256_32: _Params(hashes.SHA256, 16, 48, 4),
    CipherSuite.AES_128_GCM_SHA256_128: _Params(hashes.SHA256, 0, 16, 16),
    CipherSuite.AES_256_GCM_SHA512_128: _Params(hashes.SHA512, 0, 32, 16),
}


# --- §4.3 header ----------------------------------------------------------------------


def _check_value(value: int, what: str) -> None:
    if not 0 <= value <= MAX_VALUE:
        raise ValueError(f"SFrame {what} must lie in [0, 2^64)")


def _field(value: int) -> tuple[int, bytes]:
    """The 4 header bits (extension flag + 3 bits) and the extra bytes for one value."""
    if value < 8:
        return value, b""
    size = (value.bit_length() + 7) // 8
    return 0b1000 | (size - 1), value.to_bytes(size, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    _check_value(kid, "KID")
    _check_value(ctr, "counter")
    kid_bits, kid_bytes = _field(kid)
    ctr_bits, ctr_bytes = _field(ctr)
    return bytes(((kid_bits << 4) | ctr_bits,)) + kid_bytes + ctr_bytes


@dataclass(frozen=True, slots=True)
class SFrameHeader:
    """``|X| K |Y| C |`` then the extended KID and CTR bytes, if any (§4.3)."""

    kid: int
    ctr: int

    def __post_init__(self) -> None:
        _check_value(self.kid, "KID")
        _check_value(self.ctr, "counter")

    def __bytes__(self) -> bytes:
        return encode_header(self.kid, self.ctr)

    @classmethod
    def parse(cls, data: bytes) -> tuple["SFrameHeader", int]:
        """Read a header from the front of ``data``; return it and its length in bytes."""
        kid, ctr, size = _read_header(data)
        return cls(kid, ctr), size


def _header_layout(config: int) -> tuple[int, int, int, int, int]:
    """How to read a header that starts with ``config``, taken whole as one big-endian
    integer: ``(length, KID shift, KID mask, CTR shift, CTR mask)``."""
    kid_nibble, ctr_nibble = config >> 4, config & 0x0F
    # A nibble of 0b1xxx announces xxx + 1 bytes of value after the config byte.
    kid_size = kid_nibble - 7 if kid_nibble > 7 else 0
    ctr_size = ctr_nibble - 7 if ctr_nibble > 7 else 0
    length = 1 + kid_size + ctr_size
    config_shift = 8 * (length - 1)
    kid = (8 * ctr_size, (1 << 8 * kid_size) - 1) if kid_size else (config_shift + 4, 7)
    ctr = (0, (1 << 8 * ctr_size) - 1) if ctr_size else (config_shift, 7)
    return length, *kid, *ctr


# Indexed by the config byte: one table lookup and one int.from_bytes read a header,
# since unprotect() runs for every media frame.
_LAYOUTS: Final = tuple(_header_layout(config) for config in range(256))


def _read_header(data: bytes) -> tuple[int, int, int]:
    """``(kid, ctr, header length)``; at most 8 bytes each, so always below 2^64."""
    if not data:
        raise InvalidLength("SFrame header: empty input")
    end, kid_shift, kid_mask, ctr_shift, ctr_mask = _LAYOUTS[data[0]]
    if end > len(data):
        raise InvalidLength("SFrame header: truncated")
    value = int.from_bytes(data[:end], "big")
    return (value >> kid_shift) & kid_mask, (value >> ctr_shift) & ctr_mask, end


# --- §4.4.2 key schedule --------------------------------------------------------------


def derive_key_salt(suite: CipherSuite, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` for one KID (§4.4.2)."""
    _check_value(kid, "KID")
    params = _PARAMS[CipherSuite(suite)]
    # HKDF-Extract with an empty salt is HMAC keyed with the empty string (RFC 5869 §2.2).
    secret = hmac.new(b"", base_key, params.hash.name).digest()
    context = kid.to_bytes(8, "big") + suite.to_bytes(2, "big")
    key = HKDFExpand(params.hash(), params.nk, b"SFrame 1.0 Secret key " + context).derive(secret)
    salt = HKDFExpand(params.hash(), params.nn, b"SFrame 1.0 Secret salt " + context).derive(secret)
    return key, salt


class _CtrHmac:
    """The AES-CTR + HMAC-SHA256 AEAD of §4.5.1, with the AESGCM call shape."""

    __slots__ = ("_auth_key", "_enc_key", "_nt")

    def __init__(self, key: bytes, params: _Params) -> None:
        self._enc_key, self._auth_key, self._nt = key[: params.nka], key[params.nka :], params.nt

    def _tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        lengths = b"".join(n.to_bytes(8, "big") for n in (len(aad), len(ct), self._nt))
        return hmac.new(self._auth_key, lengths + nonce + aad + ct, "sha256").digest()[: self._nt]

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        cipher = Cipher(algorithms.AES(self._enc_key), modes.CTR(nonce + bytes(4)))
        encryptor = cipher.encryptor()
        return encryptor.update(data) + encryptor.finalize()

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        ct = self._ctr(nonce, data)
        return ct + self._tag(nonce, aad, ct)

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if len(data) < self._nt:
            raise InvalidTag
        ct, tag = data[: -self._nt], data[-self._nt :]
        if not hmac.compare_digest(self._tag(nonce, aad, ct), tag):
            raise InvalidTag
        return self._ctr(nonce, ct)


class _KeyState:
    """One KID's derived key and salt, ready for §4.4.3 nonces."""

    __slots__ = ("decrypt", "encrypt", "fingerprint", "salt", "window")

    def __init__(self, suite: CipherSuite, kid: int, base_key: bytes, window: int) -> None:
        suite = CipherSuite(suite)
        key, salt = derive_key_salt(suite, kid, base_key)
        # Compares keys without keeping a second copy of them in the clear.
        self.fingerprint = hmac.new(key, b"veil sframe key fingerprint", "sha256").digest()
        params = _PARAMS[suite]
        aead: AESGCM | _CtrHmac = AESGCM(key) if params.nka == 0 else _CtrHmac(key, params)
        self.encrypt, self.decrypt = aead.encrypt, aead.decrypt
        self.salt = int.from_bytes(salt, "big")
        self.window = ReplayWindow(window)

    def nonce(self, ctr: int) -> bytes:
        """§4.4.3: the salt XOR the counter, left-padded to the nonce size. (unprotect()
        inlines this and the sender makes 256 at a time, as both run for every frame.)"""
        return (self.salt ^ ctr).to_bytes(12, "big")


class ReplayWindow:
    """Accepts each counter once, and none more than ``size`` behind the highest seen.

    A counter one above the top only moves ``top``: every counter in
    ``(_mask_top, top]`` arrived that way, and the bit mask catches up with them when
    a counter arrives out of order. In-order frames are the common case, and shifting
    a ``size``-bit integer for each one cost a tenth of an AES-GCM round trip.
    """

    __slots__ = ("_full", "_mask", "_mask_top", "_size", "top")

    def __init__(self, size: int = DEFAULT_REPLAY_WINDOW) -> None:
        if size < 1:
            raise ValueError("a replay window holds at least one counter")
        self._size = size
        self._full = (1 << size) - 1
        self.top = -1
        self._mask_top = -1
        self._mask = 0  # bit i set: counter _mask_top - i was accepted

    def _catch_up(self) -> None:
        """Bring the mask up to ``top``: the counters it has not seen all arrived in order."""
        run = self.top - self._mask_top
        if run:
            # Past a whole window nothing older survives; shifting further would only
            # allocate (a forged jump to 2^64 must not cost memory).
            ones = (1 << run) - 1 if run < self._size else self._full
            self._mask = ((self._mask << min(run, self._size)) | ones) & self._full
            self._mask_top = self.top

    def check(self, ctr: int) -> None:
        if ctr > self.top:
            return
        behind = self.top - ctr
        if behind >= self._size:
            raise ReplayedFrame
        self._catch_up()
        if (self._mask >> behind) & 1:
            raise ReplayedFrame

    def accept(self, ctr: int) -> None:
        """Record ``ctr`` as seen, after ``check`` passed and the frame authenticated
        (``ReplayedFrame`` if another accept took it meanwhile, or left it behind)."""
        if ctr == self.top + 1:
            self.top = ctr
            return
        self._catch_up()
        if ctr > self.top:
            shift = ctr - self.top
            self._mask = ((self._mask << shift) | 1) & self._full if shift < self._size else 1
            self.top = self._mask_top = ctr
        else:
            behind = self.top - ctr
            # check() refused these; refuse them here too, for a caller that checked
            # two frames before accepting either (and against a shift past the window).
            if behind >= self._size or (self._mask >> behind) & 1:
                raise ReplayedFrame
            self._mask |= 1 << behind


_BYTES: Final = tuple(bytes((i,)) for i in range(256))


class SFrameSender:
    """Protects one sender's frames under one KID, counting from 0.

    Not thread-safe: two threads protecting at once could use one counter twice, and
    so one nonce. Give each thread its own sender (and KID), or hold a lock. (On an
    event loop it is safe: ``protect`` never awaits.) It holds the headers and nonces
    of 256 counters at a time, about 28 kB."""

    __slots__ = (
        "_ctr",
        "_encrypt",
        "_heads",
        "_kid",
        "_nonce_ends",
        "_nonces",
        "_prefixes",
        "_salt",
    )
    DEFAULT_SUITE: ClassVar[CipherSuite] = CipherSuite.AES_256_GCM_SHA512_128

    def __init__(self, kid: int, base_key: bytes, *, suite: CipherSuite = DEFAULT_SUITE) -> None:
        _check_value(kid, "KID")
        self._kid = kid
        state = _KeyState(suite, kid, base_key, 1)
        self._encrypt, self._salt = state.encrypt, state.salt
        self._ctr = 0
        # A header with an n-byte counter is _prefixes[n] and those bytes.
        kid_bits, kid_bytes = _field(kid)
        self._prefixes = [b""] + [
            bytes(((kid_bits << 4) | 0b1000 | (size - 1),)) + kid_bytes for size in range(1, 9)
        ]
        # §4.4.3 nonces are the salt XOR the counter. The 256 counters of a block differ
        # in their last byte only, and the salt's last byte orders it alike in every block.
        self._nonce_ends = [_BYTES[(self._salt & 0xFF) ^ low] for low in range(256)]
        self._fill(0)

    @property
    def kid(self) -> int:
        return self._kid

    def _fill(self, block: int) -> None:
        """The headers and nonces of the 256 counters from ``block`` (a multiple of 256),
        made together for a list index each in protect(), which runs for every frame."""
        if block > MAX_VALUE:
            raise OverflowError("SFrame counter exhausted: derive a new key")
        if block:  # every counter of the block has the same size and leading bytes
            size = (block.bit_length() + 7) >> 3
            stem = self._prefixes[size] + (block >> 8).to_bytes(size - 1)
            self._heads = [stem + low for low in _BYTES]
        else:  # counters below 8 fit in the config byte (§4.3)
            short = [encode_header(self._kid, ctr) for ctr in range(8)]
            self._heads = short + [self._prefixes[1] + low for low in _BYTES[8:]]
        stem = ((self._salt ^ block) >> 8).to_bytes(11)
        self._nonces = [stem + end for end in self._nonce_ends]

    def _seek(self, ctr: int) -> None:
        """Continue from ``ctr``: for tests, which cannot send 2^64 frames."""
        self._fill(ctr & ~0xFF)
        self._ctr = ctr

    def protect(self, payload: bytes, metadata: bytes = b"") -> bytes:
        ctr = self._ctr
        low = ctr & 0xFF
        if not low and ctr:
            self._fill(ctr)
        head = self._heads[low]
        self._ctr = ctr + 1
        aad = head + metadata if metadata else head
        return head + self._encrypt(self._nonces[low], payload, aad)

    def __repr__(self) -> str:
        return f"SFrameSender(kid={self._kid}, ctr={self._ctr})"


class SFrameReceiver:
    """Unprotects frames for every KID it holds a key for, each with its replay window.

    Not thread-safe: unprotecting on two threads at once could accept a frame twice.
    """

    __slots__ = ("_keys", "_window")

    def __init__(self, *, replay_window: int = DEFAULT_REPLAY_WINDOW) -> None:
        ReplayWindow(replay_window)  # refuse a bad size now, not at the first add_key
        self._keys: dict[int, _KeyState] = {}
        self._window = replay_window

    def add_key(
        self, kid: int, base_key: bytes, *, suite: CipherSuite = SFrameSender.DEFAULT_SUITE
    ) -> None:
        """Hold a key for ``kid``. Adding the same key again keeps its replay window; a
        different key for a KID in use is refused (KIDs carry the epoch: a new key is a
        new KID), since a fresh window would accept old frames again."""
        state = _KeyState(suite, kid, base_key, self._window)
        current = self._keys.get(kid)
        if current is None:
            self._keys[kid] = state
        elif not hmac.compare_digest(current.fingerprint, state.fingerprint):
            raise ValueError(f"KID {kid} already has a different key; remove it first")

    def remove_key(self, kid: int) -> None:
        self._keys.pop(kid, None)

    @property
    def kids(self) -> frozenset[int]:
        return frozenset(self._keys)

    def unprotect(self, frame: bytes, metadata: bytes = b"") -> bytes:
        """The payload of ``frame``; ``UnknownKeyId``, ``ReplayedFrame`` or ``DecryptionError``."""
        # _read_header and the window's common case inlined: this runs for every frame.
        # (Byte order: big-endian is the default of int.from_bytes and to_bytes, and
        # naming it costs 30 ns.)
        try:
            end, kid_shift, kid_mask, ctr_shift, ctr_mask = _LAYOUTS[frame[0]]
        except IndexError:
            raise InvalidLength("SFrame header: empty input") from None
        header = frame[:end]
        if len(header) != end:
            raise InvalidLength("SFrame header: truncated")
        value = int.from_bytes(header)
        try:
            state = self._keys[(value >> kid_shift) & kid_mask]
        except KeyError:
            raise UnknownKeyId(f"no SFrame key for KID {(value >> kid_shift) & kid_mask}") from None
        ctr = (value >> ctr_shift) & ctr_mask
        window = state.window
        top = window.top
        if ctr <= top:
            window.check(ctr)
        try:
            payload = state.decrypt(
                (state.salt ^ ctr).to_bytes(12),
                frame[end:],
                header + metadata if metadata else header,
            )
        except InvalidTag:
            raise DecryptionError from None
        if ctr == top + 1:  # the next frame in order: ReplayWindow.accept, inlined
            window.top = ctr
        else:
            window.accept(ctr)
        return payload

    def __repr__(self) -> str:
        return f"SFrameReceiver(kids={sorted(self._keys)})"
