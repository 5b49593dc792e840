"""The pairing adapter: encodings against py_ecc, strict decoding, RFC 9380 H2, GT checks."""

import hashlib
import json
import secrets
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from py_ecc.bls.g2_primitives import G1_to_pubkey, G2_to_signature
from py_ecc.optimized_bls12_381 import FQ12, multiply
from py_ecc.optimized_bls12_381 import G1 as ECC_G1
from py_ecc.optimized_bls12_381 import G2 as ECC_G2

from veil.crypto import pairing as pg
from veil.crypto.errors import (
    IdentityElement,
    InvalidLength,
    NonCanonicalEncoding,
    NotInSubgroup,
    NotOnCurve,
)

SHARED_VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
scalars = st.integers(min_value=1, max_value=pg.R - 1)


def fr(n: int) -> pg.Fr:
    return pg.decode_scalar(n.to_bytes(32, "big"))


# --- encodings, cross-checked against py_ecc (an independent implementation) -----------


@given(scalars)
def test_g1_encoding_matches_py_ecc(k: int) -> None:
    assert pg.encode_g1(pg.P * fr(k)) == G1_to_pubkey(multiply(ECC_G1, k))


@given(scalars)
def test_g2_encoding_matches_py_ecc(k: int) -> None:
    assert pg.encode_g2(pg.Q * fr(k)) == G2_to_signature(multiply(ECC_G2, k))


@given(scalars)
def test_g1_g2_decode_round_trips_both_signs_of_y(k: int) -> None:
    for point in (pg.P * fr(k), -(pg.P * fr(k))):
        assert pg.decode_g1(pg.encode_g1(point)) == point
    for point in (pg.Q * fr(k), -(pg.Q * fr(k))):
        assert pg.decode_g2(pg.encode_g2(point)) == point


def _as_py_ecc_fq12(x: pg.GT) -> FQ12:
    """Map the documented tower layout into py_ecc's FQ12 = Fp[w]/(w^12 - 2w^6 + 2),
    where u = w^6 - 1 and v = w^2."""
    raw = pg.encode_gt(x)
    c = [int.from_bytes(raw[i : i + 48], "big") for i in range(0, 576, 48)]
    coeffs = [0] * 12
    for slot, power in enumerate((0, 2, 4, 1, 3, 5)):
        a, b = c[2 * slot], c[2 * slot + 1]
        coeffs[power] += a - b
        coeffs[power + 6] += b
    return FQ12([v % pg.PRIME for v in coeffs])


def test_gt_encoding_follows_the_documented_tower_order() -> None:
    # If the coefficient order or the tower were not as documented, the map into
    # py_ecc's field would not respect multiplication, nor land in the order-r group.
    a, b = pg.random_gt(), pg.random_gt()
    assert _as_py_ecc_fq12(a * b) == _as_py_ecc_fq12(a) * _as_py_ecc_fq12(b)
    assert _as_py_ecc_fq12(a) ** pg.R == FQ12.one()


def test_gt_round_trip() -> None:
    x = pg.random_gt()
    assert pg.decode_gt(pg.encode_gt(x)) == x
    assert len(pg.encode_gt(x)) == pg.GT_SIZE


def test_identity_encodings() -> None:
    assert pg.encode_g1(pg.G1()) == bytes([0xC0]) + bytes(47)
    assert pg.decode_g1(pg.encode_g1(pg.G1()), allow_identity=True).is_zero()
    assert pg.decode_g2(pg.encode_g2(pg.G2()), allow_identity=True).is_zero()
    assert pg.decode_gt(pg.encode_gt(pg.GT()), allow_identity=True).is_one()


# --- strict decoding --------------------------------------------------------------------


def _non_subgroup_g1_x() -> int:
    while True:
        x = secrets.randbelow(pg.PRIME)
        if pow((x**3 + 4) % pg.PRIME, (pg.PRIME - 1) // 2, pg.PRIME) == 1:
            return x  # on the curve; a random curve point is outside G1 with prob ~1


def _off_curve_g1_x() -> int:
    while True:
        x = secrets.randbelow(pg.PRIME)
        if pow((x**3 + 4) % pg.PRIME, (pg.PRIME - 1) // 2, pg.PRIME) == pg.PRIME - 1:
            return x


def _compressed_g1(x: int) -> bytes:
    raw = bytearray(x.to_bytes(48, "big"))
    raw[0] |= 0x80
    return bytes(raw)


@pytest.mark.parametrize("size", [0, 47, 49, 96])
def test_g1_wrong_length(size: int) -> None:
    with pytest.raises(InvalidLength):
        pg.decode_g1(bytes(size))


@pytest.mark.parametrize("size", [0, 48, 95, 97])
def test_g2_wrong_length(size: int) -> None:
    with pytest.raises(InvalidLength):
        pg.decode_g2(bytes(size))


def test_g1_uncompressed_flag_rejected() -> None:
    encoded = bytearray(pg.encode_g1(pg.P))
    encoded[0] &= 0x7F
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_g1(bytes(encoded))


def test_g1_coordinate_not_below_p_rejected() -> None:
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_g1(_compressed_g1(pg.PRIME + 1))


def test_g1_malformed_infinity_rejected() -> None:
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_g1(bytes([0xC0]) + bytes(46) + b"\x01")
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_g1(bytes([0xE0]) + bytes(47))


def test_g1_not_on_curve() -> None:
    with pytest.raises(NotOnCurve):
        pg.decode_g1(_compressed_g1(_off_curve_g1_x()))


def test_g1_not_in_subgroup() -> None:
    with pytest.raises(NotInSubgroup):
        pg.decode_g1(_compressed_g1(_non_subgroup_g1_x()))


def test_x_zero_is_not_taken_for_the_identity() -> None:
    # mcl reads x = 0 as its own infinity; (0, ±2) is a curve point of order 3.
    with pytest.raises(NotInSubgroup):
        pg.decode_g1(_compressed_g1(0))
    with pytest.raises(NotInSubgroup):
        pg.decode_g1(bytes([0xA0]) + bytes(47))
    with pytest.raises(NotOnCurve):
        pg.decode_g2(_g2_with_x(0, 0))


def test_g1_identity_rejected_by_default() -> None:
    with pytest.raises(IdentityElement):
        pg.decode_g1(pg.encode_g1(pg.G1()))


def test_g2_identity_rejected_by_default() -> None:
    with pytest.raises(IdentityElement):
        pg.decode_g2(pg.encode_g2(pg.G2()))


def _g2_with_x(x0: int, x1: int) -> bytes:
    raw = bytearray(x1.to_bytes(48, "big") + x0.to_bytes(48, "big"))
    raw[0] |= 0x80
    return bytes(raw)


def _g2_rhs_is_square(x0: int, x1: int) -> bool:
    p = pg.PRIME
    x0_2, x1_2 = (x0 * x0 - x1 * x1) % p, (2 * x0 * x1) % p
    r0, r1 = (x0_2 * x0 - x1_2 * x1 + 4) % p, (x0_2 * x1 + x1_2 * x0 + 4) % p
    return pow((r0 * r0 + r1 * r1) % p, (p - 1) // 2, p) == 1


def test_g2_not_on_curve_and_not_in_subgroup() -> None:
    seen: set[type] = set()
    while seen != {NotOnCurve, NotInSubgroup}:
        x0, x1 = secrets.randbelow(pg.PRIME), secrets.randbelow(pg.PRIME)
        expected = NotInSubgroup if _g2_rhs_is_square(x0, x1) else NotOnCurve
        with pytest.raises(expected):
            pg.decode_g2(_g2_with_x(x0, x1))
        seen.add(expected)


def test_g2_coordinate_not_below_p_rejected() -> None:
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_g2(_g2_with_x(0, pg.PRIME))


def _random_fp12() -> pg.GT:
    raw = b"".join(secrets.randbelow(pg.PRIME).to_bytes(48, "big") for _ in range(12))
    return pg.GT.deserialize(b"".join(raw[i : i + 48][::-1] for i in range(0, 576, 48)))


def _power(x: pg.GT, n: int) -> pg.GT:
    """Plain square-and-multiply, independent of the module's shortcuts."""
    acc, base = pg.GT(), x
    while n:
        if n & 1:
            acc = acc * base
        base, n = base * base, n >> 1
    return acc


def test_frobenius_is_the_p_power_map() -> None:
    x = _random_fp12()
    assert pg._frobenius(x, 1) == _power(x, pg.PRIME)
    assert pg._frobenius(x, 2) == _power(x, pg.PRIME**2)
    assert pg._frobenius(x, 4) == pg._frobenius(pg._frobenius(x, 2), 2)


def test_gt_membership() -> None:
    assert pg.is_in_gt(pg.random_gt())
    assert pg.is_in_gt(pg.pair(pg.P * pg.random_scalar(), pg.Q))
    x = _random_fp12()
    assert not pg.is_in_gt(x)
    # The cyclotomic subgroup is the trap a weaker check falls into: x^((p^6-1)(p^2+1))
    # is cyclotomic but, for a random x, not of order r.
    cyclotomic = pg._frobenius(_power(x, pg.PRIME**6) / x, 2) * (_power(x, pg.PRIME**6) / x)
    assert pg._frobenius(cyclotomic, 4) * cyclotomic == pg._frobenius(cyclotomic, 2)
    assert not _power(cyclotomic, pg.R).is_one()
    assert not pg.is_in_gt(cyclotomic)
    with pytest.raises(NotInSubgroup):
        pg.decode_gt(pg.encode_gt(cyclotomic))


def test_gt_decode_rejects_random_fp12_value() -> None:
    with pytest.raises(NotInSubgroup):
        pg.decode_gt(pg.encode_gt(_random_fp12()))


def test_gt_decode_rejects_bad_length_range_and_identity() -> None:
    with pytest.raises(InvalidLength):
        pg.decode_gt(bytes(575))
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_gt(pg.PRIME.to_bytes(48, "big") + bytes(528))
    with pytest.raises(IdentityElement):
        pg.decode_gt(pg.encode_gt(pg.GT()))


def _fp12(c: list[int]) -> pg.GT:
    return pg.GT.deserialize(b"".join(n.to_bytes(48, "little") for n in c))


def test_gt_compression_is_the_torus_map() -> None:
    for x in (pg.random_gt(), pg.gt_generator(), ~pg.random_gt()):
        compressed = pg.compress_gt(x)
        assert len(compressed) == pg.GT_COMPRESSED_SIZE == 288
        assert pg.decompress_gt(compressed) == x
        # The defining relation, checked with multiplications only: x (c - w) = c + w.
        c = [int.from_bytes(compressed[i : i + 48], "big") for i in range(0, 288, 48)]
        assert all(n < pg.PRIME for n in c)
        minus_w, plus_w = _fp12([*c, pg.PRIME - 1, *[0] * 5]), _fp12([*c, 1, *[0] * 5])
        assert x * minus_w == plus_w
    # e(P, Q), pinned for other implementations (its first coefficient, and all of it).
    generator = pg.compress_gt(pg.gt_generator())
    assert generator[:48].hex() == (
        "0046d5ce2db4e36231ba8d286c89d8cc9412951a8d110a0a98ae532261e2b6b2"
        "b67882cee1075ae380481022095c84fe"
    )
    assert hashlib.sha256(generator).hexdigest() == (
        "ada484cf0e8b76b05682dde9bd054623b620c0db089b519b27950314892d815c"
    )


def test_compressed_gt_identity_is_zeros_and_refused_unless_allowed() -> None:
    assert pg.compress_gt(_fp12([1] + [0] * 11)) == bytes(288)
    assert pg.decompress_gt(bytes(288), allow_identity=True).is_one()
    with pytest.raises(IdentityElement):
        pg.decompress_gt(bytes(288))


def test_compressed_gt_decode_refuses_what_is_not_in_gt() -> None:
    with pytest.raises(InvalidLength):
        pg.decompress_gt(bytes(287))
    with pytest.raises(NonCanonicalEncoding):
        pg.decompress_gt(pg.PRIME.to_bytes(48, "big") + bytes(240))
    # Any c gives an element of the torus; almost none is in GT.
    random_c = b"".join(secrets.randbelow(pg.PRIME).to_bytes(48, "big") for _ in range(6))
    with pytest.raises(NotInSubgroup):
        pg.decompress_gt(random_c)
    # Nor is a cyclotomic element of another order, which a weaker check would pass.
    x = _random_fp12()
    cyclotomic = pg._frobenius(_power(x, pg.PRIME**6) / x, 2) * (_power(x, pg.PRIME**6) / x)
    with pytest.raises(NotInSubgroup):
        pg.decompress_gt(pg.compress_gt(cyclotomic))


def test_scalar_decoding() -> None:
    k = pg.random_scalar()
    assert pg.decode_scalar(pg.encode_scalar(k)) == k
    with pytest.raises(NonCanonicalEncoding):
        pg.decode_scalar(pg.R.to_bytes(32, "big"))
    with pytest.raises(IdentityElement):
        pg.decode_scalar(bytes(32))
    with pytest.raises(InvalidLength):
        pg.decode_scalar(bytes(31))


# --- blinding ------------------------------------------------------------------------------


@given(scalars)
def test_blinded_operations_agree_with_plain_ones(k: int) -> None:
    s = fr(k)
    assert pg.mul_secret(pg.P, s) == pg.P * s
    assert pg.mul_secret(pg.Q, s) == pg.Q * s
    base = pg.gt_generator()
    assert pg.pow_secret(base, s) == base**s


# --- RFC 9380 hash_to_curve, suite BLS12381G2_XMD:SHA-256_SSWU_RO_ ---------------------
# Appendix J.10.1, inline so a fresh clone checks them; each P is (x.c0, x.c1), (y.c0, y.c1).
RFC9380_DST = b"QUUX-V01-CS02-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"
RFC9380_J_10_1 = [
    (
        b"",
        "0141ebfbdca40eb85b87142e130ab689c673cf60f1a3e98d69335266f30d9b8d4ac44c1038e9dcdd5393faf5c41fb78a",
        "05cb8437535e20ecffaef7752baddf98034139c38452458baeefab379ba13dff5bf5dd71b72418717047f5b0f37da03d",
        "0503921d7f6a12805e72940b963c0cf3471c7b2a524950ca195d11062ee75ec076daf2d4bc358c4b190c0c98064fdd92",
        "12424ac32561493f3fe3c260708a12b7c620e7be00099a974e259ddc7d1f6395c3c811cdd19f1e8dbf3e9ecfdcbab8d6",
    ),
    (
        b"abc",
        "02c2d18e033b960562aae3cab37a27ce00d80ccd5ba4b7fe0e7a210245129dbec7780ccc7954725f4168aff2787776e6",
        "139cddbccdc5e91b9623efd38c49f81a6f83f175e80b06fc374de9eb4b41dfe4ca3a230ed250fbe3a2acf73a41177fd8",
        "1787327b68159716a37440985269cf584bcb1e621d3a7202be6ea05c4cfe244aeb197642555a0645fb87bf7466b2ba48",
        "00aa65dae3c8d732d10ecd2c50f8a1baf3001578f71c694e03866e9f3d49ac1e1ce70dd94a733534f106d4cec0eddd16",
    ),
    (
        b"abcdef0123456789",
        "121982811d2491fde9ba7ed31ef9ca474f0e1501297f68c298e9f4c0028add35aea8bb83d53c08cfc007c1e005723cd0",
        "190d119345b94fbd15497bcba94ecf7db2cbfd1e1fe7da034d26cbba169fb3968288b3fafb265f9ebd380512a71c3f2c",
        "05571a0f8d3c08d094576981f4a3b8eda0a8e771fcdcc8ecceaf1356a6acf17574518acb506e435b639353c2e14827c8",
        "0bb5e7572275c567462d91807de765611490205a941a5a6af3b1691bfe596c31225d3aabdf15faff860cb4ef17c7c3be",
    ),
    (
        b"q128_" + b"q" * 128,
        "19a84dd7248a1066f737cc34502ee5555bd3c19f2ecdb3c7d9e24dc65d4e25e50d83f0f77105e955d78f4762d33c17da",
        "0934aba516a52d8ae479939a91998299c76d39cc0c035cd18813bec433f587e2d7a4fef038260eef0cef4d02aae3eb91",
        "14f81cd421617428bc3b9fe25afbb751d934a00493524bc4e065635b0555084dd54679df1536101b2c979c0152d09192",
        "09bcccfa036b4847c9950780733633f13619994394c23ff0b32fa6b795844f4a0673e20282d07bc69641cee04f5e5662",
    ),
    (
        b"a512_" + b"a" * 512,
        "01a6ba2f9a11fa5598b2d8ace0fbe0a0eacb65deceb476fbbcb64fd24557c2f4b18ecfc5663e54ae16a84f5ab7f62534",
        "11fca2ff525572795a801eed17eb12785887c7b63fb77a42be46ce4a34131d71f7a73e95fee3f812aea3de78b4d01569",
        "0b6798718c8aed24bc19cb27f866f1c9effcdbf92397ad6448b5c9db90d2b9da6cbabf48adc1adf59a1a28344e79d57e",
        "03a47f8e6d1763ba0cad63d6114c0accbef65707825a511b251a660a9b3994249ae4e63fac38b23da0c398689ee2ab52",
    ),
]


def _affine(point: pg.G2) -> tuple[int, ...]:
    return tuple(int(v) for v in str(point).split()[1:])


@pytest.mark.parametrize(("msg", "x0", "x1", "y0", "y1"), RFC9380_J_10_1)
def test_rfc9380_hash_to_g2_vectors(msg: bytes, x0: str, x1: str, y0: str, y1: str) -> None:
    point = pg.hash_to_g2(msg, RFC9380_DST)
    assert _affine(point) == tuple(int(v, 16) for v in (x0, x1, y0, y1))


def test_rfc9380_vectors_file_agrees_with_inline_copy() -> None:
    path = SHARED_VECTORS / "rfc9380" / "BLS12381G2_XMD_SHA-256_SSWU_RO_.json"
    if not path.exists():
        pytest.skip(f"{path} not present (shared/ is beside the repository in CI)")
    data = json.loads(path.read_text())
    assert data["dst"].encode() == RFC9380_DST
    from_file = [
        (v["msg"].encode(), *v["P"]["x"].split(","), *v["P"]["y"].split(","))
        for v in data["vectors"]
    ]
    inline = [(m, *(f"0x{h}" for h in rest)) for m, *rest in RFC9380_J_10_1]
    assert from_file == inline


def test_h2_uses_veils_own_domain_tag() -> None:
    assert pg.hash_to_g2(b"abc") != pg.hash_to_g2(b"abc", RFC9380_DST)
    assert pg.H2_DST.startswith(b"VEIL-V01-")


def test_a_pymcl_without_the_hash_to_curve_symbols_is_refused_at_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class WithoutHashToCurve:
        def __init__(self, path: str) -> None:
            self.mclBn_setMapToMode = lambda mode: 0

    monkeypatch.setattr(pg.ctypes, "CDLL", WithoutHashToCurve)
    with pytest.raises(ImportError, match="mclBnG2_hashAndMapToWithDst, mclBnG2_serialize"):
        pg._load_mcl()
