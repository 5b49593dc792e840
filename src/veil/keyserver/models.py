"""The key service's tables. Nothing here can decrypt anything on its own: the
service stores public keys, transform keys, ciphertexts and escrow blobs it cannot
open, plus its own augmentation secrets (sealed under the service secret)."""

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(256)


class Base(DeclarativeBase):
    pass


class EscrowShare(Base):
    """The key service's half of a user's split-trust escrow password."""

    __tablename__ = "escrow_shares"
    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    share: Mapped[bytes] = mapped_column(LargeBinary(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_public_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_augmentation: Mapped[bytes] = mapped_column(LargeBinary)
    escrow: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    signing_key: Mapped[bytes] = mapped_column(LargeBinary)
    certificate: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The user's Schnorr signature over the device's id and keys (published)."""
    transform_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DeviceSigningKey(Base):
    """Every certified signing key a device has had, kept after it rotates or is
    revoked: a stored level-0 ciphertext (a grant, an admin's group key) outlives the
    key that signed it, and clients check it against the certificate of that key."""

    __tablename__ = "device_signing_keys"
    signing_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    """Unique: a signing key names one device, so a stored ciphertext has one author."""
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    """The device's PRE key of the same registration or rotation (the certificate
    covers both keys)."""
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[int] = mapped_column(BigInteger)


class GroupAdmin(Base):
    """An admin, with the group private key encrypted to them (a PRE ciphertext of a
    plaintext whose derived key seals the group key in ``key_envelope``)."""

    __tablename__ = "group_admins"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    encrypted_key: Mapped[bytes] = mapped_column(LargeBinary)
    key_envelope: Mapped[bytes] = mapped_column(LargeBinary)


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    transform_key: Mapped[bytes] = mapped_column(LargeBinary)
    added_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)


class DocumentGrant(Base):
    """The document's key encrypted to one grantee (a user or a group)."""

    __tablename__ = "document_grants"
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    grantee_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    grantee_id: Mapped[str] = mapped_column(ID, primary_key=True)
    encrypted_key: Mapped[bytes] = mapped_column(LargeBinary)
    granted_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[int] = mapped_column(BigInteger)


class RequestNonce(Base):
    """Nonces of signed requests, kept past the clock-skew window to stop replays."""

    __tablename__ = "request_nonces"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[int] = mapped_column(BigInteger, index=True)


class AuditHead(Base):
    """One row: the newest audit entry, locked by every append to keep the chain linear."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ID)
    device_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    request_signature: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
