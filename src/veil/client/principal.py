"""``Principal``: a registered device as its groups and documents use it.

``Device`` owns a ``Groups`` and a ``Documents``; they need a few of its pieces (who it
is, the signed key-service session, its signing key, its pins and the pinned keys of
others, its decryption) but not ``Device`` itself. Naming those pieces here keeps the
dependency one way: ``device`` imports ``groups`` and ``documents``, which import only
this protocol. The members are read on every use, never copied: a key rotation
replaces the device's signer and session.
"""

from collections.abc import Sequence
from typing import Protocol

from veil.client.keyserver import DeviceSession, KeyServerClient, UserKeys
from veil.crypto.keys import Plaintext, PublicKey
from veil.crypto.pre import EncryptedValue, VerifiedEncryptedValue
from veil.crypto.signing import SigningKey


class Principal(Protocol):
    """What groups and documents use of a device (``veil.client.Device`` is one)."""

    @property
    def user_id(self) -> str: ...

    @property
    def master_public_key(self) -> PublicKey:
        """This user's master public key: what is encrypted to the user."""
        ...

    @property
    def signer(self) -> SigningKey:
        """This device's current signing key (it signs the ciphertexts it makes)."""
        ...

    @property
    def keyserver(self) -> KeyServerClient:
        """The key service's unsigned calls (public keys of groups)."""
        ...

    @property
    def session(self) -> DeviceSession:
        """The key service's calls signed by this device."""
        ...

    def pin(self, entry: str, encoded: bytes, *, accept_changes: bool = False) -> None:
        """Check ``encoded`` against the pin ``entry`` and pin it (``PinnedKeyChanged``)."""
        ...

    async def public_keys(
        self, user_ids: Sequence[str], *, accept_changes: bool = False
    ) -> dict[str, PublicKey]:
        """Users' master public keys, checked against this device's pins."""
        ...

    async def user_keys(
        self, user_ids: Sequence[str], *, accept_changes: bool = False
    ) -> dict[str, UserKeys]:
        """Users' master and identity keys, checked against this device's pins."""
        ...

    def decrypt(
        self, value: VerifiedEncryptedValue, *, origin: EncryptedValue | None = None
    ) -> Plaintext:
        """Decrypt a value transformed to this device (descending from ``origin``)."""
        ...
