"""The manager role: who is admitted, who is removed, when the key rotates, and who
takes over when the manager stops.

The device that posted the key held manages (``epochs``). Its work runs in tasks of
their own, so no kind of post can hold up another:

- **removals**: a leave takes its user out of the meeting group at once (unless
  another device of the user is still present), then a rekey follows ``debounce``
  seconds later, which covers the leaves of that window. A removal the key service
  refused is retried; every rekey, and every change of manager, first removes every
  user who left and has no device present, so no leave is lost to a failure, a
  restart or a take-over;
- **admissions**: an announce by an invitee (or by a user ``admit`` approves) adds
  the user to the group; an uninvited announce costs a set lookup, not a request, so
  announce floods stall nothing;
- **heartbeat**: every ``heartbeat`` seconds an ``alive`` post names the deputy, the
  earliest-joined other participant whose user is a member, made an admin first (so
  it can get the group key a take-over needs). The deputy answers with ``alive`` posts
  of its own; a deputy silent for ``failover`` seconds is replaced. A user who leaves
  loses the admin role the meeting gave it;
- **ratchet**: a rekey when ``rekey_interval`` passes without one.

A deputy that sees neither a key post nor an ``alive`` from the manager for
``failover`` seconds, while its own board connection is up, takes over (it looks
every ``heartbeat / 2`` seconds, so within ``failover + heartbeat / 2``): it removes
every user who left and has no device present, then rekeys.

Every loop reports what fails (``MeetingFailure``) and goes on: no failure, of a
service or of the application's ``admit``, stops the manager's work.
"""

import asyncio
import bisect
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from veil.client.conference import Board
from veil.client.groups import Groups
from veil.client.meeting.authority import make_proof
from veil.client.meeting.epochs import Epochs
from veil.client.meeting.events import EventStream
from veil.client.meeting.roster import Roster
from veil.client.meeting.timers import Clock, MeetingTimers
from veil.client.retry import RETRY
from veil.crypto.keys import Plaintext, PublicKey
from veil.crypto.pre import encrypt
from veil.crypto.signing import SigningKey
from veil.protocol.board import Alive, KeyPost, member_digest

Admit = Callable[[str], Awaitable[bool]]
"""Asked by the manager when someone not invited knocks: admit this user?"""
OwnKey = Callable[[bytes, Plaintext, tuple[str, ...]], "asyncio.Future[bool]"]
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
        """The deputy named by the newest ``alive`` of the manager (or by this manager)."""
        self.last_sign = clock.time()
        """When this device last saw the manager's key post or ``alive``."""
        self.last_rekey = clock.time()
        self._deputy_seen = clock.time()  # as manager: the deputy's last ``alive``
        self._admissions: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._departures = asyncio.Event()  # a leave to apply (coalesced)
        self._rekey_due: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one rekey at a time
        self._members: list[str] | None = None  # the group's, as of ``_group``
        self._silent: set[str] = set()  # devices that stopped answering: no deputies
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def managing(self) -> bool:
        return self.active and self.epochs.manager == self.device_id

    def start(self, spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        for work in (
            self._admit_loop(), self._remove_loop(), self._heartbeat(), self._ratchet(),
            self._watch_manager(),
        ):  # fmt: skip
            self._tasks.append(spawn(work))

    # --- what the board loop tells the manager (no awaiting here) ------------------------

    def announced(self, user_id: str) -> None:
        if not self.managing or user_id in self._queued:
            return
        # Invitees and, if the application decides, others; anyone else costs nothing.
        if user_id in self.invitees or self._admit is not None:
            self._queued.add(user_id)
            self._admissions.put_nowait(user_id)

    def left(self, user_id: str) -> None:
        """Someone left: applied by the manager, at once or when this device manages."""
        self._departures.set()

    def became_manager(self) -> None:
        """This device's key is the one held now: apply what the last manager may not have."""
        self._deputy_seen = self.clock.time()
        self._departures.set()

    def manager_seen(self, deputy: int | None = None, *, alive: bool = False) -> None:
        self.last_sign = self.clock.time()
        if alive:
            self.deputy = deputy

    def deputy_seen(self) -> None:
        self._deputy_seen = self.clock.time()

    # --- the group ----------------------------------------------------------------------

    async def _group(self) -> tuple[tuple[str, ...], list[str]]:
        """The group's admins and its member list (sorted; this manager's own, which it
        keeps up to date with its own changes). The key service says only the list's
        digest: the whole list is read only when someone else changed it, so a rekey
        of a large meeting costs the manager the same as a small one's."""
        summary = await self._groups.digest(self.meeting_id)
        held = self._members if self._members is not None else list(self.epochs.members)
        if member_digest(held) != summary.members_digest:
            held = sorted((await self._groups.get(self.meeting_id)).members)
        self._members = held
        return summary.admins, held

    # --- rekeys ------------------------------------------------------------------------

    async def rekey(self) -> None:
        """Apply departures, draw the next epoch's key, encrypt it once to the group,
        post it; returns once the board delivered it back (installed, or superseded by
        an earlier post). Nothing is drawn or posted once this device left."""
        async with self._lock:
            if not self.active:
                return
            await self.reconcile()
            epoch = 0 if self.epochs.epoch is None else self.epochs.epoch + 1
            _, members = await self._group()
            plaintext = Plaintext.generate()
            encrypted = bytes(encrypt(plaintext, self.group_key, self._signer))
            proof = await make_proof(
                self._groups, self.meeting_id, self.group_key, self.user_id,
                int(self._wall_clock()), "key", encrypted,
            )  # fmt: skip
            # More than a post carries: this manager still admits them all, one who
            # takes over only those carried (and whom its ``admit`` lets in).
            invitees = KeyPost.carried(self.invitees - set(members))
            post = KeyPost(
                epoch, encrypted, *KeyPost.changes(self.epochs.members, members),
                invitees, self.host or self.user_id, proof,
            )  # fmt: skip
            if not self.active:  # left while the key was being made
                return
            landed = self._own_key(encrypted, plaintext, tuple(members))
            try:
                await self.board.post(KeyPost.KIND, bytes(post), timeout=self.timers.post_timeout)
                self.last_rekey = self.clock.time()
                installed = await asyncio.wait_for(landed, self.timers.post_timeout)
            finally:
                landed.cancel()
            if installed and self.managing:
                # The key is out: an ``alive`` the board is too busy to take at once (it
                # is fanning the key post out to a large meeting) is the heartbeat's to
                # retry, not a failed rekey.
                await self._attempt(self._post_alive())

    async def take_over(self) -> None:
        """Manage from the next epoch: a rekey, which first applies every leave."""
        await self.rekey()

    async def reconcile(self) -> list[str]:
        """Remove from the group (and from the admins, where the meeting made them one)
        every user who left and has no device present; the users removed. One who came
        back meanwhile is admitted again."""
        departed = self.roster.departed() - {self.user_id}
        if not departed:
            return []
        admins, members = await self._group()
        gone = [user_id for user_id in sorted(departed) if _holds(members, user_id)]
        if gone:
            await self._groups.remove_members(self.meeting_id, gone)
            self._members = [m for m in members if m not in departed]
        demoted = sorted(departed & set(admins) - {self.host or ""})
        if demoted:
            await self._groups.remove_admins(self.meeting_id, demoted)
        self.roster.settled(departed)
        for user_id in gone:
            if self.roster.has_user(user_id):  # left and joined again meanwhile
                self.announced(user_id)
        return gone

    def _rekey_soon(self) -> None:
        if self._rekey_due is None or self._rekey_due.done():
            self._rekey_due = asyncio.create_task(self._debounced_rekey())

    async def _debounced_rekey(self) -> None:
        await self.clock.sleep(self.timers.debounce)
        if self.managing:
            await self._attempt(self.rekey())

    async def _attempt(self, work: Awaitable[object]) -> bool:
        """Run one piece of background work; a failure is reported, never raised."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a service's refusal, or the application's callback
            self.events.fail(exc)
            return False
        return True

    # --- the background work -------------------------------------------------------------

    async def _remove_loop(self) -> None:
        failures = 0
        while True:
            await self._departures.wait()
            self._departures.clear()
            if not self.managing:
                continue  # became_manager() sets it again
            try:
                removed = await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried, backing off, until the key service takes it
                self.events.fail(exc)
                await self.clock.sleep(RETRY.delay(failures))
                failures += 1
                self._departures.set()
                continue
            failures = 0
            if removed:
                self._rekey_soon()

    async def _admit_loop(self) -> None:
        while True:
            user_id = await self._admissions.get()
            await self._attempt(self._consider(user_id))
            self._queued.discard(user_id)

    async def _consider(self, user_id: str) -> None:
        if not self.managing:
            return
        admins, members = await self._group()
        if _holds(members, user_id):
            return
        invited = user_id in self.invitees or (
            self._admit is not None and await self._admit(user_id)
        )
        if not invited:
            return
        # The host becomes an admin first: once a member it is admitted, and it then
        # takes over at once, which needs the group key.
        if user_id == self.host and user_id not in admins:
            await self._groups.ensure_admin(self.meeting_id, user_id)
        await self._groups.add_members(self.meeting_id, [user_id])
        bisect.insort(members, user_id)

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(self.timers.heartbeat)
            if self.managing:
                await self._attempt(self._post_alive())
            elif self._is_deputy() and self.epochs.epoch is not None:
                # The deputy answers, so the manager knows it would take over.
                alive = Alive(self.epochs.epoch, self.deputy)
                post = self.board.post(Alive.KIND, bytes(alive), timeout=self.timers.heartbeat * 2)
                await self._attempt(post)

    def _is_deputy(self) -> bool:
        mine = self.roster.sender_of(self.device_id)
        return self.active and mine is not None and self.deputy == mine

    async def _post_alive(self) -> None:
        deputy = await self._choose_deputy()
        assert self.epochs.epoch is not None
        alive = Alive(self.epochs.epoch, deputy)
        await self.board.post(Alive.KIND, bytes(alive), timeout=self.timers.heartbeat * 2)

    async def _choose_deputy(self) -> int | None:
        """The deputy named so far while it is present and answers; otherwise the
        earliest-joined participant of another device whose user is a member, made an
        admin if needed."""
        current = None if self.deputy is None else self.roster.get(self.deputy)
        silent = self.clock.time() - self._deputy_seen > self.timers.failover
        if current is not None and silent:
            self._silent.add(current.device_id)
        passed = {self.device_id, *self._silent}
        if current is not None and current.device_id not in passed:
            return current.sender
        candidates = [p for p in self.roster.participants() if p.device_id not in passed]
        if not candidates:
            self.deputy = None
            return None
        admins, members = await self._group()
        deputy = next((p for p in candidates if _holds(members, p.user_id)), None)
        if deputy is None:
            self.deputy = None
            return None  # no member yet: no deputy rather than an outsider
        if deputy.user_id not in admins:
            await self._groups.ensure_admin(self.meeting_id, deputy.user_id)
        self.deputy, self._deputy_seen = deputy.sender, self.clock.time()
        return deputy.sender

    async def _ratchet(self) -> None:
        while True:
            wait = self.last_rekey + self.timers.rekey_interval - self.clock.time()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            if self.managing:
                await self._attempt(self.rekey())
            self.last_rekey = self.clock.time()

    async def _watch_manager(self) -> None:
        """Fail-over: the deputy takes over once the manager is silent too long."""
        while True:
            await self.clock.sleep(self.timers.heartbeat / 2)
            if not self.board_connected:
                # Silence seen from a broken connection says nothing of the manager.
                self.last_sign = self.clock.time()
                continue
            silent = self.clock.time() - self.last_sign
            if not self.managing and self._is_deputy() and silent >= self.timers.failover:
                self.last_sign = self.clock.time()
                if self.epochs.manager is not None:
                    self._silent.add(self.epochs.manager)
                await self._attempt(self.take_over())

    async def stop(self) -> None:
        self.active = False
        for task in [*self._tasks, self._rekey_due]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _holds(members: list[str], user_id: str) -> bool:
    """Whether the sorted ``members`` hold ``user_id``."""
    at = bisect.bisect_left(members, user_id)
    return at < len(members) and members[at] == user_id
