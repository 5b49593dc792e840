"""The manager role: who is admitted, who is removed, when the key rotates, and who
takes over when the manager stops.

The device that posted the key held manages (``epochs``). Its work runs in tasks of
their own, so no kind of post can hold up another:

- **removals**: a leave takes its user out of the meeting group at once (unless
  another device of the user is still present), then a rekey follows ``debounce``
  seconds later, which covers the leaves of that window;
- **admissions**: an announce by an invitee (or by a user ``admit`` approves) adds
  the user to the group; an uninvited announce costs a set lookup, not a request, so
  announce floods stall nothing;
- **heartbeat**: every ``heartbeat`` seconds an ``alive`` post names the deputy, the
  earliest-joined other participant, whose user is made an admin first (so it holds
  the group key a take-over needs);
- **ratchet**: a rekey when ``rekey_interval`` passes without one.

A deputy that sees neither a key post nor an ``alive`` from the manager for
``failover`` seconds, while its own board connection is up, takes over: it removes
every user who left and has no device present, then rekeys. Any take-over (a late
host, a hand-over, a fail-over) starts with that reconciliation, so a leave that a
crashed manager never applied is applied before the next key exists.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from veil.client.conference import Board
from veil.client.errors import VeilError
from veil.client.groups import Groups
from veil.client.meeting.authority import make_proof
from veil.client.meeting.epochs import Epochs
from veil.client.meeting.events import EventStream
from veil.client.meeting.roster import Roster
from veil.client.meeting.timers import Clock, MeetingTimers
from veil.crypto.keys import Plaintext, PublicKey
from veil.crypto.pre import encrypt
from veil.crypto.signing import SigningKey
from veil.protocol.board import Alive, KeyPost

Admit = Callable[[str], Awaitable[bool]]
"""Asked by the manager when someone not invited knocks: admit this user?"""
OwnKey = Callable[[bytes, Plaintext], "asyncio.Future[bool]"]
"""Tells the meeting of a key post this device is about to make (its encrypted key and
plaintext), before it is posted; the future resolves once the board delivers it back:
installed (True) or superseded by an earlier post (False)."""


class Manager:
    def __init__(
        self,
        *,
        groups: Groups,
        signer: SigningKey,
        user_id: str,
        device_id: str,
        wall_clock: Callable[[], float],
        meeting_id: str,
        group_key: PublicKey,
        board: Board,
        roster: Roster,
        epochs: Epochs,
        timers: MeetingTimers,
        clock: Clock,
        events: EventStream,
        invitees: set[str],
        host: str | None,
        admit: Admit | None,
        own_key: OwnKey,
    ) -> None:
        self._groups, self._signer, self._wall_clock = groups, signer, wall_clock
        self.user_id, self.device_id = user_id, device_id
        self.meeting_id, self.group_key, self.board = meeting_id, group_key, board
        self.roster, self.epochs, self.timers, self.clock = roster, epochs, timers, clock
        self.events, self.invitees, self.host = events, invitees, host
        self._admit, self._own_key = admit, own_key
        self.active = True
        """False once this device left or the meeting ended: it manages nothing more."""
        self.board_connected = False
        """Kept by the meeting from the board's connection state."""
        self.deputy: int | None = None
        """The deputy the newest ``alive`` of the manager named."""
        self.last_sign = clock.time()
        """When this device last saw the manager's key post or ``alive``."""
        self.last_rekey = clock.time()
        self._admissions: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._removals: asyncio.Queue[str] = asyncio.Queue()
        self._rekey_due: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one rekey at a time
        self._admins: set[str] = set()
        self._silent: set[str] = set()  # managers this device took over from: no deputies
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def managing(self) -> bool:
        return self.active and self.epochs.manager == self.device_id

    def start(self, spawn: Callable[[Awaitable[None]], asyncio.Task[None]]) -> None:
        for work in (self._admit_loop(), self._remove_loop(), self._heartbeat(), self._ratchet()):
            self._tasks.append(spawn(work))
        self._tasks.append(spawn(self._watch_manager()))

    # --- what the board loop tells the manager (no awaiting here) ------------------------

    def announced(self, user_id: str) -> None:
        if not self.managing or user_id in self._queued:
            return
        # Invitees and, if the application decides, others; anyone else costs nothing.
        if user_id in self.invitees or self._admit is not None:
            self._queued.add(user_id)
            self._admissions.put_nowait(user_id)

    def left(self, user_id: str) -> None:
        if self.managing and not self.roster.has_user(user_id):
            self._removals.put_nowait(user_id)

    def manager_seen(self, deputy: int | None = None, *, alive: bool = False) -> None:
        self.last_sign = self.clock.time()
        if alive:
            self.deputy = deputy

    # --- rekeys ------------------------------------------------------------------------

    async def rekey(self) -> None:
        """Draw the next epoch's key, encrypt it once to the group, post it; returns once
        the board delivered it back (installed, or superseded by an earlier post)."""
        async with self._lock:
            epoch = 0 if self.epochs.epoch is None else self.epochs.epoch + 1
            group = await self._groups.get(self.meeting_id)
            members = tuple(sorted(set(group.members)))
            self._admins = set(group.admins)
            plaintext = Plaintext.generate()
            encrypted = bytes(encrypt(plaintext, self.group_key, self._signer))
            proof = await make_proof(
                self._groups, self.meeting_id, self.group_key, self.user_id,
                int(self._wall_clock()), "key", encrypted,
            )  # fmt: skip
            invitees = tuple(sorted(self.invitees - set(members)))
            post = KeyPost(epoch, encrypted, members, invitees, self.host or self.user_id, proof)
            landed = self._own_key(encrypted, plaintext)
            try:
                await self.board.post(KeyPost.KIND, bytes(post), timeout=self.timers.post_timeout)
                self.last_rekey = self.clock.time()
                installed = await asyncio.wait_for(landed, self.timers.post_timeout)
            finally:
                landed.cancel()
            if installed and self.managing:
                await self._post_alive()

    async def take_over(self) -> None:
        """Apply every leave the previous manager may not have, then rekey."""
        await self.reconcile()
        await self.rekey()

    async def reconcile(self) -> None:
        departed = self.roster.departed()
        if not departed:
            return
        group = await self._groups.get(self.meeting_id)
        gone = sorted(departed & set(group.members))
        if gone:
            await self._groups.remove_members(self.meeting_id, gone)

    def _rekey_soon(self) -> None:
        if self._rekey_due is None or self._rekey_due.done():
            self._rekey_due = asyncio.create_task(self._debounced_rekey())

    async def _debounced_rekey(self) -> None:
        await self.clock.sleep(self.timers.debounce)
        if self.managing:
            try:
                await self.rekey()
            except (VeilError, OSError) as exc:
                self.events.fail(exc)

    # --- the background work -------------------------------------------------------------

    async def _remove_loop(self) -> None:
        while True:
            user_id = await self._removals.get()
            if not self.managing or self.roster.has_user(user_id):
                continue
            try:
                group = await self._groups.get(self.meeting_id)
                if user_id in group.members:
                    await self._groups.remove_members(self.meeting_id, [user_id])
                    self._rekey_soon()
            except (VeilError, OSError) as exc:
                self.events.fail(exc)

    async def _admit_loop(self) -> None:
        while True:
            user_id = await self._admissions.get()
            try:
                await self._consider(user_id)
            except (VeilError, OSError) as exc:
                self.events.fail(exc)
            finally:
                self._queued.discard(user_id)

    async def _consider(self, user_id: str) -> None:
        if not self.managing:
            return
        group = await self._groups.get(self.meeting_id)
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
            await self._groups.add_admins(self.meeting_id, [user_id])
        await self._groups.add_members(self.meeting_id, [user_id])

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(self.timers.heartbeat)
            if self.managing:
                try:
                    await self._post_alive()
                except (VeilError, OSError) as exc:
                    self.events.fail(exc)

    async def _post_alive(self) -> None:
        deputy = await self._choose_deputy()
        assert self.epochs.epoch is not None
        alive = Alive(self.epochs.epoch, deputy)
        await self.board.post(Alive.KIND, bytes(alive), timeout=self.timers.heartbeat * 2)

    async def _choose_deputy(self) -> int | None:
        """The earliest-joined participant of another device, made an admin if needed."""
        passed = {self.device_id, *self._silent}
        others = [p for p in self.roster.participants() if p.device_id not in passed]
        if not others:
            return None
        deputy = others[0]
        if deputy.user_id not in self._admins:
            group = await self._groups.get(self.meeting_id)
            if deputy.user_id not in group.members:
                return None  # not admitted (yet): no deputy rather than an outsider
            if deputy.user_id not in group.admins:
                await self._groups.add_admins(self.meeting_id, [deputy.user_id])
            self._admins = {*group.admins, deputy.user_id}
        return deputy.sender

    async def _ratchet(self) -> None:
        while True:
            wait = self.last_rekey + self.timers.rekey_interval - self.clock.time()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            if self.managing:
                try:
                    await self.rekey()
                except (VeilError, OSError) as exc:
                    self.events.fail(exc)
            self.last_rekey = self.clock.time()

    async def _watch_manager(self) -> None:
        """Fail-over: the deputy takes over once the manager is silent too long."""
        step = self.timers.heartbeat / 2
        while True:
            await self.clock.sleep(step)
            if not self.board_connected:
                # Silence seen from a broken connection says nothing of the manager.
                self.last_sign = self.clock.time()
                continue
            mine = self.roster.sender_of(self.device_id)
            silent = self.clock.time() - self.last_sign
            deputy = self.active and not self.managing and mine is not None
            if deputy and self.deputy == mine and silent >= self.timers.failover:
                self.last_sign = self.clock.time()
                if self.epochs.manager is not None:
                    self._silent.add(self.epochs.manager)
                try:
                    await self.take_over()
                except (VeilError, OSError) as exc:
                    self.events.fail(exc)

    async def stop(self) -> None:
        self.active = False
        for task in [*self._tasks, self._rekey_due]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
