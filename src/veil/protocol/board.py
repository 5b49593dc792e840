"""The meeting board's messages: the body of each kind of post (docs/protocol.md §3).

A board post is signed by its device over ``post_message(room, post_id, kind,
device_id, timestamp, body)``; this module says what ``body`` holds for each
``kind``. Bodies are JSON objects in one canonical encoding: UTF-8, keys sorted,
no whitespace, integers as JSON numbers, byte strings as unpadded base64url, lists
of user ids sorted and without repeats. ``parse`` takes a body only in that
encoding (it re-encodes what it read and compares), so every body has exactly one
form and two implementations agree byte for byte. Each message type has a ``KIND``,
``parse(body) -> message`` (``BoardMessageError`` names the defect) and
``__bytes__`` (the canonical body).

Proofs: a ``key``, ``hand-over`` or ``end`` post carries a ``MeetingProof`` made with
the meeting group's private key (only admins hold it) over the action, the meeting,
the poster's user id and the ``payload`` named below; its ``timestamp`` and ``proof``
fields are part of the body.
"""

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar, Union

from veil.crypto.errors import DecodeError
from veil.crypto.schedule import SENDER_LIMIT
from veil.protocol import MeetingProof, b64decode, b64encode

EPOCH_LIMIT: Final = 2**64
MAX_USER_ID: Final = 256
_USER_ID = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,256}")  # no lone surrogate: not UTF-8


DIGEST_SIZE: Final = 32
MAX_CHANGES_BYTES: Final = 32 * 1024
"""The most a key post's ``joined`` and ``left`` take together (their JSON): beyond
it, a key post names its member list by digest alone (``KeyPost.changes``)."""

MAX_INVITEES_BYTES: Final = 16 * 1024
"""The most a key post's ``invitees`` take in its body (their canonical JSON, UTF-8):
with the largest change, a key post stays within the conference service's 64 KiB post
limit. A manager with more invitees carries those that fit (``KeyPost.carried``)."""


def member_digest(members: Sequence[str]) -> bytes:
    """SHA-256 of ``"veil/v1 members" ‖ JSON(sorted members)``, the JSON of the
    security code (docs/protocol.md §4.8)."""
    return _member_digest(tuple(members))


def roster_json(members: Sequence[str]) -> bytes:
    """``JSON(sorted members)``, as the member digest and the security code hash it."""
    return _roster_json(tuple(members))


# A rekey digests the same list several times (the manager's check against the key
# service, the post's change, its own copy, the security code): sorting and encoding
# a 10,000-member list took milliseconds each time, so a few recent lists are kept.
# Both are pure functions of the list, so a cached answer is the answer.
_LISTS_CACHED = 16


@functools.lru_cache(maxsize=_LISTS_CACHED)
def _roster_json(members: tuple[str, ...]) -> bytes:
    return json.dumps(sorted(members)).encode()


@functools.lru_cache(maxsize=_LISTS_CACHED)
def _member_digest(members: tuple[str, ...]) -> bytes:
    return hashlib.sha256(b"veil/v1 members" + _roster_json(members)).digest()


class BoardMessageError(ValueError):
    """A post body that is not its kind's message in canonical form; says why."""


class TooManyInvitees(BoardMessageError):
    """A key post whose ``invitees`` take more than ``MAX_INVITEES_BYTES``."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _Fields:
    """Strict reads of one body's fields, for error messages that name the field."""

    def __init__(self, kind: str, body: bytes, names: frozenset[str]) -> None:
        self.kind = kind
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BoardMessageError(f"{kind}: the body is not UTF-8 JSON") from None
        if not isinstance(data, dict):
            raise BoardMessageError(f"{kind}: the body is not a JSON object")
        if set(data) != names:
            raise BoardMessageError(f"{kind}: the body has exactly the fields {sorted(names)}")
        self.data: dict[str, Any] = data

    def integer(self, name: str, limit: int) -> int:
        value = self.data[name]
        if type(value) is not int or not 0 <= value < limit:
            raise BoardMessageError(f"{self.kind}: {name} is an integer in [0, {limit})")
        return value

    def optional_integer(self, name: str, limit: int) -> int | None:
        return None if self.data[name] is None else self.integer(name, limit)

    def raw(self, name: str) -> bytes:
        try:
            return b64decode(self.data[name])
        except ValueError:
            raise BoardMessageError(f"{self.kind}: {name} is unpadded base64url") from None

    def digest(self, name: str) -> bytes:
        value = self.raw(name)
        if len(value) != DIGEST_SIZE:
            raise BoardMessageError(f"{self.kind}: {name} is a {DIGEST_SIZE}-byte digest")
        return value

    def users(self, name: str) -> tuple[str, ...]:
        value = self.data[name]
        if not isinstance(value, list) or not all(
            isinstance(u, str) and _USER_ID.fullmatch(u) for u in value
        ):
            raise BoardMessageError(f"{self.kind}: {name} is a list of user ids")
        if value != sorted(set(value)):
            raise BoardMessageError(f"{self.kind}: {name} is sorted, without repeats")
        return tuple(value)

    def user(self, name: str) -> str:
        value = self.data[name]
        if not isinstance(value, str) or not _USER_ID.fullmatch(value):
            raise BoardMessageError(f"{self.kind}: {name} is a user id")
        return value

    def proof(self) -> MeetingProof:
        try:
            return MeetingProof.read(self.data)
        except (ValueError, DecodeError):
            raise BoardMessageError(f"{self.kind}: timestamp and proof are malformed") from None


def _invitees_size(invitees: Sequence[str]) -> int:
    return len(_canonical(list(invitees)))


M = TypeVar("M", bound="_Message")


class _Message:
    KIND: ClassVar[str]
    FIELDS: ClassVar[frozenset[str]]

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        return _canonical(self.fields())

    @classmethod
    def read(cls: type[M], fields: _Fields) -> M:
        raise NotImplementedError

    @classmethod
    def parse(cls: type[M], body: bytes) -> M:
        """The message in ``body``; ``BoardMessageError`` unless well formed and canonical."""
        message = cls.read(_Fields(cls.KIND, body, cls.FIELDS))
        if bytes(message) != body:
            raise BoardMessageError(f"{cls.KIND}: the body is not in canonical form")
        return message


@dataclass(frozen=True)
class Announce(_Message):
    """A device joins: the sender number (below 2^44) it drew for this join. Frames are
    accepted only under the sender number their device announced; a number already
    announced by another device is refused by every client and by the relay."""

    KIND: ClassVar[str] = "announce"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"sender"})
    sender: int

    def fields(self) -> dict[str, Any]:
        return {"sender": self.sender}

    @classmethod
    def read(cls, fields: _Fields) -> "Announce":
        return cls(fields.integer("sender", SENDER_LIMIT))


@dataclass(frozen=True)
class Leave(_Message):
    """A device leaves: the sender number it announced (no one leaves for another)."""

    KIND: ClassVar[str] = "leave"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"sender"})
    sender: int

    def fields(self) -> dict[str, Any]:
        return {"sender": self.sender}

    @classmethod
    def read(cls, fields: _Fields) -> "Leave":
        return cls(fields.integer("sender", SENDER_LIMIT))


@dataclass(frozen=True)
class KeyPost(_Message):
    """An epoch's session key, encrypted once to the meeting group by its poster (the
    manager from then on). Proof payload: ``encrypted_key``.

    The group's members it was made for (security codes cover them) travel as a
    change: ``members_digest`` is their digest (``member_digest``); ``joined`` and
    ``left`` turn the list whose digest is ``base_digest`` (the list of the key its
    poster held) into it, so that a rekey costs each device the same bytes at any
    meeting size. A client that does not hold the base list fetches the list from the
    key service and takes it only if its digest is ``members_digest``; a change too
    large to carry
    (``MAX_CHANGES_BYTES``) is sent as ``base_digest == members_digest`` with no
    change.
    ``invitees``: users invited but not in the group yet, so a manager who takes over
    admits them (at most ``MAX_INVITEES_BYTES`` of them: ``TooManyInvitees``);
    ``host``: the user who manages when present."""

    KIND: ClassVar[str] = "key"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"epoch", "encrypted_key", "members_digest", "base_digest", "joined", "left"}
        | {"invitees", "host", "timestamp", "proof"}
    )
    epoch: int
    encrypted_key: bytes = field(repr=False)
    members_digest: bytes
    base_digest: bytes
    joined: tuple[str, ...]
    left: tuple[str, ...]
    invitees: tuple[str, ...]
    host: str
    proof: MeetingProof = field(repr=False)

    def __post_init__(self) -> None:
        if set(self.joined) & set(self.left):
            raise BoardMessageError("key: joined and left share a user")
        if self.base_digest == self.members_digest and (self.joined or self.left):
            raise BoardMessageError("key: a change that leaves the list as it was")
        if _invitees_size(self.invitees) > MAX_INVITEES_BYTES:
            raise TooManyInvitees(f"key: invitees take more than {MAX_INVITEES_BYTES} bytes")

    @staticmethod
    def carried(invitees: Iterable[str]) -> tuple[str, ...]:
        """The first of ``invitees`` (sorted) that fit in a key post."""
        fitting = sorted(set(invitees))
        if _invitees_size(fitting) <= MAX_INVITEES_BYTES:
            return tuple(fitting)
        size, count = 2, 0  # "[]", then each id and its comma
        for user_id in fitting:
            size += len(_canonical(user_id)) + (count > 0)
            if size > MAX_INVITEES_BYTES:
                break
            count += 1
        return tuple(fitting[:count])

    @classmethod
    def changes(
        cls, before: Sequence[str], after: Sequence[str]
    ) -> tuple[bytes, bytes, tuple[str, ...], tuple[str, ...]]:
        """``members_digest``, ``base_digest``, ``joined`` and ``left`` for a post whose
        list is ``after``, made by a poster who held ``before``."""
        members = member_digest(after)
        if tuple(before) == tuple(after):  # a rekey that changes nobody: no sets to build
            return members, members, (), ()
        old, new = set(before), set(after)
        joined, left = tuple(sorted(new - old)), tuple(sorted(old - new))
        if len(json.dumps([joined, left]).encode()) > MAX_CHANGES_BYTES:
            return members, members, (), ()
        return members, member_digest(before), joined, left

    def apply(self, base: Sequence[str]) -> tuple[str, ...] | None:
        """The post's member list from ``base`` (the list whose digest is
        ``base_digest``), or ``None`` if the change does not lead to ``members_digest``."""
        held = set(base)
        if held & set(self.joined) or not set(self.left) <= held:
            return None
        after = tuple(sorted((held - set(self.left)) | set(self.joined)))
        return after if member_digest(after) == self.members_digest else None

    def fields(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "encrypted_key": b64encode(self.encrypted_key),
            "members_digest": b64encode(self.members_digest),
            "base_digest": b64encode(self.base_digest),
            "joined": list(self.joined),
            "left": list(self.left),
            "invitees": list(self.invitees),
            "host": self.host,
            **self.proof.fields(),
        }

    @classmethod
    def read(cls, fields: _Fields) -> "KeyPost":
        return cls(
            epoch=fields.integer("epoch", EPOCH_LIMIT),
            encrypted_key=fields.raw("encrypted_key"),
            members_digest=fields.digest("members_digest"),
            base_digest=fields.digest("base_digest"),
            joined=fields.users("joined"),
            left=fields.users("left"),
            invitees=fields.users("invitees"),
            host=fields.user("host"),
            proof=fields.proof(),
        )


@dataclass(frozen=True)
class HandOver(_Message):
    """The manager hands management to the participant that joined as ``sender``.
    Proof payload: the sender number in ASCII decimal."""

    KIND: ClassVar[str] = "hand-over"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"sender", "timestamp", "proof"})
    sender: int
    proof: MeetingProof = field(repr=False)

    def fields(self) -> dict[str, Any]:
        return {"sender": self.sender, **self.proof.fields()}

    @classmethod
    def read(cls, fields: _Fields) -> "HandOver":
        return cls(fields.integer("sender", SENDER_LIMIT), fields.proof())

    @staticmethod
    def payload(sender: int) -> bytes:
        return str(sender).encode()


@dataclass(frozen=True)
class End(_Message):
    """The meeting ends; the conference service closes the room. Proof payload: empty."""

    KIND: ClassVar[str] = "end"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"timestamp", "proof"})
    proof: MeetingProof = field(repr=False)

    def fields(self) -> dict[str, Any]:
        return self.proof.fields()

    @classmethod
    def read(cls, fields: _Fields) -> "End":
        return cls(fields.proof())


@dataclass(frozen=True)
class Chat(_Message):
    """A chat message sealed under ``epoch``'s chat key by ``sender``
    (``veil.crypto.chat``: nonce || ciphertext || tag)."""

    KIND: ClassVar[str] = "chat"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"epoch", "sender", "sealed"})
    epoch: int
    sender: int
    sealed: bytes = field(repr=False)

    def fields(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "sender": self.sender, "sealed": b64encode(self.sealed)}

    @classmethod
    def read(cls, fields: _Fields) -> "Chat":
        return cls(
            fields.integer("epoch", EPOCH_LIMIT),
            fields.integer("sender", SENDER_LIMIT),
            fields.raw("sealed"),
        )


@dataclass(frozen=True)
class Alive(_Message):
    """The manager's heartbeat, every ``MeetingTimers.heartbeat`` seconds: the epoch it
    manages and its ``deputy``, the sender number of the participant that takes over
    if the manager stops (null while the manager is alone). Only an ``alive`` from the
    device that posted the key held counts. The deputy designation is coordination,
    not authority: a take-over is a key post, which needs a proof with the group key."""

    KIND: ClassVar[str] = "alive"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"epoch", "deputy"})
    epoch: int
    deputy: int | None

    def fields(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "deputy": self.deputy}

    @classmethod
    def read(cls, fields: _Fields) -> "Alive":
        return cls(
            fields.integer("epoch", EPOCH_LIMIT), fields.optional_integer("deputy", SENDER_LIMIT)
        )


BoardMessage = Union[Announce, Leave, KeyPost, HandOver, End, Chat, Alive]  # noqa: UP007
MESSAGES: Final[dict[str, type[BoardMessage]]] = {
    m.KIND: m for m in (Announce, Leave, KeyPost, HandOver, End, Chat, Alive)
}
KINDS: Final = frozenset(MESSAGES)


def parse(kind: str, body: bytes) -> BoardMessage:
    """The message of a post of ``kind``; ``BoardMessageError`` if the kind is unknown or
    the body malformed."""
    message_type = MESSAGES.get(kind)
    if message_type is None:
        raise BoardMessageError(f"unknown post kind {kind!r}")
    return message_type.parse(body)
