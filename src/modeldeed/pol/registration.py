"""A proof's statement and commitment bound in time by registry receipts, and the beacon its challenge draws on.

The training statement must exist before training, and the proof commitment before its challenge is drawn.
The transparency log (`modeldeed.registry`) proves both: a receipt, verified offline with the log's key,
says which digest was registered as which kind, by whom, when (the log's clock) and at which position. The
verifier recomputes each digest from the document it holds (the statement id; the commitment id, from the
proof it verifies), never from the receipt, and requires:

- the commitment's receipt to register exactly this commitment (kind `pol-commitment`): its beacon —
  `registry.registration_beacon`, the SHA-256 of the log's signed checkpoint that first includes the entry —
  then enters the challenge, one draw per registration, unknown to the prover before it;
- the statement's receipt to register exactly the statement in force (kind `pol-statement`), before the
  commitment and by the same submitter. Without receipts of the training's own steps, the commitment's
  registration is the latest moment the training can be shown to have finished by, so the statement must
  precede it: a statement made after the model was stolen would come after a commitment to the stolen proof.

Registered digests: the statement id (SHA-256 of statement.json's canonical JSON, `TrainingStatement.id`) and
the commitment id (SHA-256 of the commitment's canonical JSON, `ProofCommitment.id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..registry import Receipt, Registration, VerifierKey, check_registration, registration_beacon

if TYPE_CHECKING:
    from .commitment import ProofCommitment
    from .statement import TrainingStatement

STATEMENT_KIND = "pol-statement"
COMMITMENT_KIND = "pol-commitment"


def statement_id(statement: TrainingStatement) -> str:
    """The digest a `pol-statement` registration carries."""
    return statement.id


def commitment_id(commitment: ProofCommitment) -> str:
    """The digest a `pol-commitment` registration carries."""
    return commitment.id


@dataclass(frozen=True)
class Receipts:
    """What a verifier was handed to bind a proof in time, and the log key it checks them with."""

    log_key: VerifierKey
    commitment: Receipt | None = None
    statement: Receipt | None = None


@dataclass(frozen=True)
class Binding:
    """What the receipts prove: the registrations, the commitment's beacon, and every problem found."""

    beacon: bytes | None
    commitment: Registration | None
    statement: Registration | None
    problems: tuple[str, ...]
    notes: tuple[str, ...]


def bind(receipts: Receipts, commitment: ProofCommitment, statement: TrainingStatement | None) -> Binding:
    """Check the receipts against the commitment and statement the verifier recomputed (see the module docstring)."""
    problems: list[str] = []
    notes: list[str] = []
    beacon = None
    registered_commitment = registered_statement = None
    if receipts.commitment is not None:
        check = check_registration(
            receipts.commitment,
            receipts.log_key,
            kind=COMMITMENT_KIND,
            digest=commitment_id(commitment),
            what="the proof's commitment",
        )
        problems.extend(f"commitment {reason}" for reason in check.reasons)
        if check.registration is not None:
            registered_commitment = check.registration
            beacon = registration_beacon(receipts.commitment)
            notes.append(f"the proof commitment was {registered_commitment.sentence()}")
    if receipts.statement is not None:
        if statement is None:
            problems.append("a statement receipt was given, but the proof carries no statement and none was trusted")
        else:
            check = check_registration(
                receipts.statement,
                receipts.log_key,
                kind=STATEMENT_KIND,
                digest=statement_id(statement),
                what="the training statement",
            )
            problems.extend(f"statement {reason}" for reason in check.reasons)
            registered_statement = check.registration
            if registered_statement is not None:
                notes.append(f"the training statement was {registered_statement.sentence()}")
    if registered_statement is not None and registered_commitment is not None:
        if registered_statement.submitter_key != registered_commitment.submitter_key:
            problems.append(
                f"the statement was registered by {registered_statement.fingerprint}, the commitment by "
                f"{registered_commitment.fingerprint}: one owner registers both"
            )
        if not registered_statement.precedes(registered_commitment):
            problems.append(
                f"the training statement was registered (entry {registered_statement.index}, "
                f"{registered_statement.time_text}) after the proof commitment (entry {registered_commitment.index}, "
                f"{registered_commitment.time_text}): it was not made before the training it describes"
            )
    elif registered_commitment is not None and statement is not None and receipts.statement is None:
        notes.append("the training statement's registration was not shown (--statement-receipt): not bound in time")
    return Binding(beacon, registered_commitment, registered_statement, tuple(problems), tuple(notes))
