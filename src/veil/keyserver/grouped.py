"""Signed requests decided in groups, one transaction per group: the transform route's
authorizations.

Every transform request is authorized against the database (the device, its
signature, the nonce, the membership, an audit entry). One transaction per request
pays more in fixed costs than in those checks: a hand-off to a thread, BEGIN and
COMMIT, a session, the audit head's lock, and six statements. When a meeting's devices
all ask at once, the key service's one event loop pays them request after request. So
the requests that arrive while a group is being decided wait and go together in the
next group (at low load a group is a single request, and nothing waits): one
transaction and a handful of statements for the whole group, each request still
decided on its own, all released only once the group has committed.

The group's ``decide`` function gives each request its outcome, and may write only
what the group commits whatever the outcomes are: the nonces of the requests that
authenticated (spent, refused or not, so that a refusal cannot be replayed once its
reason has gone away) and the audit entries of those it grants. If the group's
transaction fails, every request in it fails with that error, and the nonces of those
that authenticated are spent in a transaction of their own, as ``KeyService.signed``
does for a single request.
"""

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from sqlalchemy.orm import Session

from veil.keyserver.auth import SignedCall, spend_all

if TYPE_CHECKING:
    from veil.keyserver.service import KeyService

Item = TypeVar("Item")

GROUP_LIMIT: Final = 128
"""Requests per group at most: a group holds the database's write lock (SQLite) and
the audit head (PostgreSQL) until it commits."""


@dataclass(slots=True, eq=False)
class Pending(Generic[Item]):
    """A request waiting in a group: its signed call, what the route needs to decide
    it, and, once decided, its outcome (an answer, or the error it is refused with)."""

    call: SignedCall
    item: Item
    loop: asyncio.AbstractEventLoop = field(repr=False)
    answer: "asyncio.Future[Any]" = field(repr=False)
    authenticated: bool = False
    outcome: Any = field(default=None, repr=False)
    failed: bool = False

    def grant(self, outcome: Any) -> None:
        self.outcome, self.failed = outcome, False

    def refuse(self, error: BaseException) -> None:
        self.outcome, self.failed = error, True


Decide = Callable[["KeyService", Session, list[Pending[Any]]], None]
"""Gives every request of a group its outcome, in the group's transaction."""


class GroupedCommits(Generic[Item]):
    """Requests decided by ``decide`` in groups of up to ``limit``, one transaction each."""

    def __init__(self, service: "KeyService", decide: Decide, *, limit: int = GROUP_LIMIT) -> None:
        self._service, self._decide, self._limit = service, decide, limit
        self._waiting: list[Pending[Item]] = []
        self._draining = False
        # Requests may come from more than one event loop (each test client has its
        # own): the queue is shared under a lock, and each answer goes to its own loop.
        self._lock = threading.Lock()
        self.groups = 0
        """Groups ended (committed or failed)."""
        self.requests = 0
        """Requests in those groups."""

    @property
    def waiting(self) -> int:
        """Requests waiting for the next group."""
        with self._lock:
            return len(self._waiting)

    async def decide(self, call: SignedCall, item: Item) -> Any:
        """The outcome ``decide`` gave this request once its group committed (raised, if
        it is a refusal or the group's transaction failed)."""
        loop = asyncio.get_running_loop()
        pending = Pending(call, item, loop, loop.create_future())
        with self._lock:
            self._waiting.append(pending)
            start, self._draining = not self._draining, True
        if start:
            # The drain runs in a thread until the queue is empty. Nothing awaits it:
            # it answers every request it takes, whatever happens.
            try:
                loop.run_in_executor(None, self._drain)
            except RuntimeError:
                # This loop's executor has shut down (the loop is closing). The drain
                # must run all the same: requests from other loops are queued behind
                # this one, and none of them would start another while it is due.
                threading.Thread(target=self._drain, name="veil-grouped-commits").start()
        return await pending.answer

    def _drain(self) -> None:
        while True:
            with self._lock:
                group = self._waiting[: self._limit]
                del self._waiting[: self._limit]
                if not group:
                    self._draining = False
                    return
            try:
                with self._service.transaction() as session:
                    self._decide(self._service, session, group)
            except BaseException as error:
                for pending in group:
                    pending.refuse(error)
                self._spend_nonces([p for p in group if p.authenticated])
            self.groups, self.requests = self.groups + 1, self.requests + len(group)
            for pending in group:
                _answer(pending)

    def _spend_nonces(self, authenticated: list[Pending[Item]]) -> None:
        if not authenticated:
            return
        service = self._service
        try:
            # In one statement, in the order every group spends nonces in (a failed
            # group on each of two replicas could otherwise deadlock over shared ones).
            with service.transaction() as session:
                spend_all(session, service.settings, [pending.call for pending in authenticated])
        except Exception:  # noqa: S110 (the group's own error is what they report)
            pass


def _answer(pending: Pending[Any]) -> None:
    def settle() -> None:
        if pending.answer.done():  # the request went away
            return
        if pending.failed:
            try:
                pending.answer.set_exception(pending.outcome)
            except TypeError:  # StopIteration, which a future refuses: still an answer
                failure = RuntimeError("the group's transaction failed")
                pending.answer.set_exception(failure)
        else:
            pending.answer.set_result(pending.outcome)

    with suppress(RuntimeError):  # its loop has closed: nobody is waiting
        pending.loop.call_soon_threadsafe(settle)
