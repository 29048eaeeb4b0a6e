"""Watermark keys, reveals and models on a real registry (loopback): one digest per artefact, receipts in verdicts."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest
import torch
from registry_server import ThreadServer

from modeldeed.cli import main
from modeldeed.models import load_model, model_digest
from modeldeed.registry import RegistryClient, load_identity, load_log_key, load_receipt, save_receipt
from modeldeed.registry.logkey import load_signer_key
from modeldeed.watermark import (
    RevealedSet,
    bounded_keygen,
    keygen,
    load_marking_key,
    load_verification_key,
    save_key_pair,
    save_reveal,
    verify,
)
from modeldeed.watermark.registration import (
    KEY_RECEIPT_FILE,
    bind_key,
    bind_reveal,
    key_digest,
    register_reveal,
    reveal_file_digest,
)
from modeldeed.watermark.verify import NOT_BOUND_NOTE, classify


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wm-registry")
    assert main(["registry", "init-log", "--out", str(root / "log.key"), "--origin", "test.example/wm"]) == 0
    server = ThreadServer(f"sqlite:///{root / 'registry.db'}", load_signer_key(root / "log.key"))
    assert main(["registry", "keygen", "--out", str(root / "id")]) == 0
    assert main(["train", "--data", "digits", "--epochs", "2", "--out", str(root / "model"), "--no-progress"]) == 0
    yield {"root": root, "url": server.url, "pub": str(root / "log.key.pub"), "id": str(root / "id")}
    server.stop()


def run_json(args, capsys):
    capsys.readouterr()
    code = main([str(a) for a in [*args, "--json"]])
    return code, json.loads(capsys.readouterr().out)


def test_keygen_and_publish_register_the_same_digest(env, tmp_path, capsys):
    reg = ["--registry", env["url"], "--identity", env["id"], "--log-key", env["pub"]]
    code, made = run_json(["watermark", "pkeygen", "--data", "digits", "--security", "8", "--out", tmp_path / "k",
                           *reg], capsys)  # fmt: skip
    assert code == 0 and made["registration"]["kind"] == "watermark-key" and made["registration"]["new"]
    vk = load_verification_key(tmp_path / "k")
    assert made["registration"]["digest"] == key_digest(vk) != vk.key_id
    receipt = load_receipt(tmp_path / "k" / KEY_RECEIPT_FILE)
    # pverify reports it (the model does not carry this key: rejected, but bound in time)
    pverify = ["watermark", "pverify", env["root"] / "model", "--key", tmp_path / "k"]
    code, verdict = run_json([*pverify, "--receipt", tmp_path / "k" / KEY_RECEIPT_FILE, "--log-key", env["pub"],
                              "--first-seen", "2099-01-01"], capsys)  # fmt: skip
    assert code == 1 and verdict["metrics"]["registration"]["index"] == receipt.entry.index
    assert any("it existed before the model" in n for n in verdict["notes"])
    assert main([str(a) for a in [*pverify, "--first-seen", "2099-01-01"]]) == 2
    # `registry publish` of the same directory hashes the same bytes: the log answers with the same entry
    args = ["registry", "publish", tmp_path / "k", "--registry", env["url"], "--identity", env["id"],
            "--out", tmp_path / "again.json"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    assert "already registered" in capsys.readouterr().out
    assert load_receipt(tmp_path / "again.json") == receipt
    # the digest covers the opened half (JSON) and, through the commitments, every image; not the layout
    (tmp_path / "k" / "verification_key.json").write_text(
        json.dumps(json.loads((tmp_path / "k" / "verification_key.json").read_text()), indent=1)
    )
    assert key_digest(load_verification_key(tmp_path / "k")) == receipt.entry.digest
    # --force removes the old key's receipt with the old key
    assert (
        main(["watermark", "keygen", "--data", "digits", "--size", "4", "--out", str(tmp_path / "k"), "--force"]) == 0
    )
    assert not (tmp_path / "k" / KEY_RECEIPT_FILE).exists()


def test_models_and_reveals_have_one_digest(env, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(env["root"] / "model", model)
    digest = model_digest(model)
    meta = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps(meta, indent=9))
    assert model_digest(model) == digest  # canonical JSON
    (model / "model.json").write_text(json.dumps({**meta, "classes": meta["classes"][::-1]}))
    assert model_digest(model) != digest
    (model / "model.json").write_text(json.dumps(meta))
    weights = bytearray((model / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (model / "model.safetensors").write_bytes(bytes(weights))
    assert model_digest(model) != digest
    assert main(["registry", "publish", str(env["root"] / "model"), "--registry", env["url"], "--identity", env["id"],
                 "--out", str(tmp_path / "m.json")]) == 0  # fmt: skip
    assert load_receipt(tmp_path / "m.json").entry.digest == model_digest(env["root"] / "model")
    mk, vk = bounded_keygen(("a", "b"), (1, 4, 4), sets=2, set_size=3, seed=1)
    reveal = RevealedSet(vk.key_id, 1, mk.opening([3, 4, 5]), "2025-01-01T00:00:00Z")
    save_reveal(tmp_path / "reveal", reveal)
    assert reveal_file_digest(tmp_path / "reveal") == reveal.reveal_id


def test_verify_reports_the_registration_and_rejects_what_it_cannot_bind(env, tmp_path, capsys):
    root = env["root"]
    model, _ = load_model(root / "model")
    # a key with labels read off the model: it verifies on the numbers
    images = torch.rand(30, 1, 8, 8)
    predictions = [int(p) for p in classify(model, images, 10)]
    save_key_pair(tmp_path / "k", *keygen([str(i) for i in range(10)], (1, 8, 8), size=30, images=images,
                                         labels=predictions), pngs=False)  # fmt: skip
    args = ["registry", "publish", tmp_path / "k", "--registry", env["url"], "--identity", env["id"],
            "--out", tmp_path / "k" / KEY_RECEIPT_FILE]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    verify_args = ["watermark", "verify", root / "model", "--key", tmp_path / "k"]
    code, plain = run_json(verify_args, capsys)
    assert code == 0 and NOT_BOUND_NOTE in plain["notes"] and "registration" not in plain["metrics"]
    bound = [*verify_args, "--receipt", tmp_path / "k" / KEY_RECEIPT_FILE, "--log-key", env["pub"]]
    code, verdict = run_json([*bound, "--first-seen", "2099-01-01"], capsys)
    registration = verdict["metrics"]["registration"]
    assert code == 0 and registration["valid"] and registration["kind"] == "watermark-key"
    assert registration["submitter_fingerprint"] == load_identity(env["id"]).fingerprint
    assert any(n.startswith("registered on the log test.example/wm as entry") for n in verdict["notes"])
    assert NOT_BOUND_NOTE not in verdict["notes"] and any("it existed before the model" in n for n in verdict["notes"])
    # chosen labels registered after the model's first appearance: worthless
    code, verdict = run_json([*bound, "--first-seen", "2020-01-01"], capsys)
    assert code == 1 and any("worthless" in r for r in verdict["reasons"])
    # a receipt of another artefact, or checked with another log's key, binds nothing
    other = tmp_path / "other"
    save_key_pair(other, *keygen(("a", "b"), (1, 8, 8), size=4, seed=3), pngs=False)
    assert main(["registry", "publish", str(other), "--registry", env["url"], "--identity", env["id"],
                 "--out", str(tmp_path / "other.json")]) == 0  # fmt: skip
    code, verdict = run_json([*verify_args, "--receipt", tmp_path / "other.json", "--log-key", env["pub"]], capsys)
    assert code == 1 and any("a receipt is evidence only for the artefact" in r for r in verdict["reasons"])
    assert NOT_BOUND_NOTE in verdict["notes"]
    assert main(["registry", "init-log", "--out", str(tmp_path / "x.key"), "--origin", "test.example/wm"]) == 0
    code, verdict = run_json([*bound[:-1], tmp_path / "x.key.pub"], capsys)
    assert code == 1 and any("no signature by a trusted key" in r for r in verdict["reasons"])


def test_a_registered_reveal_is_public_from_its_registration(env, tmp_path, capsys):
    log_key = load_log_key(env["pub"])
    mk, vk = bounded_keygen([str(i) for i in range(10)], (1, 8, 8), sets=2, set_size=3)
    # a reveal dated a few minutes ahead (within the clock skew a verifier tolerates), registered now
    ahead = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reveal = RevealedSet(vk.key_id, 0, mk.opening([0, 1, 2]), ahead)
    receipt = register_reveal(RegistryClient(env["url"]), load_identity(env["id"]), reveal).receipt
    registered = receipt.entry.time
    seen = registered + timedelta(seconds=1)  # the model appeared after the registration, before the reveal's date
    binding = bind_reveal(reveal, receipt, log_key, first_seen=seen)
    assert binding.registration is not None and any("public by its registration" in r for r in binding.reasons)
    assert bind_reveal(reveal, receipt, log_key, first_seen=registered - timedelta(seconds=1)).reasons == ()
    # a reveal receipt is not a key receipt
    key = bind_key(vk, receipt, log_key)
    assert key.registration is None and any("not a 'watermark-key'" in r for r in key.reasons)
    # from the CLI: pverify --reveal-receipt names the registration
    save_key_pair(tmp_path / "b", mk, vk, pngs=False)
    save_reveal(tmp_path / "r", reveal)
    save_receipt(tmp_path / "r.json", receipt)
    args = ["watermark", "pverify", env["root"] / "model", "--key", tmp_path / "b", "--reveal", tmp_path / "r",
            "--reveal-receipt", tmp_path / "r.json", "--log-key", env["pub"]]  # fmt: skip
    code, verdict = run_json([*args, "--first-seen", seen.strftime("%Y-%m-%dT%H:%M:%S.%fZ")], capsys)
    assert code == 1 and verdict["metrics"]["reveal_registration"]["index"] == receipt.entry.index
    assert verdict["metrics"]["counts"] is False and any("public by its registration" in r for r in verdict["reasons"])
    assert NOT_BOUND_NOTE in verdict["notes"]  # the key itself was not shown registered


def test_registry_options_are_checked_before_anything_is_made(env, tmp_path, capsys):
    key = ["watermark", "keygen", "--data", "digits", "--size", "4", "--out", str(tmp_path / "k")]
    assert main([*key, "--registry", env["url"]]) == 2
    assert "--identity" in capsys.readouterr().err and not (tmp_path / "k").exists()
    assert main([*key, "--identity", env["id"]]) == 2
    # an unreachable log: the key is kept, and the message says how to register it later
    assert main([*key, "--registry", "http://127.0.0.1:9", "--identity", env["id"]]) == 2
    err = capsys.readouterr().err
    assert "NOT registered" in err and "registry publish" in err and (tmp_path / "k" / "verification_key.json").exists()
    assert not (tmp_path / "k" / KEY_RECEIPT_FILE).exists()
    verify_args = ["watermark", "verify", str(env["root"] / "model"), "--key", str(tmp_path / "k")]
    assert main([*verify_args, "--receipt", str(tmp_path / "x.json")]) == 2
    assert "--log-key" in capsys.readouterr().err
    assert main([*verify_args, "--first-seen", "2020-01-01"]) == 2
    assert "--receipt" in capsys.readouterr().err
    mk, vk = load_marking_key(tmp_path / "k"), load_verification_key(tmp_path / "k")
    assert verify(mk, vk, load_model(env["root"] / "model")[0]).notes[-1] == NOT_BOUND_NOTE
