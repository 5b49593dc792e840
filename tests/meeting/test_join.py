"""Starting and joining: who gets in, what every member sees, and late hosts."""

import asyncio
import re
from typing import Any, ClassVar

import pytest

from veil.client import Forbidden, NotAdmitted, NotMember
from veil.client.media import Frame
from veil.client.meeting import Meeting, security_code
from veil.protocol import MediaKind
from veil.protocol.board import member_digest


async def next_frame(meeting: Meeting, timeout: float = 5.0) -> Frame:
    """The next frame that decrypts (frames dropped on the way are skipped)."""

    async def wait() -> Frame:
        while True:
            frame = await meeting.receive_frame()
            if frame is not None:
                return frame

    return await asyncio.wait_for(wait(), timeout)


def test_invitees_are_admitted_at_epoch_0_with_equal_security_codes(env) -> None:
    async def main() -> None:
        alice, bob, carol = await env.devices(env.name("alice"), env.name("bob"), env.name("carol"))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        meeting_id = ma.meeting_id

        assert [m.epoch for m in (ma, mb, mc)] == [0, 0, 0]
        assert ma.managing and not mb.managing and not mc.managing
        group = await alice.groups.get(meeting_id)
        assert set(group.members) == {alice.user_id, bob.user_id, carol.user_id}
        assert group.admins == (alice.user_id,)

        # The key post names exactly the group's members, and every client shows them.
        for joiner in (mb, mc):
            post, key_post = await env.newest_key_post(joiner.device, meeting_id)
            assert key_post.epoch == 0
            assert key_post.members_digest == member_digest(group.members)
            assert post.device_id == alice.device_id == joiner.epochs.manager
        assert ma.members == mb.members == mc.members == tuple(sorted(group.members))

        # One code on every screen, derived from the epoch's key and the member list.
        codes = {m.security_code for m in (ma, mb, mc)}
        assert len(codes) == 1
        (code0,) = codes
        assert re.fullmatch(r"\d{5} \d{5}", code0)
        assert code0 == security_code(mb.epochs.key(0), 0, mb.members)
        assert code0 != security_code(mb.epochs.key(0), 0, [alice.user_id, bob.user_id])

        # Everyone holds the same key: frames decrypt across the room.
        await ma.send_frame(MediaKind.AUDIO, b"from alice")
        for receiver in (mb, mc):
            frame = await next_frame(receiver)
            assert (frame.payload, frame.sender, frame.epoch) == (b"from alice", ma.sender, 0)
        await mc.send_frame(MediaKind.VIDEO, b"from carol", stream=1)
        for receiver in (ma, mb):
            frame = await next_frame(receiver)
            assert (frame.payload, frame.sender, frame.stream) == (b"from carol", mc.sender, 1)

        # The next epoch (carol leaves): a new code, again equal for those who remain.
        await mc.leave()
        await ma.wait_for_epoch(1, timeout=10)
        await mb.wait_for_epoch(1, timeout=10)
        assert ma.security_code == mb.security_code
        assert ma.security_code != code0
        group = await alice.groups.get(meeting_id)
        newest = (await env.newest_key_post(bob, meeting_id))[1]
        assert newest.members_digest == member_digest(group.members)
        # Only the change travels: Carol left the list of epoch 0.
        assert (newest.joined, newest.left) == ((), (carol.user_id,))
        assert sorted(group.members) == sorted([alice.user_id, bob.user_id])
        assert mb.members == tuple(sorted(group.members))

    env.run(main)


class Spy(Meeting):
    """A ``Meeting`` that keeps every instance made, so a test can look at the client
    state of a join that raised."""

    made: ClassVar[list[Meeting]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Spy.made.append(self)


def test_an_uninvited_user_is_not_admitted_and_admit_can_let_someone_in(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "mallory", "dave")]
        alice, bob, mallory, dave = await env.devices(*names)
        asked: list[str] = []

        async def admit(user_id: str) -> bool:
            asked.append(user_id)
            return user_id == dave.user_id

        ma, _mb = await env.start_and_join(alice, [bob], admit=admit)
        meeting_id = ma.meeting_id

        # A valid JWT is not enough for the relay: she has announced nothing.
        with pytest.raises(Forbidden) as refused:
            await mallory.media(meeting_id, sender=12345)
        assert refused.value.code == "sender_not_announced"
        Spy.made.clear()
        outcomes = await asyncio.gather(
            Spy.join(mallory, ma.invitation, timers=env.fast),
            Spy.join(dave, ma.invitation, timers=env.fast),
            ma.send_frame(MediaKind.AUDIO, b"secret audio"),
            return_exceptions=True,
        )
        md = outcomes[1]
        assert isinstance(md, Meeting)
        env.track(md)
        await ma.send_frame(MediaKind.AUDIO, b"more audio")

        assert isinstance(outcomes[0], NotAdmitted)
        assert outcomes[2] is True
        assert asked.count(mallory.user_id) >= 1
        assert dave.user_id in asked and bob.user_id not in asked

        # Dave is in: a member, at epoch 0, decrypting the room's frames.
        group = await alice.groups.get(meeting_id)
        assert dave.user_id in group.members and mallory.user_id not in group.members
        assert md.epoch == 0 and md.security_code == ma.security_code
        await ma.send_frame(MediaKind.AUDIO, b"hi dave")
        payloads = [(await next_frame(md)).payload]
        while payloads[-1] != b"hi dave":
            payloads.append((await next_frame(md)).payload)
        assert set(payloads) <= {b"secret audio", b"more audio", b"hi dave"}

        # Mallory's client never held a key; announced, she is still no member for the relay.
        spy = next(m for m in Spy.made if m.device is mallory)
        assert spy.epoch is None and spy.epochs.held() == 0 and spy.media_channel is None
        with pytest.raises(Forbidden) as refused:
            await mallory.media(meeting_id, sender=spy.sender)
        assert refused.value.code == "not_admitted"
        # ... and the key service refuses her the key post's transform.
        encrypted = (await env.newest_key_post(bob, meeting_id))[1].encrypted_key
        with pytest.raises(NotMember):
            await mallory.session.transform(encrypted, group_id=meeting_id)

    env.run(main)


def test_a_late_host_takes_over_management_and_rotates_the_key(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "host", "bob", "dave", "carol")]
        alice, host, bob, dave = await env.devices(*names[:4])
        carol_name = names[4]  # invited, but has no keys until after the takeover
        alice_asked: list[str] = []
        host_asked: list[str] = []

        async def alice_admit(user_id: str) -> bool:
            alice_asked.append(user_id)
            return True

        async def host_admit(user_id: str) -> bool:
            host_asked.append(user_id)
            return user_id == dave.user_id

        meeting_id = env.meeting_id()
        ma, mb = await env.start_and_join(
            alice, [bob], meeting_id=meeting_id, host=host.user_id, admit=alice_admit,
            extra_invitees=[carol_name],
        )  # fmt: skip
        group = await alice.groups.get(meeting_id)
        assert host.user_id in group.members and host.user_id in group.admins
        assert ma.managing and ma.epoch == 0

        mh = await Meeting.join(host, str(ma.invitation), admit=host_admit, timers=env.fast)
        env.track(mh)
        assert mh.managing
        assert mh.epoch == 1 and mh.rekeys == 1
        await ma.wait_for_epoch(1, timeout=10)
        await mb.wait_for_epoch(1, timeout=10)
        assert not ma.managing and not mb.managing
        assert ma.security_code == mb.security_code == mh.security_code
        assert ma.epochs.manager == mh.device.device_id

        # The host admits the next joiners: one its admit callback approves, and one
        # alice invited who had no keys when the meeting started.
        carol = await env.device(carol_name)
        md = await Meeting.join(dave, ma.invitation, timers=env.fast)
        env.track(md)
        mc = await Meeting.join(carol, ma.invitation, timers=env.fast)
        env.track(mc)
        assert md.epoch == mc.epoch == 1
        assert host_asked == [dave.user_id]
        assert dave.user_id not in alice_asked and carol_name not in alice_asked
        assert ma.epoch == 1  # alice did not rekey

        # The host handles leaves: it removes the leaver and posts epoch 2.
        await mb.leave()
        for m in (mh, ma, md, mc):
            await m.wait_for_epoch(2, timeout=10)
        assert mh.managing and not ma.managing
        assert ma.epochs.manager == host.device_id
        group = await host.groups.get(meeting_id)
        assert bob.user_id not in group.members
        assert set(ma.members) == {alice.user_id, host.user_id, dave.user_id, carol_name}

    env.run(main)


def test_a_host_without_keys_at_the_start_becomes_admin_when_joining(env) -> None:
    async def main() -> None:
        alice_name, bob_name, host_name = (env.name(n) for n in ("alice", "bob", "host"))
        alice, bob = await env.devices(alice_name, bob_name)
        ma, mb = await env.start_and_join(alice, [bob], host=host_name)
        group = await alice.groups.get(ma.meeting_id)
        assert host_name not in group.members and host_name not in group.admins
        assert ma.host == host_name

        host = await env.device(host_name)
        mh = await Meeting.join(host, ma.invitation, timers=env.fast)
        env.track(mh)
        group = await alice.groups.get(ma.meeting_id)
        assert host_name in group.members and host_name in group.admins
        assert mh.managing and mh.epoch == 1
        for m in (ma, mb):
            await m.wait_for_epoch(1, timeout=10)
            assert not m.managing and m.security_code == mh.security_code
        assert not [e for e in (*ma.errors, *mb.errors, *mh.errors)]

    env.run(main)
