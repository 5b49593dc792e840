"""Python and Node (the browser SDK, web/tools/meeting-driver.ts) devices in ONE
meeting over a real ``veil serve``: each language hosts once while the other joins.
Both see the same epochs, session keys (compared by digest) and security codes, read
each other's chat, and a Node participant's leave rekeys the rest without it. The
Python SDK (``veil.client.meeting``) is the reference. Skipped, saying why, where
Node, npm or web/node_modules are missing."""

import asyncio
import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from veil.client.meeting import Meeting, MeetingTimers

from .node import WEB
from .test_sdk_node import _python_device, built, services  # noqa: F401 (fixtures)

TIMERS = {
    "debounce": 0.3, "rekeyInterval": 120, "joinRetries": [0.5, 1, 2, 2], "heartbeat": 1,
    "failover": 4,
}  # fmt: skip
"""The same short timers on both sides (the Node driver's names are camelCase)."""
PY_TIMERS = MeetingTimers(
    debounce=0.3, rekey_interval=120, join_retries=(0.5, 1, 2, 2), heartbeat=1, failover=4
)


class NodeParticipant:
    """One Node device (and its meeting) in a child process, driven over its stdin."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())
        self.user_id = self.device_id = ""

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            answer = json.loads(line)
            future = self._waiting.pop(answer["id"], None)
            if future is not None and not future.done():
                future.set_result(answer)

    async def call(self, op: str, **args: Any) -> Any:
        """The answer's ``ok`` part; ``AssertionError`` naming the Node error."""
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"id": request_id, "op": op, **args}) + "\n").encode())
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(future, 60)
        assert "error" not in answer, f"Node {op}: {answer['error']}"
        return answer["ok"]


@asynccontextmanager
async def node_participant(urls: dict[str, str], sub: str) -> AsyncIterator[NodeParticipant]:
    node = shutil.which("node")
    assert node is not None
    env = {
        **os.environ,
        "VEIL_IDP_URL": urls["idp_url"],
        "VEIL_KEYSERVER_URL": urls["keyserver_url"],
        "VEIL_CONFERENCE_URL": urls["conference_url"],
    }
    process = await asyncio.create_subprocess_exec(
        node, "dist/tools/meeting-driver.js", cwd=WEB, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    participant = NodeParticipant(process)
    exited = False
    try:
        device = await participant.call("init", sub=sub)
        participant.user_id, participant.device_id = device["user_id"], device["device_id"]
        yield participant
    finally:
        try:
            await participant.call("close")
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30)
                exited = True
            except TimeoutError:
                process.kill()
            participant._reader.cancel()
    # Nothing of a closed meeting (a timer, a socket, a listener) may keep Node running.
    assert exited, "the Node participant did not exit by itself after its meeting closed"


def _digest(meeting: Meeting) -> str:
    assert meeting.epoch is not None
    key = meeting.epochs.key(meeting.epoch)
    assert key is not None
    return hashlib.sha256(key).hexdigest()


def _same(meeting: Meeting, *states: dict[str, Any]) -> None:
    """Every Node state shows the Python meeting's epoch, key, code and members."""
    for state in states:
        assert state["epoch"] == meeting.epoch
        assert state["key_digest"] == _digest(meeting)
        assert state["security_code"] == meeting.security_code
        assert tuple(state["members"]) == meeting.members


def test_node_hosts_and_a_python_device_joins(services: dict[str, str], built: None) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:8]

    async def main() -> None:
        async with (
            node_participant(services, f"nhost-{tag}") as host,
            node_participant(services, f"nguest-{tag}") as guest,
            await _python_device(services, f"pyguest-{tag}") as python,
        ):
            started = await host.call(
                "start", invitees=[python.user_id, guest.user_id], timers=TIMERS
            )
            meeting = await Meeting.join(python, started["invitation"], timers=PY_TIMERS)
            try:
                joined = await guest.call("join", invitation=started["invitation"], timers=TIMERS)
                assert meeting.epoch == 0 and not meeting.managing
                _same(meeting, await host.call("state"), joined)
                # Chat both ways (and the other Node participant reads both).
                await meeting.send_chat("from python")
                await host.call("chat", text="from node")
                state = await guest.call("wait_chat", count=2)
                assert [(u, t) for u, t, _ in state["chat"]] == [
                    (python.user_id, "from python"), (host.user_id, "from node"),
                ]  # fmt: skip
                await _until(lambda: len(meeting.chat) == 2)
                assert [(m.user_id, m.text) for m in meeting.chat] == [
                    (python.user_id, "from python"), (host.user_id, "from node"),
                ]  # fmt: skip
                # The Node guest leaves: the TS manager rekeys; Python follows.
                left = await guest.call("leave")
                assert left["held"] == 0 and left["key_digest"] is None
                await meeting.wait_for_epoch(1)
                _same(meeting, await host.call("wait_epoch", epoch=1))
                assert guest.user_id not in meeting.members
                assert (await guest.call("state"))["key_digest"] is None
                await host.call("end")
                await asyncio.wait_for(meeting.ended.wait(), 20)
                assert meeting.ciphertexts_held() == 0
            finally:
                await meeting.close(rotate_device_keys=False)

    asyncio.run(main())


def test_python_hosts_and_node_devices_join(services: dict[str, str], built: None) -> None:  # noqa: F811
    """With a hand-over from the Python manager to a Node device, which then ends."""
    tag = uuid.uuid4().hex[:8]

    async def main() -> None:
        async with (
            await _python_device(services, f"pyhost-{tag}") as python,
            node_participant(services, f"nann-{tag}") as ann,
            node_participant(services, f"nbob-{tag}") as bob,
        ):
            meeting = await Meeting.start(
                python, invitees=[ann.user_id, bob.user_id], timers=PY_TIMERS
            )
            try:
                invitation = str(meeting.invitation)
                a = await ann.call("join", invitation=invitation, timers=TIMERS)
                b = await bob.call("join", invitation=invitation, timers=TIMERS)
                _same(meeting, a, b)
                await ann.call("chat", text="from node")
                await meeting.send_chat("from python")
                state = await bob.call("wait_chat", count=2)
                assert sorted(t for _, t, _ in state["chat"]) == ["from node", "from python"]
                await _until(lambda: len(meeting.chat) == 2)
                assert {m.user_id for m in meeting.chat} == {ann.user_id, python.user_id}
                # Bob leaves: the Python manager rekeys without him.
                await bob.call("leave")
                await meeting.wait_for_epoch(1)
                _same(meeting, await ann.call("wait_epoch", epoch=1))
                assert bob.user_id not in meeting.members
                bob_state = await bob.call("state")
                assert bob_state["epoch"] == 0 and bob_state["held"] == 0
                # Python hands management to the Node device: it rekeys and manages.
                await meeting.hand_over(int(a["sender"]))
                await meeting.wait_for_epoch(2)
                managed = await ann.call("wait_managing")
                _same(meeting, managed)
                assert not meeting.managing
                await ann.call("chat", text="epoch two")
                await _until(lambda: len(meeting.chat) == 3)
                assert (meeting.chat[-1].text, meeting.chat[-1].epoch) == ("epoch two", 2)
                await ann.call("end")
                await asyncio.wait_for(meeting.ended.wait(), 20)
                assert meeting.ciphertexts_held() == 0
                assert not [e for e in meeting.errors if "Untrusted" in type(e).__name__]
            finally:
                await meeting.close(rotate_device_keys=False)

    asyncio.run(main())


async def _until(check: Any, seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.05)


def test_node_late_host_python_fail_over(services: dict[str, str], built: None) -> None:  # noqa: F811
    """Python starts for a Node host, who takes over once it joins and names the Python
    device its deputy; when the Node device stops without a leave, Python takes over."""
    tag = uuid.uuid4().hex[:8]

    async def main() -> None:
        async with (
            await _python_device(services, f"pystart-{tag}") as python,
            node_participant(services, f"nlate-{tag}") as host,
        ):
            meeting = await Meeting.start(
                python, invitees=[host.user_id], host=host.user_id, timers=PY_TIMERS
            )
            try:
                joined = await host.call("join", invitation=str(meeting.invitation), timers=TIMERS)
                assert joined["managing"] and joined["epoch"] >= 1
                await meeting.wait_for_epoch(joined["epoch"])
                _same(meeting, joined)
                assert meeting.epochs.manager == host.device_id and not meeting.managing
                # The Node manager names the Python device its deputy in its heartbeats.
                await _until(lambda: meeting.manager.deputy == meeting.sender)
                # The Node device stops without a leave: its heartbeats stop, and Python
                # takes over (a rekey) after the fail-over time.
                await host.call("close")
                await meeting.wait_for_epoch(joined["epoch"] + 1, timeout=20)
                assert meeting.managing
                assert host.user_id in meeting.members  # it never left
                await meeting.end()
            finally:
                await meeting.close(rotate_device_keys=False)

    asyncio.run(main())
