"""Key pinning: a user's master public key, once seen, must not change unnoticed.

The key service has no call that changes a user's master public key (a user keeps
it for life), so an honest service never serves a different one. A *dishonest* key
service (or someone who took over its database) would do exactly that to read what
is encrypted to the user. The test plays that attacker: it rewrites the user's key
in the key service's database, so the SDK really receives a substituted key from the
real service over HTTP, and must refuse it.
"""

import contextlib
import sqlite3
from pathlib import Path

import pytest

from veil.client import PinnedKeyChanged
from veil.crypto.keys import PrivateKey


def substitute_key(database: Path, user_id: str, key: bytes) -> None:
    """Make the key service serve ``key`` as ``user_id``'s master public key."""
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
        updated = db.execute(
            "UPDATE users SET master_public_key = ? WHERE id = ?", (key, user_id)
        ).rowcount
    assert updated == 1


def test_a_substituted_key_is_refused_until_the_change_is_accepted(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    a, b, m = sdk.user("alice"), sdk.user("bob"), sdk.user("mallory")
    store = sdk.store()

    async def main() -> None:
        alice = await sdk.device(a, store=store)
        bob = await sdk.device(b)
        mallory = await sdk.device(m)
        genuine, forged = bytes(bob.master_public_key), bytes(mallory.master_public_key)

        keys = await alice.public_keys([b])
        assert bytes(keys[b]) == genuine
        assert b in alice.pins
        # Pins (the master key, then the identity key) are saved with the device context.
        assert store.load().pins[b].startswith(genuine)
        group = await alice.groups.create()

        substitute_key(stack.keyserver_database, b, forged)
        with pytest.raises(PinnedKeyChanged) as caught:
            await alice.public_keys([b])
        assert caught.value.user_id == b
        with pytest.raises(PinnedKeyChanged) as caught:
            await alice.public_keys([a, m, b])
        assert caught.value.user_id == b
        # Everything that encrypts to bob goes through the pins.
        with pytest.raises(PinnedKeyChanged):
            await alice.documents.encrypt(b"for bob only", users=[b])
        with pytest.raises(PinnedKeyChanged) as caught:
            await alice.groups.add_members(group, [b])
        assert caught.value.user_id == b
        with pytest.raises(PinnedKeyChanged):
            await alice.groups.add_admins(group, [b])
        info = await alice.groups.get(group)
        assert (info.admins, info.members) == ((a,), ())

        # The pin survives a restart: the reloaded device refuses the key too.
        await alice.close()
        reloaded = await sdk.device(a, store=store)
        assert reloaded.device_id == alice.device_id
        with pytest.raises(PinnedKeyChanged):
            await reloaded.public_keys([b])

        # The user confirmed the change (out of band): accept it, and it is re-pinned.
        accepted = await reloaded.public_keys([b], accept_changes=True)
        assert bytes(accepted[b]) == forged
        assert store.load().pins[b].startswith(forged)
        assert bytes((await reloaded.public_keys([b]))[b]) == forged

    sdk.run(main)


def test_groups_add_members_refuses_a_changed_pin(sdk) -> None:  # type: ignore[no-untyped-def]
    """The same check with the pin table edited instead: the device remembers another
    key for carol than the one the key service serves (as after carol's key was
    substituted at first contact and the real one turns up later)."""
    a, c, m = sdk.user("alice"), sdk.user("carol"), sdk.user("mallory")

    async def main() -> None:
        alice = await sdk.device(a)
        await sdk.device(c)
        mallory = await sdk.device(m)
        group = await alice.groups.create()
        alice.pins._pinned[c] = bytes(mallory.master_public_key) + bytes(48)

        with pytest.raises(PinnedKeyChanged) as caught:
            await alice.groups.add_members(group, [c])
        assert caught.value.user_id == c
        assert (await alice.groups.get(group)).members == ()

        await alice.groups.add_members(group, [c], accept_changes=True)
        assert (await alice.groups.get(group)).members == (c,)
        assert not alice.pins._pinned[c].startswith(bytes(mallory.master_public_key))

    sdk.run(main)


def test_group_keys_are_pinned_for_what_is_encrypted_to_groups(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    a, b = sdk.user("alice"), sdk.user("bob")

    async def main() -> None:
        alice, bob = await sdk.device(a), await sdk.device(b)
        group = await alice.groups.create(members=[b])
        genuine = await bob.groups.public_key(group)  # bob's first sight of it: pinned
        assert genuine == await alice.groups.public_key(group)  # alice pinned it at creation

        # The key service serves a group key of its own (one it holds the private key of).
        planted = PrivateKey.generate().public_key
        with contextlib.closing(sqlite3.connect(stack.keyserver_database, timeout=30)) as db, db:
            db.execute("UPDATE groups SET public_key = ? WHERE id = ?", (bytes(planted), group))
        for device in (alice, bob):
            with pytest.raises(PinnedKeyChanged) as caught:
                await device.documents.encrypt(b"for the group", groups=[group])
            assert caught.value.user_id == group
        assert await alice.groups.public_key(group, accept_changes=True) == planted

    sdk.run(main)


def test_safety_numbers_match_for_genuine_keys_and_reveal_a_first_contact_swap(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    a, b, c, m = sdk.user("alice"), sdk.user("bob"), sdk.user("carol"), sdk.user("mallory")

    async def main() -> None:
        alice, bob = await sdk.device(a), await sdk.device(b)
        await sdk.device(m)
        number = await alice.safety_number(b)
        assert number == await bob.safety_number(a)  # the same on both screens
        assert len(number.split()) == 6 and all(len(g) == 5 for g in number.split())
        assert number != await alice.safety_number(m)

        # Carol's device first meets bob while the key service serves mallory's keys as
        # his: pins cannot tell (nothing was pinned yet); the numbers can.
        database = stack.keyserver_database
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
            genuine = db.execute(
                "SELECT master_public_key, client_public_key FROM users WHERE id = ?", (b,)
            ).fetchone()
            swapped = db.execute(
                "SELECT master_public_key, client_public_key FROM users WHERE id = ?", (m,)
            ).fetchone()
            db.execute(
                "UPDATE users SET master_public_key = ?, client_public_key = ? WHERE id = ?",
                (*swapped, b),
            )
        carol = await sdk.device(c)
        carols_view = await carol.safety_number(b)
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
            db.execute(
                "UPDATE users SET master_public_key = ?, client_public_key = ? WHERE id = ?",
                (*genuine, b),
            )
        assert carols_view != await bob.safety_number(c)

    sdk.run(main)
