"""A WSGI app served by waitress, as `web` and `preview --serve` run it, in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server


@contextmanager
def served(app: Any, threads: int = 2) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 for the block; yield its base URL."""
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Closed from the server's own loop: closing its sockets from here, under a running
        # select(), makes the loop fail with EBADF. With every channel gone the loop ends.
        def close_all() -> None:
            for channel in list(server._map.values()):
                channel.close()

        server.trigger.pull_trigger(close_all)
        thread.join(5)
        server.task_dispatcher.shutdown()
