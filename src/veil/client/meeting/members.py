"""The member lists of a meeting's recent key posts, by digest.

A key post names its member list by digest and carries only the change from the list
of the key its poster held (``KeyPost``). Every client follows each key post in board
order, so it knows the list of every post whose base it knew: a client on the board
from the start knows them all. A client that joined from a board whose history it
could not follow, or saw a change too large to carry, fetches the group's list from
the key service and takes it only if its digest is the post's (the key service cannot
substitute a list), trying again while the group is changing.
"""

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from veil.client.errors import MembersChanging
from veil.protocol.board import KeyPost, member_digest

_KEPT = 16
"""Lists kept: key posts whose list a client has not taken yet are few."""


class MemberLists:
    def __init__(self, fetch: Callable[[], Awaitable[Sequence[str]]], user_id: str = "") -> None:
        self._fetch, self._user_id = fetch, user_id
        self._lists: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()
        self.remember(())

    def remember(self, members: Sequence[str]) -> bytes:
        """Keep ``members`` (a list this client made or checked); its digest."""
        members = tuple(sorted(members))
        digest = member_digest(members)
        self._lists[digest] = members
        self._lists.move_to_end(digest)
        while len(self._lists) > _KEPT:
            self._lists.popitem(last=False)
        return digest

    def follow(self, post: KeyPost) -> None:
        """Learn a key post's list from its base, if this client holds the base."""
        if post.members_digest in self._lists:
            self._lists.move_to_end(post.members_digest)
            return
        base = self._lists.get(post.base_digest)
        members = None if base is None else post.apply(base)
        if members is not None:
            self.remember(members)

    async def of(self, post: KeyPost) -> tuple[str, ...]:
        """The key post's member list: followed, or fetched and checked."""
        known = self._lists.get(post.members_digest)
        if known is not None:
            return known
        current = set(await self._fetch())
        # Admissions do not rekey: users added since the post (its invitees, this
        # client's own user) may be in the group now. Only a list with the post's
        # digest is taken, so no candidate can substitute one.
        late = set(post.invitees)
        for candidate in (current, current - late, current - late - {self._user_id}):
            members = tuple(sorted(candidate))
            if member_digest(members) == post.members_digest:
                self.remember(members)
                return members
        raise MembersChanging("the group's members are not yet those of the key post")
