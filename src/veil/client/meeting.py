"""``Meeting``: the seed's meeting flows over the key service and the conference board.

- **Start** (``Meeting.start``): the first user creates the meeting group (id = the
  meeting id; the creator is its admin and a member), adds the invitees who already
  have keys, makes the named host an admin (now, or when the host first joins),
  draws the epoch-0 key, encrypts it once to the group and posts it.
- **Invitation** (``meeting.invitation``): the meeting id and the group's public key,
  passed to joiners by the platform (``veil.client.invitation``): the key service
  alone cannot substitute a group key, so it cannot plant a session key.
- **Join** (``Meeting.join``): announce on the board; the manager (the device that
  posted the newest key) admits invitees by adding them to the group; the joiner asks
  the key service to transform the newest key post, retrying after 1, 5, 10 and 10 s,
  then is admitted or gets ``NotAdmitted``.
- **Leave / rekey**: the manager removes a leaver, waits ``debounce`` (10 s) for
  more leavers, then posts the next epoch's key. It also rekeys when ``rekey_interval``
  (5 min) passes without one. A late host, once admitted, takes over management and
  rotates the key.
- **End**: the manager posts ``end`` and deletes the group; every client drops its keys.

Every key post carries the members it was made for (and the invitees not in the group
yet, so a host who takes over admits them) and is signed by its poster; a
client accepts a key only with a proof made with the group's private key (which only
admins hold) over the encrypted key, only if the ciphertext is the one the posting
device signed (``decrypt(origin=...)``), and shows a security code derived from the
epoch's key and that member list. An ``end`` carries such a proof too; the conference
service checks it before it closes the room.
"""

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.client.conference import Board, MediaChannel, Post
from veil.client.errors import (
    InvalidRequest,
    MeetingEnded,
    NotAdmitted,
    NotMember,
    ServiceError,
    UntrustedInvitation,
    UntrustedPost,
    VeilError,
)
from veil.client.invitation import Invitation
from veil.client.media import Frame, MeetingMedia
from veil.crypto import schedule
from veil.crypto.errors import AuthenticationError, DecodeError, InvalidSignature
from veil.crypto.keys import Plaintext, PublicKey
from veil.crypto.pre import EncryptedValue, encrypt
from veil.protocol import MediaKind, MeetingProof, b64decode, b64encode

if TYPE_CHECKING:
    from veil.client.device import Device
    from veil.client.documents import EncryptedDocument


class Clock(Protocol):
    """Where a meeting's timers read the time and wait (injectable for tests)."""

    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class MeetingTimers:
    """The seed's defaults; every value can be changed (the demo shortens them)."""

    debounce: float = 10.0
    rekey_interval: float = 300.0
    join_retries: tuple[float, ...] = (1.0, 5.0, 10.0, 10.0)
    epoch_grace: float = 5.0
    """How long a receiver keeps the previous epoch's keys after a rekey."""


@dataclass(frozen=True)
class ChatMessage:
    user_id: str
    sender: int
    epoch: int
    text: str = field(repr=False)


_MALFORMED = (AuthenticationError, DecodeError, ValueError, KeyError, TypeError, RecursionError)
"""What a post that is not well formed raises while it is read (anyone in the room can
post): it is recorded in ``errors`` and skipped, never fatal to the board loop."""

Admit = Callable[[str], Awaitable[bool]]
"""Asked by the manager when someone not invited knocks: admit this user?"""


def security_code(session_key: bytes, epoch: int, members: Sequence[str]) -> str:
    """Ten digits every member sees alike for an epoch: from its key and member list."""
    roster = json.dumps(sorted(members)).encode()
    digest = hashlib.sha256(
        b"veil/v1 security code" + session_key + epoch.to_bytes(8, "big") + roster
    ).digest()
    number = int.from_bytes(digest[:8], "big") % 10**10
    return f"{number:010d}"[:5] + " " + f"{number:010d}"[5:]


class Meeting:
    def __init__(
        self,
        device: "Device",
        meeting_id: str,
        group_key: PublicKey,
        *,
        timers: MeetingTimers,
        clock: Clock,
        admit: Admit | None,
        invitees: Sequence[str] = (),
        host: str | None = None,
    ) -> None:
        self.device, self.meeting_id, self.timers, self.clock = device, meeting_id, timers, clock
        self.invitation = Invitation(meeting_id, group_key)
        """What joiners need (``str()`` of it is the text form); the group key in it is
        what every proof on this meeting's board is checked against."""
        self._admit, self.invitees, self.host = admit, set(invitees), host
        self.board: Board = device.board(meeting_id)
        self.media_channel: MediaChannel | None = None
        self.media: MeetingMedia | None = None
        self.sender = 0
        self.epoch: int | None = None
        self.members: tuple[str, ...] = ()
        self.security_code = ""
        self.participants: dict[int, str] = {}  # sender number -> user id
        self.chat: list[ChatMessage] = []
        self.rekeys = 0
        self.ended = asyncio.Event()
        self.left = False
        self.removed = False
        self._admitted = False
        self._session_keys: dict[int, bytes] = {}
        self._newest_key: Post | None = None
        self._key_posts: list[Post] = []  # key posts seen while waiting for admission
        self._manager: str | None = None  # device id of the newest key's poster
        self._epoch_seq = 0  # board seq of the installed key's post (the first of its epoch)
        self._taking_over = False  # until this device's take-over key post is confirmed
        self._epoch_signal = asyncio.Event()
        self._last_rekey = 0.0
        self._rekey_pending: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.errors: list[BaseException] = []
        self._early: list[Frame] = []  # frames that waited for this epoch's key

    def __repr__(self) -> str:
        return f"Meeting({self.meeting_id!r}, epoch={self.epoch}, sender={self.sender})"

    @property
    def managing(self) -> bool:
        return self._manager == self.device.device_id

    # --- start and join ---------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        device: "Device",
        meeting_id: str | None = None,
        *,
        invitees: Sequence[str] = (),
        host: str | None = None,
        admit: Admit | None = None,
        timers: MeetingTimers = MeetingTimers(),
        clock: Clock | None = None,
    ) -> "Meeting":
        """Start a meeting as its first user (and manager until a late host takes over).
        Send ``meeting.invitation`` to the people who will join."""
        meeting_id = meeting_id or f"meeting-{secrets.token_hex(12)}"
        host = host or device.user_id
        invited = sorted({*invitees, host})
        known = set(await device.session.public_keys(invited))
        await device.groups.create(
            meeting_id, members=sorted((known - {device.user_id}) | {device.user_id})
        )
        group_key = (await device.groups.key(meeting_id)).public_key
        meeting = cls(
            device, meeting_id, group_key, timers=timers, clock=clock or SystemClock(),
            admit=admit, invitees=invited, host=host,
        )  # fmt: skip
        if host != device.user_id and host in known:
            await device.groups.add_admins(meeting_id, [host])
        meeting._admitted = True
        await meeting._open()
        await meeting._rekey()
        meeting._spawn(meeting._board_loop())
        meeting._spawn(meeting._ratchet())
        return meeting

    @classmethod
    async def join(
        cls,
        device: "Device",
        invitation: Invitation | str,
        *,
        admit: Admit | None = None,
        timers: MeetingTimers = MeetingTimers(),
        clock: Clock | None = None,
    ) -> "Meeting":
        """Announce, wait to be admitted, and fetch the key; ``NotAdmitted`` otherwise.
        ``invitation`` is the starter's ``meeting.invitation`` (or its text form)."""
        if isinstance(invitation, str):
            invitation = Invitation.parse(invitation)
        # The key travelled through the platform; the key service must hold the same
        # one, so neither alone can hand this device a group key of its own.
        # (Re-pinned as served: a meeting id may be reused by a later meeting.)
        served = await device.groups.public_key(invitation.meeting_id, accept_changes=True)
        if served != invitation.group_key:
            raise UntrustedInvitation(
                "the invitation's group key is not the one the key service holds"
            )
        meeting = cls(
            device, invitation.meeting_id, invitation.group_key, timers=timers,
            clock=clock or SystemClock(), admit=admit,
        )  # fmt: skip
        await meeting._open()
        meeting._spawn(meeting._board_loop())
        try:
            await meeting._wait_for_admission()
            if meeting.host == device.user_id and not meeting.managing:
                await meeting._take_over()
        except BaseException:
            await meeting.close(rotate_device_keys=False)
            raise
        meeting._spawn(meeting._ratchet())
        return meeting

    async def _open(self) -> None:
        self.device.open_meetings.add(self)
        await self.board.connect(since=0)
        # Each join draws its own sender number (44 random bits) and announces it, signed:
        # the board's sequence numbers are the service's and must not pick SFrame keys,
        # or a dishonest service could make two senders share a key and nonces.
        self.sender = secrets.randbelow(schedule.SENDER_LIMIT)
        await self.board.post("announce", json.dumps({"sender": self.sender}).encode())
        self.media = MeetingMedia(
            self.meeting_id, sender=self.sender, grace=self.timers.epoch_grace,
            clock=self.clock.time,
        )  # fmt: skip
        self.media_channel = await self.device.media(self.meeting_id)

    async def _wait_for_admission(self) -> None:
        for delay in (0.0, *self.timers.join_retries):
            await self.clock.sleep(delay)
            if self.ended.is_set():
                raise MeetingEnded("the meeting ended before this device was admitted")
            # Newest first; a post that is not to be trusted (anyone may post on the
            # board) is set aside, so it cannot keep this device out.
            for post in reversed(list(self._key_posts)):
                try:
                    await self._accept_key(post)
                except NotMember:
                    break
                except (UntrustedPost, InvalidRequest, *_MALFORMED) as exc:
                    self.errors.append(exc)
                    self._key_posts = [p for p in self._key_posts if p is not post]
                    continue
                self._admitted = True
                # Key posts that arrived while this one was being transformed: take the
                # newer ones now (``_accept_key`` skips what is not newer).
                waiting, self._key_posts = self._key_posts, []
                for later in waiting:
                    with contextlib.suppress(UntrustedPost, InvalidRequest, *_MALFORMED):
                        await self._accept_key(later)
                return
        raise NotAdmitted(f"not admitted to {self.meeting_id!r}")

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # surfaced to the application, never swallowed
                self.errors.append(exc)

        self._tasks.append(asyncio.create_task(guarded()))

    # --- keys ---------------------------------------------------------------------------

    async def _rekey(self) -> None:
        """Draw the next epoch's key, encrypt it once to the group, post it."""
        async with self._lock:
            epoch = 0 if self.epoch is None else self.epoch + 1
            group = await self.device.groups.get(self.meeting_id)
            members = sorted(set(group.members))
            plaintext = Plaintext.generate()
            encrypted = bytes(encrypt(plaintext, self.invitation.group_key, self.device.signer))
            body = {
                "epoch": epoch, "encrypted_key": b64encode(encrypted),
                **await self._proof("key", encrypted),
                "members": members, "host": self.host,
                # Invitees not yet in the group, so a manager who takes over admits them.
                "invitees": sorted(self.invitees - set(members)),
            }  # fmt: skip
            seq = await self.board.post("key", json.dumps(body).encode())
            # Only once the board holds the key post: a failed post changes nothing here.
            self._install(epoch, plaintext, members)
            self._manager, self._epoch_seq = self.device.device_id, seq
            self._last_rekey = self.clock.time()

    async def _proof(self, action: str, payload: bytes = b"") -> dict[str, object]:
        """A proof with the group's private key (only admins hold it) over this post."""
        group_key = await self.device.groups.key(self.meeting_id)
        if group_key.public_key != self.invitation.group_key:
            # The key service handed this admin a group key other than the invitation's.
            raise UntrustedPost("the key service's group key is not the invitation's")
        proof = MeetingProof.make(
            action, self.meeting_id, self.device.user_id, int(self.device.clock()), group_key,
            payload,
        )  # fmt: skip
        return proof.fields()

    def _check_proof(self, post: Post, body: object, action: str, payload: bytes = b"") -> None:
        """``UntrustedPost`` unless the post carries a proof made with the group key of
        the invitation."""
        try:
            proof = MeetingProof.read(body)
            proof.verify(action, self.meeting_id, post.user_id, self.invitation.group_key, payload)
        except (ValueError, InvalidSignature):
            raise UntrustedPost(f"a {action} post without a proof by a meeting admin") from None

    def _install(self, epoch: int, plaintext: Plaintext, members: Sequence[str]) -> None:
        session_key = schedule.session_key(plaintext, meeting_id=self.meeting_id, epoch=epoch)
        self._session_keys = {e: k for e, k in self._session_keys.items() if e >= epoch - 1}
        self._session_keys[epoch] = session_key
        assert self.media is not None
        self._early.extend(self.media.install(epoch, session_key))
        if self.epoch is not None and epoch > self.epoch:
            self.rekeys += 1
        self.epoch, self.members = epoch, tuple(members)
        self.security_code = security_code(session_key, epoch, members)
        self._signal()

    def _signal(self) -> None:
        self._epoch_signal.set()
        self._epoch_signal = asyncio.Event()

    async def _accept_key(self, post: Post) -> None:
        """Transform, check and install a key post. ``NotMember`` if not (or no longer) in
        the group; a post from a non-admin or not matching its signature is ignored."""
        body = json.loads(post.body)
        epoch = int(body["epoch"])
        if not self._supersedes(epoch, post.seq):
            return
        encrypted = b64decode(body["encrypted_key"])
        # Checked before any transform is asked for: a forged key post costs nothing.
        self._check_proof(post, body, "key", encrypted)
        origin = EncryptedValue.from_bytes(encrypted).verify()
        if origin.signer != (await self.device.signer_of(post.device_id))[1]:
            raise UntrustedPost("the key was not encrypted by its poster")
        transformed = await self.device.session.transform(bytes(origin), group_id=self.meeting_id)
        plaintext = self.device.decrypt(transformed, origin=origin)
        async with self._lock:  # this device's own rekey may have installed a key meanwhile
            if not self._supersedes(epoch, post.seq):
                return
            if body.get("host"):
                self.host = str(body["host"])
            self.invitees.update(str(u) for u in body.get("invitees", ()))
            lost_race = epoch == self.epoch and self.managing
            self._install(epoch, plaintext, [str(m) for m in body["members"]])
            self._manager, self._epoch_seq = post.device_id, post.seq
            self._last_rekey = self.clock.time()
        if lost_race and self._taking_over:  # take over again, at the next epoch
            self._taking_over = False
            self._spawn(self._rekey())

    def _supersedes(self, epoch: int, seq: int) -> bool:
        """Whether a key post for ``epoch`` at board position ``seq`` replaces the key
        held. Two admins may post one epoch at once (a hand-over or a late host racing
        a rekey): every client keeps the epoch's first post in board order."""
        if self.epoch is None or epoch > self.epoch:
            return True
        return epoch == self.epoch and seq < self._epoch_seq

    async def wait_for_epoch(self, epoch: int, timeout: float = 30.0) -> None:
        async def reached() -> None:
            while (self.epoch or 0) < epoch and not self.ended.is_set():
                await self._epoch_signal.wait()

        await asyncio.wait_for(reached(), timeout)

    async def _take_over(self) -> None:
        """A late host, or the participant management was handed to: rotate the key (the
        newest key's poster manages)."""
        self._taking_over = True
        try:
            await self._rekey()
        except BaseException:
            self._taking_over = False
            raise

    # --- the board -----------------------------------------------------------------------

    async def _board_loop(self) -> None:
        async for post in self.board.posts():
            try:
                await self._handle(post)
            except (VeilError, *_MALFORMED) as exc:
                if isinstance(exc, NotMember) and self._admitted:
                    self.removed = True
                    self._drop_keys()
                self.errors.append(exc)
            if self.ended.is_set():
                return

    async def _handle(self, post: Post) -> None:
        if post.kind == "announce":
            sender = json.loads(post.body)["sender"]
            if type(sender) is not int or not 0 <= sender < schedule.SENDER_LIMIT:
                raise ValueError("an announce names a sender number in [0, 2^44)")
            if sender in self.participants:
                raise UntrustedPost("a sender number already taken in this meeting")
            self.participants[sender] = post.user_id
            if self.managing and post.device_id != self.device.device_id:
                await self._consider(post.user_id)
        elif post.kind == "key":
            if post.device_id == self.device.device_id:
                # Posts arrive in board order: any rival key of this epoch came before.
                self._taking_over = False
                async with self._lock:  # this device's rekey, if posting it now, ends first
                    pass
                if self.managing and json.loads(post.body).get("epoch") == self.epoch:
                    # The key held: number it as every other client does (the ack's
                    # number is the service's word to this client alone).
                    self._epoch_seq = post.seq
                    return
                # Otherwise taken like anyone's if it is its epoch's first: a post whose
                # ack was lost, which every other client took.
            if self.left:  # hold no ciphertext after leaving (``ciphertexts_held``)
                await self._try_as_outsider(post)
                return
            self._newest_key = post
            if self._admitted:
                await self._accept_key(post)
            else:
                self._key_posts.append(post)
        elif post.kind == "chat":
            self._receive_chat(post)
        elif post.kind == "notice":
            body = json.loads(post.body)
            if isinstance(body, dict) and body.get("hand_over") == self.sender and self._admitted:
                self._check_proof(post, body, "hand-over", str(self.sender).encode())
                if not self.left and not self.ended.is_set():
                    await self._take_over()
        elif post.kind == "leave":
            body = json.loads(post.body)
            sender = int(body["sender"])
            if self.participants.get(sender) == post.user_id:  # no one leaves for another
                del self.participants[sender]
            if self.managing and post.device_id != self.device.device_id:
                await self._remove(post.user_id)
        elif post.kind == "end":
            if post.device_id != self.device.device_id:
                self._check_proof(post, json.loads(post.body), "end")
            self._drop_keys()
            self.ended.set()
            self._signal()

    async def _consider(self, user_id: str) -> None:
        """The manager admits a joiner it invited (or that ``admit`` approves)."""
        group = await self.device.groups.get(self.meeting_id)
        if user_id in group.members:
            return
        invited = user_id in self.invitees or (
            self._admit is not None and await self._admit(user_id)
        )
        if not invited:
            return
        # The host becomes an admin first: once a member it is admitted, and it then
        # takes over at once, which needs the group key.
        if user_id == self.host and user_id not in group.admins:
            await self.device.groups.add_admins(self.meeting_id, [user_id])
        await self.device.groups.add_members(self.meeting_id, [user_id])

    async def _remove(self, user_id: str) -> None:
        others = [u for u in self.participants.values() if u == user_id]
        if others:
            return  # another device of this user is still in the meeting
        group = await self.device.groups.get(self.meeting_id)
        if user_id not in group.members:
            return  # not a member (an outsider's leave notice): nothing to rotate away from
        await self.device.groups.remove_members(self.meeting_id, [user_id])
        if self._rekey_pending is None or self._rekey_pending.done():
            self._rekey_pending = asyncio.create_task(self._debounced_rekey())

    async def _debounced_rekey(self) -> None:
        await self.clock.sleep(self.timers.debounce)
        if self.managing and not self.left and not self.ended.is_set():
            await self._rekey()

    async def rekey(self) -> None:
        """For the manager: rotate the key now (after revoking a participant's device, say:
        the revoked device cannot get the new key)."""
        if not self.managing or self.left or self.ended.is_set():
            raise VeilError("only the meeting's manager rekeys, while it is in the meeting")
        await self._rekey()

    async def hand_over(self, sender: int) -> None:
        """For the manager: pass management to the participant that joined as ``sender``
        (its user becomes an admin); it rotates the key and manages from then on. A
        manager hands over before it leaves."""
        if not self.managing:
            raise VeilError("only the meeting's manager hands management over")
        user_id = self.participants.get(sender)
        if user_id is None or sender == self.sender:
            raise VeilError(f"no other participant joined as sender {sender}")
        group = await self.device.groups.get(self.meeting_id)
        if user_id not in group.admins:
            await self.device.groups.add_admins(self.meeting_id, [user_id])
        body = {"hand_over": sender, **await self._proof("hand-over", str(sender).encode())}
        await self.board.post("notice", json.dumps(body).encode())

    async def _ratchet(self) -> None:
        """Rekey when ``rekey_interval`` passes without one (restarts at every rekey)."""
        while not self.ended.is_set():
            due = self._last_rekey + self.timers.rekey_interval
            wait = due - self.clock.time()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            if self.managing and not self.left:
                await self._rekey()
            else:
                await self.clock.sleep(self.timers.rekey_interval)

    async def _try_as_outsider(self, post: Post) -> None:
        """After leaving, a client may still see key posts; it cannot open them (the key
        service refuses the transform), and ``outsider_keys`` counts if it ever could."""
        try:
            body = json.loads(post.body)
            await self.device.session.transform(
                b64decode(body["encrypted_key"]), group_id=self.meeting_id
            )
        except ServiceError:
            return
        self.outsider_keys += 1

    outsider_keys = 0

    def _drop_keys(self) -> None:
        self._session_keys.clear()
        self._newest_key = None
        self._key_posts.clear()
        if self.media is not None:
            self.media.forget()

    # --- media and chat --------------------------------------------------------------------

    async def send_frame(self, kind: MediaKind, payload: bytes, *, stream: int = 0) -> None:
        if self.media is None or self.media_channel is None or self.media.epoch is None:
            raise MeetingEnded("no session key (ended, left, or not admitted)")
        await self.media_channel.send(kind, self.media.protect(payload, stream=stream))

    async def receive_frame(self) -> Frame | None:
        """The next frame from another participant, decrypted; ``None`` if it was dropped
        (counted in ``media.counters``)."""
        assert self.media_channel is not None and self.media is not None
        if self._early:
            return self._early.pop(0)
        _, frame = await self.media_channel.receive()
        return self.media.unprotect(frame)

    def _chat_aad(self, epoch: int, sender: int) -> bytes:
        return b"veil-chat-v1" + self.meeting_id.encode() + b"\0" + f"{epoch}:{sender}".encode()

    async def send_chat(self, text: str) -> None:
        if self.epoch is None or self.epoch not in self._session_keys:
            raise MeetingEnded("no session key (ended, left, or not admitted)")
        key = schedule.chat_key(
            self._session_keys[self.epoch], meeting_id=self.meeting_id, epoch=self.epoch
        )
        nonce = os.urandom(12)
        ciphertext = AESGCM(key).encrypt(
            nonce, text.encode(), self._chat_aad(self.epoch, self.sender)
        )
        body = {
            "epoch": self.epoch, "sender": self.sender,
            "nonce": b64encode(nonce), "ciphertext": b64encode(ciphertext),
        }  # fmt: skip
        await self.board.post("chat", json.dumps(body).encode())

    def _receive_chat(self, post: Post) -> None:
        body = json.loads(post.body)
        epoch, sender = int(body["epoch"]), int(body["sender"])
        session_key = self._session_keys.get(epoch)
        if session_key is None:
            return
        key = schedule.chat_key(session_key, meeting_id=self.meeting_id, epoch=epoch)
        try:
            text = AESGCM(key).decrypt(
                b64decode(body["nonce"]), b64decode(body["ciphertext"]),
                self._chat_aad(epoch, sender),
            )  # fmt: skip
        except InvalidTag:
            return
        self.chat.append(ChatMessage(post.user_id, sender, epoch, text.decode()))

    async def save_transcript(
        self, *, users: Sequence[str] = (), groups: Sequence[str] = ()
    ) -> "EncryptedDocument":
        """The chat so far as a durable transcript, encrypted to ``users``/``groups``."""
        lines = [f"{m.user_id}: {m.text}" for m in self.chat]
        return await self.device.documents.save_transcript(
            "\n".join(lines).encode(), users=users, groups=groups
        )

    # --- leave and end -------------------------------------------------------------------

    async def leave(self) -> None:
        """Post a leave notice and drop this meeting's keys (the board stays open, so an
        application may keep watching; it can decrypt nothing new). The manager first
        ends the meeting or hands it over (``hand_over``)."""
        if self.managing and not self.ended.is_set():
            raise VeilError("the manager ends the meeting or hands it over before leaving")
        if not self.left:
            self.left = True
            await self.board.post("leave", json.dumps({"sender": self.sender}).encode())
            self._drop_keys()

    async def end(self) -> None:
        """For the manager: end the meeting, delete the group (its transform keys go)."""
        if not self.managing:
            raise VeilError("only the meeting's manager (the newest key's poster) ends it")
        await self.board.post("end", json.dumps(await self._proof("end")).encode())
        await self.device.groups.delete(self.meeting_id)
        self._drop_keys()
        self.ended.set()

    async def close(self, *, rotate_device_keys: bool = True) -> None:
        """Stop following the meeting and drop its keys; then, by default, rotate this
        device's keys (the seed's "after the meeting" step: a later theft of the device
        opens nothing from this meeting), once no other meeting of the device is open.
        A failed rotation raises, after the rest is released, so the application knows
        forward secrecy was not reached."""
        for task in [*self._tasks, self._rekey_pending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.board.close()
        if self.media_channel is not None:
            with contextlib.suppress(Exception):
                await self.media_channel.close()
        self._drop_keys()
        self.device.open_meetings.discard(self)
        if rotate_device_keys and not self.device.open_meetings:
            # With another meeting of this device still open, its sockets speak with the
            # current keys: the rotation waits for the last meeting to close.
            await self.device.rotate_keys()

    def ciphertexts_held(self) -> int:
        """Encrypted keys this client still holds (zero after the end or a leave)."""
        return int(self._newest_key is not None) + len(self._session_keys)


__all__ = [
    "ChatMessage", "Clock", "Meeting", "MeetingTimers", "SystemClock", "security_code",
]  # fmt: skip
