"""Meeting chat: messages sealed under the epoch's chat key, posted on the board."""

from collections import deque
from dataclasses import dataclass, field

from veil.client.conference import Post
from veil.crypto import chat
from veil.crypto.errors import DecryptionError, InvalidLength
from veil.protocol.board import Chat

AHEAD_LIMIT = 256
"""Chat messages held for a key on its way, at most; past it the oldest are dropped."""


@dataclass(frozen=True)
class ChatMessage:
    user_id: str
    sender: int
    epoch: int
    text: str = field(repr=False)


def seal(session_key: bytes, text: str, *, meeting_id: str, epoch: int, sender: int) -> Chat:
    sealed = chat.seal(
        session_key, text.encode(), meeting_id=meeting_id, epoch=epoch, sender=sender
    )
    return Chat(epoch, sender, sealed)


def open_chat(
    session_key: bytes, message: Chat, *, meeting_id: str, user_id: str
) -> ChatMessage | None:
    """The message, or ``None`` if it does not open under this key (another epoch's
    members, or tampered) or is not UTF-8."""
    try:
        text = chat.open_sealed(
            session_key, message.sealed, meeting_id=meeting_id, epoch=message.epoch,
            sender=message.sender,
        ).decode()  # fmt: skip
    except (DecryptionError, InvalidLength, UnicodeDecodeError):
        return None
    return ChatMessage(user_id, message.sender, message.epoch, text)


class Ahead:
    """Chat of an epoch newer than the key this client holds. In a rekey the poster's
    key and the transforms reach devices at different moments, and whoever installed
    first may chat at once: such a message waits for the key rather than being lost.
    Bounded (``AHEAD_LIMIT``): a flood of messages for an epoch that never comes costs
    memory once, then pushes out its own oldest."""

    def __init__(self, limit: int = AHEAD_LIMIT) -> None:
        self._held: deque[tuple[Post, Chat]] = deque(maxlen=limit)

    def hold(self, post: Post, message: Chat) -> None:
        self._held.append((post, message))

    def due(self, epoch: int) -> list[tuple[Post, Chat]]:
        """The held messages of ``epoch`` or older, in board order (the rest stay)."""
        due = [held for held in self._held if held[1].epoch <= epoch]
        self._held = deque((h for h in self._held if h[1].epoch > epoch), self._held.maxlen)
        return due

    def clear(self) -> None:
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)
