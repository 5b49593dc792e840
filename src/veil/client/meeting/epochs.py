"""Epochs: which session key a client holds, and the rules for taking a new one.

Every client applies the same rules to the same board, so all agree:

- A key post is taken only with a proof made with the invitation's group key (an
  admin's) over its encrypted key, and only if that ciphertext was encrypted and
  signed by the device that posted it (``decrypt(origin=...)``).
- A key post for epoch ``n`` at board position ``seq`` replaces the key held if ``n``
  is newer, or if it is the same epoch posted earlier on the board: two admins may
  post one epoch at once (a hand-over or a late host racing a rekey), and every
  client keeps the epoch's first post in board order.
- The device that posted the key held manages the meeting.
- A client that left, was removed or saw the end installs nothing more.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from veil.crypto import schedule
from veil.crypto.keys import Plaintext
from veil.protocol.board import roster_json


def security_code(session_key: bytes, epoch: int, members: Sequence[str]) -> str:
    """Ten digits every member sees alike for an epoch: from its key and member list."""
    digest = hashlib.sha256(
        b"veil/v1 security code" + session_key + epoch.to_bytes(8, "big") + roster_json(members)
    ).digest()
    number = f"{int.from_bytes(digest[:8], 'big') % 10**10:010d}"
    return number[:5] + " " + number[5:]


@dataclass(frozen=True)
class Installed:
    """What a newly installed key changed."""

    epoch: int
    session_key: bytes = field(repr=False)
    members: tuple[str, ...]
    security_code: str
    manager: str


class Epochs:
    """The session keys one client holds: the current epoch's and, until its grace
    ends in the media layer, the previous one's (chat of the previous epoch still
    opens)."""

    def __init__(self, meeting_id: str) -> None:
        self.meeting_id = meeting_id
        self.epoch: int | None = None
        self.seq = 0
        """Board position of the installed key's post."""
        self.manager: str | None = None
        """Device id of the installed key's poster."""
        self.members: tuple[str, ...] = ()
        self.security_code = ""
        self._keys: dict[int, bytes] = {}
        self.closed = False
        """Set once the client left, was removed or the meeting ended: nothing installs."""

    def supersedes(self, epoch: int, seq: int) -> bool:
        if self.closed:
            return False
        if self.epoch is None or epoch > self.epoch:
            return True
        return epoch == self.epoch and seq < self.seq

    def install(
        self, epoch: int, seq: int, plaintext: Plaintext, members: Sequence[str], manager: str
    ) -> Installed | None:
        """Hold the key of a key post if it supersedes the one held; what changed, or
        ``None``."""
        if not self.supersedes(epoch, seq):
            return None
        key = schedule.session_key(plaintext, meeting_id=self.meeting_id, epoch=epoch)
        self._keys = {e: k for e, k in self._keys.items() if e >= epoch - 1 and e != epoch}
        self._keys[epoch] = key
        self.epoch, self.seq, self.manager, self.members = epoch, seq, manager, tuple(members)
        self.security_code = security_code(key, epoch, self.members)
        return Installed(epoch, key, self.members, self.security_code, manager)

    def key(self, epoch: int) -> bytes | None:
        return self._keys.get(epoch)

    def close(self) -> None:
        """Drop every key and take none again."""
        self.closed = True
        self._keys.clear()

    def held(self) -> int:
        return len(self._keys)
