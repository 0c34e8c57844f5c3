"""Real hub processes for tests: ``cityhub serve`` started as a subprocess, with bounded waits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hub_env(**settings: str) -> dict[str, str]:
    """This process's environment without any CITYHUB_* of the developer's, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CITYHUB_")}
    return env | settings


@dataclass
class HubProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_hub(workdir: Path, name: str = "hub", *args: str, **settings: str) -> Iterator[HubProcess]:
    """``cityhub serve`` on a free port, ready (``/readyz`` 200) before the body runs, stopped with
    SIGTERM after it (killed if it does not stop within 30 s)."""
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cityhub", "serve", "--port", str(port), *args],
            cwd=workdir,
            env=hub_env(**settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    hub = HubProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{hub.output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{hub.url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready after 60 s:\n{hub.output()}")
            time.sleep(0.2)
        yield hub
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal for the supervisor to see
        assert process.wait(timeout=30) in (0, -signal.SIGTERM), hub.output()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
