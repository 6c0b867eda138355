"""Who runs a job or holds a row: host and process, so a dead local process can be told."""

from __future__ import annotations

import os
import socket
import uuid


def process_id() -> str:
    """This process: 'host:pid'."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_id() -> str:
    """One sender in this process: 'host:pid:nonce' (a process may run several in turn)."""
    return f"{process_id()}:{uuid.uuid4().hex[:8]}"


def is_gone(owner: str) -> bool:
    """True when ``owner`` ('host:pid' or 'host:pid:nonce') ran on this host and has ended.

    Another host's process cannot be checked from here: only a lease can tell for it. A pid
    the system has given to a new process reads as alive, which errs on the safe side.
    """
    parts = owner.split(":")
    if len(parts) not in (2, 3) or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False
