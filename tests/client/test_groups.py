"""Groups through the SDK: membership decides who decrypts what is encrypted to a group."""

import sqlite3

import pytest

from veil.client import Conflict, Forbidden, GroupInfo, NotFound, NotMember


def test_group_lifecycle_and_who_can_read(sdk) -> None:  # type: ignore[no-untyped-def]
    a, b, c, d = (sdk.user(n) for n in ("alice", "bob", "carol", "dave"))

    async def main() -> None:
        alice, bob, carol, dave = [await sdk.device(u) for u in (a, b, c, d)]

        group = await alice.groups.create(members=[b, c])
        assert await alice.groups.get(group) == GroupInfo(group, (a,), tuple(sorted([b, c])))
        assert await bob.groups.get(group) == await alice.groups.get(group)
        assert group in await alice.groups.list()
        assert group in await bob.groups.list()
        assert group not in await dave.groups.list()
        with pytest.raises(NotMember) as caught:
            await dave.groups.get(group)
        assert caught.value.code == "not_member"
        # Members are not admins: bob cannot unwrap the group key to add anyone.
        with pytest.raises(Forbidden) as caught:
            await bob.groups.add_members(group, [d])
        assert caught.value.code == "not_admin"

        first = await alice.documents.encrypt(b"to the team", groups=[group], keep_access=False)
        assert await bob.documents.decrypt(first) == b"to the team"
        assert await carol.documents.decrypt(first) == b"to the team"
        with pytest.raises(NotMember) as caught:
            await dave.documents.decrypt(first)
        assert caught.value.code == "no_access"

        # A new member reads what was encrypted to the group before they joined.
        await alice.groups.add_members(group, [d])
        assert (await alice.groups.get(group)).members == tuple(sorted([b, c, d]))
        assert await dave.documents.decrypt(first) == b"to the team"
        with pytest.raises(Conflict) as caught:
            await alice.groups.add_members(group, [d])
        assert caught.value.code == "already_member"

        # A removed member reads nothing encrypted to the group, after or before.
        await alice.groups.remove_members(group, [c])
        assert (await alice.groups.get(group)).members == tuple(sorted([b, d]))
        assert group not in await carol.groups.list()
        second = await alice.documents.encrypt(b"carol has left", groups=[group], keep_access=False)
        with pytest.raises(NotMember) as caught:
            await carol.documents.decrypt(second)
        assert caught.value.code == "no_access"
        with pytest.raises(NotMember):
            await carol.documents.decrypt(first)
        assert await bob.documents.decrypt(second) == b"carol has left"

        # Admins: bob becomes one and can use the group key; then stops being one.
        await alice.groups.add_admins(group, [b])
        assert (await alice.groups.get(group)).admins == tuple(sorted([a, b]))
        # Adding an admin twice is a conflict; ensuring one is not (two managers of a
        # meeting naming the same deputy at once).
        with pytest.raises(Conflict) as caught:
            await alice.groups.add_admins(group, [b])
        assert caught.value.code == "already_admin"
        await alice.groups.ensure_admin(group, b)
        assert (await alice.groups.get(group)).admins == tuple(sorted([a, b]))
        await bob.groups.add_members(group, [c])
        assert await carol.documents.decrypt(second) == b"carol has left"
        await alice.groups.remove_admins(group, [b])
        assert (await alice.groups.get(group)).admins == (a,)
        # bob still holds the group key in memory; the key service refuses him all the same.
        with pytest.raises(Forbidden) as caught:
            await bob.groups.remove_members(group, [c])
        assert caught.value.code == "not_admin"
        with pytest.raises(Forbidden) as caught:
            await bob.groups.delete(group)
        assert caught.value.code == "not_admin"
        with pytest.raises(Conflict) as caught:
            await alice.groups.remove_admins(group, [a])
        assert caught.value.code == "last_admin"

        # Deleting the group deletes every membership at once.
        await alice.groups.delete(group)
        with pytest.raises(NotFound):
            await alice.groups.get(group)
        for device in (alice, bob, carol, dave):
            assert group not in await device.groups.list()
        for member in (bob, carol, dave):
            for document in (first, second):
                with pytest.raises(NotMember) as caught:
                    await member.documents.decrypt(document)
                assert caught.value.code == "no_access"
        # Nothing new can be encrypted to it: the group has no public key any more.
        with pytest.raises(NotFound):
            await bob.documents.encrypt(b"to a deleted group", groups=[group])
        with pytest.raises(NotFound):
            await alice.groups.add_members(group, [b])

    sdk.run(main)


def _add_member_requests(sdk, group: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Who was added to ``group``, by which request (its signature in the audit log)."""
    with sqlite3.connect(sdk.stack.keyserver_database) as connection:
        rows = connection.execute(
            "SELECT subject, request_signature FROM audit_log WHERE action = 'group.add_member'"
        ).fetchall()
    return {subject.split("/", 1)[1]: signature for subject, signature in rows if
            subject.startswith(f"{group}/")}  # fmt: skip


def test_several_members_are_added_in_one_request_all_or_none(sdk) -> None:  # type: ignore[no-untyped-def]
    a, b, c, d, e = (sdk.user(n) for n in ("alice", "bob", "carol", "dave", "erin"))

    async def main() -> None:
        alice, *_ = [await sdk.device(u) for u in (a, b, c, d, e)]
        group = await alice.groups.create(members=[b, c, d])
        added = _add_member_requests(sdk, group)
        assert set(added) == {b, c, d} and len(set(added.values())) == 1  # one request
        # A batch naming a member already in it adds no one.
        other = await alice.groups.create(members=[b])
        with pytest.raises(Conflict) as caught:
            await alice.groups.add_members(other, [e, b])
        assert caught.value.code == "already_member"
        assert (await alice.groups.get(other)).members == (b,)

    sdk.run(main)
