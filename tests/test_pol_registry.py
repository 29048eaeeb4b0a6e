"""A proof bound in time on a real registry (loopback): statement before commitment, the challenge from the beacon."""

from __future__ import annotations

import json

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
