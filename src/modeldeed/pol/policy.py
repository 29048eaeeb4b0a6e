"""Which checks the verifier runs and with which bounds (`VerificationPolicy`), and the hardened settings.

Three policies matter:

- `VerificationPolicy.reference()`: the paper's verifier (Jia et al. 2021, Algorithm 2), kept for
  comparison: per epoch the Q largest updates are replayed from the stored state and the trained weights
  must land within delta x d_ref; the rest of the state (momentum, buffers) is taken as stored.
- `VerificationPolicy()`: the same checks, but a replay re-derives the whole training state. In the
  recorded environment it must be bit-identical; elsewhere the trained weights must land within the
  smaller of delta x d_ref and `max_relative_error` times the interval's replayed update (l1, l2), the momentum
  (by its effect on the next steps) and buffers (`max_buffer_error`) within bounds as well, the rest
  exactly (`pol.compare`).
- `hardened_policy(...)` (`pol verify --hardened`): also the settings bound to a training statement, W_0 and
  its state re-derived from the seed, the batches from the seeded order, every sample committed, untrained
  tensors never changing, and the replayed intervals drawn by a challenge the prover cannot steer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModeldeedError
from .challenge import DEFAULT_MIN_FABRICATED, DEFAULT_SOUNDNESS_BITS
from .context import Check, check_name
from .distances import METRICS, check_metrics
from .intervals import IntervalSelector, top_q_per_epoch

if TYPE_CHECKING:
    from .commitment import ProofCommitment
    from .registration import Receipts
    from .statement import TrainingStatement

# Normalised delta (a fraction of d_ref), the paper's form of the threshold. Replays with the recording's thread
# count are bit-identical; with another thread count the first interval after W_0 is chaotic: measured on
# Fashion-MNIST (lr 0.05, k = 100, 1 thread vs 2) it ends 0.20 (l1), 0.21 (l2), 0.30 (linf) and 0.046 (cos) of
# d_ref away for ResNet-20 and 0.017 / 0.029 / 0.069 / 0.0009 for the cnn (docs/pol.md).
DEFAULT_DELTA: dict[str, float] = {"l1": 0.3, "l2": 0.3, "linf": 0.5, "cos": 0.1}
# Outside the recorded environment a replay must also land within this fraction of the interval's own (replayed)
# update (l1, l2): so a stored update that is not the real one fails however small it is, which the delta x d_ref
# bound alone lets through (Fashion-MNIST updates are 0.05-0.2 d_ref: a replay that did not move would pass).
# The momentum is held to the same fraction, by its effect on the next steps. Honest replays with another thread
# count, k = 100 (docs/pol.md): Fashion-MNIST cnn up to 0.22 of the update; ResNet-20 0.14 except on its first
# interval from W_0, which is chaotic (0.80): replay there in the recorded environment, or calibrate.
DEFAULT_MAX_RELATIVE_ERROR = 0.5
# BatchNorm's running statistics (which training in train mode never reads) are a short memory of the last
# batches and diverge across environments as fast as the batches' statistics do: up to 0.72 of their change.
DEFAULT_MAX_BUFFER_ERROR = 0.9
REPLAY_MODES = ("auto", "exact", "tolerance", "reference")


@dataclass(frozen=True)
class Hardening:
    """The hardened checks' settings (`pol.hardened`); `VerificationPolicy(hardening=...)` switches them on.

    Arguments:
        statement: the training statement the verifier trusts (made and registered before training); None:
            the proof's settings are not bound in time (the verdict says so) and the public dataset is trusted.
        soundness_bits, min_fabricated: size of the challenge (`pol.challenge.challenge_size`).
        beacon: the registry's beacon for the registered commitment (`registry.registration_beacon`); None:
            the challenge is drawn offline from the commitment root.
        receipts: registry receipts of the commitment and the statement and the log's key
            (`pol.registration.Receipts`): checked offline against the commitment and statement the verifier
            recomputes; the commitment's beacon then draws the challenge (it takes the place of `beacon`).
        commitment: the commitment the prover published (or registered); the proof must match it.
        top_q: also replay the top_q intervals of a full proof whose update (l2) is largest relative to the median
            of their epoch (`intervals.outliers`). Prover-influenced (he chooses the update sizes), so never counted
            towards soundness; it catches a lone large jump, at a cost that does not grow with the proof.
        allowed_straight_pairs: pairs of consecutive parallel, equal updates tolerated (update_profile).
        the switches: each hardened check on or off.
    """

    statement: TrainingStatement | None = None
    soundness_bits: float = DEFAULT_SOUNDNESS_BITS
    min_fabricated: float = DEFAULT_MIN_FABRICATED
    beacon: bytes | None = None
    receipts: Receipts | None = None
    commitment: ProofCommitment | None = None
    top_q: int = 2
    allowed_straight_pairs: int = 1
    settings: bool = True
    initialisation_seed: bool = True
    batch_order: bool = True
    dataset_membership: bool = True
    frozen_tensors: bool = True
    update_profile: bool = True

    def __post_init__(self) -> None:
        if not self.soundness_bits > 0:
            raise ModeldeedError(f"soundness bits must be > 0, got {self.soundness_bits}")
        if not 0 < self.min_fabricated <= 1:
            raise ModeldeedError(f"the minimum fabricated fraction must lie in (0, 1], got {self.min_fabricated}")
        if self.top_q < 0:
            raise ModeldeedError(f"top_q must be >= 0, got {self.top_q}")

    def policy(self, base: VerificationPolicy | None = None) -> VerificationPolicy:
        import dataclasses

        base = base or VerificationPolicy()
        if base.replay_mode == "reference":
            base = dataclasses.replace(base, replay_mode="auto")
        return dataclasses.replace(base, hardening=self, check_batch_order=base.check_batch_order or self.batch_order)

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": None if self.statement is None else self.statement.id,
            "soundness_bits": self.soundness_bits,
            "min_fabricated": self.min_fabricated,
            "beacon": None if self.beacon is None else self.beacon.hex(),
            "receipts": None
            if self.receipts is None
            else {
                "commitment": None if self.receipts.commitment is None else self.receipts.commitment.entry.index,
                "statement": None if self.receipts.statement is None else self.receipts.statement.entry.index,
            },
            "commitment": None if self.commitment is None else self.commitment.id,
            "top_q": self.top_q,
            "allowed_straight_pairs": self.allowed_straight_pairs,
        }


@dataclass(frozen=True)
class VerificationPolicy:
    """Which checks run and with which thresholds."""

    check_schedule: bool = True
    check_data: bool = True
    check_initialisation: bool = True
    check_replay: bool = True
    check_batch_order: bool = False  # batches must be the seeded permutation (stored samples only appended)
    q: int = 2  # per epoch and metric, replay the q largest updates; q <= 0: every interval
    metrics: tuple[str, ...] = METRICS
    delta: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DELTA))  # normalised by d_ref
    d_ref: Mapping[str, float] | None = None  # absolute, from a calibration; None: estimated per interval
    replay_mode: str = "auto"  # auto: exact in the recorded environment, else tolerance; or exact, tolerance, reference
    max_relative_error: float = DEFAULT_MAX_RELATIVE_ERROR
    max_buffer_error: float = DEFAULT_MAX_BUFFER_ERROR
    ks_alpha: float = 0.01
    ks_family_wise: bool = True  # Bonferroni over the tested tensors; False: each tensor at ks_alpha
    selector: IntervalSelector = top_q_per_epoch
    expected_proof_id: str | None = None  # the id the prover published; None: not checked
    final_model: Mapping[str, torch.Tensor] | None = None  # the model in dispute; the last checkpoint must be it
    hardening: Hardening | None = None
    extra_checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", check_metrics(self.metrics))
        missing = [m for m in self.metrics if m not in self.delta]
        if missing:
            raise ModeldeedError(f"no delta for metric(s) {missing}")
        bad = [m for m in self.metrics if not self.delta[m] > 0]
        if bad:
            raise ModeldeedError(f"delta must be > 0 for {bad}")
        if self.d_ref is not None and any(not self.d_ref.get(m, 0) > 0 for m in self.metrics):
            raise ModeldeedError(f"d_ref must be > 0 for every metric in {list(self.metrics)}")
        if not 0 < self.ks_alpha < 1:
            raise ModeldeedError(f"KS significance level must lie in (0, 1), got {self.ks_alpha}")
        if self.replay_mode not in REPLAY_MODES:
            raise ModeldeedError(f"replay mode must be one of {', '.join(REPLAY_MODES)}, got {self.replay_mode!r}")
        if not 0 < self.max_relative_error < 1 or not 0 < self.max_buffer_error < 1:
            raise ModeldeedError(
                "the relative error bounds must lie in (0, 1) (at 1 a stored update unrelated to the real one would "
                f"pass), got {self.max_relative_error} and {self.max_buffer_error}"
            )

    @classmethod
    def reference(cls, **settings: Any) -> VerificationPolicy:
        """The paper's verifier, for comparison (see the module docstring)."""
        return cls(replay_mode="reference", **settings)

    @property
    def hardened(self) -> bool:
        return self.hardening is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "metrics": list(self.metrics),
            "delta": {m: self.delta[m] for m in self.metrics},
            "d_ref": None if self.d_ref is None else {m: self.d_ref[m] for m in self.metrics},
            "replay_mode": self.replay_mode,
            "max_relative_error": None if self.replay_mode == "reference" else self.max_relative_error,
            "max_buffer_error": None if self.replay_mode == "reference" else self.max_buffer_error,
            "ks_alpha": self.ks_alpha,
            "ks_family_wise": self.ks_family_wise,
            "selector": getattr(self.selector, "__name__", repr(self.selector)),
            "expected_proof_id": self.expected_proof_id,
            "final_model": self.final_model is not None,
            "hardening": None if self.hardening is None else self.hardening.to_json(),
            "extra_checks": [check_name(c) for c in self.extra_checks],
        }


def hardened_policy(base: VerificationPolicy | None = None, **settings: Any) -> VerificationPolicy:
    """The policy `base` (default `VerificationPolicy()`) with every hardened check switched on."""
    return Hardening(**settings).policy(base)
