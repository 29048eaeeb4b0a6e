"""Proof of learning (Jia et al., IEEE S&P 2021): record while training, verify by replay, calibrate delta.

recording = record_training(model, data.train, config, "runs/p/proof", spec=spec, checkpoint_every=100)
verdict = verify_proof("runs/p/proof", data.train)          # Verdict(accepted, reasons, ...)
calibration = calibrate("runs/p/proof", data.train)           # eps_repr, d_ref, proposed delta
verdict = verify_proof("runs/p/proof", data.train, hardened_policy())   # also the checks that stop spoofs
"""

from .calibrate import Calibration, calibrate, load_calibration, save_calibration
from .checkpoints import decode_checkpoint, load_checkpoint, save_checkpoint
from .checks import Check, CheckResult, IntervalResult, VerificationContext
from .commitment import CarriedStatement, SeedOpening, TrainingStatement, load_statement, make_statement
from .distances import METRICS, cosine_distance, distance, distances
from .hardened import HARDENED_CHECKS, Hardening, fiat_shamir_intervals, hardened_policy
from .initialisation import LayerTest, ks_tests
from .intervals import IntervalInfo, IntervalSelector, all_intervals, estimate_reference_distance, top_q_per_epoch
from .merkle import MembershipProof, MerkleTree, verify_membership
from .proof import DatasetInfo, Proof, ProofHeader, StepRecord, load_proof, proof_id
from .recorder import ProofRecorder, Recording, record_training, training_state
from .replay import replay
from .store import ProofStore, StoredSamples, batch_digest, batch_tensors
from .summary import ProofSummary, inspect_proof
from .verify import DEFAULT_DELTA, Verdict, VerificationPolicy, verify_proof
from .writer import ProofWriter

__all__ = [
    "DEFAULT_DELTA",
    "METRICS",
    "Calibration",
    "Check",
    "CheckResult",
    "DatasetInfo",
    "IntervalInfo",
    "IntervalResult",
    "IntervalSelector",
    "LayerTest",
    "Proof",
    "ProofHeader",
    "ProofRecorder",
    "ProofStore",
    "ProofSummary",
    "ProofWriter",
    "Recording",
    "StepRecord",
    "StoredSamples",
    "VerificationContext",
    "VerificationPolicy",
    "Verdict",
    "all_intervals",
    "batch_digest",
    "batch_tensors",
    "calibrate",
    "cosine_distance",
    "decode_checkpoint",
    "distance",
    "distances",
    "estimate_reference_distance",
    "inspect_proof",
    "ks_tests",
    "load_calibration",
    "load_checkpoint",
    "load_proof",
    "proof_id",
    "record_training",
    "replay",
    "save_calibration",
    "save_checkpoint",
    "top_q_per_epoch",
    "training_state",
    "verify_proof",
    # hardened verification (pol.hardened, pol.commitment, pol.merkle)
    "HARDENED_CHECKS",
    "CarriedStatement",
    "Hardening",
    "MembershipProof",
    "MerkleTree",
    "SeedOpening",
    "TrainingStatement",
    "fiat_shamir_intervals",
    "hardened_policy",
    "load_statement",
    "make_statement",
    "verify_membership",
]
