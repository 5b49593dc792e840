"""Janus's recordings read back into frames, on recordings built here: RTP headers of
every shape, VP8 payload descriptors of every shape, frames split over packets that
arrive out of order, repeated, or across the sequence number's wrap; a frame that lost
a packet is left out; a cut or foreign file is a ``BadRecording``."""

import json
import os
import struct
from pathlib import Path

import pytest

from veil.webrtc.mjr import BadRecording, RtpPacket, frames, read, rtp_payload, vp8_key_frame_size

# RFC 6386 9.1: a key frame's 3-byte tag (P = 0, show_frame), start code, 320x240.
KEY_FRAME = b"\x50\x2a\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 320, 240) + os.urandom(40)
DELTA_FRAME = b"\x51\x2a\x00" + os.urandom(30)


def rtp(
    payload: bytes,
    *,
    sequence: int = 1,
    timestamp: int = 0,
    marker: bool = True,
    csrcs: int = 0,
    extension_words: int = 0,
    padding: int = 0,
) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension_words else 0) | (0x20 if padding else 0)
    second = 96 | (0x80 if marker else 0)
    header = bytes([first, second]) + struct.pack(">HII", sequence, timestamp, 0x1234)
    header += b"\x00" * 4 * csrcs
    if extension_words:
        header += struct.pack(">HH", 0xBEDE, extension_words) + b"\x00" * 4 * extension_words
    tail = b"\x00" * (padding - 1) + bytes([padding]) if padding else b""
    return header + payload + tail


def recording(path: Path, packets: list[bytes], codec: str = "vp8") -> Path:
    info = json.dumps({"t": "v", "c": codec}).encode()
    body = b"".join(b"MEET" + struct.pack(">IH", 0, len(p)) + p for p in packets)
    path.write_bytes(b"MJR00002" + struct.pack(">H", len(info)) + info + body)
    return path


@pytest.mark.parametrize(
    "descriptor",
    [
        b"\x10",  # S, partition 0, no extensions
        b"\x90\x80\x05",  # X, I, 7-bit picture id
        b"\x90\xe0\x80\x05\x07\x20",  # X, I (15-bit picture id), L, T
    ],
)
def test_frames_are_reassembled_whatever_the_headers(tmp_path: Path, descriptor: bytes) -> None:
    # The same descriptor on a later packet of a frame, without S.
    later = bytes([descriptor[0] & ~0x10]) + descriptor[1:]
    packets = [
        rtp(descriptor + KEY_FRAME, csrcs=2, extension_words=1, padding=3),
        rtp(descriptor + DELTA_FRAME[:10], sequence=2, timestamp=3000, marker=False),
        rtp(later + DELTA_FRAME[10:], sequence=3, timestamp=3000),
    ]
    saved = read(recording(tmp_path / "v.mjr", packets))
    assert saved.codec == "vp8"
    assert frames(saved) == [KEY_FRAME, DELTA_FRAME]
    assert [vp8_key_frame_size(frame) for frame in frames(saved)] == [(320, 240), None]


def test_out_of_order_repeated_and_wrapping_packets_make_one_frame(tmp_path: Path) -> None:
    parts = [KEY_FRAME[:20], KEY_FRAME[20:40], KEY_FRAME[40:]]
    packets = [
        rtp(b"\x00" + parts[1], sequence=0, marker=False),
        rtp(b"\x10" + parts[0], sequence=0xFFFF, marker=False),
        rtp(b"\x00" + parts[1], sequence=0, marker=False),  # retransmitted
        rtp(b"\x00" + parts[2], sequence=1),
    ]
    assert frames(read(recording(tmp_path / "v.mjr", packets))) == [KEY_FRAME]


def test_a_frame_that_lost_a_packet_or_its_start_is_left_out(tmp_path: Path) -> None:
    packets = [
        rtp(b"\x10" + KEY_FRAME[:20], sequence=1, timestamp=1, marker=False),
        rtp(b"\x00" + KEY_FRAME[40:], sequence=3, timestamp=1),  # 2 is missing
        rtp(b"\x00" + DELTA_FRAME, sequence=4, timestamp=2),  # no start of frame
        rtp(b"\x11" + DELTA_FRAME, sequence=5, timestamp=3),  # partition 1
        rtp(b"\x10" + DELTA_FRAME, sequence=6, timestamp=4, marker=False),  # no end
    ]
    assert frames(read(recording(tmp_path / "v.mjr", packets))) == []


def test_opus_frames_are_the_payloads_and_other_codecs_are_refused(tmp_path: Path) -> None:
    packets = [rtp(b"\x78" + os.urandom(60), sequence=i) for i in range(3)]
    saved = read(recording(tmp_path / "a.mjr", packets, codec="opus"))
    assert frames(saved) == [rtp_payload(p) for p in packets]
    with pytest.raises(BadRecording, match="cannot reassemble 'h264'"):
        frames(read(recording(tmp_path / "h.mjr", packets, codec="h264")))


def test_rtp_packets_parse_past_their_header_extension_and_padding() -> None:
    parsed = RtpPacket.parse(
        rtp(b"payload", sequence=7, timestamp=9, csrcs=3, extension_words=2, padding=4)
    )
    assert parsed == RtpPacket(marker=True, sequence=7, timestamp=9, payload=b"payload")
    assert RtpPacket.parse(b"\x40" + b"\x00" * 20) is None  # not RTP version 2
    assert RtpPacket.parse(b"\x90" + b"\x00" * 11) is None  # extension cut off


def test_a_cut_or_foreign_file_is_a_bad_recording(tmp_path: Path) -> None:
    whole = recording(tmp_path / "v.mjr", [rtp(b"\x10" + KEY_FRAME)])
    cut = tmp_path / "cut.mjr"
    cut.write_bytes(whole.read_bytes()[:-5])
    with pytest.raises(BadRecording, match="cut short"):
        read(cut)
    foreign = tmp_path / "foreign.mjr"
    foreign.write_bytes(b"RIFF" + b"\x00" * 40)
    with pytest.raises(BadRecording, match="not an MJR00002"):
        read(foreign)
