"""Where a delivered key comes from, checked before it is decrypted.

A value the key service transformed is signed by the key service's transform signer,
which says nothing about who encrypted it (``veil.crypto.pre``): the key service holds
the transform keys, so it could encrypt a plaintext of its own, transform it and sign
the result. So a device uses a group's private key or a document's key only if

1. the transformed value is signed by the key service's transform signer (checked as
   it is read: ``KeyServerClient.transformed``);
2. it descends from the level-0 ciphertext the key service stored (its ``origin``);
3. the origin is signed by the signing key of the device the key service names as
   its author, and the author's user's pinned identity key certified that key (a key
   since rotated away, or of a device since revoked, still counts: a durable artifact
   outlives its author's keys);
4. that user is one who may have made it (an admin of the group; the document's
   owner).

Each failure raises ``UntrustedKey`` before anything is decrypted.
"""

from collections.abc import Awaitable, Callable, Collection

from veil.client.errors import UncertifiedDevice, UntrustedKey
from veil.client.keyserver import DeviceRecord, KeyDelivery
from veil.client.principal import Principal
from veil.crypto.errors import InvalidSignature
from veil.crypto.keys import PublicKey
from veil.crypto.pre import VerifiedEncryptedValue, descends_from

IdentityLookup = Callable[[str], Awaitable[PublicKey]]
"""``identity(user_id)``: the user's identity key, as this device pinned it."""


def pinned_identities(device: Principal) -> IdentityLookup:
    """Users' identity keys as ``device`` pins them (``PinnedKeyChanged`` on a change)."""

    async def identity(user_id: str) -> PublicKey:
        return (await device.user_keys([user_id]))[user_id].identity

    return identity


def signed_origin(
    delivery: KeyDelivery, *, authors: Collection[str], what: str
) -> tuple[VerifiedEncryptedValue, DeviceRecord]:
    """Checks 2 to 4 but the certificate: the origin, verified against its author's
    signing key, and the author, whose certificate the caller must still check
    (``check_author``). ``what`` names the key in errors (no secret: an id)."""
    author = delivery.author
    if author is None:
        raise UntrustedKey(f"the key service names no certified author of {what}")
    if author.user_id not in authors:
        raise UntrustedKey(f"{what} was made by {author.user_id!r}, who may not make it")
    if delivery.origin.level != 0:
        raise UntrustedKey(f"the origin of {what} is not a level-0 ciphertext")
    try:
        origin = delivery.origin.verify(signer=author.signing_key)
    except InvalidSignature:
        raise UntrustedKey(f"the origin of {what} is not signed by its author") from None
    if not descends_from(delivery.transformed, origin):
        raise UntrustedKey(f"{what} does not descend from its origin")
    return origin, author


def check_author(author: DeviceRecord, identity: PublicKey, *, what: str) -> None:
    """``UntrustedKey`` unless ``identity`` (the author's user's pinned identity key)
    certified the author device's keys."""
    try:
        author.check_certificate(identity)
    except UncertifiedDevice:
        raise UntrustedKey(f"the author of {what} is a device its user did not certify") from None


async def vouched_origin(
    delivery: KeyDelivery, *, authors: Collection[str], identity: IdentityLookup, what: str
) -> VerifiedEncryptedValue:
    """The origin of a delivered key, once every check above passed: decrypt the
    transformed value with ``origin=`` it."""
    origin, author = signed_origin(delivery, authors=authors, what=what)
    check_author(author, await identity(author.user_id), what=what)
    return origin
