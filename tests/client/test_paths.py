"""Ids in the SDK's URLs (issue 16, §1): every id is percent-encoded as one path segment
(``.`` and ``..`` as ``%2E``), so an id outside the services' rule reaches the route it
was meant for and is refused there by the id rule, instead of losing segments to URL
normalization, ending the path at a ``?`` or ``#``, or moving the request to another
route; and an id inside the rule (``@``, ``:``) is sent encoded and still signed right.

Over the real services on loopback (uvicorn decodes paths as a deployment does)."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from veil.client import Invitation, Unavailable
from veil.client.conference import open_socket, ws_url
from veil.client.errors import ServiceError
from veil.client.keyserver import send
from veil.conference.directory import DeviceDirectory
from veil.crypto.keys import PrivateKey
from veil.crypto.signing import SigningKey
from veil.protocol import path_segment

OUTSIDE_THE_RULE = {
    ".": (422, "validation_error"),
    "..": (422, "validation_error"),
    "a?b": (422, "validation_error"),
    "a#b": (422, "validation_error"),
    "a%b": (422, "validation_error"),
    "a%2Fb": (422, "validation_error"),  # the text %2F, not a slash
    "a b": (422, "validation_error"),
}


@pytest.mark.parametrize("segment", ["a", "a@b:c", ".a", "a..", "veil-escrow.bob"])
def test_path_segment_leaves_ordinary_ids_readable(segment: str) -> None:
    assert path_segment(segment) == segment.replace("@", "%40").replace(":", "%3A")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "%2E%2E%2E"),  # not a dot-segment, but encoding it costs nothing
        ("a/b", "a%2Fb"),
        ("a?b#c%", "a%3Fb%23c%25"),
    ],
)
def test_path_segment_keeps_an_id_in_its_segment(value: str, expected: str) -> None:
    assert path_segment(value) == expected
    with pytest.raises(ValueError, match="not empty"):
        path_segment("")


def test_ids_outside_the_rule_reach_their_route_and_are_refused_there(sdk: Any) -> None:
    async def main() -> None:
        device = await sdk.device(sdk.user("alice"))
        for group_id, (status, code) in OUTSIDE_THE_RULE.items():
            for call in (device.session.group, device.session.delete_group):
                with pytest.raises(ServiceError) as caught:
                    await call(group_id)
                assert (caught.value.status, caught.value.code) == (status, code), group_id
            with pytest.raises(ServiceError) as caught:
                await device.keyserver.device_record(group_id)
            assert (caught.value.status, caught.value.code) == (status, code), group_id

    sdk.run(main)


def test_an_id_holding_a_slash_is_not_routed_as_its_parts(sdk: Any) -> None:
    """Deleting the group ``<g>/admins/<bob>`` must not take bob's admin role in g: the
    service decodes ``%2F`` before routing, so it refuses such a path outright."""

    async def main() -> None:
        alice, bob = sdk.user("alice"), sdk.user("bob")
        bobs = await sdk.device(bob)
        device = await sdk.device(alice)
        group_id = await device.groups.create(admins=[bob])
        assert bobs.user_id in (await device.groups.get(group_id)).admins
        with pytest.raises(ServiceError) as caught:
            await device.groups.delete(f"{group_id}/admins/{bob}")
        assert (caught.value.status, caught.value.code) == (422, "invalid_id")
        with pytest.raises(ServiceError) as caught:
            await device.session.group(f"{group_id}/members")
        assert caught.value.status == 405  # the decoded path's route is POST only
        assert (await device.groups.get(group_id)).admins == tuple(sorted((alice, bob)))

    sdk.run(main)


def test_ids_with_at_and_colon_are_encoded_and_still_signed_right(sdk: Any) -> None:
    async def main() -> None:
        device = await sdk.device(sdk.user("alice"))
        group_id = await device.groups.create(f"room@example.com:{path_segment('x')}-1")
        assert (await device.groups.get(group_id)).admins == (device.user_id,)
        assert await device.groups.key(group_id)
        assert group_id in await device.groups.list()
        await device.groups.delete(group_id)

    sdk.run(main)


def test_the_conference_service_refuses_dot_segment_room_ids(sdk: Any) -> None:
    """Its board and relay take the same id rule: ``.`` and ``..`` are refused before
    the WebSocket is accepted (HTTP 403), another room is challenged as usual."""

    async def main() -> None:
        base = ws_url(sdk.stack.endpoints.conference_url, "/v1/rooms")
        for room, accepted in (("%2E%2E", False), ("%2E", False), ("room.1", True)):
            for channel in ("board", "media"):
                try:
                    async with connect(f"{base}/{room}/{channel}") as socket:
                        first = json.loads(await socket.recv())
                    assert accepted and first["type"] == "challenge", (room, channel)
                except InvalidStatus as refused:
                    assert not accepted, (room, channel)
                    assert refused.response.status_code == 403

    sdk.run(main)


@pytest.mark.parametrize("meeting_id", [".", ".."])
def test_an_invitation_to_a_dot_segment_meeting_is_refused(meeting_id: str) -> None:
    text = str(Invitation(meeting_id, PrivateKey.generate().public_key))
    with pytest.raises(ValueError, match="not a valid id"):
        Invitation.parse(text)


def test_the_conference_service_asks_about_a_hello_device_id_in_one_segment() -> None:
    """A hello names any device id up to 64 characters; the conference service looks it
    up at the key service as one encoded segment (``x/../<victim>`` once fetched the
    victim's record), and an id the key service calls malformed is an unknown device."""
    seen: list[bytes] = []

    def keyserver(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(422, json={"error": {"code": "validation_error", "message": ""}})

    async def main() -> None:
        http = httpx.AsyncClient(
            base_url="http://keys.invalid", transport=httpx.MockTransport(keyserver)
        )
        async with http:
            directory = DeviceDirectory(http, ttl=60)
            assert await directory.get("x/../victim") is None
            assert await directory.get("..") is None

    asyncio.run(main())
    assert seen == [b"/v1/devices/x%2F..%2Fvictim", b"/v1/devices/%2E%2E"]


def test_a_network_error_names_the_method_url_and_cause() -> None:
    async def main() -> None:
        async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:  # discard port
            with pytest.raises(Unavailable) as refused:
                await send(http, "GET", "/v1/devices/abc?token=secret")
        message = str(refused.value)
        assert "GET http://127.0.0.1:9/v1/devices/abc:" in message
        cause = message.partition("/v1/devices/abc: ")[2]
        assert cause.strip(), message  # the network stack's words for what failed
        assert "secret" not in message and "ConnectError" not in message

    asyncio.run(main())


def test_a_websocket_that_cannot_open_names_its_url_and_cause() -> None:
    url = "ws://127.0.0.1:9/v1/rooms/m/board"  # the discard port: nothing listens

    async def main() -> None:
        with pytest.raises(Unavailable) as refused:
            await open_socket(url, "m", "board", "a.b.c", "d" * 32, SigningKey.generate())
        assert refused.value.code == "unreachable"
        message = refused.value.message
        assert message.startswith(f"{url}: "), message
        assert "connect call failed" in message.lower(), message  # the cause, as asyncio says it

    asyncio.run(main())
