"""Meetings under failure, over the real services: a manager that stops, a leave racing
a key, forged senders, and a board flooded with announces."""

import asyncio

import pytest

from veil.client import NotMember, Unavailable
from veil.client.media import MeetingMedia
from veil.client.meeting import (
    EpochChanged,
    ManagementChanged,
    Meeting,
    MeetingFailure,
    MeetingTimers,
    ParticipantLeft,
)
from veil.crypto.keys import Plaintext
from veil.crypto.schedule import media_kid, sender_base_key, session_key
from veil.crypto.sframe import SFrameSender
from veil.protocol import MediaKind
from veil.protocol.board import Alive, Announce

FAILOVER = MeetingTimers(
    debounce=0.3, rekey_interval=60.0, join_retries=(0.2, 0.3, 0.3), epoch_grace=0.3,
    heartbeat=0.2, failover=1.0,
)  # fmt: skip


def test_a_deputy_takes_over_from_a_stopped_manager_and_applies_the_leave_it_missed(
    env,
) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave")]
        alice, bob, carol, dave = await env.devices(*names)
        ma, mb, mc, md = await env.start_and_join(alice, [bob, carol, dave], timers=FAILOVER)
        # The manager names a deputy (the earliest joiner) in its heartbeat.
        await env.eventually(lambda: mb.manager.deputy is not None)
        deputy = next(m for m in (mb, mc, md) if m.sender == mb.manager.deputy)
        assert deputy.device.user_id in (await alice.groups.get(ma.meeting_id)).admins
        others = [m for m in (mb, mc, md) if m is not deputy]
        leaver = others[0]
        stayer = others[1]
        changes: list[EpochChanged] = []
        deputy.events.on(lambda e: changes.append(e) if isinstance(e, EpochChanged) else None)

        # The manager's process dies (no leave, no end); right after, someone leaves.
        await ma.close(rotate_device_keys=False)
        stopped = asyncio.get_running_loop().time()
        await leaver.leave()

        # The deputy notices the silence, removes the leaver, and rekeys, in bounded time.
        await deputy.wait_for_epoch(1, timeout=FAILOVER.failover + 5)
        took = asyncio.get_running_loop().time() - stopped
        assert took < FAILOVER.failover + 3, took
        await stayer.wait_for_epoch(1, timeout=5)
        assert deputy.managing and stayer.epochs.manager == deputy.device.device_id
        assert deputy.security_code == stayer.security_code
        group = await deputy.device.groups.get(deputy.meeting_id)
        assert leaver.device.user_id not in group.members
        assert leaver.device.user_id not in deputy.members
        assert changes and changes[-1].manager == deputy.device.device_id
        # The leaver cannot get the new key from the key service.
        _, key_post = await env.newest_key_post(leaver.device, deputy.meeting_id)
        assert key_post.epoch == 1
        with pytest.raises(NotMember):
            await leaver.device.session.transform(
                key_post.encrypted_key, group_id=deputy.meeting_id
            )
        assert leaver.epoch == 0 and leaver.ciphertexts_held() == 0
        # The new manager keeps a deputy of its own, and media flows on the new key.
        await env.eventually(lambda: stayer.manager.deputy == stayer.sender)
        await deputy.send_frame(MediaKind.AUDIO, b"after the fail-over")
        frame = await asyncio.wait_for(stayer.receive_frame(), 5)
        assert frame is not None and frame.payload == b"after the fail-over"

    env.run(main)


def test_a_returning_manager_follows_the_key_of_the_one_that_took_over(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol], timers=FAILOVER)
        await env.eventually(lambda: mb.manager.deputy is not None)
        deputy = mb if mb.manager.deputy == mb.sender else mc
        # The manager stops posting (a partition: its heartbeat task is gone) ...
        for task in ma.manager._tasks:
            task.cancel()
        await deputy.wait_for_epoch(1, timeout=FAILOVER.failover + 5)
        # ... and, back, takes the deputy's key like everyone: it no longer manages.
        await ma.wait_for_epoch(1, timeout=5)
        await mc.wait_for_epoch(1, timeout=5)
        assert not ma.managing and ma.epochs.manager == deputy.device.device_id
        assert ma.security_code == deputy.security_code == mc.security_code

    env.run(main)


def test_after_leave_returns_no_key_is_held_or_installed_even_mid_transform(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        # Bob's next transform is held in flight until he has left.
        release = asyncio.Event()
        in_flight = asyncio.Event()
        transform = bob.session.transform

        async def slow(*args: object, **kwargs: object) -> object:
            in_flight.set()
            await release.wait()
            return await transform(*args, **kwargs)  # type: ignore[arg-type]

        bob.session.transform = slow  # type: ignore[method-assign]
        await ma.rekey()
        await asyncio.wait_for(in_flight.wait(), 5)
        await mb.leave()
        assert mb.ciphertexts_held() == 0
        release.set()
        await mc.wait_for_epoch(1, timeout=5)
        await asyncio.sleep(0.3)
        assert mb.epoch == 0 and mb.ciphertexts_held() == 0 and mb.media.epoch is None
        await ma.send_frame(MediaKind.AUDIO, b"epoch 1")
        assert mb.media.counters.decrypted == 0

    env.run(main)


def test_a_forged_sender_and_counter_jump_do_not_mute_the_real_sender() -> None:
    key = session_key(Plaintext.generate(), meeting_id="m", epoch=0)
    present = {"bob-device": 2, "carol-device": 3}
    bob = MeetingMedia("m", sender=2, grace=1, clock=lambda: 0.0)
    bob.install(0, key)
    # Carol, a member, holds every key: she makes a frame under bob's sender, far ahead.
    base = sender_base_key(key, meeting_id="m", epoch=0, sender=2)
    forger = SFrameSender(media_kid(epoch=0, sender=2), base)
    forger._seek(1_000_000)
    forged = forger.protect(b"forged", b"m")

    # Where the transport names no origin, the forgery would be taken and mute bob ...
    blind = MeetingMedia("m", sender=1, grace=1, clock=lambda: 0.0)
    blind.install(0, key)
    assert blind.unprotect(forged) is not None
    assert blind.unprotect(bob.protect(b"bob speaking")) is None
    assert blind.counters.replayed == 1
    # ... where it names carol's device, it is dropped before any window moves.
    alice = MeetingMedia("m", sender=1, grace=1, clock=lambda: 0.0, bound=present.get)
    alice.install(0, key)
    assert alice.unprotect(forged, origin="carol-device") is None
    assert alice.counters.wrong_sender == 1
    frame = alice.unprotect(bob.protect(b"bob speaking"), origin="bob-device")
    assert frame is not None and frame.payload == b"bob speaking"
    # A frame from a device whose announce was not read yet waits for it: then it is
    # taken if that device announced the KID's sender, and dropped if not.
    assert alice.unprotect(bob.protect(b"early"), origin="bob-tablet") is None
    assert alice.unprotect(forger.protect(b"forged", b"m"), origin="mallory") is None
    present.update({"bob-tablet": 2, "mallory": 4})
    assert [f.payload for f in alice.retry()] == [b"early"]
    assert alice.counters.wrong_sender == 2


def test_an_announce_flood_does_not_delay_a_leaves_rekey(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol")]
        alice, bob, carol = await env.devices(*names)
        outsiders = await env.devices(*(env.name("outsider") for _ in range(4)))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        left = asyncio.Event()
        ma.events.on(lambda e: left.set() if isinstance(e, ParticipantLeft) else None)
        boards = [o.board(ma.meeting_id) for o in outsiders]
        for board in boards:
            await board.connect(since=0)

        async def flood(board: object, base: int) -> None:
            for i in range(40):
                await board.post(Announce.KIND, bytes(Announce(base + i)))  # type: ignore[attr-defined]

        flooding = [asyncio.create_task(flood(b, 1000 * (n + 1))) for n, b in enumerate(boards)]
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        await mc.leave()
        await mb.wait_for_epoch(1, timeout=10)
        took = asyncio.get_running_loop().time() - started
        await asyncio.gather(*flooding, return_exceptions=True)
        for board in boards:
            await board.close()
        assert took < env.fast.debounce + 2.0, took
        assert carol.user_id not in mb.members
        assert ma.managing

    env.run(main)


def test_the_manager_announces_its_deputy_and_stays_silent_when_alone(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob = await env.devices(env.name("alice"), env.name("bob"))
        (ma,) = await env.start_and_join(alice, [], timers=FAILOVER, extra_invitees=[bob.user_id])
        await asyncio.sleep(FAILOVER.heartbeat * 3)
        assert ma.manager.deputy is None
        seen: list[ManagementChanged] = []
        ma.events.on(lambda e: seen.append(e) if isinstance(e, ManagementChanged) else None)
        mb = await Meeting.join(bob, ma.invitation, timers=FAILOVER)
        env.track(mb)
        await env.eventually(lambda: ma.manager.deputy == mb.sender)
        assert bob.user_id in (await alice.groups.get(ma.meeting_id)).admins
        assert seen and seen[-1].deputy == mb.sender

    env.run(main)


def test_an_alive_post_the_board_does_not_take_after_a_rekey_fails_only_the_heartbeat(env) -> None:  # type: ignore[no-untyped-def]
    """At 10,000 participants the board may not acknowledge the ``alive`` that follows a
    key post in time: the rekey succeeded all the same, and the failure is reported."""

    async def main() -> None:
        alice, bob = await env.devices(env.name("alice"), env.name("bob"))
        ma, mb = await env.start_and_join(alice, [bob], timers=FAILOVER)
        failures: list[MeetingFailure] = []
        ma.events.on(lambda e: failures.append(e) if isinstance(e, MeetingFailure) else None)
        post = ma.board.post

        async def busy(kind: str, body: bytes, **options: object) -> object:
            if kind == Alive.KIND:
                raise Unavailable(503, "post_timeout", "the board took no alive post in time")
            return await post(kind, body, **options)  # type: ignore[arg-type]

        ma.board.post = busy  # type: ignore[method-assign]
        await ma.rekey()  # does not raise
        assert ma.epoch == 1 and ma.managing
        await mb.wait_for_epoch(1, timeout=10)
        assert any("post_timeout" in str(f.error) for f in failures)

    env.run(main)


def test_with_the_default_timers_a_take_over_ends_within_15_seconds(env) -> None:  # type: ignore[no-untyped-def]
    # The default timers (3 s heartbeat, 10 s fail-over) on an injected clock that runs
    # about 25 times faster than the wall clock: the bound is read off the meeting clock.
    async def main() -> None:
        clock = env.FakeClock()
        timers = MeetingTimers(join_retries=(0.5, 1.0, 1.0))

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.01)
                clock.advance(0.25)

        ticking = asyncio.create_task(tick())
        try:
            alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
            ma, mb, mc = await env.start_and_join(alice, [bob, carol], timers=timers, clock=clock)
            await env.eventually(lambda: mb.manager.deputy is not None and mc.manager.deputy)
            deputy, other = (mb, mc) if mb.manager.deputy == mb.sender else (mc, mb)
            await ma.close(rotate_device_keys=False)
            stopped = clock.time()
            await deputy.wait_for_epoch(1, timeout=30)
            assert clock.time() - stopped <= 15.0, clock.time() - stopped
            await other.wait_for_epoch(1, timeout=10)
            assert deputy.managing and other.security_code == deputy.security_code
        finally:
            ticking.cancel()

    env.run(main)
