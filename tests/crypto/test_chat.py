"""Meeting chat sealing: bound to its key, meeting, epoch and sender."""

import pytest

from veil.crypto import chat
from veil.crypto.errors import DecryptionError, InvalidLength

KEY = bytes(range(32))
WHERE = {"meeting_id": "meeting-1", "epoch": 4, "sender": 77}


def test_a_sealed_message_opens_with_the_same_key_and_context() -> None:
    sealed = chat.seal(KEY, b"hello", **WHERE)
    assert len(sealed) == 12 + 5 + 16
    assert chat.open_sealed(KEY, sealed, **WHERE) == b"hello"
    assert chat.seal(KEY, b"hello", **WHERE) != sealed  # a fresh nonce each time


@pytest.mark.parametrize(
    "change",
    [{"meeting_id": "meeting-2"}, {"epoch": 5}, {"sender": 78}],
    ids=["meeting", "epoch", "sender"],
)
def test_another_meeting_epoch_or_sender_does_not_open(change: dict[str, object]) -> None:
    sealed = chat.seal(KEY, b"hello", **WHERE)
    with pytest.raises(DecryptionError):
        chat.open_sealed(KEY, sealed, **{**WHERE, **change})  # type: ignore[arg-type]


def test_a_tampered_or_truncated_message_is_refused() -> None:
    sealed = bytearray(chat.seal(KEY, b"hello", **WHERE))
    sealed[14] ^= 1
    with pytest.raises(DecryptionError):
        chat.open_sealed(KEY, bytes(sealed), **WHERE)
    with pytest.raises(DecryptionError):
        chat.open_sealed(bytes(32), chat.seal(KEY, b"x", **WHERE), **WHERE)
    with pytest.raises(InvalidLength):
        chat.open_sealed(KEY, bytes(27), **WHERE)
