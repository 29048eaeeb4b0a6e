"""Proof-of-learning evidence in a dispute: a proof of the model's training, its statement and their receipts.

Its entry in claim.json (`kind: "pol"`):

    proof               folder with a proof (proof.json and its checkpoints) or an opened proof (opened.json, `pol
                        open` for the registered commitment's challenge)
    statement           the training statement (statement.json of `pol commit`)
    statement_receipt   its registration receipt (kind pol-statement): the anchor, registered before training
    commitment          the proof commitment (`pol commit-proof`)
    commitment_receipt  its registration receipt (kind pol-commitment): the challenge draws on its beacon

The judge runs the hardened PoL verifier (`pol verify --hardened --statement --commitment --commitment-receipt
--statement-receipt --log-key --model`) on the model in front of it: the proof must follow the statement in
every setting, match the registered commitment, replay the intervals the log's beacon draws, and end in the
disputed model bit for bit. The statement's registration (by the claimant) is the anchor: a statement is made
before training, so a thief who holds the weights and runs `pol commit` afterwards registers later, and a
thief who copies the owner's statement registers the same artefact after its owner.

What it does not show: that nobody else trained a model with the same weights (a proof shows that this
training yields this model, not that it is the only way to get it); a proof made by a spoof the hardened
verifier does not catch (docs/pol-spoofing.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import ModeldeedError
from ..models import state_tensors
from ..pol import Hardening, VerificationPolicy, load_commitment, load_statement, verify_proof
from ..pol.commitment import ProofCommitment
from ..pol.opened import OPENED_FILE
from ..pol.progress import PROGRESS_DIR, PROGRESS_FILE, check_progress, proof_leaves
from ..pol.proof import PROOF_FILE
from ..pol.registration import COMMITMENT_KIND, STATEMENT_KIND, Receipts, commitment_id, statement_id
from ..pol.statement import TrainingStatement
from ..registry import Receipt, check_registration, load_receipt
from ..registry.identity import fingerprint
from ..schema import Document
from .claim import ClaimFiles, RelativePath, copy_file, scan_directory
from .evidence import Artefact, DisputeContext, Evidence, EvidenceFinding, EvidenceSource


class PolEvidenceDocument(Document):
    """The entry of a proof-of-learning item in claim.json (paths relative to the claim directory)."""

    kind: Literal["pol"]
    proof: RelativePath
    statement: RelativePath
    statement_receipt: RelativePath
    commitment: RelativePath
    commitment_receipt: RelativePath


@dataclass(frozen=True, eq=False)
class PolEvidence(Evidence):
    kind: ClassVar[str] = "pol"
    document: ClassVar[type[Document]] = PolEvidenceDocument

    proof_dir: Path
    statement: TrainingStatement
    statement_receipt: Receipt
    commitment: ProofCommitment
    commitment_receipt: Receipt

    @classmethod
    def load(cls, entry: Any, files: ClaimFiles) -> PolEvidence:
        proof_dir = files.path(entry.proof, directory=True)
        if not any(f"{entry.proof}/{name}" in files.listed for name in (PROOF_FILE, OPENED_FILE)):
            raise ModeldeedError(f"{proof_dir}: holds neither {PROOF_FILE} nor {OPENED_FILE}")
        return cls(
            proof_dir,
            load_statement(files.path(entry.statement)),
            load_receipt(files.path(entry.statement_receipt)),
            load_commitment(files.path(entry.commitment)),
            load_receipt(files.path(entry.commitment_receipt)),
        )

    def judge(self, context: DisputeContext) -> EvidenceFinding:
        reasons: list[str] = []
        artefacts = (
            Artefact("training statement", STATEMENT_KIND, statement_id(self.statement)),
            Artefact("proof commitment", COMMITMENT_KIND, commitment_id(self.commitment)),
        )
        hardening = Hardening(
            statement=self.statement,
            commitment=self.commitment,
            receipts=Receipts(context.log_key, self.commitment_receipt, self.statement_receipt),
        )
        policy = hardening.policy(VerificationPolicy(final_model=state_tensors(context.model)))
        verdict = verify_proof(self.proof_dir, context.data.train, policy)
        reasons += [f"verification: {reason}" for reason in verdict.reasons]
        # the digests are recomputed from the statement and commitment the verifier just checked the proof against
        registrations, receipts, anchor = [], [], None
        for receipt, artefact in ((self.statement_receipt, artefacts[0]), (self.commitment_receipt, artefacts[1])):
            check = check_registration(receipt, context.log_key, kind=artefact.kind, digest=artefact.digest,
                                       what=f"the {artefact.role}")  # fmt: skip
            if check.registration is None:
                reasons += [f"{artefact.role}: {reason}" for reason in check.reasons]
                continue
            registrations.append(check.registration)
            receipts.append(receipt)
        statement_registration = registrations[0] if registrations and registrations[0].kind == STATEMENT_KIND else None
        if statement_registration is not None:
            if statement_registration.submitter_key == context.claimant_key:
                anchor = statement_registration
            else:
                reasons.append(
                    f"the statement's registration (entry {statement_registration.index}) was submitted by "
                    f"{statement_registration.fingerprint}, not by the claimant ({fingerprint(context.claimant_key)}): "
                    "receipts are public, so a registration counts only for the key that made it"
                )
        notes = list(verdict.notes)
        if (self.proof_dir / PROGRESS_DIR / PROGRESS_FILE).is_file() and (self.proof_dir / PROOF_FILE).is_file():
            progress = check_progress(self.proof_dir, *proof_leaves(self.proof_dir), context.log_key)
            reasons += [f"progress: {problem}" for problem in progress.problems]
            notes += progress.notes()
            for _first, _count, registration in progress.registrations:
                registrations.append(registration)
            receipts += progress.receipts
        challenge = verdict.challenge or {}
        if verdict.accepted and challenge.get("source") != "registry-beacon":
            reasons.append("the challenge was not drawn from the registered commitment's beacon")
        summary = (
            f"proof of learning {'(opened) ' if (self.proof_dir / OPENED_FILE).is_file() else ''}under statement "
            f"{statement_id(self.statement)[:16]}…: {'accepted' if verdict.accepted else 'rejected'} by the hardened "
            f"verifier, {challenge.get('count', 0)} of {challenge.get('total', 0)} intervals challenged, last "
            "checkpoint checked against the model"
        )
        return EvidenceFinding(
            kind=self.kind,
            summary=summary,
            verified=verdict.accepted,
            reasons=tuple(reasons),
            notes=tuple(dict.fromkeys(notes)),
            artefacts=artefacts,
            registrations=tuple(registrations),
            anchor=anchor,
            receipts=tuple(receipts),
            details={"check": "hardened proof-of-learning verification", **verdict.to_json()},
        )


@dataclass(frozen=True)
class PolSource(EvidenceSource):
    """A claimant's PoL evidence: a proof (or opened proof) directory, the statement, the commitment, receipts.

    Defaults: the statement's receipt is `statement.receipt.json` next to it (`pol commit --registry`), the
    commitment's `NAME.receipt.json` next to it (`pol commit-proof --registry`).
    """

    kind: ClassVar[str] = "pol"
    proof_dir: str
    statement: str
    commitment: str
    statement_receipt: str | None = None
    commitment_receipt: str | None = None

    def write(self, directory: Path, prefix: str, claimant_key: str) -> dict[str, Any]:
        from ..pol.statement import statement_path

        proof_dir = Path(self.proof_dir)
        if not ((proof_dir / PROOF_FILE).is_file() or (proof_dir / OPENED_FILE).is_file()):
            raise ModeldeedError(f"{proof_dir}: not a proof or opened proof directory")
        statement_file = statement_path(self.statement)
        statement = load_statement(statement_file)
        commitment_file = Path(self.commitment)
        commitment = load_commitment(commitment_file)
        if commitment.statement_id != statement.id:
            raise ModeldeedError(
                f"{commitment_file}: commits to statement {commitment.statement_id}, not {statement.id}"
            )
        statement_receipt = Path(self.statement_receipt or statement_file.with_name("statement.receipt.json"))
        commitment_receipt = Path(
            self.commitment_receipt or commitment_file.with_name(commitment_file.stem + ".receipt.json")
        )
        for path, kind, digest in (
            (statement_receipt, STATEMENT_KIND, statement.id),
            (commitment_receipt, COMMITMENT_KIND, commitment.id),
        ):
            if not path.is_file():
                raise ModeldeedError(
                    f"{path}: no receipt (register with `pol commit --registry` / `commit-proof --registry` or "
                    "`registry publish`); an unregistered proof proves nothing in a dispute"
                )
            entry = load_receipt(path).entry
            if (entry.kind, entry.digest) != (kind, digest):
                raise ModeldeedError(f"{path}: is not the registration of this {kind}")
            if entry.submitter_key != claimant_key:
                raise ModeldeedError(
                    f"{path}: was submitted by {fingerprint(entry.submitter_key)}, not by your identity "
                    f"({fingerprint(claimant_key)}); a registration counts only for the key that made it"
                )
        target = Path(directory) / prefix
        for relative, _size in scan_directory(proof_dir):
            copy_file(proof_dir / relative, target / "proof" / relative, within=proof_dir)
        copy_file(statement_file, target / "statement.json", within=statement_file.parent)
        copy_file(statement_receipt, target / "statement.receipt.json", within=statement_receipt.parent)
        copy_file(commitment_file, target / "commitment.json", within=commitment_file.parent)
        copy_file(commitment_receipt, target / "commitment.receipt.json", within=commitment_receipt.parent)
        return {
            "kind": self.kind,
            "proof": f"{prefix}/proof",
            "statement": f"{prefix}/statement.json",
            "statement_receipt": f"{prefix}/statement.receipt.json",
            "commitment": f"{prefix}/commitment.json",
            "commitment_receipt": f"{prefix}/commitment.receipt.json",
        }
