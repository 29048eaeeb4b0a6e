"""Public verifiability by cut-and-choose (Adi et al. 2018, Appendix A.1), and PVerify for both public schemes.

Cut-and-choose with Fiat-Shamir: the public key opens the e=1 half of the triggers, e = H(vk), so anyone can
check that those are real backdoor elements (they open, carry the labels their image commitments dictate or,
for chosen labels, are not the data's true classes); by the cut-and-choose argument, so are all but fewer
than n of the hidden half. The paper then checks the hidden half inside a zero-knowledge argument, an open
problem that modeldeed does not solve here: that step runs in the clear on the marking key, so whoever runs
it learns the hidden triggers (do it as the owner, or before a trusted judge). Bounded keys: `reveal`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from .keys import MarkingKey, VerificationKey
from .limits import check_epsilon
from .reveal import RevealedSet, RevealRecord, verify_revealed_set
from .security import acceptance_threshold, binomial_tail, log2_fraction
from .verify import (
    WatermarkVerdict,
    data_label_conflicts,
    judge,
    key_notes,
    key_pair_problems,
    log2_or_none,
    reference_model_problem,
)

log = logging.getLogger(__name__)


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
    history: Sequence[RevealRecord] = (),
    first_seen: datetime | None = None,
    registered: str | None = None,
) -> WatermarkVerdict:
    """PVerify: the public checks, then the model against the hidden half (cut-and-choose) or a revealed set.

    For a bounded key, `history` (other reveals, the owner's usage record) and `first_seen` (the model's first
    appearance) decide whether the revealed set still counts; see `reveal.reveal_timing`.
    """
    vk = verification_key
    if vk.scheme == "bounded":
        if reveal is None:
            raise ModeldeedError(
                "a bounded key is verified publicly against a revealed set: pass the reveal "
                "(modeldeed watermark reveal)"
            )
        return verify_revealed_set(
            vk,
            reveal,
            model,
            data=data,
            reference_model=reference_model,
            test_data=test_data,
            epsilon=epsilon,
            history=history,
            first_seen=first_seen,
            registered=registered,
        )
    problems, metrics = check_public_key(vk, data=data, reference_model=reference_model)
    hidden = [i for i, bit in enumerate(vk.challenge()) if bit == 0]
    eps = vk.epsilon if epsilon is None else check_epsilon(epsilon)
    n = vk.security_bits or 0
    threshold = acceptance_threshold(len(hidden), eps)
    cheat = binomial_tail(max(len(hidden) - (n - 1), 0), threshold - (n - 1), len(vk.classes))
    metrics.update(
        {
            "public_checks_passed": not problems,
            "security_bits": n,
            "cut_and_choose_failure_log2": -n,
            "cheating_chance_probability": float(cheat),
            "cheating_chance_log2": log2_or_none(log2_fraction(cheat)),
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
            log2_or_none(log2_fraction(chance)),
            None,
            metrics,
            vk.label_kind,
            vk.demonstration,
            tuple(key_notes(vk, registered)),
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
        registered=registered,
    )
