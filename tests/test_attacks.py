"""Attacks on the watermark, on digits with the small cnn: each runs, zero strength changes nothing, the
success rule is applied exactly, and the verdicts come from the real verifier."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from attack_helpers import THREADS, watermarked_digits
from torch import nn

from modeldeed.attacks import (
    FTAL,
    FTLL,
    RTAL,
    RTLL,
    Attack,
    AttackContext,
    Distillation,
    FinePruning,
    GaussianNoise,
    InputPreprocessing,
    MagnitudePruning,
    Outcome,
    OwnershipPiracy,
    PreprocessedModel,
    TransferLearning,
    WeightQuantization,
    adversary_data,
    paper_settings,
    training_config,
    watermark_removed,
    watermark_verifier,
)
from modeldeed.data import Dataset
from modeldeed.errors import ModeldeedError
from modeldeed.models import last_linear
from modeldeed.training import TrainConfig, predict

QUICK = {"epochs": 1, "lr": 0.01, "progress": False}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def marked():
    return watermarked_digits()


@pytest.fixture(scope="module")
def verifier(marked):
    return watermark_verifier(marked.marking_key, marked.verification_key)


def run(attack, marked, verifier, data=None):
    return attack(
        marked.model, data if data is not None else marked.data.train, test=marked.data.test, verifier=verifier
    )


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def check_result(result, marked):
    """Sane numbers, and the rule applied to exactly the recorded numbers."""
    for value in (
        result.test_accuracy_before,
        result.test_accuracy_after,
        result.trigger_accuracy_before,
        result.trigger_accuracy,
    ):
        assert 0.0 <= value <= 1.0
    assert result.test_accuracy_before == pytest.approx(marked.test_accuracy)
    assert result.accepted_before
    assert result.watermark_removed == watermark_removed(
        accepted=result.accepted,
        test_accuracy_before=result.test_accuracy_before,
        test_accuracy_after=result.test_accuracy_after,
    )
    assert result.wall_seconds >= 0
    doc = result.to_json()
    for key in (
        "attack",
        "test_accuracy_before",
        "test_accuracy_after",
        "trigger_accuracy",
        "watermark_removed",
        "data",
        "wall_seconds",
        "parameters",
    ):
        assert key in doc


def test_the_watermarked_fixture_is_accepted(marked, verifier):
    verdict = verifier(marked.model)
    assert verdict.accepted and verdict.trigger_accuracy >= 0.9
    assert marked.test_accuracy >= 0.9


# ---- the success rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accepted", "before", "after", "removed"),
    [
        (False, 0.90, 0.85, False),  # a drop of exactly 5 points is not "less than 5"
        (False, 0.90, 0.8501, True),
        (False, 0.93, 0.88, False),  # 0.93 - 0.88 is 5.000000000000004 points in floats: still exactly 5
        (False, 0.93, 0.8801, True),
        (False, 0.90, 0.95, True),  # accuracy went up
        (True, 0.90, 0.90, False),  # the verifier accepts: never removed
        (True, 0.90, 0.10, False),
        (False, 0.90, 0.10, False),  # rejected, but the model is ruined
    ],
)
def test_success_rule_with_constructed_numbers(accepted, before, after, removed):
    assert watermark_removed(accepted=accepted, test_accuracy_before=before, test_accuracy_after=after) is removed


class ConstantModel(Attack):
    """Test attack: replace the model by one that always answers class 0 (rejects, ruins accuracy)."""

    name = "constant"

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            last_linear(model).bias[0] = 1.0
        return Outcome(model)


class Untouched(Attack):
    name = "untouched"

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        return Outcome(model)


ConstantModel = dataclasses.dataclass(frozen=True, kw_only=True)(ConstantModel)
Untouched = dataclasses.dataclass(frozen=True, kw_only=True)(Untouched)


def test_success_rule_through_attacks(marked, verifier):
    _, ruined = run(ConstantModel(), marked, verifier)
    assert not ruined.accepted and ruined.trigger_accuracy < 0.5
    assert ruined.test_accuracy_after < 0.2
    assert not ruined.watermark_removed  # rejected, but accuracy fell by far more than 5 points
    _, same = run(Untouched(), marked, verifier)
    assert same.accepted and not same.watermark_removed
    assert same.trigger_accuracy == same.trigger_accuracy_before
    assert same.test_accuracy_after == same.test_accuracy_before


def test_attacks_cannot_override_the_judge():
    with pytest.raises(TypeError, match="must not override"):

        class Cheat(Attack):
            def __call__(self, model, data, *, test, verifier):  # noqa: ANN001
                return model, None


def test_hyper_parameters_are_keyword_only_and_checked():
    with pytest.raises(TypeError):
        FTAL(3)  # type: ignore[misc]
    for bad in (
        lambda: FTAL(epochs=-1),
        lambda: MagnitudePruning(sparsity=1.0),
        lambda: WeightQuantization(bits=1),
        lambda: GaussianNoise(std=-1),
        lambda: FTAL(data_fraction=0),
        lambda: OwnershipPiracy(finetune="x"),
        lambda: InputPreprocessing(bits=0),
        lambda: Distillation(temperature=0),
    ):
        with pytest.raises(ModeldeedError):
            bad()


def test_adversary_data_is_a_seeded_fraction(marked):
    train = marked.data.train
    assert adversary_data(train, 1.0, 0) is train
    a, b, c = adversary_data(train, 0.25, 1), adversary_data(train, 0.25, 1), adversary_data(train, 0.25, 2)
    assert len(a) == round(0.25 * len(train))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_paper_settings_use_the_last_learning_rate_of_training():
    config = TrainConfig(epochs=60, lr=0.1, lr_milestones=(20, 40), lr_gamma=0.1, batch_size=100)
    settings = paper_settings(config)
    assert settings["epochs"] == 60 and settings["batch_size"] == 100
    assert math.isclose(settings["lr"], 0.001)


def test_training_config_is_read_from_model_json(marked):
    assert training_config(marked.info) == TrainConfig.from_json(marked.info.extra["training"])


# ---- zero strength changes nothing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        FTLL(epochs=0),
        FTAL(epochs=0),
        MagnitudePruning(sparsity=0.0),
        FinePruning(fraction=0.0, epochs=0),
        WeightQuantization(bits=32),
        GaussianNoise(std=0.0),
        OwnershipPiracy(finetune="none", embed_epochs=0, epochs=0),
    ],
    ids=lambda a: a.name,
)
def test_zero_strength_changes_no_weight(attack, marked, verifier):
    attacked, result = run(attack, marked, verifier)
    assert same_weights(attacked, marked.model)
    assert result.trigger_accuracy == result.trigger_accuracy_before
    assert result.test_accuracy_after == result.test_accuracy_before
    assert result.accepted and not result.watermark_removed


def test_identity_preprocessing_changes_no_prediction(marked, verifier):
    served, result = run(InputPreprocessing(), marked, verifier)
    assert isinstance(served, PreprocessedModel) and served.is_identity
    x = torch.cat([marked.data.test.x, marked.marking_key.images])
    assert torch.equal(served(x), marked.model(x))
    assert result.trigger_accuracy == result.trigger_accuracy_before and not result.watermark_removed


def test_attacks_are_reproducible(marked, verifier):
    first, r1 = run(FTAL(data_fraction=0.3, **QUICK), marked, verifier)
    second, r2 = run(FTAL(data_fraction=0.3, **QUICK), marked, verifier)
    assert same_weights(first, second) and r1.data == r2.data and r1.trigger_accuracy == r2.trigger_accuracy
    noisy, _ = run(GaussianNoise(std=0.5, seed=1), marked, verifier)
    again, _ = run(GaussianNoise(std=0.5, seed=1), marked, verifier)
    other, _ = run(GaussianNoise(std=0.5, seed=2), marked, verifier)
    assert same_weights(noisy, again) and not same_weights(noisy, other)


def test_the_callers_model_is_never_modified(marked, verifier):
    before = {k: v.clone() for k, v in marked.model.state_dict().items()}
    run(GaussianNoise(std=1.0), marked, verifier)
    run(FTAL(**QUICK), marked, verifier)
    assert all(torch.equal(before[k], v) for k, v in marked.model.state_dict().items())


# ---- the paper's attacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [FTLL, FTAL, RTLL, RTAL], ids=lambda c: c.name)
def test_fine_tuning_runs_and_reports_both_heads(cls, marked, verifier):
    attacked, result = run(cls(**QUICK, data_fraction=0.5), marked, verifier)
    check_result(result, marked)
    assert result.attacker_head is not None and result.original_head is not None
    assert result.view == "attacker_head"
    assert result.trigger_accuracy == result.attacker_head.trigger_accuracy
    assert result.data["samples"] == round(0.5 * len(marked.data.train))
    assert result.test_accuracy_after > 0.8
    head, original = last_linear(attacked), last_linear(marked.model)
    assert not torch.equal(head.weight, original.weight)
    if cls in (FTLL, RTLL):  # the body is frozen: bit-identical, and the original-head view is the original model
        body = {k: v for k, v in attacked.state_dict().items() if not k.startswith("classifier.3")}
        assert all(torch.equal(v, marked.model.state_dict()[k]) for k, v in body.items())
        assert result.original_head.trigger_accuracy == result.trigger_accuracy_before


def test_rtll_with_no_training_scrambles_the_head_but_not_the_original_view(marked, verifier):
    _, result = run(RTLL(epochs=0, progress=False), marked, verifier)
    assert result.attacker_head.trigger_accuracy < result.trigger_accuracy_before
    assert result.original_head.trigger_accuracy == result.trigger_accuracy_before  # the paper's view hides it


def test_piracy_reports_both_trigger_sets(marked, verifier):
    attack = OwnershipPiracy(finetune="ftal", trigger_size=20, embed_epochs=4, epochs=1, lr=0.05, progress=False)
    _, result = run(attack, marked, verifier)
    check_result(result, marked)
    pirate = result.details["pirate"]
    assert set(pirate) >= {"key_id", "trigger_accuracy", "accepted", "after_embedding"}
    assert pirate["key_id"] != marked.verification_key.key_id
    assert pirate["after_embedding"]["trigger_accuracy"] > 0.5  # the pirate's set was embedded
    assert 0.0 <= pirate["trigger_accuracy"] <= 1.0
    assert result.parameters["key"] is None


def test_transfer_verifies_with_the_original_head(marked, verifier):
    train = marked.data.train
    parity = Dataset("digits-parity", train.x, train.y % 2, ("even", "odd"))
    moved, result = run(TransferLearning(**QUICK), marked, verifier, data=parity)
    check_result(result, marked)
    assert last_linear(moved).out_features == 2
    assert result.view == "original_head" and result.attacker_head is None
    assert result.trigger_accuracy == result.original_head.trigger_accuracy
    assert result.details["target_classes"] == 2 and result.details["target_test_accuracy"] > 0.8


def test_transfer_with_no_training_keeps_the_original_view_intact(marked, verifier):
    train = marked.data.train
    parity = Dataset("digits-parity", train.x, train.y % 2, ("even", "odd"))
    _, result = run(TransferLearning(epochs=0, progress=False), marked, verifier, data=parity)
    assert result.trigger_accuracy == result.trigger_accuracy_before
    assert result.test_accuracy_after == result.test_accuracy_before


# ---- the wider removal suite -----------------------------------------------------------------------------------


def test_magnitude_pruning_reaches_the_sparsity(marked, verifier):
    attacked, result = run(MagnitudePruning(sparsity=0.6, scope="global"), marked, verifier)
    check_result(result, marked)
    assert result.details["sparsity"] == pytest.approx(0.6, abs=1e-3)
    weights = [m.weight for m in attacked.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.6, abs=1e-3)


def test_fine_pruning_keeps_pruned_channels_at_zero(marked, verifier):
    attacked, result = run(FinePruning(fraction=0.5, **QUICK), marked, verifier)
    check_result(result, marked)
    conv = dict(attacked.named_modules())[result.details["layer"]]
    pruned = result.details["pruned_channels"]
    assert len(pruned) == conv.out_channels // 2
    assert torch.all(conv.weight[pruned] == 0) and torch.all(conv.bias[pruned] == 0)


def test_quantization_limits_distinct_values(marked, verifier):
    attacked, result = run(WeightQuantization(bits=3), marked, verifier)
    check_result(result, marked)
    assert all(torch.unique(p).numel() <= 2**3 - 1 for p in attacked.parameters())


def test_noise_grows_with_std(marked, verifier):
    _, small = run(GaussianNoise(std=0.05), marked, verifier)
    _, large = run(GaussianNoise(std=3.0), marked, verifier)
    check_result(small, marked)
    assert small.details["relative_l2"] < large.details["relative_l2"]
    assert large.test_accuracy_after < small.test_accuracy_after
    assert not large.watermark_removed  # a model ruined by noise does not count as a removal


def test_distillation_with_enough_data_gives_an_accurate_student(marked, verifier):
    student, result = run(Distillation(epochs=8, lr=0.05, batch_size=32, progress=False), marked, verifier)
    check_result(result, marked)
    assert result.test_accuracy_after >= 0.9
    assert result.details["agreement"] >= 0.9
    assert not same_weights(student, marked.model)


def test_soft_distillation_runs(marked, verifier):
    _, result = run(Distillation(soft=True, data_fraction=0.5, **QUICK), marked, verifier)
    check_result(result, marked)
    assert result.details["labels"] == "soft" and result.details["queries"] == round(0.5 * len(marked.data.train))


@pytest.mark.parametrize(
    "attack",
    [InputPreprocessing(bits=2), InputPreprocessing(blur_sigma=1.0), InputPreprocessing(noise_std=0.1)],
    ids=["quantize", "blur", "noise"],
)
def test_preprocessing_runs(attack, marked, verifier):
    served, result = run(attack, marked, verifier)
    check_result(result, marked)
    assert same_weights(served.model, marked.model)
    assert torch.equal(predict(served, marked.data.test.x), predict(served, marked.data.test.x))  # reproducible
