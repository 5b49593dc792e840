"""The Veil client SDK: every encrypt and decrypt happens here, on the user's device."""

from veil.client.device import Device, approval_payload
from veil.client.documents import EncryptedDocument
from veil.client.errors import (
    ApprovalPending,
    Conflict,
    DeviceRevoked,
    Forbidden,
    InvalidRequest,
    MeetingEnded,
    NotAdmitted,
    NotFound,
    NotMember,
    PinnedKeyChanged,
    ServiceError,
    Unauthorized,
    Unavailable,
    UncertifiedDevice,
    UntrustedInvitation,
    UntrustedKey,
    VeilError,
    WrongPassword,
)
from veil.client.groups import GroupInfo
from veil.client.store import DeviceStore, FileDeviceStore, MemoryDeviceStore

__all__ = [
    "ApprovalPending",
    "Conflict",
    "Device",
    "DeviceRevoked",
    "DeviceStore",
    "EncryptedDocument",
    "FileDeviceStore",
    "Forbidden",
    "GroupInfo",
    "InvalidRequest",
    "MeetingEnded",
    "MemoryDeviceStore",
    "NotAdmitted",
    "NotFound",
    "NotMember",
    "PinnedKeyChanged",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
    "UncertifiedDevice",
    "UntrustedInvitation",
    "UntrustedKey",
    "VeilError",
    "WrongPassword",
    "approval_payload",
]  # fmt: skip
