"""Answer only to the host names a web app serves: no DNS rebinding.

A web page the marketing person visits can rebind its own name (evil.example) to 127.0.0.1
and read, as same-origin, whatever the loopback preview shows: stored contacts included. The
browser still sends ``Host: evil.example``, so refusing every Host the app does not serve
stops it; an IP literal cannot be rebound, so an address the server listens on is a name it
serves.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from flask import Flask, Response, request

from clubjapon_ops.hosts import is_loopback

# host or [IPv6], then an optional port: what RFC 9110's Host holds (userinfo never).
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::[0-9]{0,5})?")
# A server bound to these listens on every address of the machine.
_EVERY_ADDRESS = {"", "0.0.0.0", "::", "*"}


def host_name(header: str) -> str | None:
    """The name of a Host header, lower case, without port, brackets or final dot; None if
    it is malformed."""
    found = _HOST.fullmatch(header.strip())
    if found is None:
        return None
    if found["ipv6"] is not None:
        try:
            return str(ipaddress.IPv6Address(found["ipv6"]))
        except ValueError:
            return None
    name = found["name"].lower().rstrip(".")
    return name or None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class ServedHosts:
    """The host names an app answers to: loopback ones, and those it is reached by."""

    def __init__(self, names: Iterable[str | None]) -> None:
        given = {n.strip().strip("[]").lower().rstrip(".") for n in names if n is not None}
        # Bound to every address: any address of the machine is a way to it, no name is.
        self.any_address = bool(given & _EVERY_ADDRESS)
        self.names = {host_name(n) or n for n in given - _EVERY_ADDRESS}

    def serves(self, name: str) -> bool:
        """Whether a request for ``name`` is one for this app."""
        return (is_loopback(name) or name in self.names
                or (self.any_address and _is_address(name)))


def require_host(app: Flask, names: Iterable[str | None]) -> None:
    """Refuse, before anything else, a request whose Host ``app`` does not serve: 421, or
    400 without a Host; the answer names neither the path nor the host."""
    served = ServedHosts(names)

    @app.before_request
    def check_host() -> Response | None:
        header = request.environ.get("HTTP_HOST")
        # HTTP/1.1 requires a Host (RFC 9112, 3.2), and a browser always sends one.
        name = host_name(header) if header else None
        if name is None:
            return Response("Bad request\n", status=400, mimetype="text/plain")
        if not served.serves(name):
            return Response("Misdirected request: this server does not answer for that "
                            "host name\n", status=421, mimetype="text/plain")
        return None
