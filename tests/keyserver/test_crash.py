"""A key service process killed with SIGKILL mid-burst loses no acknowledged write and
leaves nothing half-written (real uvicorn on loopback, real database)."""

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from veil.bench.keyserver import free_port, start_server
from veil.crypto.keys import PrivateKey
from veil.idp import DevIdentityProvider
from veil.keyserver.maintenance import verify_audit
from veil.keyserver.models import AuditEntry, User
from veil.protocol import b64decode, b64encode

ESCROW = b"\x01\x20" + (600_000).to_bytes(4, "big") + bytes(16 + 12 + 48)


@pytest.fixture
def server_env(database_url: str) -> Iterator[tuple[dict[str, str], DevIdentityProvider]]:
    idp = DevIdentityProvider()
    env = {
        **os.environ,
        "VEIL_DATABASE_URL": database_url,
        "VEIL_SERVICE_SECRET": b64encode(secrets.token_bytes(32)),
        "VEIL_JWKS": json.dumps(idp.jwks()),
        "VEIL_JWT_ISSUER": idp.issuer,
        "VEIL_KEYSERVER_AUDIENCE": idp.audience,
    }
    yield env, idp


def test_sigkill_during_a_burst_of_writes(server_env, database_url) -> None:  # type: ignore[no-untyped-def]
    env, idp = server_env
    port = free_port()
    process = start_server(env, port)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    public_key = b64encode(bytes(PrivateKey.generate().public_key))

    def writer(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                user = f"u{worker}-{i}"
                try:
                    response = client.post(
                        "/v1/users",
                        headers={"Authorization": f"Bearer {idp.issue(user)}"},
                        json={"public_key": public_key, "escrow": b64encode(ESCROW)},
                    )
                except httpx.TransportError:
                    return  # the server is gone; this write was never acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(user)

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(writer, w) for w in range(6)]
        deadline = time.monotonic() + 60
        while len(acknowledged) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert acknowledged, "no write was acknowledged before the kill"
        process.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
        process.wait(timeout=10)
        stop.set()
        for future in futures:
            future.result()

    # Restart on the same database: every acknowledged write is there, whole.
    process = start_server(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for user in acknowledged:
                response = client.get(
                    "/v1/users/me/escrow", headers={"Authorization": f"Bearer {idp.issue(user)}"}
                )
                assert response.status_code == 200, (user, response.text)
                assert b64decode(response.json()["escrow"]) == ESCROW
    finally:
        process.kill()
        process.wait(timeout=10)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        users = connection.execute(select(func.count()).select_from(User)).scalar_one()
        created = connection.execute(
            select(func.count()).where(AuditEntry.action == "user.create")
        ).scalar_one()
    engine.dispose()
    assert users >= len(acknowledged)
    assert users == created  # no user without its audit entry, and no entry without its user
    assert verify_audit(database_url).ok
