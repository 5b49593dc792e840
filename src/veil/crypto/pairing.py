"""BLS12-381 behind one seam: scalars, G1, G2, GT, the pairing, encodings, H2.

This is the only module that imports the pairing library, ``pymcl`` (herumi/mcl):
its classes for the group arithmetic and the pairing, and, for RFC 9380 hash-to-G2,
the C function its bundled mcl exports (pymcl's classes do not offer the RFC's
suite with a chosen domain tag). A constant-time backend can replace it here
without touching the rest of Veil.

Encodings
    G1 and G2 points travel as 48- and 96-byte compressed points in the ZCash/IETF
    format (draft-irtf-cfrg-pairing-friendly-curves, Appendix C): big-endian x
    (for G2, ``x.c1 || x.c0``), and three flag bits in the first byte: compressed
    (0x80), infinity (0x40), and "y is the larger of y and -y" (0x20).
    GT elements travel as 576 bytes: the twelve Fp coefficients of the Fp12 value,
    each 48 bytes big-endian, in tower order. With Fp2 = Fp[u]/(u^2+1),
    Fp6 = Fp2[v]/(v^3-(1+u)), Fp12 = Fp6[w]/(w^2-v) and
    ``f = (a0 + a1 v + a2 v^2) + (b0 + b1 v + b2 v^2) w``, the order is
    ``a0.c0 a0.c1 a1.c0 a1.c1 a2.c0 a2.c1 b0.c0 b0.c1 b1.c0 b1.c1 b2.c0 b2.c1``.
    That full form is what hashes and key derivations take (``encode_gt``). On the
    wire, GT elements travel compressed to 288 bytes (``compress_gt``): an element
    ``g = a + b w`` of GT has norm ``a^2 - v b^2 = 1`` over Fp6, so it is determined
    by ``c = (1 + a) / b`` in Fp6, and ``g = (c + w) / (c - w)`` (the torus T2;
    Rubin & Silverberg, "Torus-based cryptography", CRYPTO 2003, §5). ``c`` travels
    as its six Fp coefficients in the order above, 48 bytes big-endian each; the
    identity (``b = 0``) as 288 zero bytes, which no other element can take (``c = 0``
    would be -1, which is not in GT).

Strict decoding
    Every decoder checks the length, the canonical form (flags, coordinates below
    p), curve membership, prime-order subgroup membership (mcl checks the order of
    G1/G2 points on load; GT membership is checked here, since mcl accepts any
    Fp12 value), and rejects the identity unless the caller allows it.

Blinding
    mcl's scalar multiplication and exponentiation are not constant time, so no
    secret scalar ever reaches them directly. ``mul_secret(X, k)`` draws a fresh
    uniform ``m`` and returns ``X*m + X*(k-m)``: each multiplication sees a scalar
    that is uniform and, on its own, independent of ``k``, so its timing says
    nothing about ``k``. ``pow_secret`` does the same in GT. Private keys that are
    used again and again are turned once (blinded) into the point ``-a*Q``; the
    operations that need them then only feed that point to the pairing, whose
    control flow does not depend on its inputs.
"""

import ctypes
import hashlib
import secrets
from typing import Final, TypeVar

import pymcl
from pymcl import G1, G2, GT, Fr

from veil.crypto.errors import (
    IdentityElement,
    InvalidLength,
    NonCanonicalEncoding,
    NotInSubgroup,
    NotOnCurve,
)

__all__ = [
    "G1",
    "G1_SIZE",
    "G2",
    "G2_SIZE",
    "GT",
    "GT_SIZE",
    "H2_DST",
    "SCALAR_SIZE",
    "Fr",
    "P",
    "Q",
    "R",
    "decode_g1",
    "decode_g2",
    "decode_gt",
    "decode_scalar",
    "encode_g1",
    "encode_g2",
    "encode_gt",
    "encode_scalar",
    "gt_generator",
    "hash_to_g2",
    "hash_to_scalar",
    "is_in_gt",
    "mul_secret",
    "pair",
    "pow_secret",
    "random_gt",
    "random_scalar",
]

R: Final = pymcl.r
"""The prime order of G1, G2 and GT."""
PRIME: Final = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
"""The base field modulus p."""
_HALF: Final = (PRIME - 1) // 2
_U_ABS: Final = 0xD201000000010000
"""|u| for the BLS parameter u = -0xd201000000010000."""

P: Final[G1] = pymcl.g1
Q: Final[G2] = pymcl.g2

SCALAR_SIZE: Final = 32
G1_SIZE: Final = 48
G2_SIZE: Final = 96
GT_SIZE: Final = 576
GT_COMPRESSED_SIZE: Final = 288
_FP_SIZE: Final = 48

H2_DST: Final = b"VEIL-V01-CS01-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"
"""Veil's domain separation tag for H2, in the form RFC 9380 §3.1 recommends."""

_FLAG_COMPRESSED: Final = 0x80
_FLAG_INFINITY: Final = 0x40
_FLAG_LARGEST_Y: Final = 0x20
_MCL_ODD_Y: Final = 0x80  # mcl's own flag, in the last byte of its little-endian x

# --- scalars -------------------------------------------------------------------------


def _fr_from_int(n: int) -> Fr:
    # pymcl's Fr(int) takes only 64-bit values; its serialization is 32 bytes little-endian.
    return Fr.deserialize((n % R).to_bytes(SCALAR_SIZE, "little"))


def random_scalar() -> Fr:
    """A uniform non-zero scalar from ``secrets`` (64 bytes reduced mod r: bias < 2^-256)."""
    while True:
        n = int.from_bytes(secrets.token_bytes(64), "big") % R
        if n:
            return _fr_from_int(n)


def encode_scalar(k: Fr) -> bytes:
    """32 bytes big-endian."""
    return k.serialize()[::-1]


def decode_scalar(data: bytes, *, allow_zero: bool = False) -> Fr:
    if len(data) != SCALAR_SIZE:
        raise InvalidLength(f"scalar: expected {SCALAR_SIZE} bytes, got {len(data)}")
    n = int.from_bytes(data, "big")
    if n >= R:
        raise NonCanonicalEncoding("scalar: value is not below the group order")
    if n == 0 and not allow_zero:
        raise IdentityElement("scalar: zero is not allowed here")
    return _fr_from_int(n)


def hash_to_scalar(domain: bytes, *parts: bytes) -> Fr:
    """SHA-512 of the domain and length-prefixed parts, reduced mod r (bias < 2^-256)."""
    h = hashlib.sha512()
    for item in (domain, *parts):
        h.update(len(item).to_bytes(4, "big"))
        h.update(item)
    return _fr_from_int(int.from_bytes(h.digest(), "big"))


# --- blinded operations on secrets ---------------------------------------------------

_Point = TypeVar("_Point", G1, G2)


def mul_secret(point: _Point, k: Fr) -> _Point:
    """``point * k`` for a secret ``k``, as two multiplications by uniform shares."""
    mask = random_scalar()
    return point * mask + point * (k - mask)


def pow_secret(x: GT, k: Fr) -> GT:
    """``x ** k`` for a secret ``k``, as two exponentiations by uniform shares."""
    mask = random_scalar()
    return (x**mask) * (x ** (k - mask))


def pair(a: G1, b: G2) -> GT:
    return pymcl.pairing(a, b)


_GT_GENERATOR: Final = pymcl.pairing(P, Q)


def gt_generator() -> GT:
    """``e(P, Q)``, a generator of GT."""
    return _GT_GENERATOR


def random_gt() -> GT:
    """A uniform element of GT (``e(P, Q)`` to a secret, blinded, random power)."""
    return pow_secret(_GT_GENERATOR, random_scalar())


# --- G1 and G2 encodings -------------------------------------------------------------


def _fp_is_square(a: int) -> bool:
    return a == 0 or pow(a, _HALF, PRIME) == 1


def _split_flags(data: bytes, size: int, what: str) -> tuple[int, bytes]:
    if len(data) != size:
        raise InvalidLength(f"{what}: expected {size} bytes, got {len(data)}")
    flags = data[0] & 0xE0
    if not flags & _FLAG_COMPRESSED:
        raise NonCanonicalEncoding(f"{what}: only the compressed form is accepted")
    body = bytes([data[0] & 0x1F]) + data[1:]
    if flags & _FLAG_INFINITY and (flags & _FLAG_LARGEST_Y or any(body)):
        raise NonCanonicalEncoding(f"{what}: malformed point at infinity")
    return flags, body


def _coordinate(chunk: bytes, what: str) -> int:
    value = int.from_bytes(chunk, "big")
    if value >= PRIME:
        raise NonCanonicalEncoding(f"{what}: coordinate is not below the field modulus")
    return value


def encode_g1(point: G1) -> bytes:
    if point.is_zero():
        return bytes([_FLAG_COMPRESSED | _FLAG_INFINITY]) + bytes(G1_SIZE - 1)
    _, x, y = (int(v) for v in str(point).split())
    out = bytearray(x.to_bytes(G1_SIZE, "big"))
    out[0] |= _FLAG_COMPRESSED | (_FLAG_LARGEST_Y if y > _HALF else 0)
    return bytes(out)


def decode_g1(data: bytes, *, allow_identity: bool = False, what: str = "G1 point") -> G1:
    flags, body = _split_flags(data, G1_SIZE, what)
    if flags & _FLAG_INFINITY:
        if not allow_identity:
            raise IdentityElement(f"{what}: the identity is not allowed here")
        return G1()
    x = _coordinate(body, what)
    try:
        # mcl decompresses, checks the curve equation and the subgroup order. It reads
        # x = 0 as its own encoding of infinity; (0, ±2) has order 3, so refuse it here.
        if x == 0:
            raise ValueError
        point = G1.deserialize(x.to_bytes(G1_SIZE, "little"))
    except ValueError:
        if not _fp_is_square((x * x * x + 4) % PRIME):
            raise NotOnCurve(f"{what}: not on the curve") from None
        raise NotInSubgroup(f"{what}: not in the prime-order subgroup") from None
    y = int(str(point).split()[2])
    return -point if (y > _HALF) != bool(flags & _FLAG_LARGEST_Y) else point


def _fp2_is_largest(c0: int, c1: int) -> bool:
    # ZCash's sign for Fp2: compare the c1 coefficient, or c0 when c1 is zero.
    return c1 > _HALF if c1 else c0 > _HALF


def encode_g2(point: G2) -> bytes:
    if point.is_zero():
        return bytes([_FLAG_COMPRESSED | _FLAG_INFINITY]) + bytes(G2_SIZE - 1)
    _, x0, x1, y0, y1 = (int(v) for v in str(point).split())
    out = bytearray(x1.to_bytes(_FP_SIZE, "big") + x0.to_bytes(_FP_SIZE, "big"))
    out[0] |= _FLAG_COMPRESSED | (_FLAG_LARGEST_Y if _fp2_is_largest(y0, y1) else 0)
    return bytes(out)


def _fp2_is_square(a0: int, a1: int) -> bool:
    # a is a square in Fp2 exactly when its norm a0^2 + a1^2 is a square in Fp.
    return _fp_is_square((a0 * a0 + a1 * a1) % PRIME)


def decode_g2(data: bytes, *, allow_identity: bool = False, what: str = "G2 point") -> G2:
    flags, body = _split_flags(data, G2_SIZE, what)
    if flags & _FLAG_INFINITY:
        if not allow_identity:
            raise IdentityElement(f"{what}: the identity is not allowed here")
        return G2()
    x1 = _coordinate(body[:_FP_SIZE], what)
    x0 = _coordinate(body[_FP_SIZE:], what)
    try:
        if x0 == x1 == 0:  # mcl's infinity; points with x = 0 have order 3 (as in G1)
            raise ValueError
        point = G2.deserialize(x0.to_bytes(_FP_SIZE, "little") + x1.to_bytes(_FP_SIZE, "little"))
    except ValueError:
        # x^3 + 4(1+u) with x = x0 + x1 u
        x0_2, x1_2 = (x0 * x0 - x1 * x1) % PRIME, (2 * x0 * x1) % PRIME
        r0 = (x0_2 * x0 - x1_2 * x1 + 4) % PRIME
        r1 = (x0_2 * x1 + x1_2 * x0 + 4) % PRIME
        if not _fp2_is_square(r0, r1):
            raise NotOnCurve(f"{what}: not on the curve") from None
        raise NotInSubgroup(f"{what}: not in the prime-order subgroup") from None
    _, _, _, y0, y1 = (int(v) for v in str(point).split())
    return -point if _fp2_is_largest(y0, y1) != bool(flags & _FLAG_LARGEST_Y) else point


def _load_mcl() -> ctypes.CDLL:
    """The mcl library inside pymcl's extension module, set to RFC 9380 hash_to_curve."""
    library = ctypes.CDLL(pymcl._pymcl.__file__)
    needed = (
        "mclBn_setMapToMode", "mclBnG2_hashAndMapToWithDst", "mclBnG2_serialize",
        "mclBnGT_deserialize", "mclBnGT_serialize", "mclBnGT_invGeneric",
    )  # fmt: skip
    missing = [name for name in needed if not hasattr(library, name)]
    if missing:
        raise ImportError(
            f"the mcl library bundled with pymcl {pymcl.__name__} does not export "
            f"{', '.join(missing)}: Veil needs pymcl>=1.0.2,<1.1"
        )
    library.mclBnG2_hashAndMapToWithDst.argtypes = (
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
    )  # fmt: skip
    library.mclBnG2_serialize.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    library.mclBnG2_serialize.restype = ctypes.c_size_t
    library.mclBnGT_deserialize.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
    library.mclBnGT_deserialize.restype = ctypes.c_size_t
    library.mclBnGT_serialize.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    library.mclBnGT_serialize.restype = ctypes.c_size_t
    library.mclBnGT_invGeneric.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    # mcl's MCL_MAP_TO_MODE_HASH_TO_CURVE: hash_to_curve as RFC 9380 §3 finally
    # specifies it (the mode's draft-07 name predates the RFC; the algorithm and the
    # Appendix J vectors are the same). Veil uses no other mode of mcl's map.
    if library.mclBn_setMapToMode(5) != 0:
        raise ImportError("pymcl's mcl refused RFC 9380 hash_to_curve (MCL_MAP_TO_MODE 5)")
    return library


_MCL: Final = _load_mcl()
# mclBnG2 is x, y, z in Fp2, each Fp coefficient mclBn_getOpUnitSize() 64-bit words
# (6 for BLS12-381 in this build, more in a build made for larger fields).
_MCL_G2_STRUCT_SIZE: Final = 3 * 2 * 8 * _MCL.mclBn_getOpUnitSize()
_MCL_G2_SERIALIZED_SIZE: Final = G2_SIZE
_MCL_GT_STRUCT_SIZE: Final = 12 * 8 * _MCL.mclBn_getOpUnitSize()


def hash_to_g2(message: bytes, dst: bytes = H2_DST) -> G2:
    """RFC 9380 ``hash_to_curve`` with suite BLS12381G2_XMD:SHA-256_SSWU_RO_ (§8.8.2).

    mcl computes it into its own struct and hands it over in its serialization
    (which ``G2.deserialize`` reads, with its subgroup check); the Appendix J.10.1
    vectors in the tests pin the result down."""
    point = ctypes.create_string_buffer(_MCL_G2_STRUCT_SIZE)
    if _MCL.mclBnG2_hashAndMapToWithDst(point, message, len(message), dst, len(dst)) != 0:
        raise ValueError("hash_to_g2: mcl refused the input")
    out = ctypes.create_string_buffer(_MCL_G2_SERIALIZED_SIZE)
    if _MCL.mclBnG2_serialize(out, _MCL_G2_SERIALIZED_SIZE, point) != _MCL_G2_SERIALIZED_SIZE:
        raise ValueError("hash_to_g2: mcl could not serialize its result")
    return G2.deserialize(out.raw)


# --- GT ------------------------------------------------------------------------------
# mcl serializes Fp12 as the same twelve coefficients, each 48 bytes little-endian.

_Fp2 = tuple[int, int]


def _fp2_mul(a: _Fp2, b: _Fp2) -> _Fp2:
    return (a[0] * b[0] - a[1] * b[1]) % PRIME, (a[0] * b[1] + a[1] * b[0]) % PRIME


def _fp2_pow(a: _Fp2, e: int) -> _Fp2:
    result: _Fp2 = (1, 0)
    while e:
        if e & 1:
            result = _fp2_mul(result, a)
        a = _fp2_mul(a, a)
        e >>= 1
    return result


# The coefficient at flat index 6j + 2k (+1 for c1) multiplies w^(j + 2k).
_W_POWER: Final = (0, 2, 4, 1, 3, 5)


def _frobenius_constants(power: int) -> tuple[_Fp2, ...]:
    # (c w^e)^(p^n) = c^(p^n) w^e xi^(e (p^n - 1) / 6), since w^6 = v^3 = xi = 1 + u.
    base = _fp2_pow((1, 1), (PRIME**power - 1) // 6)
    return tuple(_fp2_pow(base, e) for e in _W_POWER)


_FROBENIUS: Final = {n: _frobenius_constants(n) for n in (1, 2, 4)}


def _gt_coefficients(x: GT) -> list[int]:
    raw = x.serialize()
    return [int.from_bytes(raw[i : i + _FP_SIZE], "little") for i in range(0, GT_SIZE, _FP_SIZE)]


def _frobenius(x: GT, power: int) -> GT:
    """``x ** (p ** power)`` for any Fp12 value, by the coefficient map."""
    c = _gt_coefficients(x)
    out = bytearray()
    for slot, gamma in enumerate(_FROBENIUS[power]):
        a: _Fp2 = (c[2 * slot], c[2 * slot + 1] if power % 2 == 0 else -c[2 * slot + 1])
        r0, r1 = _fp2_mul(a, gamma)
        out += r0.to_bytes(_FP_SIZE, "little") + r1.to_bytes(_FP_SIZE, "little")
    return GT.deserialize(bytes(out))


def _pow_u(x: GT) -> GT:
    """``x ** u`` by plain square-and-multiply (valid for any Fp12 value, unlike mcl's GLV pow)."""
    acc = x
    for bit in bin(_U_ABS)[3:]:
        acc = acc * acc
        if bit == "1":
            acc = acc * x
    return ~acc  # u is negative


def is_in_gt(x: GT) -> bool:
    """Whether an Fp12 value lies in the order-r subgroup GT.

    Scott, "A note on group membership tests for G1, G2 and GT" (ePrint 2021/1130),
    §6: x is in GT iff x is in the cyclotomic subgroup (x^(p^4 - p^2 + 1) = 1) and
    x^p = x^u, where u is the BLS12 parameter (p = u mod r).
    """
    if x.is_zero():
        return False
    if _frobenius(x, 4) * x != _frobenius(x, 2):
        return False
    return _frobenius(x, 1) == _pow_u(x)


def encode_gt(x: GT) -> bytes:
    raw = x.serialize()
    return b"".join(raw[i : i + _FP_SIZE][::-1] for i in range(0, GT_SIZE, _FP_SIZE))


def _fp12(coefficients: list[int]) -> GT:
    """Any Fp12 value, from its twelve coefficients in tower order."""
    return GT.deserialize(b"".join(c.to_bytes(_FP_SIZE, "little") for c in coefficients))


def _inverse(x: GT) -> GT:
    """``1 / x`` for any non-zero Fp12 value (pymcl's ``~`` is GT's: the conjugate)."""
    value = ctypes.create_string_buffer(_MCL_GT_STRUCT_SIZE)
    raw = x.serialize()
    if _MCL.mclBnGT_deserialize(value, raw, len(raw)) != len(raw):
        raise ValueError("mcl could not read an Fp12 value")
    inverse = ctypes.create_string_buffer(_MCL_GT_STRUCT_SIZE)
    _MCL.mclBnGT_invGeneric(inverse, value)
    out = ctypes.create_string_buffer(GT_SIZE)
    if _MCL.mclBnGT_serialize(out, GT_SIZE, inverse) != GT_SIZE:
        raise ValueError("mcl could not write an Fp12 value")
    return GT.deserialize(out.raw)


def compress_gt(x: GT) -> bytes:
    """288 bytes: ``c = (1 + a) / b`` for ``x = a + b w`` (the module docstring)."""
    if x.is_one():
        return bytes(GT_COMPRESSED_SIZE)
    coefficients = _gt_coefficients(x)
    a, b = coefficients[:6], coefficients[6:]
    zero = [0] * 6
    c = _gt_coefficients(_fp12([(a[0] + 1) % PRIME, *a[1:], *zero]) * _inverse(_fp12([*b, *zero])))
    return b"".join(n.to_bytes(_FP_SIZE, "big") for n in c[:6])


def decompress_gt(data: bytes, *, allow_identity: bool = False, what: str = "GT element") -> GT:
    """The element ``compress_gt`` gave, checked like ``decode_gt``'s."""
    if len(data) != GT_COMPRESSED_SIZE:
        raise InvalidLength(f"{what}: expected {GT_COMPRESSED_SIZE} bytes, got {len(data)}")
    c = [_coordinate(data[i : i + _FP_SIZE], what) for i in range(0, len(data), _FP_SIZE)]
    if not any(c):
        if not allow_identity:
            raise IdentityElement(f"{what}: the identity is not allowed here")
        return _fp12([1] + [0] * 11)
    zero = [0] * 5
    x = _fp12([*c, 1, *zero]) * _inverse(_fp12([*c, PRIME - 1, *zero]))
    if not is_in_gt(x):
        raise NotInSubgroup(f"{what}: not in the order-r subgroup GT")
    return x


def decode_gt(data: bytes, *, allow_identity: bool = False, what: str = "GT element") -> GT:
    if len(data) != GT_SIZE:
        raise InvalidLength(f"{what}: expected {GT_SIZE} bytes, got {len(data)}")
    raw = bytearray()
    for i in range(0, GT_SIZE, _FP_SIZE):
        raw += _coordinate(data[i : i + _FP_SIZE], what).to_bytes(_FP_SIZE, "little")
    x = GT.deserialize(bytes(raw))
    if x.is_one():
        if not allow_identity:
            raise IdentityElement(f"{what}: the identity is not allowed here")
        return x
    if not is_in_gt(x):
        raise NotInSubgroup(f"{what}: not in the order-r subgroup GT")
    return x
