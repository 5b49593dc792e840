"""The recording reader and the plaintext VP8 detector, on recordings built here: a
key frame is found (with its size) whatever the RTP header carries, an encrypted or
delta frame is not, and a cut or foreign file is a ``BadRecording``."""

import json
import os
import struct
from pathlib import Path

import pytest

from .mjr import BadRecording, read, rtp_payload, vp8_key_frames

# RFC 6386 9.1: a key frame's 3-byte tag (P = 0, show_frame), start code, 320x240.
KEY_FRAME = b"\x50\x2a\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 320, 240) + b"\x00" * 20
DELTA_FRAME = b"\x51\x2a\x00" + os.urandom(30)


def rtp(payload: bytes, *, csrcs: int = 0, extension_words: int = 0, padding: int = 0) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension_words else 0) | (0x20 if padding else 0)
    header = bytes([first, 96]) + struct.pack(">HII", 1, 0, 0x1234) + b"\x00" * 4 * csrcs
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
def test_a_plaintext_key_frame_is_found_with_its_size(tmp_path: Path, descriptor: bytes) -> None:
    packets = [
        rtp(descriptor + KEY_FRAME, csrcs=2, extension_words=1, padding=3),
        rtp(descriptor + DELTA_FRAME),
    ]
    found = vp8_key_frames(read(recording(tmp_path / "v.mjr", packets)))
    assert found == [(320, 240)]


def test_encrypted_frames_and_later_partitions_show_no_key_frame(tmp_path: Path) -> None:
    packets = [
        rtp(b"\x10" + os.urandom(len(KEY_FRAME))),  # what an SFrame'd frame looks like
        rtp(b"\x11" + KEY_FRAME),  # partition 1: not a frame's start
        rtp(b"\x00" + KEY_FRAME),  # a continuation packet
    ]
    saved = read(recording(tmp_path / "v.mjr", packets))
    assert saved.codec == "vp8"
    assert len(saved.packets) == 3
    assert vp8_key_frames(saved) == []


def test_rtp_payload_strips_the_header_its_extension_and_padding() -> None:
    assert rtp_payload(rtp(b"payload", csrcs=3, extension_words=2, padding=4)) == b"payload"
    assert rtp_payload(b"\x40" + b"\x00" * 20) == b""  # not RTP version 2


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
