"""``veil bench churn``: a meeting of N real SDK clients in which, every P seconds for
D seconds, one participant leaves and a new one joins, while everyone sends and
receives media through the real relay (issue 15's churn benchmark).

Set-up, before any clock starts: the services run as ``veil serve`` (one process on
loopback, SQLite in a temporary folder, ``--transform-workers`` transform processes);
every participant that will ever take part gets its own user and device at the key
service (``Device.initialize``, split-trust escrow); the first starts the meeting
(``Meeting.start``, the other initial participants invited), the N - 1 others join.
Participants joining later are not invited: the manager's ``admit`` callback approves
them when they announce, as an application approves a knock. Participants are spread
round-robin over ``--workers`` processes (asyncio, one event loop each), because 50
clients with PRE crypto and media are more than one Python process keeps up with.

Timers: ``MeetingTimers(debounce=--debounce, join_retries=(0.5, 1, 2, 2))``, the
library's defaults otherwise (heartbeat 3 s, fail-over 10 s, posts retried 120 s,
previous epoch kept 5 s). Media: every participant sends audio-sized frames (160
bytes) at ``--fps`` frames a second (default 10: 50 senders make 500 frames a second
into the relay and 24,500 deliveries a second out of it, which two shared cores
carry beside the PRE work) and decrypts everything it receives. A frame's payload
names its sender, a counter and the wall time it was sent.

The clock: media starts at T0; the churn runs from T0 + ``LEAD`` for D seconds, a tick
every P seconds (at 0, P, 2P, ... < D): at each tick the longest-present *churner*
leaves and a new participant joins, at once. The first ``ceil(N / 2)`` participants
(the starter, who manages, included) are *stayers* and never leave; the others, and
every joiner, are churners. The run ends ``--tail`` seconds after the churn, so the
last leave's rekey and the last frames land. Measured:

- **joins**: churn joins attempted, and succeeded (``Meeting.join`` returned; a
  ``NotAdmitted`` or any other error is a failure, named); also their time.
- **rekey after a leave**: for each leave, from the moment ``leave()`` is called
  until every participant present at that moment (joined, and not leaving by then)
  has installed (``EpochChanged``) an epoch the leaver cannot get: the first epoch,
  above every epoch the leaver installed, whose key post's member list leaves the
  leaver's user out and which nobody installed before the leave began, or a later
  one. (A key post lists the group's members when the manager read the group for it;
  the leaver was in the group from its admission until its removal, so such a post
  was made after the removal.) A participant that leaves itself before getting there
  is not waited for; one that never gets there makes the leave *unfinished* (its
  time unknown, counted as a miss). Reported: median and max, and the max of each
  leg: ``leave()`` until it returned (the leave post acknowledged), the leave until
  the new key was first installed anywhere (the manager's removal, the debounce,
  encrypt, prove and post), and from there until the last participant installed it
  (every device's transform at the key service and its decryption).
- **frames decrypted by leavers**: from the moment a leaver calls ``leave()`` (which
  drops its keys at once, so this is stricter than from its return) the leaver keeps
  draining its relay connection (``receive_frame`` in a loop) for ``LEAVER_WATCH``
  seconds (or to the end), and every frame its client still decrypts
  (``media.counters.decrypted``) is counted. Target: 0.
- **frames lost between stayers**: frames that stayers sent during the churn window
  (sent between T0 + ``LEAD`` and T0 + ``LEAD`` + D, by the wall time in the payload;
  the lead and the tail keep frames in flight at the start and end out of it) against
  the frames each other stayer decrypted of them. ``lost`` = expected - decrypted; a
  frame its sender could not send (the relay connection down) counts as lost.
  Also the delivery latency (a sample of frames).

Every time is the machine's wall clock (``time.time()``), which all processes share.
The machine's load average and each process's CPU are in the result, since a shared
two-core machine slows everything alike.
"""

import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import secrets
import statistics
import struct
import subprocess
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from veil.bench.meeting import dev_token, start_services, stop_services
from veil.client import (
    ConnectionChanged,
    Device,
    EpochChanged,
    Meeting,
    MeetingEvent,
    MeetingTimers,
    MemoryDeviceStore,
    ParticipantLeft,
)
from veil.protocol import MediaKind

LEAD = 3.0
"""Seconds of media before the first tick (every sender running by then)."""
LEAVER_WATCH = 15.0
"""Seconds a leaver keeps draining its relay connection after it left."""
JOIN_RETRIES = (0.5, 1.0, 2.0, 2.0)
FRAME_BYTES = 160
_FRAME = struct.Struct(">IId")  # sender index, counter, wall time sent
LATENCY_SAMPLE = 16
"""One frame in this many has its delivery latency kept."""
SETUP_CONCURRENCY = 8
REPLY_SECONDS = 600.0


@dataclass(frozen=True)
class ChurnConfig:
    participants: int = 50
    duration: float = 90.0
    period: float = 3.0
    debounce: float = 1.0
    fps: float = 10.0
    workers: int = 2
    tail: float = 8.0
    transform_workers: int = 1

    def __post_init__(self) -> None:
        if self.participants < 2:
            raise ValueError("a churning meeting needs at least 2 participants")
        if min(self.duration, self.period, self.fps, self.workers) <= 0:
            raise ValueError("duration, period, fps and workers must be positive")

    @property
    def stayers(self) -> int:
        return math.ceil(self.participants / 2)

    @property
    def ticks(self) -> int:
        return math.ceil(self.duration / self.period)

    def timers(self) -> MeetingTimers:
        return MeetingTimers(debounce=self.debounce, join_retries=JOIN_RETRIES)


@dataclass(frozen=True)
class Role:
    """One participant's part: when (seconds after T0) it joins and leaves, if it does."""

    index: int
    join_at: float | None = None
    """None: in the meeting from the start (the starter, or an initial joiner)."""
    leave_at: float | None = None

    @property
    def stayer(self) -> bool:
        return self.join_at is None and self.leave_at is None


def plan(config: ChurnConfig) -> list[Role]:
    """Everyone who takes part. At each tick the longest-present churner leaves (the
    initial churners first, then the joiners in the order they joined) and a new
    participant joins."""
    leaves: dict[int, float] = {}
    joins: dict[int, float] = {}
    churners = deque(range(config.stayers, config.participants))
    for tick in range(config.ticks):
        at = LEAD + tick * config.period
        joiner = config.participants + tick
        if churners:
            leaves[churners.popleft()] = at
        joins[joiner] = at
        churners.append(joiner)
    total = config.participants + config.ticks
    return [Role(i, joins.get(i), leaves.get(i)) for i in range(total)]


def describe(error: BaseException) -> str:
    """``Type: message (where it was raised)``, short."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}"[:240] + where


def user_name(run_id: str, index: int) -> str:
    return f"churn-{run_id}-{index}"


def index_of(user_id: str) -> int:
    return int(user_id.rsplit("-", 1)[1])


# --- one participant, in a worker ---------------------------------------------------------


@dataclass
class _Person:
    role: Role
    device: Device
    stayer_indexes: frozenset[int]
    window: tuple[float, float]
    meeting: Meeting | None = None
    join_started: float | None = None
    joined_at: float | None = None
    join_error: str | None = None
    leave_called: float | None = None
    left_at: float | None = None
    leave_error: str | None = None
    decrypted_at_leave: int = 0
    installs: list[tuple[float, int]] = field(default_factory=list)
    managers: dict[int, str] = field(default_factory=dict)
    """The device that posted each epoch's key, as this client installed it."""
    seen_leaving: dict[int, float] = field(default_factory=dict)
    """When this client's board delivered each leave (kept for the starter, who manages)."""
    sent: int = 0
    sent_in_window: int = 0
    received: dict[int, set[int]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    reconnects: int = 0
    media_error: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False

    def in_window(self, sent: float) -> bool:
        return self.window[0] <= sent < self.window[1]

    def on_event(self, event: MeetingEvent, epochs: dict[int, list[int]]) -> None:
        if isinstance(event, EpochChanged):
            self.installs.append((time.time(), event.epoch))
            self.managers.setdefault(event.epoch, event.manager)
            epochs.setdefault(event.epoch, sorted(index_of(u) for u in event.members))
        elif isinstance(event, ParticipantLeft) and self.role.index == 0:
            self.seen_leaving.setdefault(index_of(event.user_id), time.time())
        elif isinstance(event, ConnectionChanged) and event.state == "reconnecting":
            self.reconnects += 1

    async def send_media(self, fps: float) -> None:
        assert self.meeting is not None
        period = 1.0 / fps
        next_at = time.time() + random.uniform(0, period)  # noqa: S311 (spreading, not secrets)
        counter = 0
        while True:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            now = time.time()
            payload = _FRAME.pack(self.role.index, counter, now).ljust(FRAME_BYTES, b"\0")
            await self.meeting.send_frame(MediaKind.AUDIO, payload)
            self.sent += 1
            self.sent_in_window += self.in_window(now)
            counter += 1
            next_at += period
            if next_at < now:  # fell behind: carry on from now, never in a burst
                next_at = now + period

    async def receive_media(self) -> None:
        assert self.meeting is not None
        keep = self.role.stayer
        while True:
            frame = await self.meeting.receive_frame()
            if frame is None:
                continue
            sender, counter, sent = _FRAME.unpack_from(frame.payload)
            if keep and sender in self.stayer_indexes and self.in_window(sent):
                self.received.setdefault(sender, set()).add(counter)
            if counter % LATENCY_SAMPLE == 0:
                self.latencies.append(time.time() - sent)

    def report(self) -> dict[str, Any]:
        meeting = self.meeting
        decrypted = meeting.media.counters.decrypted if meeting else 0
        return {
            "index": self.role.index,
            "stayer": self.role.stayer,
            "join_started": self.join_started,
            "joined_at": self.joined_at,
            "join_error": self.join_error,
            "leave_called": self.leave_called,
            "left_at": self.left_at,
            "leave_error": self.leave_error,
            "decrypted_after_leave": (
                decrypted - self.decrypted_at_leave if self.leave_called is not None else 0
            ),
            "installs": self.installs,
            "seen_leaving": self.seen_leaving,
            "managers": self.managers,
            "sent": self.sent,
            "sent_in_window": self.sent_in_window,
            "received": {s: len(c) for s, c in self.received.items()},
            "latencies": self.latencies,
            "reconnects": self.reconnects,
            "media_error": self.media_error,
            "failures": [describe(e) for e in meeting.errors] if meeting else [],
            "dropped": meeting.media.counters.dropped if meeting else 0,
        }


# --- a worker process: some of the participants ---------------------------------------------


def worker_main(conn: Connection, config: ChurnConfig, run_id: str, roles: list[Role]) -> None:
    """A worker process: it is told the services' endpoints once they are up."""
    try:
        urls = conn.recv()
        asyncio.run(_Worker(conn, urls, config, run_id, roles).main())
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
        raise


class _Worker:
    def __init__(
        self,
        conn: Connection,
        urls: dict[str, str],
        config: ChurnConfig,
        run_id: str,
        roles: list[Role],
    ) -> None:
        self.conn, self.urls, self.config, self.run_id = conn, urls, config, run_id
        self.roles = roles
        everyone = plan(config)
        self.users = {user_name(run_id, r.index) for r in everyone}
        self.stayers = frozenset(r.index for r in everyone if r.stayer)
        self.people: dict[int, _Person] = {}
        self.epochs: dict[int, list[int]] = {}
        self.invitation = ""
        self.t0 = self.end = 0.0

    async def _command(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    async def main(self) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            self.http = http
            await self._gathered(self._device, self.roles)
            self.conn.send(("ready",))
            while True:
                command, *args = await self._command()
                if command == "start":
                    self.conn.send(("started", await self._start(*args)))
                elif command == "join":
                    self.invitation = args[0]
                    initial = [
                        p for p in self.people.values()
                        if p.role.index != 0 and p.role.join_at is None
                    ]  # fmt: skip
                    await self._gathered(self._join, initial)
                    self.conn.send(("joined",))
                elif command == "go":
                    self.conn.send(("result", await self._run(*args)))
                    return

    async def _gathered(self, work: Callable[[Any], Any], items: list[Any]) -> None:
        semaphore = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(item: Any) -> None:
            async with semaphore:
                await work(item)

        await asyncio.gather(*(one(item) for item in items))

    async def _device(self, role: Role) -> None:
        name = user_name(self.run_id, role.index)

        async def tokens(audience: str) -> str:
            return await dev_token(self.http, self.urls["idp_url"], name, audience)

        device = await Device.initialize(
            keyserver_url=self.urls["keyserver_url"], conference_url=self.urls["conference_url"],
            tokens=tokens, store=MemoryDeviceStore(secrets.token_bytes(32)),
        )  # fmt: skip
        # The window is set at "go"; until then nothing is sent.
        self.people[role.index] = _Person(role, device, self.stayers, (0.0, 0.0))

    async def _admit(self, user_id: str) -> bool:
        return user_id in self.users

    def _follow(self, person: _Person, meeting: Meeting) -> None:
        person.meeting = meeting
        person.joined_at = time.time()
        assert meeting.epoch is not None
        person.installs.append((person.joined_at, meeting.epoch))
        self.epochs.setdefault(meeting.epoch, sorted(index_of(u) for u in meeting.members))
        meeting.events.on(lambda event: person.on_event(event, self.epochs))

    async def _start(self, invitees: list[str]) -> str:
        person = self.people[0]
        meeting = await Meeting.start(
            person.device, f"churn-{self.run_id}", invitees=invitees, admit=self._admit,
            timers=self.config.timers(),
        )  # fmt: skip
        self._follow(person, meeting)
        return str(meeting.invitation)

    async def _join(self, person: _Person) -> None:
        person.join_started = time.time()
        try:
            meeting = await Meeting.join(
                person.device, self.invitation, admit=self._admit, timers=self.config.timers()
            )
        except Exception as exc:
            person.join_error = describe(exc)
            return
        self._follow(person, meeting)

    # --- the clock ---------------------------------------------------------------------

    async def _run(self, t0: float) -> dict[str, Any]:
        self.t0 = t0
        window = (t0 + LEAD, t0 + LEAD + self.config.duration)
        self.end = t0 + LEAD + self.config.duration + self.config.tail
        for person in self.people.values():
            person.window = window
        cpu = time.process_time()
        await asyncio.gather(*(self._life(p) for p in self.people.values()))
        cpu = time.process_time() - cpu
        await asyncio.gather(*(self._close(p) for p in self.people.values()))
        return {
            "people": [p.report() for p in self.people.values()],
            "epochs": self.epochs,
            "cpu_seconds": cpu,
        }

    async def _until(self, offset_or_time: float, *, absolute: bool = False) -> None:
        at = offset_or_time if absolute else self.t0 + offset_or_time
        await asyncio.sleep(max(0.0, at - time.time()))

    async def _life(self, person: _Person) -> None:
        role = person.role
        if role.join_at is not None:
            await self._until(role.join_at)
            await self._join(person)
        if person.meeting is None:
            return
        await self._until(0.0)
        self._start_media(person)
        if role.leave_at is None:
            await self._until(self.end, absolute=True)
            return
        await self._until(role.leave_at)
        await self._leave(person)
        await self._until(min(self.end, time.time() + LEAVER_WATCH), absolute=True)
        await self._close(person)

    def _start_media(self, person: _Person) -> None:
        async def guarded(work: Any) -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # MeetingEnded after a removal, a refused relay...
                person.media_error = person.media_error or describe(exc)

        person.tasks = [
            asyncio.create_task(guarded(person.send_media(self.config.fps))),
            asyncio.create_task(guarded(person.receive_media())),
        ]

    async def _leave(self, person: _Person) -> None:
        assert person.meeting is not None
        sending = person.tasks[0]
        sending.cancel()  # a leaving client stops sending
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        person.leave_called = time.time()
        person.decrypted_at_leave = person.meeting.media.counters.decrypted
        try:
            await person.meeting.leave()
        except Exception as exc:
            person.leave_error = describe(exc)
        person.left_at = time.time()

    async def _close(self, person: _Person) -> None:
        if person.closed:
            return
        person.closed = True
        for task in person.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if person.meeting is not None:
            with contextlib.suppress(Exception):
                await person.meeting.close(rotate_device_keys=False)
        await person.device.close()


# --- the analysis (pure functions of what the workers saw) -------------------------------------


def _first_installs(people: list[dict[str, Any]]) -> dict[int, float]:
    first: dict[int, float] = {}
    for person in people:
        for when, epoch in person["installs"]:
            first[epoch] = min(when, first.get(epoch, math.inf))
    return first


def _present(
    people: list[dict[str, Any]], leaver: dict[str, Any], at: float
) -> list[dict[str, Any]]:
    return [
        p
        for p in people
        if p is not leaver
        and p["joined_at"] is not None
        and p["joined_at"] <= at
        and (p["leave_called"] is None or p["leave_called"] > at)
    ]


def _locked_out_epoch(
    leaver: dict[str, Any], epochs: dict[int, list[int]], first: dict[int, float]
) -> int | None:
    """The first epoch the leaver cannot get (see the module docstring)."""
    t0 = leaver["leave_called"]
    held = max((e for when, e in leaver["installs"] if when <= t0), default=-1)
    candidates = [
        e
        for e, members in epochs.items()
        if e > held and leaver["index"] not in members and first.get(e, -math.inf) > t0
    ]
    return min(candidates, default=None)


def leave_latency(
    leaver: dict[str, Any],
    people: list[dict[str, Any]],
    epochs: dict[int, list[int]],
    first: dict[int, float],
    start: float,
) -> dict[str, Any]:
    """One leave: when every participant present at its start held a key the leaver
    cannot get, and the legs of that time."""
    t0 = leaver["leave_called"]
    starter = next(p for p in people if p["index"] == 0)
    seen = starter["seen_leaving"].get(leaver["index"])
    target = _locked_out_epoch(leaver, epochs, first)
    waits: list[float] = []
    missing: list[int] = []
    for person in _present(people, leaver, t0):
        done = min(
            (when for when, e in person["installs"] if target is not None and e >= target),
            default=None,
        )
        gone = person["leave_called"]
        if gone is not None and (done is None or gone < done):
            continue  # left before it got there: no longer a remaining participant
        if done is None:
            missing.append(person["index"])
        else:
            waits.append(done - t0)
    row: dict[str, Any] = {
        "leaver": leaver["index"],
        "at_s": round(t0 - start, 3),
        "epoch": target,
        "waited_for": len(waits) + len(missing),
        "unfinished": missing,
        "leave_returned_s": round(leaver["left_at"] - t0, 3),
        "seen_by_starter_s": None if seen is None else round(seen - t0, 3),
    }
    if target is not None and not missing and waits:
        row["to_all_s"] = round(max(waits), 3)
        row["until_key_s"] = round(first[target] - t0, 3)
        row["key_to_all_s"] = round(max(waits) - (first[target] - t0), 3)
    return row


def _managers(people: list[dict[str, Any]]) -> int:
    """How many devices posted the keys installed (1 unless someone took over)."""
    return len({device for p in people for device in p["managers"].values()})


def _stats(values: list[float], digits: int = 3) -> dict[str, float | None]:
    if not values:
        return {"median": None, "max": None}
    return {"median": round(statistics.median(values), digits), "max": round(max(values), digits)}


def _frames(people: list[dict[str, Any]]) -> dict[str, Any]:
    stayers = [p for p in people if p["stayer"] and p["joined_at"] is not None]
    indexes = {p["index"] for p in stayers}
    sent = {p["index"]: p["sent_in_window"] for p in stayers}
    expected = sum(sent.values()) * (len(stayers) - 1)
    delivered = sum(
        count
        for p in stayers
        for sender, count in p["received"].items()
        if int(sender) in indexes and int(sender) != p["index"]
    )
    latencies = sorted(x for p in people for x in p["latencies"])
    return {
        "stayers": len(stayers),
        "sent": sum(sent.values()),
        "expected_deliveries": expected,
        "decrypted": delivered,
        "lost": expected - delivered,
        "lost_fraction": round((expected - delivered) / expected, 6) if expected else None,
        "dropped_by_stayers": sum(p["dropped"] for p in stayers),
        "latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "latency_ms_p99": round(1000 * latencies[int(len(latencies) * 0.99)], 1)
        if latencies
        else None,
    }


def analyze(
    config: ChurnConfig, people: list[dict[str, Any]], epochs: dict[int, list[int]], t0: float
) -> dict[str, Any]:
    roles = {r.index: r for r in plan(config)}
    joiners = [p for p in people if roles[p["index"]].join_at is not None]
    initial = [p for p in people if roles[p["index"]].join_at is None and p["index"] != 0]
    first = _first_installs(people)
    leavers = sorted(
        (p for p in people if p["leave_called"] is not None), key=lambda p: p["leave_called"]
    )
    leaves = [leave_latency(p, people, epochs, first, t0) for p in leavers]
    finished = [row for row in leaves if "to_all_s" in row]
    failures: dict[str, dict[str, Any]] = {}
    for person in people:
        for failure in person["failures"]:
            seen = failures.setdefault(failure.split(":", 1)[0], {"count": 0, "examples": []})
            seen["count"] += 1
            if len(seen["examples"]) < 3:
                seen["examples"].append(f"participant {person['index']}: {failure}")
    return {
        "initial_joins": {
            "attempted": len(initial),
            "succeeded": sum(p["joined_at"] is not None for p in initial),
        },
        "joins": {
            "attempted": len(joiners),
            "succeeded": sum(p["joined_at"] is not None for p in joiners),
            "errors": [p["join_error"] for p in joiners if p["join_error"]],
            "seconds": _stats(
                [p["joined_at"] - p["join_started"] for p in joiners if p["joined_at"]]
            ),
            "each": [
                {
                    "joiner": p["index"],
                    "at_s": round(p["join_started"] - t0, 3),
                    "seconds": round(p["joined_at"] - p["join_started"], 3)
                    if p["joined_at"]
                    else None,
                }
                for p in sorted(joiners, key=lambda p: p["index"])
                if p["join_started"] is not None
            ],
        },
        "leaves": {
            "count": len(leaves),
            "scheduled": sum(r.leave_at is not None for r in roles.values()),
            "measured": len(finished),
            "unfinished": len(leaves) - len(finished),
            "errors": [p["leave_error"] for p in leavers if p["leave_error"]],
            "to_all_s": _stats([row["to_all_s"] for row in finished]),
            "leave_returned_s": _stats([row["leave_returned_s"] for row in leaves]),
            "seen_by_starter_s": _stats(
                [row["seen_by_starter_s"] for row in leaves if row["seen_by_starter_s"] is not None]
            ),
            "until_key_s": _stats([row["until_key_s"] for row in finished]),
            "key_to_all_s": _stats([row["key_to_all_s"] for row in finished]),
            "each": leaves,
        },
        "leavers_decrypted_after_leave": sum(p["decrypted_after_leave"] for p in leavers),
        "frames": _frames(people),
        "media_errors": [p["media_error"] for p in people if p["media_error"]],
        "reconnects": sum(p["reconnects"] for p in people),
        "meeting_failures": failures,
        "epochs": len(epochs),
        "managers": _managers(people),
    }


def targets(result: dict[str, Any]) -> dict[str, bool]:
    joins, leaves = result["joins"], result["leaves"]
    worst = leaves["to_all_s"]["max"]
    return {
        "every_join_succeeded": joins["succeeded"] == joins["attempted"],
        "rekey_max_within_5s": leaves["unfinished"] == 0 and (worst is None or worst <= 5.0),
        "no_frame_decrypted_by_a_leaver": result["leavers_decrypted_after_leave"] == 0,
    }


# --- the orchestration (this process) ----------------------------------------------------------


class _Workers:
    """The worker processes and their pipes; a failure or silence of one is an error."""

    def __init__(self, config: ChurnConfig, run_id: str) -> None:
        context = multiprocessing.get_context("spawn")
        everyone = plan(config)
        self.conns: list[Connection] = []
        self.processes: list[Any] = []
        for w in range(config.workers):
            parent, child = context.Pipe()
            mine = [r for r in everyone if r.index % config.workers == w]
            process = context.Process(
                target=worker_main, args=(child, config, run_id, mine), daemon=True
            )
            process.start()
            self.conns.append(parent)
            self.processes.append(process)

    def receive(self, worker: int, expected: str) -> Any:
        conn = self.conns[worker]
        if not conn.poll(REPLY_SECONDS):
            raise RuntimeError(f"worker {worker} said nothing for {REPLY_SECONDS:.0f} s")
        kind, *rest = conn.recv()
        if kind == "failed":
            raise RuntimeError(f"worker {worker} failed:\n{rest[0]}")
        if kind != expected:
            raise RuntimeError(f"worker {worker} said {kind!r}, not {expected!r}")
        return rest[0] if rest else None

    def all(self, command: tuple[Any, ...], expected: str) -> list[Any]:
        for conn in self.conns:
            conn.send(command)
        return [self.receive(w, expected) for w in range(len(self.conns))]

    def stop(self) -> None:
        """Wait for the workers to finish (they do after sending their results)."""
        for process in self.processes:
            process.join(30)
        self.kill()

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
                process.join(5)


def _process_cpu(pids: set[int]) -> float:
    """User + system CPU seconds of these processes and their children (``/proc``)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) in pids or int(fields[1]) in pids:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: all but idle, iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class _CpuSampler:
    """Once a second, in a thread: the machine's busy CPU and this benchmark's (its
    processes and their children). The difference is what other work on the machine
    took meanwhile: the benchmark's numbers only mean something beside it."""

    def __init__(self, pids: set[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, float, float]] = []  # (time, machine, ours)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                self.samples.append((time.time(), _machine_cpu(), _process_cpu(self.pids)))
            if self._stop.wait(1.0):
                return

    def __enter__(self) -> "_CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def cpu_between(
    samples: list[tuple[float, float, float]], start: float, end: float
) -> dict[str, float] | None:
    """Cores busy between two times, on average: the machine's, the benchmark's and
    the rest's (from the samples that bracket the interval)."""
    inside = [s for s in samples if start - 1.0 <= s[0] <= end + 1.0]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t1, machine1, ours1), (t2, machine2, ours2) = inside[0], inside[-1]
    machine, ours = (machine2 - machine1) / (t2 - t1), (ours2 - ours1) / (t2 - t1)
    return {
        "machine_cores": round(machine, 2),
        "benchmark_cores": round(ours, 2),
        "other_cores": round(max(0.0, machine - ours), 2),
    }


def _drive(workers: _Workers, config: ChurnConfig, run_id: str, pids: set[int]) -> dict[str, Any]:
    for w in range(config.workers):
        workers.receive(w, "ready")
    initial = [user_name(run_id, i) for i in range(1, config.participants)]
    workers.conns[0].send(("start", initial))
    invitation = workers.receive(0, "started")
    workers.all(("join", invitation), "joined")
    t0 = time.time() + 1.0
    with _CpuSampler(pids) as sampler:
        results = workers.all(("go", t0), "result")
    people = [p for r in results for p in r["people"]]
    epochs: dict[int, list[int]] = {}
    for r in results:
        for epoch, members in r["epochs"].items():
            epochs.setdefault(int(epoch), members)
    measured = analyze(config, people, epochs, t0)
    for leave in measured["leaves"]["each"]:
        start = t0 + leave["at_s"]
        leave["cpu"] = cpu_between(sampler.samples, start, start + leave.get("to_all_s", 5.0))
    end = t0 + LEAD + config.duration + config.tail
    return {
        **measured,
        "cpu": cpu_between(sampler.samples, t0, end),
        "cpu_timeline": [
            {"from_s": round(a - t0), **(cpu_between(sampler.samples, a, a + 5.0) or {})}
            for a in (t0 + 5.0 * i for i in range(math.ceil((end - t0) / 5.0)))
        ],
        "worker_cpu_seconds": [round(r["cpu_seconds"], 1) for r in results],
    }


def run(config: ChurnConfig) -> dict[str, Any]:
    """Run the churning meeting and measure it (see the module docstring)."""
    run_id = secrets.token_hex(3)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="veil-bench-churn-") as folder:
        workers = _Workers(config, run_id)  # they start while the services do
        services: subprocess.Popen[str] | None = None
        try:
            services, urls = start_services(
                Path(folder), transform_workers=config.transform_workers
            )
            for conn in workers.conns:
                conn.send(urls)
            pids = {services.pid, os.getpid(), *(p.pid for p in workers.processes)}
            measured = _drive(workers, config, run_id, pids)
        except BaseException:
            workers.kill()
            raise
        finally:
            workers.stop()
            if services is not None:
                stop_services(services)
    result = {
        "participants": config.participants,
        "duration_s": config.duration,
        "period_s": config.period,
        "debounce_s": config.debounce,
        "frames_per_second": config.fps,
        "workers": config.workers,
        "transform_workers": config.transform_workers,
        "stayers": config.stayers,
        "leaver_watch_s": LEAVER_WATCH,
        "window_s": [LEAD, LEAD + config.duration],
        "load_average_before": [round(x, 2) for x in load],
        "run_seconds": LEAD + config.duration + config.tail,
        **measured,
    }
    result["targets"] = targets(result)
    return result
