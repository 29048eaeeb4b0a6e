"""The demo's report: the verdict first, then the evidence that ties the page to its files, then the detail of
what the owner proved, what each attack did and what each spoof got past.

Everything on the page is computed from results.json (and, for the trigger grid, the run's marking key): the
verdict's sentences by `report.verdict`, the commands by `experiments.evidence`.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from ..files import write_bytes_atomic
from . import demo_figures
from .html import Page
from .verdict import accepted_word, attack_outcome, demo_claims, pirate_mark

log = logging.getLogger(__name__)


def build_demo_report(
    results: dict[str, Any], path: str | Path, *, run: str | Path | None = None, files: str | Path | None = None
) -> Path:
    """Write the report of a demo run to `path`.

    `files` is the directory holding the run's files (default: the report's directory); `run` is how commands
    on the page name that directory (default: `files`), e.g. the final name of a run still being built.
    """
    path = Path(path)
    files = Path(files) if files is not None else path.parent
    run = run if run is not None else files
    page = Page("modeldeed demo — who owns this model?")
    page.verdict([(c.holds, c.sentence) for c in demo_claims(results)])
    describe_run(page, results)
    evidence_section(page, results, run)
    watermark_section(page, results, files)
    if results.get("zk"):
        zk_section(page, results["zk"])
    proof_section(page, results)
    attacks_section(page, results)
    spoofs_section(page, results)
    notes_section(page, results)
    write_bytes_atomic(path, page.render().encode())
    return path


def describe_run(page: Page, results: dict[str, Any]) -> None:
    model, setting = results["model"], results["setting"]
    page.paragraph(
        f"A cnn trained from scratch on the embedded digits data ({setting['epochs']} epochs, batch "
        f"{setting['batch_size']}, {model['steps']} steps, seed {setting['seed']}) with two watermarks (a private "
        f"key of {setting['trigger_size']} triggers, a public cut-and-choose key with n = "
        f"{setting['public_security_bits']}), recording a proof-of-learning (a checkpoint every "
        f"{setting['checkpoint_every']} steps). Test accuracy {100 * model['test_accuracy']:.2f} %. Attacks ran "
        f"{setting['attack_epochs']} epochs where they train.",
        css="note",
    )


def evidence_section(page: Page, results: dict[str, Any], run: str | Path) -> None:
    evidence = results.get("evidence")
    if not evidence:
        return
    machine = results.get("machine", {})
    page.heading("Evidence")
    keys = evidence["keys"]
    page.definitions(
        [
            ("model SHA-256", f"{evidence['model']['sha256']}  ({evidence['model']['path']})"),
            (
                "private key id",
                f"{keys['private']['key_id']}  ({keys['private']['path']}, {keys['private']['scheme']})",
            ),
            ("public key id", f"{keys['public']['key_id']}  ({keys['public']['path']}, {keys['public']['scheme']})"),
            (
                "keys",
                "derived from seed " + str(evidence["key_seed"]) + ": for demonstration only"
                if evidence.get("demonstration_keys")
                else "drawn from the operating system's secure random source",
            ),
            ("proof id", f"{evidence['proof']['proof_id']}  ({evidence['proof']['path']})"),
            ("statement id", f"{evidence['statement']['statement_id']}  ({evidence['statement']['path']})"),
            (
                "modeldeed / torch / Python",
                f"{machine.get('modeldeed')} / {machine.get('torch')} / {machine.get('python')}",
            ),
            ("device", f"{machine.get('device')}; {machine.get('platform')}"),
            ("date (UTC)", str(results.get("started", "–"))),
        ]
    )
    registry = evidence.get("registry") or {}
    entries = registry.get("entries") or []
    page.heading("Registration", level=3)
    if entries:
        page.table(
            ["artefact", "kind", "digest", "log index", "registered at (UTC)", "receipt"],
            [
                [e.get("artefact"), e.get("kind"), e.get("digest"), e.get("log_index"), e.get("registered_at"),
                 e.get("receipt")]
                for e in entries
            ],
        )  # fmt: skip
        page.paragraph(
            f"Registered by submitter {registry.get('submitter', '–')} on the log {registry.get('log', '–')} (its "
            f"public key: {registry.get('log_key', '–')}), in this order: the keys and the training statement "
            "before training, the proof commitment and the model after it; the hardened verifier drew its "
            "challenge from the log's beacon for the registered commitment. This log is the demo's own, run on "
            "loopback for the length of the run: it shows the mechanism, and convinces no one else of the times. "
            "A real owner registers on a log that others run and audit (docs/registry.md).",
            css="note",
        )
    else:
        page.table(
            ["artefact", "registry receipt", "registered at"],
            [
                [name, registry.get("status", "not registered"), "–"]
                for name in ("private key", "public key", "training statement", "proof")
            ],
        )
        page.paragraph(
            "Nothing in this run was registered on a transparency log, so nothing here proves when the keys and "
            "the statement existed: a watermark or proof shows who can verify, not who came first.",
            css="note",
        )
    page.heading("Re-check each claim", level=3)
    page.paragraph(
        "Each command below re-runs one check on the files of this run (after set-up the command is "
        ".venv/bin/modeldeed, or modeldeed in an activated environment). Exit status 0: accepted, 1: rejected.",
        css="note",
    )
    for c in evidence.get("commands", []):
        expect = (
            "" if c["expect"] is None else f" — exits {c['expect']} ({'accepted' if c['expect'] == 0 else 'rejected'})"
        )
        page.paragraph(f"{c['claim']}{expect}" + (f"; {c['note']}" if c["note"] else ""))
        if c["argv"]:
            page.code(command_line(c["argv"], run))


def watermark_section(page: Page, results: dict[str, Any], files: Path) -> None:
    wm = results["watermark"]
    page.heading("The owner proves ownership: watermark verification")
    rows = []
    for name, v in (
        ("private Verify (judge sees the key)", wm["private"]),
        ("public PVerify (cut-and-choose)", wm["public"]),
    ):
        rows.append(
            [
                name,
                accepted_word(v["accepted"]),
                f"{100 * v['trigger_accuracy']:.2f}",
                f"{v['agreements']} of {v['triggers']}",
                v["threshold"],
                _sci(v.get("chance_probability")),
            ]
        )
    page.table(
        ["verifier", "verdict", "trigger accuracy (%)", "agreements", "needed", "chance a clean model passes"], rows
    )
    grid = trigger_images(files)
    if grid is not None:
        images, labels, classes = grid
        predictions = wm["private"].get("trigger_predictions")
        page.figure(
            demo_figures.trigger_grid(images, labels, predictions, classes),
            "The private key's trigger set, each image under its committed label: green where the model answers "
            "that label, red where it does not. (Shown because this is a demonstration: a real owner reveals the "
            "trigger set only to the judge.)",
        )


def trigger_images(files: Path) -> tuple[Any, list[int], tuple[str, ...]] | None:
    """The private marking key's images and labels, or None (with a log line) when the run has no key."""
    from ..errors import ModeldeedError
    from ..watermark import load_marking_key

    try:
        key = load_marking_key(files / "keys" / "private")
    except ModeldeedError as exc:
        log.info("no trigger grid: %s", exc)
        return None
    return key.images.numpy(), [int(v) for v in key.labels], key.classes


def zk_section(page: Page, zk: dict[str, Any]) -> None:
    """The demo's zero-knowledge stage: PVerify of a digits MLP, the hidden half in the clear and in zero knowledge."""
    page.heading("Public verification without revealing the triggers: zero knowledge")
    if "skipped" in zk:  # never a silent absence: the reader learns that, and why, it did not run
        page.paragraph(f"Zero-knowledge public verification {zk['skipped']}.", css="note")
        return
    clear, proof = zk["cut_and_choose"], zk["zero_knowledge"]
    page.paragraph(
        f"A second model, an {zk['architecture']} (test accuracy {100 * zk['test_accuracy']:.2f} %), watermarked "
        f"with a cut-and-choose key whose {zk['hidden_triggers']} hidden triggers are also Poseidon-committed. The "
        "clear check needs the marking key and shows the hidden triggers to whoever runs it; the zero-knowledge "
        "check needs only the public key, the model and the proof (docs/zk.md).",
        css="note",
    )
    timing = f"{zk['proof']['prove_seconds']} s / {zk['proof']['verify_seconds']} s"
    rows = [
        ["PVerify, hidden half in the clear", accepted_word(clear["accepted"]),
         f"{clear['agreements']}/{clear['triggers']}", clear["threshold"], "all hidden triggers", "–", "–"],
        ["PVerify, hidden half in zero knowledge", accepted_word(proof["accepted"]),
         f"at least {proof['proven_at_least']}/{proof['hidden']}", proof["required"], "none",
         f"{zk['proof']['bytes']:,} B", timing],
    ]  # fmt: skip
    header = ["verifier", "outcome", "classified as committed", "needed", "revealed", "proof", "prove / verify"]
    page.table(header, rows)


def proof_section(page: Page, results: dict[str, Any]) -> None:
    proof = results["proof"]
    page.heading("The owner proves the training: proof-of-learning verification")
    page.table(
        ["policy", "verdict", "failed checks", "replayed intervals", "max error / d_ref (l2)", "max error / update"],
        [
            [
                name,
                accepted_word(v["accepted"]),
                ", ".join(v["failed"]) or "none",
                v["replayed_intervals"],
                _float(v["max_normalised_error"].get("l2")),
                _float(v.get("max_relative_error")),
            ]
            for name, v in proof.items()
        ],
    )
    page.paragraph(
        "An error of exactly 0 means the replay reproduced the checkpoint bit for bit (same thread count as the "
        "recording).",
        css="note",
    )


def attacks_section(page: Page, results: dict[str, Any]) -> None:
    attacks = results.get("attacks", [])
    if not attacks:
        return
    private = results["watermark"]["private"]
    threshold = private["threshold"] / private["triggers"]
    before = attacks[0]["test_accuracy_before"]
    page.heading("The attacker tries to remove the watermark")
    page.paragraph(
        "An attack removes the watermark iff Verify rejects AND test accuracy dropped by less than 5 "
        "points (Watermark-Robustness-Toolbox rule). Trigger accuracy with the attacker's head (what a "
        "thief deploys); transfer learning is verified with the original head, as in the paper. Piracy rows "
        "show both marks: the owner's trigger set and the pirate's own.",
        css="note",
    )
    rows = []
    for a in attacks:
        pirate = pirate_mark(a)
        rows.append(
            [
                a["label"],
                f"{100 * a['test_accuracy_before']:.2f}",
                f"{100 * a['test_accuracy_after']:.2f}",
                f"{100 * a['trigger_accuracy']:.0f} ({accepted_word(a['accepted'])})",
                "–"
                if pirate is None
                else f"{100 * pirate['trigger_accuracy']:.0f} ({accepted_word(pirate['accepted'])})",
                attack_outcome(a),
                _seconds(a["wall_seconds"]),
            ]
        )
    page.table(
        ["attack", "test before (%)", "test after (%)", "owner's mark (%)", "pirate's mark (%)", "outcome", "seconds"],
        rows,
    )
    page.figure(
        demo_figures.attack_accuracy(attacks, threshold, before),
        "Test and trigger accuracy after each attack. Removed attacks are named in red.",
    )
    sweeps = results.get("sweeps", [])
    if sweeps:
        page.figure(
            demo_figures.strength_curves(sweeps, threshold, before),
            "Accuracy against attack strength (as Adi et al. Fig. 6 and the Watermark-Robustness-Toolbox plot "
            "it): the watermark is removed only where trigger accuracy falls below the Verify threshold while "
            "test accuracy stays above the dotted line.",
        )


def spoofs_section(page: Page, results: dict[str, Any]) -> None:
    spoofs, proof = results.get("spoofs", []), results["proof"]
    if not spoofs:
        return
    page.heading("The attacker forges a proof-of-learning for the stolen model")
    page.paragraph(
        "Each spoof is judged by the real verifier twice: as the reference implementation does it "
        "(top-Q by update size, calibrated delta, data supplied by the prover) and with the hardened "
        "policy (committed data and seed, Fiat-Shamir intervals, relative error, update profile).",
        css="note",
    )
    rows = [
        [
            "honest (owner)",
            accepted_word(proof["reference"]["accepted"]),
            accepted_word(proof["hardened"]["accepted"]),
            ", ".join(proof["hardened"]["failed"]) or "none",
            None,
            None,
            _float(proof["reference"]["max_normalised_error"].get("l2")),
        ]
    ]
    for s in spoofs:
        ratio = s.get("cost_ratio") or {}
        hardened = s.get("hardened")
        rows.append(
            [
                s["method"],
                accepted_word(s["reference"]["accepted"]),
                accepted_word(hardened["accepted"]) if hardened else "–",
                ", ".join(hardened["failed"]) if hardened else "–",
                _float(ratio.get("gradient_evaluations")),
                _float(ratio.get("wall_time")),
                _float(s["reference"]["max_normalised_error"].get("l2")),
            ]
        )
    page.table(
        [
            "proof",
            "reference verifier",
            "hardened verifier",
            "hardened checks failed",
            "cost / honest (gradients)",
            "cost / honest (wall)",
            "max error / d_ref (l2)",
        ],
        rows,
    )
    reference = [("honest", proof["reference"])] + [(s["method"], s["reference"]) for s in spoofs]
    hardened = [("honest", proof["hardened"])] + [(s["method"], s["hardened"]) for s in spoofs if s.get("hardened")]
    bound = proof["hardened"].get("max_relative_error_allowed", 0.1)
    if any(v.get("replays") for _, v in reference):
        page.figure(
            demo_figures.replay_errors(reference, hardened, bound),
            "Every replayed interval of every proof. Left: the reference verifier compares the replay's distance "
            "to the next checkpoint with δ (relative to d_ref) and accepts every spoof. Right: the hardened "
            "verifier compares it with the interval's own update, which a spoof's replay cannot reproduce.",
        )
    profiles = [("honest", proof["hardened"], _check(proof["hardened"], "update_profile"))] + [
        (s["method"], s["hardened"], _check(s["hardened"], "update_profile")) for s in spoofs if s.get("hardened")
    ]
    if any(v.get("profile") for _, v, _ in profiles):
        page.figure(
            demo_figures.update_profiles(profiles),
            "The update profile: how far the weights move in each interval. Honest training moves a lot early and "
            "less after each learning-rate drop; spoofs that place checkpoints on a line move by equal small steps.",
        )
    page.figure(
        demo_figures.spoof_costs(spoofs),
        "Below 1: cheaper than training the model honestly. Attack I runs one round of 20 L-BFGS iterations here "
        "(the reference runs 10 rounds of 100).",
    )


def notes_section(page: Page, results: dict[str, Any]) -> None:
    seconds = results.get("seconds", {})
    if results.get("notes"):
        page.heading("Notes from the run")
        for note in results["notes"]:
            page.paragraph(note, css="note")
    page.heading("Time per stage")
    page.table(["stage", "seconds"], [[k, _seconds(v)] for k, v in seconds.items()])


def command_line(argv: list[str], run: str | Path) -> str:
    """The shell line for a command of results.json, with "{run}" replaced by the run directory."""
    return "modeldeed " + " ".join(shlex.quote(a.replace("{run}", str(run))) for a in argv)


def _check(verdict: dict[str, Any] | None, name: str) -> str | None:
    return None if not verdict else verdict.get("checks", {}).get(name)


def _float(value: Any) -> float | str | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:.2f}" if value >= 0.01 else "< 0.01"


def _sci(value: Any) -> str:
    return f"{value:.2e}" if isinstance(value, (int, float)) else "–"
