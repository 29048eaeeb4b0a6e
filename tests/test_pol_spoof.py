"""Spoofed proofs of learning on digits/cnn: each passes the reference verifier and fails the hardened one.

One honest proof and the five spoofs of it are made once per module (about a minute on one CPU thread);
every test then reads the verdicts the real verifier gave. The model is a width-8 cnn trained to ~96 %
on the full digits training split, so the crafted noise and the gradients are those of a real model.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from modeldeed.attacks.pol_spoof import SpoofCost, honest_training_cost, sorted_initialisation
from modeldeed.attacks.pol_spoof_report import SPOOFS, VerdictSummary, make_spoof, spoof_and_verify
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import VerificationPolicy, load_proof, record_training, verify_proof
from modeldeed.pol.hardened import Hardening, fiat_shamir_intervals, hardened_policy
from modeldeed.pol.initialisation import ks_tests
from modeldeed.training import TrainConfig, accuracy

pytestmark = pytest.mark.slow

# Zhang's Attack I runs 100 L-BFGS iterations x 10 rounds per step in the reference; 20 x 1 keeps the test short.
SETTINGS = {
    "zhang1": {"iterations": 20, "rounds": 1},
    "zhang2": {},
    "zhang3": {},
    "infinitesimal": {},
    "blindfold": {"batch_size": 4},
}
K = 2  # the spoofs' checkpoint interval


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run far faster on one thread, and a busy machine does not stall them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def honest(digits, tmp_path_factory, one_thread):
    data = digits.train
    spec = spec_for_data("cnn", data.input_shape, data.num_classes, {"width": 8})
    config = TrainConfig(epochs=5, batch_size=32, seed=0)
    model = build_model(spec, seed=config.seed)
    directory = tmp_path_factory.mktemp("honest") / "proof"
    record_training(
        model, data, config, directory, spec=spec, checkpoint_every=5, init_seed=config.seed, progress=False
    )
    return SimpleNamespace(
        model=model, spec=spec, data=data, config=config, proof=directory, test_accuracy=accuracy(model, digits.test)
    )


@pytest.fixture(scope="module")
def reports(honest, tmp_path_factory):
    out = tmp_path_factory.mktemp("spoofs")
    cost = SpoofCost(gradient_evaluations=honest.config.epochs * honest.config.steps_per_epoch(len(honest.data)))
    return {
        method: spoof_and_verify(
            make_spoof(method, k=K, progress=False, **SETTINGS[method]),
            honest.model,
            honest.spec,
            honest.data,
            config=honest.config,
            out=out / method,
            honest_cost=cost,
        )
        for method in SPOOFS
    }


def test_the_claimed_model_is_trained(honest):
    assert honest.test_accuracy > 0.85


def test_honest_proof_passes_reference_and_hardened(honest):
    reference = verify_proof(honest.proof, honest.data)
    assert reference.accepted, reference.reasons
    hardened = verify_proof(honest.proof, honest.data, hardened_policy())
    assert hardened.accepted, hardened.reasons
    names = {c.name for c in hardened.checks}
    assert {
        "batch_order",
        "initialisation_seed",
        "random_intervals",
        "dataset_membership",
        "relative_error",
        "update_profile",
    } <= names
    summary = VerdictSummary.of(hardened)
    assert summary.max_relative_error == 0.0  # the same machine replays an honest proof bit for bit
    assert all(v == 0.0 for v in summary.max_normalised_error.values())


@pytest.mark.parametrize("method", list(SPOOFS))
def test_spoof_is_accepted_by_the_reference_verifier(reports, method):
    report = reports[method]
    assert report.reference.accepted, report.reference.reasons
    assert report.reference.replayed > 0


@pytest.mark.parametrize("method", ["zhang1", "zhang2", "zhang3", "infinitesimal", "blindfold"])
def test_spoof_is_rejected_by_the_hardened_verifier_with_its_reasons(reports, method):
    report = reports[method]
    hardened = report.hardened
    assert hardened is not None and not hardened.accepted
    failed = set(hardened.failed())
    # Every spoof forges W0 by the sort trick and lays its checkpoints on a straight line.
    assert {"initialisation_seed", "update_profile"} <= failed
    assert any("W_0 is not the initialisation of seed" in r for r in hardened.reasons)
    assert any("parallel updates of equal size" in r for r in hardened.reasons)
    # The reference checks still pass: only the hardened ones catch it.
    assert {"integrity", "schedule", "data", "initialisation", "replay"}.isdisjoint(failed)
    modified = report.spoof.trajectory.modified_steps
    if method in ("zhang1", "zhang2"):
        assert modified == report.spoof.trajectory.total_steps
    if modified:  # crafted samples: not in the dataset, and not the seeded batches
        assert {"dataset_membership", "batch_order"} <= failed
        assert any("not among the trusted samples" in r for r in hardened.reasons)
    else:  # real samples in the seeded order: the data checks cannot object
        assert hardened.checks["dataset_membership"] == "passed"
        assert hardened.checks["batch_order"] == "passed"
    if method != "blindfold":
        assert "relative_error" in failed
        assert any("the steps do not produce this update" in r for r in hardened.reasons)


def test_blindfold_is_caught_where_fiat_shamir_replays_an_interpolated_interval(reports):
    report = reports["blindfold"]
    proof, proof_id = load_proof(report.proof)
    per_epoch = proof.header.config.steps_per_epoch(proof.header.dataset.size)
    intervals = [SimpleNamespace(index=i, epoch=c.step // per_epoch) for i, c in enumerate(proof.checkpoints[:-1])]
    first = {}
    for interval in intervals:
        first.setdefault(interval.epoch, interval.index)
    drawn = fiat_shamir_intervals(intervals, 2, proof_id)
    interpolated = [i for i in drawn if i - first[intervals[i].epoch] >= 2]  # q = 2 honest intervals per epoch
    if interpolated:
        assert "relative_error" in report.hardened.failed()
    # Top-Q alone replays only the honest intervals, so without the random draw the replays look perfect.
    if report.spoof.details["honest_are_largest"] == report.spoof.details["epochs"]:
        assert report.reference.max_relative_error == 0.0


def test_spoofed_proofs_store_modified_samples_as_exact_tensors(reports, honest):
    report = reports["zhang2"]
    proof, _ = load_proof(report.proof)
    assert proof.stored_sample_count == report.spoof.trajectory.modified_samples > 0
    assert all(record.stored and not record.indices.size for record in proof.steps)
    fang = load_proof(reports["infinitesimal"].proof)[0]
    assert fang.stored_sample_count == 0


def test_reproduction_errors_are_within_delta_but_miss_the_update(reports, honest):
    honest_summary = VerdictSummary.of(verify_proof(honest.proof, honest.data))
    for method, report in reports.items():
        errors = report.reference.max_normalised_error
        assert all(errors[m] <= VerificationPolicy().delta[m] for m in errors), method
        assert all(errors[m] >= honest_summary.max_normalised_error[m] for m in errors), method


def test_cost_is_counted_in_gradient_evaluations_and_time(reports, honest):
    steps = honest.config.epochs * honest.config.steps_per_epoch(len(honest.data))
    for report in reports.values():
        cost = report.spoof.cost
        assert cost.wall_seconds > 0
        assert report.cost_ratio["gradient_evaluations"] == pytest.approx(cost.gradient_evaluations / steps)
    assert reports["infinitesimal"].spoof.cost.gradient_evaluations == 0
    blindfold = reports["blindfold"].spoof
    assert blindfold.cost.training_steps == 2 * K * blindfold.trajectory.config.epochs  # q honest intervals/epoch
    for method in ("zhang1", "zhang2", "zhang3"):
        cost = reports[method].spoof.cost
        assert cost.objective_evaluations > 0 and cost.crafted_batches == reports[method].spoof.trajectory.total_steps
        assert cost.gradient_evaluations > cost.training_steps


def test_honest_training_cost_counts_every_step(honest):
    config = dataclasses.replace(honest.config, epochs=1)
    cost = honest_training_cost(honest.spec, honest.data, config, measure_steps=3)
    assert cost.gradient_evaluations == config.steps_per_epoch(len(honest.data))
    assert cost.wall_seconds > 0


def test_sort_trick_initialisation_passes_the_ks_test(honest):
    w0, draws = sorted_initialisation(honest.model, honest.spec, seed=3)
    fresh = build_model(honest.spec, seed=0)
    tests = ks_tests(fresh, w0, "pytorch-default")
    assert tests and min(t.p_value for t in tests) > 0.01 / len(tests)
    final, fresh_state = honest.model.state_dict(), build_model(honest.spec, seed=3 * 1000 + draws).state_dict()
    for name, value in w0.items():
        in_final_order = value.reshape(-1)[final[name].reshape(-1).argsort(stable=True)]
        assert bool((in_final_order[1:] >= in_final_order[:-1]).all()), name  # W_T's rank order
        assert torch.equal(value.reshape(-1).sort().values, fresh_state[name].reshape(-1).sort().values), name


def test_an_adaptive_spoof_with_the_honest_seed_is_still_rejected(honest, tmp_path):
    spoof = make_spoof("infinitesimal", k=K, w0="seed", seed=honest.config.seed, progress=False)
    report = spoof_and_verify(
        spoof, honest.model, honest.spec, honest.data, config=honest.config, out=tmp_path / "proof"
    )
    assert report.reference.accepted
    failed = set(report.hardened.failed())
    assert "initialisation_seed" not in failed
    assert {"relative_error", "update_profile"} <= failed


def test_hardened_checks_switch_off_one_by_one(reports, honest):
    proof = reports["infinitesimal"].proof
    off = Hardening(relative_error=False, update_profile=False, initialisation_seed=False).policy()
    verdict = verify_proof(proof, honest.data, off)
    names = {c.name for c in verdict.checks}
    assert names.isdisjoint({"relative_error", "update_profile", "initialisation_seed"})
    assert verdict.accepted  # the infinitesimal spoof uses real samples in the seeded order
