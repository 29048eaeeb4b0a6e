"""Hardened verification end to end on tiny data: exact or tolerant replay of the whole state, the statement,
the commitment and its challenge, and commit-and-open (a verifier that holds only the opened part)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from modeldeed.attacks.pol_spoof_report import make_spoof, spoof_and_verify
from modeldeed.cli import main
from modeldeed.models import ModelInfo, build_model, save_model, spec_for_data, state_tensors
from modeldeed.pol import (
    CarriedStatement,
    ProofStore,
    ProofWriter,
    VerificationPolicy,
    commit_proof,
    hardened_policy,
    load_proof,
    make_statement,
    open_proof,
    record_training,
    verify_proof,
)
from modeldeed.pol.challenge import challenge_size
from modeldeed.pol.statement import save_opening, save_statement
from modeldeed.training import TrainConfig

QUIET = ["--no-progress"]


def record(directory: Path, data, config: TrainConfig, k: int, width: int, threads: int):  # type: ignore[no-untyped-def]
    spec = spec_for_data("cnn", data.input_shape, data.num_classes, {"width": width})
    statement, opening = make_statement(data, config, spec, checkpoint_every=k)
    model = build_model(spec, seed=config.seed)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        carried = CarriedStatement(statement=statement, opening=opening)
        record_training(
            model,
            data,
            config,
            directory,
            spec=spec,
            checkpoint_every=k,
            init_seed=config.seed,
            statement=carried,
            progress=False,
        )
    finally:
        torch.set_num_threads(before)
    folder = directory.parent / "commit"
    folder.mkdir(exist_ok=True)
    save_statement(folder, statement)
    save_opening(folder, opening)
    return SimpleNamespace(directory=directory, statement=statement, spec=spec, model=model, commit=folder)


@pytest.fixture(scope="module")
def two_threads(digits, tmp_path_factory):
    """Recorded with 2 threads: 1 epoch of 23 steps, k = 3 (8 intervals)."""
    config = TrainConfig(epochs=1, batch_size=64, seed=3)
    return record(tmp_path_factory.mktemp("two") / "proof", digits.train, config, 3, 4, threads=2)


@pytest.fixture(scope="module")
def long_proof(digits, tmp_path_factory):
    """115 intervals (k = 1) of a width-2 cnn: the commit-and-open setting."""
    config = TrainConfig(epochs=5, batch_size=64, seed=1)
    return record(tmp_path_factory.mktemp("long") / "proof", digits.train, config, 1, 2, threads=1)


def test_recorded_with_two_threads_verified_with_one_is_accepted(two_threads, digits):
    torch.set_num_threads(1)
    verdict = verify_proof(two_threads.directory, digits.train, hardened_policy(statement=two_threads.statement))
    assert verdict.accepted, verdict.reasons
    assert verdict.mode == "tolerance" and verdict.environment == ("threads: 2 recorded, 1 here",)
    assert {"challenge", "top-q"} & {w for i in verdict.intervals for w in i.selected_by} == {"challenge", "top-q"}
    drawn = [i for i in verdict.intervals if "challenge" in i.selected_by]
    assert len(drawn) == challenge_size(8, 40, 0.5) == 5
    torch.set_num_threads(2)
    exact = verify_proof(two_threads.directory, digits.train, hardened_policy(statement=two_threads.statement))
    assert exact.accepted and exact.mode == "exact" and exact.environment == ()
    assert exact.challenge == verdict.challenge  # the draw depends on the commitment alone


def test_settings_must_be_the_statements_and_w0_a_fresh_state(two_threads, digits, tmp_path):
    other, _ = make_statement(
        digits.train, TrainConfig(epochs=1, batch_size=64, seed=3, lr=0.04), two_threads.spec, checkpoint_every=3
    )
    verdict = verify_proof(two_threads.directory, digits.train, hardened_policy(statement=other))
    assert not verdict.accepted
    assert any("settings: the proof carries statement" in r for r in verdict.reasons)
    # W_0 with a momentum buffer (a fresh optimizer has none), everything else the honest proof's
    proof, _ = load_proof(two_threads.directory)
    store = ProofStore(two_threads.directory, proof)
    forged = tmp_path / "forged"
    writer = ProofWriter(forged, proof.header)
    for index, entry in enumerate(proof.checkpoints):
        start = proof.checkpoints[index - 1].step if index else 0
        for rec in proof.steps[start : entry.step]:
            writer.add_step(rec)
        tensors = dict(store.checkpoint(index))
        if index == 0:
            tensors["optimizer/momentum_buffer/classifier.3.bias"] = torch.full((10,), 0.01)
        writer.add_checkpoint(entry.step, tensors)
    writer.finish()
    verdict = verify_proof(forged, digits.train, hardened_policy(statement=two_threads.statement))
    assert not verdict.accepted
    assert (
        "initialisation_seed: W_0 holds optimizer state (optimizer/momentum_buffer/classifier.3.bias ...); a "
        "fresh optimizer has none" in verdict.reasons
    )
    assert verify_proof(forged, digits.train, VerificationPolicy.reference()).accepted  # the paper's: fooled


def test_the_model_in_dispute_must_be_the_last_checkpoint(two_threads, tmp_path, capsys):
    info = ModelInfo(two_threads.spec, tuple(str(i) for i in range(10)), (1, 8, 8))
    save_model(tmp_path / "model", two_threads.model, info)
    args = ["pol", "verify", str(two_threads.directory), "--hardened", "--statement", str(two_threads.commit)]
    args += ["--threads", "1", *QUIET]
    assert main([*args, "--model", str(tmp_path / "model")]) == 0
    assert "final_model         passed" in capsys.readouterr().out
    changed = build_model(two_threads.spec, seed=0)
    changed.load_state_dict(state_tensors(two_threads.model))
    with torch.no_grad():
        changed.classifier[3].bias[0] += 1e-7  # one value, one ulp-sized change
    save_model(tmp_path / "other", changed, info)
    assert main([*args, "--model", str(tmp_path / "other")]) == 1
    assert (
        "the proof's last checkpoint is not the model in dispute: classifier.3.bias differ" in capsys.readouterr().out
    )


def test_a_false_environment_record_only_buys_the_tolerance(long_proof, digits, tmp_path):
    copy = tmp_path / "proof"
    shutil.copytree(long_proof.directory, copy)
    doc = json.loads((copy / "proof.json").read_text())
    doc["environment"]["torch"] = "0.0-claimed"
    (copy / "proof.json").write_text(json.dumps(doc))
    torch.set_num_threads(1)
    verdict = verify_proof(copy, digits.train, hardened_policy(statement=long_proof.statement))
    assert verdict.accepted and verdict.mode == "tolerance"
    assert verdict.environment == ("torch: 0.0-claimed recorded, " + torch.__version__ + " here",)
    original = verify_proof(long_proof.directory, digits.train, hardened_policy(statement=long_proof.statement))
    assert original.challenge == verdict.challenge  # the record is not committed to: no new draw for free
    exact = VerificationPolicy(replay_mode="exact")  # a verifier who knows better demands exactness anyway
    assert verify_proof(copy, digits.train, hardened_policy(exact, statement=long_proof.statement)).accepted


def test_steering_by_momentum_is_caught_within_the_tolerance_too(two_threads, digits, tmp_path):
    data = digits.train
    config = TrainConfig(epochs=1, batch_size=64, seed=3)
    report = spoof_and_verify(
        make_spoof("steer-momentum", epochs=1, seed=3, progress=False),
        two_threads.model,
        two_threads.spec,
        data,
        config=config,
        out=tmp_path / "steer",
        harden=False,
    )
    assert report.reference.accepted
    tolerant = hardened_policy(VerificationPolicy(replay_mode="tolerance"))
    verdict = verify_proof(tmp_path / "steer", data, tolerant)
    assert not verdict.accepted and [c.name for c in verdict.checks if c.status == "failed"] == ["replay"]
    assert any("the stored momentum differs from the replayed one" in r for r in verdict.reasons)


def test_a_long_proof_opened_for_the_default_challenge_verifies_from_the_opened_part(
    long_proof, digits, tmp_path, capsys
):
    proof = long_proof.directory
    commitment = tmp_path / "commitment.json"
    assert main(["pol", "commit-proof", str(proof), "--out", str(commitment)]) == 0
    assert main(["pol", "open", str(proof), "--commitment", str(commitment), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert f"opened {challenge_size(115, 40, 0.5)} of 115 intervals" in printed
    opened = tmp_path / "elsewhere"  # the verifier holds only what was opened
    shutil.copytree(tmp_path / "o", opened)
    full_bytes = sum(p.stat().st_size for p in proof.rglob("*") if p.is_file())
    opened_bytes = sum(p.stat().st_size for p in opened.rglob("*") if p.is_file())
    assert opened_bytes < 0.8 * full_bytes  # 32 of 115 intervals (ratio falls as 2c/N on longer proofs)
    verify = ["pol", "verify", str(opened), "--hardened", "--statement", str(long_proof.commit), "--threads", "1"]
    assert main([*verify, "--commitment", str(commitment), "--json", *QUIET]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["accepted"] and verdict["mode"] == "exact" and verdict["challenge"]["count"] == 32
    assert [i["index"] for i in verdict["intervals"]] == verdict["challenge"]["intervals"]
    assert (
        {c["name"]: c["status"] for c in verdict["checks"]}["update_profile"] == "skipped"
        if any(c["name"] == "update_profile" for c in verdict["checks"])
        else True
    )
    # a verifier asking for more soundness than the proof was opened for
    assert main([*verify, "--soundness-bits", "60", *QUIET]) == 1
    assert "of the challenge are not opened" in capsys.readouterr().out
    # a step record changed in the opened part no longer hashes to the commitment's root
    doc = json.loads((opened / "opened.json").read_text())
    doc["intervals"][0]["steps"]["lr"][0] = 0.5
    (opened / "opened.json").write_text(json.dumps(doc))
    assert main([*verify, *QUIET]) == 1
    assert "step records' Merkle path does not lead to the root" in capsys.readouterr().out


def test_an_opened_proof_without_end_checkpoints_needs_an_exact_replay(long_proof, digits, tmp_path):
    commitment, _ = commit_proof(long_proof.directory)
    challenge, written = open_proof(long_proof.directory, tmp_path / "o", commitment=commitment, ends=False)
    torch.set_num_threads(1)
    policy = hardened_policy(statement=long_proof.statement, commitment=commitment)
    verdict = verify_proof(tmp_path / "o", digits.train, policy)
    assert verdict.accepted, verdict.reasons
    assert all(i.mode == "exact" for i in verdict.intervals)
    assert sum(i.error == {} for i in verdict.intervals) > 10  # ends not opened: checked by their digests alone
    tolerant = hardened_policy(VerificationPolicy(replay_mode="tolerance"), statement=long_proof.statement)
    verdict = verify_proof(tmp_path / "o", digits.train, tolerant)
    assert not verdict.accepted and "its end checkpoint is not opened" in "\n".join(verdict.reasons)
    with pytest.raises(Exception, match="does not match the commitment"):
        other = commitment.model_copy(update={"root": "00" * 32})
        open_proof(long_proof.directory, tmp_path / "o2", commitment=other)
    assert written < sum(p.stat().st_size for p in long_proof.directory.rglob("*") if p.is_file())
    assert challenge.count == 32


def test_offline_grinding_of_a_committed_bit_and_what_still_stops_it(two_threads, digits, tmp_path):
    """The documented limit of an offline challenge: with one fabricated interval of 23, grinding one bit of a
    committed checkpoint finds a draw that misses it in a few tries. Only the top-q addition (the fabricated jump
    to W_T stands out against its epoch's updates) or a registered commitment's beacon stops it."""
    config = TrainConfig(epochs=2, batch_size=64, seed=3)
    spoof = make_spoof(
        "grind-challenge", epochs=2, k=2, seed=3, fabricated=0.01, grind="checkpoint", tries=100, progress=False
    )
    report = spoof_and_verify(
        spoof, two_threads.model, two_threads.spec, digits.train, config=config, out=tmp_path / "ground", harden=False
    )
    grinding = report.spoof.details["grinding"]
    assert report.spoof.details["fabricated"] == [22] and grinding["missed"] and grinding["tries"] < 20
    torch.set_num_threads(1)
    offline = verify_proof(tmp_path / "ground", digits.train, hardened_policy(top_q=0))
    assert offline.accepted, offline.reasons  # sampling cannot promise more than 1 - c/N against one interval
    assert offline.challenge["source"] == "offline" and 22 not in offline.challenge["intervals"]
    assert any("not bound in time" in note for note in offline.notes)
    with_top_q = verify_proof(tmp_path / "ground", digits.train, hardened_policy())
    assert not with_top_q.accepted and "interval 22" in "\n".join(with_top_q.reasons)
    beacon = hardened_policy(top_q=0, beacon=bytes.fromhex("5a" * 32))  # a registered commitment: a fresh draw
    assert verify_proof(tmp_path / "ground", digits.train, beacon).challenge["source"] == "registry-beacon"
