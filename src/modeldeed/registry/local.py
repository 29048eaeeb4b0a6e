"""A registry on loopback for the length of one `with` block: the demo's own log, nothing left running.

    with local_registry(run / "registry") as local:      # SQLite and a fresh log key in that folder
        receipt = local.client.register(identity, "model", digest).receipt
        verify_receipt(receipt, local.log_key)

The service is the real one (`service.create_app` over SQLite, uvicorn), on 127.0.0.1 and a port the operating
system picks, in a background thread of this process; leaving the block stops it and closes the database,
whatever happened inside. It is a log like any other: its receipts verify offline with `log.key.pub`, which
stays in the folder with the database (the signing key too, so that the log can be reopened and audited).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModeldeedError
from .client import RegistryClient
from .note import VerifierKey

log = logging.getLogger(__name__)

DB_FILE = "registry.db"
KEY_FILE = "log.key"
START_SECONDS = 20.0


@dataclass(frozen=True)
class LocalRegistry:
    url: str
    client: RegistryClient
    log_key: VerifierKey
    public_key_file: Path
    db_file: Path


@contextmanager
def local_registry(folder: str | Path, origin: str = "modeldeed.local/demo") -> Iterator[LocalRegistry]:
    """Start a log over `folder`/registry.db (a new log key unless one is there), yield it, stop it."""
    import uvicorn

    from .log import TransparencyLog
    from .logkey import create_log_key, load_signer_key, public_path
    from .service import create_app
    from .storage import open_storage

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / KEY_FILE
    signer = load_signer_key(key_file) if key_file.exists() else create_log_key(key_file, origin)
    tlog = TransparencyLog(open_storage(f"sqlite:///{folder / DB_FILE}"), signer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(tlog), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="local-registry")
    thread.start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise ModeldeedError(f"{folder}: the local registry did not start within {START_SECONDS:g} s")
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        log.info("local registry %s on %s", signer.name, url)
        yield LocalRegistry(url, RegistryClient(url, retries=0), signer.verifier(), public_path(key_file),
                            folder / DB_FILE)  # fmt: skip
    finally:
        server.should_exit = True
        thread.join(timeout=START_SECONDS)
        sock.close()
        if thread.is_alive():
            log.warning("the local registry on port %d did not stop within %g s", port, START_SECONDS)
