"""Proof of learning (Jia et al., IEEE S&P 2021): record while training, verify by replay, calibrate, commit and open.

recording = record_training(model, data.train, config, "runs/p/proof", spec=spec, checkpoint_every=100)
verdict = verify_proof("runs/p/proof", data.train)             # Verdict(accepted, reasons, ...)
verdict = verify_proof("runs/p/proof", data.train, hardened_policy(statement=statement))
commitment, _ = commit_proof("runs/p/proof")                     # small: publish / register it
open_proof("runs/p/proof", "runs/p/opened", commitment=commitment)  # only the challenged intervals
calibration = calibrate("runs/p/proof", data.train)              # eps_repr, d_ref, proposed delta
"""

from .calibrate import Calibration, calibrate, load_calibration, save_calibration
from .challenge import Challenge, challenge_size, derive_challenge
from .checkpoints import decode_checkpoint, load_checkpoint, save_checkpoint
from .commitment import ProofCommitment, commit_proof, load_commitment, save_commitment
from .context import Check, CheckResult, IntervalResult, VerificationContext
from .distances import METRICS, cosine_distance, distance, distances
from .environment import Environment, current_environment
from .hardened import HARDENED_CHECKS
from .initialisation import LayerTest, ks_tests
from .intervals import IntervalInfo, IntervalSelector, all_intervals, estimate_reference_distance, top_q_per_epoch
from .merkle import MembershipProof, MerkleTree, verify_membership
from .opened import load_opened, open_proof
from .policy import DEFAULT_DELTA, Hardening, VerificationPolicy, hardened_policy
from .proof import DatasetInfo, Proof, ProofHeader, StepRecord, load_proof, proof_id
from .recorder import ProofRecorder, Recording, record_training
from .replay import replay
from .state import training_state
from .statement import (
    CarriedStatement,
    SeedOpening,
    TrainingStatement,
    TriggerSet,
    load_opening,
    load_statement,
    make_statement,
)
from .store import ProofStore, StoredSamples, batch_digest, batch_tensors
from .summary import ProofSummary, inspect_proof
from .verify import Verdict, verify_proof
from .writer import ProofWriter

__all__ = [
    "DEFAULT_DELTA",
    "HARDENED_CHECKS",
    "METRICS",
    "Calibration",
    "CarriedStatement",
    "Challenge",
    "Check",
    "CheckResult",
    "DatasetInfo",
    "Environment",
    "Hardening",
    "IntervalInfo",
    "IntervalResult",
    "IntervalSelector",
    "LayerTest",
    "MembershipProof",
    "MerkleTree",
    "Proof",
    "ProofCommitment",
    "ProofHeader",
    "ProofRecorder",
    "ProofStore",
    "ProofSummary",
    "ProofWriter",
    "Recording",
    "SeedOpening",
    "StepRecord",
    "StoredSamples",
    "TrainingStatement",
    "TriggerSet",
    "VerificationContext",
    "VerificationPolicy",
    "Verdict",
    "all_intervals",
    "batch_digest",
    "batch_tensors",
    "calibrate",
    "challenge_size",
    "commit_proof",
    "cosine_distance",
    "current_environment",
    "decode_checkpoint",
    "derive_challenge",
    "distance",
    "distances",
    "estimate_reference_distance",
    "hardened_policy",
    "inspect_proof",
    "ks_tests",
    "load_calibration",
    "load_checkpoint",
    "load_commitment",
    "load_opened",
    "load_opening",
    "load_proof",
    "load_statement",
    "make_statement",
    "open_proof",
    "proof_id",
    "record_training",
    "replay",
    "save_calibration",
    "save_checkpoint",
    "save_commitment",
    "top_q_per_epoch",
    "training_state",
    "verify_membership",
    "verify_proof",
]
