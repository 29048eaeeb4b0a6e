"""The log as an HTTP service (FastAPI + uvicorn): JSON endpoints for clients, server-rendered pages for a judge.

    POST /api/v1/entries                       submit {kind, digest, submitter_key, signature} -> receipt
                                               (201 new entry, 200 the existing one for that triple)
    GET  /api/v1/entries/{index}               one entry
    GET  /api/v1/entries?digest=HEX            every registration of a digest, earliest first
    GET  /api/v1/entries/{index}/receipt       the entry's receipt (integration checkpoint + audit path)
    GET  /api/v1/checkpoint                    the latest signed checkpoint
    GET  /api/v1/checkpoints/{size}            the checkpoint signed at that tree size
    GET  /api/v1/proofs/inclusion?index=&size= an audit path against any tree size up to the latest
    GET  /api/v1/proofs/consistency?first=&second=
    GET  /api/v1/log-key                       the log's verifier key (for convenience: trust it from elsewhere)
    GET  /, /search?digest=, /entry/{index}    the judge's pages (web.py)

Every client mistake is a 4xx with {"error": "<reason>"}: malformed JSON, wrong types, unknown kinds, bad
signatures, oversized bodies (refused from Content-Length before reading, or as soon as a streamed body
passes the limit), keys outside an allow-list. Storage failures answer 503, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FormatError
from ..files import parse_json_bytes
from ..schema import validate_document
from .checkpoint import CheckpointDocument
from .entry import Entry, Submission
from .log import Integrator, SubmissionRejected, TransparencyLog
from .storage import StorageError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096  # a submission is about 400 bytes of JSON
MAX_INDEX = 2**63 - 1
Index = Annotated[int, Path(ge=0, le=MAX_INDEX)]


class ClientError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ClientError(413, f"the body is {declared} bytes, more than the {limit} allowed")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ClientError(413, f"the body is more than the {limit} bytes allowed")
    return bytes(body)


def parse_submission(body: bytes) -> Submission:
    try:
        obj = parse_json_bytes(body, "request body", max_depth=4, max_bytes=MAX_BODY_BYTES)
        return validate_document(Submission, obj, "request body")
    except FormatError as exc:
        raise ClientError(400, str(exc)) from None


def create_app(
    tlog: TransparencyLog,
    *,
    allow: frozenset[str] | None = None,
    batch_size: int = 256,
    batch_wait: float = 0.005,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The service over one log. `allow`: submitter public keys (hex) that may register; None = anyone."""
    state: dict[str, Integrator] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["integrator"] = Integrator(tlog, batch_size=batch_size, batch_wait=batch_wait, verified=True)
        try:
            yield
        finally:
            state.pop("integrator").close()
            tlog.storage.close()

    app = FastAPI(title="modeldeed registry", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.log = tlog

    @app.exception_handler(ClientError)
    async def _client_error(request: Request, exc: ClientError) -> JSONResponse:
        return _error(exc.status, exc.reason)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        where = ".".join(str(part) for part in errors[0].get("loc", ())) if errors else ""
        return _error(422, f"{where}: {errors[0].get('msg', 'invalid')}" if errors else "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(StorageError)
    @app.exception_handler(sqlite3.Error)
    async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("storage failed: %s", exc)
        return _error(503, "the log's storage is unavailable; try again")

    try:
        import psycopg

        app.add_exception_handler(psycopg.Error, _storage_error)
    except ImportError:  # pragma: no cover - psycopg is part of the registry extra
        pass

    @app.post("/api/v1/entries")
    async def submit(request: Request) -> JSONResponse:
        submission = parse_submission(await read_bounded_body(request, max_body))
        if allow is not None and submission.submitter_key not in allow:
            raise ClientError(403, "this log accepts submissions only from listed keys; this key is not listed")
        if not submission.signature_valid():
            raise ClientError(400, "the submitter's signature over (kind, digest) does not verify")
        try:
            result = await asyncio.wrap_future(state["integrator"].submit(submission))
        except SubmissionRejected as exc:
            raise ClientError(400, str(exc)) from None
        receipt = await run_in_threadpool(tlog.receipt, result.entry)
        return JSONResponse(receipt.model_dump(mode="json"), status_code=201 if result.new else 200)

    def stored_entry(index: int) -> Entry:
        entry = tlog.storage.entry(index)
        if entry is None:
            raise ClientError(404, f"no entry {index} (the log has {tlog.size})")
        return entry

    @app.get("/api/v1/entries/{index}")
    def get_entry(index: Index) -> dict[str, Any]:
        return stored_entry(index).model_dump(mode="json")

    @app.get("/api/v1/entries")
    def find_entries(digest: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")]) -> dict[str, Any]:
        return {"entries": [e.model_dump(mode="json") for e in tlog.storage.entries_by_digest(digest)]}

    @app.get("/api/v1/entries/{index}/receipt")
    def get_receipt(index: Index) -> dict[str, Any]:
        return tlog.receipt(stored_entry(index)).model_dump(mode="json")

    def checkpoint_document(note: bytes | None, missing: str) -> dict[str, Any]:
        if note is None:
            raise ClientError(404, missing)
        return CheckpointDocument.of(note).model_dump(mode="json")

    @app.get("/api/v1/checkpoint")
    def latest_checkpoint() -> dict[str, Any]:
        return checkpoint_document(tlog.storage.latest_checkpoint(), "the log is empty: no checkpoint signed yet")

    @app.get("/api/v1/checkpoints/{size}")
    def checkpoint_at(size: Index) -> dict[str, Any]:
        return checkpoint_document(tlog.storage.checkpoint(size), f"no checkpoint was signed at tree size {size}")

    @app.get("/api/v1/proofs/inclusion")
    def inclusion(index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
                  size: Annotated[int, Query(ge=1, le=MAX_INDEX)]) -> dict[str, Any]:  # fmt: skip
        if not index < size <= tlog.size:
            raise ClientError(400, f"need index < size <= {tlog.size} (the log's size), got index {index}, size {size}")
        hashes = tlog.inclusion_proof(index, size)
        return {"leaf_index": index, "tree_size": size, "hashes": [h.hex() for h in hashes]}

    @app.get("/api/v1/proofs/consistency")
    def consistency(first: Annotated[int, Query(ge=0, le=MAX_INDEX)],
                    second: Annotated[int, Query(ge=0, le=MAX_INDEX)]) -> dict[str, Any]:  # fmt: skip
        if not first <= second <= tlog.size:
            raise ClientError(400, f"need first <= second <= {tlog.size} (the log's size), got {first}, {second}")
        hashes = tlog.consistency_proof(first, second)
        return {"first": first, "second": second, "hashes": [h.hex() for h in hashes]}

    @app.get("/api/v1/log-key")
    def log_key() -> dict[str, str]:
        return {"verifier_key": str(tlog.signer.verifier())}

    from .web import add_pages

    add_pages(app, tlog)
    return app


def serve(tlog: TransparencyLog, host: str, port: int, *, allow: frozenset[str] | None = None, **options: Any) -> None:
    """Run the service with uvicorn until interrupted (one process: the log has exactly one writer)."""
    import uvicorn

    app = create_app(tlog, allow=allow, **options)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, workers=1)
