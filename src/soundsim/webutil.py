"""What soundsim's two local web servers share (the listening page, ``soundsim serve``).

Both bind to a loopback address by default; there, a request whose ``Host`` header names
anything but a loopback name is refused (DNS rebinding: a page on another site resolving its
own name to 127.0.0.1 must not reach the server).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.exceptions import SecurityError

#: the addresses and host names that only this machine can reach
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def register_host_check(app: Flask, trusted_hosts: list[str]) -> None:
    """Refuse (400, :class:`SecurityError`) a request whose Host header names none of
    ``trusted_hosts``: the name counts (IPv6 literals in brackets, port dropped); werkzeug's
    own TRUSTED_HOSTS check cuts '[::1]:8000' at the first ':' and refuses it."""
    trusted = {h.strip("[]").lower() for h in trusted_hosts}

    @app.before_request
    def _check_host() -> None:
        name = urlsplit("//" + (request.host or "")).hostname or ""
        if name.lower() not in trusted:
            raise SecurityError(f"Host {request.host!r} is not trusted.")
