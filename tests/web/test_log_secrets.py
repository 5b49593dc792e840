"""Logs never carry a secret, even at DEBUG; and the operating endpoints report a real
meeting.

``veil serve`` runs with ``VEIL_LOG_LEVEL=debug`` in a child process (its own logging
configuration, uvicorn, WebSockets) while two SDK devices register in split-trust mode
(escrow blob, a share from each service), encrypt and read a document (transforms), and
hold a meeting (board posts, relay frames, chat, the end). Every JWT, every request
signature and nonce, and every base64url value of 16 bytes or more that any request or
response carried (escrow blobs, shares, keys, ciphertexts, proofs) is collected on the
client side; none may appear in the services' output. Refused requests carry secrets
too: a replayed signed request, another service's token.
"""

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from veil.client import Device, Meeting, MemoryDeviceStore
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    DEVICE_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    MediaKind,
    b64decode,
)

from ..processes import process


@contextmanager
def veil_serve(tmp_path: Path, log: Path) -> Iterator[dict[str, str]]:
    args = ("--port", "0", "--data-dir", str(tmp_path / "data"), "--transform-workers", "0")
    with (
        log.open("w") as stderr,
        process("serve", *args, env={"VEIL_LOG_LEVEL": "debug"}, stderr=stderr) as child,
    ):
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())


class Recorder(httpx.AsyncBaseTransport):
    """Every request and response the SDK exchanges, over a real transport."""

    def __init__(self, seen: list[tuple[httpx.Request, bytes]]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        self._seen.append((request, body))
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, string) for every string in a JSON value."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, key)


def material(seen: list[tuple[httpx.Request, bytes]]) -> set[str]:
    """Signatures, nonces, tokens, and the base64url of every binary value of 16 bytes
    or more in the bodies (ids excepted: they are in paths, and logs name them)."""
    found: set[str] = set()
    paths = " ".join(request.url.path for request, _ in seen)
    for request, answer in seen:
        for header in (SIGNATURE_HEADER, NONCE_HEADER):
            if header in request.headers:
                found.add(request.headers[header])
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            found.add(authorization.removeprefix("Bearer "))
        for raw in (request.content, answer):
            try:
                document = json.loads(raw)
            except ValueError:
                continue
            for key, text in strings(document):
                if key.endswith("id") or text in paths:
                    continue
                try:
                    decoded = b64decode(text)
                except ValueError:
                    continue
                if len(decoded) >= 16:
                    found.add(text)
    return found


async def meeting(endpoints: dict[str, str], tokens: set[str]) -> dict[str, Any]:
    """A split-trust registration, a document, a meeting; some refused requests. Returns
    what was seen, and the conference service's /metrics during the meeting."""
    seen: list[tuple[httpx.Request, bytes]] = []
    suffix = secrets.token_hex(3)

    def source(user: str):  # type: ignore[no-untyped-def]
        async def issue(audience: str) -> str:
            async with httpx.AsyncClient() as http:
                body = {"sub": user, "audience": audience}
                response = await http.post(f"{endpoints['idp_url']}/token", json=body)
                token = str(response.json()["token"])
            tokens.add(token)
            return token

        return issue

    async def device(user: str) -> Device:
        return await Device.initialize(
            keyserver_url=endpoints["keyserver_url"],
            conference_url=endpoints["conference_url"],
            tokens=source(user),
            store=MemoryDeviceStore(secrets.token_bytes(32)),
            transport=Recorder(seen),
        )

    alice_id, bob_id = f"alice-{suffix}", f"bob-{suffix}"
    alice, bob = await device(alice_id), await device(bob_id)
    async with alice, bob, httpx.AsyncClient() as http:
        document = await alice.documents.encrypt(b"log test", users=[bob_id])
        assert await bob.documents.decrypt(document) == b"log test"
        hosted = await Meeting.start(alice, invitees=[bob_id])
        joined = await Meeting.join(bob, str(hosted.invitation))
        await hosted.send_frame(MediaKind.AUDIO, b"an encrypted audio frame")
        assert await asyncio.wait_for(joined.receive_frame(), 10) is not None
        await joined.send_chat("hello")
        while not hosted.chat:
            await asyncio.sleep(0.05)
        during = (await http.get(f"{endpoints['conference_url']}/metrics")).text

        # Refused requests: a signed request replayed as is, and a token of the other
        # service's audience.
        signed = next(r for r, _ in seen if DEVICE_HEADER in r.headers and r.method == "GET")
        replay = await http.get(str(signed.url), headers=dict(signed.headers))
        assert replay.status_code in (400, 401, 403)
        conference_token = await source(alice_id)(CONFERENCE_AUDIENCE)
        refused = await http.post(
            f"{endpoints['keyserver_url']}/v1/users/me/share",
            headers={"Authorization": f"Bearer {conference_token}"},
        )
        assert refused.status_code == 401
        for url in (endpoints["keyserver_url"], endpoints["conference_url"]):
            assert (await http.get(f"{url}/readyz")).status_code == 200

        await hosted.end()
        await asyncio.wait_for(joined.ended.wait(), 10)
        await joined.close()
        await hosted.close()
        after = {
            name: (await http.get(f"{endpoints[name]}/metrics")).text
            for name in ("keyserver_url", "conference_url")
        }
    return {"seen": seen, "during": during, "after": after}


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    line = f"{name}{{{wanted}}}" if labels else name
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    raise AssertionError(f"{line} is not in the exposition")


def test_no_secret_reaches_the_logs_at_debug(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    tokens: set[str] = set()
    with veil_serve(tmp_path, log) as endpoints:
        result = asyncio.run(meeting(endpoints, tokens))
    output = log.read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len(output.splitlines()), "every line is one JSON object"

    secrets_seen = material(result["seen"]) | tokens
    kinds = {request.url.path for request, _ in result["seen"]}
    assert any(path.endswith("/escrow") for path in kinds)  # split trust: blob and shares
    assert len(secrets_seen) > 50
    leaked = sorted(s for s in secrets_seen if s in output)
    assert not leaked, f"{len(leaked)} secret values in the logs, e.g. {leaked[0][:12]}..."
    # A token's signature (its last segment) may not appear on its own either.
    assert not [t for t in tokens if t.rsplit(".", 1)[1] in output]

    # The logs are there: access lines with request ids, debug lines included.
    access = [line for line in lines if line["logger"] == "veil.access"]
    assert {"debug", "info"} <= {line["level"] for line in access}
    assert all(re.fullmatch(r"[0-9a-f]{32}", line["request_id"]) for line in access)
    transform = [line for line in access if line.get("route") == "/v1/documents/{document_id}/key"]
    assert transform and transform[0]["service"] == "keyserver"
    # The conference service sends a media connection's request id on to the key
    # service with the membership check it makes for it.
    media = {
        line["request_id"]
        for line in access
        if line.get("route") == "/v1/rooms/{room_id}/media" and line["service"] == "conference"
    }
    membership = {
        line["request_id"]
        for line in access
        if line.get("route") == "/v1/groups/{group_id}/membership"
        and line["service"] == "keyserver"
    }
    assert media and media <= membership

    # The meeting is in the metrics.
    during, keys, conference = result["during"], *result["after"].values()
    assert sample(during, "veil_conference_connections", channel="board") >= 2
    assert sample(during, "veil_conference_connections", channel="media") >= 2
    assert sample(during, "veil_conference_connected_devices") >= 2
    assert sample(during, "veil_conference_rooms") >= 1
    assert sample(conference, "veil_conference_connections", channel="media") == 0
    assert sample(conference, "veil_board_posts_total", result="stored") >= 4
    assert sample(conference, "veil_relay_frames_received_total") >= 1
    assert sample(conference, "veil_relay_frames_forwarded_total") >= 1
    assert sample(keys, "veil_transforms_total", outcome="ok") >= 2
    assert sample(keys, "veil_transform_queue_depth") == 0
    assert (
        sample(keys, "veil_http_requests_total", method="GET", route="/readyz", status="200") == 1
    )
