"""Member lists by digest: each key post carries only its change, and every client
follows the lists in board order; one it could not follow is fetched from the key
service and taken only if its digest is the post's."""

import asyncio
from collections.abc import Sequence

import pytest

from veil.client import MembersChanging
from veil.client.meeting.members import MemberLists
from veil.crypto.keys import PrivateKey
from veil.protocol import MeetingProof
from veil.protocol.board import KeyPost, member_digest

PROOF = MeetingProof.make("key", "m", "alice", 1, PrivateKey.generate(), b"k")


def _post(before: Sequence[str], after: Sequence[str]) -> KeyPost:
    return KeyPost(1, b"k", *KeyPost.changes(before, after), (), "alice", PROOF)


class Service:
    """The key service's current list of the group, and how often it was asked."""

    def __init__(self, members: Sequence[str]) -> None:
        self.members, self.asked = tuple(members), 0

    async def __call__(self) -> tuple[str, ...]:
        self.asked += 1
        return self.members


def test_a_client_follows_every_change_from_the_empty_list_without_asking() -> None:
    service = Service(())
    lists = MemberLists(service)
    rosters = [("alice",), ("alice", "bob"), ("alice", "bob", "carol"), ("alice", "carol")]
    before: tuple[str, ...] = ()
    for after in rosters:
        post = _post(before, after)
        lists.follow(post)
        assert asyncio.run(lists.of(post)) == after
        before = after
    assert service.asked == 0


def test_a_list_it_could_not_follow_is_fetched_and_checked_against_the_digest() -> None:
    members = ("alice", "bob", "carol")
    post = _post(("alice", "bob"), members)  # this client never held the base
    service = Service(members)
    lists = MemberLists(service)
    lists.follow(post)
    assert asyncio.run(lists.of(post)) == members
    assert service.asked == 1
    assert asyncio.run(lists.of(post)) == members  # kept: asked once
    assert service.asked == 1


def test_a_key_service_list_that_is_not_the_posts_is_not_taken() -> None:
    post = _post(("alice",), ("alice", "bob"))
    service = Service(("alice", "bob", "mallory"))  # changed since, or substituted
    lists = MemberLists(service)
    with pytest.raises(MembersChanging):
        asyncio.run(lists.of(post))
    service.members = ("alice", "bob")  # once the group is the post's again
    assert asyncio.run(lists.of(post)) == ("alice", "bob")


def test_a_change_that_does_not_lead_to_the_digest_is_not_followed() -> None:
    service = Service(("alice", "bob"))
    lists = MemberLists(service)
    lists.remember(("alice",))
    honest = _post(("alice",), ("alice", "bob"))
    lying = KeyPost(
        1, b"k", honest.members_digest, honest.base_digest, ("mallory",), (), (), "alice", PROOF
    )
    lists.follow(lying)  # learns nothing: the list is fetched
    assert asyncio.run(lists.of(honest)) == ("alice", "bob")
    assert service.asked == 1


def test_a_large_change_travels_as_a_digest_and_is_fetched_once() -> None:
    members = tuple(sorted(f"user-{i:05d}" for i in range(3000)))
    post = _post((), members)
    assert (post.joined, post.left, post.base_digest) == ((), (), member_digest(members))
    service = Service(members)
    lists = MemberLists(service)
    lists.follow(post)
    assert asyncio.run(lists.of(post)) == members
    # The next change is small again, and followed from the fetched list.
    smaller = _post(members, members[1:])
    lists.follow(smaller)
    assert asyncio.run(lists.of(smaller)) == members[1:]
    assert service.asked == 1


def test_users_admitted_after_the_post_do_not_keep_a_joiner_from_its_list() -> None:
    """Admissions do not rekey: the group may hold the post's invitees and the joiner
    itself by the time the joiner fetches it. The post's own list is still found, and
    only it (it must have the post's digest)."""
    post = KeyPost(
        1, b"k", *KeyPost.changes((), ("alice", "bob")), ("dave", "erin"), "alice", PROOF
    )
    lists = MemberLists(Service(("alice", "bob", "dave", "erin", "frank")), "frank")
    assert asyncio.run(lists.of(post)) == ("alice", "bob")
    stranger = MemberLists(Service(("alice", "bob", "mallory")), "frank")
    with pytest.raises(MembersChanging):
        asyncio.run(stranger.of(post))
