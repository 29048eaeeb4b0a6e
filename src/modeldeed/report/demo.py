"""The demo's report: what the owner proved, what each attack did, and what each spoof got past."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import write_bytes_atomic
from .figures import grouped_bars
from .html import Page


def build_demo_report(results: dict[str, Any], path: str | Path) -> Path:
    page = Page("modeldeed demo — who owns this model?")
    model, setting = results["model"], results["setting"]
    page.paragraph(
        f"A cnn trained from scratch on the embedded digits data ({setting['epochs']} epochs, batch "
        f"{setting['batch_size']}, {model['steps']} steps, seed {setting['seed']}) with two watermarks (a private "
        f"key of {setting['trigger_size']} triggers, a public cut-and-choose key with n = "
        f"{setting['public_security_bits']}), recording a proof-of-learning (a checkpoint every "
        f"{setting['checkpoint_every']} steps). Test accuracy {100 * model['test_accuracy']:.2f} %.",
        css="note",
    )
    watermark_section(page, results["watermark"])
    if results.get("zk"):
        zk_section(page, results["zk"])
    proof_section(page, results["proof"])
    attacks_section(page, results.get("attacks", []))
    spoofs_section(page, results.get("spoofs", []), results["proof"])
    page.heading("Time per stage")
    page.table(["stage", "seconds"], [[k, float(v)] for k, v in results.get("seconds", {}).items()])
    path = Path(path)
    write_bytes_atomic(path, page.render().encode())
    return path


def watermark_section(page: Page, wm: dict[str, Any]) -> None:
    page.heading("The owner proves ownership: watermark verification")
    rows = []
    for name, v in (
        ("private Verify (judge sees the key)", wm["private"]),
        ("public PVerify (cut-and-choose)", wm["public"]),
    ):
        rows.append(
            [
                name,
                v["accepted"],
                100 * v["trigger_accuracy"],
                f"{v['agreements']}/{v['triggers']}",
                v["threshold"],
                _sci(v.get("chance_probability")),
            ]
        )
    page.table(
        ["verifier", "accepted", "trigger accuracy", "agreements", "needed", "chance a clean model passes"], rows
    )


def zk_section(page: Page, zk: dict[str, Any]) -> None:
    """PVerify of a digits MLP twice: cut-and-choose in the clear, and in zero knowledge (modeldeed.zk)."""
    page.heading("Public verification without revealing the triggers: zero knowledge")
    clear, proof = zk["cut_and_choose"], zk["zero_knowledge"]
    page.paragraph(
        f"A second model, an {zk['architecture']} (test accuracy {100 * zk['test_accuracy']:.2f} %), watermarked "
        f"with a cut-and-choose key whose {zk['hidden_triggers']} hidden triggers are also Poseidon-committed. The "
        "clear check needs the marking key and shows the hidden triggers to whoever runs it; the zero-knowledge "
        "check needs only the public key, the model and the proof.",
        css="note",
    )
    rows = [
        ["PVerify, hidden half in the clear", clear["accepted"], f"{clear['agreements']}/{clear['triggers']}",
         clear["threshold"], "all hidden triggers", "-", "-"],
        ["PVerify, hidden half in zero knowledge", proof["accepted"],
         f"at least {proof['proven_at_least']}/{proof['hidden']}", proof["required"], "none",
         f"{zk['proof']['bytes']:,} B", f"{zk['proof']['prove_seconds']} s / {zk['proof']['verify_seconds']} s"],
    ]  # fmt: skip
    header = ["verifier", "accepted", "classified as committed", "needed", "revealed", "proof", "prove / verify"]
    page.table(header, rows)


def proof_section(page: Page, proof: dict[str, Any]) -> None:
    page.heading("The owner proves the training: proof-of-learning verification")
    page.table(
        ["policy", "accepted", "failed checks", "replayed intervals", "max normalised l2 error"],
        [
            [
                name,
                v["accepted"],
                ", ".join(v["failed"]) or "none",
                v["replayed_intervals"],
                _num(v["max_normalised_error"].get("l2")),
            ]
            for name, v in proof.items()
        ],
    )


def attacks_section(page: Page, attacks: list[dict[str, Any]]) -> None:
    if not attacks:
        return
    page.heading("The attacker tries to remove the watermark")
    page.paragraph(
        "An attack removes the watermark iff Verify rejects AND test accuracy dropped by less than 5 "
        "points (Watermark-Robustness-Toolbox rule). Trigger accuracy with the attacker's head (what a "
        "thief deploys); transfer learning is verified with the original head, as in the paper.",
        css="note",
    )
    page.table(
        ["attack", "test before", "test after", "trigger accuracy", "still verified", "removed", "seconds"],
        [
            [
                a["label"],
                100 * a["test_accuracy_before"],
                100 * a["test_accuracy_after"],
                100 * a["trigger_accuracy"],
                a["accepted"],
                a["watermark_removed"],
                a["wall_seconds"],
            ]
            for a in attacks
        ],
    )
    page.figure(
        grouped_bars(
            [a["label"] for a in attacks],
            {
                "test accuracy": [100 * a["test_accuracy_after"] for a in attacks],
                "trigger accuracy": [100 * a["trigger_accuracy"] for a in attacks],
            },
            ylabel="accuracy (%)",
            title="After each removal attack",
        ),
        "Test and trigger accuracy after each attack.",
    )


def spoofs_section(page: Page, spoofs: list[dict[str, Any]], proof: dict[str, Any]) -> None:
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
            proof["reference"]["accepted"],
            proof["hardened"]["accepted"],
            ", ".join(proof["hardened"]["failed"]) or "none",
            None,
            None,
            _num(proof["reference"]["max_normalised_error"].get("l2")),
        ]
    ]
    for s in spoofs:
        ratio = s.get("cost_ratio") or {}
        rows.append(
            [
                s["method"],
                s["reference"]["accepted"],
                s["hardened"]["accepted"] if s["hardened"] else None,
                ", ".join(s["hardened"]["failed"]) if s["hardened"] else "–",
                _num(ratio.get("gradient_evaluations")),
                _num(ratio.get("wall_time")),
                _num(s["reference"]["max_normalised_error"].get("l2")),
            ]
        )
    page.table(
        [
            "proof",
            "reference accepts",
            "hardened accepts",
            "hardened checks failed",
            "cost / honest (gradients)",
            "cost / honest (wall)",
            "max normalised l2 error",
        ],
        rows,
    )


def _num(value: Any) -> float | str | None:
    return float(value) if isinstance(value, (int, float)) else value


def _sci(value: Any) -> str:
    return f"{value:.2e}" if isinstance(value, (int, float)) else "–"
