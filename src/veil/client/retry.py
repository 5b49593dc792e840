"""The SDK's one backoff policy: how long to wait before trying again what failed for a
moment, a dropped connection or work a service refused (503, a network error).

Waits grow through a short schedule and the last one repeats for as long as the
failures go on; whoever retries decides when to give up (a deadline, a refusal that
retrying cannot cure, the application closing). Two schedules use it:

- ``RECONNECT``: the board and media connections, 0.1, 0.5, 1, 2, then 5 s: the first
  attempt comes at once after a service restart, and a long outage costs a service one
  attempt per connection every 5 s;
- ``RETRY``: work refused for a moment (opening a key post, a removal, a leave), 0.5,
  1, 2, then 5 s.
"""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    delays: tuple[float, ...]
    """Seconds to wait before each retry in turn; the last repeats."""

    def __post_init__(self) -> None:
        if not self.delays or any(not delay >= 0 for delay in self.delays):
            raise ValueError("a backoff needs one or more delays, none negative")

    def delay(self, retries: int) -> float:
        """The wait before the next retry, after ``retries`` retries already made."""
        return self.delays[min(retries, len(self.delays) - 1)]

    def __iter__(self) -> Iterator[float]:
        """Every wait in turn, without end."""
        return itertools.chain(self.delays, itertools.repeat(self.delays[-1]))


RECONNECT = Backoff((0.1, 0.5, 1.0, 2.0, 5.0))
"""Before each attempt to open a dropped board or media connection again."""

RETRY = Backoff((0.5, 1.0, 2.0, 5.0))
"""Before work a service refused for a moment is tried again."""
