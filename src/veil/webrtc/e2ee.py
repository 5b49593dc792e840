"""A Veil meeting whose audio and video go through Janus end-to-end encrypted: three
headless Chromium participants (ann, the host; bob; cat) and a Python participant
(dee, on the board only), for ``veil demo --browser`` and tests/webrtc/test_janus_e2ee.py.

Everything runs inside a network namespace of its own (``netns``): Janus's VideoRoom
(recording every publisher), ``veil serve`` on the namespace's loopback, the pages'
file server, and Chromium; dee's event loop thread joins the namespace too. Each page
(web/test/browser/e2ee-page.ts) runs the browser SDK's ``Meeting`` and
``follow(meetingKeySource(meeting))``: its senders are SFrame-encrypted under its own
key of the current epoch, its receivers bound to the sender number the publisher's
display name gives. Then:

1. steady state: every browser decodes every other browser's video and audio; frames
   decoded per second against the publisher's frames sent; no decrypt failure;
   security codes equal in the three pages and the Python device;
2. an intruder outside the meeting (eve) subscribes to the room with a key of its own
   for the current epoch and publishes under ann's sender number: it decodes nothing,
   and no member decodes its frames (each is dropped and counted: ``wrong_sender`` at
   ann, whose own number they claim; ``replayed`` at the others, since their counters
   lie behind ann's real ones, which are checked before the costlier authentication;
   ``tampered`` where a counter is fresh);
3. frames altered on their way, as a malicious SFU could: bob's frames, once sealed,
   are altered (on-the-way.ts: a tag bit flipped, an earlier frame resent, the KID
   rewritten to ann's sender number or to an epoch no one holds); ann and cat drop every
   altered frame, each counted by name (``tampered``, ``replayed``, ``wrong_sender``,
   ``unknown_epoch``), and go on decoding bob's honest frames;
4. cat leaves the meeting but, as a dishonest client would, keeps its keys and its
   Janus subscriptions; ann's rekey follows: Janus still forwards ann's and bob's media
   to cat, whose worker opens none of it, while ann and bob go on; the gap from the key
   post to the first frame of the new epoch opened in each page;
5. Janus's recordings of each member (read from its .mjr files) hold none of the
   frames the member's encoder produced (digests taken before encryption, in the
   sender's transform), no 32-byte piece of a sample of them, and look random beyond
   the clear bytes;
6. SFrame's per-frame cost in a worker against bare AES-GCM (web/tools/sframe-bench.ts:
   a 100-byte audio and a 1,200-byte video frame).
"""

import contextlib
import math
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from veil.bench.browser import chromium_missing, module_page, served
from veil.bench.meeting import start_services, stop_services
from veil.bench.webmeeting import BrowserMeetings, BrowserParticipant, PythonParticipant
from veil.client.meeting import Meeting

from . import janus as janus_sfu
from . import mjr, netns
from .browsers import chromium_in
from .netns import Unavailable

ROOM = 1234
NAMES = ("ann", "bob", "cat")
PAGE = "/e2ee.html"
SCRIPT = """
import { E2eePage } from "/dist/test/browser/e2ee-page.js";
window.makeParticipant = (services) => {
  window.e2ee = new E2eePage(services);
  window.participant = window.e2ee.ops;
};
"""
STEADY_SECONDS = 5.0
ALTER_SECONDS = 6.0
GRACE_SECONDS = 5.0  # VeilMedia's DEFAULT_GRACE: how long a frame waits for its epoch's key
# What each of on-the-way.ts's alterations must be counted as at the receivers.
ALTERED_AS = {
    "tamper": "tampered",
    "replay": "replayed",
    "kid": "wrong_sender",
    "epoch": "unknown_epoch",
}
WAIT_SECONDS = 60.0
CHUNK = 32  # bytes of a plaintext frame looked for in the recordings
SKIP = 20  # bytes at a recorded frame's start: VP8's clear bytes and the SFrame header

Log = Callable[[str], None]


def require() -> None:
    """``Unavailable``, saying what is missing, unless the demo can run here."""
    netns.require()
    janus_sfu.require()
    missing = chromium_missing()
    if missing is not None:
        raise Unavailable(missing)


def run(web: Path, out: Path | None = None, log: Log = lambda _: None) -> dict[str, Any]:
    """The demo, on ``web`` (the SDK built there); screenshots of each page's remote
    video in ``out`` if given. Returns ``{"ok", "checks", "measurements", ...}``."""
    require()
    with (
        tempfile.TemporaryDirectory(prefix="veil-e2ee-") as tmp,
        netns.namespace() as ns,
        janus_sfu.janus(ns, Path(tmp), rooms=(ROOM,), record=True) as sfu,
        served(web, {PAGE: module_page(SCRIPT)}, netns.listener(ns)) as origin,
        _services(ns, Path(tmp) / "veil", origin) as endpoints,
        chromium_in(ns, Path(tmp)) as browser,
    ):
        log(f"namespace {ns.name}: Janus at {sfu.url}, veil serve at {endpoints['conference_url']}")
        meetings = BrowserMeetings(endpoints, origin + PAGE, browser)
        try:
            return _Demo(ns, sfu, meetings, out, log).run()
        except _Stop as stop:
            return stop.result


@contextlib.contextmanager
def _services(ns: netns.Namespace, folder: Path, origin: str) -> Iterator[dict[str, str]]:
    """``veil serve`` on the namespace's loopback, allowing the pages' origin."""
    folder.mkdir(parents=True, exist_ok=True)
    process, endpoints = start_services(folder, cors_origins=[origin], prefix=ns.exec())
    try:
        yield endpoints
    finally:
        stop_services(process)


class _Demo:
    def __init__(
        self,
        ns: netns.Namespace,
        sfu: janus_sfu.Janus,
        meetings: BrowserMeetings,
        out: Path | None,
        log: Log,
    ) -> None:
        self.ns, self.sfu, self.meetings, self.out, self.log = ns, sfu, meetings, out, log
        self.checks: dict[str, bool] = {}
        self.measurements: dict[str, Any] = {}
        self.details: dict[str, Any] = {}

    def check(self, name: str, passed: bool, detail: Any = None) -> None:
        self.checks[name] = bool(passed)
        if detail is not None:
            self.details[name] = detail
        # Details are in the result (--json); a failure shows them here too.
        said = f": {str(detail)[:600]}" if detail is not None and not passed else ""
        self.log(f"{'pass' if passed else 'FAIL'}  {name}{said}")

    def run(self) -> dict[str, Any]:
        tag = secrets.token_hex(3)
        pages = {name: self.meetings.browser_participant(f"{name}-{tag}") for name in NAMES}
        enter = lambda: netns.enter(self.ns)  # noqa: E731 (dee's thread joins the namespace)
        with self.meetings.python_participant(f"dee-{tag}", enter) as dee:
            self._meet(pages, dee)
            senders = {name: str(page.call("state")["sender"]) for name, page in pages.items()}
            for name, page in pages.items():
                e2ee(
                    page, "publish", {"url": self.sfu.url, "room": ROOM, "keepKeys": name == "cat"}
                )
            feeds = {name: int(e2ee(page, "feed")) for name, page in pages.items()}
            self.log(f"published: feeds {feeds}")
            self._steady(pages, senders, dee)
            self._intruder(pages, senders, dee)
            self._on_the_way(pages, senders)
            self._leaver(pages, senders, dee)
            plain = {name: e2ee(page, "plain") for name, page in pages.items()}
            samples = {name: e2ee(page, "samples") for name, page in pages.items()}
            self._bench(pages["ann"])
            errors = {name: e2ee(page, "errors") + page.errors for name, page in pages.items()}
            self.check("no_page_errors", not any(errors.values()), _nonempty(errors))
            for page in pages.values():
                e2ee(page, "leaveRoom")
            with contextlib.suppress(Exception):
                pages["ann"].call("end")
            for page in pages.values():
                with contextlib.suppress(Exception):
                    page.call("close")
                page.page.context.close()
        self._recordings(feeds, plain, samples)
        return {
            "ok": all(self.checks.values()),
            "checks": self.checks,
            "measurements": self.measurements,
            "details": self.details,
        }

    # --- the meeting ------------------------------------------------------------------------

    def _meet(self, pages: dict[str, BrowserParticipant], dee: PythonParticipant) -> None:
        ann = pages["ann"]
        invitees = [pages["bob"].user_id, pages["cat"].user_id, dee.user_id]
        invitation = ann.call("start", invitees=invitees)["invitation"]
        for name in ("bob", "cat"):
            pages[name].call("join", invitation=invitation)
        dee.meeting = dee.run(Meeting.join(dee.device, invitation))
        self.meeting_id = dee.meeting.meeting_id
        self._same_epoch(pages, dee)
        self.log(f"meeting {self.meeting_id}: ann (host), bob, cat in Chromium; dee in Python")

    def _same_epoch(self, pages: dict[str, BrowserParticipant], dee: PythonParticipant) -> int:
        """Waits until every page and dee hold ann's current epoch; that epoch."""
        epoch = int(pages["ann"].call("state")["epoch"])
        for page in pages.values():
            page.call("wait_epoch", epoch=epoch)
        meeting = dee.meeting
        assert meeting is not None
        dee.until(lambda: (meeting.epoch or 0) >= epoch)
        return epoch

    # --- 1. steady state ----------------------------------------------------------------------

    def _steady(
        self, pages: dict[str, BrowserParticipant], senders: dict[str, str], dee: PythonParticipant
    ) -> None:
        others = {name: [senders[n] for n in NAMES if n != name] for name in NAMES}
        started = time.monotonic()
        while True:
            got = {name: _by_display(e2ee(page, "remotes")) for name, page in pages.items()}
            if all(_decoding(got[name], others[name]) for name in NAMES):
                break
            if time.monotonic() - started > WAIT_SECONDS:
                self.check("all_video_decoded", False, "not every page decoded every other")
                raise _Stop(self)
            time.sleep(0.5)
        self.measurements["all_decoding_after_s"] = round(time.monotonic() - started, 1)
        time.sleep(1)  # past the jitter buffers' start
        before, t0 = _snapshot(pages), time.monotonic()
        time.sleep(STEADY_SECONDS)
        after, t1 = _snapshot(pages), time.monotonic()
        seconds = t1 - t0
        video_ok, audio_ok, rates, spreads = True, True, {}, {}
        for name in NAMES:
            for other in NAMES:
                if other == name:
                    continue
                early = before[name]["remotes"][senders[other]]["counts"]
                late = after[name]["remotes"][senders[other]]["counts"]
                decoded = _get(late, "video", "framesDecoded") - _get(
                    early, "video", "framesDecoded"
                )
                sent = after[other]["sent"].get("video:framesSent", 0) - before[other]["sent"].get(
                    "video:framesSent", 0
                )
                heard = _heard(late) - _heard(early)
                spread = after[name]["remotes"][senders[other]]["spread"]
                rates[f"{name}<-{other}"] = {
                    "decoded_fps": round(decoded / seconds, 1),
                    "sent_fps": round(sent / seconds, 1),
                    "audio_decoded_samples_per_s": round(heard / seconds),
                }
                spreads[f"{name}<-{other}"] = round(spread, 1)
                # Lenient for two shared cores: 15 fps sent, at least 3 fps decoded.
                video_ok &= decoded >= 3 * seconds and spread > 5
                audio_ok &= heard > 0.25 * 48_000 * seconds
        self.measurements["frames_per_s"] = rates
        self.measurements["picture_spread"] = spreads
        self.check("all_video_decoded", video_ok)
        self.check("all_audio_decoded", audio_ok)
        failures = {
            name: _failures(after[name]["media"]) - _failures(before[name]["media"])
            for name in NAMES
        }
        self.measurements["decrypt_failures_steady"] = failures
        self.check("no_decrypt_failures", not any(failures.values()), _nonempty(failures))
        codes = {name: page.call("state")["security_code"] for name, page in pages.items()}
        assert dee.meeting is not None
        codes["dee (Python)"] = dee.meeting.security_code
        self.check("security_codes_match", len(set(codes.values())) == 1)
        self.details["security_code"] = next(iter(codes.values()))
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            shots = []
            for name, page in pages.items():
                path = self.out / f"{name}-remote-video.png"
                page.page.screenshot(path=str(path))
                shots.append(str(path))
            self.details["screenshots"] = shots

    # --- 2. an intruder on the SFU ------------------------------------------------------------

    def _intruder(
        self, pages: dict[str, BrowserParticipant], senders: dict[str, str], dee: PythonParticipant
    ) -> None:
        epoch = self._same_epoch(pages, dee)
        page = self.meetings.browser.new_context().new_page()
        page.goto(self.meetings.page_url)
        page.wait_for_function("window.makeParticipant !== undefined", timeout=30_000)
        page.evaluate("(services) => window.makeParticipant(services)", self.meetings.endpoints)
        eve = BrowserParticipant(page)
        config = {
            "url": self.sfu.url,
            "room": ROOM,
            "meetingId": self.meeting_id,
            "display": senders["ann"],
            "epoch": str(epoch),
        }
        before = {name: e2ee(p, "mediaReport") for name, p in pages.items()}
        e2ee(eve, "intrude", config)
        eve_feed = int(e2ee(eve, "feed"))
        time.sleep(STEADY_SECONDS)
        seen = e2ee(eve, "remotes")
        eve_media = e2ee(eve, "mediaReport")
        decoded = {r["display"]: _get(r["counts"], "video", "framesDecoded") for r in seen}
        heard = {r["display"]: _heard(r["counts"]) for r in seen}
        got_frames = eve_media["counters"]["tampered"] > 0
        self.check(
            "wrong_key_decodes_nothing",
            len(seen) == len(NAMES) and got_frames and not any(decoded.values()),
            {"decoded": decoded, "audio_samples_decoded": heard, "counters": eve_media["counters"]},
        )
        forged: dict[str, Any] = {}
        for name, p in pages.items():
            remote = next((r for r in e2ee(p, "remotes") if r["feed"] == eve_feed), None)
            now = e2ee(p, "mediaReport")
            refused = {
                key: _get_counter(now, key) - _get_counter(before[name], key)
                for key in ("tampered", "replayed", "unknown_epoch", "wrong_sender", "decrypted")
            }
            counts = {} if remote is None else remote["counts"]
            forged[name] = {
                "decoded": -1 if remote is None else _get(counts, "video", "framesDecoded"),
                "received": _get(counts, "video", "framesReceived"),
                "refused": refused,
            }
        self.check(
            "forged_frames_decode_nothing",
            all(f["decoded"] == 0 and _refused(f["refused"]) > 0 for f in forged.values()),
            forged,
        )
        e2ee(eve, "leaveRoom")
        page.context.close()

    # --- 3. frames altered on their way --------------------------------------------------------

    def _on_the_way(self, pages: dict[str, BrowserParticipant], senders: dict[str, str]) -> None:
        time.sleep(1)  # the intruder's last frames are in
        before = _snapshot(pages)
        e2ee(pages["bob"], "alterOnTheWay", senders["ann"])
        time.sleep(ALTER_SECONDS)
        during = _snapshot(pages)
        e2ee(pages["bob"], "alterOnTheWay", None)
        time.sleep(GRACE_SECONDS + 1)  # frames of the unknown epoch waited it out
        after = _snapshot(pages)
        altered = e2ee(pages["bob"], "altered")
        bob, ok = senders["bob"], all(n > 0 for n in altered.values())
        receivers: dict[str, Any] = {}
        for name in ("ann", "cat"):
            counted = {
                counter: _get_counter(after[name]["media"], counter)
                - _get_counter(before[name]["media"], counter)
                for counter in (*ALTERED_AS.values(), "decrypted")
            }
            early = before[name]["remotes"][bob]["counts"]
            late = during[name]["remotes"][bob]["counts"]
            decoded = _get(late, "video", "framesDecoded") - _get(early, "video", "framesDecoded")
            heard = _heard(late) - _heard(early)
            receivers[name] = {
                "dropped": counted,
                "video_frames_decoded_per_s": round(decoded / ALTER_SECONDS, 1),
                "audio_samples_decoded_per_s": round(heard / ALTER_SECONDS),
            }
            # Every altered frame dropped under its own name (the network here loses
            # next to nothing, and a frame lost is one fewer to count), no honest one;
            # bob's honest frames still decode (each dropped video frame costs the
            # frames up to the key frame the receiver then asks for).
            for alteration, counter in ALTERED_AS.items():
                ok &= 0.9 * altered[alteration] <= counted[counter] <= altered[alteration]
            ok &= decoded >= 2 * ALTER_SECONDS and heard > 0.25 * 48_000 * ALTER_SECONDS
        self.measurements["altered_on_the_way"] = {"altered_by_bob": altered, **receivers}
        self.check(
            "altered_frames_dropped_by_name", ok, {"altered": altered, "receivers": receivers}
        )

    # --- 4. a leaver who keeps its keys and its subscriptions ---------------------------------

    def _leaver(
        self, pages: dict[str, BrowserParticipant], senders: dict[str, str], dee: PythonParticipant
    ) -> None:
        ann, bob, cat = pages["ann"], pages["bob"], pages["cat"]
        epoch = self._same_epoch(pages, dee)
        cat.call("leave")  # its media ignores the key drop (keepKeys): only the rekey stops it
        started = time.monotonic()
        while int(ann.call("state")["epoch"]) <= epoch:
            if time.monotonic() - started > WAIT_SECONDS:
                self.check("leaver_stops_decoding", False, "no rekey after the leave")
                raise _Stop(self)
            time.sleep(0.2)
        new = int(ann.call("state")["epoch"])
        bob.call("wait_epoch", epoch=new)
        assert dee.meeting is not None
        meeting = dee.meeting
        dee.until(lambda: (meeting.epoch or 0) >= new)
        posted = float(ann.call("installed_at")[str(new)])  # ann posted the key
        time.sleep(2)  # every sender switched, the old keys' frames are out of the buffers
        before = _snapshot(pages)
        time.sleep(STEADY_SECONDS)
        after = _snapshot(pages)
        gone = {other: _delta(before, after, "cat", senders[other]) for other in ("ann", "bob")}
        going = {
            f"{name}<-{other}": _delta(before, after, name, senders[other])
            for name, other in (("ann", "bob"), ("bob", "ann"))
        }
        cat_new = str(new) in after["cat"]["media"].get("firstOpened", {})
        # Nothing decoded because nothing came would prove nothing: Janus still forwards
        # ann's and bob's media to cat, and its worker gets their frames and opens none
        # (they wait for a key it never gets, then are dropped as unknown_epoch).
        forwarded = {
            other: {
                "video_bytes": _received(
                    before, after, "cat", senders[other], "video", "bytesReceived"
                ),
                "audio_packets": _received(
                    before, after, "cat", senders[other], "audio", "packetsReceived"
                ),
            }
            for other in ("ann", "bob")
        }
        cat_media = (before["cat"]["media"], after["cat"]["media"])
        refused = _get_counter(cat_media[1], "unknown_epoch") - _get_counter(
            cat_media[0], "unknown_epoch"
        )
        self.check(
            "leaver_stops_decoding",
            not any(gone.values())
            and not cat_new
            and all(v > 0 for f in forwarded.values() for v in f.values())
            and refused > 0
            and all(n >= 3 * STEADY_SECONDS for n in going.values()),
            {
                "leaver_decoded": gone,
                "leaver_still_forwarded": forwarded,
                "leaver_refused_unknown_epoch": refused,
                "others_decoded": going,
                "epoch": new,
            },
        )
        gaps = {}
        for name in ("ann", "bob"):
            opened = after[name]["media"].get("firstOpened", {}).get(str(new))
            gaps[name] = None if opened is None else round(float(opened) - posted, 1)
        self.measurements["rekey_gap_ms"] = gaps
        # The decoded video itself around the rekey: the longest time between two frames
        # shown, from 1 s before the key post to 3 s after it.
        window = [posted - 1000, posted + 3000]
        shown = {}
        for name, other in (("ann", "bob"), ("bob", "ann")):
            longest = e2ee(pages[name], "frameGaps", window).get(senders[other])
            shown[f"{name}<-{other}"] = None if longest is None else round(longest, 1)
        self.measurements["rekey_longest_frame_gap_ms"] = shown
        self.measurements["rekey_gap_note"] = (
            "ms from the key post (its install at the poster, ann) to the first frame of "
            "the new epoch opened in each receiving page's worker"
        )

    # --- 5. what Janus recorded ---------------------------------------------------------------

    def _recordings(
        self, feeds: dict[str, int], plain: dict[str, Any], samples: dict[str, list[str]]
    ) -> None:
        import base64

        found: dict[str, Any] = {}
        clean = True
        entropy: dict[str, float] = {}
        for name, feed in feeds.items():
            row: dict[str, Any] = {}
            for kind in ("video", "audio"):
                recorded = janus_sfu.recorded_frames(self.sfu, ROOM, feed, kind)
                digests = {mjr.digest(frame) for frame in recorded}
                matches = digests & set(plain[name].get(kind, []))
                row[kind] = {"recorded": len(recorded), "plaintext_frames_found": len(matches)}
                clean &= len(recorded) > 30 and not matches and len(plain[name].get(kind, [])) > 30
                if kind == "video":
                    blob = b"".join(recorded)
                    pieces = 0
                    for sample in samples[name]:
                        frame = base64.b64decode(sample)
                        for at in range(SKIP, len(frame) - CHUNK, CHUNK):
                            pieces += frame[at : at + CHUNK] in blob
                    row["plaintext_pieces_found"] = pieces
                    body = b"".join(frame[SKIP:] for frame in recorded)
                    entropy[name] = round(_entropy(body), 3)
                    clean &= pieces == 0 and entropy[name] > 7.9 and len(samples[name]) > 0
            found[name] = row
        self.measurements["recorded_video_entropy_bits_per_byte"] = entropy
        self.check("sfu_saw_no_plaintext", clean, found)

    # --- 6. SFrame against bare AES-GCM -------------------------------------------------------

    def _bench(self, page: BrowserParticipant) -> None:
        """web/tools/sframe-bench.ts in a worker of ann's page: a 100-byte Opus frame and
        a 1,200-byte VP8 frame, each against AES-256-GCM on the same bytes and AAD length."""
        results = page.page.evaluate("(n) => window.e2ee.bench(n)", 7)
        self.measurements["sframe_vs_aes_gcm_us_per_frame"] = [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in results
        ]


class _Stop(Exception):
    """A step could not go on; the checks so far say which."""

    def __init__(self, demo: _Demo) -> None:
        super().__init__("the demo stopped early")
        self.result = {
            "ok": False,
            "checks": demo.checks,
            "measurements": demo.measurements,
            "details": demo.details,
        }


def e2ee(page: BrowserParticipant, method: str, argument: Any = None) -> Any:
    """``window.e2ee``'s ``method`` (awaited), or a property's value."""
    script = f"async (a) => {{ const v = window.e2ee.{method}; return typeof v === 'function' ? await window.e2ee.{method}(a) : v; }}"  # noqa: E501
    return page.page.evaluate(script, argument)


def _by_display(remotes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {remote["display"]: remote for remote in remotes}


def _snapshot(pages: dict[str, BrowserParticipant]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "remotes": _by_display(e2ee(page, "remotes")),
            "sent": e2ee(page, "sent"),
            "media": e2ee(page, "mediaReport"),
        }
        for name, page in pages.items()
    }


def _get(counts: dict[str, Any], kind: str, key: str) -> float:
    return float(counts.get(kind, {}).get(key, 0))


def _heard(counts: dict[str, Any]) -> float:
    """Audio samples decoded rather than concealed."""
    return _get(counts, "audio", "totalSamplesReceived") - _get(counts, "audio", "concealedSamples")


def _decoding(got: dict[str, dict[str, Any]], displays: list[str]) -> bool:
    return all(
        d in got
        and _get(got[d]["counts"], "video", "framesDecoded") > 0
        and _get(got[d]["counts"], "audio", "totalSamplesReceived") > 0
        for d in displays
    )


def _delta(before: dict[str, Any], after: dict[str, Any], name: str, display: str) -> float:
    def decoded(snapshot: dict[str, Any]) -> float:
        remote = snapshot[name]["remotes"].get(display)
        return 0.0 if remote is None else _get(remote["counts"], "video", "framesDecoded")

    return decoded(after) - decoded(before)


def _received(
    before: dict[str, Any], after: dict[str, Any], name: str, display: str, kind: str, key: str
) -> float:
    """What ``name``'s subscription to ``display`` received in between (RTP counters,
    before any transform: what Janus forwarded)."""

    def count(snapshot: dict[str, Any]) -> float:
        remote = snapshot[name]["remotes"].get(display)
        return 0.0 if remote is None else _get(remote["counts"], kind, key)

    return count(after) - count(before)


def _refused(counters: dict[str, int]) -> int:
    """Frames dropped for any reason an attacker's frame is (each counted by name)."""
    return sum(
        counters.get(k, 0) for k in ("tampered", "replayed", "unknown_epoch", "wrong_sender")
    )


def _failures(media: dict[str, Any]) -> int:
    """A page's frames that did not decrypt, of every kind ``_refused`` counts."""
    return int(_refused(media.get("counters", {})))


def _get_counter(media: dict[str, Any], key: str) -> int:
    return int(media.get("counters", {}).get(key, 0))


def _nonempty(values: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: v for k, v in values.items() if v}
    return kept or None


def _entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (8 for uniformly random bytes)."""
    if not data:
        return 0.0
    total = len(data)
    return -sum(n / total * math.log2(n / total) for n in Counter(data).values())
