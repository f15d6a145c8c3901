"""A real API server in a subprocess (uvicorn), for tests that need real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(
    command: list[str], env: dict[str, str], *, timeout: float = 120
) -> Iterator[tuple[str, list[str]]]:
    """Run `python -m api <command> --port N` until it is ready; yields (base url, output).

    The output list is filled when the server has stopped (after the with block).
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api", *command, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"{command[0]} exited: {process.stdout.read() if process.stdout else ''}"
                )
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"{command[0]} did not become ready in {timeout:.0f} s")
        yield base, output
    finally:
        process.terminate()
        text, _ = process.communicate(timeout=30)
        output.append(text)
