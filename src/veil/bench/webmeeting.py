"""Meetings with browser participants: headless Chromium pages running the browser
SDK's ``Meeting`` (web/test/browser/meeting-page.ts) beside Python devices, over a
real ``veil serve`` on loopback; and issue 17's ``key_post_to_installed_ms``, the time
from a key post to the key being installed in a browser participant of a 3-person
meeting (``key_post_to_installed``, for ``veil bench web``).

The pages come from a file server of their own (``veil.bench.browser.served``), a
different origin from the services', which allow it by configuration
(``VEIL_CORS_ORIGINS``), as a deployment allows its web client's. Each browser
participant has its own browser context (its own storage); a page is driven with the
commands of web/tools/meeting-ops.ts, the Node driver's. A Python participant runs its
device and meeting on an event loop in a thread of its own (Playwright's sync API
owns the caller's thread), so it answers the board while a page call blocks.

Needs the SDK built in ``web/`` and Chromium with Playwright (``veil.bench.web``
checks both, and tests/web_sdk skip without them).
"""

import asyncio
import contextlib
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from veil.bench.browser import headless_chromium, module_page, served
from veil.bench.meeting import dev_token, start_services, stop_services
from veil.client import Device, MemoryDeviceStore
from veil.client.meeting import Meeting, MeetingTimers
from veil.protocol.board import KeyPost

T = TypeVar("T")

PAGE = "/meeting.html"
_SCRIPT = """
import { participant } from "/dist/test/browser/meeting-page.js";
window.makeParticipant = (services) => { window.participant = participant(services); };
"""
_CALL = "(request) => window.participant.answer(request)"
_CLOCK = "() => performance.timeOrigin + performance.now()"


class ParticipantRefused(Exception):
    """A page's SDK call failed: ``name`` is the SDK error's (``UntrustedInvitation``...)."""

    def __init__(self, op: str, name: str, message: str) -> None:
        super().__init__(f"{op}: {name}: {message}")
        self.name, self.message = name, message


class BrowserParticipant:
    """A meeting participant in a page of its own browser context."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []  # uncaught in the page
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.user_id = self.device_id = ""

    def call(self, op: str, **args: Any) -> Any:
        """The command's answer; ``ParticipantRefused`` naming the SDK's error."""
        answer = self.page.evaluate(_CALL, {"op": op, **args})
        if "error" in answer:
            raise ParticipantRefused(op, answer["error"]["name"], answer["error"]["message"])
        return answer["ok"]

    def clock_offset_ms(self, samples: int = 5) -> float:
        """The page's wall clock (``performance.timeOrigin + now()``, which stamps key
        installs) minus this process's (``time.time()``), from the call with the
        shortest round trip; a browser coarsens and anchors its clock its own way."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            before = time.time() * 1000
            page_ms = float(self.page.evaluate(_CLOCK))
            after = time.time() * 1000
            if best is None or after - before < best[0]:
                best = (after - before, page_ms - (before + after) / 2)
        assert best is not None
        return best[1]


class PythonParticipant:
    """A Python device on an event loop in its own thread; ``run`` awaits there."""

    def __init__(
        self, endpoints: dict[str, str], sub: str, enter: Callable[[], None] | None = None
    ) -> None:
        """``enter``, if given, runs first on the participant's thread (e.g. to join a
        network namespace, where the services are)."""
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            if enter is not None:
                enter()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self.meeting: Meeting | None = None
        self._http = httpx.AsyncClient()  # the dev IdP's tokens
        self.device = self.run(self._initialize(endpoints, sub))
        self.user_id = self.device.user_id

    async def _initialize(self, endpoints: dict[str, str], sub: str) -> Device:
        async def tokens(audience: str) -> str:
            return await dev_token(self._http, endpoints["idp_url"], sub, audience)

        return await Device.initialize(
            keyserver_url=endpoints["keyserver_url"],
            conference_url=endpoints["conference_url"],
            tokens=tokens,
            store=MemoryDeviceStore(secrets.token_bytes(32)),
        )

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def until(self, check: Callable[[], bool], seconds: float = 30.0) -> None:
        """Wait, on the participant's loop, until ``check()`` (read there) holds."""

        async def wait() -> None:
            async with asyncio.timeout(seconds):
                while not check():
                    await asyncio.sleep(0.02)

        self.run(wait(), seconds + 5)

    def close(self) -> None:
        try:
            if self.meeting is not None:
                self.run(self.meeting.close(rotate_device_keys=False))
            self.run(self.device.close())
            self.run(self._http.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@dataclass
class BrowserMeetings:
    """The services, the page server and a browser: make participants with these."""

    endpoints: dict[str, str]
    page_url: str
    browser: Any

    def browser_participant(self, sub: str) -> BrowserParticipant:
        """A device (split trust, through the dev IdP) in a new browser context's page."""
        page = self.browser.new_context().new_page()
        participant = BrowserParticipant(page)
        page.goto(self.page_url)
        page.wait_for_function("window.makeParticipant !== undefined", timeout=30_000)
        page.evaluate("(services) => window.makeParticipant(services)", self.endpoints)
        device = participant.call("init", sub=sub)
        participant.user_id, participant.device_id = device["user_id"], device["device_id"]
        return participant

    @contextlib.contextmanager
    def python_participant(
        self, sub: str, enter: Callable[[], None] | None = None
    ) -> Iterator[PythonParticipant]:
        participant = PythonParticipant(self.endpoints, sub, enter)
        try:
            yield participant
        finally:
            participant.close()


@contextlib.contextmanager
def browser_meetings(web: Path) -> Iterator[BrowserMeetings]:
    """The built SDK's files and the participant page on a loopback port; ``veil
    serve`` (in its own process) allowing that page's origin; headless Chromium."""
    with (
        served(web, {PAGE: module_page(_SCRIPT)}) as origin,
        tempfile.TemporaryDirectory(prefix="veil-web-meeting-") as folder,
    ):
        process, endpoints = start_services(Path(folder), cors_origins=[origin])
        try:
            with headless_chromium() as browser:
                yield BrowserMeetings(endpoints, origin + PAGE, browser)
        finally:
            stop_services(process)


# --- key post to installed key ------------------------------------------------------------


class _KeyPostTimes:
    """When the host's key posts leave for the board (``time.time()`` in ms, as the
    post is handed to its board connection): the board's ``post`` wrapped, since
    nothing else of the SDK says when a post went out."""

    def __init__(self, meeting: Meeting) -> None:
        self.sent: list[float] = []
        post: Callable[..., Awaitable[int]] = meeting.board.post

        async def timed(kind: str, body: bytes, **options: Any) -> int:
            if kind == KeyPost.KIND:
                self.sent.append(time.time() * 1000)
            return await post(kind, body, **options)

        meeting.board.post = timed  # type: ignore[method-assign]


def key_post_to_installed(web: Path, runs: int = 5, **options: Any) -> dict[str, Any]:
    """``measure_key_post_to_installed`` with services, pages and a browser of its own;
    ``web`` is the built SDK."""
    with browser_meetings(web) as meetings:
        return measure_key_post_to_installed(meetings, runs, **options)


def measure_key_post_to_installed(
    meetings: BrowserMeetings, runs: int = 5, *, warmup: int = 1, gap: float = 0.5
) -> dict[str, Any]:
    """In a 3-person meeting (a Python host, two browser participants), the time from
    each of ``runs`` rekeys' key post leaving the host to the key being installed in
    each browser page (its ``EpochChanged``). Returns ``key_post_to_installed_ms`` (the
    median over both pages and all rekeys), ``by_page_ms`` (each page's median) and
    ``samples_ms``. ``warmup`` rekeys go first, unmeasured, and each rekey waits
    ``gap`` seconds after the one before it (the key service prepares the next
    transforms while idle, as between a real meeting's rekeys, minutes apart).

    What it covers: the post's way through the conference service to the page's board
    WebSocket, the page checking the post (signature, certified device, the admin's
    proof with the group key), asking the key service for its transform, checking and
    decrypting the answer (level 2, with the origin check) and installing the key.
    The page's clock and this process's are compared before each rekey
    (``BrowserParticipant.clock_offset_ms``)."""
    tag = secrets.token_hex(4)
    pages = [meetings.browser_participant(f"bench-{n}-{tag}") for n in ("ann", "bob")]
    with meetings.python_participant(f"bench-host-{tag}") as host:
        # No rekey but the ones measured: no departures, and no periodic ones.
        timers = MeetingTimers(rekey_interval=3600)
        meeting = host.run(
            Meeting.start(host.device, invitees=[p.user_id for p in pages], timers=timers)
        )
        host.meeting = meeting
        for page in pages:
            page.call("join", invitation=str(meeting.invitation))
        posts = _KeyPostTimes(meeting)
        samples: list[list[float]] = [[] for _ in pages]
        for round_ in range(warmup + runs):
            time.sleep(gap)
            offsets = [page.clock_offset_ms() for page in pages]
            host.run(meeting.rekey())
            epoch = meeting.epoch
            assert epoch is not None
            for page, offset, kept in zip(pages, offsets, samples, strict=True):
                page.call("wait_epoch", epoch=epoch)
                installed = page.call("installed_at")[str(epoch)] - offset
                if round_ >= warmup:
                    kept.append(installed - posts.sent[-1])
        host.run(meeting.end())
        for page in pages:
            page.call("close")
            page.page.context.close()
    every = [sample for kept in samples for sample in kept]
    return {
        "key_post_to_installed_ms": round(statistics.median(every), 1),
        "by_page_ms": [round(statistics.median(kept), 1) for kept in samples],
        "samples_ms": [round(sample, 1) for sample in every],
        "participants": 3,
        "runs": runs,
    }
