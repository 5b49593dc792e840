"""Meeting chat: messages sealed under the epoch's chat key, posted on the board."""

from dataclasses import dataclass, field

from veil.crypto import chat
from veil.crypto.errors import DecryptionError, InvalidLength
from veil.protocol.board import Chat


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
