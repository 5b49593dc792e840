"""A meeting across a conference-service restart (a rolling deploy): media and the board
reconnect, and a chat message, a leave and a rekey made while the service was down all
land once it is back; the application hears of each connection's ups and downs."""

import asyncio

from veil.client.meeting import ConnectionChanged, MeetingEvent
from veil.protocol import MediaKind


async def _frame(meeting, payload: bytes, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def arrives() -> None:
        while True:
            frame = await meeting.receive_frame()
            if frame is not None and frame.payload == payload:
                return

    await asyncio.wait_for(arrives(), timeout)


def test_a_meeting_resumes_after_a_restart_and_what_was_posted_meanwhile_lands(
    restartable,
) -> None:  # type: ignore[no-untyped-def]
    env, services = restartable

    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, mb, mc = await env.start_and_join(alice, [bob, carol])
        states: list[tuple[str, str]] = []

        def record(event: MeetingEvent) -> None:
            if isinstance(event, ConnectionChanged):
                states.append((event.channel, event.state))

        mb.events.on(record)
        await ma.send_frame(MediaKind.AUDIO, b"before")
        await _frame(mb, b"before")

        await services.stop_conference()
        await env.eventually(lambda: ("board", "reconnecting") in states)
        # While the service is down: a chat message, a leave and a rekey are made.
        chat = asyncio.create_task(mb.send_chat("sent during the outage"))
        leave = asyncio.create_task(mc.leave())
        rekey = asyncio.create_task(ma.rekey())
        assert await ma.send_frame(MediaKind.AUDIO, b"lost") is False  # dropped, counted
        await asyncio.sleep(1.0)
        assert not chat.done() and not rekey.done()
        assert mc.ciphertexts_held() == 0  # the leaver holds nothing from the start
        await services.start_conference()

        await asyncio.wait_for(asyncio.gather(chat, leave, rekey), 30)
        # The rekey landed; then the leave's removal and its own rekey followed.
        for m in (ma, mb):
            await m.wait_for_epoch(2, timeout=20)
        assert ma.security_code == mb.security_code
        assert carol.user_id not in ma.members
        await env.eventually(lambda: [m.text for m in ma.chat] == ["sent during the outage"])
        assert [m.text for m in mb.chat] == ["sent during the outage"]
        assert ("board", "connected") in states[states.index(("board", "reconnecting")) :]
        await env.eventually(lambda: ("media", "connected") in states)
        # Media flows again, on the new key.
        await env.eventually(
            lambda: ma.media_channel is not None and ma.media_channel.state == "connected"
        )
        await ma.send_frame(MediaKind.AUDIO, b"after")
        await _frame(mb, b"after")
        assert mc.epoch == 0 and mc.ciphertexts_held() == 0

    env.run(main, timeout=90)
