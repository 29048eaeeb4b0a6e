"""Tasks as Ray tasks (`pip install modeldeed[ray]`): one task per item, results in the order of the items.

What is trusted: Ray moves task descriptions and results between the driver and the workers with pickle.
That channel joins processes the user runs on a cluster the user controls (Ray's token authentication is on
by default in the pinned 2.60); it is the user's own machinery, like the Python interpreter. Nothing read from a
proof, a model file or any other input ever travels through it: tasks carry paths and numbers, workers re-read
the files with modeldeed's bounded readers, and results are floats, booleans and strings.

Addresses: `local` starts a Ray instance in this process (no dashboard; it asks for 127.0.0.1, but Ray 2.60's
servers still listen on every interface, guarded by Ray's token authentication) and stops it on close; `auto`
joins the cluster started on this machine by `ray start`; `HOST:PORT` joins a cluster's head (GCS port);
`ray://HOST:PORT` goes through a Ray client server. A driver already connected to Ray (ray.init called by the
program that uses modeldeed as a library) is used as it is and left running.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import FormatError, ModeldeedError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection within this is reported unreachable
INSTALL_HINT = "pip install 'modeldeed[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ModeldeedError(f"--engine ray needs Ray, which is not installed here ({INSTALL_HINT})") from None
    return ray


def host_port(address: str) -> tuple[str, int]:
    """HOST:PORT of `HOST:PORT` or `ray://HOST:PORT`; ModeldeedError for anything else."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise ModeldeedError(f"--address must be auto, local, HOST:PORT or ray://HOST:PORT, got {address!r}")
    return host, int(port)


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast (bounded time) when nothing listens at the address, instead of letting Ray retry for minutes."""
    host, port = host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ModeldeedError(f"Ray cluster at {address} is unreachable ({exc})") from None


def name_of(fn: Callable[..., Any]) -> str:
    return repr(getattr(fn, "__name__", fn))


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


class RayEngine:
    """Run each item as a Ray task of `fn` (1 CPU, `gpus` GPUs each) and return the results in order."""

    name = "ray"
    distributed = True

    def __init__(self, address: str = "local", *, num_cpus: int | None = None) -> None:
        ray = import_ray()
        self._ray = ray
        self._owned = False
        self.address = address
        remote = address not in ("local", "auto")
        if remote:
            probe(address)
        if ray.is_initialized():
            here = ray.get_runtime_context().gcs_address
            if remote and not address.startswith("ray://") and host_port(address) != host_port(here):
                raise ModeldeedError(f"this process is already connected to the Ray cluster at {here}, not {address}")
            log.info("ray engine: using the Ray instance this process is already connected to (%s)", here)
            return
        quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if address == "local":
            # the workers do this command's own work: at Ray's default niceness (15) they would run behind every
            # other process of a shared machine, and a verification on 2 workers took longer than on none
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                _system_config={"worker_niceness": 0},
                **quiet,
            )
            self._owned = True
            return
        if num_cpus is not None:
            raise ModeldeedError("num_cpus is for a local Ray instance; a cluster has its own")
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise ModeldeedError(f"cannot join the Ray cluster at {address}: {one_line(exc)}") from None
        self._owned = True  # ray.shutdown() disconnects this driver; the cluster itself keeps running

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, gpus: float = 0.0) -> list[R]:
        ray = self._ray
        remote = ray.remote(fn).options(num_cpus=1, num_gpus=gpus, max_retries=0)
        refs = [remote.remote(item) for item in items]
        try:
            return list(ray.get(refs))
        except ray.exceptions.RayTaskError as exc:
            for ref in refs:
                ray.cancel(ref)
            cause = exc.cause if isinstance(exc.cause, Exception) else None
            if isinstance(cause, (FormatError, ModeldeedError)):
                raise type(cause)(str(cause)) from None
            raise ModeldeedError(f"a Ray task of {name_of(fn)} failed: {one_line(cause or exc)}") from None
        except ray.exceptions.RayError as exc:  # a worker or node died, an object was lost: no result to report
            raise ModeldeedError(f"Ray could not run the tasks of {name_of(fn)}: {one_line(exc)}") from None

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
