"""The /metrics HTTP endpoint: prometheus_client's WSGI app on a bounded, quiet server.

prometheus_client's own ``start_http_server`` runs a thread per connection with no read
timeout and lets ``wsgiref`` print every broken connection's traceback to stderr. The port
faces whatever can reach it, so here: at most ``MAX_CONNECTIONS`` at once (more are closed
at accept), ``READ_TIMEOUT_S`` per socket operation, and one rate-limited log line for what
a client broke.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from failover.log_limit import OUTSIDE_INPUT

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
READ_TIMEOUT_S = 5.0


class _LogStream:
    """Where ``wsgiref`` writes an application error's traceback: its last line, logged once."""

    def __init__(self) -> None:
        self._text: list[str] = []

    def write(self, s: str) -> None:
        self._text.append(s)

    def flush(self) -> None:
        lines = [ln for ln in "".join(self._text).splitlines() if ln.strip()]
        self._text.clear()
        if lines:
            log.warning("metrics request failed: %s", lines[-1].strip(), extra=OUTSIDE_INPUT)


class _Handler(WSGIRequestHandler):
    timeout = READ_TIMEOUT_S  # socketserver applies it to the connection's socket

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Requests are not logged."""

    def get_stderr(self) -> Any:
        return _LogStream()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        log.info(
            "metrics connection from %s ended: %s",
            client_address[0] if client_address else "?",
            f"{type(exc).__name__}: {exc}" if exc else "error",
            extra=OUTSIDE_INPUT,
        )


def start(host: str, port: int, registry: CollectorRegistry) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on host:port from a daemon thread; OSError when it cannot bind."""

    class Server(_Server):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, make_wsgi_app(registry), Server, handler_class=_Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return httpd, thread
