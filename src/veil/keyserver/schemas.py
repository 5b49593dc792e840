"""Request and response bodies. Binary values travel as unpadded base64url strings."""

from typing import Literal

from pydantic import Field

from veil.protocol import MAX_ADD_MEMBERS, MAX_LOOKUP_DEVICES
from veil.web.schemas import B64, Id, Model, Timestamp


class CreateUser(Model):
    public_key: B64
    escrow: B64


class UserCreated(Model):
    user_id: str
    master_public_key: B64


class Escrow(Model):
    user_id: str
    master_public_key: B64
    escrow: B64


class LookupKeys(Model):
    user_ids: list[Id] = Field(min_length=1, max_length=500)


class PublicKeys(Model):
    public_keys: dict[str, B64]
    """Master (augmented) public keys: what is encrypted to."""
    identity_keys: dict[str, B64]
    """Client public keys: what device certificates are checked against."""


class DeviceKeys(Model):
    """A device's keys plus the user -> device transform key and the user's proof."""

    public_key: B64
    signing_key: B64
    transform_key: B64
    timestamp: Timestamp
    proof: B64
    certificate: B64
    """The user's Schnorr signature (``veil.protocol.device_certificate_message``)."""


class DeviceCreated(Model):
    device_id: str


class DeviceInfo(Model):
    device_id: str
    public_key: B64
    signing_key: B64
    certificate: B64 | None
    status: Literal["active", "revoked"]
    created_at: int
    revoked_at: int | None


class DeviceRecord(Model):
    device_id: str
    user_id: str
    public_key: B64
    signing_key: B64
    certificate: B64 | None
    status: Literal["active", "revoked"]


class DeviceList(Model):
    devices: list[DeviceInfo]


class LookupDevices(Model):
    device_ids: list[Id] = Field(min_length=1, max_length=MAX_LOOKUP_DEVICES)


class DeviceRecords(Model):
    devices: list[DeviceRecord]
    """The records of the ids the service knows (unknown ones are left out)."""


class CreateGroup(Model):
    group_id: Id
    public_key: B64
    encrypted_key: B64
    key_envelope: B64
    timestamp: Timestamp
    proof: B64


class GroupInfo(Model):
    group_id: str
    public_key: B64
    admins: list[str]
    members: list[str]


class GroupDigest(Model):
    """What a meeting's manager checks before each rekey instead of reading every
    member: the digest of the member list (``veil.protocol.board.member_digest``)."""

    group_id: str
    members_digest: B64
    member_count: int
    admins: list[str]


class GroupPublicKey(Model):
    group_id: str
    public_key: B64


class Membership(Model):
    """The calling device's user is in the group (a member or an admin)."""

    group_id: str
    user_id: str
    device_id: str


class GroupList(Model):
    groups: list[str]


class AddMember(Model):
    user_id: Id
    transform_key: B64
    timestamp: Timestamp
    proof: B64


class AddMembers(Model):
    members: list[AddMember] = Field(min_length=1, max_length=MAX_ADD_MEMBERS)


class AddAdmin(Model):
    user_id: Id
    encrypted_key: B64
    key_envelope: B64


class Author(Model):
    """The device whose signing key signed a stored level-0 ciphertext, with the keys
    and certificate it had then (the device may have rotated or been revoked since):
    clients check the ciphertext against these, and these against the user's identity
    key, instead of trusting the key the ciphertext names."""

    device_id: str
    user_id: str
    public_key: B64
    signing_key: B64
    certificate: B64
    status: Literal["active", "revoked"]
    """The device's status now."""


class GroupKey(Model):
    encrypted_key: B64
    """The admin's group-key ciphertext transformed to the calling device."""
    key_envelope: B64
    origin: B64
    """The level-0 ciphertext the service stored, as its author signed it."""
    author: Author | None
    """Who signed ``origin`` (``None``: no certified key on record)."""


class TransformRequest(Model):
    encrypted_key: B64
    group_id: Id | None = None


class Transformed(Model):
    encrypted_key: B64


class Grant(Model):
    grantee_kind: Literal["user", "group"]
    grantee_id: Id
    encrypted_key: B64


class CreateDocument(Model):
    document_id: Id
    kind: Literal["transcript", "recording", "file", "abuse_report", "agenda", "other"]
    grants: list[Grant] = Field(min_length=1, max_length=100)


class DocumentKey(Model):
    encrypted_key: B64
    """The grant's ciphertext transformed to the calling device."""
    via: Literal["user", "group"]
    owner: str
    """The document's owner: the only user who stores its grants."""
    origin: B64
    """The grant's level-0 ciphertext, as its author signed it."""
    author: Author | None
    """Who signed ``origin`` (``None``: no certified key on record)."""


class Done(Model):
    ok: Literal[True] = True


class ServiceInfo(Model):
    transform_signer: B64
    """The Ed25519 key that signs every transformed ciphertext (clients pin it)."""
