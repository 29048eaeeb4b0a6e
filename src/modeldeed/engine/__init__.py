"""Where independent tasks run: in this process (`local`, the default, no dependency) or on a Ray cluster (`ray`).

An engine maps a module-level function over a list of task descriptions and returns the results in order.
A task description is plain data (paths, indices, numbers, strings): a worker, possibly on another node,
re-reads whatever files the task names through the same bounded readers and trusts nothing it did not
re-check; it never receives a model or a tensor from the driver, and it returns plain values.

Example:
    with open_engine("ray", "local") as engine:
        squares = engine.map(square, [1, 2, 3])  # square: a function importable on the workers
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from ..errors import ModeldeedError

T = TypeVar("T")
R = TypeVar("R")

ENGINE_NAMES = ("local", "ray")


class Engine(Protocol):
    name: str
    distributed: bool  # True: tasks run in other processes (maybe other machines), so they must be plain data

    def map(self, fn: Callable[[Any], R], items: Sequence[Any], *, gpus: float = 0.0) -> list[R]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


class LocalEngine:
    """Run every task here, one after another, in order (what the verifier did before engines existed)."""

    name = "local"
    distributed = False

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, gpus: float = 0.0) -> list[R]:
        return [fn(item) for item in items]

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(name: str = "local", address: str | None = None, **options: Any) -> Engine:
    """The engine `name`; for `ray`, connected to `address` (see `engine.ray_engine.RayEngine`)."""
    if name == "local":
        if address is not None:
            raise ModeldeedError("--address is for --engine ray; the local engine runs in this process")
        return LocalEngine()
    if name == "ray":
        from .ray_engine import RayEngine

        return RayEngine(address or "local", **options)
    raise ModeldeedError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


__all__ = ["ENGINE_NAMES", "Engine", "LocalEngine", "open_engine"]
