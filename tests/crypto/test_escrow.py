"""User-key escrow and the split-trust password.

Escrow runs PBKDF2 at its real 600,000 iterations, so the file seals once (a
module-scoped blob) and opens it only where a test needs the key derived: four times.
Every other escrow check fails before any PBKDF2 work, and says so.
"""

from collections.abc import Callable

import pytest

from veil.crypto import escrow
from veil.crypto.errors import DecodeError, DecryptionError, InvalidLength, UnsupportedVersion
from veil.crypto.escrow import new_share, open_escrow, seal_escrow, split_trust_password


def _raises_exactly(error: type[Exception], call: Callable[[], object]) -> None:
    with pytest.raises(error) as excinfo:
        call()
    assert type(excinfo.value) is error


# --- split-trust password --------------------------------------------------------------

SHARE_A = bytes(range(16))
SHARE_B = bytes(range(16, 32))


def test_split_trust_password_is_deterministic() -> None:
    password = split_trust_password(SHARE_A, SHARE_B)
    assert len(password) == 32
    assert split_trust_password(SHARE_A, SHARE_B) == password


def test_split_trust_password_depends_on_order_and_each_share() -> None:
    password = split_trust_password(SHARE_A, SHARE_B)
    assert split_trust_password(SHARE_B, SHARE_A) != password
    assert split_trust_password(SHARE_A, SHARE_A) != password
    assert split_trust_password(new_share(), SHARE_B) != password
    assert split_trust_password(SHARE_A, new_share()) != password


@pytest.mark.parametrize(
    "share",
    [b"", bytes(15), bytes(17), bytes(32), bytearray(16)],
    ids=["empty", "15-bytes", "17-bytes", "32-bytes", "bytearray"],
)
def test_split_trust_password_refuses_bad_shares(share: bytes) -> None:
    _raises_exactly(ValueError, lambda: split_trust_password(share, SHARE_B))
    _raises_exactly(ValueError, lambda: split_trust_password(SHARE_A, share))


def test_new_share_is_16_fresh_bytes() -> None:
    first, second = new_share(), new_share()
    assert len(first) == len(second) == 16
    assert first != second


# --- escrow ----------------------------------------------------------------------------

SECRET = bytes(range(32))
PASSWORD = split_trust_password(SHARE_A, SHARE_B)
CONTEXT = b"user:alice"
ITERATIONS_FIELD = slice(2, 6)  # after version and kind
ESCROW_HEADER = 2 + 4 + 16 + 12  # version, kind, iterations, salt, nonce


@pytest.fixture(scope="module")
def escrow_blob() -> bytes:
    return seal_escrow(SECRET, PASSWORD, context=CONTEXT)  # PBKDF2 #1


@pytest.fixture
def no_pbkdf2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the escrow code starts a PBKDF2 derivation."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("PBKDF2 was started")

    monkeypatch.setattr(escrow, "PBKDF2HMAC", refuse)


def _with_iterations(blob: bytes, iterations: int) -> bytes:
    return (
        blob[: ITERATIONS_FIELD.start]
        + iterations.to_bytes(4, "big")
        + blob[ITERATIONS_FIELD.stop :]
    )


def test_escrow_blob_layout(escrow_blob: bytes) -> None:
    assert escrow_blob[:2] == b"\x01\x20"  # version 1, kind ESCROW
    assert int.from_bytes(escrow_blob[ITERATIONS_FIELD], "big") == 600_000 == escrow.MIN_ITERATIONS
    assert len(escrow_blob) == ESCROW_HEADER + len(SECRET) + 16
    assert SECRET not in escrow_blob


def test_escrow_round_trip(escrow_blob: bytes) -> None:
    assert open_escrow(escrow_blob, PASSWORD, context=CONTEXT) == SECRET  # PBKDF2 #2


def test_escrow_wrong_password_fails(escrow_blob: bytes) -> None:
    wrong = split_trust_password(SHARE_B, SHARE_A)
    _raises_exactly(DecryptionError, lambda: open_escrow(escrow_blob, wrong, context=CONTEXT))


def test_escrow_wrong_context_fails(escrow_blob: bytes) -> None:
    _raises_exactly(
        DecryptionError, lambda: open_escrow(escrow_blob, PASSWORD, context=b"user:mallory")
    )


@pytest.mark.parametrize(
    "index",
    [6, 6 + 15, 22, 22 + 11, ESCROW_HEADER + 1, -1],
    ids=["salt-first", "salt-last", "nonce-first", "nonce-last", "ciphertext", "tag"],
)
def test_escrow_tampered_field_fails(escrow_blob: bytes, index: int) -> None:
    index %= len(escrow_blob)
    tampered = escrow_blob[:index] + bytes([escrow_blob[index] ^ 1]) + escrow_blob[index + 1 :]
    _raises_exactly(DecryptionError, lambda: open_escrow(tampered, PASSWORD, context=CONTEXT))


def test_escrow_iterations_changed_within_policy_fails(escrow_blob: bytes) -> None:
    # The iteration count is authenticated: raising it is not a way to re-key the blob.
    rewritten = _with_iterations(escrow_blob, escrow.MIN_ITERATIONS + 1)
    _raises_exactly(DecryptionError, lambda: open_escrow(rewritten, PASSWORD, context=CONTEXT))


@pytest.mark.parametrize(
    "iterations", [1000, 0, escrow.MIN_ITERATIONS - 1, escrow.MAX_ITERATIONS + 1]
)
@pytest.mark.usefixtures("no_pbkdf2")
def test_escrow_iterations_out_of_policy_is_a_decode_error(
    escrow_blob: bytes, iterations: int
) -> None:
    rewritten = _with_iterations(escrow_blob, iterations)
    _raises_exactly(DecodeError, lambda: open_escrow(rewritten, PASSWORD, context=CONTEXT))


@pytest.mark.usefixtures("no_pbkdf2")
def test_escrow_malformed_blobs_fail_before_pbkdf2(escrow_blob: bytes) -> None:
    wrong_version = b"\x02" + escrow_blob[1:]
    _raises_exactly(
        UnsupportedVersion, lambda: open_escrow(wrong_version, PASSWORD, context=CONTEXT)
    )
    for keep in (0, 5, ESCROW_HEADER - 1, ESCROW_HEADER + 15):
        cut = escrow_blob[:keep]
        _raises_exactly(InvalidLength, lambda c=cut: open_escrow(c, PASSWORD, context=CONTEXT))


@pytest.mark.parametrize("iterations", [1000, escrow.MIN_ITERATIONS - 1, escrow.MAX_ITERATIONS + 1])
@pytest.mark.usefixtures("no_pbkdf2")
def test_seal_escrow_refuses_iterations_out_of_policy(iterations: int) -> None:
    _raises_exactly(
        ValueError,
        lambda: seal_escrow(SECRET, PASSWORD, context=CONTEXT, iterations=iterations),
    )


@pytest.mark.usefixtures("no_pbkdf2")
def test_seal_escrow_refuses_an_empty_password() -> None:
    _raises_exactly(ValueError, lambda: seal_escrow(SECRET, b"", context=CONTEXT))
