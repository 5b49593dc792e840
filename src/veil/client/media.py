"""A participant's SFrame keys for one meeting (RFC 9605 with Veil's key schedule).

Each join of a device has a sender number: 44 random bits it draws itself and names
in its signed announce post (a new join draws a new one; clients refuse a number
already taken). Every (epoch, sender, stream) gets its own
base key from the session key, ``schedule.sender_base_key``, and its own KID,
``schedule.media_kid`` (sender, stream and epoch mod 2^16). A sender switches to a new
epoch as soon as it holds the key; a receiver keeps the previous epoch for
``grace`` seconds so frames in flight still decrypt, then forgets it. A frame of an
epoch not held yet (its sender got the new key first), or from a device whose
announce this client has not read yet, waits, up to ``grace`` seconds and
``PENDING_LIMIT`` frames, for that key or announce to arrive. Frames that are tampered with,
replayed, or of an epoch this participant never gets are dropped and counted, never
delivered.

Senders are bound to devices: every member holds every sender's key (they all derive
from the session key), so cryptography alone cannot stop a member from sending under
another's sender number; one forged frame with a high counter would then push the
real sender's frames out of the replay window. Where the transport says which device
a frame came from (the relay does), a frame is taken only if its KID names the
sender number that device announced, signed, on the board; the check comes before
any key or replay window is touched, so a forgery moves no one else's window.
"""

import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from veil.crypto import schedule
from veil.crypto.errors import DecodeError, DecryptionError, ReplayedFrame, UnknownKeyId
from veil.crypto.sframe import CipherSuite, SFrameHeader, SFrameReceiver, SFrameSender

EPOCH_MASK = 0xFFFF
PENDING_LIMIT = 512


@dataclass
class MediaCounters:
    sent: int = 0
    decrypted: int = 0
    tampered: int = 0
    replayed: int = 0
    unknown_epoch: int = 0
    """Frames of an epoch (or from a device) this participant never learnt in time."""
    wrong_sender: int = 0
    """Frames whose KID names a sender other than the one their device announced."""

    @property
    def dropped(self) -> int:
        return self.tampered + self.replayed + self.unknown_epoch + self.wrong_sender


@dataclass(frozen=True)
class Frame:
    """A decrypted frame: who sent it (sender number), on which stream, in which epoch."""

    sender: int
    stream: int
    epoch: int
    payload: bytes = field(repr=False)


class MeetingMedia:
    def __init__(
        self,
        meeting_id: str,
        *,
        sender: int,
        grace: float,
        clock: Callable[[], float],
        bound: Callable[[str], int | None] = lambda device_id: None,
        suite: CipherSuite = SFrameSender.DEFAULT_SUITE,
    ) -> None:
        """``bound(device_id)``: the sender number a device announced, if it is present."""
        self.meeting_id, self.sender, self.suite = meeting_id, sender, suite
        self._bound = bound
        self._grace, self._clock = grace, clock
        self._metadata = meeting_id.encode()  # SFrame AAD: frames are bound to the meeting
        self._keys: dict[int, bytes] = {}  # epoch -> session key
        self._expires: dict[int, float] = {}  # epoch -> when a superseded epoch is dropped
        self._kids: dict[int, set[int]] = {}  # epoch -> receiver KIDs installed
        self._senders: dict[int, SFrameSender] = {}  # stream -> sender of the current epoch
        self._receiver = SFrameReceiver()
        self._pending: deque[tuple[float, bytes, str | None]] = deque()
        self.epoch: int | None = None
        self.counters = MediaCounters()

    def install(self, epoch: int, session_key: bytes) -> list[Frame]:
        """Hold a new epoch's session key and send with it from now on. Returns the
        waiting frames that this key decrypts. A different key for the current epoch
        replaces it (two managers raced; the board's first key post of an epoch wins)."""
        if self.epoch is not None and epoch < self.epoch:
            return []
        if epoch == self.epoch:
            if hmac.compare_digest(self._keys.get(epoch, b""), session_key):
                return []
            self._drop(epoch)
        elif self.epoch is not None:
            self._expires[self.epoch] = self._clock() + self._grace
        self._keys[epoch] = session_key
        self.epoch = epoch
        self._senders.clear()
        return self.retry()

    def retry(self) -> list[Frame]:
        """The waiting frames that open now (a key or a sender's announce arrived);
        the rest wait on, from when they first arrived."""
        waiting, self._pending = self._pending, deque()
        frames = [self._open(frame, origin, since) for since, frame, origin in waiting]
        return [f for f in frames if f is not None]

    def forget(self) -> None:
        """Drop every key (the meeting ended or this participant left)."""
        for epoch in list(self._keys):
            self._drop(epoch)
        self.epoch = None
        self._senders.clear()
        self.counters.unknown_epoch += len(self._pending)
        self._pending.clear()

    def _drop(self, epoch: int) -> None:
        self._keys.pop(epoch, None)
        self._expires.pop(epoch, None)
        for kid in self._kids.pop(epoch, set()):
            self._receiver.remove_key(kid)

    def _expire(self) -> None:
        now = self._clock()
        for epoch, deadline in list(self._expires.items()):
            if now >= deadline:
                self._drop(epoch)
        while self._pending and now - self._pending[0][0] > self._grace:
            self._pending.popleft()
            self.counters.unknown_epoch += 1

    def protect(self, payload: bytes, *, stream: int = 0) -> bytes:
        if self.epoch is None:
            raise LookupError("no session key yet")
        sender = self._senders.get(stream)
        if sender is None:
            base = schedule.sender_base_key(
                self._keys[self.epoch],
                meeting_id=self.meeting_id,
                epoch=self.epoch,
                sender=self.sender,
                stream=stream,
            )
            kid = schedule.media_kid(epoch=self.epoch, sender=self.sender, stream=stream)
            sender = self._senders[stream] = SFrameSender(kid, base, suite=self.suite)
        self.counters.sent += 1
        return sender.protect(payload, self._metadata)

    def unprotect(self, frame: bytes, *, origin: str | None = None) -> Frame | None:
        """The frame's payload, or ``None`` if it must be dropped (counted) or wait.
        ``origin``: the device the transport says sent it (checked against the sender it
        announced; a frame from a device whose announce this client has not read yet
        waits for it, like a frame of an epoch not held yet)."""
        self._expire()
        return self._open(frame, origin, self._clock())

    def _wait(self, frame: bytes, origin: str | None, since: float) -> None:
        if len(self._pending) >= PENDING_LIMIT:
            self._pending.popleft()
            self.counters.unknown_epoch += 1
        self._pending.append((since, frame, origin))

    def _open(self, frame: bytes, origin: str | None, since: float) -> Frame | None:
        try:
            header, _ = SFrameHeader.parse(frame)
            epoch_low, sender, stream = schedule.parse_media_kid(header.kid)
        except (DecodeError, ValueError):
            self.counters.tampered += 1
            return None
        if origin is not None:
            bound = self._bound(origin)
            if bound is None:
                self._wait(frame, origin, since)
                return None
            if bound != sender:
                self.counters.wrong_sender += 1
                return None
        epochs = [e for e in self._keys if e & EPOCH_MASK == epoch_low]
        if sender == self.sender:
            self.counters.unknown_epoch += 1
            return None
        if not epochs:
            self._wait(frame, origin, since)
            return None
        epoch = epochs[0]
        new_kid = header.kid not in self._kids.setdefault(epoch, set())
        if new_kid:
            base = schedule.sender_base_key(
                self._keys[epoch], meeting_id=self.meeting_id, epoch=epoch,
                sender=sender, stream=stream,
            )  # fmt: skip
            self._receiver.add_key(header.kid, base, suite=self.suite)
            self._kids[epoch].add(header.kid)
        try:
            payload = self._receiver.unprotect(frame, self._metadata)
        except ReplayedFrame:
            self.counters.replayed += 1
            return None
        except (DecryptionError, DecodeError, UnknownKeyId):
            if new_kid:  # a made-up KID must not leave a key (and window) behind
                self._receiver.remove_key(header.kid)
                self._kids[epoch].discard(header.kid)
            self.counters.tampered += 1
            return None
        self.counters.decrypted += 1
        return Frame(sender, stream, epoch, payload)
