"""Janus (Debian's ``janus`` package) with its VideoRoom plugin, run inside a test
network namespace from a configuration written to a temporary folder.

Only the VideoRoom plugin and the WebSocket transport are loaded, the WebSocket on
127.0.0.1 inside the namespace (so only the namespace's own browsers reach it). ICE
is held to the namespace's veth address (``interface`` for the SDP, ``ice_enforce_list``
for the candidates), with no STUN or TURN server and no NAT mapping, so every
candidate Janus offers is that address. RTP ports are a fixed range: nothing else
runs in the namespace to take them.
"""

import contextlib
import ctypes
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import mjr
from .netns import Namespace, Unavailable, answers, free_port

LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
RTP_PORTS = "20000-20999"
START_SECONDS = 20.0


@dataclass(frozen=True)
class Janus:
    url: str  # the WebSocket API, as seen from inside the namespace
    rooms: tuple[int, ...]
    recordings: Path | None  # each publisher's RTP as Janus received it, with record
    log: Path
    started_in: float  # seconds from the launch to the WebSocket's first accept


def require() -> str:
    """The janus command; ``Unavailable`` without it."""
    command = shutil.which("janus")
    if command is None or not (LIBRARIES / "plugins" / "libjanus_videoroom.so").exists():
        raise Unavailable("Janus is not installed: apt-get install janus")
    return command


def _others(folder: str, keep: str) -> str:
    """Every library in ``folder`` but ``keep``, for a ``disable`` list."""
    names = sorted(path.name for path in (LIBRARIES / folder).glob("*.so"))
    return ",".join(name for name in names if name != keep)


def configure(
    folder: Path, ns: Namespace, *, port: int, rooms: Sequence[int], recordings: Path | None
) -> Path:
    """Janus's configuration files in ``folder``; the main file's path. With
    ``recordings``, Janus records every publisher's RTP there (``.mjr`` files): what the
    SFU saw of each stream, for checks that it saw no plaintext."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "janus.jcfg").write_text(f"""
general: {{
  configs_folder = "{folder}"
  plugins_folder = "{LIBRARIES}/plugins"
  transports_folder = "{LIBRARIES}/transports"
  events_folder = "{LIBRARIES}/events"
  loggers_folder = "{LIBRARIES}/loggers"
  debug_level = 4
  server_name = "veil-test"
  interface = "{ns.address}"
  session_timeout = 60
}}
media: {{
  rtp_port_range = "{RTP_PORTS}"
}}
nat: {{
  ice_enforce_list = "{ns.address}"
  ignore_mdns = true
}}
plugins: {{
  disable = "{_others("plugins", "libjanus_videoroom.so")}"
}}
transports: {{
  disable = "{_others("transports", "libjanus_websockets.so")}"
}}
loggers: {{
  disable = "{_others("loggers", "")}"
}}
""")
    (folder / "janus.transport.websockets.jcfg").write_text(f"""
general: {{
  json = "plain"
  ws = true
  ws_ip = "127.0.0.1"
  ws_port = {port}
  wss = false
}}
admin: {{
  admin_ws = false
}}
""")
    # VP8 and Opus, what issue 18's frame encryption must handle first; fir_freq asks
    # publishers for a key frame every 2 s so a late subscriber decodes soon.
    record = "" if recordings is None else f'record = true\n  rec_dir = "{recordings}"'
    room_blocks = "".join(
        f"""
room-{room}: {{
  description = "veil test room {room}"
  publishers = 8
  bitrate = 512000
  fir_freq = 2
  audiocodec = "opus"
  videocodec = "vp8"
  {record}
}}"""
        for room in rooms
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n" + room_blocks + "\n")
    return folder / "janus.jcfg"


def _die_with_parent() -> None:
    # Janus ends if the test process is killed outright (PR_SET_PDEATHSIG survives the
    # exec of `ip netns exec` and of janus).
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


@contextlib.contextmanager
def janus(
    ns: Namespace, folder: Path, *, rooms: Sequence[int] = (1000,), record: bool = False
) -> Iterator[Janus]:
    """Janus running inside ``ns`` with ``rooms`` (recorded into ``folder/recordings``
    with ``record``); stopped on the way out."""
    command = require()
    port = free_port(ns)
    recordings = folder / "recordings" if record else None
    if recordings is not None:
        recordings.mkdir(parents=True, exist_ok=True)
    config = configure(folder / "janus", ns, port=port, rooms=rooms, recordings=recordings)
    log = folder / "janus.log"
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ns.exec(command, "-F", str(config.parent), "-C", str(config), "-o"),
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    try:
        while not answers(ns, port):
            if process.poll() is not None or time.monotonic() - started > START_SECONDS:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Janus did not start (exit {process.poll()}):\n{tail}")
            time.sleep(0.05)
        yield Janus(
            url=f"ws://127.0.0.1:{port}",
            rooms=tuple(rooms),
            recordings=recordings,
            log=log,
            started_in=time.monotonic() - started,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def recorded_frames(sfu: Janus, room: int, feed: int, kind: str) -> list[bytes]:
    """The frames of ``feed``'s ``kind`` ("audio" or "video") in Janus's recording, once
    Janus has closed it (it does when the publisher's peer connection goes)."""
    assert sfu.recordings is not None
    deadline = time.monotonic() + 10
    while True:
        try:
            (path,) = sfu.recordings.glob(f"videoroom-{room}-user-{feed}-*-{kind}-*.mjr")
            return mjr.frames(mjr.read(path))
        except (ValueError, mjr.BadRecording):  # not there yet, or still being written
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
