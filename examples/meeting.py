"""A complete Veil meeting from the SDK: two devices, media, chat, and the end.

Run ``veil serve`` in another terminal (the key service on :8470, the conference
service on :8471 and the development IdP on :8472), then::

    python examples/meeting.py

Against other addresses: ``python examples/meeting.py KEYSERVER_URL CONFERENCE_URL
IDP_URL``. Tokens come from the development IdP, which signs one for any user name:
a platform passes its own IdP's tokens instead (``tokens(audience)`` below).
"""

import asyncio
import secrets
import sys

import httpx

from veil.client import (
    ChatReceived,
    Device,
    EpochChanged,
    Meeting,
    MeetingEvent,
    MemoryDeviceStore,
)
from veil.protocol import MediaKind


def token_source(idp_url: str, user_id: str):  # type: ignore[no-untyped-def]
    """``tokens(audience)`` for ``Device.initialize``: a fresh JWT for this user."""

    async def tokens(audience: str) -> str:
        async with httpx.AsyncClient(base_url=idp_url) as http:
            response = await http.post("/token", json={"sub": user_id, "audience": audience})
            response.raise_for_status()
            return str(response.json()["token"])

    return tokens


async def device(user_id: str, keyserver_url: str, conference_url: str, idp_url: str) -> Device:
    return await Device.initialize(
        keyserver_url=keyserver_url,
        conference_url=conference_url,
        tokens=token_source(idp_url, user_id),
        # Real clients keep the device context in a FileDeviceStore, sealed under a key
        # from the OS keystore; this example forgets its devices when it ends.
        store=MemoryDeviceStore(secrets.token_bytes(32)),
    )


def show(name: str):  # type: ignore[no-untyped-def]
    def on_event(event: MeetingEvent) -> None:
        if isinstance(event, EpochChanged):
            print(f"{name}: epoch {event.epoch}, security code {event.security_code}")
        elif isinstance(event, ChatReceived):
            print(f"{name}: chat from {event.user_id}: {event.text}")

    return on_event


async def main(keyserver_url: str, conference_url: str, idp_url: str) -> None:
    suffix = secrets.token_hex(3)  # fresh users each run
    alice_id, bob_id = f"alice-{suffix}", f"bob-{suffix}"
    alice = await device(alice_id, keyserver_url, conference_url, idp_url)
    bob = await device(bob_id, keyserver_url, conference_url, idp_url)
    async with alice, bob:
        hosted = await Meeting.start(alice, invitees=[bob_id])
        hosted.events.on(show("alice"))
        invitation = str(hosted.invitation)  # the platform sends this to bob (a link)
        joined = await Meeting.join(bob, invitation)
        joined.events.on(show("bob"))
        print(
            f"both in meeting {hosted.meeting_id}: codes {hosted.security_code}"
            f" / {joined.security_code}"
        )

        await hosted.send_frame(MediaKind.AUDIO, b"an encrypted audio frame")
        frame = await asyncio.wait_for(joined.receive_frame(), 10)
        assert frame is not None, "the frame did not decrypt"
        print(f"bob decrypted {frame.payload!r} from sender {frame.sender}")

        await joined.send_chat("hello from bob")
        while not hosted.chat:
            await asyncio.sleep(0.05)

        await hosted.end()
        await asyncio.wait_for(joined.ended.wait(), 10)
        await joined.close()
        await hosted.close()  # closing rotates each device's keys (forward secrecy)
        print("meeting ended; keys dropped and rotated")


if __name__ == "__main__":
    urls = sys.argv[1:] or [
        "http://127.0.0.1:8470",
        "http://127.0.0.1:8471",
        "http://127.0.0.1:8472",
    ]
    asyncio.run(main(*urls))
