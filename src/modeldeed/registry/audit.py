"""Checking that a log never rewrote history and never showed two views: consistency and equivocation.

A log can only cheat a reader in two ways that signatures alone do not catch: sign a later checkpoint that
does not extend an earlier one (a rewrite: the consistency proof between them fails), or sign two different
checkpoints for one tree size and show each to different people (a split view: two valid signatures over
two roots at one size are themselves the proof). `audit_checkpoints` checks the first given a proof;
`equivocation` recognises the second; `receipts_consistent` applies both to a set of receipts, so a judge
comparing two claimants' registrations knows they come from one consistent view of one log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import merkle
from .checkpoint import Checkpoint, open_checkpoint
from .note import NoteError, VerifierKey
from .receipt import Receipt

ProofSource = Callable[[int, int], list[bytes]]
"""(first size, second size) -> consistency proof hashes, e.g. RegistryClient.consistency_proof."""


@dataclass(frozen=True)
class ConsistencyVerdict:
    consistent: bool
    reasons: tuple[str, ...]
    checked: tuple[tuple[int, int], ...]  # the pairs of tree sizes that were proven consistent


def equivocation(a: Checkpoint, b: Checkpoint) -> str | None:
    """A reason if two validly signed checkpoints of one log show two trees of one size, else None."""
    if a.origin == b.origin and a.size == b.size and a.root != b.root:
        return (
            f"equivocation: the log {a.origin!r} signed two different roots for tree size {a.size} "
            f"({a.root.hex()[:16]}… and {b.root.hex()[:16]}…)"
        )
    return None


def audit_checkpoints(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> list[str]:
    """Reasons why `new` does not extend `old` (empty when it does)."""
    if old.origin != new.origin:
        return [f"the checkpoints are of two logs ({old.origin!r}, {new.origin!r})"]
    found = equivocation(old, new)
    if found:
        return [found]
    if new.size < old.size:
        return [f"the log shrank: the newer checkpoint has size {new.size}, the saved one {old.size}"]
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, list(proof)):
        return [
            f"the log rewrote history: no valid consistency proof from tree size {old.size} to {new.size} "
            "(the newer tree does not extend the saved one)"
        ]
    return []


def receipts_consistent(
    receipts: Sequence[Receipt], log_key: VerifierKey, proofs: ProofSource | None = None
) -> ConsistencyVerdict:
    """Do these receipts' checkpoints belong to one append-only history of the log signed by `log_key`?

    Receipts at the same tree size must show the same root (else the log equivocated). Receipts at
    different sizes need consistency proofs, fetched through `proofs` (e.g. a RegistryClient's
    `consistency_proof`); without a source those pairs are reported as unchecked, which is not consistent.
    """
    reasons: list[str] = []
    by_size: dict[int, Checkpoint] = {}
    for number, receipt in enumerate(receipts):
        try:
            checkpoint = open_checkpoint(receipt.checkpoint, log_key)
        except NoteError as exc:
            reasons.append(f"receipt {number} (entry {receipt.entry.index}): {exc}")
            continue
        seen = by_size.get(checkpoint.size)
        if seen is not None:
            found = equivocation(seen, checkpoint)
            if found:
                reasons.append(found)
        else:
            by_size[checkpoint.size] = checkpoint
    sizes = sorted(by_size)
    checked: list[tuple[int, int]] = []
    for first, second in zip(sizes, sizes[1:]):
        if proofs is None:
            reasons.append(f"sizes {first} and {second}: no consistency proof source given, not checked")
            continue
        problems = audit_checkpoints(by_size[first], by_size[second], proofs(first, second))
        reasons.extend(f"sizes {first} -> {second}: {p}" for p in problems)
        if not problems:
            checked.append((first, second))
    return ConsistencyVerdict(not reasons, tuple(reasons), tuple(checked))
