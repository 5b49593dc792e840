"""Transform cryptography: round trips at every level, wrong keys, augmentation, tampering."""

import itertools
from collections.abc import Callable, Iterator
from types import FrameType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil.crypto import pairing as pg
from veil.crypto.errors import (
    DecodeError,
    DecryptionError,
    IdentityElement,
    InvalidLength,
    InvalidSignature,
    NonCanonicalEncoding,
    NotInSubgroup,
    NotOnCurve,
    UnsupportedVersion,
)
from veil.crypto.keys import AugmentationSecret, Plaintext, PrivateKey, PublicKey
from veil.crypto.pre import (
    MAX_LEVEL,
    EncryptedValue,
    PreparedTransform,
    TransformKey,
    VerifiedEncryptedValue,
    VerifiedTransformKey,
    _sign_value,
    decrypt,
    descends_from,
    encrypt,
    generate_transform_key,
    prepare_transforms,
    transform,
    transform_chain,
)
from veil.crypto.signing import SigningKey

scalar_bytes = st.integers(min_value=1, max_value=pg.R - 1).map(lambda n: n.to_bytes(32, "big"))
private_keys = scalar_bytes.map(PrivateKey.from_secret_bytes)
plaintexts = scalar_bytes.map(lambda b: Plaintext(pg.gt_generator() ** pg.decode_scalar(b)))

SIGNER = SigningKey.generate()
TRANSFORMER = SigningKey.generate()


def chain(keys: list[PrivateKey], plaintext: Plaintext) -> list[VerifiedEncryptedValue]:
    """Encrypt to keys[0], then transform hop by hop: one ciphertext per level."""
    values = [encrypt(plaintext, keys[0].public_key, SIGNER)]
    for holder, nxt in itertools.pairwise(keys):
        tk = generate_transform_key(holder, nxt.public_key, SIGNER)
        values.append(transform(values[-1], tk, TRANSFORMER))
    return values


# --- round trips ----------------------------------------------------------------------


@given(st.lists(private_keys, min_size=4, max_size=4), plaintexts)
def test_round_trip_levels_0_to_3(keys: list[PrivateKey], plaintext: Plaintext) -> None:
    for level, value in enumerate(chain(keys, plaintext)):
        assert value.level == level
        assert decrypt(value, keys[level]) == plaintext
        decoded = EncryptedValue.from_bytes(bytes(value)).verify(signer=value.signer)
        assert decrypt(decoded, keys[level]) == plaintext


@given(
    st.lists(private_keys, min_size=5, max_size=5, unique_by=PrivateKey.to_secret_bytes), plaintexts
)
def test_any_wrong_key_fails_at_every_level(keys: list[PrivateKey], plaintext: Plaintext) -> None:
    for level, value in enumerate(chain(keys[:4], plaintext)):
        for i, wrong in enumerate(keys):
            if i == level:
                continue
            with pytest.raises(DecryptionError):
                decrypt(value, wrong)


def test_transform_key_for_another_holder_does_not_work() -> None:
    a, b, c = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    m = Plaintext.generate()
    value = encrypt(m, a.public_key, SIGNER)
    wrong = generate_transform_key(b, c.public_key, SIGNER)  # from B, but the value is A's
    with pytest.raises(DecryptionError):
        decrypt(transform(value, wrong, TRANSFORMER), c)


def test_plaintext_keys_are_deterministic_and_purpose_bound() -> None:
    m = Plaintext.generate()
    same = Plaintext.from_secret_bytes(m.to_secret_bytes())
    assert m.derive_key("document") == same.derive_key("document")
    assert m.derive_key("document") != m.derive_key("chat")
    assert m.derive_key("document", context=b"a") != m.derive_key("document", context=b"b")
    assert len(m.derive_key("document", length=16)) == 16
    with pytest.raises(ValueError, match="purpose"):
        m.derive_key("")


def test_max_level_is_enforced() -> None:
    keys = [PrivateKey.generate() for _ in range(MAX_LEVEL + 2)]
    values = chain(keys[: MAX_LEVEL + 1], Plaintext.generate())
    assert decrypt(values[-1], keys[MAX_LEVEL]) == decrypt(values[0], keys[0])
    tk = generate_transform_key(keys[MAX_LEVEL], keys[-1].public_key, SIGNER)
    with pytest.raises(ValueError, match="maximum"):
        transform(values[-1], tk, TRANSFORMER)


# --- augmentation (DESIGN §2) ------------------------------------------------------------


def test_augmented_user_key_needs_the_augmented_transform_key() -> None:
    user, device = PrivateKey.generate(), PrivateKey.generate()
    secret = AugmentationSecret.generate()
    master = user.public_key.augment(secret)
    m = Plaintext.generate()
    value = encrypt(m, master, SIGNER)
    client_made = generate_transform_key(user, device.public_key, SIGNER)
    with pytest.raises(DecryptionError):
        decrypt(transform(value, client_made, TRANSFORMER), device)
    with pytest.raises(DecryptionError):
        decrypt(value, user)  # the client's part alone does not decrypt
    finished = client_made.augment(secret)
    assert decrypt(transform(value, finished, TRANSFORMER), device) == m
    # The signature leaves hashedK out, so the augmented key still verifies off the wire.
    rewired = TransformKey.from_bytes(bytes(finished)).verify(signer=SIGNER.verifying_key)
    assert decrypt(transform(value, rewired, TRANSFORMER), device) == m


def test_group_to_augmented_user_to_device() -> None:
    group, user, device = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    secret = AugmentationSecret.generate()
    master = user.public_key.augment(secret)
    m = Plaintext.generate()
    value = encrypt(m, group.public_key, SIGNER)
    to_user = generate_transform_key(group, master, SIGNER)
    to_device = generate_transform_key(user, device.public_key, SIGNER).augment(secret)
    at_device = transform(transform(value, to_user, TRANSFORMER), to_device, TRANSFORMER)
    assert decrypt(at_device, device) == m


# --- chains and prepared transforms (issue 19) -------------------------------------------


def _group_user_device() -> tuple[list[PrivateKey], list[VerifiedTransformKey]]:
    group, user, device = (PrivateKey.generate() for _ in range(3))
    secret = AugmentationSecret.generate()
    to_user = generate_transform_key(group, user.public_key.augment(secret), SIGNER)
    to_device = generate_transform_key(user, device.public_key, SIGNER).augment(secret)
    return [group, user, device], [to_user, to_device]


def test_a_chain_is_signed_once_by_its_transformer_and_decrypts_with_its_origin() -> None:
    (group, _, device), keys = _group_user_device()
    m = Plaintext.generate()
    value = encrypt(m, group.public_key, SIGNER)
    at_device = transform_chain(value, keys, TRANSFORMER)
    assert at_device.level == 2
    assert at_device.signer == TRANSFORMER.verifying_key
    EncryptedValue.from_bytes(bytes(at_device)).verify(signer=TRANSFORMER.verifying_key)
    assert decrypt(at_device, device, origin=value) == m


def test_a_chain_from_a_transformed_value_moves_it_on() -> None:
    keys = [PrivateKey.generate() for _ in range(4)]
    m = Plaintext.generate()
    level1 = chain(keys[:2], m)[-1]
    tks = [generate_transform_key(a, b.public_key, SIGNER) for a, b in itertools.pairwise(keys[1:])]
    assert decrypt(transform_chain(level1, tks, TRANSFORMER), keys[3]) == m


def finished(prepared: PreparedTransform, value: VerifiedEncryptedValue) -> VerifiedEncryptedValue:
    raw = prepared.finish(value, TRANSFORMER)
    return EncryptedValue.from_bytes(raw).verify(signer=TRANSFORMER.verifying_key)


def test_prepared_transforms_finish_into_what_a_transform_on_the_spot_gives() -> None:
    (group, user, device), keys = _group_user_device()
    values = [encrypt(Plaintext.generate(), group.public_key, SIGNER) for _ in range(3)]
    prepared = prepare_transforms(keys, 3)
    prepared[2] = PreparedTransform.from_bytes(bytes(prepared[2]))  # as between processes
    for value, ready in zip(values, prepared, strict=True):
        done = finished(ready, value)
        assert done.level == 2 and descends_from(done, value)
        assert decrypt(done, device, origin=value) == decrypt(value, group)
        with pytest.raises(DecryptionError):
            decrypt(done, user)
    to_user = generate_transform_key(group, user.public_key, SIGNER)
    one_hop = finished(prepare_transforms([to_user], 1)[0], values[0])
    assert one_hop.level == 1 and decrypt(one_hop, user) == decrypt(values[0], group)


def test_each_prepared_transform_has_its_own_randomness() -> None:
    _, keys = _group_user_device()
    value = encrypt(Plaintext.generate(), PrivateKey.generate().public_key, SIGNER)
    a, b = (finished(p, value) for p in prepare_transforms(keys, 2))
    for x, y in zip(a.blocks, b.blocks, strict=True):
        assert (x.ephemeral_key, x.encrypted_k) == (y.ephemeral_key, y.encrypted_k)  # the keys'
        assert x.random_key != y.random_key and x.encrypted_r != y.encrypted_r  # fresh
    assert a.body != b.body


def test_a_prepared_transform_serves_one_level_0_ciphertext_once() -> None:
    (group, _, _), keys = _group_user_device()
    value = encrypt(Plaintext.generate(), group.public_key, SIGNER)
    ready, other = prepare_transforms(keys, 2)
    level1 = transform(value, keys[0], TRANSFORMER)
    with pytest.raises(ValueError, match="level-0"):
        other.finish(level1, TRANSFORMER)
    ready.finish(value, TRANSFORMER)
    with pytest.raises(ValueError, match="one ciphertext only"):
        ready.finish(value, TRANSFORMER)
    assert "spent=True" in repr(ready)
    with pytest.raises(TypeError, match="verify"):
        other.finish(EncryptedValue.from_bytes(bytes(value)), TRANSFORMER)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        PreparedTransform.from_bytes(bytes(other)[:-1])
    unchecked = TransformKey.from_bytes(bytes(keys[0]))
    with pytest.raises(TypeError, match="verify"):
        prepare_transforms([unchecked], 1)  # type: ignore[list-item]


# --- verify, then use ----------------------------------------------------------------------


def test_transform_and_decrypt_take_only_verified_values() -> None:
    a, b = PrivateKey.generate(), PrivateKey.generate()
    value = encrypt(Plaintext.generate(), a.public_key, SIGNER)
    tk = generate_transform_key(a, b.public_key, SIGNER)
    raw_value = EncryptedValue.from_bytes(bytes(value))
    raw_key = TransformKey.from_bytes(bytes(tk))
    with pytest.raises(TypeError, match="verify"):
        decrypt(raw_value, a)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="verify"):
        transform(raw_value, tk, TRANSFORMER)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="verify"):
        transform(value, raw_key, TRANSFORMER)  # type: ignore[arg-type]


def test_verify_can_require_a_signer() -> None:
    a = PrivateKey.generate()
    value = EncryptedValue.from_bytes(bytes(encrypt(Plaintext.generate(), a.public_key, SIGNER)))
    value.verify(signer=SIGNER.verifying_key)
    with pytest.raises(InvalidSignature):
        value.verify(signer=TRANSFORMER.verifying_key)


def test_transformed_value_is_signed_by_the_transformer() -> None:
    a, b = PrivateKey.generate(), PrivateKey.generate()
    value = encrypt(Plaintext.generate(), a.public_key, SIGNER)
    moved = transform(value, generate_transform_key(a, b.public_key, SIGNER), TRANSFORMER)
    EncryptedValue.from_bytes(bytes(moved)).verify(signer=TRANSFORMER.verifying_key)


def test_origin_binds_a_transformed_value_to_its_author() -> None:
    # A transformer (the key service) holds the transform keys: it could encrypt a
    # plaintext of its own, transform it, and sign the result. origin= catches that.
    a, b = PrivateKey.generate(), PrivateKey.generate()
    m = Plaintext.generate()
    posted = encrypt(m, a.public_key, SIGNER)
    tk = generate_transform_key(a, b.public_key, SIGNER)
    assert decrypt(transform(posted, tk, TRANSFORMER), b, origin=posted) == m
    planted = transform(encrypt(Plaintext.generate(), a.public_key, TRANSFORMER), tk, TRANSFORMER)
    decrypt(planted, b)  # without origin the planted value decrypts: the danger
    with pytest.raises(DecryptionError):
        decrypt(planted, b, origin=posted)
    with pytest.raises(TypeError):
        decrypt(planted, b, origin=transform(posted, tk, TRANSFORMER))  # origin is level 0


def test_descends_from_follows_a_value_through_every_hop_and_no_other() -> None:
    a, b, c = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    posted = encrypt(Plaintext.generate(), a.public_key, SIGNER)
    once = transform(posted, generate_transform_key(a, b.public_key, SIGNER), TRANSFORMER)
    twice = transform(once, generate_transform_key(b, c.public_key, SIGNER), TRANSFORMER)
    for value in (posted, once, twice, EncryptedValue.from_bytes(bytes(twice))):
        assert descends_from(value, posted)
    other = encrypt(Plaintext.generate(), a.public_key, SIGNER)
    assert not descends_from(once, other)
    assert not descends_from(other, posted)
    with pytest.raises(TypeError):
        descends_from(twice, once)  # an origin is level 0
    with pytest.raises(TypeError):
        descends_from(once, EncryptedValue.from_bytes(bytes(posted)))  # and verified


def test_verified_types_cannot_be_made_without_checking() -> None:
    import dataclasses

    a, b = PrivateKey.generate(), PrivateKey.generate()
    value = encrypt(Plaintext.generate(), a.public_key, SIGNER)
    key = generate_transform_key(a, b.public_key, SIGNER)
    with pytest.raises(TypeError, match="verify"):
        dataclasses.replace(value, signer=TRANSFORMER.verifying_key)
    with pytest.raises(TypeError, match="verify"):
        dataclasses.replace(key, to_public_key=a.public_key)
    with pytest.raises(TypeError, match="verify"):
        VerifiedEncryptedValue(*(getattr(value, f.name) for f in dataclasses.fields(value)))


# --- wire formats ---------------------------------------------------------------------------


def test_public_key_wire_format() -> None:
    pk = PrivateKey.generate().public_key
    raw = bytes(pk)
    assert len(raw) == PublicKey.SIZE == 50
    assert raw[:2] == b"\x01\x01"
    assert PublicKey.from_bytes(raw) == pk
    with pytest.raises(InvalidLength):
        PublicKey.from_bytes(raw + b"\x00")
    with pytest.raises(InvalidLength):
        PublicKey.from_bytes(raw[:-1])


def test_the_identity_is_not_a_public_key_even_in_process() -> None:
    """Encrypting to the identity would leave the body equal to the plaintext (every
    pairing with it is 1): the wire decoder refused it, and so must the constructor."""
    with pytest.raises(IdentityElement, match="the identity is not a public key"):
        PublicKey(pg.G1())
    # An augmentation that cancels the key (s = -a) lands on the identity too.
    key = PrivateKey.generate()
    cancelling = AugmentationSecret.from_secret_bytes(
        pg.encode_scalar(-pg.decode_scalar(key.to_secret_bytes()))
    )
    with pytest.raises(IdentityElement, match="the identity is not a public key"):
        key.public_key.augment(cancelling)
    with pytest.raises(TypeError, match="a public key is a G1 point"):
        PublicKey(pg.Q)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("index", "expected"),
    [(0, UnsupportedVersion), (1, UnsupportedVersion), (2, DecodeError), (49, DecodeError)],
    ids=["version", "kind", "point-flags", "point-x"],
)
def test_public_key_field_tampering(index: int, expected: type[Exception]) -> None:
    raw = bytearray(bytes(PrivateKey.generate().public_key))
    raw[index] ^= 0x40 if index == 2 else 0x01
    with pytest.raises(expected):
        PublicKey.from_bytes(bytes(raw))


def test_ciphertext_sizes() -> None:
    keys = [PrivateKey.generate() for _ in range(3)]
    sizes = [len(bytes(v)) for v in chain(keys, Plaintext.generate())]
    assert sizes == [467, 467 + 672, 467 + 2 * 672]  # GT elements compressed to 288 bytes


def test_a_ciphertext_or_transform_key_of_the_uncompressed_version_1_is_refused() -> None:
    value = bytes(encrypt(Plaintext.generate(), PrivateKey.generate().public_key, SIGNER))
    key = bytes(
        generate_transform_key(PrivateKey.generate(), PrivateKey.generate().public_key, SIGNER)
    )
    assert value[:2] == b"\x02\x02" and key[:2] == b"\x02\x03"
    with pytest.raises(UnsupportedVersion, match="unsupported version 1"):
        EncryptedValue.from_bytes(b"\x01" + value[1:])
    with pytest.raises(UnsupportedVersion, match="unsupported version 1"):
        TransformKey.from_bytes(b"\x01" + key[1:])


def test_level_byte_above_maximum_is_rejected() -> None:
    raw = bytearray(bytes(encrypt(Plaintext.generate(), PrivateKey.generate().public_key, SIGNER)))
    raw[2] = MAX_LEVEL + 1
    with pytest.raises(UnsupportedVersion):
        EncryptedValue.from_bytes(bytes(raw))


# --- tampering, one test per field ----------------------------------------------------------
# Layouts (offsets in bytes) from the module docstring.
G1, GT, AUTH, VK, SIG = 48, 288, 32, 32, 64
CT_FIELDS = {
    "version": (0, 1),
    "kind": (1, 1),
    "level": (2, 1),
    "E": (3, G1),
    "C": (3 + G1, GT),
    "auth": (3 + G1 + GT, AUTH),
}
BLOCK_FIELDS = {"T": (0, G1), "encK": (G1, GT), "S": (G1 + GT, G1), "encR": (2 * G1 + GT, GT)}
BLOCK_START, BLOCK_SIZE = 3 + G1 + GT + AUTH, 2 * G1 + 2 * GT
for index in (0, 1):
    for name, (offset, size) in BLOCK_FIELDS.items():
        CT_FIELDS[f"block{index}.{name}"] = (BLOCK_START + index * BLOCK_SIZE + offset, size)
CT_TAIL = BLOCK_START + 2 * BLOCK_SIZE
CT_FIELDS["signer"] = (CT_TAIL, VK)
CT_FIELDS["signature"] = (CT_TAIL + VK, SIG)

TK_FIELDS = {
    "version": (0, 1),
    "kind": (1, 1),
    "T": (2, G1),
    "pk_B": (2 + G1, G1),
    "encK": (2 + 2 * G1, GT),
    "hashedK": (2 + 2 * G1 + GT, 96),
    "signer": (2 + 2 * G1 + GT + 96, VK),
    "signature": (2 + 2 * G1 + GT + 96 + VK, SIG),
}


def _valid_replacement(name: str) -> bytes:
    """Another valid encoding for the field, so only the signature can catch it."""
    short = name.split(".")[-1]
    if short in {"E", "T", "S", "pk_B"}:
        return pg.encode_g1(pg.P * pg.random_scalar())
    if short in {"C", "encK", "encR"}:
        return pg.compress_gt(pg.random_gt())
    if short == "hashedK":
        return pg.encode_g2(pg.Q * pg.random_scalar())
    if short == "auth":
        return bytes(AUTH)
    if short == "signer":
        return bytes(SigningKey.generate().verifying_key)
    if short == "signature":
        return bytes(SIG)
    raise AssertionError(name)


@pytest.fixture(scope="module")
def level2() -> tuple[bytes, PrivateKey]:
    keys = [PrivateKey.generate() for _ in range(3)]
    return bytes(chain(keys, Plaintext.generate())[2]), keys[2]


def _splice(raw: bytes, offset: int, size: int, new: bytes) -> bytes:
    assert len(new) == size
    return raw[:offset] + new + raw[offset + size :]


def _open(raw: bytes, key: PrivateKey) -> Plaintext:
    return decrypt(EncryptedValue.from_bytes(raw).verify(), key)


EXPECTED_ON_GARBAGE: dict[str, type[Exception]] = {
    "version": UnsupportedVersion,
    "kind": UnsupportedVersion,
    "level": InvalidLength,  # level 3 announced, only two blocks present
    "auth": InvalidSignature,
    "signer": InvalidSignature,
    "signature": InvalidSignature,
}


@pytest.mark.parametrize("field", list(CT_FIELDS))
def test_ciphertext_field_tampering(field: str, level2: tuple[bytes, PrivateKey]) -> None:
    raw, key = level2
    offset, size = CT_FIELDS[field]
    assert _open(raw, key)  # the untouched value decrypts
    if size == 1:
        tampered = _splice(raw, offset, 1, bytes([raw[offset] + 1]))
        with pytest.raises(EXPECTED_ON_GARBAGE[field]):
            _open(tampered, key)
        return
    # A well-formed but different value: the signature must catch it.
    with pytest.raises(InvalidSignature):
        _open(_splice(raw, offset, size, _valid_replacement(field)), key)
    # One flipped bit: strict decoding (or the signature) must catch it.
    flipped = bytearray(raw)
    flipped[offset + size - 1] ^= 0x01
    expected = EXPECTED_ON_GARBAGE.get(field, DecodeError)
    with pytest.raises(expected):
        _open(bytes(flipped), key)


@pytest.mark.parametrize("field", list(TK_FIELDS))
def test_transform_key_field_tampering(field: str) -> None:
    a, b = PrivateKey.generate(), PrivateKey.generate()
    m = Plaintext.generate()
    value = encrypt(m, a.public_key, SIGNER)
    raw = bytes(generate_transform_key(a, b.public_key, SIGNER))
    offset, size = TK_FIELDS[field]

    def use(data: bytes) -> Plaintext:
        return decrypt(transform(value, TransformKey.from_bytes(data).verify(), TRANSFORMER), b)

    assert use(raw) == m
    if size == 1:
        with pytest.raises(UnsupportedVersion):
            use(_splice(raw, offset, 1, bytes([raw[offset] + 1])))
        return
    replaced = _splice(raw, offset, size, _valid_replacement(field))
    # hashedK is not signed (the key service augments it): a forged one verifies but
    # can only make the transform produce garbage, which decryption rejects.
    with pytest.raises(DecryptionError if field == "hashedK" else InvalidSignature):
        use(replaced)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda raw: raw[:-1], InvalidLength),
        (lambda raw: raw + b"\x00", InvalidLength),
        (lambda raw: raw[:3], InvalidLength),
        (lambda raw: b"", InvalidLength),
    ],
    ids=["truncated", "trailing-byte", "header-only", "empty"],
)
def test_ciphertext_length_defects(
    mutate: Callable[[bytes], bytes], expected: type[Exception], level2: tuple[bytes, PrivateKey]
) -> None:
    with pytest.raises(expected):
        EncryptedValue.from_bytes(mutate(level2[0]))


def test_ciphertext_with_identity_or_off_curve_point() -> None:
    raw = bytes(encrypt(Plaintext.generate(), PrivateKey.generate().public_key, SIGNER))
    offset, size = CT_FIELDS["E"]
    with pytest.raises(IdentityElement):
        EncryptedValue.from_bytes(_splice(raw, offset, size, pg.encode_g1(pg.G1())))
    bad_x = bytearray((pg.PRIME - 1).to_bytes(48, "big"))
    bad_x[0] |= 0x80
    with pytest.raises((NotOnCurve, NotInSubgroup)):
        EncryptedValue.from_bytes(_splice(raw, offset, size, bytes(bad_x)))
    with pytest.raises(NonCanonicalEncoding):
        EncryptedValue.from_bytes(_splice(raw, offset, size, b"\xff" * 48))


# --- secrets stay secret -----------------------------------------------------------------------


def test_secrets_do_not_show_themselves() -> None:
    key = PrivateKey.generate()
    secret = AugmentationSecret.generate()
    m = Plaintext.generate()
    for thing, raw in ((key, key.to_secret_bytes()), (secret, secret.to_secret_bytes())):
        assert raw.hex() not in repr(thing)
        assert "<secret>" in repr(thing)
        with pytest.raises(TypeError):
            hash(thing)
    assert m.to_secret_bytes().hex()[:32] not in repr(m)
    assert str(DecryptionError()) == "DecryptionError"
    assert PrivateKey.from_secret_bytes(key.to_secret_bytes()) == key
    assert key != PrivateKey.generate()


def _frames_after_the_caller(error: BaseException) -> Iterator[FrameType]:
    """The frames a traceback of ``error`` keeps alive, below the catching frame."""
    tb = error.__traceback__
    assert tb is not None
    tb = tb.tb_next
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _tampered_auth(value: VerifiedEncryptedValue) -> VerifiedEncryptedValue:
    """``value`` with another auth hash, signed again: the right key computes the real
    plaintext before the auth check refuses it."""
    return _sign_value(SIGNER, value.ephemeral_key, value.body, bytes(32), value.blocks)


@pytest.mark.parametrize("case", ["wrong-key-level-0", "wrong-key-level-2", "tampered-auth"])
def test_a_failed_decryption_leaves_no_key_material_in_its_traceback(case: str) -> None:
    """Loggers and error trackers record a traceback's locals: a ``DecryptionError`` must
    not carry -d*Q, a hop's key or the candidate plaintext with it."""
    keys = [PrivateKey.generate() for _ in range(3)]
    plaintext = Plaintext.generate()
    values = chain(keys, plaintext)
    holder = keys[2] if case == "wrong-key-level-2" else keys[0]
    if case == "tampered-auth":
        value, key = _tampered_auth(values[0]), keys[0]
    else:
        value, key = values[2 if case == "wrong-key-level-2" else 0], PrivateKey.generate()
    with pytest.raises(DecryptionError) as caught:
        decrypt(value, key)
    material = [key.negated_q(), holder.negated_q(), plaintext.element]
    frames = list(_frames_after_the_caller(caught.value))
    assert frames, "the error was raised below the caller"
    for frame in frames:
        for name, local in frame.f_locals.items():
            assert not isinstance(local, (pg.G1, pg.G2, pg.GT, pg.Fr)), (frame, name)
            assert not isinstance(local, PrivateKey), (frame, name)
            assert not any(_equal(local, m) for m in material), (frame, name)


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a value of another type may refuse to compare
        return False
