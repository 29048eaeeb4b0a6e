"""Transparency log: append rate (SQLite, batched vs one entry per batch, and over HTTP), proof verification
time, and proof size and generation time as the tree grows to 10^6 leaves.

- appends: the log's own append path (signature check, leaf hashing, tree update, one signed checkpoint and
  one SQLite transaction with fsync per batch), batches of 256 against batches of 1, side by side;
- HTTP: 8 client processes (each its own identity, sequential requests) against `modeldeed registry serve`;
  the rate counts from the clients' first request to their last answer;
- scale: a SQLite node store filled with 10^6 leaf hashes through the same CompactRange the log uses (no
  entries or signatures: this measures the tree), then roots and proofs at 10^3 ... 10^6 read from it.

    python benchmarks/bench_registry.py                         # 20,000 appends, HTTP 8 x 250, scale 10^6
    python benchmarks/bench_registry.py --appends 2000 --http 0 --scale 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from modeldeed.registry import merkle
from modeldeed.registry.identity import Identity
from modeldeed.registry.log import TransparencyLog
from modeldeed.registry.logkey import create_log_key
from modeldeed.registry.note import SignerKey
from modeldeed.registry.receipt import verify_receipt
from modeldeed.registry.storage import open_storage

WORKER = """
import hashlib, sys, time
from modeldeed.registry import Identity, RegistryClient
url, count, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client, identity = RegistryClient(url), Identity.generate()
subs = [identity.submission("model", hashlib.sha256(f"{label}/{i}".encode()).hexdigest()) for i in range(count)]
print("ready", flush=True)
sys.stdin.readline()
start = time.time()
for sub in subs:
    client.submit(sub)
print(start, time.time(), flush=True)
"""


def submissions(count: int, label: str) -> list:
    identity = Identity.generate()
    return [identity.submission("model", hashlib.sha256(f"{label}/{i}".encode()).hexdigest()) for i in range(count)]


def bench_appends(count: int, work: Path) -> dict:
    signer = SignerKey.generate("bench.example/log")
    results = {}
    for batch, n in ((256, count), (1, max(200, count // 20))):
        subs = submissions(n, f"b{batch}")
        storage = open_storage(f"sqlite:///{work / f'append{batch}.db'}")
        log = TransparencyLog(storage, signer)
        start = time.perf_counter()
        for i in range(0, n, batch):
            log.append(subs[i : i + batch])
        elapsed = time.perf_counter() - start
        storage.close()
        results[f"batch_{batch}"] = {"entries": n, "seconds": elapsed, "per_second": n / elapsed}
    ratio = results["batch_256"]["per_second"] / results["batch_1"]["per_second"]
    print(f"appends (SQLite, synchronous=FULL): batches of 256: {results['batch_256']['per_second']:.0f}/s "
          f"({count} entries); batches of 1: {results['batch_1']['per_second']:.0f}/s; ratio {ratio:.1f}x")  # fmt: skip
    return results


def bench_http(per_client: int, clients: int, work: Path) -> dict:
    key = work / "log.key"
    create_log_key(key, "bench.example/log")
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-m", "modeldeed", "registry", "serve", "--db",
                               f"sqlite:///{work / 'http.db'}", "--log-key", str(key), "--port", str(port)],
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    workers = []
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/log-key", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, f"http://127.0.0.1:{port}", str(per_client),
                                     f"c{i}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                   for i in range(clients)]  # fmt: skip
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # all signed in advance; start together
            worker.stdin.write("go\n")
            worker.stdin.flush()
        spans = [tuple(map(float, worker.stdout.readline().split())) for worker in workers]
    finally:
        for worker in workers:
            worker.wait(timeout=600)
        server.terminate()
        server.wait(timeout=30)
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    total = per_client * clients
    print(f"appends over HTTP: {clients} client processes x {per_client}: {total / elapsed:.0f}/s ({elapsed:.1f} s)")
    return {"clients": clients, "per_client": per_client, "seconds": elapsed, "per_second": total / elapsed}


def fill_tree(path: Path, size: int) -> None:
    """The node table of a `size`-leaf log, written as the log writes it (every perfect subtree)."""
    storage = open_storage(f"sqlite:///{path}")
    storage.initialise("bench.example/scale", "unused")
    storage.close()
    tree = merkle.CompactRange()
    conn = sqlite3.connect(path)
    rows = []
    for i in range(size):
        rows.extend(
            (node.level, node.index, digest) for node, digest in tree.append(merkle.leaf_hash(i.to_bytes(8, "big")))
        )
        if len(rows) > 200_000:
            conn.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", rows)
            rows.clear()
    conn.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", rows)
    conn.execute("UPDATE meta SET tree_size = ?", (size,))
    conn.commit()
    conn.close()


def bench_scale(size: int, work: Path) -> dict:
    path = work / "scale.db"
    start = time.perf_counter()
    fill_tree(path, size)
    fill_seconds = time.perf_counter() - start
    storage = open_storage(f"sqlite:///{path}")
    rng = random.Random(0)
    rows = []
    sizes = [s for s in (10**3, 10**4, 10**5, 10**6, 10**7) if s <= size]
    for n in sizes:
        start = time.perf_counter()
        root = merkle.root_from_nodes(n, storage.read_nodes)
        root_ms = (time.perf_counter() - start) * 1000
        indices = [rng.randrange(n) for _ in range(200)]
        start = time.perf_counter()
        proofs = [merkle.inclusion_proof(i, n, storage.read_nodes) for i in indices]
        prove_ms = (time.perf_counter() - start) * 1000 / len(indices)
        leaves = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in indices]
        start = time.perf_counter()
        for _ in range(5):
            for i, leaf, proof in zip(indices, leaves, proofs):
                assert merkle.verify_inclusion(i, n, leaf, proof, root)
        verify_us = (time.perf_counter() - start) * 1e6 / (5 * len(indices))
        first = n // 3 + 1
        consistency = merkle.consistency_proof(first, n, storage.read_nodes)
        lengths = [len(p) for p in proofs]
        rows.append(
            {
                "size": n,
                "inclusion_hashes_max": max(lengths),
                "inclusion_hashes_median": statistics.median(lengths),
                "inclusion_bytes_max": 32 * max(lengths),
                "consistency_hashes": len(consistency),
                "root_ms": root_ms,
                "prove_ms": prove_ms,
                "verify_inclusion_us": verify_us,
            }
        )
    storage.close()
    print(f"scale: {size} leaves' node table written in {fill_seconds:.1f} s")
    print("tree size | inclusion proof: hashes (bytes) | consistency proof | root from nodes | prove | verify")
    for r in rows:
        print(
            f"{r['size']:>9} | {r['inclusion_hashes_max']:>3} ({r['inclusion_bytes_max']} B) | "
            f"{r['consistency_hashes']} hashes | {r['root_ms']:.2f} ms | {r['prove_ms']:.2f} ms | "
            f"{r['verify_inclusion_us']:.1f} µs"
        )
    return {"fill_seconds": fill_seconds, "rows": rows}


def bench_receipt(work: Path) -> dict:
    """verify_receipt end to end (two Ed25519 signatures, the audit path, parsing) on a 10,000-entry log."""
    storage = open_storage(f"sqlite:///{work / 'receipt.db'}")
    log = TransparencyLog(storage, SignerKey.generate("bench.example/log"))
    subs = submissions(10_000, "r")
    for i in range(0, len(subs), 1000):
        log.append(subs[i : i + 1000], verified=True)
    verifier = log.signer.verifier()
    receipts = [log.receipt(storage.entry(i)) for i in range(0, 10_000, 100)]
    start = time.perf_counter()
    assert all(verify_receipt(r, verifier).valid for r in receipts)
    per = (time.perf_counter() - start) * 1e6 / len(receipts)
    size = statistics.median(len(json.dumps(r.model_dump(mode="json"))) for r in receipts)
    storage.close()
    print(f"verify_receipt (signatures + audit path): {per:.0f} µs per receipt; receipt JSON {size:.0f} bytes")
    return {"verify_receipt_us": per, "receipt_json_bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=20_000, help="entries in the batched append run")
    parser.add_argument("--http", type=int, default=250, help="entries per HTTP client (0: skip; 8 clients)")
    parser.add_argument("--scale", type=int, default=1_000_000, help="leaves in the scale tree")
    parser.add_argument("--json", action="store_true", help="print all results as JSON at the end")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    try:
        results = {"appends": bench_appends(args.appends, work), "receipt": bench_receipt(work)}
        if args.http:
            results["http"] = bench_http(args.http, 8, work)
        results["scale"] = bench_scale(args.scale, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
