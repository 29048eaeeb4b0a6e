"""`modeldeed registry ...` end to end: a real `registry serve` process, and the commands run against it."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from registry_server import ProcessServer, ThreadServer

from modeldeed.cli import main
from modeldeed.files import canonical_json
from modeldeed.registry import RegistryClient, json_digest
from modeldeed.registry.logkey import load_signer_key
from modeldeed.watermark import keygen, load_verification_key, save_key_pair


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry-cli")
    assert main(["registry", "init-log", "--out", str(root / "log.key"), "--origin", "test.example/log"]) == 0
    server = ProcessServer(f"sqlite:///{root / 'registry.db'}", root / "log.key")
    assert main(["registry", "keygen", "--out", str(root / "alice")]) == 0
    yield {"root": root, "url": server.url, "pub": str(root / "log.key.pub"), "alice": str(root / "alice")}
    server.stop()


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4))
    return path


def publish(env, artefact, out, *extra):
    return main(["registry", "publish", str(artefact), "--registry", env["url"], "--identity", env["alice"],
                 "--out", str(out), "--log-key", env["pub"], *extra])  # fmt: skip


def test_keys_are_private_and_not_overwritten(env, capsys):
    root = env["root"]
    assert stat.S_IMODE(os.stat(root / "log.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "alice" / "identity.key").st_mode) == 0o600
    assert main(["registry", "keygen", "--out", env["alice"]]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["registry", "init-log", "--out", str(root / "log.key")]) == 2


def test_publish_and_verify_kinds(env, tmp_path, capsys):
    # a document that says it is a training statement is validated as one before anything is registered
    fake = write_json(tmp_path / "fake.json", {"format": "modeldeed.pol-statement", "version": 1, "x": 1})
    assert publish(env, fake, tmp_path / "r0.json") == 2
    assert "fake.json: field 'version'" in capsys.readouterr().err and not (tmp_path / "r0.json").exists()
    statement = write_json(tmp_path / "statement.json", {"format": "my-statement", "version": 1, "x": 1})
    assert publish(env, statement, tmp_path / "r1.json", "--kind", "pol-statement") == 0
    receipt = json.loads((tmp_path / "r1.json").read_text())
    assert receipt["entry"]["kind"] == "pol-statement"
    # canonical JSON: indentation does not matter, the parsed document does
    assert receipt["entry"]["digest"] == json_digest(json.loads(canonical_json(json.loads(statement.read_text()))))
    key_dir = tmp_path / "key"
    save_key_pair(key_dir, *keygen(("a", "b"), (1, 4, 4), size=4, seed=0), pngs=False)
    assert publish(env, key_dir, tmp_path / "r2.json") == 0
    entry = json.loads((tmp_path / "r2.json").read_text())["entry"]
    assert entry["kind"] == "watermark-key"
    # the validated key's canonical JSON, never the secret marking key
    assert entry["digest"] == hashlib.sha256(load_verification_key(key_dir).canonical_bytes()).hexdigest()
    write_json(key_dir / "marking_key.json", {"secret": 2})
    vk_text = (key_dir / "verification_key.json").read_text()
    (key_dir / "verification_key.json").write_text(json.dumps(json.loads(vk_text), indent=7))  # layout only
    assert main(["registry", "verify", str(tmp_path / "r2.json"), "--log-key", env["pub"], "--artefact",
                 str(key_dir)]) == 0  # fmt: skip
    write_json(key_dir / "verification_key.json", {**json.loads(vk_text), "epsilon": 0.2})
    assert main(["registry", "verify", str(tmp_path / "r2.json"), "--log-key", env["pub"], "--artefact",
                 str(key_dir)]) == 1  # fmt: skip
    assert "hashes to" in capsys.readouterr().out
    unknown = write_json(tmp_path / "other.json", {"format": "something-else"})
    assert publish(env, unknown, tmp_path / "r3.json") == 2
    assert "--kind" in capsys.readouterr().err
    assert publish(env, unknown, tmp_path / "r3.json", "--kind", "claim") == 0
    assert publish(env, key_dir, tmp_path / "r4.json", "--kind", "model") == 2  # contradicts its format
    # publishing again returns the earlier entry
    assert publish(env, statement, tmp_path / "r5.json", "--kind", "pol-statement") == 0
    assert "already registered" in capsys.readouterr().out
    assert json.loads((tmp_path / "r5.json").read_text()) == receipt


def test_verify_rejects_edited_truncated_and_foreign_receipts(env, tmp_path, capsys):
    claim = write_json(tmp_path / "claim.json", {"format": "my-claim", "n": 1})
    assert publish(env, claim, tmp_path / "r.json", "--kind", "claim") == 0
    capsys.readouterr()
    verify = ["registry", "verify", str(tmp_path / "r.json"), "--log-key", env["pub"]]
    assert main([*verify, "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["valid"] and len(verdict["beacon"]) == 64
    original = (tmp_path / "r.json").read_text()
    receipt = json.loads(original)
    receipt["entry"]["integrated_time"] = "2001-01-01T00:00:00.000000Z"  # backdated
    (tmp_path / "r.json").write_text(json.dumps(receipt))
    assert main(verify) == 1
    assert "does not lead to the checkpoint's root" in capsys.readouterr().out
    (tmp_path / "r.json").write_text(original[: len(original) // 2])
    assert main(verify) == 2
    assert "r.json" in capsys.readouterr().err
    (tmp_path / "r.json").write_text(original)
    assert main(["registry", "init-log", "--out", str(tmp_path / "other.key"), "--origin", "test.example/log"]) == 0
    assert main(["registry", "verify", str(tmp_path / "r.json"), "--log-key", str(tmp_path / "other.key.pub")]) == 1
    assert "trusted key" in capsys.readouterr().out


def test_audit_and_witness_catch_a_forked_log(env, tmp_path, capsys):
    audit = ["registry", "audit", "--registry", env["url"], "--log-key", env["pub"]]
    assert main([*audit, "--out", str(tmp_path / "cp1.json")]) == 0
    assert main(["registry", "init-log", "--witness", "--out", str(tmp_path / "w.key"), "--origin", "w.example/w"]) == 0
    witness = ["registry", "witness", "--registry", env["url"], "--log-key", env["pub"], "--witness-key",
               str(tmp_path / "w.key"), "--state", str(tmp_path / "wstate.json")]  # fmt: skip
    assert main([*witness, "--out", str(tmp_path / "cosigned1.json")]) == 0
    assert json.loads((tmp_path / "cosigned1.json").read_text())["note"].count("\u2014 ") == 2
    claim = write_json(tmp_path / "c.json", {"format": "c", "n": 2})
    assert publish(env, claim, tmp_path / "r.json", "--kind", "claim") == 0
    assert main([*audit, "--since", str(tmp_path / "cp1.json"), "--out", str(tmp_path / "cp2.json")]) == 0
    assert "consistent" in capsys.readouterr().out
    assert main([*witness, "--out", str(tmp_path / "cosigned2.json")]) == 0
    # the same log key over another database: a forked history, as a log showing a second view would sign
    fork = ThreadServer(f"sqlite:///{tmp_path / 'fork.db'}", load_signer_key(env["root"] / "log.key"))
    try:
        size = json.loads((tmp_path / "cp2.json").read_text())["note"].split("\n")[1]
        forked = ["registry", "publish", "--registry", fork.url, "--identity", env["alice"], "--kind", "claim"]
        for i in range(int(size) + 1):
            art = write_json(tmp_path / f"f{i}.json", {"fork": i})
            assert main([*forked[:2], str(art), *forked[2:], "--out", str(tmp_path / f"fr{i}.json")]) == 0
        capsys.readouterr()
        fork_audit = ["registry", "audit", "--registry", fork.url, "--log-key", env["pub"]]
        assert main([*fork_audit, "--since", str(tmp_path / "cp2.json")]) == 1
        assert "rewrote history" in capsys.readouterr().out
        fork_witness = [*witness[:3], fork.url, *witness[4:]]
        assert main([*fork_witness, "--out", str(tmp_path / "cosigned3.json")]) == 1
        assert "NOT cosigned" in capsys.readouterr().out
        # two signed checkpoints of one size with different roots: equivocation, offline
        note = RegistryClient(fork.url).checkpoint(int(size)).note
        write_json(tmp_path / "fork_cp.json", {"format": "modeldeed.registry-checkpoint", "version": 1, "note": note})
        compare = ["registry", "audit", "--log-key", env["pub"], "--since", str(tmp_path / "cp2.json"), "--compare",
                   str(tmp_path / "fork_cp.json")]  # fmt: skip
        assert main(compare) == 1
        assert "equivocation" in capsys.readouterr().out
        assert main([*compare[:-1], str(tmp_path / "cp2.json")]) == 0
    finally:
        fork.stop()
