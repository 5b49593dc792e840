"""Key pinning: the first public keys seen for a user (master and identity, see
``UserKeys.pin``) are remembered; different ones later raise ``PinnedKeyChanged``
unless the caller accepts the change."""

from veil.client.errors import PinnedKeyChanged


class KeyPins:
    def __init__(self, pinned: dict[str, bytes]) -> None:
        self._pinned = pinned  # shared with the device context, which persists it

    def check(self, user_id: str, encoded: bytes, *, accept_changes: bool = False) -> bool:
        """Pin ``encoded`` keys for ``user_id``. Returns True if the pins changed (to be
        saved)."""
        seen = self._pinned.get(user_id)
        if seen == encoded:
            return False
        if seen is not None and not accept_changes:
            raise PinnedKeyChanged(user_id)
        self._pinned[user_id] = encoded
        return True

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._pinned
