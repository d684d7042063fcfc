"""A Django project served by a real, threaded WSGI server in a process of its own.

The end-to-end tests (tests/e2e) serve the example project this way, and the lockout
tests (tests/test_reauth_burst.py) the suite's own. ``launch()`` binds a free port of
127.0.0.1 and hands the listening socket down to ``python -m <module> FD``, whose
``serve()`` answers on it: connections wait in its backlog until the server is ready, and
nobody has to poll for it.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Long enough for the server to migrate its database on a slow machine; it normally answers
# in a few seconds.
STARTUP_TIMEOUT = 120


@dataclass
class ServedProcess:
    """A server started by ``launch()``."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> int:
        """Send one request outside any browser; return the status."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=STARTUP_TIMEOUT)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            connection.request(method, path, body=urlencode(body or {}), headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()

    def log(self, since: int = 0) -> str:
        return self.log_path.read_bytes()[since:].decode(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def launch(module: str, env: Mapping[str, str], log_path: Path, ready: str) -> ServedProcess:
    """Run ``python -m module FD`` with ``env`` (beside the environment) and return once
    ``GET ready`` answers 200 (else the test fails, with the server's log)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    host, port = listener.getsockname()
    with listener, log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "-m", module, str(listener.fileno())],
            pass_fds=[listener.fileno()],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # The child has its own copy of the listening socket (ours is closed): if it dies, the
    # socket goes with it and this request fails at once instead of waiting.
    server = ServedProcess(host, port, process, log_path)
    problem: str | None
    try:
        status = server.request("GET", ready)
    except OSError as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        problem = None if status == HTTPStatus.OK else f"status {status}"
    if problem is not None:
        server.stop()
        pytest.fail(f"The server {module} did not start ({problem}):\n{server.log()}")
    return server


def serve(listener: socket.socket, *, threaded: bool = True) -> None:
    """Serve the configured project on ``listener`` (bound and listening already), one
    thread per connection (or, not ``threaded``, every request on this thread, which then
    keeps its database connection between requests as ``CONN_MAX_AGE`` says); static
    files as ``runserver`` serves them."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, WSGIServer
    from django.core.wsgi import get_wsgi_application

    host, port = listener.getsockname()[:2]
    server_class = ThreadedWSGIServer if threaded else WSGIServer
    server = server_class((host, port), WSGIRequestHandler, bind_and_activate=False)
    server.socket.close()  # the one it made; it serves on ours
    server.socket = listener
    server.server_name, server.server_port = host, port
    server.setup_environ()
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    server.serve_forever()
