"""The media relay: every frame to every other participant, unchanged; bad frames are
answered and dropped; a receiver that does not read loses its own frames only."""

import asyncio
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
    room = conf.room()
    kinds = [MediaKind.AUDIO, MediaKind.VIDEO, MediaKind.DATA]
    sent = {
        p.user_id: [
            (kinds[i % 3], p.user_id.encode() + b"|%d|" % i + os.urandom(200 + 50 * i))
            for i in range(12)
        ]
        for p in people
    }

    async def main() -> None:
        async with httpx.AsyncClient() as http:
            client = ConferenceClient(conf.url, http)
            channels = [
                await client.media(room, device_id=p.device_id, signer=p.signer, token=p.token())
                for p in people
            ]

            async def send_all(index: int) -> None:
                for kind, frame in sent[people[index].user_id]:
                    await channels[index].send(kind, frame)

            await asyncio.gather(*(send_all(i) for i in range(3)))
            for me, channel in zip(people, channels, strict=True):
                others = [p.user_id for p in people if p is not me]
                received = [await asyncio.wait_for(channel.receive(), 5) for _ in range(2 * 12)]
                by_sender: dict[str, list[tuple[MediaKind, bytes]]] = {u: [] for u in others}
                for kind, frame in received:
                    sender = frame.split(b"|", 1)[0].decode()
                    assert sender != me.user_id, "a participant got its own frame back"
                    by_sender[sender].append((kind, frame))
                # Every frame of every other participant, byte for byte, in its order.
                assert by_sender == {u: sent[u] for u in others}
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(channel.receive(), 0.3)
            for channel in channels:
                await channel.close()

    asyncio.run(main())


def test_bad_frames_are_answered_and_the_connection_stays(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()
    limit = 256 * 1024  # ConferenceSettings.max_frame_bytes

    async def main() -> None:
        a, welcome = await conf.open("media", room, alice)
        assert welcome == {
            "type": "welcome",
            "user_id": alice.user_id,
            "device_id": alice.device_id,
        }
        b, _ = await conf.open("media", room, bob)
        bad: list[bytes | str] = [
            b"",  # empty
            bytes([9]) + b"frame",  # unknown media kind
            bytes([0]) + b"frame",
            bytes([MediaKind.AUDIO]),  # a routing byte and no frame
            bytes([MediaKind.VIDEO]) + bytes(limit),  # one byte too many
            "a text message",
        ]
        for frame in bad:
            await a.send(frame)
            reply = await conf.receive(a)
            assert (reply["type"], reply["code"]) == ("error", "bad_frame"), frame[:8]
        good = bytes([MediaKind.VIDEO]) + b"good frame"
        await a.send(good)
        assert await asyncio.wait_for(b.recv(), 5) == good  # bob got the good one only
        largest = bytes([MediaKind.DATA]) + os.urandom(limit - 1)
        await a.send(largest)
        assert await asyncio.wait_for(b.recv(), 5) == largest
        assert await conf.silent(b)
        back = bytes([MediaKind.AUDIO]) + b"reply"
        await b.send(back)
        assert await asyncio.wait_for(a.recv(), 5) == back
        await a.close()
        await b.close()

    asyncio.run(main())


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
    settings = conf.settings(f"sqlite:///{tmp_path / 'conference.sqlite3'}", relay_queue_frames=8)
    sender, fast, slow = conf.person("sender"), conf.person("fast"), conf.person("slow")
    room = conf.room()
    size = 100_000
    count = _send_buffer_limit() // size + 80  # more than the kernel can buffer for it

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            host, port = url.removeprefix("http://").split(":")
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # fills early
            raw.connect((host, int(port)))
            raw.setblocking(False)
            s, _ = await conf.open(
                "media", room, slow, base_url=url, connect_options={"sock": raw, "max_queue": 1}
            )
            a, _ = await conf.open("media", room, sender, base_url=url)
            b, _ = await conf.open("media", room, fast, base_url=url)
            frames = [
                bytes([MediaKind.VIDEO]) + b"%05d" % i + os.urandom(size) for i in range(count)
            ]
            loop = asyncio.get_running_loop()
            started = loop.time()
            for frame in frames:  # paced by the fast receiver: it must get each one
                await a.send(frame)
                assert await asyncio.wait_for(b.recv(), 5) == frame
            assert loop.time() - started < 30
            assert await conf.silent(b, 0.2)

            # Now the slow receiver reads what it was kept: an in-order subset, not all.
            kept: list[bytes] = []
            while True:
                try:
                    kept.append(await asyncio.wait_for(s.recv(), 1))
                except TimeoutError:
                    break
            assert 0 < len(kept) < count
            positions = [frames.index(frame) for frame in kept]
            assert positions == sorted(positions)
            # ...and it is still connected: new frames reach it.
            last = bytes([MediaKind.AUDIO]) + b"after the backlog"
            await a.send(last)
            assert await asyncio.wait_for(s.recv(), 5) == last
            assert await asyncio.wait_for(b.recv(), 5) == last
            for connection in (a, b, s):
                await connection.close()

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
    room = conf.room()

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            opened = {
                channel: await conf.open(
                    channel, room, alice, base_url=url, device_id=lost, signer=lost_signer
                )
                for channel in ("board", "media")
            }
            kept, _ = await conf.open("media", room, bob, base_url=url)
            assert all(reply["type"] == "welcome" for _, reply in opened.values())
            alice.revoke(lost)
            for socket_, _ in opened.values():
                assert await conf.refused(socket_, 4403) == "device_revoked"
            assert await conf.silent(kept, 0.5)  # an active device's connection stays up
            await kept.close()

        asyncio.run(main())
