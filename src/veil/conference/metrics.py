"""The conference service's metrics: board posts, relay frames, connections.

The relay counts frames in each connection's own counters (plain integer additions on
the frame path, ``veil.conference.media_channel.Counters``); a scrape adds up those of
the open connections and of the closed ones. All of it runs on the event loop.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PrometheusCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from veil.web.metrics import new_registry

CHANNELS = ("board", "media")
DROP_REASONS = ("rate_limited", "bad_frame", "wrong_sender")


class RelayCounts(Protocol):
    received: int
    forwarded: int
    skipped: int
    dropped: Counter[str]


class ConferenceMetrics:
    """``veil_board_posts_total{result}``: posts by result (``stored``; ``resent``: a
    post already on the board, acknowledged again; else the refusal's code).
    ``veil_relay_frames_received_total`` (accepted from senders),
    ``veil_relay_frames_forwarded_total`` (sent to receivers),
    ``veil_relay_frames_skipped_total`` (not sent to a receiver that did not keep up),
    ``veil_relay_frames_dropped_total{reason}`` (refused from senders).
    ``veil_conference_connections{channel}``, ``veil_conference_connections_opened_total
    {channel}``, ``veil_conference_connected_devices`` and ``veil_conference_rooms``
    (rooms with a connection to this replica). Connections count once admitted."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        self.board_posts = PrometheusCounter(
            "veil_board_posts",
            "Board posts received, by result (stored, resent, or the refusal's code)",
            ["result"],
            registry=self.registry,
        )
        self._connections: Counter[str] = Counter()
        self._opened: Counter[str] = Counter()
        self._devices: Counter[str] = Counter()
        self._rooms: Counter[str] = Counter()
        self._relays: dict[int, RelayCounts] = {}
        self._closed_frames: Counter[str] = Counter()
        self._closed_drops: Counter[str] = Counter()
        self.registry.register(self)

    def board_post(self, result: str) -> None:
        self.board_posts.labels(result).inc()

    def opened(
        self, channel: str, room_id: str, device_id: str, relay: RelayCounts | None = None
    ) -> None:
        self._connections[channel] += 1
        self._opened[channel] += 1
        self._devices[device_id] += 1
        self._rooms[room_id] += 1
        if relay is not None:
            self._relays[id(relay)] = relay

    def closed(
        self, channel: str, room_id: str, device_id: str, relay: RelayCounts | None = None
    ) -> None:
        self._connections[channel] -= 1
        for held, key in ((self._devices, device_id), (self._rooms, room_id)):
            held[key] -= 1
            if held[key] <= 0:
                del held[key]
        if relay is not None and self._relays.pop(id(relay), None) is not None:
            self._closed_frames.update(
                received=relay.received, forwarded=relay.forwarded, skipped=relay.skipped
            )
            self._closed_drops.update(relay.dropped)

    def describe(self) -> Iterator[Metric]:
        return self._metrics(empty=True)

    def collect(self) -> Iterator[Metric]:
        return self._metrics(empty=False)

    def _metrics(self, *, empty: bool) -> Iterator[Metric]:
        frames, drops = Counter(self._closed_frames), Counter(self._closed_drops)
        for relay in self._relays.values():
            frames.update(received=relay.received, forwarded=relay.forwarded, skipped=relay.skipped)
            drops.update(relay.dropped)
        helps = {
            "received": "Relay frames accepted from senders",
            "forwarded": "Relay frames sent to receivers",
            "skipped": "Relay frames not sent to a receiver that did not keep up",
        }
        for kind, text in helps.items():
            family = CounterMetricFamily(f"veil_relay_frames_{kind}", text)
            if not empty:
                family.add_metric([], frames[kind])
            yield family
        dropped = CounterMetricFamily(
            "veil_relay_frames_dropped", "Relay frames refused from senders", labels=["reason"]
        )
        connections = GaugeMetricFamily(
            "veil_conference_connections", "Open board and media connections", labels=["channel"]
        )
        opened = CounterMetricFamily(
            "veil_conference_connections_opened", "Connections admitted", labels=["channel"]
        )
        devices = GaugeMetricFamily(
            "veil_conference_connected_devices", "Devices with a connection to this replica"
        )
        rooms = GaugeMetricFamily(
            "veil_conference_rooms", "Rooms with a connection to this replica"
        )
        if not empty:
            for reason in sorted(set(DROP_REASONS) | set(drops)):
                dropped.add_metric([reason], drops[reason])
            for channel in CHANNELS:
                connections.add_metric([channel], self._connections[channel])
                opened.add_metric([channel], self._opened[channel])
            devices.add_metric([], len(self._devices))
            rooms.add_metric([], len(self._rooms))
        yield from (dropped, connections, opened, devices, rooms)
