"""Reading a proof's files the safe way: hash first, then decode; and rebuilding each step's exact batch.

Every file is read once into memory through the bounded reader (a regular file inside the proof directory,
no larger than proof.json says), its size and SHA-256 compared with proof.json, and only those verified
bytes are decoded, so no byte that the proof id does not cover is ever used.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import Dataset, augment, tensor_digest
from ..errors import FormatError, file_error
from ..files import read_regular_file, safetensors_bound, sha256_bytes
from ..models import measure_model
from ..models.arguments import MAX_MODEL_BYTES
from .checkpoints import TensorRule, decode_checkpoint, parse_safetensors
from .loop import state_keys
from .proof import MAX_DELTA_CHAIN, CheckpointEntry, FileEntry, Proof, ProofHeader, StepRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredSamples:
    """Samples kept inside the proof (e.g. appended trigger images), by their number in the proof's store."""

    x: torch.Tensor  # M x C x H x W float32
    y: torch.Tensor  # M int64
    numbers: tuple[int, ...] | None = None  # None: 0 .. M-1 (a full proof); else the number of each row

    def rows(self, numbers: tuple[int, ...] | list[int]) -> torch.Tensor:
        """Row positions of the given sample numbers."""
        if self.numbers is None:
            return torch.tensor(list(numbers), dtype=torch.int64)
        where = {n: i for i, n in enumerate(self.numbers)}
        missing = [n for n in numbers if n not in where]
        if missing:
            raise FormatError(f"stored sample {missing[0]} is used but not included")
        return torch.tensor([where[n] for n in numbers], dtype=torch.int64)


MAX_STORED_SAMPLE_BYTES = 256 << 20  # all stored samples together: trigger sets (10^4 CIFAR images: 123 MB)
RNG_ALLOWANCE = 1 << 18  # the RNG states (at most 64 KiB each) and the scheduler's two scalars


def state_budget(header: ProofHeader, *, trust_code: bool = False) -> int:
    """The most bytes one checkpoint's tensors can hold for this proof: the architecture's state (measured on
    the meta device by `models.measure_model`, which also refuses hostile arguments and untrusted user code
    before anything is built), as much again for each per-parameter optimizer state the proof's optimizer
    keeps (SGD's momentum; Adam's moments and step), and the RNG and scheduler allowance. Decoding never
    allocates more than this."""
    size = measure_model(header.spec, trust_code=trust_code)
    keys = state_keys(header.loop.optimizer) if header.loop is not None else ("momentum_buffer",)
    return (1 + len(keys)) * (size.nbytes if size is not None else MAX_MODEL_BYTES) + RNG_ALLOWANCE


def file_budget(state_bytes: int) -> int:
    """The most bytes a checkpoint file holding `state_bytes` of tensors can take: zstd's worst case (the input
    plus 1/128 and a frame header per tensor) inside a safetensors file."""
    return safetensors_bound(state_bytes + state_bytes // 128 + (1 << 20), 4096)


def read_verified(directory: Path, entry: FileEntry, max_bytes: int | None = None) -> bytes:
    """The file's bytes, if and only if they are exactly the ones the listing commits to.

    `max_bytes` is the most such a file can honestly take (`file_budget`): a listing that declares more is
    refused before the file is opened, so a proof cannot make the verifier read gigabytes to hash them.
    """
    path = directory / entry.file
    if max_bytes is not None and entry.size > max_bytes:
        raise file_error(
            FormatError,
            path,
            f"proof.json says it is {entry.size} bytes, more than the {max_bytes} the architecture's state can take",
        )
    try:
        data = read_regular_file(path, max_bytes=entry.size, within=directory)
    except FormatError as exc:
        if "more than the" in str(exc):
            raise file_error(
                FormatError, path, f"is larger than the {entry.size} bytes proof.json says (truncated or replaced)"
            ) from None
        raise
    if len(data) != entry.size:
        raise file_error(
            FormatError, path, f"is {len(data)} bytes, proof.json says {entry.size} (truncated or replaced)"
        )
    digest = sha256_bytes(data)
    if digest != entry.sha256:
        raise file_error(
            FormatError,
            path,
            f"SHA-256 {digest[:16]}... differs from proof.json's "
            f"{entry.sha256[:16]}... (the file was changed after recording)",
        )
    return data


def load_sample_file(
    directory: Path, entry: FileEntry, count: int, shape: tuple[int, int, int], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A stored-samples file: exactly `x` (float32, count x shape, finite) and `y` (int64 labels in range).

    Its size is bounded by what `count` samples of `shape` take (and `count` by MAX_STORED_SAMPLE_BYTES)
    before the file is opened, so a listing cannot make the verifier read or hold more."""
    path = directory / entry.file
    nbytes = count * (4 * math.prod(shape) + 8)
    if nbytes > MAX_STORED_SAMPLE_BYTES:
        raise file_error(
            FormatError,
            path,
            f"{count} stored samples of shape {list(shape)} take {nbytes} bytes, more than the "
            f"{MAX_STORED_SAMPLE_BYTES} allowed",
        )
    tensors, _ = parse_safetensors(read_verified(directory, entry, safetensors_bound(nbytes, 2)), path)
    if set(tensors) != {"x", "y"}:
        raise file_error(FormatError, path, f"must hold exactly tensors 'x' and 'y', found {sorted(tensors)}")
    x, y = tensors["x"], tensors["y"]
    if x.dtype != torch.float32 or tuple(x.shape) != (count, *shape):
        raise file_error(FormatError, path, f"'x' is {x.dtype}{tuple(x.shape)}, expected float32{(count, *shape)}")
    if y.dtype != torch.int64 or tuple(y.shape) != (count,):
        raise file_error(FormatError, path, f"'y' is {y.dtype}{tuple(y.shape)}, expected int64({count},)")
    if count and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise file_error(FormatError, path, f"labels must lie in [0, {num_classes})")
    if not bool(torch.isfinite(x).all()):
        raise file_error(FormatError, path, "'x' holds NaN or infinite values")
    return x, y


DEFAULT_CACHE_BYTES = 256 << 20


class ProofStore:
    """Random access to a proof's checkpoints (delta chains resolved, decoded ones cached).

    The cache keeps the most recently used checkpoints up to `cache_bytes` (and at least `cache_size` of them):
    a verifier decodes every checkpoint once in order, then replays a few intervals anywhere in the proof,
    and a small model's whole proof fits, so nothing is decoded twice.
    """

    def __init__(
        self,
        directory: str | Path,
        proof: Proof,
        cache_size: int = 3,
        allowed: TensorRule | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        trust_code: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.proof = proof
        self.trust_code = trust_code
        self._budget: int | None = None
        self.cache_size = max(cache_size, 1)
        self.cache_bytes = cache_bytes
        self._bytes = 0
        self.allowed = allowed
        self._cache: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        self._samples: StoredSamples | None = None
        self._by_step = {c.step: i for i, c in enumerate(proof.checkpoints)}

    @property
    def budget(self) -> int:
        """`state_budget` of the proof's architecture, measured on first use."""
        if self._budget is None:
            self._budget = state_budget(self.proof.header, trust_code=self.trust_code)
        return self._budget

    def index_of_step(self, step: int) -> int:
        return self._by_step[step]

    def checkpoint(self, index: int) -> dict[str, torch.Tensor]:
        """Decoded tensors of checkpoint `index` (0-based in proof.checkpoints); do not modify them."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        chain = [index]
        while self.proof.checkpoints[chain[-1]].base_step is not None and chain[-1] not in self._cache:
            entry = self.proof.checkpoints[chain[-1]]
            base_index = self._base_index(chain[-1], entry)
            chain.append(base_index)
            if len(chain) > MAX_DELTA_CHAIN + 1:
                raise file_error(FormatError, self.directory / entry.file, f"delta chain longer than {MAX_DELTA_CHAIN}")
        tensors = self._cache.get(chain[-1])
        for i in reversed(chain):
            if i in self._cache:
                tensors = self._cache[i]
                continue
            entry = self.proof.checkpoints[i]
            data = read_verified(self.directory, entry, file_budget(self.budget))
            tensors = decode_checkpoint(
                data,
                self.directory / entry.file,
                entry.step,
                tensors if entry.base_step is not None else None,
                entry.base_step,
                self.allowed,
                self.budget,
            )
            self._remember(i, tensors)
        assert tensors is not None
        return tensors

    def _base_index(self, index: int, entry: CheckpointEntry) -> int:
        if index == 0 or self.proof.checkpoints[index - 1].step != entry.base_step:
            raise file_error(
                FormatError,
                self.directory / entry.file,
                f"delta base step {entry.base_step} is not the previous checkpoint",
            )
        return index - 1

    def _remember(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        if index not in self._cache:
            self._bytes += size_of(tensors)
        self._cache[index] = tensors
        self._cache.move_to_end(index)
        while len(self._cache) > self.cache_size and self._bytes > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._bytes -= size_of(dropped)

    def samples(self) -> StoredSamples | None:
        """All stored samples (validated against the dataset's shape and classes), or None if there are none."""
        if self._samples is not None or not self.proof.sample_files:
            return self._samples
        info = self.proof.header.dataset
        total = sum(entry.count for entry in self.proof.sample_files) * (4 * math.prod(info.input_shape) + 8)
        if total > MAX_STORED_SAMPLE_BYTES:
            raise file_error(
                FormatError,
                self.directory / "proof.json",
                f"stores {total} bytes of samples, more than the {MAX_STORED_SAMPLE_BYTES} allowed",
            )
        xs, ys = [], []
        for entry in self.proof.sample_files:
            x, y = load_sample_file(self.directory, entry, entry.count, info.input_shape, info.num_classes)
            xs.append(x)
            ys.append(y)
        self._samples = StoredSamples(torch.cat(xs), torch.cat(ys))
        return self._samples


def size_of(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def batch_tensors(
    record: StepRecord, data: Dataset, samples: StoredSamples | None, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact batch of one step: data[indices] (augmented with the recorded seed), then stored samples.

    The gather and augmentation are the same operations `training.make_batch` performs, so the bytes
    (and the hash) come out identical.
    """
    index = torch.from_numpy(record.indices)
    inputs = data.x[index].to(device)
    labels = data.y[index].to(device)
    if record.augment_seed is not None and len(index):
        inputs = augment(inputs, record.augment_seed)
    if record.stored:
        if samples is None:
            raise FormatError("a step refers to stored samples, but the proof has none")
        chosen = samples.rows(record.stored)
        inputs = torch.cat([inputs, samples.x[chosen].to(device)])
        labels = torch.cat([labels, samples.y[chosen].to(device)])
    return inputs, labels


def batch_digest(inputs: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 over dtype, shape and exact bytes of a batch's inputs and labels."""
    return tensor_digest(inputs, labels)
