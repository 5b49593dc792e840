"""SFrame media keys: tampered, replayed and unknown-epoch frames are dropped and
counted, never delivered; early frames wait for their key; old epochs expire."""

import asyncio
import os

from veil.client.media import Frame, MeetingMedia
from veil.crypto.schedule import media_kid
from veil.crypto.sframe import SFrameHeader
from veil.protocol import MediaKind

MEETING = "media-test"


class Now:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pair(now: Now, key: bytes, epoch: int = 0) -> tuple[MeetingMedia, MeetingMedia]:
    sender = MeetingMedia(MEETING, sender=3, grace=5.0, clock=now)
    receiver = MeetingMedia(MEETING, sender=4, grace=5.0, clock=now)
    sender.install(epoch, key)
    receiver.install(epoch, key)
    return sender, receiver


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def with_counter(frame: bytes, ctr: int) -> bytes:
    """The frame with its SFrame header's counter replaced (a header tampered with)."""
    header, size = SFrameHeader.parse(frame)
    return bytes(SFrameHeader(header.kid, ctr)) + frame[size:]


def with_kid(frame: bytes, kid: int) -> bytes:
    header, size = SFrameHeader.parse(frame)
    return bytes(SFrameHeader(kid, header.ctr)) + frame[size:]


def test_a_frame_round_trips_with_its_sender_stream_and_epoch() -> None:
    now = Now()
    alice, bob = pair(now, os.urandom(32))
    frame = bob.unprotect(alice.protect(b"payload", stream=2))
    assert frame == Frame(sender=3, stream=2, epoch=0, payload=b"payload")
    assert (alice.counters.sent, bob.counters.decrypted, bob.counters.dropped) == (1, 1, 0)


def test_tampered_frames_are_dropped_and_counted() -> None:
    now = Now()
    alice, bob = pair(now, os.urandom(32))
    frames = [alice.protect(b"frame %d" % i) for i in range(5)]
    header_size = SFrameHeader.parse(frames[0])[1]

    assert bob.unprotect(flip(frames[0], len(frames[0]) - 1)) is None  # the tag
    assert bob.unprotect(flip(frames[1], header_size)) is None  # the ciphertext
    assert bob.unprotect(with_counter(frames[2], 2 + 1000)) is None  # the header's counter
    assert bob.unprotect(with_kid(frames[3], frames_kid(frames[3]) ^ (1 << 30))) is None  # sender
    assert bob.unprotect(b"") is None  # not even a header
    assert bob.counters.tampered == 5
    assert bob.counters.decrypted == 0
    # A failed attempt does not burn the counter: the genuine frames still open.
    assert [f.payload for f in map(bob.unprotect, frames) if f is not None] == [
        b"frame %d" % i for i in range(5)
    ]
    assert bob.counters.tampered == 5 and bob.counters.decrypted == 5


def frames_kid(frame: bytes) -> int:
    return SFrameHeader.parse(frame)[0].kid


def test_frames_that_do_not_authenticate_leave_no_receiver_keys_behind() -> None:
    """Anyone on the relay can send frames with made-up KIDs: each one that fails must
    not leave a derived key (and replay window) in the receiver for good."""
    now = Now()
    alice, bob = pair(now, os.urandom(32))
    genuine = alice.protect(b"genuine")
    assert bob.unprotect(genuine) is not None
    held = bob._receiver.kids
    for sender in range(100, 300):
        assert bob.unprotect(with_kid(genuine, media_kid(epoch=0, sender=sender))) is None
    assert bob.counters.tampered == 200
    assert bob._receiver.kids == held
    # A sender whose first frame was tampered with is still heard afterwards.
    carol = MeetingMedia(MEETING, sender=5, grace=5.0, clock=now)
    carol.install(0, alice._keys[0])
    first = carol.protect(b"first")
    assert bob.unprotect(flip(first, len(first) - 1)) is None
    assert bob.unprotect(first) is not None and bob.unprotect(first) is None
    assert bob.counters.replayed == 1


def test_a_replayed_frame_is_delivered_once() -> None:
    now = Now()
    alice, bob = pair(now, os.urandom(32))
    frame = alice.protect(b"once")
    assert bob.unprotect(frame) is not None
    assert bob.unprotect(frame) is None
    assert bob.unprotect(frame) is None
    assert (bob.counters.decrypted, bob.counters.replayed) == (1, 2)


def test_frames_of_an_epoch_never_held_are_not_delivered() -> None:
    now = Now()
    alice, bob = pair(now, os.urandom(32))
    rogue = MeetingMedia(MEETING, sender=3, grace=5.0, clock=now)
    rogue.install(7, os.urandom(32))
    assert bob.unprotect(rogue.protect(b"epoch 7")) is None
    assert bob.counters.unknown_epoch == 0  # it waits for the key, for the grace period
    now.now += 5.1
    assert bob.unprotect(alice.protect(b"epoch 0")) is not None
    assert bob.counters.unknown_epoch == 1 and bob.counters.decrypted == 1
    # Getting "epoch 7" later with the real key opens nothing that was forged.
    assert bob.install(7, os.urandom(32)) == []


def test_an_early_frame_waits_for_its_key_and_the_old_epoch_expires() -> None:
    now = Now()
    key0, key1 = os.urandom(32), os.urandom(32)
    alice, bob = pair(now, key0)
    old = alice.protect(b"in flight, epoch 0")
    alice.install(1, key1)
    early = alice.protect(b"early, epoch 1")
    assert bob.unprotect(early) is None  # bob has no epoch-1 key yet
    delivered = bob.install(1, key1)
    assert [(f.epoch, f.payload) for f in delivered] == [(1, b"early, epoch 1")]
    frame = bob.unprotect(old)  # within the grace period, epoch 0 still opens
    assert frame is not None and frame.epoch == 0
    straggler = MeetingMedia(MEETING, sender=3, grace=5.0, clock=now)
    straggler.install(0, key0)
    late = straggler.protect(b"late, epoch 0", stream=1)
    now.now += 5.1
    assert bob.unprotect(late) is None  # epoch 0 is forgotten
    now.now += 5.1
    assert bob.unprotect(alice.protect(b"epoch 1")) is not None
    assert bob.counters.unknown_epoch == 1


def test_a_participant_drops_its_own_frames_and_forgets_on_leave() -> None:
    now = Now()
    alice, bob = pair(now, os.urandom(32))
    assert alice.unprotect(alice.protect(b"mine")) is None
    frame = alice.protect(b"to bob")
    bob.forget()
    assert bob.epoch is None
    assert bob.unprotect(frame) is None
    assert bob.counters.decrypted == 0


def test_tampered_replayed_and_unknown_frames_through_the_relay(env) -> None:
    async def main() -> None:
        alice, bob = await env.devices(env.name("alice"), env.name("bob"))
        ma, mb = await env.start_and_join(alice, [bob])
        assert ma.media is not None and ma.media_channel is not None and mb.media is not None
        channel = ma.media_channel

        genuine = ma.media.protect(b"genuine")
        header_size = SFrameHeader.parse(genuine)[1]
        rogue = MeetingMedia(ma.meeting_id, sender=ma.sender, grace=5.0, clock=lambda: 0.0)
        rogue.install(7, os.urandom(32))

        await channel.send(MediaKind.AUDIO, flip(genuine, header_size + 1))  # ciphertext
        await channel.send(MediaKind.AUDIO, with_counter(genuine, 999))  # header
        await channel.send(MediaKind.AUDIO, genuine)
        await channel.send(MediaKind.AUDIO, genuine)  # replayed by the relay, say
        await channel.send(MediaKind.AUDIO, rogue.protect(b"unknown epoch"))

        received = [await asyncio.wait_for(mb.receive_frame(), 5) for _ in range(5)]
        assert received[0] is None and received[1] is None
        assert received[2] is not None and received[2].payload == b"genuine"
        assert received[2].sender == ma.sender and received[2].epoch == 0
        assert received[3] is None and received[4] is None
        assert (mb.media.counters.tampered, mb.media.counters.replayed) == (2, 1)

        # After the grace period the unknown-epoch frame is counted; the stream goes on.
        await asyncio.sleep(env.fast.epoch_grace + 0.1)
        await ma.send_frame(MediaKind.VIDEO, b"next", stream=1)
        frame = await asyncio.wait_for(mb.receive_frame(), 5)
        assert frame is not None and frame.payload == b"next"
        counters = mb.media.counters
        assert (counters.decrypted, counters.tampered, counters.replayed) == (2, 2, 1)
        assert counters.unknown_epoch == 1

    env.run(main)
