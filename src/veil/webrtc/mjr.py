"""What Janus saw of a stream: its recordings (``.mjr``, Janus's own format, written by
``record.c``), read back into the encoded frames the publisher sent.

A recording is ``MJR00002``, a 16-bit big-endian length and that much JSON (``t``:
``a`` or ``v``, ``c``: the codec), then per RTP packet ``MEET``, a 32-bit timestamp, a
16-bit length and the packet as Janus received it (SRTP removed, so exactly what the
SFU could read). ``frames`` undoes the RTP packetization (RFC 7741 for VP8: one frame
per RTP timestamp, each packet's payload descriptor removed; Opus: a frame per
packet), giving byte for byte what the sender's encoder, or its encoded transform,
handed to the packetizer: what a check that the SFU saw no plaintext compares with the
encoder's own frames.

Note that a VP8 key frame's first 10 bytes (frame tag, start code, picture size; RFC
6386 section 9.1) are in the clear under SFrame too: the depacketizer reads them.
"""

import hashlib
import json
import struct
from collections.abc import Iterator
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


@dataclass(frozen=True)
class RtpPacket:
    """The fields of an RTP packet (RFC 3550 section 5.1) that reassembly needs."""

    marker: bool
    sequence: int
    timestamp: int
    payload: bytes

    @classmethod
    def parse(cls, packet: bytes) -> "RtpPacket | None":
        """The packet, or None when it is not RTP version 2 or is cut short."""
        if len(packet) < 12 or packet[0] >> 6 != 2:
            return None
        sequence, timestamp = struct.unpack_from(">HI", packet, 2)
        at = 12 + 4 * (packet[0] & 0x0F)  # CSRCs
        if packet[0] & 0x10:  # header extension: 16-bit profile, 16-bit length in words
            if len(packet) < at + 4:
                return None
            (words,) = struct.unpack_from(">H", packet, at + 2)
            at += 4 + 4 * words
        end = len(packet)
        if packet[0] & 0x20:  # padding: its length is the last byte
            end -= packet[-1]
        if end < at:
            return None
        return cls(bool(packet[1] & 0x80), sequence, timestamp, packet[at:end])


def rtp_payload(packet: bytes) -> bytes:
    """The payload of an RTP packet (empty when it is not one)."""
    parsed = RtpPacket.parse(packet)
    return b"" if parsed is None else parsed.payload


def _vp8_descriptor(payload: bytes) -> tuple[bool, int]:
    """Whether the payload starts a frame (S set, partition 0), and the descriptor's
    length (RFC 7741 section 4.2)."""
    if not payload:
        return False, 0
    first, at = payload[0], 1
    if first & 0x80 and len(payload) > 1:  # X: the extension byte follows
        extensions, at = payload[1], 2
        if extensions & 0x80:  # I: a picture id, 7 or 15 bits (M)
            at += 2 if len(payload) > at and payload[at] & 0x80 else 1
        if extensions & 0x40:  # L: TL0PICIDX
            at += 1
        if extensions & 0x30:  # T or K: TID/Y/KEYIDX
            at += 1
    return bool(first & 0x10) and not first & 0x0F, at


def _vp8_frames(packets: list[RtpPacket]) -> Iterator[bytes]:
    by_time: dict[int, dict[int, RtpPacket]] = {}
    for packet in packets:  # a retransmission repeats its sequence number: kept once
        by_time.setdefault(packet.timestamp, {})[packet.sequence] = packet
    for group in by_time.values():
        # One run of consecutive sequence numbers (modulo 2**16), from a packet that
        # starts the frame to one with the marker bit: otherwise a packet was lost.
        runs = [seq for seq in group if (seq - 1) & 0xFFFF not in group]
        if len(runs) != 1:
            continue
        ordered = [group[(runs[0] + i) & 0xFFFF] for i in range(len(group))]
        if not ordered[0].payload or not ordered[-1].marker:
            continue
        starts, _ = _vp8_descriptor(ordered[0].payload)
        if starts:
            yield b"".join(p.payload[_vp8_descriptor(p.payload)[1] :] for p in ordered)


def frames(recording: Recording) -> list[bytes]:
    """The complete encoded frames in ``recording`` (VP8 or Opus), in order."""
    packets = [p for p in map(RtpPacket.parse, recording.packets) if p is not None]
    if recording.codec == "vp8":
        return list(_vp8_frames(packets))
    if recording.codec == "opus":
        return [p.payload for p in packets if p.payload]
    raise BadRecording(f"frames: cannot reassemble {recording.codec!r}")


def vp8_key_frame_size(frame: bytes) -> tuple[int, int] | None:
    """A VP8 key frame's (width, height) (RFC 6386 section 9.1: the frame tag's P bit
    is 0, then the start code and the size); None for any other frame."""
    if len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == VP8_START_CODE:
        width, height = struct.unpack_from("<HH", frame, 6)
        return width & 0x3FFF, height & 0x3FFF
    return None


def digest(frame: bytes) -> str:
    """A frame's digest as the test pages' workers take it: the first 16 bytes of its
    SHA-256, in hex."""
    return hashlib.sha256(frame).hexdigest()[:32]
