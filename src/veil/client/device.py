"""``Device``: one device of one user, the root of the SDK.

``Device.initialize`` follows the seed's SDK. On a device with a saved context it
loads it (sealed at rest, see ``veil.client.store``) and checks the device is still
active. On a new device it creates the user if needed, unlocks the escrowed user key
and registers the device, in one of three modes:

- ``"split-trust"`` (default): the escrow password is made from the key service's
  and the platform's shares, each fetched with the user's JWT; the user types nothing.
- ``"password"``: the escrow password is the user's own (``password`` callback).
- ``"approval"``: nothing a server holds opens the user key. A new device shows an
  approval payload (``show_approval``; short enough for a QR code) and waits until an
  existing device of the user approves it (``Device.approve_device``). The escrow
  password is derived from a PRE plaintext granted to the user as a document, so any
  device the user approved, and only such a device, can recover the user key.
"""

import asyncio
import hashlib
import json
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from veil.client.conference import (
    Board,
    ConferenceClient,
    MediaChannel,
    StateCallback,
    membership_path,
)
from veil.client.documents import Documents
from veil.client.errors import (
    ApprovalPending,
    DeviceRevoked,
    NotFound,
    ServiceError,
    WrongPassword,
)
from veil.client.groups import Groups
from veil.client.keyserver import DeviceSession, KeyServerClient, UserKeys, device_keys_body
from veil.client.pins import KeyPins
from veil.client.provenance import check_author, signed_origin
from veil.client.store import DeviceContext, DeviceStore, Mode
from veil.crypto.errors import DecryptionError
from veil.crypto.escrow import open_escrow, seal_escrow, split_trust_password
from veil.crypto.keys import Plaintext, PrivateKey, PublicKey
from veil.crypto.pre import EncryptedValue, VerifiedEncryptedValue, decrypt, encrypt
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    KEYSERVER_AUDIENCE,
    b64decode,
    b64encode,
    device_id_for,
    escrow_document_id,
)
from veil.protocol.ids import user_id_for

TokenSource = Callable[[str], Awaitable[str]]
"""``tokens(audience)`` returns a fresh JWT for the user from the platform's IdP, with
``aud`` = ``audience``. The SDK asks for the key service's and the conference service's
audiences separately, so neither service receives a token the other would accept."""
PasswordSource = Callable[[], Awaitable[str]]
ApprovalDisplay = Callable[[str], Awaitable[None]]

_APPROVAL_PREFIX = "veil-approve-v1"
_LIMITS = httpx.Limits(keepalive_expiry=2.0)
"""Idle connections are dropped before servers drop them (uvicorn: after 5 s), so a
signed request is never sent on a connection the server has just closed."""


def _http(base_url: str, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    """One service's HTTP client (``limits`` apply to httpx's own transport only)."""
    return httpx.AsyncClient(base_url=base_url, timeout=30, limits=_LIMITS, transport=transport)


def approval_payload(user_id: str, device_key: PublicKey, signing_key: VerifyingKey) -> str:
    """What a new device shows for approval: its user and public keys (~150 characters)."""
    return ":".join(
        (_APPROVAL_PREFIX, user_id, b64encode(bytes(device_key)), b64encode(bytes(signing_key)))
    )


def parse_approval(payload: str) -> tuple[str, PublicKey, VerifyingKey]:
    parts = payload.split(":")
    if len(parts) != 4 or parts[0] != _APPROVAL_PREFIX:
        raise ValueError("not a Veil device-approval payload")
    return parts[1], PublicKey.from_bytes(b64decode(parts[2])), VerifyingKey(b64decode(parts[3]))


class Device:
    """A registered device. Use ``await Device.initialize(...)``; close it when done."""

    def __init__(
        self,
        context: DeviceContext,
        *,
        keyserver: KeyServerClient,
        conference: ConferenceClient,
        tokens: TokenSource,
        store: DeviceStore,
        password: PasswordSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._context, self._store = context, store
        self.keyserver, self.conference = keyserver, conference
        self.tokens, self._password, self.clock = tokens, password, clock
        self.session = keyserver.device(context.device_id, context.signer)
        self.pins = KeyPins(context.pins)
        self._signers: dict[str, tuple[str, VerifyingKey]] = {}
        self.open_meetings: set[object] = set()
        """Meetings of this device not closed yet (keys rotate when the last one closes)."""
        self.groups = Groups(self)
        self.documents = Documents(self, self.groups)

    def __repr__(self) -> str:
        return f"Device(user_id={self.user_id!r}, device_id={self.device_id!r})"

    @property
    def user_id(self) -> str:
        return self._context.user_id

    @property
    def device_id(self) -> str:
        return self._context.device_id

    @property
    def mode(self) -> Mode:
        return self._context.mode

    @property
    def master_public_key(self) -> PublicKey:
        return self._context.master

    @property
    def signer(self) -> SigningKey:
        return self._context.signer

    # --- set-up --------------------------------------------------------------------------

    @classmethod
    async def initialize(
        cls,
        *,
        keyserver_url: str,
        conference_url: str,
        tokens: TokenSource,
        store: DeviceStore,
        mode: Mode = "split-trust",
        password: PasswordSource | None = None,
        show_approval: ApprovalDisplay | None = None,
        approval_timeout: float = 300.0,
        keyserver_audience: str = KEYSERVER_AUDIENCE,
        conference_audience: str = CONFERENCE_AUDIENCE,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        user_id_claim: str = "sub",
    ) -> "Device":
        """Load this device's saved context from ``store``, or register a new device
        (see the module's docstring for ``mode``).

        ``tokens(audience)`` returns a fresh JWT from the platform's IdP for each
        service's audience (``keyserver_audience``, ``conference_audience``: they must
        differ). ``transport``, if given, carries every HTTP request to both services
        (an ``httpx.AsyncBaseTransport``: a proxy, custom TLS, or
        ``httpx.ASGITransport`` to run the services' apps in-process in tests, routing
        by host); the services' WebSockets (board, media) do not use it. The device
        closes it when it closes. ``clock`` (seconds) stamps signed requests and posts.
        ``user_id_claim`` is the token claim that names the user, the one the services
        read (``VEIL_JWT_USER_ID_CLAIM``, default ``sub``): a new user's escrow is bound
        to the user id made from it (``veil.protocol.ids.user_id_for``), before the key
        service answers with that id.
        """
        if keyserver_audience == conference_audience:
            raise ValueError(
                "the key service and the conference service need distinct token audiences: "
                "with one, either could replay the user's token at the other and collect "
                "both split-trust shares"
            )
        if mode == "password" and password is None:
            raise ValueError("password mode needs a password callback")
        if mode == "approval" and show_approval is None:
            raise ValueError("approval mode needs a show_approval callback")
        keyserver = KeyServerClient(
            _http(keyserver_url, transport), audience=keyserver_audience, clock=clock
        )
        conference = ConferenceClient(
            conference_url, _http(conference_url, transport), audience=conference_audience
        )
        try:
            context = store.load()
            uncertified = False
            if context is None:
                context = await _register(
                    keyserver, conference, tokens, mode, password, show_approval,
                    approval_timeout, user_id_claim,
                )  # fmt: skip
                store.save(context)
            else:
                record = await keyserver.device_record(context.device_id)
                if not record.active:
                    raise DeviceRevoked(403, "device_revoked", "this device has been revoked")
                uncertified = record.certificate is None
            device = cls(
                context,
                keyserver=keyserver,
                conference=conference,
                tokens=tokens,
                store=store,
                password=password,
                clock=clock,
            )
            if uncertified:
                # Registered before device certificates: new keys, certified this time.
                await device.rotate_keys()
        except BaseException:
            await keyserver.http.aclose()
            await conference.http.aclose()
            raise
        return device

    async def close(self) -> None:
        await self.keyserver.http.aclose()
        await self.conference.http.aclose()

    async def __aenter__(self) -> "Device":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _save(self) -> None:
        self._store.save(self._context)

    def pin(self, entry: str, encoded: bytes, *, accept_changes: bool = False) -> None:
        """Check ``encoded`` keys against the pin ``entry`` and pin them (saved at once)."""
        if self.pins.check(entry, encoded, accept_changes=accept_changes):
            self._save()

    async def keyserver_token(self) -> str:
        """A fresh JWT for the key service (its audience only)."""
        return await self.tokens(self.keyserver.audience)

    async def conference_token(self) -> str:
        """A fresh JWT for the conference service (its audience only)."""
        return await self.tokens(self.conference.audience)

    def board(self, room_id: str, *, on_state: StateCallback | None = None) -> Board:
        """A room's board as this device sees it: its posts signed with this device's
        key, everyone's checked against their certified keys (``signer_of``). Not
        connected yet; ``on_state`` hears of its connection's ups and downs."""
        return self.conference.board(
            room_id, device_id=self.device_id, signer=self.signer,
            token=self.conference_token, lookup=self.signer_of, clock=self.clock,
            on_state=on_state,
        )  # fmt: skip

    async def media(
        self, room_id: str, *, sender: int, on_state: StateCallback | None = None
    ) -> MediaChannel:
        """This device's media relay connection for a room, as ``sender`` (the sender
        number it announced on the room's board). Each connection carries a fresh
        proof, signed by this device for the key service, that its user is in the
        meeting's group; raises the ``ServiceError`` that refused the first one."""

        async def membership() -> dict[str, str]:
            return self.session.signed_headers("GET", membership_path(room_id))

        return await self.conference.media(
            room_id, device_id=self.device_id, signer=self.signer,
            token=self.conference_token, sender=sender, membership=membership,
            on_state=on_state,
        )  # fmt: skip

    # --- the user key ----------------------------------------------------------------------

    async def user_key(self) -> PrivateKey:
        """The user's private key (to approve or rotate devices): kept on the device in
        approval mode, unlocked from the escrow otherwise."""
        if self._context.user_key is not None:
            return self._context.user_key
        _, _, escrow = await self.keyserver.escrow(await self.keyserver_token())
        secret = await _escrow_password(
            self.keyserver, self.conference, self.tokens, self.mode, self._password
        )
        return _open_escrow(escrow, secret, self.user_id)

    # --- devices --------------------------------------------------------------------------

    async def devices(self) -> list[dict[str, Any]]:
        return await self.session.devices()

    async def revoke_device(self, device_id: str) -> None:
        """Revoke one of this user's devices (a lost one): its transform key is deleted,
        so it can decrypt nothing new and its requests fail."""
        await self.session.revoke_device(device_id)

    async def approve_device(self, payload: str) -> str:
        """Approve a new device of this user from its approval payload; returns its id."""
        user_id, device_key, signing_key = parse_approval(payload)
        if user_id != self.user_id:
            raise ValueError("this approval payload is for another user's device")
        return await self.keyserver.add_device(
            await self.keyserver_token(),
            user_id=self.user_id,
            user_key=await self.user_key(),
            master=self.master_public_key,
            device_key=device_key,
            signer=self.signer,
            device_signing_key=signing_key,
        )

    async def rotate_keys(self) -> None:
        """Replace this device's PRE and signing keys (forward secrecy after a meeting:
        a later theft of the device opens nothing recorded before the rotation)."""
        user_key = await self.user_key()
        device_key, signer = PrivateKey.generate(), SigningKey.generate()
        token = await self.keyserver_token()
        body = device_keys_body(
            token,
            user_id=self.user_id,
            device_id=self.device_id,
            user_key=user_key,
            master=self.master_public_key,
            device_key=device_key.public_key,
            signer=signer,
            now=int(self.clock()),
        )
        await self.session.rotate_keys(token, body)
        self._context.device_key, self._context.signer = device_key, signer
        self.session = self.keyserver.device(self.device_id, signer)
        self._save()

    # --- keys of others ---------------------------------------------------------------------

    async def public_keys(
        self, user_ids: Sequence[str], *, accept_changes: bool = False
    ) -> dict[str, PublicKey]:
        """Master public keys, checked against (and added to) this device's pins.
        Raises ``PinnedKeyChanged`` if one differs from its pin; ``NotFound`` if a user
        has no keys."""
        found = await self.user_keys(user_ids, accept_changes=accept_changes)
        return {user_id: keys.master for user_id, keys in found.items()}

    async def user_keys(
        self, user_ids: Sequence[str], *, accept_changes: bool = False
    ) -> dict[str, UserKeys]:
        """Master and identity keys, checked against (and added to) the pins."""
        found = await self.session.public_keys(sorted(set(user_ids)))
        missing = set(user_ids) - set(found)
        if missing:
            raise NotFound(404, "not_found", f"no keys for {sorted(missing)}")
        changed = False
        try:
            for user_id, keys in found.items():
                # A pin from before identity keys holds the master key alone: same user.
                legacy = self._context.pins.get(user_id) == bytes(keys.master)
                changed |= self.pins.check(
                    user_id, keys.pin(), accept_changes=accept_changes or legacy
                )
        finally:
            if changed:  # keep the pins made before a changed key was found
                self._save()
        return found

    async def safety_number(self, user_id: str) -> str:
        """Thirty digits this user and ``user_id`` see alike if each device holds the
        other's genuine keys: compared out of band (read aloud, a QR code), they catch a
        key service that substituted keys before a device first saw (and pinned) them."""
        keys = await self.user_keys([self.user_id, user_id])
        parts = sorted((u.encode(), keys[u].pin()) for u in {self.user_id, user_id})
        digest = hashlib.sha256(
            b"veil/v1 safety number" + b"".join(len(u).to_bytes(2, "big") + u + p for u, p in parts)
        ).digest()
        digits = f"{int.from_bytes(digest[:13], 'big') % 10**30:030d}"
        return " ".join(digits[i : i + 5] for i in range(0, 30, 5))

    async def signer_of(self, device_id: str, fresh: bool = False) -> tuple[str, VerifyingKey]:
        """(user id, signing key) of an active device, as the key service publishes it
        *and its user's pinned identity key certified*: ``UncertifiedDevice`` otherwise,
        ``DeviceRevoked`` for a revoked one, ``PinnedKeyChanged`` if the user's keys
        changed. Cached; ``fresh`` asks again, for a device that may have rotated its
        keys."""
        cached = None if fresh else self._signers.get(device_id)
        if cached is None:
            record = await self.keyserver.device_record(device_id)
            if not record.active:  # a revoked device's keys are presumed lost
                raise DeviceRevoked(403, "device_revoked", f"device {device_id!r} is revoked")
            keys = (await self.user_keys([record.user_id]))[record.user_id]
            record.check_certificate(keys.identity)
            cached = self._signers[device_id] = (record.user_id, record.signing_key)
        return cached

    # --- decryption -----------------------------------------------------------------------

    def decrypt(
        self, value: VerifiedEncryptedValue, *, origin: EncryptedValue | None = None
    ) -> Plaintext:
        """Decrypt a value transformed to this device."""
        return decrypt(value, self._context.device_key, origin=origin)


async def _escrow_password(
    keyserver: KeyServerClient,
    conference: ConferenceClient,
    tokens: TokenSource,
    mode: Mode,
    password: PasswordSource | None,
) -> bytes:
    if mode == "split-trust":
        keyserver_token, conference_token = await asyncio.gather(
            tokens(keyserver.audience), tokens(conference.audience)
        )
        shares = await asyncio.gather(
            keyserver.share(keyserver_token), conference.share(conference_token)
        )
        return split_trust_password(*shares)
    if mode == "password":
        assert password is not None
        text = unicodedata.normalize("NFC", await password())
        if not text:
            raise WrongPassword("the password must not be empty")
        return text.encode()
    raise ApprovalPending("in approval mode the user key comes from an approved device")


def _open_escrow(escrow: bytes, secret: bytes, user_id: str) -> PrivateKey:
    try:
        return PrivateKey.from_secret_bytes(open_escrow(escrow, secret, context=user_id.encode()))
    except DecryptionError:
        raise WrongPassword("the escrow password did not open the user key") from None


async def _register(
    keyserver: KeyServerClient,
    conference: ConferenceClient,
    tokens: TokenSource,
    mode: Mode,
    password: PasswordSource | None,
    show_approval: ApprovalDisplay | None,
    approval_timeout: float,
    user_id_claim: str,
) -> DeviceContext:
    """A new device: create the user if needed, get the user key, register the device."""
    device_key, signer = PrivateKey.generate(), SigningKey.generate()
    token = await tokens(keyserver.audience)
    try:
        user_id, master, escrow = await keyserver.escrow(token)
    except NotFound:
        return await _new_user(
            keyserver, conference, token, tokens, mode, password, device_key, signer,
            user_id_claim,
        )  # fmt: skip
    if mode == "approval":
        assert show_approval is not None
        device_id = device_id_for(bytes(signer.verifying_key))
        await show_approval(approval_payload(user_id, device_key.public_key, signer.verifying_key))
        await _wait_for_approval(
            keyserver, device_id, approval_timeout, user_id=user_id,
            device_key=device_key.public_key, signing_key=signer.verifying_key,
        )  # fmt: skip
        user_key: PrivateKey = await _user_key_from_grant(
            keyserver.device(device_id, signer), device_key, escrow, user_id
        )
    else:
        secret = await _escrow_password(keyserver, conference, tokens, mode, password)
        user_key = _open_escrow(escrow, secret, user_id)
        device_id = await keyserver.add_device(
            await tokens(keyserver.audience), user_id=user_id, user_key=user_key,
            master=master, device_key=device_key.public_key, signer=signer,
        )  # fmt: skip
    return DeviceContext(
        user_id=user_id,
        device_id=device_id,
        mode=mode,
        device_key=device_key,
        signer=signer,
        master=master,
        user_key=user_key if mode == "approval" else None,
        pins={user_id: UserKeys(master, user_key.public_key).pin()},  # its own, known
    )


async def _user_key_from_grant(
    session: DeviceSession, device_key: PrivateKey, escrow: bytes, user_id: str
) -> PrivateKey:
    """Approval mode: the user key, from the escrow password granted to the user. The
    grant must come from a device of the user; its certificate is checked against the
    identity key of the user key it opens, the only one this new device can trust
    (``UntrustedKey`` otherwise, and the key is dropped)."""
    delivery = await session.document_key(escrow_document_id(user_id))
    what = "the escrow password's grant"
    origin, author = signed_origin(delivery, authors=(user_id,), what=what)
    plaintext = decrypt(delivery.transformed, device_key, origin=origin)
    user_key = _open_escrow(escrow, plaintext.derive_key("escrow password"), user_id)
    check_author(author, user_key.public_key, what=what)
    return user_key


async def _new_user(
    keyserver: KeyServerClient,
    conference: ConferenceClient,
    token: str,
    tokens: TokenSource,
    mode: Mode,
    password: PasswordSource | None,
    device_key: PrivateKey,
    signer: SigningKey,
    user_id_claim: str,
) -> DeviceContext:
    # The escrow binds the user id, so learn it first: from the token, as the key
    # service will (a token without the claim fails here, before anything is created).
    user_id = _user_id_of(token, user_id_claim)
    user_key = PrivateKey.generate()
    recovery = Plaintext.generate()
    if mode == "approval":
        secret = recovery.derive_key("escrow password")
    else:
        secret = await _escrow_password(keyserver, conference, tokens, mode, password)
    escrow = seal_escrow(user_key.to_secret_bytes(), secret, context=user_id.encode())
    created_id, master = await keyserver.create_user(token, user_key.public_key, escrow)
    if created_id != user_id:
        raise ValueError(
            f"the key service named the new user {created_id!r}, but its escrow was bound "
            f"to {user_id!r}, the id the token's {user_id_claim!r} claim makes: give "
            "Device.initialize the user_id_claim the services read (VEIL_JWT_USER_ID_CLAIM)"
        )
    device_id = await keyserver.add_device(
        await tokens(keyserver.audience), user_id=created_id, user_key=user_key,
        master=master, device_key=device_key.public_key, signer=signer,
    )  # fmt: skip
    if mode == "approval":
        grant = {
            "grantee_kind": "user",
            "grantee_id": created_id,
            "encrypted_key": b64encode(bytes(encrypt(recovery, master, signer))),
        }
        session = keyserver.device(device_id, signer)
        await session.create_document(escrow_document_id(created_id), "other", [grant])
    return DeviceContext(
        user_id=created_id,
        device_id=device_id,
        mode=mode,
        device_key=device_key,
        signer=signer,
        master=master,
        user_key=user_key if mode == "approval" else None,
        pins={created_id: UserKeys(master, user_key.public_key).pin()},  # its own, known
    )


def _user_id_of(token: str, claim: str = "sub") -> str:
    """The user id a JWT's ``claim`` makes, read without verifying (the key service
    verifies it), mapped as the services map it (``veil.protocol.ids.user_id_for``:
    ``auth0|123`` is ``auth0~7C123``). ``ValueError`` says what is missing."""
    try:
        payload = json.loads(b64decode(token.split(".")[1].rstrip("=")))
    except (IndexError, ValueError, TypeError) as exc:
        raise ValueError("the token is not a JWT") from exc
    if not isinstance(payload, dict) or claim not in payload:
        raise ValueError(f"the token has no {claim!r} claim")
    value = payload[claim]
    if not isinstance(value, str) or not value:
        raise ValueError(f"the token's {claim!r} claim is not a non-empty string")
    return user_id_for(value)


async def _wait_for_approval(
    keyserver: KeyServerClient,
    device_id: str,
    timeout: float,
    *,
    user_id: str,
    device_key: PublicKey,
    signing_key: VerifyingKey,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            record = await keyserver.device_record(device_id)
            mine = (record.user_id, record.public_key, record.signing_key) == (
                user_id, device_key, signing_key,
            )  # fmt: skip
            if not mine:
                raise ApprovalPending("a device of this id was registered with other keys")
            if record.active:
                return
            raise DeviceRevoked(403, "device_revoked", "this device was revoked before use")
        except NotFound:
            pass
        except ServiceError:
            raise
        if time.monotonic() >= deadline:
            raise ApprovalPending("no existing device approved this device in time")
        await asyncio.sleep(0.25)
