"""Key service settings: one frozen value, built from the environment or by hand."""

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.web.env import Secret, Variables
from veil.web.jwks import JwksCachePolicy
from veil.web.origins import parse_origins
from veil.web.tokens import check_token_policy


@dataclass(frozen=True)
class KeyServerSettings:
    """Everything the key service needs.

    ``service_secret`` is the 32-byte root of the service's own secrets (the key that
    seals users' augmentation secrets at rest, and the seed of the Ed25519 key that
    signs transformed ciphertexts). Replicas of one deployment share it.
    """

    database_url: str
    service_secret: bytes = field(repr=False)
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
    algorithms: tuple[str, ...] = ("EdDSA", "ES256", "RS256")
    max_body_bytes: int = 256 * 1024
    clock_skew_seconds: int = 60
    fresh_token_seconds: int = 120
    transform_workers: int = 0
    cors_origins: tuple[str, ...] = ()
    """Web origins whose pages may call the service from a browser (``veil.web.origins``):
    CORS, and the ``Origin`` of WebSockets. Clients that are not browsers need none."""
    """Processes for transforms; 0 runs them in the request's worker thread."""
    prepared_transforms: int = 20_000
    """Transforms prepared ahead of the next rekey that a process holds at most (about
    1.3 kB each; ``veil.keyserver.precompute``): two for every device of a 10,000-member
    meeting. 0 prepares none; transforms then cost what they cost without a pool."""
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.audience == CONFERENCE_AUDIENCE:
            raise ValueError(
                "audience: the key service must not take the conference service's tokens "
                "(it could replay them to collect both escrow shares)"
            )
        if len(self.service_secret) != 32:
            raise ValueError("service_secret must be 32 bytes")
        check_token_policy(self)
        object.__setattr__(self, "cors_origins", parse_origins(self.cors_origins))
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.transform_workers < 0:
            raise ValueError("transform_workers must not be negative")
        if self.prepared_transforms < 0:
            raise ValueError("prepared_transforms must not be negative")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "KeyServerSettings":
        """Read ``VEIL_*`` variables (``KeyServerVariables``); ``overrides`` win. Unset
        values get embedded defaults."""
        variables = KeyServerVariables.read(os.environ if env is None else env)
        values = variables.settings(cls, overrides, "keyserver.sqlite3")
        if "service_secret" not in values:  # neither set nor given
            values["service_secret"] = load_or_create_secret(
                variables.data_dir / "keyserver.secret"
            )
        return cls(**values)


class KeyServerVariables(Variables):
    """The key service's ``VEIL_*`` variables, beside ``Variables``' (shared)."""

    audience: str = Field(KEYSERVER_AUDIENCE, alias="VEIL_KEYSERVER_AUDIENCE")
    service_secret: Secret | None = Field(None, repr=False)
    """Else ``keyserver.secret`` in ``VEIL_DATA_DIR``, created on first use."""
    # pymcl holds the GIL: transforms go to their own processes by default, so the
    # event loop never waits on a pairing and the crypto uses the other cores.
    transform_workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1))
    prepared_transforms: int | None = None


def load_or_create_secret(path: Path) -> bytes:
    """Read a 32-byte secret file, creating it (mode 0600) on first use."""
    if path.exists():
        data = path.read_bytes()
        if len(data) != 32:
            raise ValueError(f"{path} must hold exactly 32 bytes")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return data
