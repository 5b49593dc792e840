"""Multi-hop transform cryptography (unidirectional proxy re-encryption).

The scheme of IronCore's recrypt (Wang-Cao with the Cai-Liu multi-hop extension;
Wall & Walsh, SCC'18), on BLS12-381. DESIGN.md §3 gives the algebra; the names
here follow it: ``E`` is a ciphertext's ephemeral key, ``C`` its body, and each
transform appends a block ``(T, encK, S, encR)``.

Verify, then use: ``EncryptedValue.verify()`` and ``TransformKey.verify()`` check
the Ed25519 signature and return the ``Verified*`` subtype; ``transform`` and
``decrypt`` accept only those, so a skipped check is a ``TypeError``.

Wire formats (all integers big-endian; points and GT elements as in ``pairing``)::

    ciphertext     01 02 | level:1 | E:48 | C:576 | auth:32 | level x block | signer:32 | sig:64
    block          T:48 | encK:576 | S:48 | encR:576
    transform key  01 03 | T:48 | pk_B:48 | encK:576 | hashedK:96 | signer:32 | sig:64

A ciphertext's signature covers every byte before it. A transform key's signature
covers everything except ``hashedK`` (and itself), so the key service can augment
``hashedK`` without breaking it. A transformed ciphertext is re-signed by its
transformer: to know who *encrypted* it, decrypt with ``origin=`` the author's
signed level-0 value.
"""

import hashlib
import hmac
from collections.abc import Iterator
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
    "TransformBlock",
    "TransformKey",
    "VerifiedEncryptedValue",
    "VerifiedTransformKey",
    "decrypt",
    "descends_from",
    "encrypt",
    "generate_transform_key",
    "transform",
]

MAX_LEVEL: Final = 8
"""Most hops a ciphertext may carry. Veil uses two (group -> user -> device)."""

_AUTH_SIZE: Final = 32
_CIPHERTEXT_FIXED_SIZE: Final = 3 + pg.G1_SIZE + pg.GT_SIZE + _AUTH_SIZE + 32 + SIGNATURE_SIZE


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
    SIZE: ClassVar[int] = 2 * pg.G1_SIZE + 2 * pg.GT_SIZE

    def __bytes__(self) -> bytes:
        return (
            pg.encode_g1(self.ephemeral_key)
            + pg.encode_gt(self.encrypted_k)
            + pg.encode_g1(self.random_key)
            + pg.encode_gt(self.encrypted_r)
        )

    @classmethod
    def read(cls, reader: Reader, index: int) -> "TransformBlock":
        what = f"ciphertext block {index}"
        return cls(
            pg.decode_g1(reader.take(pg.G1_SIZE), what=f"{what} T"),
            pg.decode_gt(reader.take(pg.GT_SIZE), what=f"{what} encK"),
            pg.decode_g1(reader.take(pg.G1_SIZE), what=f"{what} S"),
            pg.decode_gt(reader.take(pg.GT_SIZE), what=f"{what} encR"),
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
        return b"".join(
            (
                header(Kind.CIPHERTEXT),
                bytes((self.level,)),
                pg.encode_g1(self.ephemeral_key),
                pg.encode_gt(self.body),
                self.auth_hash,
                *(bytes(block) for block in self.blocks),
                bytes(self.signer),
            )
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
            pg.decode_gt(reader.take(pg.GT_SIZE), what="ciphertext C"),
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
                pg.encode_gt(self.encrypted_k),
                bytes(self.signer),
            )
        )

    def __bytes__(self) -> bytes:
        return b"".join(
            (
                header(Kind.TRANSFORM_KEY),
                pg.encode_g1(self.ephemeral_key),
                pg.encode_g1(self.to_public_key.point),
                pg.encode_gt(self.encrypted_k),
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
            pg.decode_gt(reader.take(pg.GT_SIZE), what="transform key encK"),
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
    body = pg.pair(pg.mul_secret(to.point, k), pg.Q) * plaintext.element
    auth = _auth_hash(ephemeral_key, plaintext.element)
    return _sign_value(signing_key, ephemeral_key, body, auth, ())


def generate_transform_key(
    from_key: PrivateKey, to: PublicKey, signing_key: SigningKey
) -> VerifiedTransformKey:
    """A transform key from ``from_key``'s holder to ``to``'s, signed by its maker."""
    t = pg.random_scalar()
    k = pg.random_gt()
    ephemeral_key = pg.mul_secret(pg.P, t)
    encrypted_k = pg.pair(pg.mul_secret(to.point, t), pg.Q) * k
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
    if not isinstance(value, VerifiedEncryptedValue):
        raise TypeError("transform() takes a VerifiedEncryptedValue: call .verify() first")
    if not isinstance(key, VerifiedTransformKey):
        raise TypeError("transform() takes a VerifiedTransformKey: call .verify() first")
    if value.level >= MAX_LEVEL:
        raise ValueError(f"ciphertext already carries the maximum of {MAX_LEVEL} hops")
    fresh_k = pg.random_gt()  # K'
    s = pg.random_scalar()
    hashed_fresh = _h2(fresh_k)
    new_block = TransformBlock(
        key.ephemeral_key,
        key.encrypted_k,
        pg.mul_secret(pg.P, s),
        pg.pair(pg.mul_secret(key.to_public_key.point, s), pg.Q) * fresh_k,
    )
    if value.level == 0:
        body = value.body * pg.pair(value.ephemeral_key, key.hashed_k + hashed_fresh)
        blocks: tuple[TransformBlock, ...] = (new_block,)
    else:
        body = value.body
        last = value.blocks[-1]
        rewritten = TransformBlock(
            last.ephemeral_key,
            last.encrypted_k * pg.pair(last.ephemeral_key, key.hashed_k),
            last.random_key,
            last.encrypted_r * pg.pair(last.random_key, hashed_fresh + key.hashed_k),
        )
        blocks = (*value.blocks[:-1], rewritten, new_block)
    return _sign_value(signing_key, value.ephemeral_key, body, value.auth_hash, blocks)


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
