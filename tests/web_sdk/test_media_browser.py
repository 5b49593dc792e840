"""End-to-end encrypted WebRTC media in headless Chromium: ``VeilMedia`` (web/src/media)
on two peer connections of one page, connected directly (no SFU), with the fake camera
and microphone. Alice's frames are SFrame-sealed in her media worker and opened in
Bob's: video decodes and shows a picture, audio decodes, a rekey mid-call keeps both
going; a receiver with a wrong key decodes nothing; a dishonest sender's tampered,
replayed, forged (another sender's KID) and unknown-epoch frames are dropped and
counted by kind; a participant that left decodes nothing more. The worker's SFrame
cost against bare AES-GCM is measured, not timed: ``pytest -s`` prints it."""

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from .browser import built_sdk, chromium, module_page, served

SCRIPT = """
import * as scenarios from "/dist/test/browser/media-page.js";
window.scenarios = scenarios;
window.__ready = true;
"""


@pytest.fixture(scope="module")
def open_page() -> Iterator[Any]:
    root = built_sdk()
    with chromium() as browser, served(root, {"/media.html": module_page(SCRIPT)}) as url:

        def run(call: str) -> Any:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            try:
                page.goto(f"{url}/media.html")
                page.wait_for_function("window.__ready === true", timeout=30_000)
                result, worker_errors = page.evaluate(
                    f"async () => [await scenarios.{call}, scenarios.errors()]"
                )
            finally:
                page.close()
            assert not errors, errors
            # Attacks are counted, never thrown: a worker error is a bug.
            assert not worker_errors, worker_errors
            return result

        yield run


# A receiver's transform can see a video frame twice: Chromium's bandwidth probing
# resends media packets over RTX, and a single-packet frame resent after it was
# delivered is assembled again. SFrame drops the copy as replayed, as it must; honest
# calls may show at most as many replays as retransmitted packets received.
DROPS = ("tampered", "replayed", "unknown_epoch", "wrong_sender")


def unexpected_drops(
    counters: dict[str, int], retransmitted: int, expected: str | None = None
) -> dict[str, int]:
    """The drop counters that should be zero but are not (replays beyond the RTX resends)."""
    limits = {k: retransmitted if k == "replayed" else 0 for k in DROPS if k != expected}
    return {k: counters[k] for k, limit in limits.items() if counters[k] > limit}


def rising(samples: list[dict[str, float]], field: str) -> bool:
    values = [s[field] for s in samples]
    return all(b > a for a, b in pairwise(values)) and values[0] > 0


def test_video_and_audio_decode_through_sframe_and_survive_a_rekey(open_page: Any) -> None:
    result = open_page("callAndRekey()")
    first, second, third, fourth = result["samples"]
    assert rising(result["samples"], "framesDecoded"), result["samples"]
    # The fake camera sends 30 fps; a loaded two-core machine decodes 10-20 of them.
    assert second["framesDecoded"] - first["framesDecoded"] > 10  # in 2 s
    assert third["framesDecoded"] - second["framesDecoded"] > 20  # 4 s, the first rekey
    assert fourth["framesDecoded"] - third["framesDecoded"] > 10  # 2 s, the second
    assert rising(result["samples"], "audioDecoded"), result["samples"]
    assert result["spread"] > 5, "the remote video is one flat colour"
    sent, got = result["sent"]["counters"], result["received"]["counters"]
    assert sent["sent"] > 200 and sent["no_key"] == 0
    assert got["decrypted"] > 200
    resent = result["after_leaving"][-1]["retransmitted"]  # sampled after the report
    assert unexpected_drops(got, resent) == {} and got["pending"] == 0, (got, resent)
    # Epoch 2: Alice sealed first, Bob's frames waited for his key; epoch 3: Bob held it
    # first and opened Alice's epoch-2 frames meanwhile, in the grace period.
    assert result["after_first_rekey"]["epoch"] == "2"
    assert result["received"]["epoch"] == "3"
    assert set(result["received"]["firstOpened"]) == {"1", "2", "3"}
    print(
        f"\nrekey (sender's key 200 ms before the receiver's): first epoch-2 frame opened "
        f"{result['first_new_epoch_ms']:.0f} ms after the sender's key, longest gap "
        f"between decoded video frames around the two rekeys {result['longest_stall_ms']:.0f} ms"
    )
    assert result["longest_stall_ms"] < 1500
    # Bob left (the key source said so): his worker holds no key, nothing decodes.
    left, later = result["after_leaving"]
    assert later["framesDecoded"] - left["framesDecoded"] <= 1, result["after_leaving"]
    assert later["audioDecoded"] == left["audioDecoded"], result["after_leaving"]
    assert result["left_report"]["epoch"] is None


def test_legacy_encoded_streams_carry_the_same_frames(open_page: Any) -> None:
    result = open_page("callAndRekey(true)")
    assert rising(result["samples"], "framesDecoded"), result["samples"]
    assert result["spread"] > 5
    got = result["received"]["counters"]
    resent = result["after_leaving"][-1]["retransmitted"]
    assert got["decrypted"] > 200 and unexpected_drops(got, resent) == {}, (got, resent)


def test_vp9_frames_are_encrypted_whole_and_decode(open_page: Any) -> None:
    result = open_page("codecCall('video/VP9')")
    assert all(s["videoCodec"] == "video/VP9" for s in result["samples"]), result["samples"]
    assert rising(result["samples"], "framesDecoded"), result["samples"]
    assert result["spread"] > 5
    got = result["received"]["counters"]
    resent = result["samples"][-1]["retransmitted"]
    assert got["decrypted"] > 100 and unexpected_drops(got, resent) == {}, (got, resent)


def test_a_receiver_with_a_wrong_key_decodes_nothing(open_page: Any) -> None:
    result = open_page("wrongKey()")
    got = result["received"]["counters"]
    assert result["sent"]["counters"]["sent"] > 100
    assert got["decrypted"] == 0 and got["tampered"] > 100, got
    assert result["after"]["framesDecoded"] == 0
    assert result["after"]["audioDecoded"] == 0
    assert result["spread"] == 0


@pytest.mark.parametrize(
    ("attack", "counter"),
    [("tamper", "tampered"), ("replay", "replayed"), ("forge", "wrong_sender"),
     ("unknown", "unknown_epoch")],
)  # fmt: skip
def test_a_dishonest_senders_frames_are_dropped_and_counted(
    open_page: Any, attack: str, counter: str
) -> None:
    result = open_page(f"attacked({attack!r})")
    got = result["received"]["counters"]
    resent = result["samples"][-1]["retransmitted"]
    assert got[counter] > 10 + (resent if counter == "replayed" else 0), (got, resent)
    assert unexpected_drops(got, resent, counter) == {}, (got, resent)
    # The honest four frames in five still open.
    assert got["decrypted"] > 100
    assert rising(result["samples"], "audioDecoded"), result["samples"]


def test_sframe_in_the_worker_against_bare_aes_gcm(open_page: Any) -> None:
    """A benchmark, not a timed test: prints medians per frame (web/tools/sframe-bench.ts:
    SFrame seal + open against AES-256-GCM encrypt + decrypt of the same bytes with
    additional data as long as SFrame's)."""
    for size, codec in ((100, "audio/opus"), (1200, "video/vp8"), (10_000, "video/vp8")):
        r = open_page(f"bench({size}, {codec!r}, 7)")
        print(
            f"\n{codec} {size} B in a worker (medians, µs per frame): seal + open "
            f"{r['sframe_us']:.1f} vs AES-256-GCM encrypt + decrypt {r['aes_gcm_us']:.1f} "
            f"(median of the runs' ratios {r['ratio']:.2f}x, ratio of the medians "
            f"{r['ratio_of_medians']:.2f}x); "
            f"seal {r['seal_us']:.1f} vs encrypt {r['encrypt_us']:.1f}; "
            f"open {r['open_us']:.1f} vs decrypt {r['decrypt_us']:.1f}; AAD {r['aad_bytes']} B"
        )
        assert r["sframe_us"] > 0 and r["aes_gcm_us"] > 0
        assert (r["codec"], r["size"]) == (codec, size)
        # The baseline's additional data: header (2-4 B here) + meeting id + clear bytes.
        assert len("bench") + 1 < r["aad_bytes"] < len("bench") + 10
