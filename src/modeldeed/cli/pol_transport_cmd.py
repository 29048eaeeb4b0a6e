"""`pol commit-proof` and `pol open`: publish a small commitment, then hand over only the challenged part.

modeldeed pol commit-proof runs/p/proof --out runs/p/commitment.json      # publish / register this
modeldeed pol open runs/p/proof --commitment runs/p/commitment.json --out runs/p/opened
modeldeed pol verify runs/p/opened --hardened --statement runs/commit --commitment runs/p/commitment.json
"""

from __future__ import annotations

import argparse

from ..errors import ModeldeedError
from .common import add_data_options, add_trust_option
from .pol_hardened_cmd import receipts_from_args
from .registration_options import (
    print_registration,
    receipt_path_for,
    register_digest,
    register_with,
    registrar,
    registry_options,
)


def register(sub: argparse._SubParsersAction) -> None:
    from ..pol.challenge import DEFAULT_MIN_FABRICATED, DEFAULT_SOUNDNESS_BITS

    c = sub.add_parser(
        "commit-proof",
        help="write a proof's commitment: one Merkle root over its checkpoints and step records",
        description="Write the commitment of a finished proof (a Merkle root over the exact training state at "
        "every checkpoint and every step record, the counts, the header's SHA-256 and the statement's id; a few "
        "hundred bytes whatever the proof's length). Publish or register it: the verifier's challenge is drawn "
        "from it, and `pol open` opens the proof for that challenge.",
    )
    c.add_argument("proof", metavar="PROOF", help="a proof directory (holding proof.json)")
    c.add_argument("--out", required=True, metavar="FILE", help="where to write the commitment (JSON)")
    c.add_argument("--json", action="store_true", help="print the commitment as one JSON object")
    add_trust_option(c)
    registry_options(
        c,
        "the commitment (kind pol-commitment: the challenge then draws on the log's beacon)",
        "NAME.receipt.json next to --out",
    )
    c.set_defaults(handler=run_commit_proof)

    o = sub.add_parser(
        "open",
        help="write the part of a proof that its commitment's challenge asks for",
        description="Derive the challenge from the commitment (and the registry's beacon, once the commitment is "
        "registered) and write only what the challenged intervals need into OUT: their step records, their "
        "start checkpoints (and end checkpoints, unless --starts-only), the stored samples they use, each with its "
        "Merkle path to the commitment's root. Verify it with `pol verify OUT --hardened`.",
    )
    o.add_argument("proof", metavar="PROOF", help="a proof directory (holding proof.json)")
    o.add_argument("--commitment", required=True, metavar="FILE", help="the commitment of `pol commit-proof`")
    o.add_argument("--out", required=True, metavar="DIR", help="a new directory for the opened proof")
    o.add_argument(
        "--receipt",
        metavar="FILE",
        help="the registry receipt of the commitment (checked with --log-key): the challenge draws on its beacon",
    )
    o.add_argument("--log-key", metavar="PUB", help="the transparency log's public key file (for --receipt)")
    o.add_argument(
        "--soundness-bits",
        type=float,
        default=DEFAULT_SOUNDNESS_BITS,
        metavar="B",
        help=f"the verifier's soundness level (default: {DEFAULT_SOUNDNESS_BITS:g})",
    )
    o.add_argument(
        "--min-fabricated",
        type=float,
        default=DEFAULT_MIN_FABRICATED,
        metavar="F",
        help=f"the verifier's minimum fabricated fraction (default: {DEFAULT_MIN_FABRICATED:g})",
    )
    o.add_argument(
        "--starts-only",
        action="store_true",
        help="leave out the end checkpoints: enough for a verifier in the recorded environment (exact replay, "
        "checked by digests), not for one that replays within a tolerance",
    )
    add_trust_option(o)
    o.set_defaults(handler=run_open)

    x = sub.add_parser(
        "extract-model",
        help="rebuild the trained model directory from a complete proof's last checkpoint",
        description="Rebuild the model directory that `train --proof` writes, from the proof's last checkpoint "
        "(hash-checked against proof.json): bit for bit the weights training ended with. For a run whose proof "
        "was complete but whose model was never saved (a full disk, an interruption). The data (the proof's "
        "own, checked by its fingerprint) gives the class names and the test accuracy in model.json.",
    )
    x.add_argument("proof", metavar="PROOF", help="a complete proof directory (holding proof.json)")
    x.add_argument("--out", required=True, metavar="DIR", help="where to write model.safetensors and model.json")
    x.add_argument("--force", action="store_true", help="replace a model already in --out")
    add_data_options(x)
    add_trust_option(x)
    x.set_defaults(handler=run_extract_model)


def run_commit_proof(args: argparse.Namespace) -> int:
    from ..pol.commitment import commit_proof, save_commitment
    from .common import print_json

    registry = registrar(args)  # loaded (and checked) before anything is made
    commitment, _ = commit_proof(args.proof, trust_code=args.trust_model_code)
    save_commitment(args.out, commitment)
    registration = None
    if registry is not None:
        from ..pol.registration import COMMITMENT_KIND, commitment_id

        how = f"modeldeed registry publish {args.out} --registry {args.registry} --identity {args.identity} --out ..."
        register = register_digest(COMMITMENT_KIND, commitment_id(commitment))
        registration = register_with(registry, register, receipt_path_for(args.out), "the commitment", how)
    if args.json:
        print_json({"id": commitment.id, **commitment.to_json(), "registration": registration})
        return 1 if registration is not None and registration["problems"] else 0
    print(
        f"commitment {commitment.id} (root {commitment.root[:16]}..., {commitment.intervals} intervals, "
        f"{commitment.total_steps} steps) written to {args.out}"
    )
    return print_registration(registration, "the proof commitment") if registration is not None else 0


def run_open(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..pol.commitment import load_commitment
    from ..pol.opened import open_proof
    from ..pol.proof import PROOF_FILE

    if not (Path(args.proof) / PROOF_FILE).exists():
        raise ModeldeedError(f"{args.proof}: not a finished proof directory (no {PROOF_FILE})")
    if args.log_key and not args.receipt:
        raise ModeldeedError("--log-key checks the commitment's --receipt; give it too")
    commitment = load_commitment(args.commitment)
    beacon = None
    receipts = receipts_from_args(args.receipt, None, args.log_key)
    if receipts is not None:
        from ..pol.registration import bind

        binding = bind(receipts, commitment, None)
        if binding.problems:
            raise ModeldeedError(f"{args.receipt}: " + "; ".join(binding.problems))
        beacon = binding.beacon
    challenge, written = open_proof(
        args.proof,
        args.out,
        commitment=commitment,
        beacon=beacon,
        soundness_bits=args.soundness_bits,
        min_fabricated=args.min_fabricated,
        ends=not args.starts_only,
        trust_code=args.trust_model_code,
    )
    total = sum(p.stat().st_size for p in Path(args.proof).rglob("*") if p.is_file())
    print(
        f"opened {challenge.count} of {challenge.total} intervals ({', '.join(map(str, challenge.intervals[:12]))}"
        f"{' ...' if challenge.count > 12 else ''}) into {args.out}: {written} bytes, {written / total:.3f} of the "
        f"proof's {total}"
    )
    return 0


def run_extract_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models import save_model
    from ..pol.extract import model_from_proof
    from ..training import accuracy
    from .common import load_data, percent
    from .train_cmd import trained_model_info

    out = Path(args.out)
    existing = [n for n in ("model.safetensors", "model.json") if (out / n).exists()]
    if existing and not args.force:
        raise ModeldeedError(f"{out}: already holds a model ({', '.join(existing)}); pass --force to replace it")
    data = load_data(args)
    extracted = model_from_proof(args.proof, trust_code=args.trust_model_code)
    header = extracted.proof.header
    if header.dataset.fingerprint != data.train.fingerprint:
        raise ModeldeedError(
            f"{args.proof}: the proof was recorded on {header.dataset.name} (fingerprint "
            f"{header.dataset.fingerprint[:16]}...), not on the {data.name} data given; pass the proof's data"
        )
    test_acc = accuracy(extracted.model, data.test)
    info = trained_model_info(header.spec, data, header.config, test_acc, extracted.proof_id, {})
    save_model(out, extracted.model.cpu(), info)
    print(
        f"model of step {extracted.proof.total_steps} of proof {extracted.proof_id} rebuilt from its last checkpoint, "
        f"test accuracy {percent(test_acc)}; saved to {out}"
    )
    return 0
