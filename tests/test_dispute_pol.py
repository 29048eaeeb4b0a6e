"""Proof-of-learning evidence in a dispute, from the CLI, against a real registry on loopback.

The owner registers a training statement (`pol commit --registry`) before training, trains under it with a
proof, registers the proof's commitment (`pol commit-proof --registry`) and publishes the model. A thief who
stole the weights and the proof (which opens the seed) then runs `pol commit --registry` with the very same
settings and seed and retrains: training is deterministic, so his proof ends in the stolen weights bit for bit
and verifies. Only the registration times tell them apart. A second thief registers the owner's own
statement and commitment under his identity.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from registry_server import ThreadServer

from modeldeed.cli import main
from modeldeed.registry import load_identity, load_receipt
from modeldeed.registry.logkey import load_signer_key

pytestmark = pytest.mark.slow

SETTINGS = ["--data", "digits", "--model", "cnn", "--model-args", '{"width": 2}', "--epochs", "1"]
SETTINGS += ["--batch-size", "64", "--checkpoint-every", "1", "--seed", "5"]
QUIET = ["--threads", "1", "--no-progress"]


def run(args, capsys):  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dispute-pol")
    assert main(["registry", "init-log", "--out", str(root / "log.key"), "--origin", "test.example/pol-dispute"]) == 0
    server = ThreadServer(f"sqlite:///{root / 'registry.db'}", load_signer_key(root / "log.key"))
    pub = str(root / "log.key.pub")
    for who in ("owner", "thief", "copier"):
        assert main(["registry", "keygen", "--out", str(root / who / "id")]) == 0

    def reg(who):  # type: ignore[no-untyped-def]
        return ["--registry", server.url, "--identity", str(root / who / "id"), "--log-key", pub]

    def pol_run(who, model):  # type: ignore[no-untyped-def]
        """pol commit --registry, train under the statement with a proof (its progress registered), commit-proof."""
        base = root / who
        assert main(["pol", "commit", *SETTINGS, "--out", str(base / "commit"), *reg(who)]) == 0
        train = ["train", *SETTINGS, *QUIET, "--out", str(model), "--proof", str(base / "proof")]
        assert main([*train, "--statement", str(base / "commit"), "--register-every", "10", *reg(who)]) == 0
        assert (
            main(["pol", "commit-proof", str(base / "proof"), "--out", str(base / "commitment.json"), *reg(who)]) == 0
        )

    try:
        model = root / "owner" / "model"
        pol_run("owner", model)
        # the model's first appearance, on the log
        publish = ["registry", "publish", str(model), "--out", str(root / "model.receipt.json"), *reg("owner")]
        assert main(publish) == 0
        # the thief retrains with the settings and the seed the stolen proof opens, under a statement of his own
        pol_run("thief", root / "thief" / "model")
        # the copier registers the owner's statement and (recomputed from the stolen proof) commitment as his own
        copier = root / "copier"
        shutil.copytree(root / "owner" / "commit", copier / "commit")
        (copier / "commit" / "statement.receipt.json").unlink()
        shutil.copytree(root / "owner" / "proof", copier / "proof")
        stmt = ["registry", "publish", str(copier / "commit"), "--out", str(copier / "commit/statement.receipt.json")]
        assert main([*stmt, *reg("copier")]) == 0
        commit = ["pol", "commit-proof", str(copier / "proof"), "--out", str(copier / "commitment.json")]
        assert main([*commit, *reg("copier")]) == 0
        for who in ("owner", "thief", "copier"):
            base = root / who
            args = ["claim", model, "--identity", base / "id", "--pol-proof", base / "proof", "--pol-statement",
                    base / "commit", "--pol-commitment", base / "commitment.json", "--log-key", pub,
                    "--name", who, "--out", root / "claims" / who]  # fmt: skip
            assert main([str(a) for a in args]) == 0
        yield {"root": root, "url": server.url, "pub": pub, "model": model, "claims": root / "claims"}
    finally:
        server.stop()


def dispute(w, out, *claims, extra=(), capsys=None):  # type: ignore[no-untyped-def]
    args = ["dispute", w["model"], "--data", "digits", "--log-key", w["pub"], "--out", out, "--json"]
    args += ["--registry", w["url"], *extra]
    for claim in claims:
        args += ["--claim", w["claims"] / claim]
    code, stdout, stderr = run(args, capsys)
    assert code in (0, 1), stderr
    return code, json.loads(stdout)


def reasons_of(judgement, number):  # type: ignore[no-untyped-def]
    claim = judgement["claims"][number]
    return " | ".join([*claim["reasons"], *(r for e in claim["evidence"] for r in e["reasons"])])


def test_the_statement_registered_first_wins_against_a_thief_who_retrained(world, tmp_path, capsys):
    root = world["root"]
    # the thief's run really reproduces the stolen weights: his proof is as good as the owner's
    stolen = (root / "owner/model/model.safetensors").read_bytes()
    assert (root / "thief/model/model.safetensors").read_bytes() == stolen
    owner_statement = load_receipt(root / "owner/commit/statement.receipt.json").entry
    thief_statement = load_receipt(root / "thief/commit/statement.receipt.json").entry
    assert owner_statement.index < thief_statement.index and owner_statement.digest != thief_statement.digest
    model_receipt = ["--model-receipt", root / "model.receipt.json"]
    code, j = dispute(world, tmp_path / "j", "thief", "owner", extra=model_receipt, capsys=capsys)
    assert code == 0 and j["established"] is True and j["winner"]["claim"] == 1
    owner = load_identity(root / "owner/id")
    assert j["winner"]["claimant"]["public_key"] == owner.public_key and owner.fingerprint in j["verdict"]
    item = j["claims"][1]["evidence"][0]
    assert item["counts"] and item["kind"] == "pol" and item["details"]["accepted"] is True
    assert item["details"]["challenge"]["source"] == "registry-beacon"
    assert item["anchor"]["kind"] == "pol-statement" and item["anchor"]["index"] == owner_statement.index
    assert {r["kind"] for r in item["registrations"]} == {"pol-statement", "pol-commitment", "pol-progress"}
    assert sum("existed by" in note for note in item["notes"]) == 4  # the progress chain, checked by the judge
    # the thief's proof verifies on the stolen model, and does not count: his statement came after the model
    thief = j["claims"][0]["evidence"][0]
    assert thief["verified"] is True and thief["counts"] is False
    assert "not before the model's first appearance" in reasons_of(j, 0)
    # the judge found the model's first appearance on the log itself (its registration by the owner)
    assert j["first_appearance"]["registration"]["kind"] == "model"
    page = (tmp_path / "j" / "judgement.html").read_text()
    assert "pol-statement" in page


def test_a_thief_who_registers_the_owners_statement_loses(world, tmp_path, capsys):
    # alone: the log holds the owner's earlier registration of the very same statement
    code, j = dispute(world, tmp_path / "j", "copier", capsys=capsys)
    assert code == 1 and j["established"] is False
    assert j["claims"][0]["evidence"][0]["verified"] is True
    assert "registered earlier by" in reasons_of(j, 0)


def test_a_proof_that_does_not_end_in_the_model_does_not_verify(world, tmp_path, capsys):
    # the owner claims another model with his proof: the proof's last checkpoint is not that model
    root = world["root"]
    other = tmp_path / "other-model"
    args = ["train", *SETTINGS, *QUIET, "--out", other]
    args[args.index("--seed") + 1] = "6"
    assert run(args, capsys)[0] == 0
    args = ["claim", other, "--identity", root / "owner/id", "--pol-proof", root / "owner/proof", "--pol-statement",
            root / "owner/commit", "--pol-commitment", root / "owner/commitment.json",
            "--out", tmp_path / "c"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    judge = ["dispute", other, "--data", "digits", "--log-key", world["pub"], "--out", tmp_path / "j", "--json"]
    code, out, _ = run([*judge, "--claim", tmp_path / "c", "--registry", world["url"]], capsys)
    j = json.loads(out)
    assert code == 1 and j["claims"][0]["evidence"][0]["verified"] is False
    assert "last checkpoint is not the model in dispute" in reasons_of(j, 0)


def test_claim_refuses_pol_receipts_of_someone_else(world, tmp_path, capsys):
    root = world["root"]
    args = ["claim", world["model"], "--identity", root / "thief/id", "--pol-proof", root / "owner/proof",
            "--pol-statement", root / "owner/commit", "--pol-commitment", root / "owner/commitment.json",
            "--out", tmp_path / "c"]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 2 and "not by your identity" in err
    code, _, err = run(["claim", world["model"], "--identity", root / "thief/id", "--out", tmp_path / "d"], capsys)
    assert code == 2 and "a claim needs evidence" in err


def test_an_opened_proof_counts_like_the_full_one(world, tmp_path, capsys):
    # the owner hands over only the intervals the log's beacon challenges (a claim holds at most 64 files)
    root = world["root"]
    owner = root / "owner"
    args = ["pol", "open", owner / "proof", "--commitment", owner / "commitment.json", "--receipt",
            owner / "commitment.receipt.json", "--log-key", world["pub"], "--out", tmp_path / "opened"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    args = ["claim", world["model"], "--identity", owner / "id", "--pol-proof", tmp_path / "opened",
            "--pol-statement", owner / "commit", "--pol-commitment", owner / "commitment.json",
            "--out", tmp_path / "claim"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    judge = ["dispute", world["model"], "--data", "digits", "--log-key", world["pub"], "--out", tmp_path / "j"]
    code, out, _ = run([*judge, "--json", "--claim", tmp_path / "claim", "--registry", world["url"]], capsys)
    j = json.loads(out)
    item = j["claims"][0]["evidence"][0]
    assert code == 0 and item["counts"] and item["summary"].startswith("proof of learning (opened)")
    assert item["details"]["challenge"]["source"] == "registry-beacon"
