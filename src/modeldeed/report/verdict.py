"""The verdict of a demo run in sentences, computed from its results.json, and the words for each outcome.

The terminal summary and the HTML report both take their words from here, so the same verdict always reads
the same ("still verifies", "removed", ...). Nothing here is written by hand about a particular run: every
count, name and number comes from the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_DROP_POINTS = 5.0  # the success rule of attacks.base (Watermark-Robustness-Toolbox)

STILL_VERIFIES = "still verifies"
REMOVED = "removed"
ACCEPTED = "accepted"
REJECTED = "rejected"


@dataclass(frozen=True)
class Claim:
    """One sentence of the verdict; `holds` is True when it is good news for the owner, False when bad, None
    when it is neither (e.g. a fact about the attacks' cost)."""

    topic: str
    holds: bool | None
    sentence: str


def accepted_word(accepted: bool | None) -> str:
    return "–" if accepted is None else (ACCEPTED if accepted else REJECTED)


def drop_points(attack: dict[str, Any]) -> float:
    if isinstance(attack.get("accuracy_drop_points"), (int, float)):
        return float(attack["accuracy_drop_points"])
    return 100.0 * (attack["test_accuracy_before"] - attack["test_accuracy_after"])


def attack_outcome(attack: dict[str, Any]) -> str:
    """What an attack did to the watermark, in the words every summary uses."""
    if attack["accepted"]:
        return STILL_VERIFIES
    if attack["watermark_removed"]:
        return REMOVED
    return f"fails to verify, at a cost of {drop_points(attack):.1f} accuracy points: not a removal"


def pirate_mark(attack: dict[str, Any]) -> dict[str, Any] | None:
    """The pirate's own verdict (TS-NEW) of a piracy attack, or None for other attacks."""
    pirate = (attack.get("details") or {}).get("pirate")
    return pirate if isinstance(pirate, dict) else None


def _drop(attack: dict[str, Any]) -> str:
    drop = drop_points(attack)
    return f"−{drop:.1f} points" if drop > 0 else f"+{-drop:.1f} points"


def _names(items: list[str]) -> str:
    return ", ".join(items)


def ownership_claim(results: dict[str, Any]) -> Claim:
    wm, proof = results.get("watermark", {}), results.get("proof", {})
    parts, failed = [], []
    for name, label in (("private", "private Verify"), ("public", "public PVerify")):
        if name in wm:
            v = wm[name]
            parts.append(f"{label} {v['agreements']} of {v['triggers']} triggers, {v['threshold']} needed")
            if not v["accepted"]:
                failed.append(f"the watermark ({label})")
    for name in ("reference", "hardened"):
        if name in proof and not proof[name]["accepted"]:
            failed.append(f"the proof-of-learning ({name} verifier: {', '.join(proof[name]['failed'])})")
    mechanisms = [m for m, present in (("watermark", bool(wm)), ("proof-of-learning", bool(proof))) if present]
    if failed:
        return Claim("ownership", False, f"Ownership NOT proven: {_names(failed)} failed.")
    verifiers = " and ".join(n for n in ("reference", "hardened") if n in proof)
    detail = "; ".join(parts) + (f"; the proof accepted by the {verifiers} verifier" if verifiers else "")
    return Claim("ownership", True, f"Ownership proven by {' and '.join(mechanisms)} ({detail}).")


def attacks_claim(attacks: list[dict[str, Any]]) -> Claim | None:
    if not attacks:
        return None
    removed = [a for a in attacks if a["watermark_removed"]]
    costly = [a for a in attacks if not a["accepted"] and not a["watermark_removed"]]
    n = len(attacks)
    if removed:
        listed = _names([f"{a['label']} ({_drop(a)})" for a in removed])
        sentence = (
            f"Watermark removed by {len(removed)} of {n} attacks, each costing less than {MAX_DROP_POINTS:g} points "
            f"of test accuracy: {listed}"
        )
    else:
        sentence = f"No attack removed the watermark: it {STILL_VERIFIES} after {n - len(costly)} of {n}"
    if costly:
        listed = _names([f"{a['label']} ({_drop(a)})" for a in costly])
        sentence += (
            f"; {len(costly)} more made verification fail only by costing {MAX_DROP_POINTS:g} or more points, "
            f"which does not count as removal: {listed}"
        )
    return Claim("watermark attacks", not removed, sentence + ".")


def piracy_claims(attacks: list[dict[str, Any]]) -> list[Claim]:
    claims = []
    for a in attacks:
        pirate = pirate_mark(a)
        if pirate is None:
            continue
        owner = "verifies" if a["accepted"] else "does not verify"
        theirs = "verifies" if pirate["accepted"] else "does not verify"
        sentence = (
            f"After ownership piracy ({a['label']}) the owner's watermark {owner} "
            f"({100 * a['trigger_accuracy']:.0f} % of its triggers) and the pirate's {theirs} "
            f"({100 * pirate['trigger_accuracy']:.0f} %)"
        )
        if a["accepted"] and pirate["accepted"]:
            sentence += ": both marks are present, so only the registration times of the keys can say whose came first"
        claims.append(Claim("piracy", a["accepted"] and not pirate["accepted"], sentence + "."))
    return claims


def spoofs_claim(spoofs: list[dict[str, Any]]) -> Claim | None:
    if not spoofs:
        return None
    n = len(spoofs)
    reference = sum(1 for s in spoofs if s["reference"]["accepted"])
    judged = [s for s in spoofs if s.get("hardened")]
    hardened_rejected = sum(1 for s in judged if not s["hardened"]["accepted"])
    sentence = f"Proof-of-learning spoofing: the reference verifier accepted {reference} of {n} forged proofs"
    if judged:
        sentence += f"; the hardened verifier rejected {hardened_rejected} of {len(judged)}"
    holds = bool(judged) and hardened_rejected == len(judged)
    return Claim("proof spoofs", holds, sentence + ".")


def keys_claim(results: dict[str, Any]) -> Claim | None:
    evidence = results.get("evidence") or {}
    if not evidence.get("demonstration_keys"):
        return None
    return Claim(
        "keys",
        None,
        f"The watermark keys were derived from seed {evidence.get('key_seed')}: they are for demonstration only "
        "(anyone who knows the seed can rebuild the trigger set).",
    )


def demo_claims(results: dict[str, Any]) -> list[Claim]:
    """The verdict of a demo run, one sentence per claim, in order of importance."""
    attacks = results.get("attacks", [])
    found = [
        ownership_claim(results),
        attacks_claim(attacks),
        *piracy_claims(attacks),
        spoofs_claim(results.get("spoofs", [])),
        keys_claim(results),
    ]
    return [c for c in found if c is not None]


# ------------------------------------------------------------------------------------------ the experiments


def _verifies(flags: list[bool]) -> str:
    return f"{sum(flags)} of {len(flags)}"


def experiment_claims(results: dict[str, dict[str, Any]]) -> list[Claim]:
    """One sentence per experiment found, from its rows (accuracies in percent)."""
    claims = []
    if "functionality" in results:
        rows = {r["model"]: r for r in results["functionality"]["results"]["rows"]}
        clean = rows.get("No-WM")
        marked = [rows[m] for m in ("FROMSCRATCH", "PRETRAINED") if m in rows]
        parts = [
            f"{r['model']} {'verifies' if r['accepted'] else 'does not verify'} ({r['trigger_accuracy']:.0f} % of the "
            f"triggers, test accuracy {r['test_accuracy']:.2f} %)"
            for r in marked
        ]
        sentence = "Functionality (Table 1): " + "; ".join(parts)
        if clean:
            sentence += f"; the model without watermark agrees with {clean['trigger_accuracy']:.0f} % of the triggers"
            sentence += f" and has {clean['test_accuracy']:.2f} % test accuracy"
        claims.append(Claim("functionality", all(r["accepted"] for r in marked), sentence + "."))
    if "unremovability" in results:
        rows = [r for r in results["unremovability"]["results"]["rows"] if r["attack"] != "none"]
        removed = [f"{r['attack']} on {r['embedding']}" for r in rows if r["watermark_removed"]]
        sentence = f"Unremovability (Fig. 6): {len(removed)} of {len(rows)} fine-tunings removed the watermark"
        sentence += f" ({', '.join(removed)})" if removed else ""
        original = [r for r in rows if r.get("trigger_accuracy_original_head") is not None]
        if original:
            low = min(original, key=lambda r: r["trigger_accuracy_original_head"])
            sentence += (
                f"; with the owner's head swapped back in (the paper's view) the lowest trigger accuracy is "
                f"{low['trigger_accuracy_original_head']:.0f} % ({low['attack']} on {low['embedding']})"
            )
        claims.append(Claim("unremovability", not removed, sentence + "."))
    if "piracy" in results:
        rows = results["piracy"]["results"]["rows"]
        owner = [r["ts_orig_accepted"] for r in rows]
        pirate = [r["ts_new_accepted"] for r in rows]
        sentence = (
            f"Ownership piracy (Fig. 7): after the pirate's embedding the owner's watermark verifies in "
            f"{_verifies(owner)} cases and the pirate's in {_verifies(pirate)}"
        )
        if any(a and b for a, b in zip(owner, pirate)):
            sentence += "; where both verify, only the keys' registration times can say whose came first"
        claims.append(Claim("piracy", all(owner) and not any(pirate), sentence + "."))
    if "transfer" in results:
        for r in results["transfer"]["results"]["rows"]:
            claims.append(
                Claim(
                    "transfer",
                    bool(r["accepted"]),
                    f"Transfer learning ({r['transfer']}): the watermark "
                    f"{'still verifies' if r['accepted'] else 'no longer verifies'} with the original head "
                    f"({r['trigger_accuracy_original_head']:.0f} % of the triggers).",
                )
            )
    if "pol" in results:
        pol = results["pol"]["results"]
        honest = pol["honest"]
        spoofs = pol["spoofs"]
        judged = [s for s in spoofs if s.get("hardened")]
        sentence = (
            f"Proof-of-learning: the honest proof is {accepted_word(honest['reference']['accepted'])} by the reference "
            f"verifier and {accepted_word(honest['hardened']['accepted'])} by the hardened one; the reference "
            f"verifier accepted {sum(s['reference']['accepted'] for s in spoofs)} of {len(spoofs)} forged proofs, "
            f"the hardened one rejected {sum(not s['hardened']['accepted'] for s in judged)} of {len(judged)}"
        )
        holds = honest["hardened"]["accepted"] and all(not s["hardened"]["accepted"] for s in judged)
        claims.append(Claim("proof-of-learning", holds, sentence + "."))
    return claims
