"""The meeting key schedule: session, sender and chat keys; media KIDs."""

from collections.abc import Callable
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil.crypto.keys import Plaintext
from veil.crypto.schedule import (
    chat_key,
    media_kid,
    parse_media_kid,
    sender_base_key,
    session_key,
)
from veil.crypto.sframe import MAX_VALUE, SFrameHeader

MEETING = "meeting-1"
EPOCH = 3


@pytest.fixture(scope="module")
def plaintext() -> Plaintext:
    return Plaintext.generate()


@pytest.fixture(scope="module")
def sk(plaintext: Plaintext) -> bytes:
    return session_key(plaintext, meeting_id=MEETING, epoch=EPOCH)


def _raises_exactly(error: type[Exception], call: Callable[[], object]) -> None:
    with pytest.raises(error) as excinfo:
        call()
    assert type(excinfo.value) is error


# --- session key -----------------------------------------------------------------------


def test_session_key_is_deterministic(plaintext: Plaintext, sk: bytes) -> None:
    assert len(sk) == 32
    copy = Plaintext.from_secret_bytes(plaintext.to_secret_bytes())
    assert session_key(copy, meeting_id=MEETING, epoch=EPOCH) == sk


@pytest.mark.parametrize(
    "meeting_id, epoch",
    [
        ("meeting-2", EPOCH),
        (MEETING + "\x00", EPOCH),
        (MEETING, EPOCH + 1),
        (MEETING, EPOCH + 2**16),  # same low 16 bits, so the same KID: the key must differ
    ],
    ids=["meeting", "meeting-suffix", "epoch", "epoch-mod-2^16"],
)
def test_session_key_changes_with_meeting_or_epoch(
    plaintext: Plaintext, sk: bytes, meeting_id: str, epoch: int
) -> None:
    assert session_key(plaintext, meeting_id=meeting_id, epoch=epoch) != sk


def test_session_key_changes_with_plaintext(sk: bytes) -> None:
    assert session_key(Plaintext.generate(), meeting_id=MEETING, epoch=EPOCH) != sk


@pytest.mark.parametrize(
    "meeting_id, epoch", [("", 0), (MEETING, -1), (MEETING, 2**64)], ids=["no-id", "neg", "2^64"]
)
def test_session_key_refuses_bad_context(plaintext: Plaintext, meeting_id: str, epoch: int) -> None:
    _raises_exactly(ValueError, lambda: session_key(plaintext, meeting_id=meeting_id, epoch=epoch))


# --- sender and chat keys --------------------------------------------------------------

MEETINGS = (MEETING, "meeting-2")
EPOCHS = (0, 1, 2**16)
SENDERS = (0, 1, 2**44 - 1)


def test_sender_base_keys_are_deterministic(sk: bytes) -> None:
    key = sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=1)
    assert len(key) == 32
    assert sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=1) == key


def test_sender_base_keys_differ_per_sender_epoch_and_meeting(sk: bytes) -> None:
    keys = {
        sender_base_key(sk, meeting_id=m, epoch=e, sender=s)
        for m, e, s in product(MEETINGS, EPOCHS, SENDERS)
    }
    assert len(keys) == len(MEETINGS) * len(EPOCHS) * len(SENDERS)
    assert sk not in keys


def test_each_stream_of_a_sender_has_its_own_key(sk: bytes) -> None:
    # Two SFrame senders under one key would reuse AES-GCM nonces.
    keys = {
        sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=1, stream=stream)
        for stream in range(16)
    }
    assert len(keys) == 16
    assert sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=1) in keys
    _raises_exactly(
        ValueError,
        lambda: sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=1, stream=16),
    )


def test_sender_base_key_differs_per_session_key(sk: bytes) -> None:
    other = bytes(32)
    assert sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=1) != sender_base_key(
        other, meeting_id=MEETING, epoch=EPOCH, sender=1
    )


def test_chat_key_differs_from_every_sender_key(sk: bytes) -> None:
    chat = chat_key(sk, meeting_id=MEETING, epoch=EPOCH)
    assert len(chat) == 32
    assert chat == chat_key(sk, meeting_id=MEETING, epoch=EPOCH)
    assert chat != sk
    for sender in (*SENDERS, 2, 3):
        assert chat != sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=sender)


def test_chat_key_differs_per_epoch_and_meeting(sk: bytes) -> None:
    keys = {chat_key(sk, meeting_id=m, epoch=e) for m, e in product(MEETINGS, EPOCHS)}
    assert len(keys) == len(MEETINGS) * len(EPOCHS)


@pytest.mark.parametrize("sender", [-1, 2**44], ids=["negative", "2^44"])
def test_sender_base_key_refuses_sender_out_of_range(sk: bytes, sender: int) -> None:
    _raises_exactly(
        ValueError, lambda: sender_base_key(sk, meeting_id=MEETING, epoch=EPOCH, sender=sender)
    )


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_derived_keys_need_a_32_byte_session_key(size: int) -> None:
    bad = bytes(size)
    _raises_exactly(
        ValueError, lambda: sender_base_key(bad, meeting_id=MEETING, epoch=EPOCH, sender=1)
    )
    _raises_exactly(ValueError, lambda: chat_key(bad, meeting_id=MEETING, epoch=EPOCH))


def test_derived_keys_refuse_bad_context(sk: bytes) -> None:
    _raises_exactly(ValueError, lambda: chat_key(sk, meeting_id="", epoch=EPOCH))
    _raises_exactly(ValueError, lambda: chat_key(sk, meeting_id=MEETING, epoch=2**64))
    _raises_exactly(ValueError, lambda: sender_base_key(sk, meeting_id=MEETING, epoch=-1, sender=1))
    _raises_exactly(ValueError, lambda: chat_key(sk, meeting_id="m" * 0x10000, epoch=EPOCH))
    _raises_exactly(TypeError, lambda: chat_key(sk, meeting_id=b"m", epoch=EPOCH))  # type: ignore[arg-type]


# --- media KIDs ------------------------------------------------------------------------


@given(epoch=st.integers(0, 2**64 - 1), sender=st.integers(0, 2**44 - 1), stream=st.integers(0, 15))
def test_media_kid_round_trip(epoch: int, sender: int, stream: int) -> None:
    kid = media_kid(epoch=epoch, sender=sender, stream=stream)
    assert 0 <= kid <= MAX_VALUE
    header = SFrameHeader(kid, 0)  # always a KID an SFrame header can carry
    assert SFrameHeader.parse(bytes(header))[0] == header
    assert parse_media_kid(kid) == (epoch % 2**16, sender, stream)


def test_media_kid_layout() -> None:
    assert media_kid(epoch=5, sender=3) == 3 << 20 | 5
    assert media_kid(epoch=5, sender=3, stream=2) == 3 << 20 | 2 << 16 | 5
    assert media_kid(epoch=2**16 + 5, sender=3) == media_kid(epoch=5, sender=3)
    assert media_kid(epoch=2**16 - 1, sender=2**44 - 1, stream=15) == MAX_VALUE
    assert parse_media_kid(MAX_VALUE) == (2**16 - 1, 2**44 - 1, 15)
    _raises_exactly(ValueError, lambda: parse_media_kid(2**64))


@pytest.mark.parametrize(
    "epoch, sender, stream",
    [(0, 2**44, 0), (0, -1, 0), (-1, 0, 0), (0, 0, 16), (0, 0, -1), (2**64, 0, 0)],
    ids=[
        "sender-2^44",
        "sender-negative",
        "epoch-negative",
        "stream-16",
        "stream-neg",
        "epoch-2^64",
    ],
)
def test_media_kid_bounds(epoch: int, sender: int, stream: int) -> None:
    _raises_exactly(ValueError, lambda: media_kid(epoch=epoch, sender=sender, stream=stream))


# --- secrets stay hidden ---------------------------------------------------------------


def test_plaintext_repr_hides_its_bytes(plaintext: Plaintext) -> None:
    secret_hex = plaintext.to_secret_bytes().hex()
    for text in (repr(plaintext), str(plaintext), f"{plaintext!r}", repr([plaintext])):
        assert secret_hex not in text
        assert secret_hex[:16] not in text
    assert repr(plaintext) == "Plaintext(<secret>)"


def test_plaintext_is_not_hashable(plaintext: Plaintext) -> None:
    with pytest.raises(TypeError):
        hash(plaintext)
