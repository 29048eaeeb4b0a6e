"""Attacks on ownership proofs. Each is `Attack(**hyper_parameters)(model, data, test=..., verifier=...)`.

Watermark removal (Adi et al. 2018 §5.4-5.5, and the Watermark-Robustness-Toolbox menu): fine-tuning
(FTLL, FTAL, RTLL, RTAL), ownership piracy, transfer learning, fine-pruning, magnitude pruning, weight
quantization, Gaussian weight noise, distillation / extraction, input preprocessing. The verdict always
comes from the real watermark verifier; the success rule is `watermark_removed`.

Proof-of-learning spoofing (Zhang et al. 2022, Fang et al. 2023): `ZhangAttack1/2/3`, `InfinitesimalUpdate`,
`BlindfoldTopQ`, each `Spoof(**hyper_parameters)(model, spec, data, config=...)`; `spoof_and_verify` writes
the forged proof and judges it with the real PoL verifiers (see docs/pol-spoofing.md).
"""

from .base import (
    MAX_ACCURACY_DROP_POINTS,
    Attack,
    AttackContext,
    AttackResult,
    Evaluation,
    Outcome,
    Verifier,
    adversary_data,
    evaluate,
    watermark_removed,
    with_head,
)
from .distill import Distillation
from .finetune import (
    FINE_TUNE_MODES,
    FTAL,
    FTLL,
    RTAL,
    RTLL,
    FineTuneAllLayers,
    FineTuneLastLayer,
    ReTrainAllLayers,
    ReTrainLastLayer,
    TuningAttack,
    fine_tune_attack,
    from_scratch_settings,
    paper_settings,
    training_config,
    tune,
)
from .perturb import GaussianNoise, WeightQuantization
from .piracy import PIRACY_FINE_TUNING, OwnershipPiracy, pirate_key
from .pol_spoof import ProofSpoof, SpoofCost, SpoofResult, honest_training_cost, sorted_initialisation
from .pol_spoof_fang import BlindfoldTopQ, InfinitesimalUpdate
from .pol_spoof_proof import write_spoof_proof
from .pol_spoof_report import SPOOFS, SpoofReport, make_spoof, spoof_and_verify
from .pol_spoof_zhang import ZhangAttack1, ZhangAttack2, ZhangAttack3
from .preprocess import InputPreprocessing, PreprocessedModel
from .pruning import FinePruning, MagnitudePruning
from .suite import SuiteEntry, SuiteResult, default_suite, run_suite, select
from .transfer import TransferLearning, fit_to_shape, transferred_spec
from .verifier import KeyPair, load_key_pair, watermark_verifier

__all__ = [
    "FINE_TUNE_MODES",
    "FTAL",
    "FTLL",
    "MAX_ACCURACY_DROP_POINTS",
    "PIRACY_FINE_TUNING",
    "RTAL",
    "RTLL",
    "Attack",
    "AttackContext",
    "AttackResult",
    "Distillation",
    "Evaluation",
    "FineTuneAllLayers",
    "FineTuneLastLayer",
    "FinePruning",
    "GaussianNoise",
    "InputPreprocessing",
    "KeyPair",
    "MagnitudePruning",
    "Outcome",
    "OwnershipPiracy",
    "PreprocessedModel",
    "ReTrainAllLayers",
    "ReTrainLastLayer",
    "SuiteEntry",
    "SuiteResult",
    "TransferLearning",
    "TuningAttack",
    "Verifier",
    "WeightQuantization",
    "adversary_data",
    "default_suite",
    "evaluate",
    "fine_tune_attack",
    "fit_to_shape",
    "from_scratch_settings",
    "load_key_pair",
    "paper_settings",
    "pirate_key",
    "run_suite",
    "select",
    "training_config",
    "transferred_spec",
    "tune",
    "watermark_removed",
    "watermark_verifier",
    "with_head",
    # proof-of-learning spoofing
    "SPOOFS",
    "BlindfoldTopQ",
    "InfinitesimalUpdate",
    "ProofSpoof",
    "SpoofCost",
    "SpoofReport",
    "SpoofResult",
    "ZhangAttack1",
    "ZhangAttack2",
    "ZhangAttack3",
    "honest_training_cost",
    "make_spoof",
    "sorted_initialisation",
    "spoof_and_verify",
    "write_spoof_proof",
]
