"""Disputes end to end, from the CLI, against a real registry on loopback.

One story, built once for the module: a party registers an unrelated key first; the owner makes a bounded key
(two sets) with `--registry`, marks a model, publishes the model (its first appearance) and reveals a set
with `--registry`; a forger who saw the model makes a key from images and the model's own predictions
(`--labels`, so it verifies on the numbers) and registers it afterwards. Each test then hands claims to
`modeldeed dispute`.
"""

from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from registry_server import ThreadServer

from modeldeed.cli import main
from modeldeed.dispute.claim import CLAIM_FILE, manifest, sign_claim
from modeldeed.files import canonical_json
from modeldeed.models import load_model
from modeldeed.registry import load_identity
from modeldeed.registry.logkey import load_signer_key
from modeldeed.watermark import load_reveal, load_verification_key, read_trigger_images
from modeldeed.watermark.verify import classify

pytestmark = pytest.mark.slow


def run(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dispute")
    assert main(["registry", "init-log", "--out", str(root / "log.key"), "--origin", "test.example/log"]) == 0
    server = ThreadServer(f"sqlite:///{root / 'registry.db'}", load_signer_key(root / "log.key"))
    w = {"root": root, "url": server.url, "pub": root / "log.key.pub"}
    for who in ("owner", "forger", "early", "thief"):
        assert main(["registry", "keygen", "--out", str(root / who / "id")]) == 0
    registry = ["--registry", server.url, "--log-key", str(w["pub"])]

    def ident(who):
        return ["--identity", str(root / who / "id")]

    try:
        # someone registers a key before anyone else; the model will never carry it
        args = ["watermark", "keygen", "--data", "digits", "--size", "50", "--out", root / "early" / "keys"]
        assert main([str(a) for a in [*args, *registry, *ident("early")]]) == 0
        # the owner: a bounded key of 2 sets x 30, registered, then marked into a model
        args = ["watermark", "pkeygen", "--data", "digits", "--sets", "2", "--size", "30", "--out", root / "owner/keys"]
        assert main([str(a) for a in [*args, *registry, *ident("owner")]]) == 0
        model = root / "owner" / "model"
        assert main(["train", "--data", "digits", "--epochs", "15", "--watermark", str(root / "owner/keys"),
                     "--triggers-per-batch", "6", "--out", str(model), "--no-progress"]) == 0  # fmt: skip
        # the model's first appearance, on the log
        assert main(["registry", "publish", str(model), *ident("owner"), "--out", str(root / "model.receipt.json"),
                     *registry]) == 0  # fmt: skip
        time.sleep(1.1)  # a reveal's own date has whole seconds: make it fall after the model's registration
        assert main(["watermark", "reveal", "--key", str(root / "owner/keys"), "--out", str(root / "owner/reveal"),
                     *registry, *ident("owner")]) == 0  # fmt: skip
        # the forger saw the model: images, labelled with the model's own predictions
        pics = root / "forger" / "pics"
        pics.mkdir(parents=True)
        rng = np.random.default_rng(7)
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(pics / f"img{i:02d}.png")
        images = read_trigger_images(pics, (1, 8, 8)).images
        predictions = classify(load_model(model)[0], images, 10)
        (root / "forger" / "labels.txt").write_text("".join(f"{int(p)}\n" for p in predictions))
        args = ["watermark", "keygen", "--data", "digits", "--images", pics, "--labels", root / "forger/labels.txt",
                "--out", root / "forger/keys"]  # fmt: skip
        assert main([str(a) for a in [*args, *registry, *ident("forger")]]) == 0
        # the claims each party hands the judge
        for name, who, extra in (
            ("owner-public", "owner", ["--reveal", root / "owner/reveal"]),
            ("owner-private", "owner", []),
            ("forger", "forger", []),
            ("early", "early", []),
        ):
            args = ["claim", model, "--watermark", root / who / "keys", *ident(who), "--out", root / "claims" / name,
                    "--log-key", w["pub"], "--name", f"{who} <b>&co</b>", *extra]  # fmt: skip
            assert main([str(a) for a in args]) == 0
        w.update(model=model, claims=root / "claims")
        yield w
    finally:
        server.stop()


def dispute(w, out, *claims, extra=(), capsys=None):
    args = ["dispute", w["model"], "--data", "digits", "--log-key", w["pub"], "--out", out, "--json"]
    for claim in claims:
        args += ["--claim", claim if isinstance(claim, Path) else w["claims"] / claim]
    code, stdout, stderr = run([*args, *extra], capsys)
    assert code == 2 or stdout, stderr
    return code, (json.loads(stdout) if code != 2 else None), stderr


def with_log(w):
    return ["--registry", w["url"], "--model-receipt", w["root"] / "model.receipt.json"]


def reasons_of(judgement, number):
    claim = judgement["claims"][number]
    return " | ".join([*claim["reasons"], *(r for e in claim["evidence"] for r in e["reasons"])])


def test_the_owner_wins_and_the_forger_loses_with_reasons(world, tmp_path, capsys):
    code, j, _ = dispute(world, tmp_path / "j", "forger", "owner-public", extra=with_log(world), capsys=capsys)
    assert code == 0 and j["established"] is True
    assert j["winner"]["claim"] == 1
    owner = load_identity(world["root"] / "owner/id")
    assert j["winner"]["claimant"]["public_key"] == owner.public_key
    assert j["verdict"].startswith("The model ") and owner.fingerprint in j["verdict"]
    assert j["first_appearance"]["registration"]["kind"] == "model"
    assert j["consistency"]["consistent"] is True
    # the forger's key verifies on the numbers, and still does not count: registered after the model, labels chosen
    forger = j["claims"][0]["evidence"][0]
    assert forger["verified"] is True and forger["details"]["agreements"] == forger["details"]["triggers"] == 40
    assert forger["counts"] is False and j["claims"][0]["counts"] is False
    why = reasons_of(j, 0)
    assert "not before the model's first appearance" in why and "cannot show that the claimant's artefact" in why
    assert "labels were chosen by its maker" in why and "worthless" in why
    # the owner's public check: the revealed set, registered after the model appeared
    owner_item = j["claims"][1]["evidence"][0]
    assert owner_item["counts"] and owner_item["details"]["check"].startswith("public verification of revealed set 0")
    assert {r["kind"] for r in owner_item["registrations"]} == {"watermark-key", "watermark-reveal"}
    # both files; the page leads with the verdict and escapes what claimants wrote
    page = (tmp_path / "j" / "judgement.html").read_text()
    body = page.split("<body>", 1)[1]
    # the demo report's layout: the verdict box first, the decision and then one marked line per claim
    verdict = body[body.index('<div class="verdict"') : body.index("</div>")]
    assert body.index('<div class="verdict"') < body.index("<h3>Claim 0")
    items = verdict.split("<li ")[1:]
    assert items[0].startswith(f'class="good">{html.escape(j["verdict"])}')
    assert items[1].startswith('class="bad">Claim 0') and "does not count" in items[1]
    assert items[2].startswith('class="good">Claim 1') and "counts, registered at" in items[2]
    assert "Content-Security-Policy" in page and "<script" not in page
    assert "owner &lt;b&gt;&amp;co&lt;/b&gt;" in page and "<b>&co</b>" not in page
    assert json.loads((tmp_path / "j" / "judgement.json").read_text()) == j


def test_private_check_with_the_marking_key_and_earliest_registration_first(world, tmp_path, capsys):
    # "early" registered first, but its key is not in the model: registration order alone wins nothing
    code, j, _ = dispute(world, tmp_path / "j", "early", "owner-private", extra=with_log(world), capsys=capsys)
    assert code == 0 and j["winner"]["claim"] == 1
    early = j["claims"][0]["evidence"][0]
    assert early["verified"] is False and early["anchor"]["index"] < j["claims"][1]["registration"]["index"]
    assert "verification: only" in reasons_of(j, 0)
    assert j["claims"][1]["evidence"][0]["details"]["check"].startswith("private verification of a bounded key")


def test_the_forger_alone(world, tmp_path, capsys):
    # without a first appearance, chosen labels cannot be shown to predate the model
    code, j, _ = dispute(world, tmp_path / "a", "forger", capsys=capsys)
    assert code == 1 and j["established"] is False and j["winner"] is None
    assert "No ownership" in j["verdict"] and "not read off the model" in reasons_of(j, 0)
    # the judge's own first-seen time, before the forger registered
    code, j, _ = dispute(world, tmp_path / "b", "forger", extra=["--first-seen", "2020-01-01"], capsys=capsys)
    assert code == 1 and "worthless" in reasons_of(j, 0)
    # even registered "in time", chosen labels count only against a reference model (natural images with their
    # true classes, registered before any model existed, would pass on every good model)
    code, j, _ = dispute(world, tmp_path / "c", "forger", extra=["--first-seen", "2099-01-01"], capsys=capsys)
    assert code == 1 and "--reference" in reasons_of(j, 0) and "worthless" not in reasons_of(j, 0)


def test_a_thief_who_copies_the_owners_receipt_loses(world, tmp_path, capsys):
    root = world["root"]
    thief = load_identity(root / "thief/id")
    # the claim command refuses a receipt that the thief's identity did not submit
    args = ["claim", world["model"], "--watermark", root / "owner/keys", "--reveal", root / "owner/reveal",
            "--identity", root / "thief/id", "--out", tmp_path / "refused"]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 2 and "not by your identity" in err
    # so the thief builds one by hand: the owner's public files and receipts, signed with the thief's key
    stolen = tmp_path / "stolen"
    shutil.copytree(world["claims"] / "owner-public", stolen)
    claim = json.loads((stolen / CLAIM_FILE).read_text())
    claim["claimant"] = {"public_key": thief.public_key, "name": "thief"}
    (stolen / CLAIM_FILE).write_bytes(canonical_json(sign_claim(claim, thief)))
    # or keeps the owner's key as the claimant and signs it himself
    posing = tmp_path / "posing"
    shutil.copytree(world["claims"] / "owner-public", posing)
    claim = json.loads((posing / CLAIM_FILE).read_text())
    claim["claimant"]["name"] = "the real owner"
    (posing / CLAIM_FILE).write_bytes(canonical_json(sign_claim(claim, thief)))
    code, j, _ = dispute(world, tmp_path / "j", stolen, posing, extra=with_log(world), capsys=capsys)
    assert code == 1 and j["established"] is False
    assert "receipts are public" in reasons_of(j, 0) and j["claims"][0]["evidence"][0]["verified"] is True
    assert "signature does not verify" in reasons_of(j, 1)
    # against the owner, the owner wins
    code, j, _ = dispute(world, tmp_path / "k", stolen, "owner-public", extra=with_log(world), capsys=capsys)
    assert code == 0 and j["winner"]["claim"] == 1


def test_a_thief_who_registers_the_owners_key_as_his_own_loses(world, tmp_path, capsys):
    root = world["root"]
    # the verification key and the reveal are public: the thief registers the key under his own identity
    public = tmp_path / "public-key"
    public.mkdir()
    shutil.copy(root / "owner/keys/verification_key.json", public)
    args = ["registry", "publish", public, "--registry", world["url"], "--identity", root / "thief/id",
            "--out", public / "verification_key.receipt.json"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    args = ["claim", world["model"], "--watermark", public, "--reveal", root / "owner/reveal",
            "--identity", root / "thief/id", "--out", tmp_path / "claim"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    # alone: the judge asks the log, which holds the owner's earlier registration of the same key
    code, j, _ = dispute(world, tmp_path / "j", tmp_path / "claim", extra=with_log(world), capsys=capsys)
    assert code == 1 and "registered earlier by" in reasons_of(j, 0)
    assert j["claims"][0]["evidence"][0]["verified"] is True


def test_an_edited_receipt_is_refused(world, tmp_path, capsys):
    owner = load_identity(world["root"] / "owner/id")
    edited = tmp_path / "edited"
    shutil.copytree(world["claims"] / "owner-private", edited)
    receipt_path = edited / "evidence-0" / "key.receipt.json"
    receipt = json.loads(receipt_path.read_text())
    receipt["entry"]["integrated_time"] = "2001-01-01T00:00:00.000000Z"  # backdated
    receipt_path.write_text(json.dumps(receipt))
    claim = json.loads((edited / CLAIM_FILE).read_text())
    claim["files"] = manifest(edited)  # the owner re-signs it: the claim itself is in order
    (edited / CLAIM_FILE).write_bytes(canonical_json(sign_claim(claim, owner)))
    code, j, _ = dispute(world, tmp_path / "j", edited, extra=with_log(world), capsys=capsys)
    assert code == 1 and "does not lead to the checkpoint's root" in reasons_of(j, 0)
    # edited by someone else, the claim's own signature no longer covers it
    other = tmp_path / "other"
    shutil.copytree(world["claims"] / "owner-private", other)
    shutil.copy(receipt_path, other / "evidence-0" / "key.receipt.json")
    code, j, _ = dispute(world, tmp_path / "k", other, extra=with_log(world), capsys=capsys)
    assert code == 1 and "changed since the claim was signed" in reasons_of(j, 0)


def test_receipts_of_different_tree_sizes_need_the_registry(world, tmp_path, capsys):
    extra = ["--model-receipt", world["root"] / "model.receipt.json"]
    code, j, _ = dispute(world, tmp_path / "j", "owner-private", extra=extra, capsys=capsys)
    assert code == 1 and j["consistency"]["consistent"] is False and "--registry" in j["verdict"]
    assert j["claims"][0]["counts"] is True  # the claim is fine; only the log's history is unproven


def test_hostile_claim_directories_lose_that_claim_only(world, tmp_path, capsys):
    link = tmp_path / "link"
    shutil.copytree(world["claims"] / "owner-private", link)
    (link / "evidence-0" / "extra").symlink_to("/etc/passwd")
    extra_file = tmp_path / "extra"
    shutil.copytree(world["claims"] / "owner-private", extra_file)
    (extra_file / "evidence-0" / "unsigned.json").write_text("{}")
    big = tmp_path / "big"
    big.mkdir()
    (big / CLAIM_FILE).write_bytes(b" " * (2 << 20))
    code, j, _ = dispute(world, tmp_path / "j", link, extra_file, big, "owner-public", extra=with_log(world),
                         capsys=capsys)  # fmt: skip
    assert code == 0 and j["winner"]["claim"] == 3
    assert "is not a regular file" in reasons_of(j, 0)
    assert "not listed in claim.json" in reasons_of(j, 1)
    assert "more than the 1048576 allowed" in reasons_of(j, 2)


def test_bad_input_from_the_judge_is_exit_2(world, tmp_path, capsys):
    code, _, err = dispute(world, tmp_path / "j", tmp_path / "missing", capsys=capsys)
    assert code == 2 and "is not a claim directory" in err
    # a model receipt of another artefact cannot date this model
    extra = ["--model-receipt", world["root"] / "owner/keys/verification_key.receipt.json"]
    code, _, err = dispute(world, tmp_path / "j", "owner-private", extra=extra, capsys=capsys)
    assert code == 2 and "not a valid registration of the disputed model" in err
    code, _, err = dispute(world, tmp_path / "j", *(["owner-private"] * 33), capsys=capsys)
    assert code == 2 and "at most 32 claims" in err


def test_a_key_built_from_another_claimants_revealed_set_does_not_count(world, tmp_path, capsys):
    root = world["root"]
    # the owner's revealed set is public: the thief saves its images and labels and makes a key of his own from them
    reveal = load_reveal(root / "owner/reveal", load_verification_key(root / "owner/keys"))
    pics = tmp_path / "pics"
    pics.mkdir()
    images = reveal.opening.images
    for i, image in enumerate(images):
        pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(pics / f"t{i:03d}.png")
    (tmp_path / "labels.txt").write_text("".join(f"{int(y)}\n" for y in reveal.opening.labels))
    args = ["watermark", "keygen", "--data", "digits", "--images", pics, "--labels", tmp_path / "labels.txt",
            "--out", tmp_path / "keys", "--registry", world["url"], "--log-key", world["pub"],
            "--identity", root / "thief/id"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    args = ["claim", world["model"], "--watermark", tmp_path / "keys", "--identity", root / "thief/id",
            "--out", tmp_path / "claim"]  # fmt: skip
    assert run(args, capsys)[0] == 0
    code, j, _ = dispute(world, tmp_path / "j", tmp_path / "claim", "owner-public", extra=with_log(world),
                         capsys=capsys)  # fmt: skip
    assert code == 0 and j["winner"]["claim"] == 1
    thief = j["claims"][0]["evidence"][0]
    assert thief["verified"] is True and thief["counts"] is False
    assert f"{len(images)} of its triggers were revealed by claim 1" in reasons_of(j, 0)
    # the owner's own reveal, in the owner's own claim, does not count against the owner
    assert not any("were revealed by" in r for r in j["claims"][1]["evidence"][0]["reasons"])
