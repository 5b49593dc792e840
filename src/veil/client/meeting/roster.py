"""Who is in the meeting, as the board says: each join's signed sender number.

A join is an ``announce`` post: the device names the sender number it drew (the
SFrame KIDs of its frames carry it). A number announced once is never accepted from
another device, and a device is in a meeting once: its newer announce replaces its
older one (a client that crashed and joined again). A ``leave`` counts only from the
device that announced the number.
"""

from dataclasses import dataclass

from veil.client.errors import UntrustedPost


@dataclass(frozen=True)
class Participant:
    sender: int
    user_id: str
    device_id: str
    seq: int
    """The board position of its announce (earlier joins come first)."""


class Roster:
    def __init__(self) -> None:
        self._present: dict[int, Participant] = {}
        self._by_device: dict[str, int] = {}
        self._announced: dict[int, str] = {}  # sender -> device, for every join ever
        self._departed: set[str] = set()  # users who left and have no participant now

    def announce(self, sender: int, user_id: str, device_id: str, seq: int) -> Participant:
        """Add a join; ``UntrustedPost`` if another device announced ``sender`` first.
        Returns the participant (a device's earlier join, if any, is replaced)."""
        owner = self._announced.setdefault(sender, device_id)
        if owner != device_id:
            raise UntrustedPost("a sender number another device announced first")
        earlier = self._by_device.pop(device_id, None)
        if earlier is not None:
            self._present.pop(earlier, None)
        joined = self._present[sender] = Participant(sender, user_id, device_id, seq)
        self._by_device[device_id] = sender
        self._departed.discard(user_id)
        return joined

    def leave(self, sender: int, device_id: str) -> Participant | None:
        """Remove the join ``sender`` if ``device_id`` announced it; the participant, or
        ``None`` (not present, or a leave for another device's join: ignored)."""
        participant = self._present.get(sender)
        if participant is None or participant.device_id != device_id:
            return None
        del self._present[sender]
        del self._by_device[device_id]
        if not self.has_user(participant.user_id):
            self._departed.add(participant.user_id)
        return participant

    def sender_of(self, device_id: str) -> int | None:
        """The sender number of a present device (what its frames' KIDs must name)."""
        return self._by_device.get(device_id)

    def get(self, sender: int) -> Participant | None:
        return self._present.get(sender)

    def has_user(self, user_id: str) -> bool:
        return any(p.user_id == user_id for p in self._present.values())

    def departed(self) -> set[str]:
        """Users who left the meeting and have no device in it now (until ``settled``)."""
        return set(self._departed)

    def settled(self, user_ids: set[str]) -> None:
        """These departures were applied (removed from the group, or never in it)."""
        self._departed -= user_ids

    def participants(self) -> list[Participant]:
        """Present participants, earliest join first."""
        return sorted(self._present.values(), key=lambda p: p.seq)

    def __len__(self) -> int:
        return len(self._present)
