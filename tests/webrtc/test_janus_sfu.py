"""Browsers in a meeting through a real SFU: Janus's VideoRoom, inside a network
namespace made for the test, with three headless Chromium pages (fake camera and
microphone) that each publish and subscribe to the other two. Every page must decode
every other page's video and audio, over ICE paths between the namespace's own
address only; Janus's recordings, read back into frames, are what the senders sent;
and the per-sender and per-receiver encoded-transform hook the SFrame
layer will use must see every frame, and be able to stop a receiver decoding.

Skipped, saying why, without root, iproute2, Janus, Chromium, Playwright or the
browser SDK's packages; ``.ci/run`` installs them and runs as root."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from veil.webrtc import janus as janus_sfu
from veil.webrtc import mjr, netns
from veil.webrtc.browsers import chromium_in

from ..web_sdk.browser import built_sdk, module_page, served

NAMES = ("ann", "bob", "cat")
JOIN_SECONDS = 30
SCRIPT = """
import { SfuPage } from "/dist/test/browser/sfu-page.js";
const page = new SfuPage();
window.__page = page;
const config = JSON.parse(decodeURIComponent(location.hash.slice(1)));
page.start(config).then(
  () => { window.__ready = true; },
  (e) => { window.__error = `${e.name}: ${e.message}`; },
);
"""


class Site:
    def __init__(self, ns: netns.Namespace, sfu: janus_sfu.Janus, url: str, browser: Any):
        self.ns, self.sfu, self.url, self.browser = ns, sfu, url, browser

    def open(self, room: int, name: str, **options: Any) -> Any:
        """A page (in a context of its own) joining ``room`` as ``name``."""
        page = self.browser.new_context().new_page()
        config = {"url": self.sfu.url, "room": room, "display": name, **options}
        page.goto(f"{self.url}/sfu.html#{json.dumps(config)}")
        return page

    def join(self, room: int, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The three participants' pages, joined to ``room``, each with its ``options``."""
        pages = {name: self.open(room, name, **options[name]) for name in NAMES}
        for name, page in pages.items():
            assert joined(page) is None, name
        return pages


def joined(page: Any) -> str | None:
    """Once the page has joined or failed to: its error (None when it joined)."""
    page.wait_for_function("window.__ready || window.__error", timeout=JOIN_SECONDS * 1000)
    error: str | None = page.evaluate("window.__error")
    return error


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    netns.require()
    janus_sfu.require()
    root = built_sdk()
    folder = tmp_path_factory.mktemp("janus")
    pages = {"/sfu.html": module_page(SCRIPT)}
    with (
        netns.namespace() as ns,
        janus_sfu.janus(ns, folder, rooms=(1000, 1001), record=True) as sfu,
        served(root, pages, netns.listener(ns)) as url,
        chromium_in(ns, folder) as browser,
    ):
        print(f"\nJanus accepted connections {sfu.started_in * 1000:.0f} ms after launch")
        yield Site(ns, sfu, url, browser)


def reports(page: Any) -> dict[str, Any]:
    return {report["display"]: report for report in page.evaluate("window.__page.report()")}


def wait_for(pages: dict[str, Any], ready: Any, seconds: float = JOIN_SECONDS) -> float:
    """Seconds until ``ready(name, reports)`` holds for every page."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if all(ready(name, reports(page)) for name, page in pages.items()):
            return time.monotonic() - started
        time.sleep(0.25)
    states = {name: reports(page) for name, page in pages.items()}
    raise AssertionError(f"not ready within {seconds} s: {json.dumps(states)[:4000]}")


def decoding(others: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Whether video frames and audio samples from each of ``names`` have come in."""
    return all(
        name in others
        and others[name]["counts"].get("video", {}).get("framesDecoded", 0) > 0
        and others[name]["counts"].get("audio", {}).get("totalSamplesReceived", 0) > 0
        for name in names
    )


def timings(pages: dict[str, Any]) -> str:
    lines = []
    for name, page in pages.items():
        measured = page.evaluate("window.__page.timings")
        first = {k.split(":")[1]: round(v) for k, v in measured.items() if ":" in k}
        lines.append(
            f"{name}: media {measured['media_ms']:.0f} ms, joined {measured['join_ms']:.0f} ms,"
            f" first remote frame (ms from start) {first}"
        )
    return "\n".join(lines)


def test_three_browsers_decode_each_others_video_and_audio_through_janus(site: Site) -> None:
    pages = site.join(1000, {name: {"countFrames": False} for name in NAMES})
    feeds = {name: page.evaluate("window.__page.room.self.feed") for name, page in pages.items()}
    others = {name: tuple(n for n in NAMES if n != name) for name in NAMES}
    waited = wait_for(pages, lambda name, got: decoding(got, others[name]))
    print(f"all decoding {waited:.1f} s after the last join\n{timings(pages)}")
    time.sleep(1)  # past the jitter buffers' start, when concealment is normal
    before = {name: reports(page) for name, page in pages.items()}
    time.sleep(3)
    after = {name: reports(page) for name, page in pages.items()}
    for name in NAMES:
        assert sorted(after[name]) == sorted(others[name])
        assert pages[name].evaluate("window.__page.errors") == []
        hooked = pages[name].evaluate("window.__page.hooked")
        assert sorted(hooked) == sorted(
            [f"send:{kind}:{name}" for kind in ("audio", "video")]
            + [f"receive:{kind}:{other}" for other in others[name] for kind in ("audio", "video")]
        )
        # Media flowed between the namespace's own address and itself, nowhere else.
        path = pages[name].evaluate("window.__page.publishedPath()")
        assert path == {"local": site.ns.address, "remote": site.ns.address}
        for other in others[name]:
            early, late = before[name][other], after[name][other]
            assert late["path"] == {"local": site.ns.address, "remote": site.ns.address}
            video, video_then = late["counts"]["video"], early["counts"]["video"]
            assert video["codec"] == "video/VP8"
            assert video["framesDecoded"] >= video_then["framesDecoded"] + 15, (name, other)
            assert (video["frameWidth"], video["frameHeight"]) == (320, 240)
            audio, audio_then = late["counts"]["audio"], early["counts"]["audio"]
            assert audio["codec"] == "audio/opus"
            received = audio["totalSamplesReceived"] - audio_then["totalSamplesReceived"]
            concealed = audio["concealedSamples"] - audio_then["concealedSamples"]
            # Three seconds of 48 kHz audio, most of it decoded rather than made up by
            # concealment (a little is normal on a busy machine: two shared cores).
            assert received > 96_000, (name, other, received)
            assert concealed < received / 4, (name, other, concealed, received)
            # The fake camera's picture (moving shapes on a coloured field), not a
            # uniform frame: a decoder that rendered nothing scores 0.
            assert late["spread"] > 5, (name, other, late["spread"])
    # A leaver's subscriptions end at the others (Janus tells them it unpublished).
    pages["ann"].evaluate("window.__page.leave()")
    wait_for({n: pages[n] for n in ("bob", "cat")}, lambda _, got: "ann" not in got, 10)
    for name in ("bob", "cat"):
        assert pages[name].evaluate("window.__page.gone") == ["ann"]
    for page in pages.values():
        page.context.close()
    # Janus recorded every publisher: VP8 frames (key frames of the fake camera's size
    # among them) and Opus frames, read back from its recordings.
    for name, feed in feeds.items():
        video = janus_sfu.recorded_frames(site.sfu, 1000, feed, "video")
        sizes = {mjr.vp8_key_frame_size(frame) for frame in video} - {None}
        assert len(video) > 30 and sizes == {(320, 240)}, (name, len(video), sizes)
        assert len(janus_sfu.recorded_frames(site.sfu, 1000, feed, "audio")) > 100, name


def test_joining_a_room_janus_does_not_have_is_refused_by_name(site: Site) -> None:
    page = site.open(4242, "ann", countFrames=False)
    # JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM.
    assert joined(page) == "JanusError: Janus error 426: No such room (4242)"
    page.context.close()


def test_the_encoded_transform_hooks_see_every_frame_and_can_stop_decoding(site: Site) -> None:
    # Every sender and receiver gets a counting pass-through transform; cat's receivers
    # of ann's media drop every frame, as a receiver without ann's key would.
    options: dict[str, dict[str, Any]] = {name: {"countFrames": True} for name in NAMES}
    options["cat"]["dropFrom"] = "ann"
    pages = site.join(1001, options)
    expected = {"ann": ("bob", "cat"), "bob": ("ann", "cat"), "cat": ("bob",)}
    wait_for(pages, lambda name, got: decoding(got, expected[name]))
    time.sleep(1)
    before = {name: reports(page) for name, page in pages.items()}
    frames_before = {name: page.evaluate("window.__page.frames") for name, page in pages.items()}
    time.sleep(2)
    after = {name: reports(page) for name, page in pages.items()}
    frames = {name: page.evaluate("window.__page.frames") for name, page in pages.items()}
    for name in NAMES:
        others = [n for n in NAMES if n != name]
        names = [f"send:{kind}:{name}" for kind in ("audio", "video")] + [
            f"receive:{kind}:{other}" for other in others for kind in ("audio", "video")
        ]
        assert sorted(frames[name]) == sorted(names)
        for transform in names:  # 15 fps video, 50 Opus frames a second
            assert frames[name][transform] >= frames_before[name][transform] + 10, transform
        for other in expected[name]:
            decoded = after[name][other]["counts"]["video"]["framesDecoded"]
            assert decoded >= before[name][other]["counts"]["video"]["framesDecoded"] + 10

    # ann's frames reached cat's transform, which dropped them: nothing decoded.
    dropped = after["cat"]["ann"]["counts"]
    assert dropped.get("video", {}).get("framesDecoded", 0) == 0
    assert after["cat"]["ann"]["spread"] == 0
    feeds = {name: page.evaluate("window.__page.room.self.feed") for name, page in pages.items()}
    for page in pages.values():
        page.evaluate("window.__page.leave()")
    time.sleep(1)  # the workers' last reports, after the last frame
    sent = {name: page.evaluate("window.__page.sent") for name, page in pages.items()}
    for page in pages.values():
        page.context.close()
    # What Janus recorded is, frame for frame, what each sender's transform sent: the
    # comparison that, with SFrame in the transform, shows what the SFU could read.
    for name, feed in feeds.items():
        for kind in ("video", "audio"):
            recorded = [
                mjr.digest(f) for f in janus_sfu.recorded_frames(site.sfu, 1001, feed, kind)
            ]
            transformed = set(sent[name][f"send:{kind}:{name}"])
            unknown = [d for d in recorded if d not in transformed]
            assert len(recorded) > 30 and not unknown, (name, kind, len(recorded), unknown)
            # and it missed few (only frames that lost a packet are left out).
            assert len(set(recorded)) > 0.9 * len(transformed), (name, kind, len(recorded))
