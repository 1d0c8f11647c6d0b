"""A local HTTP server in a thread, for the tests' stand-ins of remote services."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(
    handle: Callable[[BaseHTTPRequestHandler], None],
    *,
    methods: Sequence[str] = ("POST",),
    keep_alive: bool = False,
) -> ThreadingHTTPServer:
    """Serve ``methods`` on 127.0.0.1 (a free port) by calling ``handle`` with each request."""
    attrs: dict[str, Any] = {
        "log_message": lambda self, format, *args: None,  # quiet
        **{f"do_{m}": lambda self: handle(self) for m in methods},
    }
    if keep_alive:
        attrs["protocol_version"] = "HTTP/1.1"  # every answer must carry a Content-Length
        attrs["disable_nagle_algorithm"] = True  # headers and body are two writes: no 40 ms stalls
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Handler", (BaseHTTPRequestHandler,), attrs)
    )
    server.daemon_threads = True
    # a short poll interval: `shutdown` waits up to one interval
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    return server


def stop(server: ThreadingHTTPServer | None) -> None:
    assert server is not None
    server.shutdown()
    server.server_close()
