"""modeldeed.registry: a time-stamped transparency log (RFC 6962/9162 Merkle tree, C2SP signed checkpoints).

It knows no scheme: it logs SHA-256 digests of artefacts of any kind, says when (by the log's clock) and
in which order they were registered, and hands out receipts that verify offline with the log's public key.
This package's top level is the client side (no FastAPI, no database driver is imported here); the server
is `modeldeed.registry.service`, the storage `modeldeed.registry.storage`.

    from modeldeed.registry import RegistryClient, load_identity, load_log_key, verify_receipt

    client = RegistryClient("http://127.0.0.1:8080")
    receipt = client.register(load_identity("id/"), "model", digest).receipt  # digest: the artefact's SHA-256
    verdict = verify_receipt(receipt, load_log_key("log.key.pub"))   # valid, reasons, integrated_time, ...
    check = check_registration(receipt, log_key, kind="model", digest=recomputed)  # and is it *this* artefact's?
    beacon = registration_beacon(receipt)                             # 32 bytes nobody could predict
"""

from .artefact import directory_digest, directory_manifest, file_digest, json_digest, json_file_digest
from .audit import ConsistencyVerdict, audit_checkpoints, equivocation, receipts_consistent
from .checkpoint import Checkpoint, CheckpointDocument, load_checkpoint_document, open_checkpoint
from .client import RegistryClient, RegistryError, Submitted
from .entry import KINDS, Entry, Kind, Submission
from .identity import Identity, fingerprint, load_identity, load_public_identity, save_identity
from .logkey import load_verifier_key as load_log_key
from .note import VerifierKey
from .receipt import Receipt, ReceiptVerdict, load_receipt, registration_beacon, save_receipt, verify_receipt
from .registration import Registration, RegistrationCheck, check_registration

__all__ = [
    "KINDS",
    "Checkpoint",
    "CheckpointDocument",
    "ConsistencyVerdict",
    "Entry",
    "Identity",
    "Kind",
    "Receipt",
    "ReceiptVerdict",
    "Registration",
    "RegistrationCheck",
    "RegistryClient",
    "RegistryError",
    "Submission",
    "Submitted",
    "VerifierKey",
    "audit_checkpoints",
    "check_registration",
    "directory_digest",
    "directory_manifest",
    "equivocation",
    "file_digest",
    "fingerprint",
    "json_digest",
    "json_file_digest",
    "load_checkpoint_document",
    "load_identity",
    "load_log_key",
    "load_public_identity",
    "load_receipt",
    "open_checkpoint",
    "receipts_consistent",
    "registration_beacon",
    "save_identity",
    "save_receipt",
    "verify_receipt",
]
