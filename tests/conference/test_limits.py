"""What one connection may send: the token bucket, and the relay's limits as settings
(defaults, ``VEIL_RELAY_*`` variables, refusals of values that cannot work)."""

import json

import pytest

from veil.conference import ConferenceSettings
from veil.conference.bucket import TokenBucket
from veil.idp import DevIdentityProvider

JWKS = json.dumps(DevIdentityProvider().jwks())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now += 3600  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_refused_take_costs_nothing() -> None:
    """A flood does not dig the bucket into debt: once it stops, the rate is there."""
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=10, clock=clock)
    assert bucket.take(10)
    for _ in range(1000):
        assert not bucket.take()
    clock.now += 1
    assert bucket.take()
    assert not bucket.take(2)  # more than it holds: refused whole
    clock.now += 2
    assert bucket.take(2)


@pytest.mark.parametrize("rate, burst", [(0, 1), (1, 0), (-1, 5)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def _settings(**env: str) -> ConferenceSettings:
    return ConferenceSettings.from_env({"VEIL_JWKS": JWKS, **env})


def test_the_relay_limits_default_to_a_few_streams_and_read_their_variables() -> None:
    settings = _settings()
    assert (settings.relay_frames_per_second, settings.relay_frame_burst) == (500, 1000)
    assert (settings.relay_bytes_per_second, settings.relay_byte_burst) == (4e6, 8e6)
    settings = _settings(
        VEIL_RELAY_FRAMES_PER_SECOND="60",
        VEIL_RELAY_FRAME_BURST="120",
        VEIL_RELAY_BYTES_PER_SECOND="1000000",
        VEIL_RELAY_BYTE_BURST="2000000",
    )
    assert settings.relay_frames_per_second == 60 and settings.relay_frame_burst == 120
    assert settings.relay_bytes_per_second == 1e6 and settings.relay_byte_burst == 2e6


@pytest.mark.parametrize(
    "env, message",
    [
        ({"VEIL_RELAY_FRAME_BURST": "lots"}, "VEIL_RELAY_FRAME_BURST must be an integer"),
        ({"VEIL_RELAY_FRAMES_PER_SECOND": "0"}, "relay_frames_per_second must be positive"),
        ({"VEIL_RELAY_BYTES_PER_SECOND": "-5"}, "relay_bytes_per_second must be positive"),
        # The largest frame allowed must fit in the byte bucket, or it never passes.
        ({"VEIL_RELAY_BYTE_BURST": "1000"}, "relay_byte_burst must be at least max_frame_bytes"),
    ],
)
def test_relay_limits_that_cannot_work_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**env)
