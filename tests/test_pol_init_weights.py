"""Training that starts from a local safetensors file (`--init-weights`): the statement commits to W_0's digest,
the hardened verifier checks W_0 against it (not against the seed) and says so; a swapped W_0 is rejected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modeldeed.data import Dataset
from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.models import build_model, load_weights_file, spec_for_data
from modeldeed.pol import ProofStore, ProofWriter, load_proof, verify_proof
from modeldeed.pol.own import PolRecorder, own_loop_settings
from modeldeed.pol.policy import hardened_policy
from modeldeed.pol.state import MODEL_PREFIX, initial_weights_digest
from modeldeed.pol.statement import CarriedStatement, TrainingStatement, make_statement

SEED = 5


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(digits) -> Dataset:
    return digits.train.subset(range(64))  # 2 steps an epoch in batches of 32


def spec_of(data: Dataset):  # type: ignore[no-untyped-def]
    return spec_for_data("cnn", data.input_shape, data.num_classes)


def weights_file(path: Path, data: Dataset) -> Path:
    """'Pretrained' weights: another seed's model, scaled (not what SEED makes)."""
    donor = build_model(spec_of(data), seed=99)
    tensors = {k: (v * 0.5 if v.is_floating_point() else v).contiguous() for k, v in donor.state_dict().items()}
    save_file(tensors, str(path))
    return path


def record(directory: Path, data: Dataset, weights: Path | None, *, commit: bool = True, check: bool = True):  # type: ignore[no-untyped-def]
    spec = spec_of(data)
    model = build_model(spec, seed=SEED)
    digest = None
    if weights is not None:
        load_weights_file(model, spec, weights)
        digest = initial_weights_digest(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config, loop = own_loop_settings(optimizer, epochs=1, batch_size=32, seed=SEED)
    statement, opening = make_statement(
        data, config, spec, checkpoint_every=1, loop=loop, initial_weights=digest if commit else None
    )
    with PolRecorder(
        directory,
        model,
        optimizer,
        data=data,
        spec=spec,
        config=config,
        loop=loop,
        statement=CarriedStatement(statement=statement, opening=opening),
        every=1,
        initial_weights=digest if commit else None,
        check_initial=check,
    ) as rec:
        for batch in rec.batch_sampler(0):
            index = torch.tensor(batch)
            rec.step(data.x[index], data.y[index], index)
    return statement, digest


def hardened(directory: Path, data: Dataset, statement: TrainingStatement):  # type: ignore[no-untyped-def]
    return verify_proof(directory, data, hardened_policy(statement=statement), trust_code=True)


def failed(verdict) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.name: " ".join(c.reasons) for c in verdict.checks if c.status == "failed"}


def test_a_proof_from_committed_initial_weights_verifies_and_says_so(tiny, tmp_path):
    statement, digest = record(tmp_path / "p", tiny, weights_file(tmp_path / "w.safetensors", tiny))
    assert statement.initialisation.weights == digest and statement.to_json()["initialisation"]["weights"] == digest
    verdict = hardened(tmp_path / "p", tiny, statement)
    assert verdict.accepted, verdict.reasons
    assert any(f"trained from committed initial weights {digest}" in n for n in verdict.notes)
    # checkpoint 0's model tensors are the file's, not what the seed makes
    proof, _ = load_proof(tmp_path / "p")
    w0 = ProofStore(tmp_path / "p", proof).checkpoint(0)
    fresh = build_model(spec_of(tiny), seed=SEED).state_dict()
    assert not torch.equal(w0[MODEL_PREFIX + "features.0.weight"], fresh["features.0.weight"])


def test_a_w0_other_than_the_committed_weights_is_rejected(tiny, tmp_path):
    statement, digest = record(tmp_path / "p", tiny, weights_file(tmp_path / "w.safetensors", tiny))
    proof, _ = load_proof(tmp_path / "p")
    store = ProofStore(tmp_path / "p", proof)
    writer = ProofWriter(tmp_path / "forged", proof.header)  # an adversary who rewrites every file consistently
    for index, entry in enumerate(proof.checkpoints):
        start = proof.checkpoints[index - 1].step if index else 0
        for step in proof.steps[start : entry.step]:
            writer.add_step(step)
        tensors = dict(store.checkpoint(index))
        if entry.step == 0:
            name = MODEL_PREFIX + "features.0.weight"
            tensors[name] = tensors[name].clone()
            tensors[name][0, 0, 0, 0] += 1e-3
        writer.add_checkpoint(entry.step, tensors)
    writer.finish()
    verdict = hardened(tmp_path / "forged", tiny, statement)
    assert not verdict.accepted
    assert f"are not the committed initial weights {digest[:16]}" in failed(verdict)["initialisation_seed"]


def test_without_the_digest_the_seed_check_stands(tiny, tmp_path):
    weights = weights_file(tmp_path / "w.safetensors", tiny)
    with pytest.raises(ModeldeedError, match="not build_model"):  # the recorder refuses it up front
        record(tmp_path / "refused", tiny, weights, commit=False)
    statement, _ = record(tmp_path / "p", tiny, weights, commit=False, check=False)
    assert "weights" not in statement.to_json()["initialisation"]  # statements of seeded W_0 keep their ids
    verdict = hardened(tmp_path / "p", tiny, statement)
    assert not verdict.accepted
    assert f"W_0 is not the state seed {SEED} makes" in failed(verdict)["initialisation_seed"]
    assert not any("initial weights" in n for n in verdict.notes)


def test_the_recorder_refuses_weights_the_statement_does_not_commit_to(tiny, tmp_path):
    spec = spec_of(tiny)
    model = build_model(spec, seed=SEED)
    load_weights_file(model, spec, weights_file(tmp_path / "w.safetensors", tiny))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config, loop = own_loop_settings(optimizer, epochs=1, batch_size=32, seed=SEED)
    statement, opening = make_statement(tiny, config, spec, checkpoint_every=1, loop=loop, initial_weights="ab" * 32)
    carried = CarriedStatement(statement=statement, opening=opening)
    with pytest.raises(ModeldeedError, match="commits to initial weights abababab"):
        PolRecorder(tmp_path / "p", model, optimizer, data=tiny, spec=spec, config=config, loop=loop,
                    statement=carried, every=1, initial_weights=initial_weights_digest(model))  # fmt: skip


def test_a_weights_file_must_fit_the_architecture(tiny, tmp_path):
    spec = spec_of(tiny)
    model = build_model(spec, seed=SEED)
    good = build_model(spec, seed=1).state_dict()
    wrong = dict(good)
    wrong["features.0.weight"] = good["features.0.weight"].reshape(32, 9)  # as many bytes, another shape
    save_file({k: v.contiguous() for k, v in wrong.items()}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(FormatError, match=r"shape.safetensors: .*'features.0.weight' is torch.float32\(32, 9\)"):
        load_weights_file(model, spec, tmp_path / "shape.safetensors")
    extra = dict(good, stolen=torch.zeros(4))
    save_file({k: v.contiguous() for k, v in extra.items()}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(FormatError, match="unexpected tensors \\['stolen'\\]"):
        load_weights_file(model, spec, tmp_path / "extra.safetensors")
    (tmp_path / "big.safetensors").write_bytes(b"\0" * (1 << 22))  # far more than the architecture holds
    with pytest.raises(ModeldeedError, match="big.safetensors"):
        load_weights_file(model, spec, tmp_path / "big.safetensors")
    unchanged = build_model(spec, seed=SEED).state_dict()["features.0.weight"]
    assert torch.equal(model.state_dict()["features.0.weight"], unchanged)  # a refused file loads nothing


def test_commit_train_and_verify_from_init_weights_on_the_cli(digits, tmp_path, capsys):
    from modeldeed.cli import main

    x = (digits.train.x[:80] * 255).round().to(torch.uint8).numpy()
    np.savez(tmp_path / "tiny.npz", x=x, y=digits.train.y[:80].numpy())
    settings = ["--data", f"npz:{tmp_path / 'tiny.npz'}", "--model", "cnn", "--model-args", '{"width": 8}']
    settings += ["--epochs", "1", "--batch-size", "32", "--seed", "3"]
    donor = build_model(spec_for_data("cnn", (1, 8, 8), 10, {"width": 8}), seed=42)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(tmp_path / "init.safetensors"))
    init = ["--init-weights", str(tmp_path / "init.safetensors")]
    quiet = ["--threads", "1", "--no-progress"]
    assert main(["pol", "commit", *settings, *init, "--checkpoint-every", "1", "--out", str(tmp_path / "c")]) == 0
    assert "from initial weights" in capsys.readouterr().out
    assert main(["pol", "commit", *settings, "--checkpoint-every", "1", "--out", str(tmp_path / "seeded")]) == 0
    train = ["train", *settings, *quiet, *init, "--out", str(tmp_path / "m"), "--proof", str(tmp_path / "p")]
    assert main([*train, "--checkpoint-every", "1", "--statement", str(tmp_path / "seeded")]) == 2
    assert "the statement commits to W_0 from the seed" in capsys.readouterr().err
    assert main([*train, "--checkpoint-every", "1", "--statement", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    verify = ["pol", "verify", str(tmp_path / "p"), "--data", f"npz:{tmp_path / 'tiny.npz'}", "--hardened"]
    assert main([*verify, "--statement", str(tmp_path / "c"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    digest = json.loads((tmp_path / "c" / "statement.json").read_text())["initialisation"]["weights"]
    assert "ACCEPTED" in out and f"trained from committed initial weights {digest}" in out
