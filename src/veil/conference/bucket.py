"""A token bucket: what one connection may send, at once and over time.

Anyone with a valid JWT can open a connection, so every connection is limited on its
own: board posts by count, relay frames by count and by bytes. A bucket holds at most
``burst`` tokens and refills at ``rate`` a second; taking more than it holds is
refused, and a refused take costs nothing (a flood cannot dig the bucket into debt
that would then starve the connection's later, well-behaved traffic).
"""

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._stamp = float(burst), clock()

    def take(self, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if the bucket holds them; False (and take none) if not."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True
