"""Proofs of a user's own training loop: optimizers, schedules, accumulation and clipping replayed exactly, and
tampering with the optimizer state, the schedule position or the settings rejected."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from modeldeed.cli import main
from modeldeed.data import Dataset
from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import ProofStore, ProofWriter, VerificationPolicy, load_proof, verify_proof
from modeldeed.pol.loop import SchedulerDoc, lr_sequence
from modeldeed.pol.own import PolRecorder, own_loop_settings
from modeldeed.pol.policy import hardened_policy
from modeldeed.pol.statement import CarriedStatement, make_statement

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(digits) -> Dataset:
    return digits.train.subset(range(96))  # 3 steps an epoch in batches of 32


def record_own(
    directory: Path,
    data: Dataset,
    make_optimizer,  # type: ignore[no-untyped-def]
    *,
    scheduler: SchedulerDoc | None = None,
    accumulation: int = 1,
    clip_norm: float | None = None,
    epochs: int = 2,
    every: int = 2,
    seed: int = 5,
) -> tuple[str, object]:
    spec = spec_for_data("cnn", data.input_shape, data.num_classes)
    model = build_model(spec, seed=seed)
    optimizer = make_optimizer(model.parameters())
    config, loop = own_loop_settings(
        optimizer,
        epochs=epochs,
        batch_size=32,
        seed=seed,
        scheduler=scheduler,
        accumulation=accumulation,
        clip_norm=clip_norm,
    )
    statement, opening = make_statement(data, config, spec, checkpoint_every=every, loop=loop)
    carried = CarriedStatement(statement=statement, opening=opening)
    with PolRecorder(
        directory, model, optimizer, data=data, spec=spec, config=config, loop=loop, statement=carried, every=every
    ) as rec:
        for epoch in range(epochs):
            for batch in rec.batch_sampler(epoch):
                index = torch.tensor(batch)
                rec.step(data.x[index], data.y[index], index)
    assert rec.proof_id is not None
    return rec.proof_id, statement


def replay_all(directory: Path, data: Dataset):  # type: ignore[no-untyped-def]
    """The paper's verifier with every interval replayed (q = 0)."""
    return verify_proof(directory, data, VerificationPolicy(q=0), trust_code=True)


def hardened(directory: Path, data: Dataset, statement=None):  # type: ignore[no-untyped-def]
    """The hardened verifier (settings bound to `statement`, the challenged intervals replayed)."""
    return verify_proof(directory, data, hardened_policy(statement=statement), trust_code=True)


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd-nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, amsgrad=True),
}
SCHEDULES = {
    "none": None,
    "step-per-epoch": SchedulerDoc(kind="step", interval="epoch", arguments={"step_size": 1, "gamma": 0.5}),
    "cosine": SchedulerDoc(kind="cosine", arguments={"T_max": 6, "eta_min": 1e-5}),
    "onecycle": SchedulerDoc(kind="onecycle", arguments={"max_lr": 0.01, "total_steps": 6}),
}


@pytest.mark.parametrize(
    "optimizer,schedule,accumulation,clip",
    [
        ("sgd", "step-per-epoch", 1, None),
        ("sgd-nesterov", "cosine", 2, 1.0),
        ("adam", "onecycle", 1, 0.5),
        ("adamw", "cosine", 4, None),
    ],
)
def test_each_optimizer_and_schedule_replays_bit_for_bit(tiny, tmp_path, optimizer, schedule, accumulation, clip):
    _, statement = record_own(
        tmp_path / "p",
        tiny,
        OPTIMIZERS[optimizer],
        scheduler=SCHEDULES[schedule],
        accumulation=accumulation,
        clip_norm=clip,
    )
    verdict = hardened(tmp_path / "p", tiny, statement)
    assert verdict.accepted, verdict.reasons
    verdict = replay_all(tmp_path / "p", tiny)
    assert verdict.accepted, verdict.reasons
    assert verdict.mode == "exact" and len(verdict.intervals) == 3
    assert all(i.accepted for i in verdict.intervals)
    proof, _ = load_proof(tmp_path / "p")
    names = set(ProofStore(tmp_path / "p", proof).checkpoint(3))
    if optimizer.startswith("adam"):
        assert any(n.startswith("optimizer/exp_avg_sq/") for n in names)
        assert any(n.startswith("optimizer/step/") for n in names)
        assert any(n.startswith("optimizer/max_exp_avg_sq/") for n in names) == (optimizer == "adamw")
    elif optimizer == "sgd-nesterov":
        assert any(n.startswith("optimizer/momentum_buffer/") for n in names)


@pytest.mark.parametrize("schedule", ["step-per-epoch", "cosine", "onecycle"])
def test_the_derived_schedule_is_the_one_torch_trains_with(schedule):
    """lr_sequence (what the verifier derives) equals the rates a real optimizer sees, step by step."""
    doc = SCHEDULES[schedule]
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([param], lr=0.01)
    _, loop = own_loop_settings(optimizer, epochs=2, batch_size=32, seed=0, scheduler=doc)
    scheduler = {
        "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6, eta_min=1e-5),
        "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=6),
    }[doc.kind]()
    seen = []
    for step in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        optimizer.step()
        if doc.interval == "step" or (step + 1) % 3 == 0:
            scheduler.step()
    seen.append(optimizer.param_groups[0]["lr"])
    assert lr_sequence(loop, 3, 6) == seen
    assert len(set(seen)) > 1


@pytest.fixture(scope="module")
def adam_proof(tiny, tmp_path_factory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("own") / "proof"
    _, statement = record_own(
        directory,
        tiny,
        OPTIMIZERS["adam"],
        scheduler=SCHEDULES["cosine"],
        accumulation=2,
        clip_norm=1.0,
    )
    return directory, statement


def forge(source: Path, target: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a proof consistently (hashes, deltas, proof.json) with `edit(step, tensors)` applied: an adversary
    who controls every file."""
    proof, _ = load_proof(source)
    store = ProofStore(source, proof)
    writer = ProofWriter(target, proof.header)
    for index, entry in enumerate(proof.checkpoints):
        start = proof.checkpoints[index - 1].step if index else 0
        for record in proof.steps[start : entry.step]:
            writer.add_step(record)
        tensors = dict(store.checkpoint(index))
        edit(entry.step, tensors)
        writer.add_checkpoint(entry.step, tensors)
    writer.finish()


def failed(verdict) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.name: " ".join(c.reasons) for c in verdict.checks if c.status == "failed"}


def test_the_honest_adam_proof_is_accepted(adam_proof, tiny):
    directory, statement = adam_proof
    assert hardened(directory, tiny, statement).accepted
    verdict = replay_all(directory, tiny)
    assert verdict.accepted, verdict.reasons


def test_an_edited_adam_state_is_rejected(adam_proof, tiny, tmp_path):
    directory, statement = adam_proof

    def edit(step, tensors):  # type: ignore[no-untyped-def]
        if step == 4:
            name = next(n for n in sorted(tensors) if n.startswith("optimizer/exp_avg_sq/"))
            tensors[name] = tensors[name] * 1.5

    forge(directory, tmp_path / "forged", edit)
    verdict = replay_all(tmp_path / "forged", tiny)
    assert not verdict.accepted
    assert list(failed(verdict)) == ["replay"]
    assert [i.accepted for i in verdict.intervals] == [True, False, False]
    assert "optimizer/exp_avg_sq/" in failed(verdict)["replay"]
    verdict = hardened(tmp_path / "forged", tiny, statement)  # any 2 of the 3 intervals include a tampered one
    assert not verdict.accepted and list(failed(verdict)) == ["replay"]


def test_an_edited_adam_step_count_is_rejected(adam_proof, tiny, tmp_path):
    directory, statement = adam_proof

    def edit(step, tensors):  # type: ignore[no-untyped-def]
        if step == 2:
            for name in [n for n in tensors if n.startswith("optimizer/step/")]:
                tensors[name] = torch.tensor(1000.0)  # a bias correction of a much later step

    forge(directory, tmp_path / "forged", edit)
    verdict = hardened(tmp_path / "forged", tiny, statement)
    assert not verdict.accepted
    assert "counts 1000 optimizer steps, not 2" in failed(verdict)["integrity"]


def test_an_edited_schedule_position_is_rejected(adam_proof, tiny, tmp_path):
    directory, statement = adam_proof

    def edit(step, tensors):  # type: ignore[no-untyped-def]
        if step == 4:
            tensors["scheduler/lr"] = tensors["scheduler/lr"] * 2

    forge(directory, tmp_path / "forged", edit)
    verdict = hardened(tmp_path / "forged", tiny, statement)
    assert not verdict.accepted
    assert "schedule position: learning rate" in failed(verdict)["integrity"]


def edit_json(directory: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = directory / "proof.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_an_edited_accumulation_setting_is_rejected(adam_proof, tiny, tmp_path):
    directory, statement = adam_proof
    # 1. the proof says accumulation 1 but carries the owner's statement (accumulation 2): the settings differ
    shutil.copytree(directory, tmp_path / "a")
    edit_json(tmp_path / "a", lambda doc: doc["loop"].update(accumulation=1))
    verdict = hardened(tmp_path / "a", tiny, statement)
    assert "own-loop settings differ from the statement's: accumulation 1 (statement: 2)" in failed(verdict)["settings"]
    # 2. the statement it carries is changed too: it is no longer the registered one
    shutil.copytree(directory, tmp_path / "b")

    def both(doc):  # type: ignore[no-untyped-def]
        doc["loop"]["accumulation"] = 1
        doc["statement"]["statement"]["loop"]["accumulation"] = 1

    edit_json(tmp_path / "b", both)
    verdict = hardened(tmp_path / "b", tiny, statement)
    assert "not the trusted" in failed(verdict)["settings"]
    # 3. with no registered statement to compare with, the replay with accumulation 1 does not reproduce training
    verdict = replay_all(tmp_path / "b", tiny)
    assert not verdict.accepted and "replay" in failed(verdict)
    assert not any(i.accepted for i in verdict.intervals)


def test_an_edited_learning_rate_record_is_rejected(adam_proof, tiny, tmp_path):
    directory, statement = adam_proof
    shutil.copytree(directory, tmp_path / "p")
    edit_json(tmp_path / "p", lambda doc: doc["steps"]["lr"].__setitem__(3, doc["steps"]["lr"][3] * 2))
    verdict = verify_proof(tmp_path / "p", tiny, VerificationPolicy(q=0), trust_code=True)
    assert "step 3: learning rate" in failed(verdict)["schedule"]


def test_the_recorder_refuses_what_a_replay_could_not_reproduce(tiny, tmp_path):
    spec = spec_for_data("cnn", tiny.input_shape, tiny.num_classes)
    model = build_model(spec, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    config, loop = own_loop_settings(optimizer, epochs=1, batch_size=32, seed=1)
    with pytest.raises(ModeldeedError, match="not build_model"):
        with PolRecorder(
            tmp_path / "a", build_model(spec, seed=2), optimizer, data=tiny, spec=spec, config=config, loop=loop
        ):
            pass
    with pytest.raises(ModeldeedError, match="not the one the settings describe"):
        PolRecorder(
            tmp_path / "b",
            model,
            torch.optim.Adam(model.parameters(), lr=2e-3),
            data=tiny,
            spec=spec,
            config=config,
            loop=loop,
        )
    with pytest.raises(ModeldeedError, match="not the seeded order's"):
        with PolRecorder(tmp_path / "c", model, optimizer, data=tiny, spec=spec, config=config, loop=loop) as rec:
            rec.step(tiny.x[:32], tiny.y[:32], torch.arange(32))
    model = build_model(spec, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    samples = torch.utils.data.TensorDataset(torch.arange(len(tiny)), tiny.x, tiny.y)
    with pytest.raises(ModeldeedError, match="drew from the global RNG"):
        with PolRecorder(tmp_path / "d", model, optimizer, data=tiny, spec=spec, config=config, loop=loop) as rec:
            rec.step(*first_batch(rec, tiny))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for index, x, y in torch.utils.data.DataLoader(samples, batch_sampler=rec.batch_sampler(0)[1:]):
                    rec.step(x, y, index)  # this loader has no generator: starting it drew a seed from the RNG


def first_batch(rec, data):  # type: ignore[no-untyped-def]
    index = torch.tensor(rec.batch_sampler(0)[0])
    return data.x[index], data.y[index], index


# --------------------------------------------------------------------------------------------- the example


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("example")
    command = [
        sys.executable,
        str(EXAMPLES / "own_loop_adamw.py"),
        "--out", str(out),
        "--train-size", "384",
        "--epochs", "5",
        "--batch-size", "32",
        "--triggers", "10",
        "--triggers-per-batch", "8",
        "--every", "8",
        "--workers", "2",
        "--key-seed", "1",  # a fixed demonstration key: a fresh secret key per run made the watermark flaky
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "proof " in done.stdout
    return out


def test_the_example_proof_and_watermark_verify_from_the_cli(example_run, monkeypatch, capsys):
    out = example_run
    monkeypatch.syspath_prepend(str(EXAMPLES))  # where the example's step function is imported from
    data = f"memmap:{out / 'data'}"
    verify = ["pol", "verify", str(out / "proof"), "--data", data, "--hardened", "--statement", str(out / "statement")]
    assert main([*verify, "--trust-model-code", "--no-progress"]) == 0, capsys.readouterr().out
    assert "ACCEPTED" in capsys.readouterr().out
    assert main(["watermark", "verify", str(out / "model"), "--key", str(out / "keys"), "--data", data]) == 0
    assert "ACCEPTED" in capsys.readouterr().out


def test_the_example_step_is_imported_only_with_trust(example_run, capsys):
    out = example_run
    args = ["pol", "verify", str(out / "proof"), "--data", f"memmap:{out / 'data'}", "--hardened"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "training step 'own_loop_adamw:train_step' is user code" in err and "--trust-model-code" in err
    proof = json.loads((out / "proof" / "proof.json").read_text())
    assert proof["loop"]["optimizer"]["kind"] == "adamw" and proof["loop"]["accumulation"] == 2
    assert proof["loop"]["scheduler"]["kind"] == "cosine" and proof["loop"]["clip_norm"] == 5.0
    assert proof["statement"]["statement"]["loop"] == proof["loop"]
    # triggers were recorded as trained: stored samples after the dataset indices of every step
    assert all(len(s) == 8 for s in proof["steps"]["stored_samples"])
    assert all(max(s) < 10 for s in proof["steps"]["stored_samples"])


def test_a_schedule_that_fails_part_way_is_a_rejection_not_a_crash(adam_proof, tiny, tmp_path):
    directory, _ = adam_proof
    shutil.copytree(directory, tmp_path / "p")
    onecycle = {"kind": "onecycle", "interval": "step", "arguments": {"max_lr": 0.01, "total_steps": 2}}

    def edit(doc):  # type: ignore[no-untyped-def]
        doc["loop"]["scheduler"] = onecycle  # torch refuses to step it past its 2 steps; the proof has 6
        doc["statement"]["statement"]["loop"]["scheduler"] = onecycle

    edit_json(tmp_path / "p", edit)
    verdict = replay_all(tmp_path / "p", tiny)
    assert not verdict.accepted
    assert "field 'loop.scheduler': the schedule fails at step 3" in failed(verdict)["integrity"]
    edit_json(tmp_path / "p", lambda doc: doc["loop"]["scheduler"]["arguments"].update(div_factor=0))
    # arguments that make no schedule at all: proof.json is not well-formed, which is bad input (exit 2)
    with pytest.raises(FormatError, match=r"the arguments do not make a onecycle schedule \(float division by zero\)"):
        replay_all(tmp_path / "p", tiny)


def test_the_recorder_refuses_a_statement_of_another_run(tiny, tmp_path):
    spec = spec_for_data("cnn", tiny.input_shape, tiny.num_classes)
    model = build_model(spec, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config, loop = own_loop_settings(optimizer, epochs=1, batch_size=32, seed=1, accumulation=2)
    _, other = own_loop_settings(optimizer, epochs=1, batch_size=32, seed=1, accumulation=1)
    statement, opening = make_statement(tiny, config, spec, checkpoint_every=2, loop=other)
    with pytest.raises(ModeldeedError, match="its loop .* differs"):
        PolRecorder(
            tmp_path / "p",
            model,
            optimizer,
            data=tiny,
            spec=spec,
            config=config,
            loop=loop,
            every=2,
            statement=CarriedStatement(statement=statement, opening=opening),
        )


def test_a_replay_takes_adams_step_count_from_the_step_not_the_file(adam_proof, tiny):
    """What an opened proof's start checkpoint says (no integrity pass over all checkpoints) is checked too."""
    from modeldeed.errors import FormatError
    from modeldeed.pol import replay

    directory, _ = adam_proof
    proof, _ = load_proof(directory)
    store = ProofStore(directory, proof)
    start = dict(store.checkpoint(1))  # step 2
    for name in [n for n in start if n.startswith("optimizer/step/")]:
        start[name] = torch.tensor(1002.0)
    model = build_model(proof.header.spec)
    records = [(s, proof.steps[s]) for s in (2, 3)]
    with pytest.raises(FormatError, match="counts 1002 optimizer steps, not 2"):
        replay(proof.header, start, records, tiny, None, end_step=4, model=model, source=directory)


def test_tolerance_mode_bounds_adams_first_moment_by_its_effect_on_the_weights(adam_proof, tiny, tmp_path):
    """exp_avg off by 1 % moves the next steps' weights by less than half this interval's update; by 10 %, more."""
    directory, _ = adam_proof
    policy = VerificationPolicy(q=0, replay_mode="tolerance")
    honest = verify_proof(directory, tiny, policy, trust_code=True)
    assert honest.accepted and all(i.state_error["exp_avg"] == 0.0 for i in honest.intervals)

    def scaled(factor: float):  # type: ignore[no-untyped-def]
        def edit(step, tensors):  # type: ignore[no-untyped-def]
            if step == 4:
                for name in [n for n in tensors if n.startswith("optimizer/exp_avg/")]:
                    tensors[name] = tensors[name] * factor

        forge(directory, tmp_path / str(factor), edit)
        verdict = verify_proof(tmp_path / str(factor), tiny, policy, trust_code=True)
        return verdict, next(i for i in verdict.intervals if i.start_step == 2)

    _, small = scaled(1.01)
    assert small.accepted and 0 < small.state_error["exp_avg"] < 0.5
    verdict, large = scaled(1.1)
    assert not verdict.accepted and not large.accepted and large.state_error["exp_avg"] > 0.5
    assert "the stored Adam first moment (exp_avg) differs" in failed(verdict)["replay"]
