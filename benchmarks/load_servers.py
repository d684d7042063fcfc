"""The servers of the load benchmark: gunicorn (WSGI, sync workers) and uvicorn (ASGI,
async views), two processes each, on a loopback port, in a process group of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Final

import httpx

from benchmarks.load_project import HEALTH, Configuration

HOST: Final = "127.0.0.1"
PROCESSES: Final = 2
# Long enough for a server to start on a busy 2-core machine, next to the others.
STARTUP_TIMEOUT: Final = 120.0
STOP_TIMEOUT: Final = 10.0
POLL_INTERVAL: Final = 0.25


@dataclass(frozen=True)
class Kind:
    name: str
    async_views: bool

    def command(self, port: int) -> list[str]:
        if self.async_views:
            return [
                sys.executable, "-m", "uvicorn",
                "--factory", "django.core.asgi:get_asgi_application",
                "--host", HOST, "--port", str(port), "--workers", str(PROCESSES),
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
            "--bind", f"{HOST}:{port}", "--workers", str(PROCESSES), "--worker-class", "sync",
            "--log-level", "warning",
        ]  # fmt: skip


GUNICORN: Final = Kind("gunicorn", async_views=False)
UVICORN: Final = Kind("uvicorn", async_views=True)
KINDS: Final = (GUNICORN, UVICORN)


@dataclass
class Server:
    kind: Kind
    configuration: Configuration
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_bytes().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def wait_until_ready(self) -> str | None:
        """None once it answers, else why it never did (the end of its log)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return f"exited with {self.process.returncode}: {self.log_tail()}"
                try:
                    if client.get(HEALTH).status_code == HTTPStatus.OK:
                        return None
                except httpx.TransportError:
                    pass
                time.sleep(POLL_INTERVAL)  # a short poll while it starts
        return f"no answer after {STARTUP_TIMEOUT:.0f} s: {self.log_tail()}"

    def stop(self) -> None:
        """Stop its process group: the master, then whatever worker outlived it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with suppress(ProcessLookupError):  # else every process of the group is gone already
            os.killpg(self.process.pid, signal.SIGKILL)


def start(
    kind: Kind,
    *,
    configuration: Configuration,
    port: int,
    environment: Mapping[str, str],
    log_path: Path,
    root: Path,
) -> Server:
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            kind.command(port),
            env=dict(environment),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so that stop() ends its workers too.
            start_new_session=True,
        )
    return Server(kind, configuration, port, process, log_path)
