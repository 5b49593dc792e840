"""Multi-hop transform cryptography (unidirectional proxy re-encryption).

The scheme of IronCore's recrypt (Wang-Cao with the Cai-Liu multi-hop extension;
Wall & Walsh, SCC'18), on BLS12-381. DESIGN.md §3 gives the algebra; the names
here follow it: ``E`` is a ciphertext's ephemeral key, ``C`` its body, and each
transform appends a block ``(T, encK, S, encR)``.

Verify, then use: ``EncryptedValue.verify()`` and ``TransformKey.verify()`` check
the Ed25519 signature and return the ``Verified*`` subtype; ``transform`` and
``decrypt`` accept only those, so a skipped check is a ``TypeError``.

Wire formats (all integers big-endian; points as in ``pairing``, GT elements
compressed as there, ``compress_gt``)::

    ciphertext     02 02 | level:1 | E:48 | C:288 | auth:32 | level x block | signer:32 | sig:64
    block          T:48 | encK:288 | S:48 | encR:288
    transform key  02 03 | T:48 | pk_B:48 | encK:288 | hashedK:96 | signer:32 | sig:64

A ciphertext's signature covers every byte before it. A transform key's signature
covers everything except ``hashedK`` (and itself), so the key service can augment
``hashedK`` without breaking it. A transformed ciphertext is re-signed by its
transformer: to know who *encrypted* it, decrypt with ``origin=`` the author's
signed level-0 value.
"""

import functools
import hashlib
import hmac
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from veil.crypto import pairing as pg
from veil.crypto.encoding import Kind, Reader, header
from veil.crypto.errors import (
    DecryptionError,
    InvalidLength,
    InvalidSignature,
    UnsupportedVersion,
)
from veil.crypto.keys import AugmentationSecret, Plaintext, PrivateKey, PublicKey
from veil.crypto.signing import SIGNATURE_SIZE, SigningKey, VerifyingKey

__all__ = [
    "MAX_LEVEL",
    "EncryptedValue",
    "PreparedTransform",
    "TransformBlock",
    "TransformKey",
    "VerifiedEncryptedValue",
    "VerifiedTransformKey",
    "decrypt",
    "descends_from",
    "encrypt",
    "generate_transform_key",
    "prepare_transforms",
    "transform",
    "transform_chain",
]

MAX_LEVEL: Final = 8
"""Most hops a ciphertext may carry. Veil uses two (group -> user -> device)."""

_AUTH_SIZE: Final = 32
_CIPHERTEXT_FIXED_SIZE: Final = (
    3 + pg.G1_SIZE + pg.GT_COMPRESSED_SIZE + _AUTH_SIZE + 32 + SIGNATURE_SIZE
)


_minting: ContextVar[bool] = ContextVar("veil_pre_minting", default=False)


@contextmanager
def _mint() -> Iterator[None]:
    """Only code in this module makes ``Verified*`` values (after checking, or signing)."""
    token = _minting.set(True)
    try:
        yield
    finally:
        _minting.reset(token)


def _refuse_unminted(value: object) -> None:
    if not _minting.get():
        name = type(value).__name__
        raise TypeError(f"{name} is made by .verify() (or by this module), not directly")


def _auth_hash(ephemeral_key: pg.G1, plaintext: pg.GT) -> bytes:
    return hashlib.sha256(pg.encode_g1(ephemeral_key) + pg.encode_gt(plaintext)).digest()


def _h2(x: pg.GT) -> pg.G2:
    return pg.hash_to_g2(pg.encode_gt(x))


PAIRED_KEYS_CACHED: Final = 32_768
"""Public keys whose ``e(pk, Q)`` a process keeps: every user and device of a
10,000-member meeting, with room to spare."""


@functools.lru_cache(maxsize=PAIRED_KEYS_CACHED)
def _paired_with_q(point: pg.G1) -> pg.GT:
    return pg.pair(point, pg.Q)


def _encrypt_to(to: PublicKey, k: pg.Fr) -> pg.GT:
    """``e(k*pk, Q)``, as ``e(pk, Q)**k`` (one GT power, blinded, instead of a scalar
    multiplication and a pairing; ``e(pk, Q)`` is computed once per key)."""
    return pg.pow_secret(_paired_with_q(to.point), k)


def descends_from(value: "EncryptedValue", origin: "EncryptedValue") -> bool:
    """Whether ``value`` is ``origin`` moved along zero or more transforms: ``E`` and
    the auth hash survive every hop, and decryption checks the plaintext against them.
    ``origin`` must be a verified level-0 value (``TypeError`` otherwise): checking
    descent from a value nobody vouched for proves nothing."""
    if not isinstance(origin, VerifiedEncryptedValue) or origin.level != 0:
        raise TypeError("origin must be a verified level-0 EncryptedValue")
    same_auth = hmac.compare_digest(value.auth_hash, origin.auth_hash)
    return same_auth and value.ephemeral_key == origin.ephemeral_key


def _check_signer(actual: VerifyingKey, required: VerifyingKey | None) -> None:
    if required is not None and required != actual:
        raise InvalidSignature


@dataclass(frozen=True, slots=True)
class TransformBlock:
    """What one hop appends: ``T``, ``encK`` from the transform key; ``S``, ``encR`` fresh."""

    ephemeral_key: pg.G1  # T
    encrypted_k: pg.GT  # encK
    random_key: pg.G1  # S
    encrypted_r: pg.GT  # encR
    SIZE: ClassVar[int] = 2 * pg.G1_SIZE + 2 * pg.GT_COMPRESSED_SIZE

    def __bytes__(self) -> bytes:
        return (
            pg.encode_g1(self.ephemeral_key)
            + pg.compress_gt(self.encrypted_k)
            + pg.encode_g1(self.random_key)
            + pg.compress_gt(self.encrypted_r)
        )

    @classmethod
    def read(cls, reader: Reader, index: int) -> "TransformBlock":
        what = f"ciphertext block {index}"
        return cls(
            pg.decode_g1(reader.take(pg.G1_SIZE), what=f"{what} T"),
            pg.decompress_gt(reader.take(pg.GT_COMPRESSED_SIZE), what=f"{what} encK"),
            pg.decode_g1(reader.take(pg.G1_SIZE), what=f"{what} S"),
            pg.decompress_gt(reader.take(pg.GT_COMPRESSED_SIZE), what=f"{what} encR"),
        )


@dataclass(frozen=True, slots=True)
class EncryptedValue:
    """A PRE ciphertext at any level (0 = as encrypted, n = after n transforms)."""

    ephemeral_key: pg.G1  # E
    body: pg.GT  # C
    auth_hash: bytes
    blocks: tuple[TransformBlock, ...]
    signer: VerifyingKey
    signature: bytes

    def __post_init__(self) -> None:
        """Overridden by ``VerifiedEncryptedValue`` to refuse unchecked construction."""

    @property
    def level(self) -> int:
        return len(self.blocks)

    def signed_bytes(self) -> bytes:
        blocks = b"".join(bytes(block) for block in self.blocks)
        return _signed_layout(
            self.level, self.ephemeral_key, self.body, self.auth_hash, blocks, self.signer
        )

    def __bytes__(self) -> bytes:
        return self.signed_bytes() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> "EncryptedValue":
        reader = Reader(data, "ciphertext")
        reader.expect_header(Kind.CIPHERTEXT)
        level = reader.uint(1)
        if level > MAX_LEVEL:
            raise UnsupportedVersion(f"ciphertext: level {level} exceeds {MAX_LEVEL}")
        expected = _CIPHERTEXT_FIXED_SIZE + level * TransformBlock.SIZE
        if len(data) != expected:
            raise InvalidLength(
                f"ciphertext: level {level} needs {expected} bytes, got {len(data)}"
            )
        value = cls(
            pg.decode_g1(reader.take(pg.G1_SIZE), what="ciphertext E"),
            pg.decompress_gt(reader.take(pg.GT_COMPRESSED_SIZE), what="ciphertext C"),
            reader.take(_AUTH_SIZE),
            tuple(TransformBlock.read(reader, i) for i in range(level)),
            VerifyingKey(reader.take(VerifyingKey.SIZE)),
            reader.take(SIGNATURE_SIZE),
        )
        reader.finish()
        return value

    def verify(self, *, signer: VerifyingKey | None = None) -> "VerifiedEncryptedValue":
        """Check the signature (and, if given, that ``signer`` made it)."""
        _check_signer(self.signer, signer)
        self.signer.verify(self.signature, self.signed_bytes())
        return VerifiedEncryptedValue._signed(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level}, signer={self.signer!r})"


class VerifiedEncryptedValue(EncryptedValue):
    """An ``EncryptedValue`` whose signature has been checked (or that this process made)."""

    __slots__ = ()

    def __post_init__(self) -> None:
        _refuse_unminted(self)

    @classmethod
    def _signed(cls, value: EncryptedValue) -> Self:
        with _mint():
            return cls(
                value.ephemeral_key,
                value.body,
                value.auth_hash,
                value.blocks,
                value.signer,
                value.signature,
            )


def _signed_layout(
    level: int,
    ephemeral_key: pg.G1,
    body: pg.GT,
    auth_hash: bytes,
    blocks: bytes,
    signer: VerifyingKey,
) -> bytes:
    """A ciphertext's bytes up to its signature (the module docstring's layout)."""
    return b"".join(
        (
            header(Kind.CIPHERTEXT),
            bytes((level,)),
            pg.encode_g1(ephemeral_key),
            pg.compress_gt(body),
            auth_hash,
            blocks,
            bytes(signer),
        )
    )


def _sign_value(
    signing_key: SigningKey,
    ephemeral_key: pg.G1,
    body: pg.GT,
    auth_hash: bytes,
    blocks: tuple[TransformBlock, ...],
) -> VerifiedEncryptedValue:
    unsigned = EncryptedValue(
        ephemeral_key, body, auth_hash, blocks, signing_key.verifying_key, b""
    )
    signature = signing_key.sign(unsigned.signed_bytes())
    with _mint():
        return VerifiedEncryptedValue(
            ephemeral_key, body, auth_hash, blocks, signing_key.verifying_key, signature
        )


@dataclass(frozen=True, slots=True)
class TransformKey:
    """A delegation A -> B: lets a transformer move ciphertexts for A to B."""

    ephemeral_key: pg.G1  # T
    to_public_key: PublicKey  # pk_B
    encrypted_k: pg.GT  # encK
    hashed_k: pg.G2  # hashedK, not signed: the key service may augment it
    signer: VerifyingKey
    signature: bytes

    def __post_init__(self) -> None:
        """Overridden by ``VerifiedTransformKey`` to refuse unchecked construction."""

    def signed_bytes(self) -> bytes:
        return b"".join(
            (
                header(Kind.TRANSFORM_KEY),
                pg.encode_g1(self.ephemeral_key),
                pg.encode_g1(self.to_public_key.point),
                pg.compress_gt(self.encrypted_k),
                bytes(self.signer),
            )
        )

    def __bytes__(self) -> bytes:
        return b"".join(
            (
                header(Kind.TRANSFORM_KEY),
                pg.encode_g1(self.ephemeral_key),
                pg.encode_g1(self.to_public_key.point),
                pg.compress_gt(self.encrypted_k),
                pg.encode_g2(self.hashed_k),
                bytes(self.signer),
                self.signature,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "TransformKey":
        reader = Reader(data, "transform key")
        reader.expect_header(Kind.TRANSFORM_KEY)
        key = cls(
            pg.decode_g1(reader.take(pg.G1_SIZE), what="transform key T"),
            PublicKey(pg.decode_g1(reader.take(pg.G1_SIZE), what="transform key pk_B")),
            pg.decompress_gt(reader.take(pg.GT_COMPRESSED_SIZE), what="transform key encK"),
            pg.decode_g2(reader.take(pg.G2_SIZE), what="transform key hashedK"),
            VerifyingKey(reader.take(VerifyingKey.SIZE)),
            reader.take(SIGNATURE_SIZE),
        )
        reader.finish()
        return key

    def verify(self, *, signer: VerifyingKey | None = None) -> "VerifiedTransformKey":
        _check_signer(self.signer, signer)
        self.signer.verify(self.signature, self.signed_bytes())
        return VerifiedTransformKey._signed(self, self.hashed_k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(to={self.to_public_key!r}, signer={self.signer!r})"


class VerifiedTransformKey(TransformKey):
    """A ``TransformKey`` whose signature has been checked (or that this process made)."""

    __slots__ = ()

    def __post_init__(self) -> None:
        _refuse_unminted(self)

    @classmethod
    def _signed(cls, key: TransformKey, hashed_k: pg.G2) -> Self:
        with _mint():
            return cls(
                key.ephemeral_key,
                key.to_public_key,
                key.encrypted_k,
                hashed_k,
                key.signer,
                key.signature,
            )

    def augment(self, secret: AugmentationSecret) -> "VerifiedTransformKey":
        """Finish a key made with the client's part of an augmented user key:
        ``hashedK - s*Q`` (the signature stays valid: it leaves ``hashedK`` out)."""
        return VerifiedTransformKey._signed(self, self.hashed_k + secret.negated_q())


# --- operations -----------------------------------------------------------------------


def encrypt(plaintext: Plaintext, to: PublicKey, signing_key: SigningKey) -> VerifiedEncryptedValue:
    """Level-0 ciphertext of ``plaintext`` for the holder of ``to``, signed by the sender."""
    k = pg.random_scalar()
    ephemeral_key = pg.mul_secret(pg.P, k)
    body = _encrypt_to(to, k) * plaintext.element
    auth = _auth_hash(ephemeral_key, plaintext.element)
    return _sign_value(signing_key, ephemeral_key, body, auth, ())


def generate_transform_key(
    from_key: PrivateKey, to: PublicKey, signing_key: SigningKey
) -> VerifiedTransformKey:
    """A transform key from ``from_key``'s holder to ``to``'s, signed by its maker."""
    t = pg.random_scalar()
    k = pg.random_gt()
    ephemeral_key = pg.mul_secret(pg.P, t)
    encrypted_k = _encrypt_to(to, t) * k
    hashed_k = _h2(k) + from_key.negated_q()
    unsigned = TransformKey(
        ephemeral_key, to, encrypted_k, hashed_k, signing_key.verifying_key, b""
    )
    signature = signing_key.sign(unsigned.signed_bytes())
    with _mint():
        return VerifiedTransformKey(
            ephemeral_key, to, encrypted_k, hashed_k, signing_key.verifying_key, signature
        )


def transform(
    value: VerifiedEncryptedValue, key: VerifiedTransformKey, signing_key: SigningKey
) -> VerifiedEncryptedValue:
    """Move ``value`` one hop along ``key``; the result is signed by the transformer."""
    return transform_chain(value, (key,), signing_key)


def transform_chain(
    value: VerifiedEncryptedValue, keys: Sequence[VerifiedTransformKey], signing_key: SigningKey
) -> VerifiedEncryptedValue:
    """Move ``value`` along each key in turn, and sign the result once (a value between
    two hops is never seen by anyone, so signing it would be wasted)."""
    _check_inputs(value, keys)
    body, blocks = value.body, value.blocks
    if value.level == 0:
        first, fresh = _fresh_chain(keys, _key_factors(keys))
        body, blocks = value.body * pg.pair(value.ephemeral_key, first), fresh
    else:
        for key in keys:
            hop, last = _fresh_block(key), blocks[-1]
            moved = _rewrite(last, key, hop, pg.pair(last.ephemeral_key, key.hashed_k))
            blocks = (*blocks[:-1], moved, hop.block)
    return _sign_value(signing_key, value.ephemeral_key, body, value.auth_hash, blocks)


def _check_inputs(value: VerifiedEncryptedValue, keys: Sequence[VerifiedTransformKey]) -> None:
    if not isinstance(value, VerifiedEncryptedValue):
        raise TypeError("transform() takes a VerifiedEncryptedValue: call .verify() first")
    _check_keys(keys, value.level)


def _check_keys(keys: Sequence[VerifiedTransformKey], level: int = 0) -> None:
    if not keys or not all(isinstance(key, VerifiedTransformKey) for key in keys):
        raise TypeError("transforms take VerifiedTransformKeys: call .verify() first")
    if level + len(keys) > MAX_LEVEL:
        raise ValueError(f"this would exceed the maximum of {MAX_LEVEL} hops a ciphertext carries")


@dataclass(frozen=True, slots=True)
class _Hop:
    block: TransformBlock
    hashed_fresh: pg.G2  # H2(K')


def _fresh_block(key: VerifiedTransformKey) -> _Hop:
    """A hop's own block: ``T`` and ``encK`` from the key, fresh ``K'`` and ``s``
    encrypted to the key's target. Independent of any ciphertext."""
    fresh_k = pg.random_gt()  # K'
    s = pg.random_scalar()
    block = TransformBlock(
        key.ephemeral_key,
        key.encrypted_k,
        pg.mul_secret(pg.P, s),
        _encrypt_to(key.to_public_key, s) * fresh_k,
    )
    return _Hop(block, _h2(fresh_k))


def _rewrite(
    last: TransformBlock, key: VerifiedTransformKey, hop: _Hop, key_factor: pg.GT
) -> TransformBlock:
    """The previous hop's block, moved along ``key`` (whose own block is ``hop``);
    ``key_factor`` is ``e(T, hashedK)``, which depends on the two keys alone."""
    return TransformBlock(
        last.ephemeral_key,
        last.encrypted_k * key_factor,
        last.random_key,
        last.encrypted_r * pg.pair(last.random_key, hop.hashed_fresh + key.hashed_k),
    )


def _key_factors(keys: Sequence[VerifiedTransformKey]) -> list[pg.GT]:
    return [pg.pair(a.ephemeral_key, b.hashed_k) for a, b in itertools.pairwise(keys)]


def _fresh_chain(
    keys: Sequence[VerifiedTransformKey], key_factors: Sequence[pg.GT]
) -> tuple[pg.G2, tuple[TransformBlock, ...]]:
    """A level-0 ciphertext's transform along ``keys``, but for ``C * e(E, first)``:
    ``first`` and the blocks as they will be."""
    hops = [_fresh_block(key) for key in keys]
    blocks = [hops[0].block]
    for key, hop, factor in zip(keys[1:], hops[1:], key_factors, strict=True):
        blocks[-1] = _rewrite(blocks[-1], key, hop, factor)
        blocks.append(hop.block)
    return keys[0].hashed_k + hops[0].hashed_fresh, tuple(blocks)


class PreparedTransform:
    """A transform of a level-0 ciphertext along a chain of keys, done in advance up
    to its one step that depends on the ciphertext.

    Everything else is fresh randomness and the keys: each hop's block (fresh ``K'``
    and ``s`` encrypted to the hop's target), each block rewritten by the next hop,
    and the first hop's pairing argument ``hashedK + H2(K')``. What is left,
    ``C * e(E, hashedK + H2(K'))``, is one pairing and the signature. The randomness
    is what a transform made on the spot would draw, so the result is distributed
    exactly as one; but it must serve exactly one ciphertext: two sharing it would
    share every block. ``finish`` refuses a second use (a copy made through
    ``bytes`` is the holder's to use once). It is never sent or stored anywhere.
    """

    __slots__ = ("_blocks", "_first", "_spent", "level")

    def __init__(self, first: pg.G2, blocks: bytes, level: int) -> None:
        self._first, self._blocks, self.level = first, blocks, level
        self._spent = False

    def finish(self, value: VerifiedEncryptedValue, signing_key: SigningKey) -> bytes:
        """``value`` (level 0) moved along the chain and signed: a ciphertext's bytes."""
        if self._spent:
            raise ValueError("a prepared transform serves one ciphertext only")
        if not isinstance(value, VerifiedEncryptedValue):
            raise TypeError("finish() takes a VerifiedEncryptedValue: call .verify() first")
        if value.level != 0:
            raise ValueError("a prepared transform starts from a level-0 ciphertext")
        self._spent = True
        body = value.body * pg.pair(value.ephemeral_key, self._first)
        signed = _signed_layout(
            self.level, value.ephemeral_key, body, value.auth_hash, self._blocks,
            signing_key.verifying_key,
        )  # fmt: skip
        return signed + signing_key.sign(signed)

    def __bytes__(self) -> bytes:
        """For a key service's own processes: ``level | first | blocks``."""
        return bytes((self.level,)) + pg.encode_g2(self._first) + self._blocks

    @classmethod
    def from_bytes(cls, data: bytes) -> "PreparedTransform":
        """Read what ``bytes`` gave, in the process that will ``finish`` it."""
        reader = Reader(data, "prepared transform")
        level = reader.uint(1)
        if not 1 <= level <= MAX_LEVEL:
            raise UnsupportedVersion(f"prepared transform: level {level}")
        first = pg.decode_g2(reader.take(pg.G2_SIZE), what="prepared transform first")
        blocks = reader.take(level * TransformBlock.SIZE)
        reader.finish()
        return cls(first, blocks, level)

    def __repr__(self) -> str:
        return f"PreparedTransform(level={self.level}, spent={self._spent})"


def prepare_transforms(keys: Sequence[VerifiedTransformKey], count: int) -> list[PreparedTransform]:
    """``count`` transforms along ``keys``, each with its own fresh randomness, ready
    to ``finish`` on a level-0 ciphertext each. ``e(T, hashedK)`` of each rewritten
    block depends on the keys alone, and is computed once for all ``count``."""
    _check_keys(keys)
    factors = _key_factors(keys)
    prepared = []
    for _ in range(count):
        first, blocks = _fresh_chain(keys, factors)
        encoded = b"".join(bytes(block) for block in blocks)
        prepared.append(PreparedTransform(first, encoded, len(blocks)))
    return prepared


def decrypt(
    value: VerifiedEncryptedValue, key: PrivateKey, *, origin: EncryptedValue | None = None
) -> Plaintext:
    """Recover the plaintext at any level; ``DecryptionError`` if ``key`` is not the holder's.

    A transformed value is signed by its last transformer, which says nothing about who
    encrypted it. Pass ``origin``, the level-0 value as its author signed it (e.g. a
    verified board post), to require that ``value`` descends from it: ``E`` and the
    auth hash survive every transform and the auth check binds the plaintext to them,
    so a transformer cannot substitute a plaintext of its own.

    A ``DecryptionError``'s traceback holds this frame's locals, which loggers and error
    trackers may record: the work happens in ``_open``, whose frame (``-d*Q``, each
    hop's key, the candidate plaintext) is gone when it returns, and the key is dropped
    here before anything is raised.
    """
    if not isinstance(value, VerifiedEncryptedValue):
        raise TypeError("decrypt() takes a VerifiedEncryptedValue: call .verify() first")
    opened = None if origin is not None and not descends_from(value, origin) else _open(value, key)
    del key
    if opened is None:
        raise DecryptionError
    return Plaintext(opened)


def _open(value: VerifiedEncryptedValue, key: PrivateKey) -> pg.GT | None:
    """The plaintext element if ``key`` opens ``value`` and the auth hash matches, else
    None (never raises for a wrong key: see ``decrypt``)."""
    neg_q = key.negated_q()  # -d*Q, so e(X, neg_q) = e(-d*X, Q)
    if value.level == 0:
        plaintext = value.body * pg.pair(value.ephemeral_key, neg_q)
    else:
        last = value.blocks[-1]
        k = last.encrypted_k * pg.pair(last.ephemeral_key, neg_q)
        r = last.encrypted_r * pg.pair(last.random_key, neg_q)
        hashed_k, hashed_r = _h2(k), _h2(r)
        for block in reversed(value.blocks[:-1]):
            k = block.encrypted_k * pg.pair(block.ephemeral_key, -hashed_k)
            r = block.encrypted_r * pg.pair(block.random_key, -(hashed_r + hashed_k))
            hashed_k, hashed_r = _h2(k), _h2(r)
        plaintext = value.body * pg.pair(value.ephemeral_key, -(hashed_k + hashed_r))
    if not hmac.compare_digest(_auth_hash(value.ephemeral_key, plaintext), value.auth_hash):
        return None
    return plaintext
