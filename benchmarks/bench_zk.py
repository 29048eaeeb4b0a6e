"""Zero-knowledge watermark proofs: compile, prove and verify time, peak memory and proof size, against the number
of hidden triggers and the model's size.

Each configuration gets a circuit with exactly n slots, n binary triggers Poseidon-committed and labelled as a
random MLP of that size classifies them (so every trigger counts; time does not depend on the weights), one
proof, and one verification in a fresh node process (as a stranger would run it). Times are wall and CPU
(user + system of the node process, from wait4); memory is the node process's peak resident size.

    .venv/bin/python benchmarks/bench_zk.py            # digits MLP at n = 8, 32, 64; two larger models at n = 8
    .venv/bin/python benchmarks/bench_zk.py --quick    # digits MLP at n = 8 only
    MODELDEED_ZK_CACHE=DIR ...                         # reuse compiled circuits (default: a fresh temporary one)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.models.mlp import MLP
from modeldeed.zk.circuit import CircuitSpec, circuit_dir, estimate_rows, setup
from modeldeed.zk.keys import poseidon_commitments
from modeldeed.zk.node import run_node, toolchain_problem
from modeldeed.zk.quantize import INPUT_LEVEL, quantize_mlp, strict_argmax
from modeldeed.zk.statement import Statement, challenges, honest_claims
from modeldeed.zk.trust import verifier_directory

FULL = [((64, 16, 10), 8), ((64, 16, 10), 32), ((64, 16, 10), 64), ((64, 64, 10), 8), ((784, 32, 10), 8)]
QUICK = [((64, 16, 10), 8)]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def domain_log(directory: Path) -> int | None:
    """The step circuit's domain (rows rounded up to a power of two), from o1js's cached step verification key."""
    for path in directory.glob("step-vk-*"):
        if path.suffix != ".header" and not path.name.endswith(".header"):
            size = int.from_bytes(bytes.fromhex(json.loads(path.read_text())["domain"][:16]), "little")
            return size.bit_length() - 1
    return None


def run(dims: tuple[int, ...], n: int) -> dict[str, object]:
    torch.manual_seed(0)
    side = int(round((dims[0]) ** 0.5))
    model = MLP(1, dims[-1], (side, side), dims[1:-1])
    q = quantize_mlp(model)
    images = (torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    logits = q.forward(images.flatten(1).long().numpy() * INPUT_LEVEL)[1]
    labels = [int(p) if p >= 0 else 0 for p in strict_argmax(logits)]
    nonces = [os.urandom(32) for _ in range(n)]
    spec = CircuitSpec(dims, n)
    commitments = tuple(int(c) for c in poseidon_commitments(images, labels, nonces))
    statement = Statement(spec, "ab" * 32, q.digest(), tuple(range(n)), commitments, q, 0.1)
    row = {"dims": "-".join(map(str, dims)), "n": n, "load_before": load_average()}
    started = time.perf_counter()
    key, compiled = setup(spec)
    row.update(compile_s=round(time.perf_counter() - started, 1) if compiled else None, rows_o1js=key.rows,
               rows_estimate=estimate_rows(dims, n), domain_log=domain_log(circuit_dir(spec)))  # fmt: skip
    claims = honest_claims(statement, 0, images, labels, nonces)
    ((seed, rhos),) = challenges(statement, [{"transcript": claims.transcript(statement.header(0, claims.correct))}])
    public = statement.public_input(0, claims.correct, seed, rhos)
    request = {**spec.request(), "public": public, "private": claims.private(), "vk_hash": key.vk_hash}
    proved = run_node("prove", request, circuit_dir(spec))
    proof = proved.answer["proof"]
    request = {"vk": key.vk, "wrap_domain_log": key.wrap_domain_log, "cases": [{"public": public, "proof": proof}]}
    checked = time.perf_counter()
    with verifier_directory(circuit_dir(spec)) as files:  # as zk-verify does: only pinned bytes reach node
        verified = run_node("verify", request, files.path)
    verify_total = time.perf_counter() - checked
    assert verified.answer["results"][0]["valid"] is True, verified.answer
    row.update(
        prove_s=round(proved.seconds, 1), prove_cpu_s=round(proved.cpu_seconds, 1),
        prove_inside_s=proved.answer.get("prove_seconds"), peak_mb=round((proved.peak_rss_bytes or 0) / 2**20),
        proof_bytes=len(proof), verify_s=round(verify_total, 1), verify_cpu_s=round(verified.cpu_seconds, 1),
        pinned_files=len(files.used),
        verify_inner_s=(verified.answer.get("seconds") or {}).get("verify"), load_after=load_average(),
    )  # fmt: skip
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the digits MLP at n = 8 only")
    parser.add_argument("--only", metavar="W-W-W:N", help="one configuration, e.g. 64-16-10:64")
    args = parser.parse_args()
    configs = QUICK if args.quick else FULL
    if args.only:
        widths, n = args.only.split(":")
        configs = [(tuple(int(w) for w in widths.split("-")), int(n))]
    problem = toolchain_problem()
    if problem:
        print(f"skipped: {problem}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("MODELDEED_ZK_CACHE", scratch)
        for i, (dims, n) in enumerate(configs):
            row = run(dims, n)
            if i == 0:
                print("| " + " | ".join(row) + " |")
                print("| " + " | ".join("---" for _ in row) + " |")
            print("| " + " | ".join(str(v) for v in row.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
