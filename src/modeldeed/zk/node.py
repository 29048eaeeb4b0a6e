"""Running the o1js circuit: one `node` subprocess per command, JSON in on stdin, JSON out on stdout.

Why a subprocess and not a binding: o1js is a JavaScript library (Apache-2.0) whose prover runs as
WebAssembly in Node.js; there is no Python port. The boundary is kept narrow on purpose: Python validates
every value first (decimal field elements, sizes), the node process gets no path but the cache directory
modeldeed made, a minimal environment, a time limit, and a bounded answer. Its peak memory is measured with
wait4, so benchmarks report the prover's own footprint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError

log = logging.getLogger(__name__)

JS_DIR = Path(__file__).resolve().parent / "js"
O1JS_VERSION = "2.15.0"
MIN_NODE = (18, 14)
MAX_ANSWER_BYTES = 8 << 20
TIMEOUTS = {
    "commit": 300.0,
    "layout": 120.0,
    "check": 600.0,
    "challenge": 300.0,
    "rows": 900.0,
    "compile": 3600.0,
    "prove": 3600.0,
    "verify": 600.0,
}


# How o1js reports a statement that does not hold: an assertion that fails while the witness is computed, or a
# custom gate (a range check) that Kimchi finds unsatisfied when it divides by the vanishing polynomial.
UNSATISFIED = ("constraint unsatisfied", "assert", "could not be constructed", "vanishing polynomial")


class ZkToolchainError(ModeldeedError):
    """Node.js or the circuit's npm packages are missing or unusable."""


class CircuitRefused(ModeldeedError):
    """The circuit's constraints do not hold for the prover's inputs: no proof exists for that statement."""


@dataclass(frozen=True)
class NodeResult:
    answer: dict[str, Any]
    seconds: float
    peak_rss_bytes: int | None
    cpu_seconds: float  # user + system time of the node process (all its threads)


def node_executable() -> str | None:
    return os.environ.get("MODELDEED_NODE") or shutil.which("node")


def node_version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\s*", out)
    return tuple(int(g) for g in match.groups()) if match else None


def installed_o1js_version() -> str | None:
    try:
        doc = json.loads((JS_DIR / "node_modules" / "o1js" / "package.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    version = doc.get("version") if isinstance(doc, dict) else None
    return version if isinstance(version, str) else None


def toolchain_problem() -> str | None:
    """Why the circuit cannot run here (None when it can): what is missing and how to install it."""
    node = node_executable()
    if node is None:
        return "Node.js (`node`, version 18.14 or later) is not installed; it runs the o1js prover"
    version = node_version(node)
    if version is None or version[:2] < MIN_NODE:
        return f"{node} is not Node.js 18.14 or later (found {version})"
    installed = installed_o1js_version()
    if installed != O1JS_VERSION:
        found = f"version {installed}" if installed else "nothing"
        return (
            f"the circuit needs o1js {O1JS_VERSION} in {JS_DIR / 'node_modules'} (found {found}); "
            f"run `make zk-toolchain` (npm ci --prefix {JS_DIR})"
        )
    return None


def require_toolchain() -> str:
    problem = toolchain_problem()
    if problem:
        raise ZkToolchainError(problem)
    return node_executable()  # type: ignore[return-value]


def run_node(command: str, request: dict[str, Any], cache_dir: Path, *, timeout: float | None = None) -> NodeResult:
    """Run `node main.mjs COMMAND CACHE_DIR` with `request` on stdin; the answer, wall time and peak memory."""
    node = require_toolchain()
    limit = TIMEOUTS[command] if timeout is None else timeout
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cache_dir),  # o1js may look for a cache under $HOME; keep it inside ours
        "LANG": "C.UTF-8",
        "NODE_OPTIONS": "",
    }
    payload = json.dumps(request).encode()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [node, str(JS_DIR / "main.mjs"), command, str(cache_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=JS_DIR,
        env=env,
        start_new_session=True,
    )
    out, err = bytearray(), bytearray()
    threads = [
        threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True),
        threading.Thread(target=_drain, args=(proc.stdout, out, MAX_ANSWER_BYTES), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err, 64 << 10), daemon=True),
    ]
    for thread in threads:
        thread.start()
    timer = threading.Timer(limit, _kill, args=(proc,))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for thread in threads:
        thread.join(timeout=10)
    seconds = time.perf_counter() - started
    peak = usage.ru_maxrss * 1024 if usage.ru_maxrss else None
    if proc.returncode in (-signal.SIGKILL, -signal.SIGTERM) and seconds >= limit:
        raise ModeldeedError(f"the o1js {command} step did not finish within {limit:.0f} s and was stopped")
    answer = _answer(out, err, command, proc.returncode)
    cpu = usage.ru_utime + usage.ru_stime
    log.info("node %s: %.1f s (%.1f s CPU), peak memory %s MB", command, seconds, cpu, peak and round(peak / 2**20))
    return NodeResult(answer, seconds, peak, cpu)


def _feed(pipe: Any, payload: bytes) -> None:
    try:
        pipe.write(payload)
        pipe.close()
    except (BrokenPipeError, OSError):
        pass


def _drain(pipe: Any, sink: bytearray, limit: int) -> None:
    while chunk := pipe.read(1 << 16):
        if len(sink) < limit:
            sink.extend(chunk[: limit - len(sink)])


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _answer(out: bytearray, err: bytearray, command: str, code: int) -> dict[str, Any]:
    lines = bytes(out).strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        tail = bytes(err).decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ModeldeedError(f"the o1js {command} step failed (exit {code}): {' | '.join(tail) or 'no output'}")
    if answer["ok"] is not True:
        message = str(answer.get("error", "unknown error"))
        if command == "prove" and any(sign in message.lower() for sign in UNSATISFIED):
            raise CircuitRefused(f"the circuit refuses these inputs: {message[:300]}")
        raise ModeldeedError(f"the o1js {command} step failed: {message[:300]}")
    return answer
