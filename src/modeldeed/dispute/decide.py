"""The judge's decision between competing ownership claims on one model.

The rule (docs/registry.md, "Disputes"): a claim counts if at least one item of its evidence

1. verifies on the model in front of the judge (the scheme's real verifier, on the claim's own files),
2. is dated by a registration on the log that the claimant made itself (receipt valid under the log's key,
   for the digest recomputed from the very artefact verified, submitted by the key that signed the claim),
3. was registered before the model's first appearance (`--first-seen`, the model's own earliest
   registration, or the earliest of those), and
4. is the first registration of that artefact (no one else registered the same digest earlier);

and every receipt involved comes from one consistent history of one log. Among the claims that count, the
one with the earliest registration wins (the log's order is total; times never go back along it). No claim
counts: no ownership is established. The evidence kinds plug in through `evidence.Evidence`; nothing here
knows a scheme.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data import load_dataset
from ..errors import ModeldeedError
from ..models import load_model
from ..models.digest import model_digest
from ..registry import Receipt, RegistryClient, VerifierKey, check_registration, receipts_consistent
from ..registry.audit import ConsistencyVerdict
from ..registry.entry import format_time
from ..registry.identity import fingerprint
from ..registry.registration import Registration
from ..schema import validate_document
from .claim import LoadedClaim, load_claim
from .evidence import DisputeContext, EvidenceFinding, FirstAppearance, evidence_kinds

log = logging.getLogger(__name__)

MAX_CLAIMS = 32
DEFAULT_SECURITY_BITS = 64.0


@dataclass
class EvidenceOutcome:
    number: int
    finding: EvidenceFinding | None  # None when the item could not even be read
    reasons: list[str]  # the finding's own reasons, then the decision's (identity, time, first registration)
    counts: bool = False


@dataclass
class ClaimOutcome:
    number: int
    loaded: LoadedClaim
    evidence: list[EvidenceOutcome] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    anchor: Registration | None = None  # its earliest registration that counts
    anchor_evidence: int | None = None

    @property
    def counts(self) -> bool:
        return self.anchor is not None


@dataclass(frozen=True)
class Judgement:
    established: bool
    verdict: str  # one sentence
    winner: ClaimOutcome | None
    claims: tuple[ClaimOutcome, ...]
    model_dir: Path
    model_digest: str
    data_name: str
    log_key: VerifierKey
    first_appearance: FirstAppearance | None
    consistency: ConsistencyVerdict
    notes: tuple[str, ...]
    decided_at: datetime


def _model_first_appearance(
    digest: str,
    log_key: VerifierKey,
    first_seen: datetime | None,
    model_receipts: Sequence[tuple[str, Receipt]],
    registry: RegistryClient | None,
) -> tuple[FirstAppearance | None, list[Receipt]]:
    """The earliest of --first-seen, the given model receipts and (with a registry) the model's first registration."""
    candidates: list[FirstAppearance] = []
    receipts: list[Receipt] = []
    if first_seen is not None:
        candidates.append(
            FirstAppearance(first_seen, "--first-seen (the judge's evidence of the model's first appearance)")
        )
    found = list(model_receipts)
    if registry is not None:
        entries = [e for e in registry.entries_by_digest(digest) if e.kind == "model" and e.digest == digest]
        if entries:
            earliest = min(entries, key=lambda e: e.index)
            found.append((f"{registry.base_url} (entry {earliest.index})", registry.receipt(earliest.index)))
    for source, receipt in found:
        check = check_registration(receipt, log_key, kind="model", digest=digest, what="the disputed model")
        if check.registration is None:
            raise ModeldeedError(
                f"{source}: not a valid registration of the disputed model: " + "; ".join(check.reasons)
            )
        receipts.append(receipt)
        reg = check.registration
        candidates.append(FirstAppearance(reg.time, f"the model's registration (entry {reg.index}, {source})", reg))
    if not candidates:
        return None, receipts
    return min(candidates, key=lambda c: (c.time, c.registration.index if c.registration else -1)), receipts


def _judge_claim(number: int, loaded: LoadedClaim, context_for: Any) -> ClaimOutcome:
    outcome = ClaimOutcome(number, loaded, reasons=list(loaded.reasons))
    if loaded.files is None or loaded.document is None:
        return outcome
    kinds = evidence_kinds()
    context = context_for(loaded.document.claimant.public_key)
    for item, entry in enumerate(loaded.document.evidence):
        source = f"{loaded.directory / 'claim.json'} (evidence {item})"
        try:
            kind = entry.get("kind")
            if kind not in kinds:
                raise ModeldeedError(
                    f"{source}: unknown kind of evidence {str(kind)[:40]!r} (known: {', '.join(kinds)})"
                )
            evidence_type = kinds[kind]
            evidence = evidence_type.load(validate_document(evidence_type.document, entry, source), loaded.files)
            finding = evidence.judge(context)
        except ModeldeedError as exc:
            outcome.evidence.append(EvidenceOutcome(item, None, [str(exc)]))
            continue
        outcome.evidence.append(EvidenceOutcome(item, finding, list(finding.reasons)))
    return outcome


def _apply_rules(
    claims: list[ClaimOutcome], first: FirstAppearance | None, pool: dict[tuple[str, str], list[Registration]]
) -> None:
    """Identity, time and first-registration rules, the same for every kind of evidence."""
    for claim in claims:
        claimant = claim.loaded.claimant_key
        for item in claim.evidence:
            finding = item.finding
            if finding is None or finding.anchor is None:  # no registration by the claimant: reasons say why
                continue
            anchor = finding.anchor
            if anchor.submitter_key != claimant:  # the evidence promised this; the decision does not rely on it
                item.reasons.append(f"its registration was submitted by {anchor.fingerprint}, not by the claimant")
            if first is not None and not anchor.time < first.time:
                item.reasons.append(
                    f"registered at {anchor.time_text} (entry {anchor.index}), not before the model's first appearance "
                    f"at {format_time(first.time)} ({first.source}): it cannot show that the claimant's artefact "
                    "predates the model"
                )
            earlier = [
                r for r in pool.get((anchor.kind, anchor.digest), [])
                if r.submitter_key != anchor.submitter_key and r.precedes(anchor)
            ]  # fmt: skip
            if earlier:
                first_reg = min(earlier, key=lambda r: (r.time, r.index))
                item.reasons.append(
                    f"the same artefact was registered earlier by {first_reg.fingerprint} (entry {first_reg.index} at "
                    f"{first_reg.time_text}): a registration counts only for whoever registered the artefact first"
                )
            item.reasons += _revealed_by_others(claim, finding, claims)
            item.counts = finding.valid and not item.reasons
            if item.counts and (claim.anchor is None or anchor.precedes(claim.anchor)):
                claim.anchor, claim.anchor_evidence = anchor, item.number
        if not claim.counts and not claim.reasons:
            claim.reasons.append("no item of evidence counts (each item's reasons are listed with it)")


def _revealed_by_others(claim: ClaimOutcome, finding: EvidenceFinding, claims: list[ClaimOutcome]) -> list[str]:
    """A revealed set is public: a key of another claimant built from its triggers after the reveal proves nothing.

    Triggers count as reused when another claimant's claim reveals them (same pixels at 8 bits) and that reveal
    was registered before this item's anchor; a reveal registered later, or not at all, cannot show that the
    triggers were public when this key was registered (and a thief's copy of the owner's reveal, put into his
    own claim, does not hurt the owner, whose key was registered before the owner revealed it).
    """
    anchor = finding.anchor
    reasons = []
    for other in claims:
        if other is claim or other.loaded.claimant_key == claim.loaded.claimant_key:
            continue
        for item in other.evidence:
            found = item.finding
            if found is None or not found.revealed or found.revealed_at is None or anchor is None:
                continue
            shared = finding.triggers & found.revealed
            if shared and found.revealed_at.precedes(anchor):
                reasons.append(
                    f"{len(shared)} of its triggers were revealed by claim {other.number} (entry "
                    f"{found.revealed_at.index}, {found.revealed_at.time_text}) before this key was registered: a "
                    "revealed set is public, so anyone can build a key from it"
                )
    return reasons


def _earlier_by_others(
    registry: RegistryClient, anchor: Registration, log_key: VerifierKey
) -> tuple[Registration, Receipt] | None:
    """The first registration of the anchor's artefact by another submitter, if the log holds an earlier one."""
    entries = [
        e for e in registry.entries_by_digest(anchor.digest)
        if e.kind == anchor.kind and e.digest == anchor.digest and e.index < anchor.index
        and e.submitter_key != anchor.submitter_key
    ]  # fmt: skip
    if not entries:
        return None
    earliest = min(entries, key=lambda e: e.index)
    receipt = registry.receipt(earliest.index)
    check = check_registration(receipt, log_key, kind=anchor.kind, digest=anchor.digest)
    return (check.registration, receipt) if check.registration is not None else None


def decide(
    model_dir: str | Path,
    claim_dirs: Sequence[str | Path],
    *,
    data_name: str,
    log_key: VerifierKey,
    data_dir: str | None = None,
    first_seen: datetime | None = None,
    model_receipts: Sequence[tuple[str, Receipt]] = (),
    registry: RegistryClient | None = None,
    min_security_bits: float = DEFAULT_SECURITY_BITS,
    reference_dir: str | Path | None = None,
    trust_code: bool = False,
) -> Judgement:
    """Judge every claim on the model in `model_dir` and decide; see the module docstring for the rule.

    `registry` (optional, untrusted: everything it answers is checked against `log_key`) supplies consistency
    proofs between receipts of different tree sizes, the model's earliest registration, and earlier
    registrations of a claimed artefact by someone else. Without it, receipts of different tree sizes cannot
    be shown to come from one history, and no ownership is established on them.
    """
    if not claim_dirs:
        raise ModeldeedError("a dispute needs at least one --claim")
    if len(claim_dirs) > MAX_CLAIMS:
        raise ModeldeedError(f"at most {MAX_CLAIMS} claims are judged at once, got {len(claim_dirs)}")
    model_dir = Path(model_dir)
    digest = model_digest(model_dir)
    model, info = load_model(model_dir, trust_code=trust_code)
    data = load_dataset(data_name, data_dir)
    if tuple(data.test.input_shape) != tuple(info.input_shape) or data.test.num_classes != len(info.classes):
        raise ModeldeedError(f"{model_dir}: the model does not fit {data.name} (input shape or number of classes)")
    reference = load_model(reference_dir, trust_code=trust_code)[0] if reference_dir else None
    first, model_receipt_list = _model_first_appearance(digest, log_key, first_seen, model_receipts, registry)

    def context_for(claimant_key: str) -> DisputeContext:
        return DisputeContext(model, model_dir, digest, data, data_name, log_key, claimant_key, first,
                              min_security_bits, reference)  # fmt: skip

    claims = [_judge_claim(n, load_claim(path, digest), context_for) for n, path in enumerate(claim_dirs)]
    pool: dict[tuple[str, str], list[Registration]] = {}
    receipts: list[Receipt] = list(model_receipt_list)
    for claim in claims:
        for item in claim.evidence:
            if item.finding is not None:
                receipts += item.finding.receipts
                for registration in item.finding.registrations:
                    pool.setdefault((registration.kind, registration.digest), []).append(registration)
    if registry is not None:
        for claim in claims:
            for item in claim.evidence:
                anchor = item.finding.anchor if item.finding is not None else None
                found = _earlier_by_others(registry, anchor, log_key) if anchor is not None else None
                if found is not None:
                    pool.setdefault((anchor.kind, anchor.digest), []).append(found[0])
                    receipts.append(found[1])
    _apply_rules(claims, first, pool)
    consistency = receipts_consistent(receipts, log_key, registry.consistency_proof if registry else None)
    winner = _winner(claims) if consistency.consistent else None
    notes = _notes(first, registry is not None)
    return Judgement(
        established=winner is not None,
        verdict=_sentence(winner, claims, consistency, first, digest, registry is not None),
        winner=winner,
        claims=tuple(claims),
        model_dir=model_dir,
        model_digest=digest,
        data_name=data_name,
        log_key=log_key,
        first_appearance=first,
        consistency=consistency,
        notes=tuple(notes),
        decided_at=datetime.now(timezone.utc),
    )


def _winner(claims: Sequence[ClaimOutcome]) -> ClaimOutcome | None:
    """The claim with the earliest counting registration; every other counting claim is told why it lost."""
    counting = [(c.anchor, c) for c in claims if c.anchor is not None]
    if not counting:
        return None
    best, winner = min(counting, key=lambda pair: (pair[0].time, pair[0].index))
    for anchor, claim in counting:
        if claim is not winner and claim.loaded.claimant_key != winner.loaded.claimant_key:
            claim.reasons.append(
                f"its earliest registration ({anchor.time_text}, entry {anchor.index}) comes after claim "
                f"{winner.number}'s ({best.time_text}, entry {best.index}): the earliest valid registration wins"
            )
    return winner


def _sentence(
    winner: ClaimOutcome | None,
    claims: Sequence[ClaimOutcome],
    consistency: ConsistencyVerdict,
    first: FirstAppearance | None,
    digest: str,
    with_registry: bool,
) -> str:
    if winner is not None and winner.anchor is not None:
        name = winner.loaded.document.claimant.name if winner.loaded.document else ""
        who = f"claimant {fingerprint(winner.loaded.claimant_key or '')}" + (
            f" (who calls itself {name!r})" if name else ""
        )
        before = (
            f"before the model's first appearance at {format_time(first.time)}"
            if first
            else "(the model's first appearance is not known)"
        )
        return (
            f"The model {digest[:16]}… belongs to {who} (claim {winner.number}): its evidence verifies on the model "
            f"and was registered by the claimant at {winner.anchor.time_text} (entry {winner.anchor.index}), the "
            f"earliest valid registration, {before}."
        )
    if not consistency.consistent and any(c.counts for c in claims) and not with_registry:
        return (
            "No ownership of the model is established: the receipts were made at different tree sizes of the log, "
            "and without a registry (--registry) to fetch consistency proofs they cannot be shown to come from one "
            "history of the log."
        )
    if not consistency.consistent and any(c.counts for c in claims):
        return (
            "No ownership of the model is established: the receipts do not come from one consistent history of the "
            "log, so their order cannot be relied on (" + "; ".join(consistency.reasons[:2]) + ")."
        )
    return (
        f"No ownership of the model is established: none of the {len(claims)} claim(s) holds evidence that verifies "
        "on the model and was registered by its claimant before the model's first appearance."
    )


def _notes(first: FirstAppearance | None, with_registry: bool) -> list[str]:
    notes = [
        "A registration proves that an artefact (a key's digest) existed at that time by the log's clock, and that "
        "the holder of the submitter key registered it; it does not prove when or by whom the model was trained.",
        "The log's order of entries is fixed by its signed checkpoints; its times are the operator's clock.",
    ]
    if first is None:
        notes.append(
            "The model's first appearance was not given (--first-seen, a model receipt, or a registry holding the "
            "model's registration): claims are ordered among themselves only, and evidence whose worth depends on "
            "the model's first appearance (chosen labels, revealed sets) does not count."
        )
    else:
        notes.append(
            "A model that appeared before every registration cannot be decided by time: no claim registered after "
            "the model's first appearance counts."
        )
    if not with_registry:
        notes.append(
            "No registry was consulted: receipts of different tree sizes could not be proven consistent, and "
            "earlier registrations of a claimed artefact by others were sought only among the claims."
        )
    return notes
