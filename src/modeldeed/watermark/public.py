"""Public verifiability (Adi et al. 2018, Appendix A.1 and Section 4.1).

Cut-and-choose with Fiat-Shamir: the public key opens the e=1 half of the triggers, e = H(vk),
so anyone can check that those are real backdoor elements (they open, and their labels are not the
data's true classes); by the cut-and-choose argument, so are all but fewer than n of the hidden half.
The paper then checks the hidden half inside a zero-knowledge argument, an open problem that
modeldeed does not solve: here that step runs in the clear on the marking key, so whoever runs it
learns the hidden triggers (do it as the owner, or before a trusted judge).

Bounded: a key of several disjoint trigger sets, all embedded; each public verification reveals
one unused set (its images, labels and nonces), which anyone can check against the public key
and the model. The owner's key directory records which sets have been revealed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Dataset
from ..errors import FormatError, ModeldeedError, file_error
from ..files import read_json_object, read_safetensors, safetensors_bound, write_json_atomic, write_safetensors_atomic
from ..validation import Fields
from .keys import MarkingKey, Opening, VerificationKey, load_marking_key, load_verification_key, opening_from_fields
from .security import acceptance_threshold, binomial_tail, log2_fraction
from .verify import WatermarkVerdict, classify, data_label_conflicts, judge, key_pair_problems

log = logging.getLogger(__name__)

REVEAL_FORMAT = "modeldeed.watermark.reveal"
USAGE_FORMAT = "modeldeed.watermark.usage"
REVEAL_FILE, REVEAL_TENSORS, USAGE_FILE = "reveal.json", "reveal.safetensors", "usage.json"
REFERENCE_ALPHA_LOG2 = -20.0  # an honest random-label key fails the reference test with probability <= 2^-20


def _log2_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def reference_model_problem(
    reference_model: nn.Module, opening: Opening, num_classes: int, alpha_log2: float = REFERENCE_ALPHA_LOG2
) -> tuple[str | None, dict[str, Any]]:
    """A classifier trained on the data stands in for f: too many agreements mean correctly labelled triggers.

    Committed labels are uniform and independent of the images, so a reference model agrees with
    an honest key's labels Bin(m, 1/|L|) times whatever it predicts; far more is evidence of a key
    built from real images with their true classes.
    """
    predictions = classify(reference_model, opening.images, num_classes)
    count = len(opening.indices)
    agreements = int((predictions == torch.tensor(opening.labels, dtype=torch.int64)).sum())
    tail_log2 = log2_fraction(binomial_tail(count, agreements, num_classes))
    metrics = {"reference_agreements": agreements, "reference_tail_log2": _log2_or_none(tail_log2)}
    if tail_log2 < alpha_log2:
        return (
            f"a reference classifier gives {agreements} of {count} opened triggers their committed label; random "
            f"labels would do that with probability 2^{tail_log2:.1f}: the triggers look like correctly labelled "
            "data, not a backdoor"
        ), metrics
    return None, metrics


def check_public_key(
    verification_key: VerificationKey, *, data: Sequence[Dataset] = (), reference_model: nn.Module | None = None
) -> tuple[list[str], dict[str, Any]]:
    """Steps 1-2 of PVerify, from the public key alone: e = H(vk), the e=1 half opens and is no real data."""
    vk = verification_key
    if vk.scheme != "cut-and-choose" or vk.opened is None:
        raise ModeldeedError(
            f"a {vk.scheme} key has no opened half; public verification of it needs "
            + (
                "a revealed set (modeldeed watermark reveal)"
                if vk.scheme == "bounded"
                else "a cut-and-choose key (modeldeed watermark pkeygen)"
            )
        )
    challenge = vk.challenge()
    expected = tuple(i for i, bit in enumerate(challenge) if bit == 1)
    problems = []
    if vk.opened.indices != expected:
        wrong = sorted(set(vk.opened.indices) ^ set(expected))
        problems.append(
            f"the opened triggers are not the e=1 half of the challenge e = H(vk) (they differ at "
            f"indices {wrong[:8]}{' ...' if len(wrong) > 8 else ''})"
        )
    problems += vk.opened.failures(vk)
    for dataset in data:
        problems += data_label_conflicts(vk.opened, dataset)
    metrics: dict[str, Any] = {"opened": len(vk.opened.indices), "hidden": challenge.count(0)}
    if reference_model is not None:
        problem, more = reference_model_problem(reference_model, vk.opened, len(vk.classes))
        metrics.update(more)
        if problem:
            problems.append(problem)
    return problems, metrics


def pverify(
    verification_key: VerificationKey,
    model: nn.Module,
    *,
    marking_key: MarkingKey | None = None,
    reveal: RevealedSet | None = None,
    data: Sequence[Dataset] = (),
    reference_model: nn.Module | None = None,
    test_data: Dataset | None = None,
    epsilon: float | None = None,
) -> WatermarkVerdict:
    """PVerify: the public checks, then the model against the hidden half (cut-and-choose) or a revealed set."""
    vk = verification_key
    if vk.scheme == "bounded":
        if reveal is None:
            raise ModeldeedError(
                "a bounded key is verified publicly against a revealed set: pass the reveal "
                "(modeldeed watermark reveal)"
            )
        return verify_revealed_set(
            vk, reveal, model, data=data, reference_model=reference_model, test_data=test_data, epsilon=epsilon
        )
    problems, metrics = check_public_key(vk, data=data, reference_model=reference_model)
    hidden = [i for i, bit in enumerate(vk.challenge()) if bit == 0]
    eps = vk.epsilon if epsilon is None else float(epsilon)
    n = vk.security_bits or 0
    threshold = acceptance_threshold(len(hidden), eps)
    cheat = binomial_tail(max(len(hidden) - (n - 1), 0), threshold - (n - 1), len(vk.classes))
    metrics.update(
        {
            "public_checks_passed": not problems,
            "security_bits": n,
            "cut_and_choose_failure_log2": -n,
            "cheating_chance_probability": float(cheat),
            "cheating_chance_log2": _log2_or_none(log2_fraction(cheat)),
        }
    )
    if marking_key is None:
        chance = binomial_tail(len(hidden), threshold, len(vk.classes))
        reasons = [
            *problems,
            "the hidden half was not checked against the model: that needs the marking key "
            "(the paper's zero-knowledge step, run in the clear here)",
        ]
        return WatermarkVerdict(
            False,
            tuple(reasons),
            vk.key_id,
            vk.scheme,
            len(hidden),
            0,
            threshold,
            eps,
            None,
            float(chance),
            _log2_or_none(log2_fraction(chance)),
            None,
            metrics,
        )
    problems += key_pair_problems(marking_key, vk)
    if marking_key.size != vk.size:
        raise ModeldeedError("the marking key and the verification key hold different numbers of triggers")
    return judge(
        vk,
        marking_key.opening(hidden),
        model,
        epsilon=eps,
        test_data=test_data,
        reasons=problems,
        metrics=metrics,
        data=data,
    )


@dataclass(frozen=True, eq=False)
class RevealedSet:
    """One trigger set of a bounded key, opened for one public verification."""

    key_id: str
    set_index: int
    opening: Opening
    created: str


def verify_revealed_set(
    verification_key: VerificationKey,
    reveal: RevealedSet,
    model: nn.Module,
    *,
    data: Sequence[Dataset] = (),
    reference_model: nn.Module | None = None,
    test_data: Dataset | None = None,
    epsilon: float | None = None,
) -> WatermarkVerdict:
    """Bounded PVerify: the revealed set belongs to this key, opens, is no real data, and the model knows it."""
    vk = verification_key
    problems = []
    if reveal.key_id != vk.key_id:
        problems.append(f"the revealed set belongs to key {reveal.key_id[:16]}…, not to {vk.key_id[:16]}…")
    if not 0 <= reveal.set_index < vk.sets:
        raise ModeldeedError(f"set {reveal.set_index} does not exist; the key has sets 0..{vk.sets - 1}")
    expected = vk.set_indices(reveal.set_index)
    if reveal.opening.indices != tuple(expected):
        problems.append(
            f"the revealed triggers are not exactly set {reveal.set_index} "
            f"(indices {expected.start}..{expected.stop - 1})"
        )
    metrics: dict[str, Any] = {"set": reveal.set_index, "sets": vk.sets}
    if reference_model is not None:
        problem, more = reference_model_problem(reference_model, reveal.opening, len(vk.classes))
        metrics.update(more)
        if problem:
            problems.append(problem)
    return judge(
        vk, reveal.opening, model, epsilon=epsilon, test_data=test_data, reasons=problems, metrics=metrics, data=data
    )


def save_reveal(directory: str | Path, reveal: RevealedSet) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(directory / REVEAL_TENSORS, {"images": reveal.opening.images}, {"format": REVEAL_FORMAT})
    write_json_atomic(
        directory / REVEAL_FILE,
        {
            "format": REVEAL_FORMAT,
            "version": 1,
            "key_id": reveal.key_id,
            "set": reveal.set_index,
            "created": reveal.created,
            **reveal.opening.to_json(),
        },
    )
    return directory


def load_reveal(directory: str | Path, verification_key: VerificationKey) -> RevealedSet:
    """A revealed set, checked field by field against the shape of `verification_key`."""
    vk = verification_key
    path = Path(directory) / REVEAL_FILE if Path(directory).is_dir() else Path(directory)
    f = Fields(read_json_object(path), path)
    f.expect_format(REVEAL_FORMAT)
    count = len(f.list("indices"))
    tensors = read_safetensors(
        path.parent / REVEAL_TENSORS, max_bytes=safetensors_bound(4 * count * math.prod(vk.input_shape))
    )
    images = tensors.get("images")
    if (
        set(tensors) != {"images"}
        or images is None
        or images.dtype != torch.float32
        or tuple(images.shape) != (count, *vk.input_shape)
    ):
        raise file_error(
            FormatError,
            path.parent / REVEAL_TENSORS,
            f"must hold one float32 tensor 'images' of shape {[count, *vk.input_shape]}",
        )
    opening = opening_from_fields(f, images, vk.size, len(vk.classes))
    return RevealedSet(f.hex64("key_id"), f.int("set", minimum=0), opening, f.str("created"))


def load_usage(key_dir: str | Path, verification_key: VerificationKey) -> list[dict[str, Any]]:
    """The owner's record of revealed sets (empty if none were revealed yet)."""
    path = Path(key_dir) / USAGE_FILE
    if not path.exists():
        return []
    f = Fields(read_json_object(path), path)
    f.expect_format(USAGE_FORMAT)
    if f.hex64("key_id") != verification_key.key_id:
        raise f.fail("key_id", "belongs to another key")
    entries = f.objects("revealed")
    for entry in entries:
        entry.int("set", minimum=0, maximum=verification_key.sets - 1)
    return [entry.obj for entry in entries]


def reveal_next_set(key_dir: str | Path, out_dir: str | Path, *, note: str = "") -> RevealedSet:
    """Open the next unused set of a bounded key into `out_dir`, recording it as used first.

    The record is written before the reveal, so an interruption can waste a set but never reuse one.
    """
    mk, vk = load_marking_key(key_dir), load_verification_key(key_dir)
    if vk.scheme != "bounded":
        raise ModeldeedError(f"only a bounded key has sets to reveal; this is a {vk.scheme} key")
    problems = key_pair_problems(mk, vk)
    if problems:
        raise ModeldeedError(f"{key_dir}: {problems[0]}")
    used = load_usage(key_dir, vk)
    taken = {int(entry["set"]) for entry in used}
    free = [j for j in range(vk.sets) if j not in taken]
    if not free:
        raise ModeldeedError(
            f"{key_dir}: all {vk.sets} trigger sets have been revealed; this key allows no further public verification"
        )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    reveal = RevealedSet(vk.key_id, free[0], mk.opening(list(vk.set_indices(free[0]))), now)
    used.append({"set": free[0], "time": now, "note": note, "out": str(out_dir)})
    write_json_atomic(
        Path(key_dir) / USAGE_FILE,
        {"format": USAGE_FORMAT, "version": 1, "key_id": vk.key_id, "sets": vk.sets, "revealed": used},
    )
    save_reveal(out_dir, reveal)
    log.info("revealed set %d of %d; %d left", free[0], vk.sets, len(free) - 1)
    return reveal
