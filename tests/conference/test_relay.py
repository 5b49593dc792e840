"""The media relay: every frame to every other participant, with its origin device in
front and its SFrame bytes unchanged; a frame under another sender's KID, a bad frame
or a flood is dropped and answered at most once a second; a receiver that does not
read loses its own frames only. (Who may connect at all: test_admission.py.)"""

import asyncio
import json
import os
import socket

import httpx
import pytest

from veil.client.conference import ConferenceClient
from veil.conference import create_app
from veil.crypto.signing import SigningKey
from veil.protocol import MediaKind


def test_each_frame_reaches_every_other_participant_unchanged(conf) -> None:  # type: ignore[no-untyped-def]
    people = [conf.person(n) for n in ("alice", "bob", "carol")]
    room = conf.meeting(*people)
    kinds = [MediaKind.AUDIO, MediaKind.VIDEO, MediaKind.DATA]

    async def main() -> None:
        senders = [await conf.announce(room, p) for p in people]
        sent = {
            p.device_id: [
                (kinds[i % 3], conf.frame(s, b"|%d|" % i + os.urandom(200 + 50 * i), ctr=i)[1:])
                for i in range(12)
            ]
            for p, s in zip(people, senders, strict=True)
        }
        async with httpx.AsyncClient() as http:
            client = ConferenceClient(conf.url, http)
            channels = [
                await client.media(
                    room,
                    device_id=person.device_id,
                    signer=person.signer,
                    token=person.tokens,
                    sender=sender,
                    membership=lambda person=person: person.capability(room),
                )
                for person, sender in zip(people, senders, strict=True)
            ]

            async def send_all(index: int) -> None:
                for kind, frame in sent[people[index].device_id]:
                    assert await channels[index].send(kind, frame)

            await asyncio.gather(*(send_all(i) for i in range(3)))
            for me, channel in zip(people, channels, strict=True):
                others = [p.device_id for p in people if p is not me]
                received = [await asyncio.wait_for(channel.receive(), 5) for _ in range(2 * 12)]
                by_origin: dict[str, list[tuple[MediaKind, bytes]]] = {d: [] for d in others}
                for kind, origin, frame in received:
                    assert origin != me.device_id, "a participant got its own frame back"
                    by_origin[origin].append((kind, frame))
                # Every frame of every other participant, byte for byte, in its order,
                # under the device that sent it.
                assert by_origin == {d: sent[d] for d in others}
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(channel.receive(), 0.3)
                assert channel.relay_dropped == {} and channel.malformed == 0
            for channel in channels:
                await channel.close()

    asyncio.run(main())


def test_a_frame_under_another_senders_kid_never_reaches_anyone(conf) -> None:  # type: ignore[no-untyped-def]
    """Mallory, a member, sends under Bob's sender number (a forged KID, with a high
    counter that would mute Bob at a receiver that accepted it): the relay drops it."""
    alice, bob, mallory = (conf.person(n) for n in ("alice", "bob", "mallory"))
    room = conf.meeting(alice, bob, mallory)

    async def main() -> None:
        a = await conf.join_media(room, alice)
        b = await conf.join_media(room, bob)
        m = await conf.join_media(room, mallory)
        assert {a.reply["type"], b.reply["type"], m.reply["type"]} == {"welcome"}
        forged = [
            conf.frame(b.sender, b"forged", ctr=2**40),
            conf.frame(a.sender, b"forged", kind=MediaKind.VIDEO),
            conf.frame(b.sender + 1, b"forged"),  # an unannounced neighbour
        ]
        for frame in forged:
            await m.socket.send(frame)
        notice = await conf.receive(m.socket)
        assert (notice["type"], notice["code"], notice["dropped"]) == ("error", "wrong_sender", 1)
        assert str(m.sender) in notice["message"]
        genuine = conf.frame(m.sender, b"mallory's own")
        await m.socket.send(genuine)
        for receiver in (a, b):
            relayed = await asyncio.wait_for(receiver.socket.recv(), 5)
            assert relayed == conf.relayed(genuine, mallory.device_id)  # and nothing forged
            assert await conf.silent(receiver.socket)
        # Bob's own frames still reach Alice: his sender number is not muted.
        bobs = conf.frame(b.sender, b"bob", ctr=1)
        await b.socket.send(bobs)
        assert await asyncio.wait_for(a.socket.recv(), 5) == conf.relayed(bobs, bob.device_id)
        for joined in (a, b, m):
            await joined.socket.close()

    asyncio.run(main())


def test_the_sdk_counts_what_the_relay_dropped(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.meeting(alice, bob)

    async def main() -> None:
        sender = await conf.announce(room, alice)
        listener = await conf.join_media(room, bob)
        async with httpx.AsyncClient() as http:
            channel = await ConferenceClient(conf.url, http).media(
                room, device_id=alice.device_id, signer=alice.signer, token=alice.tokens,
                sender=sender, membership=lambda: alice.capability(room),
            )  # fmt: skip
            assert await channel.send(MediaKind.VIDEO, conf.frame(sender + 1)[1:])
            assert await channel.send(MediaKind.VIDEO, conf.frame(sender + 1)[1:])
            with pytest.raises(TimeoutError):  # nothing to receive; the notice is read
                await asyncio.wait_for(channel.receive(), 0.5)
            assert channel.relay_dropped == {"wrong_sender": 1}  # one notice a second
            assert await conf.silent(listener.socket)
            await channel.close()
        await listener.socket.close()

    asyncio.run(main())


def test_bad_frames_are_dropped_and_answered_at_most_once_a_second(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.meeting(alice, bob)
    limit = 256 * 1024  # ConferenceSettings.max_frame_bytes

    async def main() -> None:
        a = await conf.join_media(room, alice)
        assert a.reply == {
            "type": "welcome",
            "user_id": alice.user_id,
            "device_id": alice.device_id,
        }
        b = await conf.join_media(room, bob)
        header = conf.frame(a.sender, b"")[1:]
        bad: list[bytes | str] = [
            b"",  # empty
            bytes([9]) + header + b"frame",  # unknown media kind
            bytes([0]) + header + b"frame",
            bytes([MediaKind.AUDIO]),  # a routing byte and no frame
            bytes([MediaKind.AUDIO, 0x80]),  # the header announces a KID byte it lacks
            bytes([MediaKind.AUDIO, 0xFF]) + bytes(10),  # 8-byte KID and CTR announced, 10 sent
            bytes([MediaKind.VIDEO]) + header + bytes(limit - len(header)),  # one byte too many
            "a text message",
        ]
        for frame in bad:
            await a.socket.send(frame)
        notice = await conf.receive(a.socket)
        assert (notice["type"], notice["code"], notice["dropped"]) == ("error", "bad_frame", 1)
        assert await conf.silent(a.socket, 0.3)  # one notice, not one per frame
        good = conf.frame(a.sender, b"good frame", kind=MediaKind.VIDEO)
        await a.socket.send(good)
        assert await asyncio.wait_for(b.socket.recv(), 5) == conf.relayed(good, alice.device_id)
        largest = conf.frame(a.sender, b"", kind=MediaKind.DATA)
        largest += os.urandom(limit - len(largest))
        await a.socket.send(largest)
        assert await asyncio.wait_for(b.socket.recv(), 5) == conf.relayed(largest, alice.device_id)
        assert await conf.silent(b.socket)
        # A second later, the next bad frame is answered, with what was dropped meanwhile.
        await asyncio.sleep(1.0)
        await a.socket.send(b"\x07")
        notice = await conf.receive(a.socket)
        assert (notice["code"], notice["dropped"]) == ("bad_frame", len(bad))
        back = conf.frame(b.sender, b"reply")
        await b.socket.send(back)
        assert await asyncio.wait_for(a.socket.recv(), 5) == conf.relayed(back, bob.device_id)
        await a.socket.close()
        await b.socket.close()

    asyncio.run(main())


def test_a_flood_is_cut_to_the_connections_rate(conf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Buckets that refill at one frame (and 10 bytes) an hour: the burst, not the clock,
    decides how much of a flood gets through."""
    settings = conf.settings(
        f"sqlite:///{tmp_path / 'conference.sqlite3'}",
        relay_frame_burst=40,
        relay_frames_per_second=1 / 3600,
        relay_byte_burst=1 << 20,
        relay_bytes_per_second=10 / 3600,
        max_frame_bytes=1 << 20,
    )
    alice, bob, carol = (conf.person(n) for n in ("alice", "bob", "carol"))
    room = conf.meeting(alice, bob, carol)

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            a = await conf.join_media(room, alice, base_url=url)
            b = await conf.join_media(room, bob, base_url=url)
            c = await conf.join_media(room, carol, base_url=url)
            for i in range(500):  # small frames: the frame bucket is the limit
                await a.socket.send(conf.frame(a.sender, b"%d" % i, ctr=i))
            arrived = await _drain(b.socket)
            assert arrived == [
                conf.relayed(conf.frame(a.sender, b"%d" % i, ctr=i), alice.device_id)
                for i in range(40)
            ]
            notices = [json.loads(m) for m in await _drain(a.socket) if isinstance(m, str)]
            assert [(n["code"], n["dropped"]) for n in notices] == [("rate_limited", 1)]
            # Large frames: 1 MiB of bytes a connection, then nothing.
            for i in range(20):
                await c.socket.send(conf.frame(c.sender, os.urandom(100_000), ctr=i))
            assert len(await _drain(b.socket)) == 10
            await asyncio.gather(*(j.socket.close() for j in (a, b, c)))

        asyncio.run(main())


async def _drain(socket_, quiet: float = 0.5) -> list[bytes | str]:  # type: ignore[no-untyped-def]
    """Everything that arrives until ``quiet`` seconds pass without a message."""
    found = []
    while True:
        try:
            found.append(await asyncio.wait_for(socket_.recv(), quiet))
        except TimeoutError:
            return found


def _send_buffer_limit() -> int:
    """The most a loopback TCP socket buffers on the sending side (Linux), or 4 MiB."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
            return int(limits.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def test_a_slow_receiver_does_not_stall_the_others(conf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A receiver that never reads: its socket buffers fill, then its relay queue
    (8 frames here), then its frames are skipped. Every other receiver keeps getting
    every frame, in order, at once."""
    settings = conf.settings(
        f"sqlite:///{tmp_path / 'conference.sqlite3'}",
        relay_queue_frames=8,
        relay_bytes_per_second=1e9,
        relay_byte_burst=10**9,
    )
    sender, fast, slow = conf.person("sender"), conf.person("fast"), conf.person("slow")
    room = conf.meeting(sender, fast, slow)
    size = 100_000
    count = _send_buffer_limit() // size + 80  # more than the kernel can buffer for it

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            host, port = url.removeprefix("http://").split(":")
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # fills early
            raw.connect((host, int(port)))
            raw.setblocking(False)
            s = await conf.join_media(
                room, slow, base_url=url, connect_options={"sock": raw, "max_queue": 1}
            )
            a = await conf.join_media(room, sender, base_url=url)
            b = await conf.join_media(room, fast, base_url=url)
            frames = [
                conf.frame(a.sender, b"%05d" % i + os.urandom(size), kind=MediaKind.VIDEO, ctr=i)
                for i in range(count)
            ]
            expected = [conf.relayed(frame, sender.device_id) for frame in frames]
            loop = asyncio.get_running_loop()
            started = loop.time()
            for frame, relayed in zip(frames, expected, strict=True):
                await a.socket.send(frame)  # paced by the fast receiver: it must get each one
                assert await asyncio.wait_for(b.socket.recv(), 5) == relayed
            assert loop.time() - started < 30
            assert await conf.silent(b.socket, 0.2)

            # Now the slow receiver reads what it was kept: an in-order subset, not all.
            kept: list[bytes] = []
            while True:
                try:
                    kept.append(await asyncio.wait_for(s.socket.recv(), 1))
                except TimeoutError:
                    break
            assert 0 < len(kept) < count
            positions = [expected.index(frame) for frame in kept]
            assert positions == sorted(positions)
            # ...and it is still connected: new frames reach it.
            last = conf.frame(a.sender, b"after the backlog", ctr=count)
            await a.socket.send(last)
            assert await asyncio.wait_for(s.socket.recv(), 5) == conf.relayed(
                last, sender.device_id
            )
            assert await asyncio.wait_for(b.socket.recv(), 5) == conf.relayed(
                last, sender.device_id
            )
            for joined in (a, b, s):
                await joined.socket.close()

        asyncio.run(main())


def test_a_revoked_devices_open_connections_are_closed(conf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = conf.settings(
        f"sqlite:///{tmp_path / 'conference.sqlite3'}",
        device_recheck_seconds=0.2,
        device_cache_seconds=0.1,
    )
    alice, bob = conf.person("alice"), conf.person("bob")
    lost_signer = SigningKey.generate()
    lost = alice.add_device(lost_signer)
    room = conf.meeting(alice, bob)

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            device = {"base_url": url, "device_id": lost, "signer": lost_signer}
            board, welcome = await conf.open("board", room, alice, **device)
            media = await conf.join_media(room, alice, **device)
            kept = await conf.join_media(room, bob, base_url=url)
            assert {welcome["type"], media.reply["type"], kept.reply["type"]} == {"welcome"}
            alice.revoke(lost)
            for socket_ in (board, media.socket):
                assert await conf.refused(socket_, 4403) == "device_revoked"
            assert await conf.silent(kept.socket, 0.5)  # an active device's connection stays up
            await kept.socket.close()

        asyncio.run(main())
