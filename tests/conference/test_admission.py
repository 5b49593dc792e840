"""Who may join a room's media relay (``veil.conference.admission``): a device bound to
a sender number it was the first to announce on the board, whose user the key service
says is in the meeting's group, as a capability signed by the device itself shows."""

import asyncio
import json
import secrets
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from veil.client import Forbidden, Unavailable
from veil.client.conference import ConferenceClient, membership_path
from veil.conference import create_app
from veil.conference.board import BoardStore, NewPost
from veil.crypto.signing import SigningKey
from veil.protocol import post_message, sign_request
from veil.protocol.board import Announce
from veil.web.database import create_db_engine, session_factory


def test_a_sender_is_the_devices_that_announced_it_first(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    phone_signer = SigningKey.generate()
    phone = alice.add_device(phone_signer)
    room = conf.meeting(alice, bob)

    async def refused(joined, code: str = "sender_not_announced") -> None:  # type: ignore[no-untyped-def]
        assert (joined.reply["type"], joined.reply["code"]) == ("error", code)
        assert await conf.refused(joined.socket, 4403) == code

    async def main() -> None:
        # Never announced. The capability is left unspent (the board is asked first)...
        capability = alice.membership(room)
        unannounced = await conf.join_media(room, alice, announce=False, membership=capability)
        await refused(unannounced)
        # ...so once the sender is announced, the same capability is admitted.
        await conf.announce(room, alice, unannounced.sender)
        again = await conf.join_media(
            room, alice, sender=unannounced.sender, announce=False, membership=capability
        )
        assert again.reply["type"] == "welcome"
        await again.socket.close()

        # Announced by Bob first: Alice announcing it too does not make it hers.
        sender = await conf.announce(room, bob)
        await conf.announce(room, alice, sender)
        await refused(await conf.join_media(room, alice, sender=sender, announce=False))
        bobs = await conf.join_media(room, bob, sender=sender, announce=False)
        assert bobs.reply["type"] == "welcome"
        await bobs.socket.close()

        # Bound to the device, not the user: Alice's phone announced this one.
        by_phone = await conf.announce(room, alice, device_id=phone, signer=phone_signer)
        await refused(await conf.join_media(room, alice, sender=by_phone, announce=False))

        # An announce that is not in canonical form names no one: the board refuses it...
        board, _ = await conf.open("board", room, alice)
        loose, body = 12345, b'{"sender": 12345}'
        assert bytes(Announce(loose)) != body
        await board.send(json.dumps(alice.post(room, "announce", body)))
        answer = await conf.answer(board)
        assert (answer["type"], answer["status"], answer["code"]) == ("error", 400, "bad_body")
        await board.close()
        await refused(await conf.join_media(room, alice, sender=loose, announce=False))
        # ...and the relay does not count one stored before the board checked bodies.
        engine = create_db_engine(f"sqlite:///{conf.stack.data_dir / 'conference.sqlite3'}")
        try:
            now, post_id = int(time.time()), secrets.token_bytes(16)
            signed = post_message(room, post_id, "announce", alice.device_id, now, body)
            old = NewPost(
                room, post_id, "announce", alice.device_id, alice.user_id, now, body,
                alice.signer.sign(signed),
            )  # fmt: skip
            store = BoardStore(engine, session_factory(engine))
            assert await asyncio.to_thread(store.append, old, now)
            assert await asyncio.to_thread(store.announcer, room, loose) is None
        finally:
            engine.dispose()
        await refused(await conf.join_media(room, alice, sender=loose, announce=False))

        # Announced in another room only.
        elsewhere = conf.meeting(alice)
        other = await conf.announce(elsewhere, alice)
        await refused(await conf.join_media(room, alice, sender=other, announce=False))

    asyncio.run(main())


def test_only_the_meetings_group_is_admitted(conf) -> None:  # type: ignore[no-untyped-def]
    host, guest, outsider = conf.person("host"), conf.person("guest"), conf.person("outsider")
    room = conf.meeting(host, guest)

    async def main() -> None:
        for person in (host, guest):  # the admin, and a member
            joined = await conf.join_media(room, person)
            assert joined.reply["type"] == "welcome", joined.reply
            await joined.socket.close()
        # A valid JWT, an active device, a sender announced on the board: not a member.
        intruder = await conf.join_media(room, outsider)
        assert (intruder.reply["type"], intruder.reply["code"]) == ("error", "not_admitted")
        assert await conf.refused(intruder.socket, 4403) == "not_admitted"
        # A room without a group at the key service admits no one.
        orphan = conf.room()
        lonely = await conf.join_media(orphan, host)
        assert lonely.reply["code"] == "not_admitted"
        assert await conf.refused(lonely.socket, 4403) == "not_admitted"

        # The SDK raises the refusal of a first connection.
        sender = await conf.announce(room, outsider)
        async with httpx.AsyncClient() as http:
            client = ConferenceClient(conf.url, http)
            with pytest.raises(Forbidden) as refused:
                await client.media(
                    room, device_id=outsider.device_id, signer=outsider.signer,
                    token=outsider.tokens, sender=sender,
                    membership=lambda: outsider.capability(room),
                )  # fmt: skip
        assert refused.value.code == "not_admitted"

    asyncio.run(main())


def test_a_membership_capability_is_the_devices_own_fresh_and_single_use(conf) -> None:  # type: ignore[no-untyped-def]
    alice, bob = conf.person("alice"), conf.person("bob")
    room = conf.meeting(alice, bob)
    elsewhere = conf.meeting(alice)

    async def main() -> None:
        sender = await conf.announce(room, alice)

        async def refused(membership: object, code: str, close_code: int, **hello: object) -> None:
            fields = {"sender": sender, "membership": membership, **hello}
            socket_, reply = await conf.open("media", room, alice, **fields)
            assert (reply["type"], reply["code"]) == ("error", code), fields
            assert await conf.refused(socket_, close_code) == code

        # Bob's capability, presented by Alice's connection.
        await refused(bob.membership(room), "membership_mismatch", 4403)
        # Forwarded once, then again: the key service spent its nonce.
        capability = alice.membership(room)
        first = await conf.join_media(
            room, alice, sender=sender, announce=False, membership=capability
        )
        assert first.reply["type"] == "welcome"
        await first.socket.close()
        await refused(capability, "invalid_membership", 4401)
        # Signed for another room; too old; signed by a key that is not the device's.
        await refused(alice.membership(elsewhere), "invalid_membership", 4401)
        path = membership_path(room)
        stale = sign_request(
            alice.signer, alice.device_id, "GET", path, "", b"", int(time.time()) - 3600
        )
        await refused(stale, "invalid_membership", 4401)
        forged = sign_request(
            SigningKey.generate(), alice.device_id, "GET", path, "", b"", int(time.time())
        )
        await refused(forged, "invalid_membership", 4401)
        # Malformed media hellos.
        good = alice.membership(room)
        for membership in (
            None,
            "headers",
            {k: v for k, v in good.items() if k != "veil-nonce"},
            {**good, "authorization": "Bearer x"},
            {**good, "veil-signature": 7},
            {**good, "veil-signature": ""},
        ):
            await refused(membership, "bad_hello", 4401)
        for bad_sender in (None, True, -1, 2**44, "1", 1.0):
            await refused(alice.membership(room), "bad_hello", 4401, sender=bad_sender)

    asyncio.run(main())


def _failing_keyserver(target: str) -> Starlette:
    """The key service, except that its membership route answers 503."""

    async def forward(request: Request) -> Response:
        if request.url.path.endswith("/membership"):
            body = {"error": {"code": "overloaded", "message": "try later"}}
            return JSONResponse(body, status_code=503)
        async with httpx.AsyncClient(base_url=target) as http:
            answer = await http.get(request.url.path)
        return Response(answer.content, answer.status_code, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", forward)])


def test_a_key_service_that_cannot_answer_is_503_keyserver_unavailable(conf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    alice = conf.person("alice")
    room = conf.meeting(alice)

    with conf.serve(_failing_keyserver(conf.stack.endpoints.keyserver_url)) as keyserver:
        settings = conf.settings(f"sqlite:///{tmp_path / 'c.sqlite3'}", keyserver_url=keyserver)
        with conf.serve(create_app(settings)) as url:

            async def main() -> None:
                joined = await conf.join_media(room, alice, base_url=url)
                assert joined.reply["code"] == "keyserver_unavailable"
                assert await conf.refused(joined.socket, 4503) == "keyserver_unavailable"
                async with httpx.AsyncClient() as http:
                    client = ConferenceClient(url, http)
                    with pytest.raises(Unavailable) as unavailable:
                        await client.media(
                            room, device_id=alice.device_id, signer=alice.signer,
                            token=alice.tokens, sender=joined.sender,
                            membership=lambda: alice.capability(room),
                        )  # fmt: skip
                assert unavailable.value.code == "keyserver_unavailable"

            asyncio.run(main())


def test_the_capability_never_appears_in_a_refusal(conf) -> None:  # type: ignore[no-untyped-def]
    """What the relay answers names the problem, never the signature it was handed."""
    alice, outsider = conf.person("alice"), conf.person("outsider")
    room = conf.meeting(alice)

    async def main() -> None:
        capability = outsider.membership(room)
        joined = await conf.join_media(room, outsider, membership=capability)
        assert joined.reply["code"] == "not_admitted"
        text = json.dumps(joined.reply)
        assert capability["veil-signature"] not in text and capability["veil-nonce"] not in text

    asyncio.run(main())
