"""An HTTP client for the registry service, on the standard library alone (urllib).

Nothing the server answers is trusted: responses are size-bounded, parsed strictly and validated as
documents; receipts and checkpoints are to be checked with `verify_receipt` / `open_checkpoint` against
a log key obtained elsewhere. Submissions are idempotent on the server, so `submit` retries on connection
failures (a log restarting, a dropped connection) without risk of registering twice.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..crypto import parse_hex
from ..errors import FormatError, ModeldeedError
from ..files import parse_json_bytes
from ..schema import validate_document
from .checkpoint import CheckpointDocument
from .entry import Entry, Submission
from .identity import Identity
from .receipt import Receipt

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4 << 20


class RegistryError(ModeldeedError):
    """The registry could not be reached, or refused the request (the message carries its reason)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Submitted:
    receipt: Receipt
    new: bool  # False: this (kind, digest, key) was registered before and this is the earlier entry


class RegistryClient:
    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 3, retry_wait: float = 0.5) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ModeldeedError(f"--registry {base_url[:80]!r}: expected an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.retry_wait = retry_wait

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, body: bytes | None = None, *, retry: bool = False) -> tuple[int, Any]:
        url = self.base_url + path
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            request = urllib.request.Request(url, data=body, method=method)
            if body is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, self._parse(response.read(MAX_RESPONSE_BYTES + 1), url)
            except urllib.error.HTTPError as exc:
                raise RegistryError(f"{url}: {exc.code} {self._reason(exc)}", exc.code) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                if attempt + 1 == attempts:
                    reason = getattr(exc, "reason", exc)
                    raise RegistryError(f"{url}: cannot reach the registry ({reason})") from None
                log.info("registry unreachable (%s); retrying", exc)
                time.sleep(self.retry_wait * (2**attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def _parse(data: bytes, url: str) -> Any:
        if len(data) > MAX_RESPONSE_BYTES:
            raise RegistryError(f"{url}: the response is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            return parse_json_bytes(data, url, max_bytes=MAX_RESPONSE_BYTES)
        except FormatError as exc:
            raise RegistryError(str(exc)) from None

    @staticmethod
    def _reason(exc: urllib.error.HTTPError) -> str:
        try:
            obj = json.loads(exc.read(8192))
            return str(obj.get("error", obj))[:500] if isinstance(obj, dict) else str(obj)[:500]
        except (ValueError, OSError):
            return str(exc.reason)

    def _document(self, model: type, obj: Any, what: str) -> Any:
        try:
            return validate_document(model, obj, f"{self.base_url} ({what})")
        except FormatError as exc:
            raise RegistryError(str(exc)) from None

    # ------------------------------------------------------------------ the API

    def submit(self, submission: Submission) -> Submitted:
        body = json.dumps(submission.model_dump(mode="json")).encode()
        status, obj = self._request("POST", "/api/v1/entries", body, retry=True)
        return Submitted(self._document(Receipt, obj, "receipt"), status == 201)

    def register(self, identity: Identity, kind: str, digest: str) -> Submitted:
        """Sign (kind, digest) with `identity` and submit it; the receipt is the log's answer (verify it)."""
        return self.submit(identity.submission(kind, digest))

    def entry(self, index: int) -> Entry:
        return self._document(Entry, self._request("GET", f"/api/v1/entries/{int(index)}")[1], "entry")

    def entries_by_digest(self, digest: str) -> list[Entry]:
        """Every registration of `digest`, earliest first."""
        query = urllib.parse.urlencode({"digest": digest})
        obj = self._request("GET", f"/api/v1/entries?{query}")[1]
        if not isinstance(obj, dict) or not isinstance(obj.get("entries"), list):
            raise RegistryError(f"{self.base_url}: the entry list is malformed")
        return [self._document(Entry, e, "entry") for e in obj["entries"]]

    def receipt(self, index: int) -> Receipt:
        obj = self._request("GET", f"/api/v1/entries/{int(index)}/receipt")[1]
        return self._document(Receipt, obj, "receipt")

    def latest_checkpoint(self) -> CheckpointDocument:
        return self._document(CheckpointDocument, self._request("GET", "/api/v1/checkpoint")[1], "checkpoint")

    def checkpoint(self, size: int) -> CheckpointDocument:
        obj = self._request("GET", f"/api/v1/checkpoints/{int(size)}")[1]
        return self._document(CheckpointDocument, obj, "checkpoint")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        obj = self._request("GET", f"/api/v1/proofs/inclusion?index={int(index)}&size={int(size)}")[1]
        return self._hashes(obj)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        obj = self._request("GET", f"/api/v1/proofs/consistency?first={int(first)}&second={int(second)}")[1]
        return self._hashes(obj)

    def _hashes(self, obj: Any) -> list[bytes]:
        hashes = obj.get("hashes") if isinstance(obj, dict) else None
        if not isinstance(hashes, list) or len(hashes) > 130:
            raise RegistryError(f"{self.base_url}: the proof is malformed")
        try:
            return [parse_hex(h, 32, "a proof hash") for h in hashes]
        except ValueError as exc:
            raise RegistryError(f"{self.base_url}: {exc}") from None
