"""Request pacing: run near a provider's advertised rate limit without tripping it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Share of the advertised rate we aim for: even spacing at 95% keeps any rolling window
# at most 95% full, so our own requests never trip the limit.
TARGET = 0.95
# When this few requests are left, someone else shares the budget: slow down fourfold.
LOW_WATER = 1


@dataclass(frozen=True)
class RateHint:
    """What a response said about the rate limit; None where the provider did not say."""

    limit: int | None = None
    remaining: int | None = None
    # Rolling limits: the window's length. Fixed windows: seconds until the window resets.
    window_s: float | None = None
    rolling: bool = True


class Pacer:
    """Space requests evenly at a share of the advertised rate, and honour exhausted windows."""

    def __init__(
        self,
        *,
        min_interval: float = 0.0,
        target: float = TARGET,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self.target = target
        self._sleep = sleep
        self._clock = clock
        self._spacing = min_interval
        self._last_send: float | None = None
        self._hold_until = 0.0
        self.waited = 0.0

    def wait(self) -> None:
        """Sleep until the next request may go, then note that it went."""
        now = self._clock()
        due = self._hold_until
        if self._last_send is not None:
            due = max(due, self._last_send + self._spacing)
        if due > now:
            self._sleep(due - now)
            self.waited += due - now
            now = self._clock()
        self._last_send = now

    def observe(self, hint: RateHint | None) -> None:
        """Adjust the spacing to what the latest response said."""
        if hint is None or not hint.window_s or hint.window_s <= 0:
            return
        if not hint.rolling:
            # A fixed window: go at full speed, and wait for the reset once it is used up.
            if hint.remaining is not None and hint.remaining <= 0:
                self._hold_until = self._clock() + hint.window_s
            return
        if not hint.limit or hint.limit <= 0:
            return
        per_request = hint.window_s / hint.limit
        spacing = per_request / self.target
        if hint.remaining is not None and hint.remaining <= LOW_WATER:
            spacing = max(spacing, per_request * 4)
        self._spacing = max(self.min_interval, spacing)
