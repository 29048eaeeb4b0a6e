"""`modeldeed demo`: the whole ownership story on the embedded digits data, ending with the verdict and a summary.

Each run goes to a fresh directory (demo/run-<UTC time> unless --out names one); a directory that already
holds a run is never written into without --force, so a report always sits beside the keys it is evidence for.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..experiments.demo import DEMO_SWEEPS, SPOOF_METHODS, DemoSetting, estimate_seconds, run_demo
from ..report.verdict import accepted_word, attack_outcome, demo_claims, pirate_mark

LONG_RUN_SECONDS = 180


def register(commands: argparse._SubParsersAction) -> None:
    d = DemoSetting()
    p = commands.add_parser(
        "demo",
        help="run the whole story: keygen, watermarked training with a proof, verification, every attack",
        description="KeyGen → train with the watermark while recording a proof-of-learning → Verify / PVerify → "
        "verify the proof → every watermark attack (and strength sweeps) → every PoL spoof against the reference "
        "and the hardened verifier. Writes OUT/results.json and OUT/report.html beside the keys, model and proofs "
        "they describe.",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run directory; must not hold files unless --force (default: a fresh demo/run-<UTC time>)",
    )
    p.add_argument("--force", action="store_true", help="replace the run in --out (only once the new one is complete)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"owner's training epochs (default: {d.epochs})")
    p.add_argument(
        "--attack-epochs",
        type=int,
        default=d.attack_epochs,
        help=f"epochs of each training attack (default: {d.attack_epochs})",
    )
    p.add_argument(
        "--attacks",
        default=",".join(d.attacks),
        metavar="A,B",
        help=f"suite attacks to run, or 'all' for the whole suite (default: {','.join(d.attacks)})",
    )
    p.add_argument(
        "--sweeps",
        default=",".join(DEMO_SWEEPS),
        metavar="A,B",
        help=f"attacks run at several strengths for the curves (default: {','.join(DEMO_SWEEPS)}; '' for none)",
    )
    p.add_argument(
        "--spoofs",
        default=",".join(SPOOF_METHODS),
        metavar="M,N",
        help=f"PoL spoofs to run (default: {','.join(SPOOF_METHODS)}; '' for none)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"make the whole run reproducible: training, attacks, spoofs and the watermark keys follow from it "
        f"(keys from a seed are for demonstration only). Default: seed {d.seed} for training, attacks and "
        "spoofs, keys from the secure random source",
    )
    p.add_argument("--threads", type=int, default=d.threads, help=f"CPU threads (default: {d.threads})")
    p.add_argument("--no-progress", action="store_true", help="hide progress")
    p.add_argument(
        "--zk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also verify a watermarked MLP in zero knowledge (default: when Node.js and o1js are installed, "
        "otherwise the report says it was skipped and why; --zk requires them, --no-zk leaves the step out). "
        "It adds about 1-2 minutes, plus compiling the circuit once (docs/zk.md)",
    )
    p.set_defaults(handler=run_demo_cmd)


def run_demo_cmd(args: argparse.Namespace) -> int:
    from ..errors import ModeldeedError
    from ..experiments.rundir import default_run_directory
    from .progress import ProgressPrinter

    if args.epochs < 2 or args.attack_epochs < 0 or args.threads < 1:
        raise ModeldeedError("--epochs must be >= 2, --attack-epochs >= 0 and --threads >= 1")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise ModeldeedError(f"--seed must lie in [0, 2**32), got {args.seed}")
    spoofs = tuple(s for s in args.spoofs.split(",") if s)
    unknown = sorted(set(spoofs) - set(SPOOF_METHODS))
    if unknown:
        raise ModeldeedError(f"unknown spoofs {', '.join(unknown)}; choose from {', '.join(SPOOF_METHODS)}")
    setting = DemoSetting(
        epochs=args.epochs,
        attack_epochs=args.attack_epochs,
        seed=DemoSetting.seed if args.seed is None else args.seed,
        key_seed=args.seed,
        threads=args.threads,
        spoof_methods=spoofs,
        attacks=tuple(a for a in args.attacks.split(",") if a),
        sweeps=tuple(a for a in args.sweeps.split(",") if a),
        zk=args.zk,
    )
    out = args.out or str(default_run_directory())
    seconds = estimate_seconds(setting)
    if seconds > LONG_RUN_SECONDS:
        print(f"demo: about {seconds / 60:.0f} minutes on this machine", file=sys.stderr, flush=True)
    with ProgressPrinter(enabled=not args.no_progress) as printer:
        results = run_demo(out, setting, force=args.force, progress=not args.no_progress, on_progress=printer)
    print(summary(results))
    print(f"\nwrote {out}/results.json and {out}/report.html")
    if setting.key_seed is not None:
        print(f"the watermark keys were derived from seed {setting.key_seed}: for demonstration only")
    return 0


def summary(results: dict[str, Any]) -> str:
    """The verdict's sentences, then one line per verification, attack and spoof, in the report's words."""
    lines = ["Verdict:"]
    for claim in demo_claims(results):
        mark = {True: "+", False: "!", None: "-"}[claim.holds]
        lines.append(f" {mark} {claim.sentence}")
    lines += ["", f"model: cnn on digits, test accuracy {100 * results['model']['test_accuracy']:.2f} %", ""]
    rows = [("check", "outcome", "detail")]
    for name, v in results["watermark"].items():
        rows.append(
            (
                f"watermark, {name}",
                accepted_word(v["accepted"]),
                f"{v['agreements']} of {v['triggers']} triggers ({v['threshold']} needed)",
            )
        )
    zk = results.get("zk")
    if zk and "skipped" in zk:
        rows.append(("watermark, zero-knowledge (mlp)", "skipped", zk["skipped"]))
    elif zk:
        v = zk["zero_knowledge"]
        detail = f"at least {v['proven_at_least']} of {v['hidden']} hidden triggers ({v['required']} needed), none seen"
        rows.append(("watermark, zero-knowledge (mlp)", accepted_word(v["accepted"]), detail))
    for name, v in results["proof"].items():
        rows.append(
            (f"proof, {name} verifier", accepted_word(v["accepted"]), ", ".join(v["failed"]) or "all checks passed")
        )
    for a in results.get("attacks", []):
        detail = f"test {100 * a['test_accuracy_after']:.1f} %, owner's mark {100 * a['trigger_accuracy']:.0f} %"
        pirate = pirate_mark(a)
        if pirate is not None:
            detail += f", pirate's mark {100 * pirate['trigger_accuracy']:.0f} % ({accepted_word(pirate['accepted'])})"
        rows.append((f"attack {a['label']}", attack_outcome(a), detail))
    for s in results.get("spoofs", []):
        hardened = s.get("hardened")
        verdict = f"reference: {accepted_word(s['reference']['accepted'])}, hardened: " + (
            accepted_word(hardened["accepted"]) if hardened else "–"
        )
        ratio = (s.get("cost_ratio") or {}).get("gradient_evaluations")
        detail = ", ".join(hardened["failed"]) if hardened else ""
        if isinstance(ratio, (int, float)):
            detail = f"cost {ratio:.2g}x honest; {detail}"
        rows.append((f"spoof {s['method']}", verdict, detail))
    widths = [min(max(len(r[i]) for r in rows), 40) for i in range(2)]
    for i, row in enumerate(rows):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
        if i == 0:
            lines.append("-" * (widths[0] + widths[1] + 40))
    return "\n".join(lines)
