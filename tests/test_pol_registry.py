"""A proof bound in time on a real registry (loopback): statement before commitment, the challenge from the beacon."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from registry_server import ThreadServer

from modeldeed.cli import main
from modeldeed.pol import load_commitment
from modeldeed.registry import load_receipt
from modeldeed.registry.logkey import load_signer_key

pytestmark = pytest.mark.slow

SETTINGS = ["--data", "digits", "--model", "cnn", "--model-args", '{"width": 2}', "--epochs", "1"]
SETTINGS += ["--batch-size", "64", "--checkpoint-every", "1"]
QUIET = ["--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pol-registry")
    assert main(["registry", "init-log", "--out", str(root / "log.key"), "--origin", "test.example/pol"]) == 0
    server = ThreadServer(f"sqlite:///{root / 'registry.db'}", load_signer_key(root / "log.key"))
    assert main(["registry", "keygen", "--out", str(root / "id")]) == 0
    yield {"root": root, "url": server.url, "pub": str(root / "log.key.pub"), "id": str(root / "id")}
    server.stop()


def publish(env, artefact, out, *kind: str) -> None:  # type: ignore[no-untyped-def]
    args = ["registry", "publish", str(artefact), *kind, "--registry", env["url"], "--identity", env["id"]]
    assert main([*args, "--out", str(out), "--log-key", env["pub"]]) == 0


def owner_run(env, name: str, *, statement_first: bool):  # type: ignore[no-untyped-def]
    """pol commit, train under the statement, commit to the proof; register both in the order asked for."""
    root = env["root"] / name
    assert main(["pol", "commit", *SETTINGS, "--seed", "5", "--out", str(root / "commit")]) == 0
    if statement_first:
        publish(env, root / "commit" / "statement.json", root / "statement.receipt.json")
    train = ["train", *SETTINGS, *QUIET, "--seed", "5", "--out", str(root / "model"), "--proof", str(root / "proof")]
    assert main([*train, "--statement", str(root / "commit")]) == 0
    assert main(["pol", "commit-proof", str(root / "proof"), "--out", str(root / "commitment.json")]) == 0
    publish(env, root / "commitment.json", root / "commitment.receipt.json", "--kind", "pol-commitment")
    if not statement_first:
        publish(env, root / "commit" / "statement.json", root / "statement.receipt.json")
    return root


def test_a_registered_commitment_draws_its_challenge_from_the_log(env, capsys):
    root = owner_run(env, "owner", statement_first=True)
    receipt = load_receipt(root / "commitment.receipt.json")
    assert (
        receipt.entry.kind == "pol-commitment" and receipt.entry.digest == load_commitment(root / "commitment.json").id
    )
    bound = ["--commitment-receipt", str(root / "commitment.receipt.json"), "--log-key", env["pub"]]
    bound += ["--statement-receipt", str(root / "statement.receipt.json")]
    verify = ["pol", "verify", str(root / "proof"), "--hardened", "--statement", str(root / "commit"), *QUIET]
    capsys.readouterr()
    assert main([*verify, "--commitment", str(root / "commitment.json"), *bound, "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["challenge"]["source"] == "registry-beacon" and verdict["challenge"]["count"] == 12
    assert any("proof commitment was registered on the log test.example/pol" in n for n in verdict["notes"])
    assert any("training statement was registered" in n for n in verdict["notes"])
    assert not any("not bound in time" in n for n in verdict["notes"])
    # the prover opens for that challenge; a verifier with the receipts accepts the opened part alone
    opened = root / "opened"
    open_ = ["pol", "open", str(root / "proof"), "--commitment", str(root / "commitment.json")]
    open_ += ["--receipt", str(root / "commitment.receipt.json"), "--log-key", env["pub"], "--out", str(opened)]
    assert main(open_) == 0
    verify_opened = ["pol", "verify", str(opened), "--hardened", "--statement", str(root / "commit"), *QUIET]
    assert main([*verify_opened, *bound]) == 0
    # without the receipt the verifier draws offline: not what was opened
    assert main(verify_opened) == 1
    assert "of the challenge are not opened" in capsys.readouterr().out
    # a receipt for something else is no evidence
    wrong = ["--commitment-receipt", str(root / "statement.receipt.json"), "--log-key", env["pub"]]
    assert main([*verify, *wrong]) == 1
    assert "it registers a 'pol-statement' artefact, not a 'pol-commitment'" in capsys.readouterr().out
    assert main([*verify, "--commitment-receipt", str(root / "commitment.receipt.json")]) == 2
    assert "pass --log-key PUB" in capsys.readouterr().err


def test_a_statement_registered_after_the_commitment_is_not_bound_in_time(env, capsys):
    root = owner_run(env, "late", statement_first=False)
    bound = ["--commitment-receipt", str(root / "commitment.receipt.json"), "--log-key", env["pub"]]
    bound += ["--statement-receipt", str(root / "statement.receipt.json")]
    capsys.readouterr()
    verify = ["pol", "verify", str(root / "proof"), "--hardened", "--statement", str(root / "commit")]
    assert main([*verify, *bound, *QUIET]) == 1
    assert "after the proof commitment" in capsys.readouterr().out


def test_commit_and_commit_proof_register_and_publish_agrees(env, capsys):
    """`pol commit --registry` registers the statement before training, `commit-proof --registry` the commitment;
    `registry publish` of the commitment file or of the proof directory registers the very same digest."""
    root = env["root"] / "cli-registered"
    reg = ["--registry", env["url"], "--identity", env["id"]]
    commit = ["pol", "commit", *SETTINGS, "--seed", "9", "--out", str(root / "commit")]
    assert main([*commit, *reg, "--log-key", env["pub"]]) == 0
    statement_receipt = load_receipt(root / "commit" / "statement.receipt.json")
    from modeldeed.pol.statement import load_statement

    assert statement_receipt.entry.kind == "pol-statement"
    assert statement_receipt.entry.digest == load_statement(root / "commit").id
    train = ["train", *SETTINGS, *QUIET, "--seed", "9", "--out", str(root / "model"), "--proof", str(root / "proof")]
    assert main([*train, "--statement", str(root / "commit")]) == 0
    assert main(["pol", "commit-proof", str(root / "proof"), "--out", str(root / "commitment.json"), *reg]) == 0
    commitment_receipt = load_receipt(root / "commitment.receipt.json")
    commitment = load_commitment(root / "commitment.json")
    assert (commitment_receipt.entry.kind, commitment_receipt.entry.digest) == ("pol-commitment", commitment.id)
    # registry publish infers the kind from the document's format, for the file and for the proof itself
    publish(env, root / "commitment.json", root / "published-file.receipt.json")
    publish(env, root / "proof", root / "published-proof.receipt.json")
    publish(env, root / "commit", root / "published-statement.receipt.json")
    for name in ("published-file", "published-proof"):
        entry = load_receipt(root / f"{name}.receipt.json").entry
        assert (entry.kind, entry.digest, entry.index) == (
            "pol-commitment",
            commitment.id,
            commitment_receipt.entry.index,
        )
    assert load_receipt(root / "published-statement.receipt.json").entry.index == statement_receipt.entry.index
    # renamed files are still recognised by their format, not their name
    (root / "renamed").mkdir()
    (root / "renamed" / "anything.json").write_bytes((root / "commitment.json").read_bytes())
    publish(env, root / "renamed", root / "renamed.receipt.json")
    assert load_receipt(root / "renamed.receipt.json").entry.digest == commitment.id
    # and the verifier accepts the receipts of both routes
    verify = ["pol", "verify", str(root / "proof"), "--hardened", "--statement", str(root / "commit"), *QUIET]
    for receipt in ("commitment.receipt.json", "published-proof.receipt.json"):
        bound = ["--commitment-receipt", str(root / receipt), "--log-key", env["pub"]]
        bound += ["--statement-receipt", str(root / "commit" / "statement.receipt.json")]
        capsys.readouterr()
        assert main([*verify, *bound, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["challenge"]["source"] == "registry-beacon"
    # a registry that cannot be reached: the statement is written, the command says so and exits 2
    dead = ["--registry", "http://127.0.0.1:9", "--identity", env["id"]]
    capsys.readouterr()
    assert main(["pol", "commit", *SETTINGS, "--seed", "9", "--out", str(root / "commit2"), *dead]) == 2
    assert "NOT registered" in capsys.readouterr().err and (root / "commit2" / "statement.json").is_file()


def test_progress_chain_registered_while_training(env, capsys, tmp_path):
    """train --register-every registers a hash chain over the checkpoints; pol verify --log-key checks it against
    the proof's own checkpoints, reports the times, and rejects a proof whose checkpoints disagree with a link."""
    root = env["root"] / "progress"
    reg = ["--registry", env["url"], "--identity", env["id"], "--log-key", env["pub"]]
    train = ["train", *SETTINGS, *QUIET, "--seed", "3", "--out", str(root / "model"), "--proof", str(root / "proof")]
    capsys.readouterr()
    assert main([*train, "--register-every", "10", *reg]) == 0
    assert "4 of 4 chain links registered" in capsys.readouterr().out  # 24 checkpoints: W_0, then 10 + 10 + 3
    links = json.loads((root / "proof" / "progress" / "progress.json").read_text())["links"]
    assert [(link["first"], link["count"]) for link in links] == [(0, 1), (1, 10), (11, 10), (21, 3)]
    receipts = [load_receipt(root / "proof" / "progress" / link["receipt"]) for link in links]
    assert [r.entry.kind for r in receipts] == ["pol-progress"] * 4
    assert receipts[0].entry.index < receipts[1].entry.index < receipts[2].entry.index < receipts[3].entry.index
    verify = ["pol", "verify", str(root / "proof"), *QUIET, "--log-key", env["pub"], "--json"]
    assert main(verify) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert sum("existed by" in n and "progress link" in n for n in notes) == 4
    # a hostile chain file: a receipt outside the proof, a link that claims checkpoints the proof lacks
    progress = root / "proof" / "progress" / "progress.json"
    original = progress.read_text()
    for edit, message in (
        (lambda d: d["links"][0].update(receipt="../../outside.json"), "is not a file in"),
        (lambda d: d["links"][3].update(count=99), "do not follow on"),
    ):
        document = json.loads(original)
        edit(document)
        progress.write_text(json.dumps(document))
        capsys.readouterr()
        assert main(verify) == 2 and message in capsys.readouterr().err
    (root / "outside.json").write_bytes((root / "proof" / "progress" / links[0]["receipt"]).read_bytes())
    linked = root / "proof" / "progress" / "linked.json"
    linked.symlink_to(root / "outside.json")
    document = json.loads(original)
    document["links"][0]["receipt"] = "linked.json"
    progress.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(verify) == 2
    err = capsys.readouterr().err
    assert "linked.json" in err and "outside" in err, err
    linked.unlink()
    progress.write_text(original)
    # another run's checkpoints under this chain: a registered link disagrees, the proof is rejected
    other = root / "other"
    assert main(["train", *SETTINGS, *QUIET, "--seed", "4", "--out", str(other / "model"), "--proof",
                 str(other / "proof")]) == 0  # fmt: skip
    shutil.copytree(root / "proof" / "progress", other / "proof" / "progress")
    capsys.readouterr()
    assert main(["pol", "verify", str(other / "proof"), *QUIET, "--log-key", env["pub"], "--json"]) == 1
    reasons = " ".join(json.loads(capsys.readouterr().out)["reasons"])
    assert "progress link 0: receipt: it registers the digest" in reasons
    # the registry goes away: training finishes, with a warning and the missed links reported
    dead = ["--registry", "http://127.0.0.1:9", "--identity", env["id"]]
    train = ["train", *SETTINGS, *QUIET, "--seed", "3", "--out", str(tmp_path / "m"), "--proof", str(tmp_path / "p")]
    assert main([*train, "--register-every", "12", *dead]) == 0
    out = capsys.readouterr().out
    assert "0 of 3 chain links registered" in out and "NOT registered" in out
    assert main(["pol", "verify", str(tmp_path / "p"), *QUIET, "--log-key", env["pub"], "--json"]) == 0
    assert any("were not registered" in n for n in json.loads(capsys.readouterr().out)["notes"])
