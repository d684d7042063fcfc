"""A gate for the password checks of a server under test, to time a burst of attempts.

The server's authentication backend (``GatedBackend``, through ``tests.live_settings``)
connects to the test's ``Gate`` before each re-authentication check and waits for its
go-ahead: the test counts the checks as they arrive (exactly, across the server's threads
and processes) and, while the gate is shut, holds them, so that it decides what the
server does meanwhile. Logins pass through the gate uncounted.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

GATE_VARIABLE = "LIVE_GATE"  # host:port of the test's gate, in the server's environment
REAUTH_PATH = "/account/sessions/reauth/"
# A check held longer than this fails the server's request, not the whole run.
HOLD_TIMEOUT = 60


class GatedBackend(ModelBackend):
    """Django's ModelBackend, each re-authentication check first cleared by the gate."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        gate = os.environ.get(GATE_VARIABLE)
        if gate and request is not None and request.path == REAUTH_PATH:
            host, port = gate.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=HOLD_TIMEOUT) as conn:
                if conn.recv(1) != b"+":
                    return None  # the gate went away: no check, no confirmation
        return super().authenticate(request, username, password, **kwargs)


class Gate:
    """The test's side: counts the checks that arrive, lets them through while open,
    holds them while shut."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._lock = threading.Condition()
        self._held: list[socket.socket] = []
        self._open = True
        self.checks = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.checks += 1
                if self._open:
                    self._let_through(conn)
                else:
                    self._held.append(conn)
                self._lock.notify_all()

    @staticmethod
    def _let_through(conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"+")

    def shut(self) -> None:
        with self._lock:
            self._open = False

    def open(self) -> None:
        """Let the held checks through, and any that come later."""
        with self._lock:
            self._open = True
            for conn in self._held:
                self._let_through(conn)
            self._held.clear()

    def wait_for_checks(self, count: int, timeout: float) -> int:
        """Wait until ``count`` checks have arrived (or ``timeout`` seconds); return the
        number that has."""
        with self._lock:
            self._lock.wait_for(lambda: self.checks >= count, timeout)
            return self.checks

    def close(self) -> None:
        self.open()
        self._listener.close()
