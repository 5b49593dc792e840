"""``veil serve``: the services for real use.

All three in one process by default (the embedded deployment: SQLite files in the
data directory, in-memory fan-out, loopback), or one of them alone
(``--keyserver``, ``--conference``, ``--idp``) configured by flags and ``VEIL_*``
variables, with uvicorn worker processes. Configuration errors are reported before
anything starts.
"""

import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from veil.conference.settings import ConferenceSettings
from veil.datadir import make_private
from veil.idp import DevIdentityProvider
from veil.idp import create_app as create_idp
from veil.keyserver.settings import KeyServerSettings, load_or_create_secret
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.stack import SHUTDOWN_SECONDS, run_stack
from veil.web.logs import log_level, logging_config, uvicorn_level, uvicorn_options
from veil.web.origins import parse_origins
from veil.webdir import default_web_dir

DEFAULT_PORTS = {"keyserver": 8470, "conference": 8471, "idp": 8472}


_NAMES = {
    "keyserver": "the key service",
    "conference": "the conference service",
    "idp": "the dev IdP",
    "all": "all services in one process",
}
_TOKEN_FLAGS = ("issuer_url", "jwks_url", "user_id_claim")
"""How a service alone finds its IdP: ``--jwt-issuer-url`` (OIDC discovery) or
``--jwks-url``, and ``--jwt-user-id-claim``."""
_FLAG_NAMES = {"issuer_url": "--jwt-issuer-url", "user_id_claim": "--jwt-user-id-claim"}
_KEY_SOURCES = ("VEIL_JWT_ISSUER_URL", "VEIL_JWKS_URL", "VEIL_JWKS")
"""The variables that say where a service alone finds its IdP's keys (exactly one)."""
_ROLE_FLAGS = {
    "all": ("data_dir", "database_url", "fanout_url", "transform_workers"),
    "idp": (),
    "keyserver": ("data_dir", "database_url", "transform_workers", *_TOKEN_FLAGS),
    "conference": ("data_dir", "database_url", "fanout_url", "keyserver_url", *_TOKEN_FLAGS),
}
"""Which of the optional flags (below) each role reads."""
_OPTIONAL_FLAGS = (
    "data_dir", "database_url", "fanout_url", "keyserver_url", "transform_workers", *_TOKEN_FLAGS,
)  # fmt: skip


class ConfigurationError(ValueError):
    """A bad ``veil serve`` configuration, said in words the operator can act on."""


@dataclass(frozen=True)
class ServeOptions:
    role: str  # "all", "keyserver", "conference" or "idp"
    host: str
    port: int | None
    data_dir: Path | None  # the flag; ``directory`` is where files go
    database_url: str | None
    fanout_url: str | None
    jwks_url: str | None
    keyserver_url: str | None
    workers: int
    transform_workers: int | None
    issuer_url: str | None = None
    user_id_claim: str | None = None

    def check(self) -> None:
        try:
            log_level()  # VEIL_LOG_LEVEL, read by every role
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        if self.workers < 1:
            raise ConfigurationError("--workers must be at least 1")
        if self.transform_workers is not None and self.transform_workers < 0:
            raise ConfigurationError("--transform-workers must not be negative")
        if self.port is not None and not 0 <= self.port < 65536:
            raise ConfigurationError("--port must lie in 0..65535 (0: any free ports)")
        if self.database_url:
            _check_database_url(self.database_url, "--database-url")
        if self.fanout_url and urlsplit(self.fanout_url).scheme not in ("redis", "rediss", "nats"):
            raise ConfigurationError("--fanout-url must be redis://, rediss:// or nats://")
        self._check_flags_apply()
        if self.role in ("all", "idp") and not _is_loopback(self.host):
            raise ConfigurationError(
                "the dev IdP signs a token for any user who asks, so it listens on loopback "
                "only; to serve other machines, run --keyserver and --conference with your "
                "own IdP's --jwt-issuer-url"
            )
        if self.role == "all":
            if ":" in self.host:
                raise ConfigurationError("all services in one process listen on IPv4 loopback")
            if self.port is not None and self.port > 65535 - 2:
                raise ConfigurationError("all services in one process take --port to --port + 2")
            if self.workers != 1:
                raise ConfigurationError(
                    "all services in one process run one worker; serve them one by one "
                    "(--keyserver, --conference) to use --workers"
                )
            extra_origins()
            return
        if self.role == "idp":
            if self.workers != 1:
                raise ConfigurationError("the dev IdP holds its key in memory: it runs one worker")
            return
        audiences = (
            os.environ.get("VEIL_KEYSERVER_AUDIENCE", KEYSERVER_AUDIENCE),
            os.environ.get("VEIL_CONFERENCE_AUDIENCE", CONFERENCE_AUDIENCE),
        )
        if self.role != "idp" and audiences[0] == audiences[1]:
            raise ConfigurationError(
                "VEIL_KEYSERVER_AUDIENCE and VEIL_CONFERENCE_AUDIENCE must differ: a service "
                "that could replay users' tokens at the other could open split-trust escrows"
            )
        if self.issuer_url and self.jwks_url:
            raise ConfigurationError("pass one of --jwt-issuer-url and --jwks-url, not both")
        env = self.environment()
        key_sources = sum(name in env for name in _KEY_SOURCES)
        if key_sources != 1:
            raise ConfigurationError(
                f"{_NAMES[self.role]} verifies JWTs: pass --jwt-issuer-url (your IdP's "
                "issuer, whose /.well-known/openid-configuration names its keys; "
                "http://127.0.0.1:8472 for veil serve --idp) or --jwks-url, or set one of "
                + ", ".join(_KEY_SOURCES)
                + (" (only one)" if key_sources else "")
            )
        if self.role == "conference" and "VEIL_KEYSERVER_URL" not in env:
            raise ConfigurationError(
                "the conference service checks devices at the key service: pass "
                "--keyserver-url or set VEIL_KEYSERVER_URL"
            )
        try:  # what each worker will build from the same variables
            settings: KeyServerSettings | ConferenceSettings = (
                KeyServerSettings.from_env(env, service_secret=bytes(32))
                if self.role == "keyserver"
                else ConferenceSettings.from_env(env)
            )
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        _check_database_url(settings.database_url, "the database URL")

    def _check_flags_apply(self) -> None:
        """Refuse a flag the chosen role would ignore: the operator meant something."""
        for name in _OPTIONAL_FLAGS:
            if getattr(self, name) is not None and name not in _ROLE_FLAGS[self.role]:
                flag = _FLAG_NAMES.get(name) or "--" + name.replace("_", "-")
                raise ConfigurationError(f"{flag} has no effect on {_NAMES[self.role]}")

    @property
    def directory(self) -> Path:
        """``--data-dir``, else ``$VEIL_DATA_DIR``, else ``./veil-data``."""
        return self.data_dir or Path(os.environ.get("VEIL_DATA_DIR") or "./veil-data")

    def environment(self) -> dict[str, str]:
        """``os.environ`` with the flags' settings on top: what a service worker reads."""
        flags = {
            "VEIL_DATA_DIR": str(self.directory),
            "VEIL_DATABASE_URL": self.database_url,
            "VEIL_JWKS_URL": self.jwks_url,
            "VEIL_JWT_ISSUER_URL": self.issuer_url,
            "VEIL_JWT_USER_ID_CLAIM": self.user_id_claim,
            "VEIL_KEYSERVER_URL": self.keyserver_url,
            "VEIL_FANOUT_URL": self.fanout_url,
            "VEIL_TRANSFORM_WORKERS": None
            if self.transform_workers is None
            else str(self.transform_workers),
        }
        if self.role == "conference":  # which reads this variable first
            flags["VEIL_CONFERENCE_DATABASE_URL"] = self.database_url
        env = {**os.environ, **{k: v for k, v in flags.items() if v is not None}}
        if self.jwks_url:  # the flag wins over the variables' other key sources
            env.pop("VEIL_JWKS", None)
            env.pop("VEIL_JWT_ISSUER_URL", None)
        if self.issuer_url:  # and so does this one, whose discovery names the issuer too
            env.pop("VEIL_JWKS", None)
            env.pop("VEIL_JWKS_URL", None)
            env.pop("VEIL_JWT_ISSUER", None)
        return env


def extra_origins() -> tuple[str, ...]:
    """``VEIL_CORS_ORIGINS`` for all services in one process: web origins whose pages
    may call them, beside the conference service's own (where its page is)."""
    try:
        return parse_origins(os.environ.get("VEIL_CORS_ORIGINS"))
    except ValueError as error:
        raise ConfigurationError(f"VEIL_CORS_ORIGINS: {error}") from None


def _address(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}" if port else f"http://{host} (a free port: see below)"


def _check_database_url(url: str, name: str) -> None:
    parsed = urlsplit(url)
    backend = parsed.scheme.split("+")[0]
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(f"{name} must be sqlite:///... or postgresql://...")
    memory = parsed.path in ("", "/") or ":memory:" in parsed.path or "mode=memory" in url
    if backend == "sqlite" and memory:
        raise ConfigurationError(
            f"{name} names an in-memory SQLite database, which each connection would see "
            "empty: give a file (sqlite:///PATH)"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost may resolve anywhere
        return False


def serve(options: ServeOptions) -> None:
    options.check()
    if options.role == "all":
        asyncio.run(_serve_all(options))
    elif options.role == "idp":
        port = DEFAULT_PORTS["idp"] if options.port is None else options.port
        # Its issuer is its URL, as OIDC discovery requires (unknown for a free port).
        host = f"[{options.host}]" if ":" in options.host else options.host
        provider = (
            DevIdentityProvider(issuer=f"http://{host}:{port}") if port else DevIdentityProvider()
        )
        print(f"veil dev IdP (not for production) on {_address(options.host, port)}", flush=True)
        uvicorn.run(
            create_idp(provider), host=options.host, port=port, **uvicorn_options(),
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        )  # fmt: skip
    else:
        _serve_one(options)


def _serve_one(options: ServeOptions) -> None:
    """One service with uvicorn workers; settings travel in ``VEIL_*`` variables so each
    worker process builds the same app."""
    os.environ.update(options.environment())
    factory = f"veil.{options.role}.app:create_app_from_env"
    port = DEFAULT_PORTS[options.role] if options.port is None else options.port
    print(f"veil {options.role} on {_address(options.host, port)}", flush=True)
    if options.role == "keyserver" and "VEIL_SERVICE_SECRET" not in os.environ:
        # Created once, before the workers start, so they all read the same one.
        path = options.directory / "keyserver.secret"
        try:
            load_or_create_secret(path)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        print(
            f"service secret: {path} (replicas on other machines must share it: set "
            "VEIL_SERVICE_SECRET)",
            flush=True,
        )
    uvicorn.run(
        factory, factory=True, host=options.host, port=port, workers=options.workers,
        **uvicorn_options(), timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )  # fmt: skip


async def _serve_all(options: ServeOptions) -> None:
    idp = DevIdentityProvider()
    base = DEFAULT_PORTS["keyserver"] if options.port is None else options.port
    # idp, key service, conference; port 0 lets the system pick three free ports
    ports = (0, 0, 0) if base == 0 else (base + 2, base, base + 1)
    # Both escrow shares' keepers live here: the directory is private (veil.datadir).
    for change in make_private(options.directory):
        print(f"veil serve: made private {change}", file=sys.stderr, flush=True)
    secret = load_or_create_secret(options.directory / "keyserver.secret")
    web_dir = default_web_dir()  # $VEIL_WEB_DIR, else this checkout's web/
    # Installed before start-up and whatever SIGINT's inherited disposition (a job
    # started in the background by a script ignores it). The first signal stops the
    # services, which give requests in flight SHUTDOWN_SECONDS; a second one, for a
    # thread stuck on a database lock say, exits at once.
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    async with run_stack(
        options.directory,
        idp=idp,
        discovery=True,
        host=options.host,
        ports=ports,
        database_url=options.database_url,
        fanout_url=options.fanout_url,
        transform_workers=options.transform_workers
        if options.transform_workers is not None
        else max(1, (os.cpu_count() or 2) - 1),
        service_secret=secret,
        log_level=uvicorn_level(log_level()),
        log_config=logging_config(log_level()),
        web_dir=web_dir,
        cors_origins=extra_origins(),
    ) as endpoints:
        print(json.dumps(endpoints.__dict__), flush=True)
        # A log record, not a bare line: what `veil serve` writes to stderr stays JSON.
        logging.getLogger("veil.serve").info("the web app: %s/app/", endpoints.conference_url)
        await stop.wait()
