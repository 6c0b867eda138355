"""Token buckets: at most ``rate`` messages a second on average, bursts up to ``burst``.

``TokenBucket`` paces one process; ``SharedTokenBucket`` paces every process that sends
through one PostgreSQL store (parallel workers), with the bucket kept in the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clubjapon_ops.store import Store


class TokenBucket:
    """Thread-safe; a rate of 0 means unlimited."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self._lock = threading.Lock()

    def acquire(self, n: float = 1.0) -> float:
        """Take n tokens, sleeping until they are there; return the time slept."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= n
            # Going negative reserves the tokens: later callers wait behind this one.
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


class SharedTokenBucket:
    """One bucket for every sender on the store; a rate of 0 means unlimited.

    Tokens are fetched from the store in blocks of about 50 ms' worth and handed out locally,
    so a fast send does not pay a database round trip per message.
    """

    def __init__(self, store: Store, rate: float, name: str = "send",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.rate = rate
        self.name = name
        self.capacity = max(1.0, rate)
        self.block = max(1.0, rate / 20)
        self.sleep = sleep
        self._local = 0.0
        self._lock = threading.Lock()

    def acquire(self, n: float = 1.0) -> float:
        """Take n tokens, sleeping until the shared bucket has them; return the time slept."""
        from clubjapon_ops.store.pacing import take_tokens

        if self.rate <= 0:
            return 0.0
        slept = 0.0
        # Lanes queue on the lock while one of them waits for the next block: the order in
        # which they get tokens does not matter, only the total rate does.
        with self._lock:
            if self._local < n:
                want = max(self.block, n - self._local)
                with self.store.transaction() as conn:
                    wait = take_tokens(conn, self.name, self.rate, self.capacity, want)
                if wait > 0:
                    self.sleep(wait)
                    slept = wait
                self._local += want
            self._local -= n
        return slept
