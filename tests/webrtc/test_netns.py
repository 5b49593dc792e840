"""The test network namespace: isolated (no route out of it), its veth pair and its
processes gone after it, even when the test inside failed or its process was killed."""

import errno
import socket
import subprocess
import time

import pytest

from veil.webrtc import netns


@pytest.fixture(autouse=True)
def _can_make_namespaces() -> None:
    netns.require()


def names() -> set[str]:
    return {line.split()[0] for line in netns.ip("netns", "list").splitlines() if line.strip()}


def started_in(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """``command`` run inside namespace ``name``, once it is there (``ip netns exec``
    takes a moment to enter it; a teardown before that could not see it)."""
    process = subprocess.Popen(["ip", "netns", "exec", name, *command])
    deadline = time.monotonic() + 5
    while str(process.pid) not in netns.ip("netns", "pids", name).split():
        assert time.monotonic() < deadline, f"{command} never entered {name}"
        time.sleep(0.02)
    return process


def test_a_namespace_reaches_nothing_but_itself_and_the_host_end() -> None:
    with netns.namespace() as ns:
        routes = netns.ip("-n", ns.name, "-4", "route")
        assert "default" not in routes
        server = netns.listener(ns)
        port = server.getsockname()[1]
        # Its loopback is its own: the host's loopback does not answer for it.
        assert netns.answers(ns, port)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5)
        server.close()

        def reach_outside() -> int:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                return probe.connect_ex(("192.0.2.1", 9))  # TEST-NET-1

        assert netns.inside(ns, reach_outside) == errno.ENETUNREACH


def test_a_failing_test_leaves_no_namespace_veth_or_process() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), netns.namespace() as ns:
        sleeper = started_in(ns.name, ["sleep", "60"])
        raise RuntimeError("the test failed")
    assert sleeper.wait(timeout=5) != 0  # killed with the namespace
    assert ns.name not in names()
    links = netns.ip("-o", "link")
    assert f"vlh{ns.name[-6:]}" not in links


def test_a_namespace_whose_test_process_died_is_removed_by_the_next() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"veil-{dead.pid}-abcdef"
    netns.ip("netns", "add", stale)
    sleeper = started_in(stale, ["sleep", "60"])
    try:
        with netns.namespace():
            assert stale not in names()
        assert sleeper.wait(timeout=5) != 0
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True, check=False)
        sleeper.kill()


def test_a_root_that_may_not_make_namespaces_is_told_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = netns.ip

    def refusing(*arguments: str) -> str:
        if arguments[:2] == ("netns", "add"):
            raise netns.NotPermitted("ip netns add: mount --make-shared: Permission denied")
        return real(*arguments)

    monkeypatch.setattr(netns, "ip", refusing)
    refused = pytest.raises(netns.Unavailable, match="may not make network namespaces")
    with refused, netns.namespace():
        pass
