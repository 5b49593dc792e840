"""Leaves, rekeys and the ratchet (timers driven by an injected clock), and what a
removed participant or a revoked device can still get: nothing of the next epoch."""

import asyncio

import pytest

from veil.client import DeviceRevoked, NotMember, Unavailable
from veil.client.media import MeetingMedia
from veil.client.meeting import Meeting, MeetingTimers
from veil.protocol import MediaKind


def test_the_default_timers_are_the_seeds() -> None:
    timers = MeetingTimers()
    assert timers.debounce == 10.0
    assert timers.rekey_interval == 300.0
    assert timers.join_retries == (1.0, 5.0, 10.0, 10.0)


async def _settle() -> None:
    """Give the meeting tasks (board loops, HTTP calls) wall time to act, if they would."""
    await asyncio.sleep(0.4)


def test_leaves_inside_one_debounce_window_give_exactly_one_rekey(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave", "erin")]
        alice, *others = await env.devices(*names)
        clock = env.FakeClock()
        meeting_id = env.meeting_id()
        # The manager runs on the default timers (10 s debounce), driven by the fake clock.
        ma = await Meeting.start(
            alice, meeting_id, invitees=[d.user_id for d in others], clock=clock
        )
        env.track(ma)
        mb, mc, md, me = await asyncio.gather(
            *(Meeting.join(d, ma.invitation, timers=env.fast) for d in others)
        )
        env.track(mb, mc, md, me)
        leavers = {m.device.user_id for m in (mb, mc, md)}

        await asyncio.gather(mb.leave(), mc.leave(), md.leave())

        async def removed() -> bool:
            group = await alice.groups.get(meeting_id)
            return not leavers & set(group.members)

        await env.eventually(removed)
        await env.eventually(lambda: ma.manager._rekey_due is not None)
        await _settle()
        assert ma.epoch == me.epoch == 0  # wall time passes; the debounce does not

        clock.advance(9.9)
        await _settle()
        assert ma.epoch == 0

        clock.advance(0.1)
        await me.wait_for_epoch(1, timeout=10)
        await _settle()
        assert ma.epoch == me.epoch == 1
        assert ma.rekeys == me.rekeys == 1
        group = await alice.groups.get(meeting_id)
        assert sorted(group.members) == sorted([alice.user_id, me.device.user_id])
        assert ma.members == me.members == tuple(sorted(group.members))
        assert me.security_code == ma.security_code
        assert not ma.errors and not me.errors

    env.run(main)


def test_the_ratchet_rekeys_on_the_clock_and_restarts_at_every_rekey(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol")]
        alice, bob, carol = await env.devices(*names)
        clock = env.FakeClock()
        meeting_id = env.meeting_id()
        ma = await Meeting.start(
            alice, meeting_id, invitees=[bob.user_id, carol.user_id], clock=clock
        )
        env.track(ma)
        mb, mc = await asyncio.gather(
            *(Meeting.join(d, ma.invitation, timers=env.fast) for d in (bob, carol))
        )
        env.track(mb, mc)

        clock.advance(299)  # t = 299: not yet
        await _settle()
        assert ma.epoch == mb.epoch == 0

        clock.advance(1)  # t = 300: the five-minute ratchet
        await mb.wait_for_epoch(1, timeout=10)
        await mc.wait_for_epoch(1, timeout=10)
        assert ma.epoch == 1 and ma.rekeys == 1

        clock.advance(100)  # t = 400: carol leaves; the debounce (10 s) rekeys at t = 410
        await mc.leave()
        await env.eventually(lambda: ma.manager._rekey_due is not None)
        clock.advance(10)
        await mb.wait_for_epoch(2, timeout=10)
        assert ma.epoch == 2

        clock.advance(190)  # t = 600: the ratchet's old deadline, pushed out by the rekey
        await _settle()
        assert ma.epoch == mb.epoch == 2

        clock.advance(109)  # t = 709
        await _settle()
        assert ma.epoch == 2

        clock.advance(1)  # t = 710 = 410 + 300
        await mb.wait_for_epoch(3, timeout=10)
        await _settle()
        assert ma.epoch == mb.epoch == 3
        assert ma.rekeys == mb.rekeys == 3
        assert ma.security_code == mb.security_code
        assert mc.epoch == 1  # carol left during epoch 1: she never saw epochs 2 and 3
        assert not ma.errors and not mb.errors

    env.run(main)


def test_a_removed_participant_decrypts_nothing_of_the_next_epoch(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol")]
        alice, bob, carol = await env.devices(*names)
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        assert mc.media is not None and mc.media_channel is not None

        # Before leaving, carol decrypts the room; a malicious client would keep the key.
        await ma.send_frame(MediaKind.AUDIO, b"epoch 0")
        frame = await asyncio.wait_for(mc.receive_frame(), 5)
        assert frame is not None and frame.payload == b"epoch 0"
        kept_key = mc.epochs.key(0)

        await mc.leave()
        assert mc.ciphertexts_held() == 0

        # Carol's media channel stays open: she records everything the relay forwards.
        relayed: list[bytes] = []

        async def record() -> None:
            assert mc.media_channel is not None
            while True:
                relayed.append((await mc.media_channel.receive())[2])

        recorder = asyncio.create_task(record())
        for m in (ma, mb):
            await m.wait_for_epoch(1, timeout=10)
        group = await alice.groups.get(ma.meeting_id)
        assert carol.user_id not in group.members
        sent = 0
        for i in range(5):
            await ma.send_frame(MediaKind.AUDIO, b"epoch 1 audio %d" % i)
            await mb.send_frame(MediaKind.VIDEO, b"epoch 1 video %d" % i, stream=1)
            sent += 2
        await env.eventually(lambda: len(relayed) >= sent)
        recorder.cancel()
        assert len(relayed) == sent
        assert all(m.epoch == 1 for m in (ma, mb))

        # Her own client: nothing decrypts; after the grace period all count as unknown.
        decrypted_before = mc.media.counters.decrypted
        assert [mc.media.unprotect(f) for f in relayed] == [None] * sent
        await asyncio.sleep(env.fast.epoch_grace + 0.1)
        assert mc.media.unprotect(relayed[0]) is None
        assert mc.media.counters.decrypted == decrypted_before
        assert mc.media.counters.unknown_epoch >= sent

        # A client that kept the epoch-0 key (and tries it as epoch 1) gets nothing either.
        evil = MeetingMedia(ma.meeting_id, sender=mc.sender, grace=60, clock=lambda: 0.0)
        evil.install(0, kept_key)
        assert all(evil.unprotect(f) is None for f in relayed)
        assert evil.install(1, kept_key) == []  # the waiting epoch-1 frames: none opens
        assert evil.counters.decrypted == 0 and evil.counters.tampered == sent

        # The key service refuses her the epoch-1 key post.
        _, key_post = await env.newest_key_post(carol, ma.meeting_id)
        assert key_post.epoch == 1 and key_post.left == (carol.user_id,)
        with pytest.raises(NotMember) as refused:
            await carol.session.transform(key_post.encrypted_key, group_id=ma.meeting_id)
        assert refused.value.status == 403 and refused.value.code == "not_member"
        assert mc.epoch == 0
        assert mc.ciphertexts_held() == 0

    env.run(main)


def test_a_revoked_device_cannot_get_the_next_epoch_while_its_user_can(env) -> None:
    async def main() -> None:
        alice_name, bob_name, carol_name = (env.name(n) for n in ("alice", "bob", "carol"))
        alice, laptop, phone, carol = await env.devices(alice_name, bob_name, bob_name, carol_name)
        ma, m_laptop, m_phone, mc = await env.start_and_join(alice, [laptop, phone, carol])
        assert [m.epoch for m in (ma, m_laptop, m_phone, mc)] == [0, 0, 0, 0]

        # Bob's phone is lost: his laptop revokes it. Bob stays a member.
        await laptop.revoke_device(phone.device_id)
        await mc.leave()  # a rekey follows
        for m in (ma, m_laptop):
            await m.wait_for_epoch(1, timeout=10)
        group = await alice.groups.get(ma.meeting_id)
        assert bob_name in group.members
        assert bob_name in ma.members

        await env.eventually(lambda: any(isinstance(e, DeviceRevoked) for e in m_phone.errors))
        assert m_phone.epoch == 0 and m_phone.epochs.key(1) is None
        encrypted = (await env.newest_key_post(laptop, ma.meeting_id))[1].encrypted_key
        with pytest.raises(DeviceRevoked) as refused:
            await phone.session.transform(encrypted, group_id=ma.meeting_id)
        assert refused.value.code == "device_revoked"
        # The same ciphertext still opens for bob's active device.
        transformed = await laptop.session.transform(encrypted, group_id=ma.meeting_id)
        assert transformed is not None

        await ma.send_frame(MediaKind.AUDIO, b"epoch 1")
        frame = await asyncio.wait_for(m_laptop.receive_frame(), 5)
        assert frame is not None and frame.payload == b"epoch 1" and frame.epoch == 1

    env.run(main)


@pytest.mark.parametrize("first", ["manager", "taker"])
def test_two_admins_rotating_at_once_converge_on_one_key_and_one_manager(env, first) -> None:  # type: ignore[no-untyped-def]
    # A hand-over (or a late host) racing the manager's own rekey: both post epoch 1.
    # The board's order decides (its first key post of an epoch wins everywhere), and the
    # admin that was taking over, if it lost, takes over again at the next epoch.
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        await alice.groups.add_admins(ma.meeting_id, [bob.user_id])
        # Both draw epoch 1 at once; the other one's post reaches the board first.
        late = mb if first == "manager" else ma
        post = late.board.post

        async def delayed(kind: str, body: bytes, **options: float) -> int:
            await asyncio.sleep(0.3)
            return await post(kind, body, **options)

        late.board.post = delayed  # type: ignore[method-assign]
        await asyncio.gather(ma.rekey(), mb._take_over())
        late.board.post = post  # type: ignore[method-assign]
        meetings = (ma, mb, mc)

        async def converged() -> bool:
            return (
                len({m.epoch for m in meetings}) == 1
                and len({m.security_code for m in meetings}) == 1
                and all(m.epochs.manager == bob.device_id for m in meetings)
            )

        await env.eventually(converged)
        assert [m.managing for m in meetings] == [False, True, False]
        # The taker won at once, or lost and took over again at the next epoch.
        assert ma.epoch == (1 if first == "taker" else 2)
        # Media flows on the key everyone holds.
        await mb.send_frame(MediaKind.AUDIO, b"one key")
        for m in (ma, mc):
            frame = await asyncio.wait_for(m.receive_frame(), 5)
            assert frame is not None and frame.payload == b"one key"

    env.run(main)


def test_a_key_post_whose_ack_was_lost_is_taken_back_from_the_board(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob = await env.devices(*(env.name(n) for n in ("alice", "bob")))
        ma, mb = await env.start_and_join(alice, [bob])
        post = ma.board.post

        async def ack_lost(kind: str, body: bytes, **options: float) -> int:
            await post(kind, body, **options)  # the board stores and broadcasts it...
            raise Unavailable(0, "closed", "the connection dropped before the ack")

        ma.board.post = ack_lost  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await ma.rekey()
        ma.board.post = post  # type: ignore[method-assign]

        async def converged() -> bool:  # ...so everyone, the poster too, holds epoch 1
            return ma.epoch == mb.epoch == 1 and ma.security_code == mb.security_code

        await env.eventually(converged)
        assert ma.managing and mb.epochs.manager == alice.device_id

    env.run(main)


def test_a_rekey_reads_the_member_list_only_when_someone_else_changed_it(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave")]
        alice, bob, carol, dave = await env.devices(*names)
        ma, mb, _ = await env.start_and_join(alice, [bob, carol])
        reads = 0
        read = alice.groups.get

        async def counted(group_id: str):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return await read(group_id)

        alice.groups.get = counted  # type: ignore[method-assign]
        for epoch in (1, 2):
            await ma.rekey()
            await mb.wait_for_epoch(epoch, timeout=10)
        assert reads == 0  # the key service's digest matched the manager's own list
        assert ma.security_code == mb.security_code

        # Someone else changes the group (here: Alice's device outside the meeting).
        await alice.groups.add_members(ma.meeting_id, [dave.user_id])
        await ma.rekey()
        await mb.wait_for_epoch(3, timeout=10)
        assert reads == 1
        assert dave.user_id in ma.members and ma.members == mb.members
        _, post = await env.newest_key_post(bob, ma.meeting_id)
        assert (post.joined, post.left) == ((dave.user_id,), ())

    env.run(main)
