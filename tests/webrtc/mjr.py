"""What Janus saw of a stream: its recordings (``.mjr``, Janus's own format, written by
``record.c``), and a detector for plaintext VP8 in them.

A recording is ``MJR00002``, a 16-bit big-endian length and that much JSON (``t``:
``a`` or ``v``, ``c``: the codec), then per RTP packet ``MEET``, a 32-bit timestamp, a
16-bit length and the packet as Janus received it (SRTP removed, so exactly what the
SFU could read).

Plaintext VP8 is easy to recognise with certainty: every key frame's payload starts
with a three-byte start code and the picture's size (RFC 6386 section 9.1), right
after the RTP payload descriptor (RFC 7741 section 4.2). Frames encrypted end to end
(SFrame) hide both, so a check that the SFU saw no plaintext finds none.
"""

import json
import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"MJR00002"
PACKET = b"MEET"
VP8_START_CODE = b"\x9d\x01\x2a"


@dataclass(frozen=True)
class Recording:
    info: dict[str, object]
    packets: list[bytes]  # RTP packets, header included

    @property
    def codec(self) -> str:
        return str(self.info.get("c", ""))


class BadRecording(ValueError):
    """The file is not a (complete) Janus recording."""


def read(path: Path) -> Recording:
    data = path.read_bytes()
    if not data.startswith(MAGIC) or len(data) < 10:
        raise BadRecording(f"{path.name}: not an MJR00002 recording")
    (length,) = struct.unpack_from(">H", data, 8)
    info = json.loads(data[10 : 10 + length])
    packets, at = [], 10 + length
    while at < len(data):
        if data[at : at + 4] != PACKET or at + 10 > len(data):
            raise BadRecording(f"{path.name}: no packet marker at byte {at}")
        (size,) = struct.unpack_from(">H", data, at + 8)
        if at + 10 + size > len(data):
            raise BadRecording(f"{path.name}: the packet at byte {at} is cut short")
        packets.append(data[at + 10 : at + 10 + size])
        at += 10 + size
    return Recording(info=info, packets=packets)


def rtp_payload(packet: bytes) -> bytes:
    """The payload of an RTP packet (RFC 3550 section 5.1: CSRCs, extension, padding)."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return b""
    at = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(packet) < at + 4:
            return b""
        (words,) = struct.unpack_from(">H", packet, at + 2)
        at += 4 + 4 * words
    end = len(packet)
    if packet[0] & 0x20 and end > at:  # padding: its length is the last byte
        end -= packet[-1]
    return packet[at:end]


def vp8_key_frames(recording: Recording) -> list[tuple[int, int]]:
    """The (width, height) of every plaintext VP8 key frame in ``recording``."""
    found = []
    for packet in recording.packets:
        payload = rtp_payload(packet)
        if len(payload) < 1:
            continue
        # RFC 7741 4.2: X (extensions), S (start of partition), PID (partition index).
        first, at = payload[0], 1
        if not first & 0x10 or first & 0x0F:  # not the start of partition 0
            continue
        if first & 0x80 and len(payload) > 1:
            extensions, at = payload[1], 2
            if extensions & 0x80:  # I: a picture id, 7 or 15 bits (M)
                at += 2 if len(payload) > at and payload[at] & 0x80 else 1
            if extensions & 0x40:  # L: TL0PICIDX
                at += 1
            if extensions & 0x30:  # T or K: TID/Y/KEYIDX
                at += 1
        frame = payload[at:]
        # RFC 6386 9.1: the frame tag's P bit is 0 for a key frame, then the start code.
        if len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == VP8_START_CODE:
            width, height = struct.unpack_from("<HH", frame, 6)
            found.append((width & 0x3FFF, height & 0x3FFF))
    return found
