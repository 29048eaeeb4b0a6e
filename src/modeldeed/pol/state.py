"""The training state a checkpoint holds, how it is digested for the commitment, and how two are compared.

A step of training depends on more than the weights: on the buffers (BatchNorm's running statistics and
its batch counter), the optimizer's momentum, the global RNG (dropout) and the position in the learning-rate
schedule. A checkpoint stores all of them, and a verifier trusts none of them: a replay re-derives every
one and compares it with the next checkpoint, and W_0's are re-derived from the seed (a fresh optimizer has
no momentum; the RNG is seeded from the seed; the schedule stands at step 0).

Tensor names inside a checkpoint:

    model/NAME                     every state_dict() entry (parameters and buffers)
    optimizer/momentum_buffer/P    SGD's momentum for trained parameter P (absent before the first step)
    rng/torch_cpu, rng/torch_cuda  the global RNG state (CUDA only on a CUDA run)
    scheduler/step, scheduler/lr   steps done (int64) and the learning rate of the next step (float64)

Digest of a set of tensors (what the proof commitment's checkpoint leaves hold, see docs/formats.md):

    D(tensors) = SHA-256("modeldeed/pol-tensors/v1" ‖ 0x00 ‖ u64be(count) ‖ for each name in sorted order:
                 u32be(len(name)) ‖ name ‖ u8(len(dtype)) ‖ dtype ‖ u8(ndim) ‖ u64be(dim)... ‖ u64be(nbytes) ‖ bytes)

with dtype the safetensors code (F32, I64, ...) and bytes the little-endian elements in row-major order. A
checkpoint has two: D_model over the model/ tensors (named without the prefix, so a model directory's
weights digest the same) and D_other over everything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ..models import ModelSpec, build_model, state_tensors
from ..training import TrainConfig, rng_devices, seed_run_rng
from .checkpoints import DTYPE_NAMES, tensor_words

MODEL_PREFIX = "model/"
OPTIMIZER_PREFIX = "optimizer/"
MOMENTUM = "momentum_buffer"
RNG_CPU = "rng/torch_cpu"
RNG_CUDA = "rng/torch_cuda"
SCHEDULER_STEP = "scheduler/step"
SCHEDULER_LR = "scheduler/lr"
TENSORS_TAG = b"modeldeed/pol-tensors/v1"


def model_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model/ part of a checkpoint, by state_dict name."""
    return {k.removeprefix(MODEL_PREFIX): v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


def other_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in tensors.items() if not k.startswith(MODEL_PREFIX)}


def momentum_name(parameter: str) -> str:
    return f"{OPTIMIZER_PREFIX}{MOMENTUM}/{parameter}"


def training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    names: Sequence[str],
    step: int,
    next_lr: float,
    *,
    cuda_device: str | None = None,
) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: weights and buffers, optimizer state (momentum), RNG and schedule position.

    What a replay from this point needs. The recorder, every replay and anything that writes proofs with
    ProofWriter build checkpoints here.
    """
    tensors = {MODEL_PREFIX + k: v.detach().to("cpu") for k, v in state_tensors(model).items()}
    named = dict(model.named_parameters())
    for name in names:
        for key, value in optimizer.state.get(named[name], {}).items():
            if torch.is_tensor(value):
                tensors[f"{OPTIMIZER_PREFIX}{key}/{name}"] = value.detach().to("cpu").clone()
    tensors[RNG_CPU] = torch.get_rng_state()
    if cuda_device is not None:
        tensors[RNG_CUDA] = torch.cuda.get_rng_state(cuda_device)
    tensors[SCHEDULER_STEP] = torch.tensor(step, dtype=torch.int64)
    tensors[SCHEDULER_LR] = torch.tensor(next_lr, dtype=torch.float64)
    return tensors


def initial_state(
    spec: ModelSpec, config: TrainConfig, *, trust_code: bool = False, first_lr: float | None = None
) -> dict[str, torch.Tensor]:
    """W_0 as the seed makes it: `build_model(spec, config.seed)`, a fresh optimizer (no momentum), the run's RNG
    seeded from the seed (`training.seed_run_rng`), the schedule at step 0 (`first_lr`: a user's own schedule's
    first rate, else the config's)."""
    model = build_model(spec, seed=config.seed, trust_code=trust_code)
    tensors = {MODEL_PREFIX + k: v for k, v in state_tensors(model).items()}
    with torch.random.fork_rng(devices=rng_devices(config)):
        seed_run_rng(config)
        tensors[RNG_CPU] = torch.get_rng_state()
        for index in rng_devices(config):
            tensors[RNG_CUDA] = torch.cuda.get_rng_state(index)
    tensors[SCHEDULER_STEP] = torch.tensor(0, dtype=torch.int64)
    tensors[SCHEDULER_LR] = torch.tensor(config.lr_at(0) if first_lr is None else first_lr, dtype=torch.float64)
    return tensors


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """D(tensors): names, dtypes, shapes and exact little-endian bytes of every tensor, in name order."""
    h = hashlib.sha256(TENSORS_TAG + b"\x00")
    h.update(len(tensors).to_bytes(8, "big"))
    for name in sorted(tensors):
        t = tensors[name]
        code = DTYPE_NAMES.get(t.dtype)
        if code is None:
            raise ValueError(f"tensor {name!r} has dtype {t.dtype}, which checkpoints do not support")
        words = tensor_words(t)
        data = words.astype(words.dtype.newbyteorder("<"), copy=False).tobytes()
        encoded = name.encode("utf-8")
        h.update(len(encoded).to_bytes(4, "big") + encoded)
        h.update(bytes([len(code)]) + code.encode("ascii") + bytes([t.dim()]))
        h.update(b"".join(int(d).to_bytes(8, "big") for d in t.shape))
        h.update(len(data).to_bytes(8, "big") + data)
    return h.digest()


def state_digests(tensors: Mapping[str, torch.Tensor]) -> tuple[bytes, bytes]:
    """(D_model, D_other) of a checkpoint's tensors."""
    return tensor_digest(model_tensors(tensors)), tensor_digest(other_tensors(tensors))


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and every bit (NaN payloads and signed zeros included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return bool((tensor_words(a) == tensor_words(b)).all())


def differing(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> list[str]:
    """Names present in only one of the two, or with different bits, sorted."""
    names = set(a) | set(b)
    return sorted(n for n in names if n not in a or n not in b or not same_bits(a[n], b[n]))


MAX_RNG_BYTES = 1 << 16


ADAM_STEP = "step"


def tensor_rule(
    model: nn.Module, trained: Sequence[str], optimizer_keys: Sequence[str] = (MOMENTUM,)
) -> Callable[[str, torch.dtype, tuple[int, ...]], str | None]:
    """Which tensors a checkpoint of `model` may hold, with which dtype and shape (for `decode_checkpoint`).

    `optimizer_keys`: the per-parameter state the optimizer keeps (SGD: momentum_buffer; Adam and AdamW of a
    user's own loop: exp_avg, exp_avg_sq, the scalar float32 step, and max_exp_avg_sq with amsgrad)."""
    expected = {k: (v.dtype, tuple(v.shape)) for k, v in model.state_dict().items()}
    params = {k: (p.dtype, tuple(p.shape)) for k, p in model.named_parameters()}
    trained_set = set(trained)

    def allowed(name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> str | None:
        if name.startswith(MODEL_PREFIX):
            want = expected.get(name.removeprefix(MODEL_PREFIX))
            if want is None:
                return "the architecture has no such tensor"
        elif name.startswith(OPTIMIZER_PREFIX):
            key, _, parameter = name.removeprefix(OPTIMIZER_PREFIX).partition("/")
            if key not in optimizer_keys or parameter not in trained_set:
                return f"not optimizer state ({', '.join(optimizer_keys)}) of a trained parameter"
            want = (torch.float32, ()) if key == ADAM_STEP else params[parameter]
        elif name in (RNG_CPU, RNG_CUDA):
            if dtype != torch.uint8 or len(shape) != 1 or shape[0] > MAX_RNG_BYTES:
                return f"an RNG state must be a 1-D uint8 tensor of at most {MAX_RNG_BYTES} bytes"
            return None
        elif name == SCHEDULER_STEP:
            want = (torch.int64, ())
        elif name == SCHEDULER_LR:
            want = (torch.float64, ())
        else:
            return "not a tensor a checkpoint holds"
        if (dtype, shape) != want:
            return f"is {dtype}{list(shape)}, expected {want[0]}{list(want[1])}"
        return None

    return allowed
