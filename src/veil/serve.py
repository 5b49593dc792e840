"""``veil serve``: the services for real use.

All three in one process by default (the embedded deployment: SQLite files in the
data directory, in-memory fan-out, loopback), or one of them alone
(``--keyserver``, ``--conference``, ``--idp``) configured by flags and ``VEIL_*``
variables, with uvicorn worker processes. Configuration errors are reported before
anything starts.
"""

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from veil.idp import DevIdentityProvider
from veil.idp import create_app as create_idp
from veil.keyserver.settings import load_or_create_secret
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.stack import run_stack

DEFAULT_PORTS = {"keyserver": 8470, "conference": 8471, "idp": 8472}


_NAMES = {"keyserver": "key service", "conference": "conference service", "idp": "dev IdP"}


class ConfigurationError(ValueError):
    """A bad ``veil serve`` configuration, said in words the operator can act on."""


@dataclass(frozen=True)
class ServeOptions:
    role: str  # "all", "keyserver", "conference" or "idp"
    host: str
    port: int | None
    data_dir: Path
    database_url: str | None
    fanout_url: str | None
    jwks_url: str | None
    keyserver_url: str | None
    workers: int
    transform_workers: int | None

    def check(self) -> None:
        if self.workers < 1:
            raise ConfigurationError("--workers must be at least 1")
        if self.transform_workers is not None and self.transform_workers < 0:
            raise ConfigurationError("--transform-workers must not be negative")
        if self.port is not None and not 0 <= self.port < 65536:
            raise ConfigurationError("--port must lie in 0..65535 (0: any free ports)")
        if self.database_url and urlsplit(self.database_url).scheme.split("+")[0] not in (
            "sqlite",
            "postgresql",
        ):
            raise ConfigurationError("--database-url must be sqlite:///... or postgresql://...")
        if self.fanout_url and urlsplit(self.fanout_url).scheme not in ("redis", "rediss", "nats"):
            raise ConfigurationError("--fanout-url must be redis://, rediss:// or nats://")
        if self.role == "all":
            if self.workers != 1:
                raise ConfigurationError(
                    "all services in one process run one worker; serve them one by one "
                    "(--keyserver, --conference) to use --workers"
                )
            return
        if self.fanout_url and self.role != "conference":
            raise ConfigurationError("--fanout-url is for the conference service")
        if self.role == "idp" and self.workers != 1:
            raise ConfigurationError("the dev IdP holds its key in memory: it runs one worker")
        audiences = (
            os.environ.get("VEIL_KEYSERVER_AUDIENCE", KEYSERVER_AUDIENCE),
            os.environ.get("VEIL_CONFERENCE_AUDIENCE", CONFERENCE_AUDIENCE),
        )
        if self.role != "idp" and audiences[0] == audiences[1]:
            raise ConfigurationError(
                "VEIL_KEYSERVER_AUDIENCE and VEIL_CONFERENCE_AUDIENCE must differ: a service "
                "that could replay users' tokens at the other could open split-trust escrows"
            )
        needs_jwks = self.role in ("keyserver", "conference")
        if needs_jwks and not (self.jwks_url or os.environ.get("VEIL_JWKS")):
            raise ConfigurationError(
                f"the {_NAMES[self.role]} verifies JWTs: pass --jwks-url (your IdP's JWKS, e.g. "
                "http://127.0.0.1:8472/.well-known/jwks.json) or set VEIL_JWKS"
            )
        if self.role == "conference" and not (
            self.keyserver_url or os.environ.get("VEIL_KEYSERVER_URL")
        ):
            raise ConfigurationError(
                "the conference service checks devices at the key service: pass "
                "--keyserver-url or set VEIL_KEYSERVER_URL"
            )


def serve(options: ServeOptions) -> None:
    options.check()
    if options.role == "all":
        asyncio.run(_serve_all(options))
    elif options.role == "idp":
        provider = DevIdentityProvider()
        port = DEFAULT_PORTS["idp"] if options.port is None else options.port
        print(f"veil dev IdP (not for production) on http://{options.host}:{port}", flush=True)
        uvicorn.run(create_idp(provider), host=options.host, port=port, log_level="info")
    else:
        _serve_one(options)


def _serve_one(options: ServeOptions) -> None:
    """One service with uvicorn workers; settings travel in ``VEIL_*`` variables so each
    worker process builds the same app."""
    env = {
        "VEIL_DATA_DIR": str(options.data_dir),
        "VEIL_DATABASE_URL": options.database_url,
        "VEIL_JWKS_URL": options.jwks_url,
        "VEIL_KEYSERVER_URL": options.keyserver_url,
        "VEIL_FANOUT_URL": options.fanout_url,
        "VEIL_TRANSFORM_WORKERS": None
        if options.transform_workers is None
        else str(options.transform_workers),
    }
    os.environ.update({k: v for k, v in env.items() if v is not None})
    if options.role == "keyserver" and "VEIL_SERVICE_SECRET" not in os.environ:
        # Create the shared secret once, before the workers start, so they all read it.
        load_or_create_secret(options.data_dir / "keyserver.secret")
    factory = f"veil.{options.role}.app:create_app_from_env"
    port = DEFAULT_PORTS[options.role] if options.port is None else options.port
    print(f"veil {options.role} on http://{options.host}:{port}", flush=True)
    uvicorn.run(
        factory, factory=True, host=options.host, port=port, workers=options.workers,
        log_level="info",
    )  # fmt: skip


async def _serve_all(options: ServeOptions) -> None:
    idp = DevIdentityProvider()
    base = DEFAULT_PORTS["keyserver"] if options.port is None else options.port
    # idp, key service, conference; port 0 lets the system pick three free ports
    ports = (0, 0, 0) if base == 0 else (base + 2, base, base + 1)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(options.data_dir / "keyserver.secret")
    async with run_stack(
        options.data_dir,
        idp=idp,
        host=options.host,
        ports=ports,
        database_url=options.database_url,
        fanout_url=options.fanout_url,
        transform_workers=options.transform_workers
        if options.transform_workers is not None
        else max(1, (os.cpu_count() or 2) - 1),
        service_secret=secret,
        log_level="info",
    ) as endpoints:
        print(json.dumps(endpoints.__dict__), flush=True)
        await asyncio.Event().wait()
