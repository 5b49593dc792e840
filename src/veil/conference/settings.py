"""Conference service settings: one frozen value, built from the environment or by hand."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field

from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.web.env import Unset, Variables
from veil.web.jwks import JwksCachePolicy
from veil.web.origins import parse_origins
from veil.web.tokens import check_token_policy


@dataclass(frozen=True)
class ConferenceSettings:
    """Everything the conference service needs.

    ``keyserver_url`` is where device records are looked up (a post is accepted only
    if the key service says its device is active and its signature verifies).
    ``fanout_url`` is ``None`` for in-memory fan-out (one process), or ``redis://...``
    or ``nats://...`` so several replicas serve one room together.
    """

    database_url: str
    keyserver_url: str
    audience: str
    issuer: str | None = None
    """What tokens carry in ``iss``; with ``issuer_url``, the one discovery names."""
    issuer_url: str | None = None
    """The IdP's issuer URL: its keys are found through OIDC discovery
    (``<issuer_url>/.well-known/openid-configuration``). Or give ``jwks_url`` or ``jwks``."""
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    jwks_cache: JwksCachePolicy = field(default_factory=JwksCachePolicy)
    """How keys fetched from the IdP are cached and refreshed (``veil.web.jwks``)."""
    user_id_claim: str = "sub"
    """The claim that names the user; its value is mapped to a user id by
    ``veil.protocol.ids.user_id_for`` (``auth0|123`` -> ``auth0~7C123``)."""
    fanout_url: str | None = None
    algorithms: tuple[str, ...] = ("EdDSA", "ES256", "RS256")
    clock_skew_seconds: int = 60
    fresh_token_seconds: int = 120
    max_post_bytes: int = 64 * 1024
    max_frame_bytes: int = 256 * 1024
    relay_queue_frames: int = 256
    """Frames waiting for one receiver; past this its frames are skipped, not queued."""
    relay_frames_per_second: float = 500.0
    relay_frame_burst: int = 1000
    relay_bytes_per_second: float = 4_000_000.0
    relay_byte_burst: int = 8_000_000
    """What one media connection may send (token buckets): ``relay_frame_burst`` frames
    and ``relay_byte_burst`` bytes at once, then these rates. The defaults carry a few
    streams of audio (50 frames/s) and video (30 frames/s) with room to spare; frames
    over either are dropped, so a member cannot flood the others through the relay."""
    board_queue_posts: int = 4096
    """Posts waiting for one subscriber; past this it is disconnected and resumes."""
    post_rate_per_second: float = 20.0
    post_burst: int = 100
    """Posts one connection may make: ``post_burst`` at once, then this many a second."""
    device_cache_seconds: float = 5.0
    device_recheck_seconds: float = 30.0
    """How often an open connection's device is looked up again: a revoked device's
    board and media connections are closed within this time."""
    hello_timeout_seconds: float = 10.0
    cors_origins: tuple[str, ...] = ()
    """Web origins whose pages may call the service from a browser (``veil.web.origins``):
    CORS, and the ``Origin`` of WebSockets. Clients that are not browsers need none."""
    web_dir: Path | None = None
    """A Veil checkout's ``web/``, built, whose example page and SDK the service serves at
    ``/app/`` (``veil.conference.webapp``; the all-in-one ``veil serve`` sets it);
    ``None``: no ``/app/``."""
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.audience == KEYSERVER_AUDIENCE:
            raise ValueError(
                "audience: the conference service must not take the key service's tokens "
                "(it could replay them to collect both escrow shares)"
            )
        check_token_policy(self)
        object.__setattr__(self, "cors_origins", parse_origins(self.cors_origins))
        if urlsplit(self.keyserver_url).scheme not in ("http", "https"):
            raise ValueError("keyserver_url must be an http(s) URL")
        if self.fanout_url is not None and urlsplit(self.fanout_url).scheme not in (
            "redis",
            "rediss",
            "nats",
        ):
            raise ValueError("fanout_url must be redis://, rediss:// or nats:// (or unset)")
        if self.device_recheck_seconds <= 0:
            raise ValueError("device_recheck_seconds must be positive")
        for name in (
            "relay_queue_frames", "board_queue_posts", "max_post_bytes", "max_frame_bytes",
            "relay_frames_per_second", "relay_frame_burst", "relay_bytes_per_second",
        ):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.relay_byte_burst < self.max_frame_bytes:
            raise ValueError(
                "relay_byte_burst must be at least max_frame_bytes (or the largest frames "
                "could never pass)"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "ConferenceSettings":
        """Read ``VEIL_*`` variables (``ConferenceVariables``); ``overrides`` win."""
        variables = ConferenceVariables.read(os.environ if env is None else env)
        if variables.conference_database_url is not None:  # read before VEIL_DATABASE_URL
            overrides = {"database_url": variables.conference_database_url, **overrides}
        return cls(**variables.settings(cls, overrides, "conference.sqlite3"))


class ConferenceVariables(Variables):
    """The conference service's ``VEIL_*`` variables, beside ``Variables``' (shared)."""

    conference_database_url: Annotated[str | None, Unset] = None
    keyserver_url: str = "http://127.0.0.1:8470"
    audience: str = Field(CONFERENCE_AUDIENCE, alias="VEIL_CONFERENCE_AUDIENCE")
    fanout_url: Annotated[str | None, Unset] = None
    relay_frames_per_second: float | None = None
    relay_frame_burst: int | None = None
    relay_bytes_per_second: float | None = None
    relay_byte_burst: int | None = None
