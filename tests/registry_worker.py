"""A submitter process for the reliability tests: registers COUNT artefacts under its own identity.

    python registry_worker.py URL COUNT OUT.jsonl LABEL

Each receipt is appended to OUT.jsonl (one JSON object a line, flushed) the moment it arrives, so a test
knows exactly which receipts were handed out before anything happened to the server.
"""

from __future__ import annotations

import hashlib
import json
import sys

from modeldeed.registry import Identity, RegistryClient


def main() -> int:
    url, count, out, label = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    client = RegistryClient(url, retries=10, retry_wait=0.1, timeout=60)
    identity = Identity.generate()
    with open(out, "a", encoding="utf-8") as handle:
        for i in range(count):
            digest = hashlib.sha256(f"{label}/{i}".encode()).hexdigest()
            submitted = client.register(identity, "model", digest)
            handle.write(json.dumps(submitted.receipt.model_dump(mode="json")) + "\n")
            handle.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
