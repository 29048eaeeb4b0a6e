"""A claim: what one claimant hands the judge, in one directory, signed with the claimant's submitter identity.

    CLAIM_DIR/claim.json              modeldeed.dispute-claim (below), signed
    CLAIM_DIR/evidence-0/...          each item's files (a watermark key directory, its receipt, a reveal, ...)

claim.json names the claimant's Ed25519 public key (a `modeldeed.registry` identity), the digest of the
model claimed (`modeldeed.models.model_digest`), the items of evidence, and the manifest of every other file
in the directory (path, size, SHA-256). Its `signature` is the claimant's Ed25519 signature over

    "modeldeed/dispute/claim/v1" ‖ 0x00 ‖ canonical JSON of claim.json without the "signature" field

Why signed: receipts and verification keys are public, so anyone can copy them; a registration counts for a
claimant only if the claimant holds the key that submitted it, and the signature is how the judge knows.
Why a manifest: the signature then covers every byte the judge reads, and nothing unsigned rides along.

The directory is read as a stranger's: claim.json at most 1 MiB; regular files and directories only (no
links, FIFOs or devices), at most `MAX_FILES` files, `MAX_DEPTH` levels, `MAX_FILE_BYTES` a file and
`MAX_TOTAL_BYTES` in all, all counted before anything is hashed; every listed file must be present with its
size and digest, and no other file may be.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AfterValidator, Field, StringConstraints

from ..errors import FormatError, ModeldeedError, file_error
from ..files import canonical_json, read_json_object, sha256_regular_file, write_bytes_atomic
from ..registry.identity import Identity, fingerprint
from ..schema import Document, Hex64, NonNegative, validate_document

CLAIM_FORMAT = "modeldeed.dispute-claim"
CLAIM_FILE = "claim.json"
SIGNATURE_TAG = b"modeldeed/dispute/claim/v1"
MAX_CLAIM_JSON_BYTES = 1 << 20
MAX_EVIDENCE = 8
MAX_FILES = 64
MAX_DEPTH = 4
MAX_FILE_BYTES = 512 << 20
MAX_TOTAL_BYTES = 1 << 30

Hex128 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}"


def _no_dot_segments(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError("a path in a claim has no '.' or '..' parts")
    return path


RelativePath = Annotated[
    str,
    StringConstraints(pattern=rf"^{_SEGMENT}(/{_SEGMENT}){{0,{MAX_DEPTH - 1}}}$"),
    AfterValidator(_no_dot_segments),
]
Timestamp = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")]
DisplayName = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class ClaimFile(Document):
    path: RelativePath
    size: NonNegative
    sha256: Hex64


class Claimant(Document):
    public_key: Hex64  # the submitter identity (Ed25519, raw, hex) that signs the claim
    name: DisplayName = ""  # what the claimant calls itself; the judge shows it, nothing checks it


class ClaimDocument(Document):
    format: Literal["modeldeed.dispute-claim"]
    version: Literal[1]
    claimant: Claimant
    model: Hex64  # the model digest (modeldeed.models.model_digest) of the model claimed
    created: Timestamp  # when the claim was assembled (the claimant's word)
    evidence: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_EVIDENCE)]  # checked per kind
    files: Annotated[list[ClaimFile], Field(max_length=MAX_FILES)]
    signature: Hex128


def signed_bytes(claim: dict[str, Any]) -> bytes:
    """The message a claim's signature covers: the tag, 0x00, the canonical JSON without "signature"."""
    body = {k: v for k, v in claim.items() if k != "signature"}
    return SIGNATURE_TAG + b"\x00" + canonical_json(body)


def signature_valid(claim: dict[str, Any], public_key_hex: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(str(claim.get("signature", ""))), signed_bytes(claim))
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_claim(body: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """claim.json's content: `body` (every field but the signature) signed by `identity`."""
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    return {**unsigned, "signature": identity.sign(signed_bytes(unsigned)).hex()}


def scan_directory(root: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every file below `root` but claim.json, refusing what a claim may not hold.

    Counted entry by entry with os.scandir, so a directory with millions of entries is refused after
    `MAX_FILES`, before anything is hashed.
    """
    found: list[tuple[str, int]] = []
    total = 0
    stack: list[tuple[Path, str, int]] = [(root, "", 0)]
    while stack:
        folder, prefix, depth = stack.pop()
        try:
            iterator = os.scandir(folder)
        except OSError as exc:
            raise file_error(FormatError, folder, f"cannot be listed ({exc.strerror or exc})") from None
        with iterator as entries:
            for entry in entries:
                relative = prefix + entry.name
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    raise file_error(FormatError, root / relative, f"cannot be read ({exc.strerror or exc})") from None
                if stat.S_ISDIR(info.st_mode):
                    if depth + 1 >= MAX_DEPTH:
                        raise file_error(FormatError, root / relative, f"is nested deeper than {MAX_DEPTH} levels")
                    stack.append((Path(entry.path), relative + "/", depth + 1))
                    continue
                if not stat.S_ISREG(info.st_mode):
                    raise file_error(FormatError, root / relative, "is not a regular file (links, FIFOs and devices "
                                     "have no place in a claim)")  # fmt: skip
                if relative == CLAIM_FILE:
                    continue
                if len(found) >= MAX_FILES:
                    raise file_error(FormatError, root, f"holds more than {MAX_FILES} files")
                if info.st_size > MAX_FILE_BYTES:
                    raise file_error(FormatError, root / relative, f"is larger than {MAX_FILE_BYTES} bytes")
                total += info.st_size
                if total > MAX_TOTAL_BYTES:
                    raise file_error(FormatError, root, f"holds more than {MAX_TOTAL_BYTES} bytes")
                found.append((relative, info.st_size))
    return sorted(found)


def manifest(root: Path) -> list[dict[str, Any]]:
    """The `files` list of a claim directory: every file but claim.json, sorted by path."""
    files = []
    for relative, _size in scan_directory(root):
        digest, size = sha256_regular_file(root / relative, max_bytes=MAX_FILE_BYTES, within=root)
        files.append({"path": relative, "size": size, "sha256": digest})
    return files


@dataclass(frozen=True)
class ClaimFiles:
    """A claim directory whose every file was checked against the signed manifest: paths handed to loaders."""

    root: Path
    listed: frozenset[str]

    def path(self, relative: str, *, directory: bool = False) -> Path:
        """The path of a listed file (or, with `directory`, of a folder holding listed files)."""
        if directory:
            if not any(name.startswith(relative + "/") for name in self.listed):
                raise file_error(FormatError, self.root / relative, "is no folder of this claim's listed files")
        elif relative not in self.listed:
            raise file_error(FormatError, self.root / relative, "is not listed in claim.json's files")
        return self.root / relative


@dataclass(frozen=True)
class LoadedClaim:
    """A claim directory as the judge found it: the document, and every reason it cannot count at all."""

    directory: Path
    document: ClaimDocument | None
    files: ClaimFiles | None
    reasons: tuple[str, ...]

    @property
    def claimant_key(self) -> str | None:
        return self.document.claimant.public_key if self.document is not None else None


def load_claim(directory: str | Path, model_digest: str) -> LoadedClaim:
    """Read and check a claim directory: format, signature, every file against the manifest, the model.

    A claim that fails any of these is returned with its reasons (a claimant's bad files lose that claim,
    they do not stop the dispute). A path that is not a directory at all is the judge's bad input.
    """
    root = Path(directory)
    if not root.is_dir() or root.is_symlink():
        raise file_error(ModeldeedError, root, "is not a claim directory")
    try:
        raw = read_json_object(root / CLAIM_FILE, within=root, max_bytes=MAX_CLAIM_JSON_BYTES)
        document = validate_document(ClaimDocument, raw, root / CLAIM_FILE)
    except ModeldeedError as exc:
        return LoadedClaim(root, None, None, (str(exc),))
    reasons: list[str] = []
    if not signature_valid(raw, document.claimant.public_key):
        reasons.append(
            f"{root / CLAIM_FILE}: the signature does not verify with the claimant's key "
            f"{fingerprint(document.claimant.public_key)} (the claim was changed, or signed by another key)"
        )
        return LoadedClaim(root, document, None, tuple(reasons))
    if document.model != model_digest:
        reasons.append(
            f"the claim is about the model with digest {document.model}, not the disputed model ({model_digest})"
        )
    try:
        found = {f["path"]: f for f in manifest(root)}
    except ModeldeedError as exc:
        return LoadedClaim(root, document, None, (*reasons, str(exc)))
    listed = {f.path: f for f in document.files}
    for path in sorted(set(listed) - set(found)):
        reasons.append(f"{root / path}: listed in claim.json but missing")
    for path in sorted(set(found) - set(listed)):
        reasons.append(f"{root / path}: present but not listed in claim.json (nothing unsigned may ride along)")
    for path in sorted(set(listed) & set(found)):
        if (listed[path].size, listed[path].sha256) != (found[path]["size"], found[path]["sha256"]):
            reasons.append(f"{root / path}: changed since the claim was signed (size or SHA-256 differ)")
    files = ClaimFiles(root, frozenset(listed)) if not reasons else None
    return LoadedClaim(root, document, files, tuple(reasons))


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_claim(
    out: str | Path,
    identity: Identity,
    model_digest: str,
    sources: list[Any],
    *,
    name: str = "",
) -> Path:
    """Assemble a claim directory: each source (an `EvidenceSource`) copies its files, then claim.json is signed.

    Refuses a directory that already holds a claim (claims are evidence; make a new one).
    """
    out = Path(out)
    if (out / CLAIM_FILE).exists() or (out.exists() and any(out.iterdir())):
        raise ModeldeedError(f"{out}: is not empty; a claim is written into a new directory")
    if not sources:
        raise ModeldeedError("a claim needs at least one item of evidence")
    if len(sources) > MAX_EVIDENCE:
        raise ModeldeedError(f"a claim holds at most {MAX_EVIDENCE} items of evidence")
    out.mkdir(parents=True, exist_ok=True)
    entries = [source.write(out, f"evidence-{number}", identity.public_key) for number, source in enumerate(sources)]
    body = {
        "format": CLAIM_FORMAT,
        "version": 1,
        "claimant": {"public_key": identity.public_key, "name": name},
        "model": model_digest,
        "created": now_text(),
        "evidence": entries,
        "files": manifest(out),
    }
    claim = sign_claim(body, identity)
    validate_document(ClaimDocument, claim, out / CLAIM_FILE)
    write_bytes_atomic(out / CLAIM_FILE, canonical_json(claim) + b"\n")
    return out


def copy_file(source: Path, target: Path, *, within: Path, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Copy a regular file into a claim (read with the bounded reader, written atomically)."""
    from ..files import read_regular_file

    write_bytes_atomic(target, read_regular_file(source, max_bytes=max_bytes, within=within))
