"""Real proofs, real node subprocesses, from the command line: an honest proof verifies, and a proof is rejected
for another model, another key, edited public inputs and an edited proof file; a prover cannot prove more than
its model does, nor count a trigger its model gets wrong.

One circuit (digits MLP 64-16-10, 16 slots) is compiled once per session (or taken from $MODELDEED_ZK_CACHE)
and one honest proof is made; everything else reuses them.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from zk_helpers import require_toolchain

from modeldeed.cli import main
from modeldeed.models import load_model, save_model
from modeldeed.watermark import load_key_pair, load_verification_key
from modeldeed.zk import CircuitRefused, load_proof, quantize_mlp
from modeldeed.zk.circuit import circuit_dir, setup
from modeldeed.zk.node import run_node
from modeldeed.zk.statement import challenges, derive_statement, honest_claims
from modeldeed.zk.trust import pins, verifier_directory, vk_sha256
from modeldeed.zk.verifier import verify_chunks

pytestmark = pytest.mark.slow

SLOTS = 16


def cli(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def zk(tmp_path_factory):
    """Keys, a watermarked MLP and an honest proof, all made through the command line."""
    require_toolchain()
    root = tmp_path_factory.mktemp("zk")
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("MODELDEED_ZK_CACHE"):
            patch.setenv("MODELDEED_ZK_CACHE", str(root / "cache"))
        for _attempt in range(5):  # a 12-trigger challenge leaves all or none hidden with probability 2^-11
            code = cli("watermark", "zk-keygen", "--data", "digits", "--security", 3, "--out", root / "keys", "--force")
            if code == 0:
                break
        assert code == 0
        train = ("--epochs", 30, "--batch-size", 32, "--threads", 1, "--no-progress")
        assert cli("train", "--data", "digits", "--model", "mlp", *train, "--watermark", root / "keys",
                   "--out", root / "model") == 0  # fmt: skip
        assert cli("watermark", "zk-prove", root / "model", "--key", root / "keys", "--out", root / "proof.json",
                   "--slots", SLOTS, "--data", "digits") == 0  # fmt: skip
        yield root


def verify_json(zk, capsys, model=None, key=None, proof=None, *extra):
    capsys.readouterr()
    code = cli("watermark", "zk-verify", model or zk / "model", "--public-key", key or zk / "keys",
               "--proof", proof or zk / "proof.json", "--json", *extra)  # fmt: skip
    out = capsys.readouterr().out
    return code, json.loads(out)


CRYPTO = "chunk 0: the proof does not verify"


def test_an_honest_proof_verifies(zk, capsys):
    code, verdict = verify_json(zk, capsys, None, zk / "keys" / "verification_key.json", None, "--data", "digits")
    assert code == 0 and verdict["accepted"] is True and verdict["reasons"] == []
    assert verdict["proven_at_least"] == verdict["required"] >= 1
    assert verdict["test_agreement"]["rate"] >= 0.99 and verdict["metrics"]["proofs_valid"] == [True]
    assert verdict["metrics"]["registration"] is None  # no --receipt: the claim is not bound in time
    assert verdict["metrics"]["circuit_key_pinned"] is True
    proof = load_proof(zk / "proof.json")
    assert proof.quantization.hidden_triggers.rate == 1.0 and len(proof.chunks) == 1
    # nothing secret in the proof file: no trigger image, label or nonce of the hidden half
    mk, _vk = load_key_pair(zk / "keys")
    text = (zk / "proof.json").read_text()
    assert not any(mk.image_nonces[i].hex() in text for i in mk.marking_indices())


def test_rejected_for_another_model(zk, capsys, tmp_path):
    model, info = load_model(zk / "model")
    with torch.no_grad():
        model.layers[1].weight[0, 0] += 0.05
    save_model(tmp_path / "other", model, info)
    code, verdict = verify_json(zk, capsys, tmp_path / "other")
    assert code == 1 and verdict["accepted"] is False
    assert any("quantized digest" in r for r in verdict["reasons"])
    assert any(r.startswith(CRYPTO) for r in verdict["reasons"])  # the cryptography itself rejects it


def test_rejected_for_another_key(zk, capsys, tmp_path):
    for _attempt in range(5):
        if cli("watermark", "zk-keygen", "--data", "digits", "--security", 3, "--out", tmp_path / "k", "--force") == 0:
            break
    code, verdict = verify_json(zk, capsys, None, tmp_path / "k")
    assert code == 1 and any("not for this key" in r for r in verdict["reasons"])
    if load_verification_key(tmp_path / "k").challenge().count(0) <= SLOTS:  # one chunk: the proof is checked
        assert any(r.startswith(CRYPTO) for r in verdict["reasons"])


def edited(zk, tmp_path, edit):
    doc = json.loads((zk / "proof.json").read_text())
    edit(doc["chunks"][0])
    (tmp_path / "proof.json").write_text(json.dumps(doc))
    return tmp_path / "proof.json"


def test_rejected_for_edited_public_inputs(zk, capsys, tmp_path):
    # the threshold t_0 and the challenge seed are the proof file's only public inputs
    lower = edited(zk, tmp_path, lambda c: c.update(threshold=c["threshold"] - 1))
    code, verdict = verify_json(zk, capsys, None, None, lower)
    assert code == 1 and any(r.startswith(CRYPTO) for r in verdict["reasons"])
    seed = edited(zk, tmp_path, lambda c: c.update(seed=str(int(c["seed"]) + 1)))
    code, verdict = verify_json(zk, capsys, None, None, seed)
    assert code == 1 and [r.split(" (")[0] for r in verdict["reasons"]] == [
        f"{CRYPTO} for this key, this model and t = {load_proof(seed).chunks[0].threshold}"
    ]


def test_rejected_for_an_edited_proof_file(zk, capsys, tmp_path):
    def flip(chunk):
        proof = chunk["proof"]
        middle = len(proof) // 2
        chunk["proof"] = proof[:middle] + ("A" if proof[middle] != "A" else "B") + proof[middle + 1 :]

    code, verdict = verify_json(zk, capsys, None, None, edited(zk, tmp_path, flip))
    assert code == 1 and any(r.startswith(CRYPTO) for r in verdict["reasons"])
    (tmp_path / "broken.json").write_text((zk / "proof.json").read_text()[:-40])
    capsys.readouterr()
    assert cli("watermark", "zk-verify", zk / "model", "--public-key", zk / "keys", "--proof",
               tmp_path / "broken.json") == 2  # fmt: skip
    assert "modeldeed: error:" in capsys.readouterr().err


def test_every_public_value_is_bound(zk):
    """The honest public input verifies; changing one more value of it (as the verifier derives it) does not."""
    model, _ = load_model(zk / "model")
    vk = load_verification_key(zk / "keys")
    proof = load_proof(zk / "proof.json")
    statement = derive_statement(vk, quantize_mlp(model), proof.slots)
    chunk = proof.chunks[0]
    ((seed, rhos),) = challenges(statement, [{"seed": chunk.seed}])
    public = statement.public_input(0, chunk.threshold, seed, rhos)
    # the key id and commitments (another key), the digest and Freivalds values (another model), the threshold and
    # the seed (edited proof file) are covered from the command line above; these two are not
    fields = {"chunk number": 5, "an empty slot's active flag": statement.spec.public_size - 2}
    names, positions = list(fields), list(fields.values())
    cases = [(public, chunk.proof)]
    for at in positions:
        changed = list(public)
        changed[at] = str(int(changed[at]) + 1)
        cases.append((changed, chunk.proof))
    key, _ = setup(statement.spec)
    results, _seconds = verify_chunks(key, cases, statement.spec)
    assert results[0]["valid"] is True
    assert [name for name, r in zip(names, results[1:]) if r["valid"]] == []


def test_a_prover_cannot_claim_more_than_the_model_classifies(zk, capsys, tmp_path):
    """From the command line: one more than the hidden triggers goes to the circuit, which refuses it."""
    mk, _vk = load_key_pair(zk / "keys")
    hidden = len(mk.marking_indices())
    capsys.readouterr()
    code = cli("watermark", "zk-prove", zk / "model", "--key", zk / "keys", "--out", tmp_path / "more.json",
               "--slots", SLOTS, "--threshold", hidden + 1)  # fmt: skip
    assert code == 1 and "NOT PROVED: the circuit refuses these inputs" in capsys.readouterr().out
    assert not (tmp_path / "more.json").exists()
    assert cli("watermark", "zk-prove", zk / "model", "--key", zk / "keys", "--out", tmp_path / "more.json",
               "--slots", SLOTS, "--threshold", SLOTS + 1) == 2  # fmt: skip
    assert not (tmp_path / "more.json").exists()


def test_a_prover_cannot_count_a_trigger_the_model_gets_wrong(zk):
    """Claims that are the model's true forward pass, but count a misclassified trigger: the range check fails."""
    mk, vk = load_key_pair(zk / "keys")
    untrained = type(load_model(zk / "model")[0])(1, 10, (8, 8), (16,))  # never saw a trigger
    statement = derive_statement(vk, quantize_mlp(untrained), SLOTS)
    hidden = list(statement.hidden)
    claims = honest_claims(statement, 0, mk.images[hidden], [int(mk.labels[i]) for i in hidden],
                           [mk.image_nonces[i] for i in hidden])  # fmt: skip
    wrong = [s for s in range(len(hidden)) if claims.counted[s] == 0]
    if not wrong:
        pytest.skip("the untrained model happens to classify every hidden trigger as committed")
    claims.counted[wrong[0]] = 1
    threshold = claims.correct
    ((seed, rhos),) = challenges(statement, [{"transcript": claims.transcript(statement.header(0, threshold))}])
    key, _ = setup(statement.spec)
    request = {**statement.spec.request(), "public": statement.public_input(0, threshold, seed, rhos),
               "private": claims.private(), "vk_hash": key.vk_hash}  # fmt: skip
    with pytest.raises(CircuitRefused, match="vanishing polynomial|unsatisfied|assert"):
        run_node("prove", request, circuit_dir(statement.spec))


def test_the_circuit_cache_is_reused(zk):
    vk = load_verification_key(zk / "keys")
    spec = derive_statement(vk, quantize_mlp(load_model(zk / "model")[0]), SLOTS).spec
    key, compiled = setup(spec)
    assert compiled is False and key.circuit_id == load_proof(zk / "proof.json").circuit_id
    assert (circuit_dir(spec) / "circuit_key.json").is_file()
    # the key compiled here is the one modeldeed pins (fails when js/circuit.mjs or the lockfile changed and
    # pins.json was not updated)
    pin = pins()["circuits"][spec.circuit_id()]
    assert vk_sha256(key.vk) == pin["vk_sha256"] and key.wrap_domain_log == pin["wrap_domain_log"]


def hostile_cache(zk, tmp_path, edit):
    """A copy of the session's cache entry (links to its big files), edited by `edit(entry)`."""
    vk = load_verification_key(zk / "keys")
    spec = derive_statement(vk, quantize_mlp(load_model(zk / "model")[0]), SLOTS).spec
    source = circuit_dir(spec)
    entry = tmp_path / "cache" / source.name
    entry.mkdir(parents=True)
    for f in source.iterdir():
        if f.name.startswith(("srs-", "lagrange-", "circuit_key")):
            shutil.copyfile(f, entry / f.name)
        else:
            os.symlink(f, entry / f.name)
    edit(entry)
    return tmp_path / "cache"


def test_a_hostile_cache_cannot_make_verify_accept(zk, capsys, tmp_path, monkeypatch):
    """A cache someone else wrote: another verification key is refused (exit 2), a reference string or basis
    that is not modeldeed's own is never handed to node (it recomputes them), and a bad proof stays rejected."""

    def swap_key(entry):
        doc = json.loads((entry / "circuit_key.json").read_text())
        doc["vk"] = doc["vk"][:-8] + ("AAAAAAA=" if not doc["vk"].endswith("AAAAAAA=") else "BAAAAAA=")
        (entry / "circuit_key.json").write_text(json.dumps(doc))

    monkeypatch.setenv("MODELDEED_ZK_CACHE", str(hostile_cache(zk, tmp_path / "a", swap_key)))
    capsys.readouterr()
    assert cli("watermark", "zk-verify", zk / "model", "--public-key", zk / "keys", "--proof", zk / "proof.json") == 2
    assert "is not the one modeldeed pins" in capsys.readouterr().err

    def corrupt_basis(entry):
        basis = entry / "lagrange-basis-fq-8192"
        data = bytearray(basis.read_bytes())
        data[len(data) // 2] ^= 1
        basis.write_bytes(bytes(data))

    entry = hostile_cache(zk, tmp_path / "b", corrupt_basis)
    with verifier_directory(next(entry.iterdir())) as files:
        assert files.ignored == ("lagrange-basis-fq-8192",) and files.used == ("srs-fq-32768", "srs-fp-65536")
        assert sorted(p.name for p in files.path.iterdir()) == [
            "srs-fp-65536", "srs-fp-65536.header", "srs-fq-32768", "srs-fq-32768.header"
        ]  # fmt: skip
        assert (files.path / "srs-fq-32768").read_bytes() == (next(entry.iterdir()) / "srs-fq-32768").read_bytes()


def test_the_demo_report_shows_the_zero_knowledge_verdict_beside_the_clear_one(zk):
    from modeldeed.report.demo import zk_section
    from modeldeed.report.html import Page
    from modeldeed.watermark import pverify
    from modeldeed.zk import ProofRun, verify_watermark
    from modeldeed.zk.demo import demo_entry

    model, _ = load_model(zk / "model")
    mk, vk = load_key_pair(zk / "keys")
    proof = load_proof(zk / "proof.json")
    verdict = verify_watermark(model, vk, proof)
    clear = pverify(vk, model, marking_key=mk)
    entry = demo_entry(clear, verdict, ProofRun(proof, 0, proof.prove_seconds, None, False), 0.96, 1.0)
    json.dumps(entry)  # plain JSON, as results.json needs
    page = Page("zk")
    zk_section(page, entry)
    html = page.render()
    hidden = len(mk.marking_indices())
    assert clear.accepted and verdict.accepted
    assert "PVerify, hidden half in zero knowledge" in html and f"at least {verdict.proven}/{hidden}" in html
    assert "PVerify, hidden half in the clear" in html and f"{clear.agreements}/{hidden}" in html
