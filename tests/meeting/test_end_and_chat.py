"""Ending a meeting (and rotating device keys after it), encrypted chat and
transcripts, two devices of one user, and key posts forged by a non-admin.

The board refuses a post whose body is not its kind's message in canonical form
(400 ``bad_body``); clients check bodies again, since the service is not trusted:
tests hand such posts to a meeting's board loop directly (``deliver``)."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from veil.client import (
    Device,
    InvalidRequest,
    MeetingEnded,
    NotFound,
    NotMember,
    ServiceError,
    Unauthorized,
    VeilError,
)
from veil.client.conference import Post
from veil.client.errors import UntrustedPost
from veil.client.meeting import Meeting, MeetingEvent, MeetingFailure
from veil.client.meeting.chat import AHEAD_LIMIT, Ahead
from veil.crypto import schnorr
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt
from veil.protocol import MediaKind, MeetingProof, b64encode, meeting_proof_message
from veil.protocol.board import Announce, BoardMessageError, Chat, End, KeyPost, Leave


def deliver(meeting: Meeting, poster: Device, kind: str, body: bytes) -> None:
    """Hand ``meeting``'s board loop a post as if its board had delivered it verified
    (a dishonest service could deliver a malformed body its poster signed)."""
    post = Post(meeting.board.last_seq, kind, poster.user_id, poster.device_id, 0, body)
    meeting.board._incoming.put_nowait(post)


async def failures(events: AsyncIterator[MeetingEvent], count: int) -> list[BaseException]:
    """The errors of the next ``count`` ``MeetingFailure`` events."""
    found: list[BaseException] = []
    while len(found) < count:
        event = await asyncio.wait_for(anext(events), 5)
        if isinstance(event, MeetingFailure):
            found.append(event.error)
    return found


def test_the_end_deletes_the_group_and_every_client_drops_its_keys(env) -> None:
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        meeting_id = ma.meeting_id
        assert all(m.ciphertexts_held() >= 1 for m in (ma, mb, mc))

        with pytest.raises(VeilError, match="manager"):
            await mb.end()  # only the manager ends the meeting
        assert not mb.ended.is_set()

        await ma.end()
        for m in (mb, mc):
            await asyncio.wait_for(m.ended.wait(), 5)
        for m in (ma, mb, mc):
            assert m.ended.is_set()
            assert m.ciphertexts_held() == 0
            assert m.media is not None and m.media.epoch is None
        for device in (alice, bob):
            with pytest.raises(NotFound):
                await device.groups.get(meeting_id)

        # Nothing can be sent any more, neither media nor chat.
        for m in (ma, mb):
            with pytest.raises(MeetingEnded):
                await m.send_frame(MediaKind.AUDIO, b"after the end")
            with pytest.raises(MeetingEnded):
                await m.send_chat("after the end")
        # The board is closed to posts, and the relay to new connections.
        with pytest.raises(ServiceError) as closed:
            await mb.board.post(Chat.KIND, bytes(Chat(0, mb.sender, b"after the end")))
        assert closed.value.code == "room_ended"
        with pytest.raises(ServiceError) as refused:
            await carol.media(meeting_id, sender=0)
        assert refused.value.code == "room_ended"

        # After the meeting, closing it rotates the device's keys; the old signer is useless.
        for device, meeting in ((alice, ma), (bob, mb)):
            old_signer = device.signer
            old_record = await device.keyserver.device_record(device.device_id)
            await meeting.close()
            record = await device.keyserver.device_record(device.device_id)
            assert device.signer is not old_signer
            assert record.signing_key == device.signer.verifying_key
            assert record.signing_key != old_record.signing_key
            assert record.public_key != old_record.public_key
            assert record.active
            stale = device.keyserver.device(device.device_id, old_signer)
            with pytest.raises(Unauthorized) as rejected:
                await stale.devices()
            assert rejected.value.status == 401 and rejected.value.code == "bad_signature"
            assert any(d["device_id"] == device.device_id for d in await device.devices())

    env.run(main)


def test_chat_reaches_every_member_and_transcripts_only_their_grantees(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave")]
        alice, bob, carol, dave = await env.devices(*names)
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        meeting_id = ma.meeting_id

        await ma.send_chat("hello from alice")
        await mb.send_chat("hi from bob")
        await env.eventually(lambda: all(len(m.chat) == 2 for m in (ma, mb, mc)))
        for m in (ma, mb, mc):
            assert [(c.user_id, c.text, c.epoch) for c in m.chat] == [
                (alice.user_id, "hello from alice", 0),
                (bob.user_id, "hi from bob", 0),
            ]
            assert [c.sender for c in m.chat] == [ma.sender, mb.sender]

        # The board holds ciphertext only: an outsider reading it sees no text.
        board = dave.board(meeting_id)
        await board.connect(since=0)
        posts = []
        while not [p for p in posts if p.kind == "chat"][1:]:
            posts.append(await board.next(timeout=5))
        await board.close()
        for post in posts:
            assert b"hello from alice" not in post.body and b"hi from bob" not in post.body

        # To the meeting's group: every member reads it, an outsider does not.
        expected = f"{alice.user_id}: hello from alice\n{bob.user_id}: hi from bob".encode()
        for_group = await mb.save_transcript(groups=[meeting_id])
        assert for_group.kind == "transcript"
        assert expected not in for_group.envelope
        for device in (alice, bob, carol):
            assert await device.documents.decrypt(for_group) == expected
        with pytest.raises(NotMember):
            await dave.documents.decrypt(for_group)

        # To one user: she (and its author) read it; another member does not.
        for_carol = await ma.save_transcript(users=[carol.user_id])
        assert await carol.documents.decrypt(for_carol) == expected
        assert await alice.documents.decrypt(for_carol) == expected
        for device in (bob, dave):
            with pytest.raises(NotMember):
                await device.documents.decrypt(for_carol)

        # After carol leaves, chat of the next epoch does not reach her.
        await mc.leave()
        for m in (ma, mb):
            await m.wait_for_epoch(1, timeout=10)
        await mb.send_chat("after carol left")
        await env.eventually(lambda: all(len(m.chat) == 3 for m in (ma, mb)))
        assert ma.chat[-1].epoch == 1 and ma.chat[-1].text == "after carol left"
        await asyncio.sleep(0.3)
        assert len(mc.chat) == 2
        with pytest.raises(MeetingEnded):
            await mc.send_chat("i left")

    env.run(main)


def test_chat_of_an_epoch_whose_key_is_on_its_way_waits_for_the_key(env) -> None:
    """The manager installs its own key post at once and may chat in the new epoch
    while the others' transforms are still on their way: their clients hold the message
    until the key is installed, then read it, in board order."""

    async def main() -> None:
        alice, bob = await env.devices(env.name("alice"), env.name("bob"))
        ma, mb = await env.start_and_join(alice, [bob])
        transform = bob.session.transform
        slow = asyncio.Event()

        async def slowly(*args: Any, **kwargs: Any) -> Any:
            await slow.wait()  # bob's key for epoch 1 arrives only after alice's chat
            return await transform(*args, **kwargs)

        bob.session.transform = slowly  # type: ignore[method-assign]
        try:
            await ma.rekey()
            assert ma.epoch == 1 and mb.epoch == 0
            await ma.send_chat("first words of epoch 1")
            await ma.send_chat("second words")
            await asyncio.sleep(0.3)  # both reached bob's board before his key did
            assert mb.chat == []
        finally:
            slow.set()
        await mb.wait_for_epoch(1, timeout=10)
        await env.eventually(lambda: len(mb.chat) == 2)
        assert [(c.text, c.epoch) for c in mb.chat] == [
            ("first words of epoch 1", 1),
            ("second words", 1),
        ]
        # Chat of an epoch older than the key held, never held, is not kept for later.
        assert len(mb._chat_ahead) == 0

    env.run(main)


def test_chat_held_for_a_key_is_bounded_and_dropped_on_leaving(env) -> None:
    """Messages for an epoch that never comes cost a bounded buffer, oldest out first;
    a client that leaves holds none of them."""

    ahead = Ahead(limit=3)
    posts = [(Post(i, "chat", "u", "d", 0, b""), Chat(5 + i % 2, 1, b"x" * 40)) for i in range(5)]
    for post, message in posts:
        ahead.hold(post, message)
    assert len(ahead) == 3  # the first two pushed out
    assert [p.seq for p, _ in ahead.due(5)] == [2, 4]  # epoch 5 and older, in order
    assert [p.seq for p, _ in ahead.due(9)] == [3]
    assert len(ahead) == 0 and AHEAD_LIMIT >= 100

    async def main() -> None:
        alice, bob = await env.devices(env.name("alice"), env.name("bob"))
        _, mb = await env.start_and_join(alice, [bob])
        mb._chat_ahead.hold(*posts[0])
        await mb.leave()
        assert len(mb._chat_ahead) == 0

    env.run(main)


def test_two_devices_of_one_user_share_a_meeting(env) -> None:
    async def main() -> None:
        alice_name, bob_name, mallory_name = (env.name(n) for n in ("alice", "bob", "mallory"))
        alice, laptop, phone, mallory = await env.devices(
            alice_name, bob_name, bob_name, mallory_name
        )
        ma, m_laptop, m_phone = await env.start_and_join(alice, [laptop, phone])
        assert [m.epoch for m in (ma, m_laptop, m_phone)] == [0, 0, 0]
        assert m_laptop.sender != m_phone.sender
        assert len({m.security_code for m in (ma, m_laptop, m_phone)}) == 1

        await m_laptop.send_frame(MediaKind.AUDIO, b"from the laptop")
        for receiver in (ma, m_phone):
            frame = await asyncio.wait_for(receiver.receive_frame(), 5)
            assert frame is not None and frame.payload == b"from the laptop"
            assert frame.sender == m_laptop.sender

        # An outsider's leave post naming the phone's sender number changes nothing.
        board = mallory.board(ma.meeting_id)
        await board.connect(since=0)
        seq = await board.post(Leave.KIND, bytes(Leave(m_phone.sender)))
        await board.close()
        await env.eventually(lambda: ma.board.last_seq >= seq)
        await asyncio.sleep(0.2)  # the manager handles the post
        assert ma.participants.get(m_phone.sender) == bob_name

        # One device leaves; the user is still there on the other: bob stays a member.
        await m_laptop.leave()
        await asyncio.sleep(env.fast.debounce + 0.4)
        group = await alice.groups.get(ma.meeting_id)
        assert bob_name in group.members
        await ma.send_frame(MediaKind.AUDIO, b"still here")
        frame = await asyncio.wait_for(m_phone.receive_frame(), 5)
        assert frame is not None and frame.payload == b"still here"
        assert not m_phone.errors and not m_phone.removed

        # When the last device of bob leaves, bob is removed and the key rotates.
        assert ma.manager._rekey_due is None or ma.manager._rekey_due.done()
        epoch = ma.epoch
        assert epoch is not None
        await m_phone.leave()
        await ma.wait_for_epoch(epoch + 1, timeout=10)
        group = await alice.groups.get(ma.meeting_id)
        assert bob_name not in group.members

    env.run(main)


def test_a_key_post_forged_by_a_member_who_is_not_an_admin_is_rejected(env) -> None:
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "carol", "dave", "mallory")]
        alice, bob, carol, dave, mallory = await env.devices(*names)
        ma, mb, mc = await env.start_and_join(alice, [bob, carol], extra_invitees=[dave.user_id])
        meeting_id = ma.meeting_id
        code = ma.security_code

        # Bob, a member, encrypts his own "session key" to the group and posts it.
        group_key = mb.invitation.group_key
        forged = bytes(encrypt(Plaintext.generate(), group_key, bob.signer))
        # He has no group key: he proves with a key of his own.
        proof = MeetingProof.make("key", meeting_id, bob.user_id, 0, PrivateKey.generate(), forged)
        members = tuple(sorted([alice.user_id, bob.user_id, carol.user_id]))
        changes = KeyPost.changes(mb.members, members)
        await mb.board.post(
            KeyPost.KIND, bytes(KeyPost(5, forged, *changes, (), bob.user_id, proof))
        )

        def rejected(m: Meeting) -> bool:
            return any(isinstance(e, UntrustedPost) for e in m.errors)

        await env.eventually(lambda: rejected(ma) and rejected(mc))
        for m in (ma, mc):
            assert m.epoch == 0 and m.security_code == code and m.epochs.key(5) is None
            assert m.host == alice.user_id
        assert ma.managing and mc.epochs.manager == alice.device_id

        # An outsider (any valid JWT may post) tries posts that are not even well formed:
        # the board refuses them.
        malformed = [("key", b"not json"), ("key", json.dumps({"epoch": 9}).encode())]
        for kind in ("key", "chat", "leave", "alive"):  # JSON, not an object; nested too deep
            malformed += [(kind, b"[]"), (kind, b"[" * 5000 + b"]" * 5000)]
        board = mallory.board(meeting_id)
        await board.connect(since=0)
        for kind, body in malformed:
            with pytest.raises(InvalidRequest) as refused:
                await board.post(kind, body)
            assert refused.value.code == "bad_body", (kind, body[:20])
        await board.close()
        # A service that delivered them anyway: each is a failure of the meeting
        # (a BoardMessageError), not of its board loop, which goes on.
        for m in (ma, mc):
            events = m.events.subscribe()
            for kind, body in malformed:
                deliver(m, mallory, kind, body)
            errors = await failures(events, len(malformed))
            assert all(isinstance(e, BoardMessageError) for e in errors), errors
            assert sum(isinstance(e, BoardMessageError) for e in m.errors) == len(malformed)
            await events.aclose()
            assert m.epoch == 0 and m.security_code == code

        # A joiner who arrives after these posts is still admitted with the real key.
        md = await Meeting.join(dave, ma.invitation, timers=env.fast)
        env.track(md)
        assert md.epoch == 0 and md.security_code == code

        # The real manager's next key is accepted as usual, and chat still flows.
        await mb.leave()
        for m in (ma, mc, md):
            await m.wait_for_epoch(1, timeout=10)
        assert mc.security_code == md.security_code == ma.security_code
        await mc.send_chat("still talking")
        await env.eventually(lambda: all(len(m.chat) == 1 for m in (ma, mc, md)))

    env.run(main)


def test_only_a_proof_with_the_group_key_ends_a_meeting(env) -> None:
    async def main() -> None:
        alice, bob = await env.devices(env.name("alice"), env.name("bob"))
        ma, mb = await env.start_and_join(alice, [bob])
        # Bob is a member, not an admin: he has no group key, so he proves with his own.
        now = int(bob.clock())
        message = meeting_proof_message("end", ma.meeting_id, bob.user_id, now)
        forged = End(MeetingProof(now, schnorr.sign(message, PrivateKey.generate())))
        # A well-formed end with his proof is not the host's; a malformed one is not an end.
        loose = json.dumps({"timestamp": now, "proof": b64encode(bytes(forged.proof.signature))})
        for end_body, code in (
            (bytes(forged), "not_host"),
            (loose.encode(), "bad_body"),  # the same end, not in canonical form
            (b"{}", "bad_body"),
            (b"not json", "bad_body"),
        ):
            with pytest.raises(ServiceError) as refused:
                await mb.board.post("end", end_body)
            assert refused.value.code == code, end_body
        await mb.send_chat("still on")
        await asyncio.sleep(0.3)
        assert not ma.ended.is_set() and not mb.ended.is_set()
        assert [m.text for m in ma.chat] == ["still on"]
        # The manager's own end carries the proof and closes the room.
        await ma.end()
        await asyncio.wait_for(mb.ended.wait(), 5)

    env.run(main)


def test_the_manager_hands_over_before_leaving(env) -> None:
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        with pytest.raises(VeilError, match="hands it over"):
            await ma.leave()
        with pytest.raises(VeilError, match="only the meeting's manager"):
            await mb.hand_over(mc.sender)
        # Invitees are in the group from the start, so joins do not wait for the manager
        # to read their announces: wait until it has seen bob's.
        await env.eventually(lambda: mb.sender in ma.participants)
        await ma.hand_over(mb.sender)
        for m in (ma, mb, mc):
            await m.wait_for_epoch(1, timeout=10)
        assert mb.managing and not ma.managing and not mc.managing
        assert alice.user_id in (await bob.groups.get(ma.meeting_id)).members
        await ma.leave()  # no longer the manager: it may go, and bob rotates it out
        for m in (mb, mc):
            await m.wait_for_epoch(2, timeout=10)
        assert ma.epoch == 1 and alice.user_id not in (await bob.groups.get(ma.meeting_id)).members
        assert mb.security_code == mc.security_code

    env.run(main)


def test_sender_numbers_are_drawn_by_each_join_and_a_taken_one_is_refused(env) -> None:
    async def main() -> None:
        alice, bob, mallory = await env.devices(*(env.name(n) for n in ("alice", "bob", "m")))
        ma, mb = await env.start_and_join(alice, [bob])
        assert ma.sender != mb.sender and max(ma.sender, mb.sender) < 2**44
        await env.eventually(lambda: mb.sender in ma.participants)
        assert ma.participants == {ma.sender: alice.user_id, mb.sender: bob.user_id}
        # Anyone may post on the board; claiming bob's number changes nothing.
        board = mallory.board(ma.meeting_id)
        await board.connect(since=0)
        await board.post(Announce.KIND, bytes(Announce(mb.sender)))
        with pytest.raises(InvalidRequest) as refused:  # not a sender number
            await board.post(Announce.KIND, b'{"sender":-1}')
        assert refused.value.code == "bad_body"
        await board.close()
        await asyncio.sleep(0.3)
        assert ma.participants[mb.sender] == bob.user_id
        assert any(isinstance(e, UntrustedPost) for e in ma.errors)
        # Delivered anyway (by a dishonest service), it names no one either.
        events = ma.events.subscribe()
        deliver(ma, mallory, Announce.KIND, b'{"sender":-1}')
        (error,) = await failures(events, 1)
        await events.aclose()
        assert isinstance(error, BoardMessageError)
        assert ma.participants == {ma.sender: alice.user_id, mb.sender: bob.user_id}
        # The board loop goes on: a well-formed announce of a free number is taken.
        free = next(n for n in range(1, 10) if n not in ma.participants)
        board = mallory.board(ma.meeting_id)
        await board.connect(since=0)
        await board.post(Announce.KIND, bytes(Announce(free)))
        await board.close()
        await env.eventually(lambda: ma.participants.get(free) == mallory.user_id)

    env.run(main)
