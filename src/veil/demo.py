"""``veil demo``: an end-to-end encrypted meeting of real SDK clients, with checks.

One process, no configuration: the dev IdP, the key service (SQLite in a temporary
folder) and the conference service listen on loopback; N devices initialize
(split-trust escrow), the first starts a meeting and the others join over HTTP and
WebSocket. Everyone sends synthetic audio (50 frames/s) and video (30 frames/s) and
chat; an uninvited user with a valid JWT tries to join; one participant leaves and
keeps listening to the relay; the key rotates; the host ends the meeting; every
device rotates its keys. Then the checks run: each is a fact measured in this run.

Every plaintext frame and chat message carries a random per-run canary, so "the
relay saw no plaintext" is checked by searching everything the conference service
fanned out or stored for it.
"""

import asyncio
import contextlib
import dataclasses
import secrets
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from veil.client import Device, MemoryDeviceStore, NotAdmitted, NotMember
from veil.client.errors import ServiceError
from veil.client.meeting import Meeting, MeetingTimers
from veil.conference.fanout import MemoryFanout
from veil.idp import DevIdentityProvider
from veil.protocol import MediaKind
from veil.protocol.board import KeyPost
from veil.stack import run_stack

AUDIO_FPS, VIDEO_FPS = 50, 30
AUDIO_BYTES, VIDEO_BYTES = 160, 1_000
_FRAME_ID = struct.Struct(">QBI")  # sender, stream, counter


class TappedFanout(MemoryFanout):
    """In-memory fan-out that keeps a copy of everything the relay and board send."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []

    async def publish(self, channel: str, message: bytes) -> None:
        self.seen.append(message)
        await super().publish(channel, message)


@dataclass
class Participant:
    name: str
    device: Device
    meeting: Meeting | None = None
    sent: int = 0
    received: set[tuple[int, int, int]] = field(default_factory=set)
    decrypted_after_leave: int = 0
    left_at: float | None = None
    state: str = "starting"
    codes: dict[int, str] = field(default_factory=dict)


COLUMNS = ("who", "state", "epoch", "code", "sent", "decrypted", "dropped")
"""The live table's columns, one row per participant (the imposter is not shown)."""

LEGEND = (
    "state: starting, host, in meeting, 'left, listening' (the leaver, below), then done or left. "
    "epoch: the session key each client holds (a leave rotates it). code: the security "
    "code of that epoch, which everyone present compares (out of band) to know they "
    "share one key and member list. sent / decrypted: frames this client sent, and "
    "others' frames it decrypted. dropped: frames it refused (tampered, replayed, or "
    "under a key it does not hold). The leaver keeps its relay connection after leaving "
    "('left, listening'): everything it receives from then on is dropped."
)
"""What the table's columns and states mean, printed under it (``veil demo``)."""


def table(people: list[Participant], stage: str) -> Table:
    """The live table: what the demo is doing (``stage``) and each participant's state."""
    shown = Table(title=f"veil demo — {stage}")
    for column in COLUMNS:
        shown.add_column(column, no_wrap=True)  # 80 columns hold them all
    for p in people:
        m = p.meeting
        shown.add_row(
            p.name,
            p.state,
            "" if m is None or m.epoch is None else str(m.epoch),
            m.security_code if m and m.epoch is not None else "",
            str(p.sent),
            str(len(p.received)),
            str(m.media.counters.dropped) if m and m.media else "",
        )
    return shown


@dataclass
class DemoResult:
    ok: bool
    participants: int
    rekeys: int
    frames_sent: int
    frames_decrypted: int
    checks: dict[str, bool]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def run_demo(
    *,
    participants: int = 6,
    phase_seconds: float = 3.0,
    timers: MeetingTimers | None = None,
    on_update: Callable[[list[Participant], str], None] | None = None,
) -> DemoResult:
    if participants < 3:
        raise ValueError("the demo needs at least 3 participants (a host, a leaver, a stayer)")
    timers = timers or MeetingTimers(
        debounce=1.0, rekey_interval=300.0, join_retries=(0.5, 1.0, 1.0), epoch_grace=2.0
    )
    started = time.perf_counter()
    idp = DevIdentityProvider()
    fanout = TappedFanout()
    canary = b"VEIL-PLAINTEXT-" + secrets.token_hex(8).encode()
    say = on_update or (lambda people, stage: None)
    with tempfile.TemporaryDirectory(prefix="veil-demo-") as folder:
        say([], "starting the dev IdP, key service and conference service on loopback")
        async with run_stack(Path(folder), idp=idp, fanout=fanout) as endpoints:
            say([], f"registering {participants + 1} devices (keys, escrow, certificates)")
            people = await _devices(endpoints, idp, [f"user{i}" for i in range(participants)])
            imposter = (await _devices(endpoints, idp, ["imposter"]))[0]
            try:
                checks, rekeys = await _meeting(
                    people, imposter, timers, phase_seconds, canary, on_update
                )
                checks["relay_saw_no_plaintext"] = _no_plaintext(canary, fanout.seen, Path(folder))
            finally:
                for device in [p.device for p in people] + [imposter.device]:
                    await device.close()
    sent = sum(p.sent for p in people)
    decrypted = sum(len(p.received) for p in people)
    return DemoResult(
        ok=all(checks.values()),
        participants=participants,
        rekeys=rekeys,
        frames_sent=sent,
        frames_decrypted=decrypted,
        checks=checks,
        seconds=round(time.perf_counter() - started, 2),
    )


async def _devices(endpoints: Any, idp: DevIdentityProvider, names: list[str]) -> list[Participant]:
    async def one(name: str) -> Participant:
        async def token(audience: str) -> str:
            return idp.issue(name, aud=audience)

        device = await Device.initialize(
            keyserver_url=endpoints.keyserver_url,
            conference_url=endpoints.conference_url,
            tokens=token,
            store=MemoryDeviceStore(secrets.token_bytes(32)),
        )
        return Participant(name, device)

    return list(await asyncio.gather(*(one(n) for n in names)))


async def _meeting(
    people: list[Participant],
    imposter: Participant,
    timers: MeetingTimers,
    phase: float,
    canary: bytes,
    on_update: Callable[[list[Participant], str], None] | None,
) -> tuple[dict[str, bool], int]:
    host, leaver = people[0], people[-1]
    stage = "starting"

    def update(now: str) -> None:
        nonlocal stage
        stage = now
        if on_update is not None:
            on_update(people, stage)

    checks: dict[str, bool] = {}
    meeting_id = f"demo-{secrets.token_hex(6)}"
    update("starting the meeting (its group, the members' transform keys)")
    invited = [p.name for p in people[1:]]
    host.meeting = await Meeting.start(host.device, meeting_id, invitees=invited, timers=timers)
    host.state = "host"
    update("joining")
    joined = await asyncio.gather(
        *(Meeting.join(p.device, host.meeting.invitation, timers=timers) for p in people[1:])
    )
    for person, meeting in zip(people[1:], joined, strict=True):
        person.meeting, person.state = meeting, "in meeting"
    checks["everyone_admitted"] = all(p.meeting and p.meeting.epoch == 0 for p in people)

    try:
        # the imposter holds the invitation too (a leaked link): admission still says no
        await Meeting.join(imposter.device, host.meeting.invitation, timers=timers)
        checks["imposter_not_admitted"] = False
    except NotAdmitted:
        checks["imposter_not_admitted"] = True

    sending = asyncio.Event()
    sending.set()
    stop = asyncio.Event()
    expectations: list[tuple[tuple[int, int, int], set[str]]] = []
    present = {p.name for p in people}
    tasks = [
        asyncio.create_task(_send(p, canary, sending, stop, present, expectations)) for p in people
    ] + [asyncio.create_task(_receive(p)) for p in people]
    ticker = asyncio.create_task(_tick(lambda: update(stage)))
    try:
        update("media, epoch 0")
        for p in people:
            assert p.meeting is not None
            await p.meeting.send_chat(f"{canary.decode()} hello from {p.name}")
        await asyncio.sleep(phase)
        _record_codes(people)

        # The leaver stops sending, lets frames in flight arrive, and leaves.
        update("leaving")
        present.discard(leaver.name)
        await asyncio.sleep(0.3)
        assert leaver.meeting is not None
        await leaver.meeting.leave()
        leaver.left_at, leaver.state = time.monotonic(), "left, listening"
        assert host.meeting is not None
        await host.meeting.wait_for_epoch(1, timeout=30)
        for p in people[:-1]:
            assert p.meeting is not None
            await p.meeting.wait_for_epoch(1, timeout=30)
        update("media, epoch 1")
        for p in people[:-1]:
            assert p.meeting is not None
            await p.meeting.send_chat(f"{canary.decode()} after the rekey from {p.name}")
        await asyncio.sleep(phase)
        _record_codes(people)

        update("ending")
        sending.clear()
        await asyncio.sleep(0.5)  # frames in flight arrive before the end
        stop.set()
    finally:
        for task in tasks:
            task.cancel()
        ticker.cancel()
        await asyncio.gather(*tasks, ticker, return_exceptions=True)

    checks["all_frames_decrypted"] = all(
        frame in p.received
        for frame, expected in expectations
        for p in people
        if p.name in expected
    )
    stayers = people[:-1]
    assert leaver.meeting is not None
    checks["leaver_locked_out"] = (
        leaver.decrypted_after_leave == 0
        and not any(m.epoch >= 1 for m in leaver.meeting.chat)
        and leaver.meeting.ciphertexts_held() == 0
        and await _refused_the_new_key(leaver.device, leaver.meeting.meeting_id, epoch=1)
    )
    checks["security_codes_match"] = all(
        len({p.codes.get(epoch) for p in (people if epoch == 0 else stayers)}) == 1
        for epoch in (0, 1)
    )
    chat_expected = {0: len(people), 1: len(stayers)}
    checks["chat_delivered"] = all(
        sum(1 for m in p.meeting.chat if m.epoch == epoch) == count
        for p in stayers
        if p.meeting is not None
        for epoch, count in chat_expected.items()
    )
    rekeys = host.meeting.rekeys
    await host.meeting.end()
    for p in stayers[1:]:
        assert p.meeting is not None
        await asyncio.wait_for(p.meeting.ended.wait(), 10)
    checks["keys_dropped_at_end"] = all(
        p.meeting is not None and p.meeting.ciphertexts_held() == 0 for p in people
    )
    try:
        await host.device.groups.get(host.meeting.meeting_id)
        checks["group_deleted"] = False
    except ServiceError as error:
        checks["group_deleted"] = error.status == 404
    before = [p.device.signer.verifying_key for p in people]
    for p in people:
        assert p.meeting is not None
        await p.meeting.close()  # and rotate the device's keys, after the meeting
        p.state = "done" if p.left_at is None else "left"
    checks["device_keys_rotated"] = all(
        old != p.device.signer.verifying_key for old, p in zip(before, people, strict=True)
    )
    update("done")
    return checks, rekeys


async def _refused_the_new_key(device: Device, meeting_id: str, *, epoch: int) -> bool:
    """Checked from outside the SDK's meeting: the leaver's device reads the board like
    anyone and asks the key service to transform the new epoch's key post for it."""
    board = device.board(meeting_id)
    await board.connect(since=0)
    try:
        while True:
            post = await board.next(timeout=10)
            if post.kind == KeyPost.KIND and KeyPost.parse(post.body).epoch == epoch:
                break
        try:
            await device.session.transform(
                KeyPost.parse(post.body).encrypted_key, group_id=meeting_id
            )
        except NotMember:
            return True
        return False
    finally:
        await board.close()


def _record_codes(people: list[Participant]) -> None:
    for p in people:
        if p.meeting is not None and p.meeting.epoch is not None and not p.meeting.left:
            p.codes[p.meeting.epoch] = p.meeting.security_code


async def _send(
    person: Participant,
    canary: bytes,
    sending: asyncio.Event,
    stop: asyncio.Event,
    present: set[str],
    expectations: list[tuple[tuple[int, int, int], set[str]]],
) -> None:
    meeting = person.meeting
    assert meeting is not None
    counters = {0: 0, 1: 0}
    start = time.monotonic()
    next_at = {0: start, 1: start}
    periods = {0: 1 / AUDIO_FPS, 1: 1 / VIDEO_FPS}
    sizes = {0: AUDIO_BYTES, 1: VIDEO_BYTES}
    while not stop.is_set():
        stream = min(next_at, key=lambda s: next_at[s])
        await asyncio.sleep(max(0.0, next_at[stream] - time.monotonic()))
        next_at[stream] += periods[stream]
        if not sending.is_set() or person.name not in present:
            continue
        frame_id = (meeting.sender, stream, counters[stream])
        counters[stream] += 1
        payload = canary + _FRAME_ID.pack(*frame_id)
        payload += bytes(sizes[stream] - len(payload))
        expectations.append((frame_id, set(present) - {person.name}))
        kind = MediaKind.AUDIO if stream == 0 else MediaKind.VIDEO
        await meeting.send_frame(kind, payload, stream=stream)
        person.sent += 1


async def _receive(person: Participant) -> None:
    meeting = person.meeting
    assert meeting is not None
    skip = len(b"VEIL-PLAINTEXT-") + 16
    while True:
        frame = await meeting.receive_frame()
        if frame is None:
            continue
        if person.left_at is not None:
            person.decrypted_after_leave += 1
        person.received.add(_FRAME_ID.unpack_from(frame.payload, skip))


async def _tick(update: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(0.25)
        update()


def _no_plaintext(canary: bytes, forwarded: list[bytes], folder: Path) -> bool:
    """The canary is in every plaintext frame and chat message: it must appear in
    nothing the conference service fanned out, and in none of the services' files."""
    if any(canary in message for message in forwarded):
        return False
    for path in folder.rglob("*"):
        if path.is_file():
            with contextlib.suppress(OSError):
                if canary in path.read_bytes():
                    return False
    return bool(forwarded)
