"""The SDK's board and media channel across a conference-service restart (a rolling
deploy: ``conf.stack.services`` stops the service, its port refuses connections, then
it starts again on the same port and database): they reconnect and resume, posts made
before, during and after land once each, in order; a post that cannot land fails
loudly; a refusal at reconnect ends the connection and reaches the application."""

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from veil.client import DeviceRevoked, Forbidden, Unavailable
from veil.client.conference import Board, ConferenceClient, MediaChannel
from veil.crypto.signing import SigningKey
from veil.protocol import MediaKind
from veil.protocol.board import Announce


async def until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def announced(board: Board, sender: int) -> None:
    await board.post(Announce.KIND, bytes(Announce(sender)))


def test_board_and_media_survive_a_restart_and_every_post_lands_once(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.meeting(alice, bob)
    services = conf.stack.services
    states: dict[str, list[str]] = {}

    def track(name: str) -> Callable[[str], None]:
        return states.setdefault(name, []).append

    async def main() -> None:
        poster = alice.board(room, on_state=track("alice board"))
        reader = bob.board(room, on_state=track("bob board"))
        await poster.connect()
        await reader.connect()
        await announced(poster, 1)
        await announced(reader, 2)
        async with httpx.AsyncClient() as http:
            client = ConferenceClient(conf.url, http)

            async def media(person, sender: int) -> MediaChannel:  # type: ignore[no-untyped-def]
                return await client.media(
                    room, device_id=person.device_id, signer=person.signer, token=person.tokens,
                    sender=sender, membership=lambda: person.capability(room),
                    on_state=track(f"{person.user_id[:3]} media"),
                )  # fmt: skip

            sending, receiving = await media(alice, 1), await media(bob, 2)
            frame = conf.frame(1, b"before")[1:]
            assert await sending.send(MediaKind.AUDIO, frame)
            assert await asyncio.wait_for(receiving.receive(), 5) == (
                MediaKind.AUDIO, alice.device_id, frame,
            )  # fmt: skip
            assert await poster.post("chat", conf.chat(b"before")) == 3

            await services.stop_conference()
            await until(lambda: all(s[-1] == "reconnecting" for s in states.values()))
            during = asyncio.create_task(poster.post("chat", conf.chat(b"during")))
            assert not await sending.send(MediaKind.AUDIO, conf.frame(1, b"lost")[1:])
            assert sending.dropped_while_disconnected == 1
            waiting = asyncio.create_task(receiving.receive())
            await asyncio.sleep(1.0)
            assert not during.done() and not waiting.done()  # both wait for the service

            await services.start_conference()
            assert await asyncio.wait_for(during, 15) == 4
            assert await poster.post("chat", conf.chat(b"after")) == 5
            await until(lambda: sending.state == "connected" == receiving.state)
            frame = conf.frame(1, b"after", ctr=1)[1:]
            assert await sending.send(MediaKind.AUDIO, frame)
            assert await asyncio.wait_for(waiting, 5) == (MediaKind.AUDIO, alice.device_id, frame)

            got = [await reader.next(5) for _ in range(5)]
            assert [(p.seq, p.kind, p.body) for p in got[2:]] == [
                (3, "chat", conf.chat(b"before")),
                (4, "chat", conf.chat(b"during")),
                (5, "chat", conf.chat(b"after")),
            ]
            with pytest.raises(TimeoutError):
                await reader.next(0.3)
            assert reader.rejected == 0 and reader.last_seq == 5
            for channel in (sending, receiving):
                await channel.close()
        for board in (poster, reader):
            await board.close()
        for name, seen in states.items():
            assert seen == ["connected", "reconnecting", "connected", "closed"], name

    asyncio.run(main())


def test_a_post_whose_ack_was_lost_is_resent_and_stored_once(conf) -> None:  # type: ignore[no-untyped-def]
    """The board stored the post but the connection dropped before its ack arrived: the
    SDK resends it (same post id, fresh signature) and the board answers with the
    stored seq instead of storing a copy."""
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()

    async def main() -> None:
        poster, reader = alice.board(room), bob.board(room)
        await poster.connect()
        await reader.connect()
        answer = poster._answer
        lost: list[object] = []

        def lose_first_ack(message: dict[str, object]) -> None:
            if message["type"] == "ack" and not lost:
                lost.append(message)
                assert poster._link.socket is not None
                asyncio.get_running_loop().create_task(poster._link.socket.close())
                return
            answer(message)

        poster._answer = lose_first_ack  # type: ignore[method-assign]
        assert await asyncio.wait_for(poster.post("chat", conf.chat(b"once")), 15) == 1
        assert len(lost) == 1
        assert await poster.post("chat", conf.chat(b"twice")) == 2
        assert [(p.seq, p.body) for p in [await reader.next(5), await reader.next(5)]] == [
            (1, conf.chat(b"once")),
            (2, conf.chat(b"twice")),
        ]
        with pytest.raises(TimeoutError):
            await reader.next(0.3)
        await poster.close()
        await reader.close()

    asyncio.run(main())


def test_a_post_that_cannot_land_in_time_fails_loudly(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()
    services = conf.stack.services

    async def main() -> None:
        poster, reader = alice.board(room), bob.board(room)
        await poster.connect()
        await reader.connect()
        await services.stop_conference()
        try:
            with pytest.raises(Unavailable) as timed_out:
                await poster.post("chat", conf.chat(b"never"), timeout=0.5)
            assert timed_out.value.code == "post_timeout"
        finally:
            await services.start_conference()
        # Given up means given up: it is not resent after the reconnect.
        assert await asyncio.wait_for(poster.post("chat", conf.chat(b"later")), 15) == 1
        assert (await reader.next(15)).body == conf.chat(b"later")
        with pytest.raises(TimeoutError):
            await reader.next(0.3)
        await poster.close()
        await reader.close()

    asyncio.run(main())


def test_closing_ends_what_waits_on_the_board_and_the_channel(conf) -> None:  # type: ignore[no-untyped-def]
    """A post waiting through an outage, a reader and a receiver waiting for what comes
    next: closing ends each of them with an error, none is left hanging."""
    alice = conf.person("alice")
    room = conf.meeting(alice)
    services = conf.stack.services

    async def main() -> None:
        board = alice.board(room)
        await board.connect()
        await announced(board, 3)
        assert (await board.next(5)).kind == "announce"
        async with httpx.AsyncClient() as http:
            channel = await ConferenceClient(conf.url, http).media(
                room, device_id=alice.device_id, signer=alice.signer, token=alice.tokens,
                sender=3, membership=lambda: alice.capability(room),
            )  # fmt: skip
            await services.stop_conference()
            try:
                posting = asyncio.create_task(board.post("chat", conf.chat(b"never sent")))
                reading = asyncio.create_task(board.next())
                receiving = asyncio.create_task(channel.receive())
                await asyncio.sleep(0.3)
                assert not (posting.done() or reading.done() or receiving.done())
                await board.close()
                await channel.close()
                with pytest.raises(Unavailable) as closed:
                    await asyncio.wait_for(posting, 5)
                assert closed.value.code == "closed"
                for waiting in (reading, receiving):
                    with pytest.raises(RuntimeError, match="closed"):
                        await asyncio.wait_for(waiting, 5)
                with pytest.raises(RuntimeError, match="closed"):
                    await board.next()
                with pytest.raises(RuntimeError):
                    await board.post("chat", conf.chat(b"after close"))
            finally:
                await services.start_conference()

    asyncio.run(main())


def test_a_refusal_at_reconnect_ends_board_and_media_with_the_error(conf) -> None:  # type: ignore[no-untyped-def]
    """Revoked while the service was down: the reconnect is refused for good. The board
    delivers what it had, then raises; the media channel raises; both say "failed"."""
    alice, bob = conf.person("alice"), conf.person("bob")
    laptop_signer = SigningKey.generate()
    laptop = alice.add_device(laptop_signer)
    room = conf.meeting(alice, bob)
    services = conf.stack.services
    states: dict[str, list[str]] = {}

    async def main() -> None:
        board = alice.board(
            room, device_id=laptop, signer=laptop_signer,
            on_state=states.setdefault("board", []).append,
        )  # fmt: skip
        await board.connect()
        await announced(board, 7)
        async with httpx.AsyncClient() as http:
            client = ConferenceClient(conf.url, http)

            async def capability() -> dict[str, str]:
                return alice.membership(room, device_id=laptop, signer=laptop_signer)

            channel = await client.media(
                room, device_id=laptop, signer=laptop_signer, token=alice.tokens, sender=7,
                membership=capability, on_state=states.setdefault("media", []).append,
            )  # fmt: skip
            assert (await board.next(5)).kind == "announce"
            await services.stop_conference()
            try:
                await asyncio.to_thread(alice.revoke, laptop)
            finally:
                await services.start_conference()
            with pytest.raises(DeviceRevoked):
                await asyncio.wait_for(board.next(), 15)
            with pytest.raises(DeviceRevoked):
                await board.next()  # and again: the board stays failed
            with pytest.raises(DeviceRevoked):
                await board.post("chat", conf.chat(b"after"))
            with pytest.raises(DeviceRevoked):
                await asyncio.wait_for(channel.receive(), 15)
            assert not await channel.send(MediaKind.AUDIO, conf.frame(7)[1:])
            await channel.close()
        await board.close()
        assert states == {
            "board": ["connected", "reconnecting", "failed", "closed"],
            "media": ["connected", "reconnecting", "failed", "closed"],
        }

    asyncio.run(main())


def test_a_member_removed_meanwhile_is_not_admitted_at_reconnect(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()
    group_key = alice.create_group(room)
    alice.add_member(room, group_key, bob)
    services = conf.stack.services

    async def main() -> None:
        sender = await conf.announce(room, bob)
        async with httpx.AsyncClient() as http:
            client = ConferenceClient(conf.url, http)
            channel = await client.media(
                room, device_id=bob.device_id, signer=bob.signer, token=bob.tokens,
                sender=sender, membership=lambda: bob.capability(room),
            )  # fmt: skip
            await services.stop_conference()
            try:
                await asyncio.to_thread(alice.remove_member, room, group_key, bob.user_id)
            finally:
                await services.start_conference()
            with pytest.raises(Forbidden) as refused:
                await asyncio.wait_for(channel.receive(), 15)
            assert refused.value.code == "not_admitted"
            assert channel.state == "failed"
            await channel.close()

    asyncio.run(main())
