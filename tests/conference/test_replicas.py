"""Two conference-service replicas on one PostgreSQL database and one fan-out backend
(Redis pub/sub, or NATS): participants connected to different replicas share one
board, in one order, and each other's media."""

import asyncio
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from veil.conference import create_app

BACKENDS = [
    pytest.param("redis://127.0.0.1:6379/0", id="redis"),
    pytest.param("nats://127.0.0.1:4222", id="nats"),
]


@pytest.fixture(params=BACKENDS)
def replicas(request, conf, fresh_postgres_url) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    fanout_url = request.param
    where = urlsplit(fanout_url)
    if not conf.answers(where.hostname, where.port):
        pytest.skip(f"{where.scheme} is not answering on {where.hostname}:{where.port}")
    settings = conf.settings(fresh_postgres_url, fanout_url=fanout_url)
    with conf.serve(create_app(settings)) as first, conf.serve(create_app(settings)) as second:
        yield first, second


def test_participants_on_two_replicas_share_board_and_media(conf, replicas) -> None:  # type: ignore[no-untyped-def]
    first, second = replicas
    alice, bob, carol = (conf.person(n) for n in ("alice", "bob", "carol"))
    room = conf.meeting(alice, bob, carol)
    placed = [(alice, first), (bob, second), (carol, second)]

    async def main() -> None:
        boards = [person.board(room, url) for person, url in placed]
        for board in boards:
            await board.connect()
        # Everyone posts at once, through both replicas: one order is decided (and no
        # post fails for losing a race for its seq).
        posts = [
            (board, person.user_id, conf.chat(b"%s %d" % (person.user_id.encode(), i)))
            for (person, _), board in zip(placed, boards, strict=True)
            for i in range(8)
        ]
        seqs = await asyncio.gather(*(board.post("chat", body) for board, _, body in posts))
        assert sorted(seqs) == list(range(1, 25))
        expected = {
            seq: (user_id, body) for seq, (_, user_id, body) in zip(seqs, posts, strict=True)
        }
        for board in boards:
            got = [await board.next(10) for _ in range(24)]
            assert [p.seq for p in got] == list(range(1, 25))
            assert {p.seq: (p.user_id, p.body) for p in got} == expected
            with pytest.raises(TimeoutError):
                await board.next(0.3)
            await board.close()

        # A late subscriber on either replica reads the same board.
        for url in (first, second):
            late = alice.board(room, url)
            await late.connect()
            assert [(await late.next(10)).seq for _ in range(24)] == list(range(1, 25))
            await late.close()

        # Media: each participant's frames reach the two others, across replicas, with
        # their origin device.
        channels = []
        for person, url in placed:
            joined = await conf.join_media(room, person, base_url=url)
            assert joined.reply["type"] == "welcome", joined.reply
            channels.append(joined)
        frames = {
            person.device_id: [
                conf.frame(joined.sender, b"|%d|" % i + os.urandom(64), ctr=i) for i in range(5)
            ]
            for (person, _), joined in zip(placed, channels, strict=True)
        }
        for (person, _), joined in zip(placed, channels, strict=True):
            for frame in frames[person.device_id]:
                await joined.socket.send(frame)
        for (person, _), joined in zip(placed, channels, strict=True):
            got = [await asyncio.wait_for(joined.socket.recv(), 10) for _ in range(10)]
            by_origin: dict[str, list[bytes]] = {}
            for relayed in got:
                origin = relayed[2 : 2 + relayed[1]].decode()
                by_origin.setdefault(origin, []).append(relayed)
            others = {p.device_id for p, _ in placed} - {person.device_id}
            assert by_origin == {d: [conf.relayed(f, d) for f in frames[d]] for d in others}
            assert await conf.silent(joined.socket)
        for joined in channels:
            await joined.socket.close()

    asyncio.run(main())
