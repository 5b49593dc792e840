"""``Meeting``: one device's part in a meeting, over the key service and the board.

- **Start** (``Meeting.start``): the first user creates the meeting group (id = the
  meeting id; the creator is its admin and a member), adds the invitees who already
  have keys, makes the named host an admin (now, or when the host first joins),
  draws the epoch-0 key, encrypts it once to the group and posts it.
- **Invitation** (``meeting.invitation``): the meeting id and the group's public key,
  passed to joiners by the platform (``veil.client.invitation``).
- **Join** (``Meeting.join``): announce on the board; the manager admits invitees by
  adding them to the group; the joiner asks the key service to transform the newest
  key post, retrying after 1, 5, 10 and 10 s, then is admitted or gets
  ``NotAdmitted``.
- **Leave, rekey, ratchet, fail-over**: ``veil.client.meeting.manager``.
- **End**: the manager posts ``end`` and deletes the group; every client drops its keys.

The board's messages are ``veil.protocol.board``'s; docs/protocol.md specifies them
and what each party checks. This module reads the board in order and hands each
post to the rule that owns it (``roster``, ``epochs``, ``chat``, the manager); work
that waits on a service runs in tasks of its own, so the board is never held up.
"""

import asyncio
import contextlib
import secrets
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from veil.client.conference import MediaChannel, Post
from veil.client.errors import (
    InvalidRequest,
    MeetingEnded,
    MembersChanging,
    NotAdmitted,
    NotMember,
    ServiceError,
    Unavailable,
    UntrustedInvitation,
    UntrustedPost,
    VeilError,
)
from veil.client.invitation import Invitation
from veil.client.media import Frame, MeetingMedia
from veil.client.meeting import chat
from veil.client.meeting.authority import check_proof, make_proof
from veil.client.meeting.chat import ChatMessage
from veil.client.meeting.epochs import Epochs
from veil.client.meeting.events import (
    ChatReceived,
    ConnectionChanged,
    Ended,
    EpochChanged,
    EventStream,
    ManagementChanged,
    ParticipantJoined,
    ParticipantLeft,
    Removed,
)
from veil.client.meeting.manager import Admit, Manager
from veil.client.meeting.members import MemberLists
from veil.client.meeting.roster import Roster
from veil.client.meeting.timers import Clock, MeetingTimers, SystemClock
from veil.client.retry import RETRY
from veil.crypto.errors import AuthenticationError, DecodeError
from veil.crypto.keys import Plaintext, PublicKey
from veil.crypto.pre import EncryptedValue
from veil.crypto.schedule import SENDER_LIMIT
from veil.protocol import MediaKind
from veil.protocol.board import (
    Alive,
    Announce,
    Chat,
    End,
    HandOver,
    KeyPost,
    Leave,
    parse,
)

if TYPE_CHECKING:
    from veil.client.device import Device
    from veil.client.documents import EncryptedDocument


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
        self.events = EventStream()
        self.roster = Roster()
        self.epochs = Epochs(meeting_id)
        self.member_lists = MemberLists(self._group_members, device.user_id)
        # Each join draws its own sender number (44 random bits) and announces it, signed:
        # the board's sequence numbers are the service's and must not pick SFrame keys,
        # or a dishonest service could make two senders share a key and nonces.
        self.sender = secrets.randbelow(SENDER_LIMIT)
        self.board = device.board(meeting_id, on_state=self._board_state)
        self.media = MeetingMedia(
            meeting_id, sender=self.sender, grace=timers.epoch_grace, clock=clock.time,
            bound=self.roster.sender_of,
        )  # fmt: skip
        self.media_channel: MediaChannel | None = None
        self.manager = Manager(
            groups=device.groups, signer=device.signer, user_id=device.user_id,
            device_id=device.device_id, wall_clock=device.clock, meeting_id=meeting_id,
            group_key=group_key, board=self.board, roster=self.roster, epochs=self.epochs,
            timers=timers, clock=clock, events=self.events, invitees=set(invitees), host=host,
            admit=admit, own_key=self._own_key,
        )  # fmt: skip
        self.chat: list[ChatMessage] = []
        self.rekeys = 0
        self.ended = asyncio.Event()
        self.left = False
        self.removed = False
        self._admitted = False
        self._offer: tuple[Post, KeyPost] | None = None  # the newest key post not taken yet
        self._offered = asyncio.Event()
        # Key posts this device made, by encrypted key, until the board delivers them (an
        # ack may be lost while the post landed), and whoever waits for each.
        self._own: dict[bytes, tuple[Plaintext, tuple[str, ...]]] = {}
        self._landed: dict[bytes, asyncio.Future[bool]] = {}
        self._installed = asyncio.Event()
        self._early: list[Frame] = []  # frames that waited for this epoch's key
        self._chat_ahead = chat.Ahead()
        self._tasks: list[asyncio.Task[None]] = []
        self._retake = False  # a late host or hand-over target retries a lost take-over once
        self._named_deputy: int | None = None  # as the manager's newest ``alive`` says
        self._leave_landed = False

    def __repr__(self) -> str:
        return f"Meeting({self.meeting_id!r}, epoch={self.epoch}, sender={self.sender})"

    # --- what the application reads ----------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        return self.epochs.epoch

    @property
    def members(self) -> tuple[str, ...]:
        return self.epochs.members

    @property
    def security_code(self) -> str:
        return self.epochs.security_code

    @property
    def managing(self) -> bool:
        return self.manager.managing

    @property
    def host(self) -> str | None:
        return self.manager.host

    @property
    def participants(self) -> dict[int, str]:
        """Sender number -> user id of everyone present (this device included)."""
        return {p.sender: p.user_id for p in self.roster.participants()}

    @property
    def errors(self) -> list[BaseException]:
        """The newest failures, also sent as ``MeetingFailure`` events (subscribe to
        ``events`` rather than polling this)."""
        return list(self.events.failures)

    def ciphertexts_held(self) -> int:
        """Keys and encrypted keys this client still holds (zero after a leave or the end)."""
        return self.epochs.held() + int(self._offer is not None) + len(self._own)

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
        timers: MeetingTimers | None = None,
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
            device, meeting_id, group_key, timers=timers or MeetingTimers(),
            clock=clock or SystemClock(), admit=admit, invitees=invited, host=host,
        )  # fmt: skip
        try:
            if host != device.user_id and host in known:
                await device.groups.ensure_admin(meeting_id, host)
            meeting._admitted = True
            await meeting._open()
            await meeting.manager.rekey()
            await meeting._open_media()
        except BaseException:
            await meeting.close(rotate_device_keys=False)
            raise
        meeting._run()
        return meeting

    @classmethod
    async def join(
        cls,
        device: "Device",
        invitation: Invitation | str,
        *,
        admit: Admit | None = None,
        timers: MeetingTimers | None = None,
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
            device, invitation.meeting_id, invitation.group_key,
            timers=timers or MeetingTimers(), clock=clock or SystemClock(), admit=admit,
        )  # fmt: skip
        try:
            await meeting._open()
            await meeting._wait_for_admission()
            if meeting.host == device.user_id and not meeting.managing:
                await meeting._take_over()
            await meeting._open_media()
        except BaseException:
            await meeting.close(rotate_device_keys=False)
            raise
        meeting._run()
        return meeting

    async def _open(self) -> None:
        self.device.open_meetings.add(self)
        await self.board.connect(since=0)
        self._spawn(self._board_loop())
        await self.board.post(
            Announce.KIND, bytes(Announce(self.sender)), timeout=self.timers.post_timeout
        )

    async def _open_media(self) -> None:
        self.media_channel = await self.device.media(
            self.meeting_id, sender=self.sender, on_state=self._media_state
        )

    def _run(self) -> None:
        self._spawn(self._key_loop())
        self.manager.start(self._spawn)

    async def _wait_for_admission(self) -> None:
        for delay in (0.0, *self.timers.join_retries):
            await self.clock.sleep(delay)
            if self.ended.is_set():
                raise MeetingEnded("the meeting ended before this device was admitted")
            while self._offer is not None:
                post, message = self._offer
                try:
                    plaintext, members = await self._open_key(post, message)
                except (NotMember, MembersChanging):
                    break  # not admitted yet (or the group is changing): try after the wait
                except (UntrustedPost, InvalidRequest, AuthenticationError, DecodeError) as exc:
                    # Anyone may post on the board: a post not to be trusted is set aside,
                    # so it cannot keep this device out.
                    self.events.fail(exc)
                    if self._offer == (post, message):
                        self._offer = None
                    continue
                self._admitted = True
                if self._offer == (post, message):
                    self._offer = None
                self._take(post, message, plaintext, members)
                return
        raise NotAdmitted(f"not admitted to {self.meeting_id!r}")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # surfaced to the application, never swallowed
                self.events.fail(exc)

        task = asyncio.create_task(guarded())
        # Cancelled before it started (a meeting closed at once): close the work too.
        task.add_done_callback(lambda _: work.close())
        self._tasks.append(task)
        return task

    # --- the board -----------------------------------------------------------------------

    def _board_state(self, state: str) -> None:
        self.manager.board_connected = state == "connected"
        self.events.emit(ConnectionChanged("board", state))

    def _media_state(self, state: str) -> None:
        self.events.emit(ConnectionChanged("media", state))

    async def _board_loop(self) -> None:
        while not self.ended.is_set():
            try:
                post = await self.board.next()
            except ServiceError as exc:  # refused for good (revoked, the room ended)
                self.events.fail(exc)
                return
            try:
                self._handle(post)
            except Exception as exc:  # one post, refused or not understood: the next one
                self.events.fail(exc)

    def _handle(self, post: Post) -> None:
        """One post, in board order. Nothing here waits on a service."""
        message = parse(post.kind, post.body)
        if isinstance(message, Announce):
            joined = self.roster.announce(message.sender, post.user_id, post.device_id, post.seq)
            self.events.emit(ParticipantJoined(joined.sender, joined.user_id, joined.device_id))
            self._early.extend(self.media.retry())  # its frames that came before its announce
            if joined.device_id != self.device.device_id:
                self.manager.announced(joined.user_id)
        elif isinstance(message, Leave):
            gone = self.roster.leave(message.sender, post.device_id)
            if gone is not None:
                self.events.emit(ParticipantLeft(gone.sender, gone.user_id, gone.device_id))
                if gone.device_id != self.device.device_id:
                    self.manager.left(gone.user_id)
        elif isinstance(message, KeyPost):
            self._offer_key(post, message)
        elif isinstance(message, Chat):
            self._receive_chat(post, message)
        elif isinstance(message, Alive):
            if post.device_id == self.epochs.manager and message.epoch == self.epochs.epoch:
                self.manager.manager_seen(message.deputy, alive=True)
                if message.deputy != self._named_deputy:
                    self._named_deputy = message.deputy
                    self.events.emit(ManagementChanged(post.device_id, message.deputy))
            elif self.managing and self.manager.deputy == self.roster.sender_of(post.device_id):
                self.manager.deputy_seen()
        elif isinstance(message, HandOver):
            self._check(post, message.proof, "hand-over", HandOver.payload(message.sender))
            if message.sender == self.sender and self._admitted and not self.left:
                self._spawn(self._take_over())
        elif isinstance(message, End):
            if post.device_id != self.device.device_id:
                self._check(post, message.proof, "end")
            self.manager.active = False
            self._close_keys()
            self.ended.set()
            self.events.emit(Ended())

    def _check(self, post: Post, proof: object, action: str, payload: bytes = b"") -> None:
        check_proof(
            proof,  # type: ignore[arg-type]
            action=action, meeting_id=self.meeting_id, poster=post.user_id,
            group_key=self.invitation.group_key, payload=payload,
        )  # fmt: skip

    # --- keys ---------------------------------------------------------------------------

    def _offer_key(self, post: Post, message: KeyPost) -> None:
        if post.device_id == self.device.device_id and message.encrypted_key in self._own:
            taken = self._take(post, message, *self._own.pop(message.encrypted_key))
            landed = self._landed.pop(message.encrypted_key, None)
            if landed is not None and not landed.done():
                landed.set_result(taken)
            return
        # Checked before any transform is asked for: a forged key post costs nothing.
        self._check(post, message.proof, "key", message.encrypted_key)
        self.member_lists.follow(message)
        if post.device_id == self.epochs.manager:
            self.manager.manager_seen()
        if not self.epochs.supersedes(message.epoch, post.seq):
            return
        if self._offer is None or _supersedes(message.epoch, post.seq, self._offer):
            self._offer = (post, message)
            self._offered.set()

    def _own_key(
        self, encrypted: bytes, plaintext: Plaintext, members: tuple[str, ...]
    ) -> "asyncio.Future[bool]":
        """A key post this device is about to make: taken when the board delivers it
        back, in order, like everyone else's (so every client keeps the same key)."""
        landed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.left or self.ended.is_set():
            landed.set_result(False)
            return landed
        self.member_lists.remember(members)
        self._own[encrypted] = (plaintext, members)
        self._landed[encrypted] = landed
        landed.add_done_callback(lambda _: self._landed.pop(encrypted, None))
        return landed

    async def _open_key(self, post: Post, message: KeyPost) -> tuple[Plaintext, tuple[str, ...]]:
        """Transform and decrypt a key post; its key and member list. ``NotMember`` if
        not (or no longer) in the group; ``UntrustedPost`` if its ciphertext is not its
        poster's; ``MembersChanging`` while its member list cannot be had."""
        origin = EncryptedValue.from_bytes(message.encrypted_key).verify()
        if origin.signer != (await self.device.signer_of(post.device_id))[1]:
            raise UntrustedPost("the key was not encrypted by its poster")
        transformed = await self.device.session.transform(bytes(origin), group_id=self.meeting_id)
        plaintext = self.device.decrypt(transformed, origin=origin)
        return plaintext, await self.member_lists.of(message)

    async def _group_members(self) -> tuple[str, ...]:
        return (await self.device.groups.get(self.meeting_id)).members

    async def _key_loop(self) -> None:
        """Takes the newest key post offered, one at a time, retrying while the key
        service does not answer."""
        failures = 0
        while True:
            await self._offered.wait()
            self._offered.clear()
            offer = self._offer
            if offer is None:
                continue
            post, message = offer
            try:
                plaintext, members = await self._open_key(post, message)
            except NotMember:
                self._removed()
                return
            except (Unavailable, MembersChanging, OSError) as exc:
                self.events.fail(exc)
                await self.clock.sleep(RETRY.delay(failures))
                failures += 1
                self._offered.set()
                continue
            except (VeilError, AuthenticationError, DecodeError) as exc:
                self.events.fail(exc)
                if self._offer == offer:
                    self._offer = None
                continue
            failures = 0
            if self._offer == offer:
                self._offer = None
            self._take(post, message, plaintext, members)

    def _take(
        self, post: Post, message: KeyPost, plaintext: Plaintext, members: tuple[str, ...]
    ) -> bool:
        """Install a key post's key if it supersedes the one held (and this client is
        still in the meeting); whether it did."""
        if self.left or self.removed or self.ended.is_set():
            return False
        before, previous = self.epochs.epoch, self.epochs.manager
        installed = self.epochs.install(message.epoch, post.seq, plaintext, members, post.device_id)
        if installed is None:
            return False
        self.manager.host = message.host
        self.manager.invitees.update(message.invitees)
        self.manager.manager_seen()
        self.manager.last_rekey = self.clock.time()
        self._early.extend(self.media.install(installed.epoch, installed.session_key))
        if before is not None and installed.epoch > before:
            self.rekeys += 1
        self.events.emit(
            EpochChanged(
                installed.epoch, installed.members, installed.security_code, installed.manager
            )
        )
        for waiting in self._chat_ahead.due(installed.epoch):
            self._read_chat(*waiting)
        self._installed.set()
        self._installed = asyncio.Event()
        if installed.manager == self.device.device_id and previous != installed.manager:
            self.manager.became_manager()
        if self._retake and installed.manager != self.device.device_id:
            self._retake = False  # lost the take-over to a racing rekey: once more
            self._spawn(self.manager.take_over())
        elif installed.manager == self.device.device_id:
            self._retake = False
        return True

    async def _take_over(self) -> None:
        """A late host, or the participant management was handed to: manage from the next
        epoch on. If a racing rekey by another admin lands first, once more."""
        self._retake = True
        await self.manager.take_over()

    async def wait_for_epoch(self, epoch: int, timeout: float = 30.0) -> None:
        async def reached() -> None:
            while (self.epoch or 0) < epoch and not self.ended.is_set():
                await self._installed.wait()

        await asyncio.wait_for(reached(), timeout)

    def _removed(self) -> None:
        self.removed = True
        self._close_keys()
        self.events.emit(Removed())

    def _close_keys(self) -> None:
        self.epochs.close()
        self._offer = None
        for landed in self._landed.values():
            if not landed.done():
                landed.set_result(False)
        self._own.clear()
        self._landed.clear()
        self.media.forget()
        self._early.clear()
        self._chat_ahead.clear()

    # --- management ------------------------------------------------------------------------

    async def rekey(self) -> None:
        """For the manager: rotate the key now (after revoking a participant's device, say:
        the revoked device cannot get the new key)."""
        if not self.managing or self.left or self.ended.is_set():
            raise VeilError("only the meeting's manager rekeys, while it is in the meeting")
        await self.manager.rekey()

    async def hand_over(self, sender: int) -> None:
        """For the manager: pass management to the participant that joined as ``sender``
        (its user becomes an admin); it rotates the key and manages from then on. A
        manager hands over before it leaves."""
        if not self.managing:
            raise VeilError("only the meeting's manager hands management over")
        participant = self.roster.get(sender)
        if participant is None or sender == self.sender:
            raise VeilError(f"no other participant joined as sender {sender}")
        group = await self.device.groups.get(self.meeting_id)
        if participant.user_id not in group.admins:
            await self.device.groups.ensure_admin(self.meeting_id, participant.user_id)
        proof = await self._proof("hand-over", HandOver.payload(sender))
        await self.board.post(
            HandOver.KIND, bytes(HandOver(sender, proof)), timeout=self.timers.post_timeout
        )

    async def _proof(self, action: str, payload: bytes = b""):  # type: ignore[no-untyped-def]
        return await make_proof(
            self.device.groups, self.meeting_id, self.invitation.group_key,
            self.device.user_id, int(self.device.clock()), action, payload,
        )  # fmt: skip

    # --- media and chat --------------------------------------------------------------------

    async def send_frame(self, kind: MediaKind, payload: bytes, *, stream: int = 0) -> bool:
        """Encrypt and send a frame; False if the relay connection is down (the frame is
        dropped, as real-time media is, and counted by the channel)."""
        if self.media_channel is None or self.media.epoch is None:
            raise MeetingEnded("no session key (ended, left, or not admitted)")
        return await self.media_channel.send(kind, self.media.protect(payload, stream=stream))

    async def receive_frame(self) -> Frame | None:
        """The next frame from another participant, decrypted; ``None`` if it was dropped
        (counted in ``media.counters``)."""
        if self.media_channel is None:
            raise MeetingEnded("no media connection (not admitted, or closed)")
        if self._early:
            return self._early.pop(0)
        _, origin, frame = await self.media_channel.receive()
        return self.media.unprotect(frame, origin=origin)

    async def send_chat(self, text: str) -> None:
        epoch = self.epochs.epoch
        key = None if epoch is None else self.epochs.key(epoch)
        if epoch is None or key is None:
            raise MeetingEnded("no session key (ended, left, or not admitted)")
        message = chat.seal(key, text, meeting_id=self.meeting_id, epoch=epoch, sender=self.sender)
        await self.board.post(Chat.KIND, bytes(message), timeout=self.timers.post_timeout)

    def _receive_chat(self, post: Post, message: Chat) -> None:
        if self.roster.sender_of(post.device_id) != message.sender:
            raise UntrustedPost("a chat message under another device's sender number")
        self._read_chat(post, message)

    def _read_chat(self, post: Post, message: Chat) -> None:
        key = self.epochs.key(message.epoch)
        if key is None:
            held = self.epochs.epoch
            if not self.epochs.closed and (held is None or message.epoch > held):
                self._chat_ahead.hold(post, message)  # its key is on its way
            return  # otherwise an epoch this client does not hold (before it joined)
        opened = chat.open_chat(key, message, meeting_id=self.meeting_id, user_id=post.user_id)
        if opened is not None:
            self.chat.append(opened)
            self.events.emit(ChatReceived(opened.user_id, opened.sender, opened.epoch, opened.text))

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
        """Drop this meeting's keys, then post a leave notice (retried until it lands).
        From the moment this is called the client installs no key, so once it returns
        it holds none and decrypts nothing new. The board stays open, so an application
        may keep watching. The manager first ends the meeting or hands it over."""
        if self.managing and not self.ended.is_set():
            raise VeilError("the manager ends the meeting or hands it over before leaving")
        if not self.left:
            self.left = True
            self.manager.active = False  # a take-over in flight draws and posts nothing more
            self._close_keys()
            await self.manager.stop()
        if not self._leave_landed:  # a call after a failed one posts again
            await self._post_until_landed(Leave.KIND, bytes(Leave(self.sender)))
            self._leave_landed = True

    async def _post_until_landed(self, kind: str, body: bytes) -> None:
        """Post, trying again after a refusal the board may not repeat (503: it could
        not ask the key service) until ``post_timeout`` has passed; then raise."""
        deadline = self.clock.time() + self.timers.post_timeout
        failures = 0
        while True:
            try:
                await self.board.post(kind, body, timeout=self.timers.post_timeout)
                return
            except Unavailable as exc:
                if self.clock.time() >= deadline:
                    raise
                self.events.fail(exc)
                await self.clock.sleep(RETRY.delay(failures))
                failures += 1

    async def end(self) -> None:
        """For the manager: end the meeting, delete the group (its transform keys go)."""
        if not self.managing:
            raise VeilError("only the meeting's manager (the newest key's poster) ends it")
        proof = await self._proof("end")
        await self.board.post(End.KIND, bytes(End(proof)), timeout=self.timers.post_timeout)
        await self.device.groups.delete(self.meeting_id)
        self.manager.active = False
        self._close_keys()
        self.ended.set()

    async def close(self, *, rotate_device_keys: bool = True) -> None:
        """Stop following the meeting and drop its keys; then, by default, rotate this
        device's keys (a later theft of the device opens nothing from this meeting),
        once no other meeting of the device is open. A failed rotation raises, after the
        rest is released, so the application knows forward secrecy was not reached."""
        await self.manager.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.board.close()
        if self.media_channel is not None:
            with contextlib.suppress(Exception):
                await self.media_channel.close()
        self._close_keys()
        self.device.open_meetings.discard(self)
        if rotate_device_keys and not self.device.open_meetings:
            # With another meeting of this device still open, its sockets speak with the
            # current keys: the rotation waits for the last meeting to close.
            await self.device.rotate_keys()


def _supersedes(epoch: int, seq: int, offer: tuple[Post, KeyPost]) -> bool:
    post, message = offer
    return epoch > message.epoch or (epoch == message.epoch and seq < post.seq)
