"""Groups: a PRE key pair whose private key only admins hold (encrypted to them at the
key service). Members get group -> user transform keys, made by an admin's client."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from veil.client.errors import Conflict, PinnedKeyChanged, UntrustedKey
from veil.client.principal import Principal
from veil.client.provenance import pinned_identities, vouched_origin
from veil.crypto.aead import open_document
from veil.crypto.keys import PrivateKey, PublicKey
from veil.protocol import b64decode


def _pin(group_id: str) -> str:
    """A group's entry among the pins ('/' is in no user id, so none collides)."""
    return f"group/{group_id}"


@dataclass(frozen=True)
class GroupInfo:
    group_id: str
    admins: tuple[str, ...]
    members: tuple[str, ...]


@dataclass(frozen=True)
class GroupDigest:
    """A group's member list by digest (``veil.protocol.board.member_digest``)."""

    group_id: str
    admins: tuple[str, ...]
    members_digest: bytes
    member_count: int


class Groups:
    """A device's groups (``device.groups``)."""

    def __init__(self, device: Principal) -> None:
        self._device = device
        self._keys: dict[str, PrivateKey] = {}

    async def create(
        self,
        group_id: str | None = None,
        *,
        members: Sequence[str] = (),
        admins: Sequence[str] = (),
        accept_changes: bool = False,
    ) -> str:
        """Create a group (this user becomes an admin) and add members and admins."""
        device = self._device
        group_id = group_id or f"group-{secrets.token_hex(12)}"
        group_key = PrivateKey.generate()
        await device.session.create_group(
            group_id, group_key, user_id=device.user_id, master=device.master_public_key
        )
        self._keys[group_id] = group_key
        # Pinned at creation (over any pin of an earlier group of this id): what is
        # encrypted to the group later goes to this key, whatever the key service says.
        device.pin(_pin(group_id), bytes(group_key.public_key), accept_changes=True)
        if members:
            await self.add_members(group_id, members, accept_changes=accept_changes)
        if admins:
            await self.add_admins(group_id, admins, accept_changes=accept_changes)
        return group_id

    async def public_key(self, group_id: str, *, accept_changes: bool = False) -> PublicKey:
        """The group's public key, pinned like users' keys: the one this device created
        the group with, or the first one the key service served; ``PinnedKeyChanged``
        if it serves another later."""
        key = await self._device.keyserver.group_public_key(group_id)
        try:
            self._device.pin(_pin(group_id), bytes(key), accept_changes=accept_changes)
        except PinnedKeyChanged:
            raise PinnedKeyChanged(group_id) from None
        return key

    async def key(self, group_id: str) -> PrivateKey:
        """The group's private key (admins only), fetched once and kept in memory.

        ``UntrustedKey`` unless its ciphertext was encrypted by a device, certified by
        its user's pinned identity key, of a user the key service lists as an admin
        (``veil.client.provenance``), and the key opened is the one whose public key
        this device pinned for the group. So an admin whose key was given by an admin
        since removed is refused it: remove and add that admin again."""
        if group_id not in self._keys:
            device = self._device
            delivery, envelope = await device.session.group_private_key(group_id)
            what = f"group {group_id!r}'s private key"
            admins = (await self.get(group_id)).admins
            origin = await vouched_origin(
                delivery, authors=admins, identity=pinned_identities(device), what=what
            )
            plaintext = device.decrypt(delivery.transformed, origin=origin)
            secret = open_document(plaintext.derive_key("group key"), group_id, envelope)
            key = PrivateKey.from_secret_bytes(secret)
            if key.public_key != await self.public_key(group_id):
                raise UntrustedKey(f"{what} does not match the group's pinned public key")
            self._keys[group_id] = key
        return self._keys[group_id]

    async def add_members(
        self, group_id: str, user_ids: Sequence[str], *, accept_changes: bool = False
    ) -> None:
        """Add members; several go in one request per 100 (each request adds all its
        members or none)."""
        keys = await self._device.public_keys(user_ids, accept_changes=accept_changes)
        group_key = await self.key(group_id)
        if len(user_ids) == 1:
            await self._device.session.add_member(
                group_id, group_key, user_id=user_ids[0], master=keys[user_ids[0]]
            )
        elif user_ids:
            members = [(user_id, keys[user_id]) for user_id in user_ids]
            await self._device.session.add_members(group_id, group_key, members)

    async def remove_members(self, group_id: str, user_ids: Sequence[str]) -> None:
        group_key = await self.key(group_id)
        for user_id in user_ids:
            await self._device.session.remove_member(group_id, group_key, user_id)

    async def add_admins(
        self, group_id: str, user_ids: Sequence[str], *, accept_changes: bool = False
    ) -> None:
        keys = await self._device.public_keys(user_ids, accept_changes=accept_changes)
        group_key = await self.key(group_id)
        for user_id in user_ids:
            await self._device.session.add_admin(
                group_id, group_key, user_id=user_id, master=keys[user_id]
            )

    async def ensure_admin(self, group_id: str, user_id: str) -> None:
        """Make ``user_id`` an admin. If it became one meanwhile (two managers of a
        meeting naming the same deputy, a hand-over beside a heartbeat), the outcome is
        the one asked for, not a failure."""
        try:
            await self.add_admins(group_id, [user_id])
        except Conflict as error:
            if error.code != "already_admin":
                raise

    async def remove_admins(self, group_id: str, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            await self._device.session.remove_admin(group_id, user_id)

    async def get(self, group_id: str) -> GroupInfo:
        data = await self._device.session.group(group_id)
        return GroupInfo(group_id, tuple(data["admins"]), tuple(data["members"]))

    async def digest(self, group_id: str) -> GroupDigest:
        """Whether a member list is the group's, without reading every member."""
        data = await self._device.session.group_digest(group_id)
        return GroupDigest(
            group_id, tuple(data["admins"]), b64decode(data["members_digest"]), data["member_count"]
        )

    async def list(self) -> list[str]:
        return await self._device.session.groups()

    async def delete(self, group_id: str) -> None:
        """Delete the group: every transform key of it goes, at once."""
        await self._device.session.delete_group(group_id)
        self._keys.pop(group_id, None)

    def forget(self, group_id: str) -> None:
        self._keys.pop(group_id, None)
