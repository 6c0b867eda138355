"""Read the next page while the current one is being stored: one page ahead, no more.

The source's generator runs in a worker thread, so waiting for the API overlaps with
normalising and committing. Order, bookmarks and errors are unchanged: pages arrive in
order, and an error comes out after the pages that preceded it, exactly where the loop
would have met it. At most ``depth`` pages wait, so memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_POLL_S = 0.1


class _End:
    pass


def read_ahead(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """Yield what ``items`` yields, fetching up to ``depth`` items ahead in a thread."""
    slots: queue.Queue[T | _End | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: T | _End | BaseException) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    break
            else:
                offer(_End())
        except BaseException as exc:  # handed to the consumer, who raises it in its thread
            offer(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            got = slots.get()
            if isinstance(got, _End):
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        # The consumer stopped (done, failed or closed): let the worker finish its call
        # and go; it is a daemon, so a worker stuck in a long retry never blocks exit.
        stop.set()
        worker.join(timeout=_POLL_S * 2)
