"""Durable artifacts: bytes or streams encrypted once, with a fresh DEK, to users and
groups. The DEK is a PRE plaintext; the key service keeps it encrypted per grantee
and transforms it for a device that a grant reaches. The encrypted bytes themselves
are the application's to store (object storage, the platform's file service...).

Helpers cover the seed's artifact kinds: chat transcripts, recordings, shared files,
and abuse reports (to a safety-team group only: not even the reporter keeps access).
"""

import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from veil.client.errors import UntrustedKey
from veil.client.groups import Groups
from veil.client.principal import Principal
from veil.client.provenance import pinned_identities, vouched_origin
from veil.crypto.aead import open_document, open_stream, seal_document, seal_stream
from veil.crypto.errors import DecodeError, DecryptionError
from veil.crypto.keys import Plaintext, PublicKey
from veil.crypto.pre import encrypt
from veil.protocol import b64encode

Kind = Literal["transcript", "recording", "file", "abuse_report", "agenda", "other"]


@dataclass(frozen=True)
class EncryptedDocument:
    document_id: str
    kind: Kind
    envelope: bytes = field(repr=False)


def _dek(plaintext: Plaintext, document_id: str) -> bytes:
    return plaintext.derive_key("document", context=document_id.encode())


def _opened(segments: Iterator[bytes]) -> Iterator[bytes]:
    """A stream's plaintext; a malformed (altered) header fails as ``DecryptionError``."""
    try:
        yield from segments
    except DecodeError:
        raise DecryptionError from None


class Documents:
    """A device's documents (``device.documents``); ``groups`` gives groups' pinned keys."""

    def __init__(self, device: Principal, groups: Groups) -> None:
        self._device, self._groups = device, groups

    async def _grants(
        self, plaintext: Plaintext, users: Sequence[str], groups: Sequence[str]
    ) -> list[dict[str, str]]:
        device = self._device
        recipients: list[tuple[str, str, PublicKey]] = []
        if users:
            keys = await device.public_keys(users)
            recipients += [("user", u, keys[u]) for u in users]
        for group_id in groups:
            recipients.append(("group", group_id, await self._groups.public_key(group_id)))
        return [
            {
                "grantee_kind": kind,
                "grantee_id": grantee,
                "encrypted_key": b64encode(bytes(encrypt(plaintext, key, device.signer))),
            }
            for kind, grantee, key in recipients
        ]

    async def _create(
        self,
        kind: Kind,
        users: Sequence[str],
        groups: Sequence[str],
        document_id: str | None,
        keep_access: bool,
    ) -> tuple[str, Plaintext]:
        document_id = document_id or f"{kind}-{secrets.token_hex(12)}"
        users = list(dict.fromkeys([*users, *([self._device.user_id] if keep_access else [])]))
        if not users and not groups:
            raise ValueError("a document needs at least one user or group to read it")
        plaintext = Plaintext.generate()
        grants = await self._grants(plaintext, users, groups)
        await self._device.session.create_document(document_id, kind, grants)
        return document_id, plaintext

    async def encrypt(
        self,
        data: bytes,
        *,
        kind: Kind = "file",
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        document_id: str | None = None,
        keep_access: bool = True,
    ) -> EncryptedDocument:
        """Encrypt ``data`` to the users and groups (and, by default, to this user)."""
        document_id, plaintext = await self._create(kind, users, groups, document_id, keep_access)
        return EncryptedDocument(
            document_id, kind, seal_document(_dek(plaintext, document_id), document_id, data)
        )

    async def encrypt_stream(
        self,
        chunks: Iterable[bytes],
        *,
        kind: Kind = "recording",
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        document_id: str | None = None,
        keep_access: bool = True,
    ) -> tuple[str, Iterator[bytes]]:
        """Encrypt a stream (a recording): returns the id and the sealed segments."""
        document_id, plaintext = await self._create(kind, users, groups, document_id, keep_access)
        return document_id, seal_stream(_dek(plaintext, document_id), document_id, chunks)

    async def _plaintext(self, document_id: str, author: str | None = None) -> Plaintext:
        """The document's key, once ``veil.client.provenance`` has checked that a
        certified device of its owner (of ``author``, if given) encrypted it."""
        device = self._device
        delivery = await device.session.document_key(document_id)
        what = f"document {document_id!r}'s key"
        if delivery.owner is None:
            raise UntrustedKey(f"the key service names no owner of {what}")
        if author is not None and delivery.owner != author:
            raise UntrustedKey(f"{what} is {delivery.owner!r}'s, not {author!r}'s")
        origin = await vouched_origin(
            delivery, authors=(delivery.owner,), identity=pinned_identities(device), what=what
        )
        return device.decrypt(delivery.transformed, origin=origin)

    async def decrypt(self, document: EncryptedDocument, *, author: str | None = None) -> bytes:
        """``NotMember`` if no grant reaches this device; ``DecryptionError`` if altered;
        ``UntrustedKey`` if its key was not encrypted by a certified device of the
        document's owner (or, given ``author``, if the owner is someone else)."""
        plaintext = await self._plaintext(document.document_id, author)
        try:
            return open_document(
                _dek(plaintext, document.document_id), document.document_id, document.envelope
            )
        except DecodeError:  # an altered version, kind or length byte
            raise DecryptionError from None

    async def decrypt_stream(
        self, document_id: str, segments: Iterable[bytes], *, author: str | None = None
    ) -> Iterator[bytes]:
        """A stream's plaintext chunks, as ``decrypt`` checks its key."""
        plaintext = await self._plaintext(document_id, author)
        return _opened(open_stream(_dek(plaintext, document_id), document_id, segments))

    async def grant(
        self, document_id: str, *, users: Sequence[str] = (), groups: Sequence[str] = ()
    ) -> None:
        """Give more users or groups access (the owner must be able to read it)."""
        plaintext = await self._plaintext(document_id)
        for grant in await self._grants(plaintext, users, groups):
            await self._device.session.grant(document_id, grant)

    async def revoke(
        self, document_id: str, *, users: Sequence[str] = (), groups: Sequence[str] = ()
    ) -> None:
        for user_id in users:
            await self._device.session.revoke_grant(document_id, "user", user_id)
        for group_id in groups:
            await self._device.session.revoke_grant(document_id, "group", group_id)

    # --- the seed's artifact kinds ----------------------------------------------------

    async def save_transcript(
        self, transcript: bytes, *, users: Sequence[str] = (), groups: Sequence[str] = ()
    ) -> EncryptedDocument:
        return await self.encrypt(transcript, kind="transcript", users=users, groups=groups)

    async def save_recording(
        self, chunks: Iterable[bytes], *, users: Sequence[str] = (), groups: Sequence[str] = ()
    ) -> tuple[str, Iterator[bytes]]:
        return await self.encrypt_stream(chunks, kind="recording", users=users, groups=groups)

    async def share_file(
        self, data: bytes, *, users: Sequence[str] = (), groups: Sequence[str] = ()
    ) -> EncryptedDocument:
        return await self.encrypt(data, kind="file", users=users, groups=groups)

    async def report_abuse(self, evidence: bytes, *, safety_team: str) -> EncryptedDocument:
        """Encrypt evidence to the safety team's group only (the reporter keeps no access)."""
        return await self.encrypt(
            evidence, kind="abuse_report", groups=[safety_team], keep_access=False
        )
