"""Real registry servers for tests: uvicorn in a thread of this process, or `modeldeed registry serve` as a
subprocess (for killing it). Both listen on 127.0.0.1 only and are stopped by the test that starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn

from modeldeed.registry.log import TransparencyLog
from modeldeed.registry.service import create_app
from modeldeed.registry.storage import open_storage


class ThreadServer:
    """The service over `db_url` with uvicorn in a background thread, on a port the OS picked."""

    def __init__(self, db_url: str, signer, **options) -> None:
        self.log = TransparencyLog(open_storage(db_url), signer)
        self.app = create_app(self.log, **options)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.socket.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What `registry serve` runs, without the CLI's other command groups (they import PyTorch, seconds per start)
SERVE = """
import sys
from modeldeed.registry.log import TransparencyLog
from modeldeed.registry.logkey import load_signer_key
from modeldeed.registry.service import serve
from modeldeed.registry.storage import open_storage
db, key, port = sys.argv[1:4]
serve(TransparencyLog(open_storage(db), load_signer_key(key)), "127.0.0.1", int(port))
"""


class ProcessServer:
    """The registry service in its own process and process group (SIGKILL reaches it and nothing else):
    `modeldeed registry serve` itself, or (`via_cli=False`) the same service started without the CLI."""

    def __init__(self, db_url: str, key_file: Path, *extra: str, port: int | None = None, via_cli: bool = True) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if via_cli:
            command = [sys.executable, "-m", "modeldeed", "registry", "serve", "--db", db_url, "--log-key",
                       str(key_file), "--port", str(self.port), *extra]  # fmt: skip
        else:
            command = [sys.executable, "-c", SERVE, db_url, str(key_file), str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/log-key", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError("the server did not answer within 60 s") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, whatever was in flight is cut off."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process.stderr.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        self.process.stderr.close()
