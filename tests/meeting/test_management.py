"""Management under stress, over the real services: no leave is lost to a restart, a
take-over, a refused request or a failing application callback; deputies are members
that answer, and lose the admin role when they leave."""

import asyncio

from veil.client import NotMember, Unavailable
from veil.client.meeting import Meeting, MeetingFailure, MeetingTimers
from veil.protocol.board import Announce

T = MeetingTimers(
    debounce=0.3, rekey_interval=60.0, join_retries=(0.2, 0.3, 0.3), epoch_grace=0.3,
    heartbeat=0.2, failover=1.0,
)  # fmt: skip


async def _locked_out(env, device, meeting_id: str, reader) -> None:  # type: ignore[no-untyped-def]
    """The newest key on the board does not transform for ``device``."""
    _, post = await env.newest_key_post(reader, meeting_id)
    try:
        await device.session.transform(post.encrypted_key, group_id=meeting_id)
    except NotMember:
        return
    raise AssertionError(f"a leaver could transform the key of epoch {post.epoch}")


def test_a_restarted_manager_applies_the_leaves_it_missed(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        slow = MeetingTimers(**{**T.__dict__, "heartbeat": 0.5, "failover": 3.0})
        ma, mb, mc = await env.start_and_join(alice, [bob, carol], timers=slow)
        await env.eventually(lambda: mb.manager.deputy is not None)
        await ma.close(rotate_device_keys=False)  # a crash: no leave, no end
        await mc.leave()
        # Back before the fail-over: it takes its own device's key and manages again.
        again = await Meeting.join(alice, ma.invitation, timers=slow)
        env.track(again)
        await env.eventually(lambda: again.managing and again.epoch == 1)
        assert carol.user_id not in (await alice.groups.get(again.meeting_id)).members
        await _locked_out(env, carol, again.meeting_id, bob)

    env.run(main)


def test_a_leave_inside_a_take_over_is_applied(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave")]
        alice, bob, carol, dave = await env.devices(*names)
        ma, mb, mc, md = await env.start_and_join(alice, [bob, carol, dave], timers=T)
        await env.eventually(lambda: mb.manager.deputy is not None)
        deputy = next(m for m in (mb, mc, md) if m.sender == mb.manager.deputy)
        leaver = next(m for m in (mb, mc, md) if m is not deputy)
        reconcile = deputy.manager.reconcile

        async def reconcile_then_someone_leaves() -> list[str]:
            removed = await reconcile()
            # A leave posted between the reconciliation and the new key landing.
            await leaver.leave()
            await env.eventually(lambda: leaver.sender not in deputy.participants)
            return removed

        deputy.manager.reconcile = reconcile_then_someone_leaves  # type: ignore[method-assign]
        await ma.close(rotate_device_keys=False)
        await deputy.wait_for_epoch(2, timeout=15)  # the take-over, then the leave's rekey
        group = await deputy.device.groups.get(deputy.meeting_id)
        assert deputy.managing and leaver.device.user_id not in group.members
        await _locked_out(env, leaver.device, deputy.meeting_id, deputy.device)

    env.run(main)


def test_a_removal_the_key_service_refused_is_retried(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol], timers=T)
        groups = ma.manager._groups
        real_get, real_digest, blips = groups.get, groups.digest, [1]

        async def flaky_digest(group_id: str):  # type: ignore[no-untyped-def]
            if blips:
                blips.pop()
                raise Unavailable(503, "keyserver_unavailable", "a blip")
            return await real_digest(group_id)

        groups.digest = flaky_digest  # type: ignore[method-assign]
        await mc.leave()
        await mb.wait_for_epoch(1, timeout=10)
        assert any(isinstance(e, Unavailable) for e in ma.errors)  # reported, then retried
        assert carol.user_id not in (await real_get(ma.meeting_id)).members
        await _locked_out(env, carol, ma.meeting_id, bob)

    env.run(main)


def test_an_admit_callback_that_raises_stops_no_admission(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, mallory = await env.devices(env.name("alice"), env.name("mallory"))
        bob_id = env.name("bob")

        async def admit(user_id: str) -> bool:
            raise KeyError(user_id)  # the application's bug, for a user it does not know

        ma = await Meeting.start(alice, invitees=[bob_id], timers=T, admit=admit)
        env.track(ma)
        board = mallory.board(ma.meeting_id)  # an outsider knocks
        await board.connect(since=0)
        await board.post(Announce.KIND, bytes(Announce(777)))
        await board.close()
        await env.eventually(lambda: any(isinstance(e, KeyError) for e in ma.errors))
        mb = await Meeting.join(await env.device(bob_id), ma.invitation, timers=T)
        env.track(mb)
        assert mb.epoch == 0

    env.run(main)


def test_a_hand_over_target_that_leaves_mid_take_over_draws_and_posts_nothing(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, m1, m2 = await env.start_and_join(alice, [bob, carol], timers=T)
        await env.eventually(lambda: m1.manager.deputy is not None)
        target = next(m for m in (m1, m2) if m.sender == m1.manager.deputy)
        started = asyncio.Event()
        reconcile = target.manager.reconcile

        async def reconcile_slowly() -> list[str]:
            started.set()
            removed = await reconcile()
            await asyncio.sleep(0.1)  # the key-service round trips that follow
            return removed

        target.manager.reconcile = reconcile_slowly  # type: ignore[method-assign]
        await ma.hand_over(target.sender)
        await started.wait()
        await target.leave()
        for _ in range(50):
            assert target.ciphertexts_held() == 0
            await asyncio.sleep(0.01)
        await asyncio.sleep(3 * T.debounce)
        assert target.epochs.manager != target.device.device_id
        assert ma.managing  # still alice's: nothing of the leaver's landed

    env.run(main)


def test_after_the_end_nobody_manages_or_fails(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol], timers=T)
        await env.eventually(lambda: mb.manager.deputy is not None)
        failures: list[BaseException] = []
        for m in (ma, mb, mc):
            m.events.on(
                lambda e: failures.append(e.error) if isinstance(e, MeetingFailure) else None
            )
        await ma.end()
        await asyncio.sleep(6 * T.heartbeat + T.failover)
        assert not ma.managing and not failures

    env.run(main)


def test_deputies_are_members_that_answer_and_lose_the_admin_role_when_they_leave(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave", "mallory")]
        alice, bob, carol, dave, mallory = await env.devices(*names)
        ma = await Meeting.start(
            alice, invitees=[bob.user_id, carol.user_id, dave.user_id], timers=T
        )
        env.track(ma)
        # An outsider announces first: the earliest joiner, but never a member.
        board = mallory.board(ma.meeting_id)
        await board.connect(since=0)
        await board.post(Announce.KIND, bytes(Announce(12345)))
        joined = [await Meeting.join(d, ma.invitation, timers=T) for d in (bob, carol, dave)]
        env.track(*joined)
        await env.eventually(lambda: ma.manager.deputy is not None)
        first = next(m for m in joined if m.sender == ma.manager.deputy)
        assert first.device.user_id in (await alice.groups.get(ma.meeting_id)).admins

        # The deputy's app dies: it stops answering, and the manager names another.
        await first.close(rotate_device_keys=False)
        await env.eventually(lambda: ma.manager.deputy not in (None, first.sender), timeout=15)
        second = next(m for m in joined if m.sender == ma.manager.deputy)
        # The second deputy leaves: no longer a member, nor an admin.
        await second.leave()
        await env.eventually(lambda: second.device.user_id not in ma.members, timeout=15)
        group = await alice.groups.get(ma.meeting_id)
        assert second.device.user_id not in {*group.members, *group.admins}
        await board.close()

    env.run(main)


def test_a_leave_the_board_refused_once_is_posted_again(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol], timers=T)
        post, refusals = mc.board.post, [1]

        async def refused_once(kind: str, body: bytes, **options: float) -> int:
            if refusals:
                refusals.pop()  # the board could not ask the key service: 503
                raise Unavailable(503, "keyserver_unavailable", "the key service did not answer")
            return await post(kind, body, **options)

        mc.board.post = refused_once  # type: ignore[method-assign]
        await mc.leave()
        assert mc.ciphertexts_held() == 0 and any(isinstance(e, Unavailable) for e in mc.errors)
        await mb.wait_for_epoch(1, timeout=10)
        assert carol.user_id not in (await alice.groups.get(ma.meeting_id)).members
        await _locked_out(env, carol, ma.meeting_id, bob)

    env.run(main)
