"""The browser SDK's client (web/src/client) against a real ``veil serve`` on loopback:
the Node tests in web/test/integration run with the services' URLs, and a Python
device (this SDK, in this process) exchanges documents and safety numbers with a Node
device of another user. Skipped, saying why, where Node, npm or the browser SDK's
packages (``npm ci`` in web/) are missing."""

import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from veil.client import Device, MemoryDeviceStore
from veil.client.documents import EncryptedDocument
from veil.crypto.errors import DecryptionError
from veil.protocol.board import Announce

from .node import WEB, npm


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``veil serve --port 0`` as a process: its URLs as it prints them."""
    npm()
    data = tmp_path_factory.mktemp("veil-data")
    args = [sys.executable, "-m", "veil.cli", "serve", "--port", "0", "--data-dir", str(data)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())
    finally:
        child.terminate()
        child.wait(timeout=30)


@pytest.fixture(scope="module")
def built() -> None:
    done = subprocess.run(
        [npm(), "run", "--silent", "build"], cwd=WEB, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"npm run build failed:\n{done.stdout}\n{done.stderr}"


def _node(services: dict[str, str], extra: dict[str, str] | None = None, *args: str) -> str:
    env = {
        **os.environ,
        "VEIL_IDP_URL": services["idp_url"],
        "VEIL_KEYSERVER_URL": services["keyserver_url"],
        "VEIL_CONFERENCE_URL": services["conference_url"],
        **(extra or {}),
    }
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "--test", *args, "dist/test/integration/"], cwd=WEB, capture_output=True,
        text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"node --test failed:\n{done.stdout}\n{done.stderr}"
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout, done.stdout
    return done.stdout


def _tokens(idp_url: str, sub: str) -> Callable[[str], Awaitable[str]]:
    async def tokens(audience: str) -> str:
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{idp_url}/token", json={"sub": sub, "audience": audience})
            response.raise_for_status()
            return str(response.json()["token"])

    return tokens


async def _python_device(services: dict[str, str], sub: str) -> Device:
    return await Device.initialize(
        keyserver_url=services["keyserver_url"],
        conference_url=services["conference_url"],
        tokens=_tokens(services["idp_url"], sub),
        store=MemoryDeviceStore(secrets.token_bytes(32)),
    )


def test_the_node_integration_tests_pass_against_veil_serve(
    services: dict[str, str], built: None
) -> None:
    """Split trust, password and approval modes, documents, groups, pins, safety
    numbers, named refusals (web/test/integration/device.test.ts); streamed documents,
    the artifact helpers, abuse reports, key provenance refusals (documents.test.ts);
    the board: signed posts, acks, resume, refusals (board.test.ts); meetings: start,
    join, chat, a transcript, leave and the rekey, end, late host, hand-over, fail-over,
    ratchet, forged posts and invitations refused, no secret shown (meeting.test.ts)."""
    out = _node(services)
    passed = int(out.split("# pass ", 1)[1].split()[0])
    assert passed >= 20, out


def _pattern(length: int, seed: int) -> bytes:
    """The bytes web/test/integration/interop.test.ts's ``pattern`` makes."""
    return bytes((i * 31 + seed) % 251 for i in range(length))


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_python_device_and_a_node_device_read_each_others_documents_and_posts(
    services: dict[str, str], built: None, tmp_path: Path
) -> None:
    python_sub, node_sub = f"py-{uuid.uuid4().hex[:8]}", f"node-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with await _python_device(services, python_sub) as python:
            env = {
                "VEIL_INTEROP_DIR": str(tmp_path),
                "VEIL_INTEROP_NODE_SUB": node_sub,
                "VEIL_INTEROP_PYTHON_USER": python.user_id,
                "VEIL_INTEROP_ROOM": f"room-{uuid.uuid4().hex[:8]}",
            }
            await asyncio.to_thread(
                _node, services, {**env, "VEIL_INTEROP_PHASE": "node-first"},
                "--test-name-pattern", "interop",
            )  # fmt: skip
            sent = json.loads((tmp_path / "from-node.json").read_text())
            node_user = sent["node_user"]
            document = EncryptedDocument(
                sent["document_id"], sent["kind"], _b64decode(sent["envelope"])
            )
            assert await python.documents.decrypt(document, author=node_user) == b"from node"
            # The Node device's streamed recording, whole, then cut and with a segment altered.
            segments = [_b64decode(s) for s in sent["segments"]]
            assert len(segments) == 4
            opened = await python.documents.decrypt_stream(
                sent["stream_id"], segments, author=node_user
            )
            assert b"".join(opened) == _pattern(150_000, 1)
            altered = bytearray(segments[2])
            altered[-1] ^= 1
            for broken in (segments[:-1], [*segments[:2], bytes(altered), segments[3]]):
                with pytest.raises(DecryptionError):
                    b"".join(await python.documents.decrypt_stream(sent["stream_id"], broken))
            assert await python.safety_number(node_user) == sent["safety_number"]
            # The Node device's board post, verified here against its certificate.
            board = python.board(env["VEIL_INTEROP_ROOM"])
            await board.connect()
            post = await board.next(10)
            assert (post.user_id, post.seq) == (node_user, sent["board_seq"])
            assert Announce.parse(post.body).sender == 7
            await board.post(Announce.KIND, bytes(Announce(9)))
            await board.close()
            assert board.rejected == 0
            reply = await python.documents.encrypt(b"from python", users=[node_user])
            recording = _pattern(150_000, 2)
            stream_id, sealed = await python.documents.save_recording(
                [recording[:70_000], recording[70_000:]], users=[node_user]
            )
            (tmp_path / "from-python.json").write_text(
                json.dumps(
                    {
                        "document_id": reply.document_id,
                        "kind": reply.kind,
                        "envelope": _b64encode(reply.envelope),
                        "stream_id": stream_id,
                        "segments": [_b64encode(s) for s in sealed],
                        "safety_number": await python.safety_number(node_user),
                    }
                )
            )
            await asyncio.to_thread(
                _node, services, {**env, "VEIL_INTEROP_PHASE": "python-reply"},
                "--test-name-pattern", "interop",
            )  # fmt: skip

    asyncio.run(main())
