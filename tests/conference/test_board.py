"""The board: signed posts in one order for everyone, resume after a reconnect, and
every forgery the service must refuse, with its exact error code. Raw tests speak
the WebSocket protocol themselves (see ``veil.conference.board_channel``)."""

import asyncio
import json
import time

import pytest
from websockets.asyncio.server import ServerConnection, serve

from veil.client import DeviceRevoked, Forbidden, InvalidRequest, ServiceError, Unauthorized
from veil.conference import create_app
from veil.crypto.keys import PrivateKey
from veil.crypto.signing import SigningKey
from veil.idp import DevIdentityProvider
from veil.protocol import MeetingProof, b64decode, b64encode
from veil.protocol.board import Alive, Announce, Chat, End, KeyPost, Leave

# --- order -------------------------------------------------------------------------------


def test_posts_reach_every_subscriber_in_one_order(conf) -> None:  # type: ignore[no-untyped-def]
    people = [conf.person(n) for n in ("alice", "bob", "carol")]
    room = conf.room()

    async def main() -> None:
        boards = [p.board(room) for p in people]
        for board in boards:
            await board.connect()
        sent: dict[int, tuple[str, bytes]] = {}
        for i in range(3):  # one after another...
            body = conf.chat(f"alice {i}".encode())
            sent[await boards[0].post("chat", body)] = (people[0].user_id, body)
        posts = [  # ...and all at once, from everyone
            (person, board, conf.chat(f"{person.user_id} {i}".encode()))
            for person, board in zip(people, boards, strict=True)
            for i in range(4)
        ]
        seqs = await asyncio.gather(*(board.post("chat", body) for _, board, body in posts))
        sent.update(
            {
                seq: (person.user_id, body)
                for seq, (person, _, body) in zip(seqs, posts, strict=True)
            }
        )
        assert sorted(sent) == list(range(1, 16))

        for board in boards:
            got = [await board.next(5) for _ in range(15)]
            assert [p.seq for p in got] == list(range(1, 16))
            assert {p.seq: (p.user_id, p.body) for p in got} == sent
            assert all(p.kind == "chat" for p in got)
            with pytest.raises(TimeoutError):
                await board.next(0.2)
            assert board.rejected == 0
            await board.close()

    asyncio.run(main())


# --- resume -------------------------------------------------------------------------------


def test_a_subscriber_resumes_with_exactly_the_posts_it_missed(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()

    async def main() -> None:
        poster = alice.board(room)
        await poster.connect()

        async def post(numbers: range) -> None:
            for n in numbers:
                assert await poster.post("chat", conf.chat(b"post %d" % n)) == n

        reader = bob.board(room)
        await reader.connect()
        await post(range(1, 4))
        assert [(await reader.next(5)).seq for _ in range(3)] == [1, 2, 3]
        await reader.close()

        await post(range(4, 7))  # while bob is away
        resumed = bob.board(room)
        await resumed.connect(since=reader.last_seq)
        got = [await resumed.next(5) for _ in range(3)]
        assert [(p.seq, p.body) for p in got] == [(n, conf.chat(b"post %d" % n)) for n in (4, 5, 6)]
        with pytest.raises(TimeoutError):
            await resumed.next(0.3)

        # The SDK board resumes on its own after a dropped connection.
        assert resumed._link.socket is not None
        await resumed._link.socket.close()
        await post(range(7, 10))
        assert [(await resumed.next(5)).seq for _ in range(3)] == [7, 8, 9]
        with pytest.raises(TimeoutError):
            await resumed.next(0.3)
        await resumed.close()

        # On the wire: the service itself sends each missed post exactly once, in order.
        socket, welcome = await conf.open("board", room, bob, since=6)
        assert welcome["type"] == "welcome"
        assert [p["seq"] for p in await conf.posts(socket, 3)] == [7, 8, 9]
        assert await conf.silent(socket)
        await socket.close()
        socket, _ = await conf.open("board", room, bob, since=9)
        assert await conf.silent(socket)
        await post(range(10, 11))
        assert [p["seq"] for p in await conf.posts(socket, 1)] == [10]
        await socket.close()
        await poster.close()

    asyncio.run(main())


def test_joining_while_others_post_delivers_each_post_once(conf) -> None:  # type: ignore[no-untyped-def]
    """A subscriber that connects mid-stream reads the backlog while live posts arrive:
    it must see 1..n with no gap and no duplicate."""
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()
    total = 40

    async def main() -> None:
        poster = alice.board(room)
        await poster.connect()
        await poster.post("chat", conf.chat(b"first"))

        async def keep_posting() -> None:
            for n in range(2, total + 1):
                await poster.post("chat", conf.chat(b"%d" % n))

        posting = asyncio.create_task(keep_posting())
        await asyncio.sleep(0.02)
        sockets = []
        for _ in range(3):  # join at different points of the stream
            socket, welcome = await conf.open("board", room, bob)
            assert welcome["type"] == "welcome"
            sockets.append(socket)
            await asyncio.sleep(0.01)
        await posting
        for socket in sockets:
            assert [p["seq"] for p in await conf.posts(socket, total)] == list(range(1, total + 1))
            assert await conf.silent(socket, 0.2)
            await socket.close()
        await poster.close()

    asyncio.run(main())


# --- a post resent ---------------------------------------------------------------------------


def test_a_post_resent_by_its_device_is_acknowledged_and_stored_once(conf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A client that lost its connection before the ack resends its post: same post id,
    fresh timestamp and signature. The board answers with the stored post's seq and
    neither stores nor fans it out again, even when the resend comes after the room
    ended (the resent ``end`` itself) or after the end proof grew stale. The same post
    id from another device, or with another content (another body, or the same body
    under another kind), is a replay."""
    now = [time.time()]
    settings = conf.settings(f"sqlite:///{tmp_path / 'c.sqlite3'}", clock=lambda: now[0])
    alice, bob = conf.person("alice"), conf.person("bob")
    phone_signer = SigningKey.generate()
    phone = alice.add_device(phone_signer)
    room = conf.room()
    group_key = alice.create_group(room)

    def at(offset: float) -> int:
        now[0] = time.time() + offset
        return int(now[0])

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            reader, _ = await conf.open("board", room, bob, base_url=url)
            first, _ = await conf.open("board", room, alice, base_url=url)
            post_id = b"p" * 16
            # An announce: the one body that is well formed under another kind too (leave).
            once = bytes(Announce(1))
            original = alice.post(room, "announce", once, post_id=post_id, timestamp=at(0))
            await first.send(json.dumps(original))
            assert await conf.answer(first) == {
                "type": "ack", "post_id": original["post_id"], "seq": 1,
            }  # fmt: skip
            await first.close()

            again, _ = await conf.open("board", room, alice, base_url=url)

            async def answer(post: dict[str, object]) -> dict[str, object]:
                await again.send(json.dumps(post))
                return await conf.answer(again)

            resent = alice.post(room, "announce", once, post_id=post_id, timestamp=at(50))
            assert resent["signature"] != original["signature"]
            assert await answer(resent) == {"type": "ack", "post_id": resent["post_id"], "seq": 1}
            assert (await answer(original))["seq"] == 1  # the very same message, still fresh
            # An hour later a resend is still answered, once re-signed with a fresh time:
            # the timestamp check is not relaxed for resends.
            resent = alice.post(room, "announce", once, post_id=post_id, timestamp=at(3600))
            assert (await answer(original))["code"] == "stale_post"
            assert (await answer(resent))["seq"] == 1
            assert bytes(Leave(1)) == once
            replays = [
                alice.post(room, "announce", bytes(Announce(2)), post_id=post_id, timestamp=at(0)),
                alice.post(room, "leave", once, post_id=post_id, timestamp=at(0)),  # other kind
            ]
            for replay in replays:
                assert (await answer(replay))["code"] == "replayed_post"
            for person, device in ((bob, {}), (alice, {"device_id": phone})):
                socket_, _ = await conf.open(
                    "board", room, person, base_url=url, signer=phone_signer if device else None,
                    **device,
                )  # fmt: skip
                post = person.post(
                    room, "announce", once, post_id=post_id, timestamp=at(0),
                    signer=phone_signer if device else None, **device,
                )  # fmt: skip
                await socket_.send(json.dumps(post))
                assert (await conf.answer(socket_))["code"] == "replayed_post", person
                await socket_.close()

            # The end, resent after it closed the room and after its proof went stale.
            body = bytes(End(MeetingProof.make("end", room, alice.user_id, at(0), group_key)))
            end = alice.post(room, "end", body, post_id=b"e" * 16, timestamp=at(0))
            assert (await answer(end))["seq"] == 2
            late = alice.post(room, "end", body, post_id=b"e" * 16, timestamp=at(3600))
            assert await answer(late) == {"type": "ack", "post_id": late["post_id"], "seq": 2}
            other = alice.post(room, "chat", conf.chat(b"after the end"), timestamp=at(3600))
            assert (await answer(other))["code"] == "room_ended"

            # The live subscriber saw each post once; so does a resume of the board.
            assert [(p["seq"], p["kind"]) for p in await conf.posts(reader, 2)] == [
                (1, "announce"),
                (2, "end"),
            ]
            assert await conf.silent(reader)
            at(0)  # (the hello's JWT would be expired an hour from now)
            resumed, _ = await conf.open("board", room, bob, base_url=url)
            assert [p["seq"] for p in await conf.posts(resumed, 2)] == [1, 2]
            assert await conf.silent(resumed)
            for socket_ in (reader, again, resumed):
                await socket_.close()

        asyncio.run(main())


# --- forged and malformed posts ------------------------------------------------------------


def test_forged_and_malformed_posts_are_refused(conf) -> None:  # type: ignore[no-untyped-def]
    alice, mallory = conf.person("alice"), conf.person("mallory")
    room, elsewhere = conf.room(), conf.room()

    async def main() -> None:
        socket, welcome = await conf.open("board", room, alice)
        assert welcome == {
            "type": "welcome",
            "user_id": alice.user_id,
            "device_id": alice.device_id,
        }

        async def reply_to(message: object) -> dict[str, object]:
            await socket.send(message if isinstance(message, str | bytes) else json.dumps(message))
            return await conf.answer(socket)

        async def refused(message: dict[str, object], code: str) -> None:
            reply = await reply_to(message)
            assert (reply["type"], reply["code"], reply["post_id"]) == (
                "error",
                code,
                message["post_id"],
            )

        now = int(time.time())
        await refused(alice.post(room, signer=SigningKey.generate()), "bad_signature")
        await refused(alice.post(room, signer=mallory.signer), "bad_signature")
        await refused(alice.post(room, signed_room=elsewhere), "bad_signature")
        await refused(alice.post(room, timestamp=now - 3600), "stale_post")
        await refused(alice.post(room, timestamp=now + 3600), "stale_post")
        altered = alice.post(room, body=conf.chat(b"original"))
        altered["body"] = b64encode(conf.chat(b"altered"))  # well formed, but not what was signed
        await refused(altered, "bad_signature")
        # A well-formed end whose proof is not by a meeting admin (the room has no group).
        forged = MeetingProof.make("end", room, alice.user_id, now, PrivateKey.generate())
        await refused(alice.post(room, "end", bytes(End(forged))), "not_host")

        good = alice.post(room, body=conf.chat(b"the only good post"))
        assert await reply_to(good) == {"type": "ack", "post_id": good["post_id"], "seq": 1}
        # Sent again by its device: acknowledged as stored, not stored twice.
        assert await reply_to(good) == {"type": "ack", "post_id": good["post_id"], "seq": 1}

        malformed: list[object] = [
            "this is not JSON",
            b"\x00binary",
            json.dumps([1, 2]),
            {"type": "post"},
            {**alice.post(room), "type": "chat"},
            {k: v for k, v in alice.post(room).items() if k != "signature"},
            {**alice.post(room), "extra": 1},
            {**alice.post(room), "kind": "bogus"},
            {**alice.post(room), "timestamp": str(now)},
            {**alice.post(room), "timestamp": True},
        ]
        for message in malformed:
            reply = await reply_to(message)
            assert (reply["type"], reply["code"]) == ("error", "bad_message"), message
        # Malformed fields of an otherwise well-formed post name the post.
        for field, value in (
            ("signature", "not base64!"),
            ("signature", b64encode(b"short")),
            ("post_id", b64encode(b"short")),
            ("body", "a+b/c="),
        ):
            await refused({**alice.post(room), field: value}, "bad_message")

        # Bodies that are not their kind's message in canonical form (docs/protocol.md §3),
        # in posts otherwise sound and signed by the device: 400 bad_body naming the defect.
        def canonical(fields: dict[str, object]) -> bytes:
            return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

        sealed = b64encode(b"sealed")
        chat = {"epoch": 0, "sender": 0, "sealed": sealed}
        assert canonical(chat) == conf.chat(b"sealed")
        proof = MeetingProof.make("end", room, alice.user_id, now, PrivateKey.generate())
        key = KeyPost(0, b"key", *KeyPost.changes((), ("a", "b")), (), "a", proof)
        bad_bodies: list[tuple[str, bytes, str]] = [
            # Not JSON, or not an object.
            ("chat", b"", "chat: the body is not UTF-8 JSON"),
            ("chat", b"not JSON", "chat: the body is not UTF-8 JSON"),
            ("chat", b"\xff" + conf.chat(b"sealed"), "chat: the body is not UTF-8 JSON"),
            # Too deep: refused either way, by the decoder's recursion limit (which other
            # libraries in the process may raise) or as not an object.
            ("chat", b"[" * 5000 + b"]" * 5000, "chat: the body is not "),
            ("chat", b"[]", "chat: the body is not a JSON object"),
            ("chat", b"null", "chat: the body is not a JSON object"),
            # Not canonical: whitespace, unsorted keys, escaped or padded where it need not be.
            ("chat", json.dumps(chat, sort_keys=True).encode(), "not in canonical form"),
            (
                "chat",
                json.dumps(dict(reversed(chat.items())), separators=(",", ":")).encode(),
                "not in canonical form",
            ),
            (
                "chat",
                canonical(chat).replace(b'"epoch"', b'"\\u0065poch"'),
                "not in canonical form",
            ),
            (
                "chat",
                canonical({**chat, "sealed": b64encode(b"seal") + "=="}),
                "sealed is unpadded base64url",
            ),
            ("chat", canonical(chat) + b"\n", "not in canonical form"),
            ("chat", canonical({**chat, "epoch": 0.0}), "epoch is an integer"),
            # An unknown field, a missing one, another kind's body.
            ("chat", canonical({**chat, "extra": 1}), "exactly the fields"),
            ("chat", canonical({"epoch": 0, "sender": 0}), "exactly the fields"),
            ("chat", canonical({}), "exactly the fields"),
            ("chat", bytes(Announce(1)), "exactly the fields"),
            ("announce", conf.chat(b"sealed"), "exactly the fields"),
            ("end", canonical({"timestamp": now}), "exactly the fields"),
            ("end", canonical({**End(proof).fields(), "by": "alice"}), "exactly the fields"),
            # A field of the wrong type, or out of range.
            ("chat", canonical({**chat, "epoch": "0"}), "chat: epoch is an integer"),
            ("chat", canonical({**chat, "epoch": -1}), "chat: epoch is an integer"),
            ("chat", canonical({**chat, "epoch": 2**64}), "chat: epoch is an integer"),
            ("chat", canonical({**chat, "sender": True}), "chat: sender is an integer"),
            ("chat", canonical({**chat, "sender": None}), "chat: sender is an integer"),
            ("chat", canonical({**chat, "sealed": 5}), "chat: sealed is unpadded base64url"),
            ("chat", canonical({**chat, "sealed": "a+b/"}), "chat: sealed is unpadded base64url"),
            ("announce", canonical({"sender": -1}), "announce: sender is an integer"),
            ("leave", canonical({"sender": 2**44}), "leave: sender is an integer"),
            ("alive", canonical({"epoch": 0, "deputy": "bob"}), "alive: deputy is an integer"),
            ("hand-over", canonical({**proof.fields(), "sender": [1]}), "sender is an integer"),
            ("key", canonical({**key.fields(), "joined": ["b", "a"]}), "joined is sorted"),
            ("key", canonical({**key.fields(), "left": ["a", "a"]}), "left is sorted"),
            ("key", canonical({**key.fields(), "members_digest": "AA"}), "32-byte digest"),
            ("key", canonical({**key.fields(), "invitees": "a"}), "invitees is a list of user"),
            ("key", canonical({**key.fields(), "host": ""}), "key: host is a user id"),
            (
                "end",
                canonical({"timestamp": str(now), "proof": proof.fields()["proof"]}),
                "end: timestamp and proof are malformed",
            ),
            (
                "end",
                canonical({"timestamp": now, "proof": "AA"}),
                "end: timestamp and proof are malformed",
            ),
        ]
        for kind, body, defect in bad_bodies:
            post = alice.post(room, kind, body)
            reply = await reply_to(post)
            assert (reply["type"], reply["status"], reply["code"], reply["post_id"]) == (
                "error", 400, "bad_body", post["post_id"],
            ), (kind, body[:100], reply)  # fmt: skip
            assert defect in str(reply["message"]), (kind, body[:100], reply)
        # The body is checked before the timestamp and the signature.
        stale_forged = alice.post(room, "chat", b"[]", timestamp=now - 3600, signer=mallory.signer)
        await refused(stale_forged, "bad_body")
        # The well-formed counterparts are stored (on another room's board).
        sound, _ = await conf.open("board", elsewhere, alice)
        for number, (kind, body) in enumerate(
            [
                ("chat", canonical(chat)),
                ("announce", bytes(Announce(2**44 - 1))),
                ("leave", bytes(Leave(0))),
                ("alive", bytes(Alive(2**64 - 1, None))),
                ("key", bytes(key)),
                ("chat", bytes(Chat(1, 2, b""))),
            ],
            start=1,
        ):
            await sound.send(json.dumps(alice.post(elsewhere, kind, body)))
            assert (await conf.answer(sound))["seq"] == number, (kind, body)
        await sound.close()

        # The connection is still usable, and nothing refused was stored.
        later = alice.post(room, body=conf.chat(b"still here"))
        assert await reply_to(later) == {"type": "ack", "post_id": later["post_id"], "seq": 2}
        await socket.close()

        # On another connection too; into another room, it fails.
        again, _ = await conf.open("board", room, alice)
        await again.send(json.dumps(good))
        assert await conf.answer(again) == {"type": "ack", "post_id": good["post_id"], "seq": 1}
        await again.close()
        other, _ = await conf.open("board", elsewhere, alice)
        await other.send(json.dumps(good))
        assert (await conf.answer(other))["code"] == "bad_signature"
        await other.close()

        reader, _ = await conf.open("board", room, mallory)
        stored = await conf.posts(reader, 2)
        assert [(p["seq"], b64decode(p["body"])) for p in stored] == [
            (1, conf.chat(b"the only good post")),
            (2, conf.chat(b"still here")),
        ]
        assert await conf.silent(reader)
        await reader.close()

    asyncio.run(main())


# --- the hello ---------------------------------------------------------------------------


def test_hellos_that_do_not_prove_an_active_device_of_the_user_are_refused(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    revoked_signer = SigningKey.generate()
    revoked = alice.add_device(revoked_signer)
    alice.revoke(revoked)
    room = conf.room()
    stranger = DevIdentityProvider()  # an IdP the services do not trust
    header = b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = {
        "iss": stranger.issuer,
        "aud": stranger.audience,
        "sub": alice.user_id,
        "iat": int(time.time()),
        "exp": int(time.time()) + 300,
    }
    unsigned = f"{header}.{b64encode(json.dumps(claims).encode())}."

    cases = [
        ({"signer": SigningKey.generate()}, "bad_signature", 4401),
        ({"signed_room": conf.room()}, "bad_signature", 4401),
        ({"device_id": revoked, "signer": revoked_signer}, "device_revoked", 4403),
        ({"device_id": bob.device_id, "signer": bob.signer}, "not_your_device", 4403),
        ({"device_id": "0" * 32}, "unknown_device", 4401),
        ({"token": unsigned}, "invalid_token", 4401),
        ({"token": stranger.issue(alice.user_id)}, "invalid_token", 4401),
        ({"token": "not a token"}, "invalid_token", 4401),
        (
            {"token": conf.stack.idp.issue(alice.user_id, exp=int(time.time()) - 5)},
            "token_expired",
            4401,
        ),
    ]

    async def main() -> None:
        for channel in ("board", "media"):
            for forged, code, close_code in cases:
                socket, reply = await conf.open(channel, room, alice, **forged)
                assert (reply["type"], reply["code"]) == ("error", code), (channel, forged)
                assert await conf.refused(socket, close_code) == code

        # A first message that is not a hello.
        from websockets.asyncio.client import connect

        url = conf.url.replace("http://", "ws://") + f"/v1/rooms/{room}/board"
        for first in ('{"type": "post"}', "not json", '["hello"]'):
            async with connect(url) as socket:
                await socket.recv()  # the challenge
                await socket.send(first)
                reply = json.loads(await socket.recv())
                assert (reply["type"], reply["code"]) == ("error", "bad_hello")
                assert await conf.refused(socket, 4401) == "bad_hello"

        # The SDK turns the refusals into its errors.
        with pytest.raises(DeviceRevoked):
            await alice.board(room, device_id=revoked, signer=revoked_signer).connect()
        with pytest.raises(Forbidden) as forbidden:
            await alice.board(room, device_id=bob.device_id, signer=bob.signer).connect()
        assert forbidden.value.code == "not_your_device"
        with pytest.raises(Unauthorized) as unauthorized:
            await alice.board(room, signer=SigningKey.generate()).connect()
        assert unauthorized.value.code == "bad_signature"

    asyncio.run(main())


# --- ending a meeting ---------------------------------------------------------------------


def test_only_a_meeting_admin_may_end_the_meeting(conf) -> None:  # type: ignore[no-untyped-def]
    """An ``end`` post must carry a proof made with the private key of the meeting's
    group (the group whose id is the room's), which only its admins hold. A body that
    is not an end in canonical form is refused before the proof is looked at
    (``bad_body``); a well-formed one with the wrong proof is ``not_host``."""
    host, guest = conf.person("host"), conf.person("guest")
    room = conf.room()
    group_key = host.create_group(room)

    def end(person, key, *, meeting: str = room, timestamp: int | None = None) -> bytes:  # type: ignore[no-untyped-def]
        now = int(time.time()) if timestamp is None else timestamp
        return bytes(End(MeetingProof.make("end", meeting, person.user_id, now, key)))

    def loose(body: bytes) -> bytes:
        """The same end, not in canonical form (as ``json.dumps`` writes it)."""
        return json.dumps(json.loads(body)).encode()

    async def main() -> None:
        host_board, guest_board = host.board(room), guest.board(room)
        await host_board.connect()
        await guest_board.connect()
        assert loose(end(host, group_key)) != end(host, group_key)
        refusals = [
            (guest_board, b"", "bad_body"),
            (guest_board, b"not JSON", "bad_body"),
            (guest_board, json.dumps({"timestamp": int(time.time())}).encode(), "bad_body"),
            (guest_board, b'{"proof":"AA","timestamp":0}', "bad_body"),  # not a signature
            (guest_board, conf.chat(b"bye"), "bad_body"),  # another kind's body
            (host_board, loose(end(host, group_key)), "bad_body"),  # the admin's, not canonical
            (guest_board, end(guest, PrivateKey.generate()), "not_host"),  # not the group's key
            (host_board, end(host, PrivateKey.generate()), "not_host"),
            (host_board, end(host, group_key, meeting=conf.room()), "not_host"),  # another room
            (guest_board, end(host, group_key), "not_host"),  # host's proof, posted by guest
            (host_board, end(host, group_key, timestamp=int(time.time()) - 3600), "stale_post"),
        ]
        for board, body, code in refusals:
            with pytest.raises(ServiceError) as caught:
                await board.post("end", body)
            assert caught.value.code == code, body
            assert isinstance(caught.value, InvalidRequest) == (code == "bad_body"), body
        # No group at the key service for this room: nobody can end it.
        orphan = host.board(conf.room())
        await orphan.connect()
        with pytest.raises(ServiceError) as caught:
            await orphan.post("end", end(host, group_key, meeting=orphan.room_id))
        assert caught.value.code == "not_host"
        await orphan.close()

        assert await guest_board.post("chat", conf.chat(b"bye")) == 1  # nothing refused was stored
        assert await host_board.post("end", end(host, group_key)) == 2
        for board, kind, body in (
            (guest_board, "chat", conf.chat(b"too late")),
            (host_board, "chat", conf.chat(b"too late")),
            (host_board, "end", end(host, group_key)),  # a valid end, but it already ended
        ):
            with pytest.raises(ServiceError) as caught:
                await board.post(kind, body)
            assert caught.value.code == "room_ended"
        # Everyone saw the end; the board stays readable; media is closed.
        assert [(await guest_board.next(5)).kind for _ in range(2)] == ["chat", "end"]
        late = guest.board(room)
        await late.connect()
        assert [(await late.next(5)).seq for _ in range(2)] == [1, 2]
        socket, reply = await conf.open("media", room, guest)
        assert (reply["type"], reply["code"]) == ("error", "room_ended")
        assert await conf.refused(socket, 4403) == "room_ended"
        for board in (host_board, guest_board, late):
            await board.close()

    asyncio.run(main())


# --- the SDK's own check ---------------------------------------------------------------------


def test_the_sdk_board_delivers_only_posts_whose_signature_verifies(conf) -> None:  # type: ignore[no-untyped-def]
    """The conference service is not trusted: the SDK checks every post against the
    poster device's key from the key service. A post the service altered (or made up)
    is counted in ``rejected`` and never delivered."""
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()

    async def main() -> None:
        board = bob.board(room)
        await board.connect()
        poster = alice.board(room)
        await poster.connect()
        await poster.post("chat", conf.chat(b"genuine"))
        delivered = await board.next(5)
        assert (delivered.user_id, delivered.device_id, delivered.body) == (
            alice.user_id,
            alice.device_id,
            conf.chat(b"genuine"),
        )
        socket, _ = await conf.open("board", room, bob)
        (wire,) = await conf.posts(socket, 1)
        await socket.close()
        assert await board._verified(dict(wire)) == delivered
        assert board.rejected == 0

        signature = bytearray(b64decode(wire["signature"]))
        signature[0] ^= 1
        forgeries = [
            {**wire, "signature": b64encode(bytes(signature))},
            {**wire, "body": b64encode(conf.chat(b"forged"))},
            {**wire, "kind": "end"},
            {**wire, "timestamp": wire["timestamp"] + 1},
            {**wire, "user_id": bob.user_id},  # alice's post passed off as bob's
            {**wire, "device_id": bob.device_id},  # ...or as signed by bob's device
            {**wire, "device_id": "0" * 32},  # a device the key service does not know
            {**wire, "post_id": b64encode(b"\x00" * 16)},
            {k: v for k, v in wire.items() if k != "signature"},
            {**wire, "signature": "not base64!"},
            # Malformed beyond the signature: rejected too, never a crash of the reader.
            {k: v for k, v in wire.items() if k != "seq"},
            {**wire, "seq": str(wire["seq"])},
            {**wire, "timestamp": str(wire["timestamp"])},
            {**wire, "timestamp": 1 << 64},
            {**wire, "kind": 5},
            {**wire, "device_id": None},
            "not a post",
            None,
        ]
        for number, forged in enumerate(forgeries, start=1):
            assert await board._verified(forged) is None, forged
            assert board.rejected == number
        # Verified against this board's room: the same post on another room's board fails.
        elsewhere = bob.board(conf.room())
        assert await elsewhere._verified(dict(wire)) is None
        assert elsewhere.rejected == 1
        with pytest.raises(TimeoutError):
            await board.next(0.2)
        await board.close()
        await poster.close()

    asyncio.run(main())


def test_the_sdk_board_survives_a_dishonest_service(conf) -> None:  # type: ignore[no-untyped-def]
    """A fake conference service sends garbage and forged posts before a genuine one:
    the board delivers the genuine post only, and keeps reading."""
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.room()

    async def main() -> None:
        socket, _ = await conf.open("board", room, alice)
        good = alice.post(room, body=conf.chat(b"genuine"))
        await socket.send(json.dumps(good))
        (wire,) = await conf.posts(socket, 1)
        await socket.close()
        unsigned = {k: v for k, v in wire.items() if k != "seq"}

        async def dishonest(connection: ServerConnection) -> None:
            await connection.send(
                json.dumps({"type": "challenge", "challenge": b64encode(b"c" * 16)})
            )
            await connection.recv()
            await connection.send(json.dumps({"type": "welcome", **{"user_id": bob.user_id}}))
            for message in (
                "not JSON",
                json.dumps([1, 2, 3]),
                json.dumps({"type": "post"}),
                json.dumps(
                    {"type": "post", "post": {**wire, "body": b64encode(conf.chat(b"forged"))}}
                ),
                json.dumps({"type": "post", "post": unsigned}),
                json.dumps({"type": "post", "post": {**wire, "timestamp": "soon"}}),
                json.dumps({"type": "post", "post": wire}),
                # The same signed post again under a new seq: a replay, not a new post.
                json.dumps({"type": "post", "post": {**wire, "seq": wire["seq"] + 1}}),
            ):
                await connection.send(message)
            await connection.wait_closed()

        async with serve(dishonest, "127.0.0.1", 0) as server:
            host, port = next(iter(server.sockets)).getsockname()[:2]
            board = bob.board(room, f"http://{host}:{port}")
            await board.connect()
            post = await board.next(5)
            assert (post.seq, post.user_id, post.body) == (1, alice.user_id, conf.chat(b"genuine"))
            assert board.rejected == 5
            with pytest.raises(TimeoutError):
                await board.next(0.2)
            await board.close()

    asyncio.run(main())


def test_one_connection_cannot_flood_a_board(conf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A bucket of 250 that refills at one post an hour: the limit, not the clock, decides.
    settings = conf.settings(
        f"sqlite:///{tmp_path / 'conference.sqlite3'}",
        post_burst=250,
        post_rate_per_second=1 / 3600,
    )
    alice = conf.person("alice")
    room = conf.room()

    with conf.serve(create_app(settings)) as url:

        async def main() -> None:
            socket, _ = await conf.open("board", room, alice, base_url=url)
            for _ in range(255):
                await socket.send(json.dumps(alice.post(room)))
            replies = [await conf.answer(socket) for _ in range(255)]
            assert [r["type"] for r in replies] == ["ack"] * 250 + ["error"] * 5
            assert all((r["status"], r["code"]) == (429, "rate_limited") for r in replies[250:])
            await socket.close()
            # A resume of the whole board (read in pages of 200) has every post once, in order.
            resumed, _ = await conf.open("board", room, alice, base_url=url, since=0)
            seqs = [(await conf.receive(resumed))["post"]["seq"] for _ in range(250)]
            assert seqs == list(range(1, 251))
            assert await conf.silent(resumed)
            await resumed.close()

        asyncio.run(main())
