"""Local stand-ins for AWS services, bound to 127.0.0.1: dynalite for DynamoDB."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DYNALITE_BIN = REPO / ".tools" / "node_modules" / ".bin" / "dynalite"

# dynalite never checks credentials, but botocore refuses to sign without some.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dynalite_binary() -> str:
    configured = os.environ.get("CARVE_DYNALITE")
    if configured:
        return configured
    if DYNALITE_BIN.exists():
        return str(DYNALITE_BIN)
    found = shutil.which("dynalite")
    if found:
        return found
    raise FileNotFoundError(
        f"dynalite not found at {DYNALITE_BIN}; run `make setup` (npm install --prefix .tools dynalite@4.0.0)"
    )


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a child we started; kill it if it has not gone within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Dynalite:
    """A dynalite process on 127.0.0.1; in memory, so every start is an empty DynamoDB."""

    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> "Dynalite":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_dynalite(port: int | None = None, timeout: float = 20.0) -> Dynalite:
    port = port or free_port()
    process = subprocess.Popen(
        [dynalite_binary(), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Dynalite(port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dynalite exited with status {process.returncode} on port {port}")
        if _answers(server.url):
            return server
        time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"dynalite did not answer on {server.url} within {timeout:.0f}s")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is listening
    except OSError:
        return False
    return True
