"""A network namespace of the test's own, so that WebRTC media stays on this machine.

Janus gathers no loopback ICE candidates, and Chromium offers none either, so media
between them needs a real interface. The namespace gets one end of a veth pair
(``10.231.x.2/30``; the host keeps ``10.231.x.1/30``) and no default route: every
candidate either side can gather is the namespace's own address, and nothing in it can
reach past the host end. Processes are put inside with ``ip netns exec``; a socket is
put inside by opening it on a thread that has joined the namespace (``setns(2)`` moves
only the calling thread, and a socket stays in the namespace it was opened in).

Needs root and iproute2; ``require()`` raises ``Unavailable``, saying why, without them.
"""

import contextlib
import ctypes
import fcntl
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar


class Unavailable(Exception):
    """What this machine lacks for the WebRTC harness (root, iproute2, Janus, Chromium);
    tests skip with its message, ``veil demo --browser`` prints it."""


# A /16 of private addresses cut into /30s, one per namespace; a block is skipped when
# it overlaps anything the host already has an address or a route for.
POOL = ipaddress.IPv4Network("10.231.0.0/16")
LOCK = "/run/lock/veil-netns.lock"
NAME = re.compile(r"^veil-(\d+)-[0-9a-f]{6}$")
CLONE_NEWNET = 0x40000000

T = TypeVar("T")


@dataclass(frozen=True)
class Namespace:
    name: str
    address: str  # the namespace's end of the veth pair
    host_address: str  # the host's end

    def exec(self, *command: str) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]


def require() -> None:
    """``Unavailable`` unless this process can make network namespaces (root, iproute2)."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root (the WebRTC tests run as root in CI)")
    if shutil.which("ip") is None:
        raise Unavailable("iproute2's `ip` is not installed: apt-get install iproute2")


class NotPermitted(PermissionError):
    """Root, but not allowed to make namespaces or links (an unprivileged container)."""


def ip(*arguments: str) -> str:
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = f"ip {' '.join(arguments)}: {done.stderr.strip()}"
        if "Operation not permitted" in done.stderr or "Permission denied" in done.stderr:
            raise NotPermitted(message)
        raise RuntimeError(message)
    return done.stdout


def _taken() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    taken: list[ipaddress.IPv4Network] = []
    for line in ip("-4", "-o", "addr").splitlines() + ip("-4", "route").splitlines():
        for word in line.split():
            with contextlib.suppress(ValueError):
                if word != "default" and "." in word:
                    taken.append(ipaddress.IPv4Network(word, strict=False))
    return taken


def _free_block() -> ipaddress.IPv4Network:
    taken = _taken()
    for block in POOL.subnets(new_prefix=30):
        if not any(block.overlaps(network) for network in taken):
            return block
    raise RuntimeError(f"no free /30 left in {POOL} for a test network namespace")


def _remove_stale() -> None:
    """Namespaces left by test processes that died without tearing down (SIGKILL)."""
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAME.match(name)
        if match is None or os.path.exists(f"/proc/{match.group(1)}"):
            continue
        _delete(name)


def _delete(name: str) -> None:
    # Only this module's own processes run in its namespaces: end them, then the
    # namespace (which takes the veth pair with it).
    for pid in ip("netns", "pids", name).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A new network namespace with ``lo`` up and a veth pair to the host; deleted,
    with everything still running in it, on the way out, whatever happened."""
    require()
    token = secrets.token_hex(3)
    name = f"veil-{os.getpid()}-{token}"
    host_end, inner_end = f"vlh{token}", f"vln{token}"
    # The lock makes choosing a block and taking it one step for concurrent test runs.
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_stale()
        block = _free_block()
        host_address, address = (str(host) for host in list(block.hosts())[:2])
        try:
            ip("netns", "add", name)
        except NotPermitted as error:
            raise Unavailable(f"this root may not make network namespaces ({error})") from error
        try:
            ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
            ip("link", "set", inner_end, "netns", name)
            ip("addr", "add", f"{host_address}/30", "dev", host_end)
            ip("link", "set", host_end, "up")
            ip("-n", name, "addr", "add", f"{address}/30", "dev", inner_end)
            ip("-n", name, "link", "set", inner_end, "up")
            ip("-n", name, "link", "set", "lo", "up")
        except BaseException as error:
            _delete(name)
            subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
            if isinstance(error, NotPermitted):
                raise Unavailable(f"this root may not make veth pairs ({error})") from error
            raise
    try:
        yield Namespace(name=name, address=address, host_address=host_address)
    finally:
        _delete(name)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)


def enter(ns: Namespace) -> None:
    """Move the calling thread into ``ns``: the sockets it opens from then on live
    there (a thread of its own: the process's other threads stay where they are)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {ns.name}: {os.strerror(error)}")
    finally:
        os.close(fd)


def inside(ns: Namespace, work: Callable[[], T]) -> T:
    """``work()`` run on a thread that has joined ``ns``: sockets it opens live there."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            enter(ns)
            result.append(work())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run, name=f"in-{ns.name}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def listener(ns: Namespace) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 inside ``ns``, on a free port."""

    def listen() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        return sock

    return inside(ns, listen)


def free_port(ns: Namespace) -> int:
    """A TCP port free on 127.0.0.1 inside ``ns``."""
    with listener(ns) as sock:
        port: int = sock.getsockname()[1]
        return port


def answers(ns: Namespace, port: int) -> bool:
    """Whether something inside ``ns`` accepts TCP connections on 127.0.0.1:``port``."""

    def connect() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return inside(ns, connect)
