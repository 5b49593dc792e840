"""Key pinning: the first public key seen for a user is remembered; a different key
later raises ``PinnedKeyChanged`` unless the caller accepts the change."""

from veil.client.errors import PinnedKeyChanged
from veil.crypto.keys import PublicKey


class KeyPins:
    def __init__(self, pinned: dict[str, bytes]) -> None:
        self._pinned = pinned  # shared with the device context, which persists it

    def check(self, user_id: str, key: PublicKey, *, accept_changes: bool = False) -> bool:
        """Pin ``key`` for ``user_id``. Returns True if the pins changed (to be saved)."""
        seen = self._pinned.get(user_id)
        encoded = bytes(key)
        if seen == encoded:
            return False
        if seen is not None and not accept_changes:
            raise PinnedKeyChanged(user_id)
        self._pinned[user_id] = encoded
        return True

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._pinned
