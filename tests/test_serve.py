"""``veil serve``: configuration errors, all services in one process, and each service
in its own process (as a deployment runs them), driven by the real SDK."""

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from veil.client import Device, MemoryDeviceStore
from veil.conference import ConferenceSettings
from veil.keyserver import KeyServerSettings
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.protocol.board import Announce
from veil.serve import ServeOptions
from veil.stack import SHUTDOWN_SECONDS

from .processes import VEIL, free_port, process, wait_for


def veil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VEIL, *args], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keyserver"], "the key service verifies JWTs: pass --jwt-issuer-url"),
        (
            ["--keyserver", "--jwt-issuer-url", "http://127.0.0.1:1", "--jwks-url", "http://x/j"],
            "pass one of --jwt-issuer-url and --jwks-url, not both",
        ),
        (["--jwt-issuer-url", "http://127.0.0.1:1"], "--jwt-issuer-url has no effect on all"),
        (["--idp", "--jwt-user-id-claim", "email"], "--jwt-user-id-claim has no effect on the dev"),
        (["--keyserver", "--jwt-issuer-url", "ftp://127.0.0.1"], "issuer_url must be an http(s)"),
        (["--conference", "--jwks-url", "http://127.0.0.1:1/j"], "pass --keyserver-url"),
        (["--fanout-url", "ftp://example"], "--fanout-url must be redis://"),
        (["--database-url", "mysql://x/y"], "--database-url must be sqlite:///"),
        (["--workers", "2"], "all services in one process run one worker"),
        (["--idp", "--workers", "2"], "the dev IdP holds its key in memory"),
        (["--keyserver", "--fanout-url", "redis://127.0.0.1"], "--fanout-url has no effect on"),
        (["--port", "70000"], "--port must lie in 0..65535"),
        (["--host", "0.0.0.0"], "the dev IdP signs a token for any user who asks"),  # noqa: S104
        (["--idp", "--host", "idp.example"], "so it listens on loopback only"),
        (["--jwks-url", "http://127.0.0.1:1/j"], "--jwks-url has no effect on all services"),
        (["--idp", "--database-url", "sqlite:///x"], "--database-url has no effect on the dev"),
        (["--idp", "--data-dir", "x"], "--data-dir has no effect on the dev IdP"),
        (
            ["--conference", "--jwks-url", "http://127.0.0.1:1/j", "--transform-workers", "1"],
            "--transform-workers has no effect on the conference service",
        ),
        (["--database-url", "sqlite://"], "names an in-memory SQLite database"),
        (["--database-url", "sqlite+pysqlite://"], "names an in-memory SQLite database"),
        (["--database-url", "sqlite:///file::memory:?uri=true"], "names an in-memory SQLite"),
        (["--host", "::1"], "all services in one process listen on IPv4 loopback"),
        (["--port", "65534"], "take --port to --port + 2"),
        (["--keyserver", "--jwks-url", "notaurl"], "jwks_url must be an http(s) URL"),
    ],
)
def test_bad_configuration_is_refused_before_anything_starts(args: list[str], message: str) -> None:
    completed = veil("serve", *args)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr


JWKS_URL = "http://127.0.0.1:1/.well-known/jwks.json"
SECRET_TEXT = "not-a-secret-of-32-bytes-but-it-must-not-be-echoed"  # noqa: S105


@pytest.mark.parametrize(
    ("role", "env", "message"),
    [
        ("--conference", {"VEIL_JWKS_URL": JWKS_URL}, "pass --keyserver-url"),  # JWKS URL taken
        (
            "--keyserver",
            {"VEIL_JWKS_URL": JWKS_URL, "VEIL_SERVICE_SECRET": SECRET_TEXT},
            "VEIL_SERVICE_SECRET must be 32 random bytes",
        ),
        (
            "--keyserver",
            {"VEIL_JWKS_URL": JWKS_URL, "VEIL_TRANSFORM_WORKERS": "many"},
            "VEIL_TRANSFORM_WORKERS must be an integer",
        ),
        ("--keyserver", {"VEIL_JWKS": "{not json"}, "VEIL_JWKS must hold a JSON document"),
        ("--keyserver", {"VEIL_JWKS": "{}", "VEIL_JWKS_URL": JWKS_URL}, "(only one)"),
        (
            "--keyserver",
            {"VEIL_JWT_ISSUER_URL": "http://127.0.0.1:1", "VEIL_JWKS_URL": JWKS_URL},
            "or set one of VEIL_JWT_ISSUER_URL, VEIL_JWKS_URL, VEIL_JWKS (only one)",
        ),
        (
            "--conference",
            {
                "VEIL_JWT_ISSUER_URL": "http://127.0.0.1:1",
                "VEIL_JWT_ISSUER": "veil-dev-idp",
                "VEIL_KEYSERVER_URL": "http://127.0.0.1:1",
            },
            "issuer (VEIL_JWT_ISSUER): leave it unset with issuer_url (VEIL_JWT_ISSUER_URL)",
        ),
        (
            "--conference",
            {"VEIL_JWKS_URL": JWKS_URL, "VEIL_KEYSERVER_URL": "ftp://127.0.0.1"},
            "keyserver_url must be an http(s) URL",
        ),
        ("--keyserver", {"VEIL_JWKS": "{}"}, "jwks: not a JWKS with a usable key"),
        ("--keyserver", {"VEIL_JWKS": '{"keys": [{"kty": "oct"}]}'}, "jwks: not a JWKS with"),
        ("--keyserver", {"VEIL_JWKS_URL": ""}, "jwks_url must be an http(s) URL"),
        (
            "--keyserver",
            {"VEIL_JWKS_URL": JWKS_URL, "VEIL_DATABASE_URL": "mysql://127.0.0.1/veil"},
            "the database URL must be sqlite:///... or postgresql://",
        ),
        (
            "--keyserver",
            {"VEIL_JWKS_URL": JWKS_URL, "VEIL_DATABASE_URL": "sqlite://"},
            "names an in-memory SQLite database",
        ),
        (
            "--conference",
            {
                "VEIL_JWKS_URL": JWKS_URL,
                "VEIL_KEYSERVER_URL": "http://127.0.0.1:1",
                "VEIL_JWKS_TIMEOUT_SECONDS": "soon",
            },
            "VEIL_JWKS_TIMEOUT_SECONDS must be a number",
        ),
    ],
)
def test_bad_variables_are_refused_before_any_worker_starts(
    role: str, env: dict[str, str], message: str
) -> None:
    completed = veil("serve", role, env=env)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert SECRET_TEXT not in completed.stderr


def test_the_services_refuse_to_share_a_token_audience() -> None:
    # One audience for both would let either service replay users' tokens at the other
    # and collect both split-trust shares.
    completed = veil(
        "serve", "--conference", "--jwks-url", "http://127.0.0.1:1/j",
        "--keyserver-url", "http://127.0.0.1:1", env={"VEIL_CONFERENCE_AUDIENCE": "veil-keyserver"},
    )  # fmt: skip
    assert completed.returncode == 2
    assert "VEIL_KEYSERVER_AUDIENCE and VEIL_CONFERENCE_AUDIENCE must differ" in completed.stderr
    common: dict[str, Any] = {"issuer": "i", "jwks": {"keys": []}}
    with pytest.raises(ValueError, match="must not take the key service's tokens"):
        ConferenceSettings(
            database_url="sqlite://", keyserver_url="http://127.0.0.1:1",
            audience=KEYSERVER_AUDIENCE, **common,
        )  # fmt: skip
    with pytest.raises(ValueError, match="must not take the conference service's tokens"):
        KeyServerSettings(
            database_url="sqlite://", service_secret=bytes(32), audience=CONFERENCE_AUDIENCE,
            **common,
        )  # fmt: skip


def test_flags_win_over_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VEIL_CONFERENCE_DATABASE_URL", "sqlite:///from-variable.sqlite3")
    monkeypatch.setenv("VEIL_JWKS", json.dumps({"keys": []}))
    options = ServeOptions(
        role="conference", host="127.0.0.1", port=None, data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'from-flag.sqlite3'}", fanout_url=None,
        jwks_url=JWKS_URL, keyserver_url="http://127.0.0.1:1", workers=1, transform_workers=None,
    )  # fmt: skip
    options.check()
    settings = ConferenceSettings.from_env(options.environment())
    assert settings.database_url == options.database_url
    assert (settings.jwks_url, settings.jwks) == (JWKS_URL, None)


def test_the_issuer_url_flag_wins_over_other_key_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEIL_JWKS_URL", JWKS_URL)
    monkeypatch.setenv("VEIL_JWT_ISSUER", "veil-dev-idp")
    monkeypatch.setenv("VEIL_JWT_USER_ID_CLAIM", "sub")
    options = ServeOptions(
        role="keyserver", host="127.0.0.1", port=None, data_dir=tmp_path, database_url=None,
        fanout_url=None, jwks_url=None, keyserver_url=None, workers=1, transform_workers=None,
        issuer_url="https://sso.example", user_id_claim="email",
    )  # fmt: skip
    options.check()
    settings = KeyServerSettings.from_env(options.environment(), service_secret=bytes(32))
    assert (settings.issuer_url, settings.issuer, settings.jwks_url) == (
        "https://sso.example", None, None,
    )  # fmt: skip
    assert settings.user_id_claim == "email"


async def a_device_meets_the_services(
    idp_url: str, keyserver_url: str, conference_url: str
) -> None:
    async def token(audience: str) -> str:
        async with httpx.AsyncClient() as http:
            body = {"sub": "serve|user", "audience": audience}
            response = await http.post(f"{idp_url}/token", json=body)
            return str(response.json()["token"])

    device = await Device.initialize(
        keyserver_url=keyserver_url,
        conference_url=conference_url,
        tokens=token,
        store=MemoryDeviceStore(secrets.token_bytes(32)),
    )
    async with device:
        document = await device.documents.encrypt(b"served", users=[])
        assert await device.documents.decrypt(document) == b"served"
        board = device.board("serve-room")
        await board.connect()
        assert await board.post(Announce.KIND, bytes(Announce(1))) == 1
        assert device.user_id == "serve~7Cuser"  # the IdP's subject, mapped
        assert (await board.next(10)).user_id == "serve~7Cuser"
        await board.close()


@contextmanager
def serving_all(tmp_path: Path, **popen: Any) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    """``veil serve`` with every service in one process, and its endpoints."""
    args = ("serve", "--port", "0", "--data-dir", str(tmp_path), "--transform-workers", "0")
    with process(*args, **popen) as child:
        assert child.stdout is not None
        yield child, json.loads(child.stdout.readline())


def test_all_services_in_one_process(tmp_path: Path) -> None:
    with serving_all(tmp_path) as (child, endpoints):  # port 0: three free ports, printed
        ports = {url.rsplit(":", 1)[1] for url in endpoints.values()}
        assert len(ports) == 3 and "0" not in ports
        asyncio.run(a_device_meets_the_services(**endpoints))
    assert child.returncode == 0
    assert (tmp_path / "keyserver.secret").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keyserver.sqlite3").exists()
    assert (tmp_path / "conference.sqlite3").exists()


def test_all_in_one_allows_the_pages_of_veil_cors_origins(tmp_path: Path) -> None:
    """Beside its own page's origin, the origins a deployment lists; no other."""
    page, other = "http://127.0.0.1:9", "https://evil.example"
    with serving_all(tmp_path, env={"VEIL_CORS_ORIGINS": page}) as (_, endpoints):
        for origin, allowed in ((page, True), (endpoints["conference_url"], True), (other, False)):
            for url in endpoints.values():
                answer = httpx.get(f"{url}/healthz", headers={"origin": origin})
                assert (answer.headers.get("access-control-allow-origin") == origin) is allowed


def test_all_in_one_refuses_what_is_not_an_origin() -> None:
    completed = veil("serve", env={"VEIL_CORS_ORIGINS": "https://meet.example/app"})
    assert completed.returncode == 2, completed.stderr
    assert "VEIL_CORS_ORIGINS: 'https://meet.example/app' is not an origin" in completed.stderr


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in directory.iterdir()}


def test_the_all_in_one_data_directory_is_private(tmp_path: Path) -> None:
    """It holds both escrow shares' keepers (the two databases and the key service's
    secret): 0700, and every file in it 0600 (SQLite's -wal and -shm files too), even
    under a permissive umask; a directory an earlier version made 0755, with 0644
    files, is tightened at start."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "conference.sqlite3").touch(mode=0o644)  # as SQLite made it before
    (data / "conference.sqlite3").chmod(0o644)

    def permissive_umask() -> None:
        os.umask(0o022)

    with serving_all(data, preexec_fn=permissive_umask) as (_, endpoints):
        asyncio.run(a_device_meets_the_services(**endpoints))
        modes = _modes(data)
        assert data.stat().st_mode & 0o777 == 0o700
        assert {"keyserver.sqlite3-wal", "keyserver.sqlite3-shm"} <= set(modes), modes
        assert {"keyserver.sqlite3", "conference.sqlite3", "keyserver.secret"} <= set(modes)
        assert set(modes.values()) == {0o600}, {n: oct(m) for n, m in modes.items()}
    assert data.stat().st_mode & 0o777 == 0o700
    assert set(_modes(data).values()) == {0o600}


@pytest.mark.parametrize(
    ("signals", "code", "seconds"),
    [
        ([signal.SIGTERM], 0, SHUTDOWN_SECONDS + 5),  # waits for it, then closes it
        ([signal.SIGINT, signal.SIGINT], 128 + signal.SIGINT, 3),  # a second signal: now
    ],
)
def test_a_stalled_upload_delays_stopping_by_at_most_the_shutdown_grace(
    tmp_path: Path, signals: list[signal.Signals], code: int, seconds: float
) -> None:
    with serving_all(tmp_path) as (child, endpoints):
        host, port = endpoints["keyserver_url"].removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as stalled:
            stalled.sendall(
                b"POST /v1/users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b'content-length: 100\r\n\r\n{"public'
            )
            time.sleep(0.5)  # the request is in the app, waiting for the rest of its body
            started = time.monotonic()
            for signum in signals:
                child.send_signal(signum)
                time.sleep(0.3)
            assert child.wait(seconds + 10) == code
        assert time.monotonic() - started < seconds


def test_sigint_stops_the_services_even_when_inherited_as_ignored(tmp_path: Path) -> None:
    """A job a script starts in the background ignores SIGINT; ``veil serve`` once
    re-raised it under that disposition after stopping its servers, and hung."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with serving_all(tmp_path, preexec_fn=ignore_sigint) as (child, _):
        child.send_signal(signal.SIGINT)
        assert child.wait(SHUTDOWN_SECONDS + 10) == 0


def test_each_service_in_its_own_process(tmp_path: Path) -> None:
    idp_port, ks_port, conf_port = free_port(), free_port(), free_port()
    idp_url, ks_url, conf_url = (f"http://127.0.0.1:{p}" for p in (idp_port, ks_port, conf_port))
    jwks = f"{idp_url}/.well-known/jwks.json"
    with process("serve", "--idp", "--port", str(idp_port)) as idp:
        wait_for(jwks, idp)
        # The key service is configured by variables alone (its IdP's JWKS and issuer),
        # the conference by flags (its IdP's issuer URL: OIDC discovery).
        with process(
            "serve", "--keyserver", "--port", str(ks_port),
            env={
                "VEIL_JWKS_URL": jwks, "VEIL_JWT_ISSUER": idp_url,
                "VEIL_DATA_DIR": str(tmp_path / "keyserver"),
                "VEIL_TRANSFORM_WORKERS": "0",
            },
        ) as keyserver:  # fmt: skip
            wait_for(f"{ks_url}/v1/service", keyserver)
            assert (tmp_path / "keyserver" / "keyserver.secret").exists()
            assert (tmp_path / "keyserver" / "keyserver.sqlite3").exists()
            with process(
                "serve", "--conference", "--port", str(conf_port), "--jwt-issuer-url", idp_url,
                "--keyserver-url", ks_url, "--data-dir", str(tmp_path),
            ) as conference:  # fmt: skip
                wait_for(f"{conf_url}/openapi.json", conference)
                asyncio.run(a_device_meets_the_services(idp_url, ks_url, conf_url))


def test_the_readmes_sdk_example_runs_as_written_against_veil_serve(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "examples" / "meeting.py"
    with serving_all(tmp_path) as (_, endpoints):
        urls = [endpoints[k] for k in ("keyserver_url", "conference_url", "idp_url")]
        run = subprocess.run(
            [sys.executable, str(example), *urls], capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 0, run.stderr
    assert "bob decrypted b'an encrypted audio frame'" in run.stdout
    assert "alice: chat from bob-" in run.stdout and "meeting ended" in run.stdout
