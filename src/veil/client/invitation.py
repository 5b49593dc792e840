"""Meeting invitations: the meeting id *and* the meeting group's public key.

A joiner accepts a session key only with a proof made with the group's private key,
so the group's public key is the root of trust of a meeting. It must not come from
one party alone: a key service, or a platform, that presented a group key of its own
could prove, and so plant, a session key it knows. The first user's client therefore
puts the key in the invitation, which reaches joiners through the platform (a meeting
link, a calendar entry), and a joiner goes on only if the key service holds the same
key for the meeting's group (``Meeting.join``). Subverting it takes the key service
and the platform together.

Text form: ``veil-meeting-v1:<meeting id>:<group public key, base64url>`` (about 100
characters; the meeting id may itself contain ``:``).
"""

import re
from dataclasses import dataclass

from veil.crypto.errors import DecodeError
from veil.crypto.keys import PublicKey
from veil.protocol import b64decode, b64encode

_PREFIX = "veil-meeting-v1"
_MEETING_ID = re.compile(r"[A-Za-z0-9._@:-]{1,256}")  # the services' id syntax, less . and ..


@dataclass(frozen=True)
class Invitation:
    meeting_id: str
    group_key: PublicKey

    def __str__(self) -> str:
        return f"{_PREFIX}:{self.meeting_id}:{b64encode(bytes(self.group_key))}"

    @classmethod
    def parse(cls, text: str) -> "Invitation":
        """Strictly decode an invitation; ``ValueError`` says what is wrong."""
        prefix, _, rest = text.partition(":")
        meeting_id, _, key = rest.rpartition(":")
        if prefix != _PREFIX or not meeting_id or not key:
            raise ValueError(f"not a Veil meeting invitation (expected '{_PREFIX}:<id>:<key>')")
        if not _MEETING_ID.fullmatch(meeting_id) or meeting_id in (".", ".."):
            raise ValueError("the invitation's meeting id is not a valid id")
        try:
            group_key = PublicKey.from_bytes(b64decode(key))
        except (ValueError, DecodeError):
            raise ValueError("the invitation's group key is malformed") from None
        return cls(meeting_id, group_key)
