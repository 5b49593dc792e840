"""``ConferenceMetrics``: connections, devices and rooms counted while open; relay frames
added up over the open connections and the closed ones."""

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import generate_latest

from veil.conference.metrics import ConferenceMetrics


@dataclass
class Relay:
    received: int = 0
    forwarded: int = 0
    skipped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def samples(metrics: ConferenceMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    rows = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("veil_"))
    return {name: float(value) for name, value in rows}


def test_connections_devices_and_rooms_are_counted_while_open() -> None:
    metrics = ConferenceMetrics()
    metrics.opened("board", "room-1", "device-a")
    metrics.opened("media", "room-1", "device-a", Relay())
    metrics.opened("board", "room-2", "device-b")
    seen = samples(metrics)
    assert seen['veil_conference_connections{channel="board"}'] == 2
    assert seen['veil_conference_connections{channel="media"}'] == 1
    assert seen["veil_conference_connected_devices"] == 2
    assert seen["veil_conference_rooms"] == 2
    metrics.closed("board", "room-2", "device-b")
    metrics.closed("board", "room-1", "device-a")
    seen = samples(metrics)
    assert seen["veil_conference_connected_devices"] == 1  # device-a's media is open
    assert seen["veil_conference_rooms"] == 1
    assert seen['veil_conference_connections_opened_total{channel="board"}'] == 2


def test_relay_frames_add_up_over_open_and_closed_connections() -> None:
    metrics = ConferenceMetrics()
    first, second = Relay(), Relay()
    metrics.opened("media", "room", "device-a", first)
    metrics.opened("media", "room", "device-b", second)
    first.received, first.forwarded, first.dropped["rate_limited"] = 10, 7, 3
    second.received, second.skipped, second.dropped["wrong_sender"] = 5, 2, 1
    metrics.closed("media", "room", "device-a", first)
    first.received += 100  # counted after it closed: not reported twice, nor at all
    second.received += 1
    seen = samples(metrics)
    assert seen["veil_relay_frames_received_total"] == 16
    assert seen["veil_relay_frames_forwarded_total"] == 7
    assert seen["veil_relay_frames_skipped_total"] == 2
    assert seen['veil_relay_frames_dropped_total{reason="rate_limited"}'] == 3
    assert seen['veil_relay_frames_dropped_total{reason="wrong_sender"}'] == 1
    assert seen['veil_relay_frames_dropped_total{reason="bad_frame"}'] == 0


def test_board_posts_are_counted_by_result() -> None:
    metrics = ConferenceMetrics()
    for result in ("stored", "stored", "resent", "bad_signature"):
        metrics.board_post(result)
    seen = samples(metrics)
    assert seen['veil_board_posts_total{result="stored"}'] == 2
    assert seen['veil_board_posts_total{result="resent"}'] == 1
    assert seen['veil_board_posts_total{result="bad_signature"}'] == 1
