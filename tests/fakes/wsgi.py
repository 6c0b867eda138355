"""A WSGI app served by waitress, as `web` and `preview --serve` run it, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

# Long enough for a slow request on a loaded machine to finish; a test still hung after
# this is a defect worth an error.
_DRAIN_S = 60.0


@contextmanager
def served(app: Any, threads: int = 2) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 for the block; yield its base URL."""
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    loop = threading.Thread(target=server.run, name="waitress-loop", daemon=True)
    loop.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        shut_down(server, loop)


def _in_loop(server: Any, work: Any) -> None:
    """Run ``work`` in the server's loop thread and wait for it to have run.

    Sockets are only closed from the loop: closing one from here, under a running select(),
    makes the loop fail with EBADF.
    """
    done = threading.Event()

    def thunk() -> None:
        try:
            work()
        finally:
            done.set()

    server.trigger.pull_trigger(thunk)
    if not done.wait(_DRAIN_S):
        raise RuntimeError("the waitress loop did not answer its trigger")


def shut_down(server: Any, loop: threading.Thread) -> None:
    """Stop a waitress server in the one order in which nothing touches a closed descriptor.

    Worker threads pull the loop's trigger (a pipe) whenever they finish a request, and the
    loop closes that pipe when it closes its channels: so the workers must all be gone before
    the channels are closed, and the loop must still run while they finish (it writes their
    answers out).
    """
    # 1. No new connections: the listening socket goes (not the trigger, whose close would
    #    come with BaseWSGIServer.close()).
    _in_loop(server, lambda: wasyncore.dispatcher.close(server))
    # 2. Let every worker finish its request and exit; queued requests are cancelled.
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=_DRAIN_S)
    if server.task_dispatcher.threads:
        # Closing the trigger now could let a late worker write to a closed (or reused)
        # descriptor: leave the daemon loop running and say so.
        raise RuntimeError(f"{len(server.task_dispatcher.threads)} waitress worker(s) "
                           f"still busy after {_DRAIN_S:.0f} s")
    # 3. Nobody pulls the trigger any more. Each channel closes once its answer is written
    #    out (a worker's last answer may still sit in its buffer); then the trigger goes, from
    #    the loop, and with its map empty the loop returns.
    def others() -> list[Any]:
        return [c for c in list(server._map.values()) if c is not server.trigger]

    def close_when_flushed() -> None:
        for channel in others():
            channel.close_when_flushed = True

    _in_loop(server, close_when_flushed)
    deadline = time.monotonic() + _DRAIN_S
    still_open: list[Any] = []

    def look() -> None:
        still_open[:] = others()  # read in the loop: its map changes only there

    _in_loop(server, look)
    while still_open and time.monotonic() < deadline:
        time.sleep(0.01)  # a client still reading its answer: look again, up to the deadline
        _in_loop(server, look)

    def close_all() -> None:
        for channel in others():  # a client that stopped reading: cut off
            channel.close()
        server.trigger.close()

    server.trigger.pull_trigger(close_all)
    loop.join(_DRAIN_S)
    if loop.is_alive():
        raise RuntimeError("the waitress loop did not stop")
