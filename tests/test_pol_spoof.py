"""Spoofed proofs of learning on digits/cnn: each passes the reference verifier and fails the hardened one.

One honest proof, the five published spoofs and the three adaptive ones are made once per module; every test
then reads the verdicts the real verifier gave (and `pol verify --hardened` from the command line gives). The
model is a width-8 cnn trained to ~96 % on the full digits training split, so the crafted noise and the
gradients are those of a real model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from types import SimpleNamespace

import pytest
import torch

from modeldeed.attacks.pol_spoof import SpoofCost, honest_training_cost, sorted_initialisation
from modeldeed.attacks.pol_spoof_report import ADAPTIVE, PUBLISHED, VerdictSummary, make_spoof, spoof_and_verify
from modeldeed.cli import main
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import VerificationPolicy, load_proof, record_training, verify_proof
from modeldeed.pol.initialisation import ks_tests
from modeldeed.pol.policy import Hardening, hardened_policy
from modeldeed.training import TrainConfig, accuracy

pytestmark = pytest.mark.slow

# Zhang's Attack I runs 100 L-BFGS iterations x 10 rounds per step in the reference; 20 x 1 keeps the test short.
SETTINGS = {
    "zhang1": {"iterations": 20, "rounds": 1},
    "zhang2": {},
    "zhang3": {},
    "infinitesimal": {},
    "blindfold": {"batch_size": 4},
    "steer-momentum": {"epochs": 1, "k": 1},
    "partial-trained": {"epochs": 1},
    "grind-challenge": {"epochs": 2, "tries": 2000},
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
            make_spoof(method, progress=False, **{"k": K, **SETTINGS[method]}),
            honest.model,
            honest.spec,
            honest.data,
            config=honest.config,
            out=out / method,
            honest_cost=cost,
            harden=False,  # the hardened verdicts come from the command line (`hardened` below)
        )
        for method in SETTINGS
    }


@pytest.fixture(scope="module")
def hardened(reports):
    """`pol verify PROOF --hardened --json` on every spoofed proof: exit status and verdict, from the CLI."""
    out = {}
    for method, report in reports.items():
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["pol", "verify", str(report.proof), "--hardened", "--json", "--threads", "1", "--no-progress"])
        verdict = json.loads(buffer.getvalue())
        failed = [c["name"] for c in verdict["checks"] if c["status"] == "failed"]
        out[method] = SimpleNamespace(
            code=code,
            accepted=verdict["accepted"],
            reasons=verdict["reasons"],
            checks={c["name"]: c["status"] for c in verdict["checks"]},
            failed=lambda failed=failed: failed,
        )
    return out


def test_the_claimed_model_is_trained(honest):
    assert honest.test_accuracy > 0.85


def test_honest_proof_passes_reference_and_hardened(honest):
    reference = verify_proof(honest.proof, honest.data)
    assert reference.accepted, reference.reasons
    hardened = verify_proof(honest.proof, honest.data, hardened_policy())
    assert hardened.accepted, hardened.reasons
    names = {c.name for c in hardened.checks}
    assert {
        "settings",
        "commitment",
        "batch_order",
        "initialisation_seed",
        "dataset_membership",
        "frozen_tensors",
        "replay",
        "update_profile",
    } <= names
    summary = VerdictSummary.of(hardened)
    assert summary.max_relative_error == 0.0  # the same machine replays an honest proof bit for bit
    assert all(v == 0.0 for v in summary.max_normalised_error.values())
    assert {i.mode for i in hardened.intervals} == {"exact"}


@pytest.mark.parametrize("method", list(SETTINGS))
def test_spoof_is_accepted_by_the_reference_verifier(reports, method):
    report = reports[method]
    assert report.reference.accepted, report.reference.reasons
    assert report.reference.replayed > 0


@pytest.mark.parametrize("method", PUBLISHED)
def test_published_spoof_is_rejected_by_the_hardened_verifier_with_its_reasons(reports, hardened, method):
    report = reports[method]
    hardened = hardened[method]
    assert hardened.code == 1 and not hardened.accepted
    failed = set(hardened.failed())
    # Every published spoof forges W0 by the sort trick, lays its checkpoints on a straight line, and the
    # intervals the challenge draws do not reproduce their next checkpoints.
    assert {"initialisation_seed", "update_profile", "replay"} <= failed
    assert any("W_0 is not the state seed 0 makes" in r for r in hardened.reasons)
    assert any("parallel updates of equal size" in r for r in hardened.reasons)
    assert any("drawn by the challenge" in r for r in hardened.reasons)
    # The paper's checks of the data and of W_0's distribution still pass: only the hardened ones catch it.
    assert {"integrity", "schedule", "data", "initialisation"}.isdisjoint(failed)
    modified = report.spoof.trajectory.modified_steps
    if method in ("zhang1", "zhang2"):
        assert modified == report.spoof.trajectory.total_steps
    if modified:  # crafted samples: not committed, and not the seeded batches
        assert {"dataset_membership", "batch_order"} <= failed
        assert any("not among committed samples" in r for r in hardened.reasons)
    else:  # real samples in the seeded order: the data checks cannot object
        assert hardened.checks["dataset_membership"] == "passed"
        assert hardened.checks["batch_order"] == "passed"


def test_adaptive_spoofs_are_rejected_by_the_hardened_verifier_with_their_reasons(reports, hardened):
    """Each adaptive spoof passes every check but the one built for it (they start from the honest seed)."""
    steer, partial, grind = (hardened[m] for m in ADAPTIVE)
    assert steer.code == partial.code == grind.code == 1
    assert steer.failed() == ["replay"]
    assert any("optimizer/momentum_buffer/" in r and "bit for bit" in r for r in steer.reasons)
    assert set(partial.failed()) == {"settings", "frozen_tensors", "replay"}
    assert any("without a statement that says otherwise, all are trained" in r for r in partial.reasons)
    assert any("parameters that are not trained differ from W_0's" in r for r in partial.reasons)
    assert grind.failed() == ["replay"] and any("drawn by the challenge" in r for r in grind.reasons)
    grinding = reports["grind-challenge"].spoof.details["grinding"]
    assert grinding["tries"] == 2000 and grinding["missed"] is False  # the free field never changed the draw
    assert grinding["previous_verifier_missed_after"] is not None  # ... which the previous verifier's did


@pytest.mark.parametrize("method", list(SETTINGS))
def test_pol_verify_hardened_rejects_every_spoof_from_the_command_line(hardened, method):
    assert hardened[method].code == 1 and any(r.startswith("replay: ") for r in hardened[method].reasons)


def test_spoofed_proofs_store_modified_samples_as_exact_tensors(reports, honest):  # noqa: ARG001
    report = reports["zhang2"]
    proof, _ = load_proof(report.proof)
    assert proof.stored_sample_count == report.spoof.trajectory.modified_samples > 0
    assert all(record.stored and not record.indices.size for record in proof.steps)
    fang = load_proof(reports["infinitesimal"].proof)[0]
    assert fang.stored_sample_count == 0


def test_reproduction_errors_are_within_delta_but_miss_the_update(reports, honest):
    honest_summary = VerdictSummary.of(verify_proof(honest.proof, honest.data))
    for method in PUBLISHED:
        report = reports[method]
        errors = report.reference.max_normalised_error
        assert all(errors[m] <= VerificationPolicy().delta[m] for m in errors), method
        assert all(errors[m] >= honest_summary.max_normalised_error[m] for m in errors), method


def test_cost_is_counted_in_gradient_evaluations_and_time(reports, honest):
    steps = honest.config.epochs * honest.config.steps_per_epoch(len(honest.data))
    for report in (reports[m] for m in PUBLISHED):
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
    assert {"replay", "update_profile"} <= failed


def test_hardened_checks_switch_off_one_by_one(reports, honest):
    proof = reports["partial-trained"].proof
    off = Hardening(settings=False, frozen_tensors=False, update_profile=False).policy()
    verdict = verify_proof(proof, honest.data, off)
    names = {c.name for c in verdict.checks}
    assert names.isdisjoint({"settings", "frozen_tensors", "update_profile"})
    assert [c.name for c in verdict.checks if c.status == "failed"] == ["replay"]  # the last line of defence
