"""`modeldeed demo`: the whole ownership story on the embedded digits data, ending with a summary table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..experiments.demo import SPOOF_METHODS, DemoSetting, run_demo


def register(commands: argparse._SubParsersAction) -> None:
    d = DemoSetting()
    p = commands.add_parser(
        "demo",
        help="run the whole story: keygen, watermarked training with a proof, verification, every attack",
        description="KeyGen → train with the watermark while recording a proof-of-learning → Verify / PVerify → "
        "verify the proof → every watermark attack → every PoL spoof against the reference and the "
        "hardened verifier. Writes OUT/results.json and OUT/report.html.",
    )
    p.add_argument("--out", default="demo", metavar="DIR", help="output directory (default: demo)")
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
        "--spoofs",
        default=",".join(SPOOF_METHODS),
        metavar="M,N",
        help=f"PoL spoofs to run (default: {','.join(SPOOF_METHODS)}; '' for none)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"(default: {d.seed})")
    p.add_argument("--threads", type=int, default=d.threads, help=f"CPU threads (default: {d.threads})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--zk",
        action="store_true",
        help="also verify a watermarked MLP in zero knowledge (needs Node.js; adds minutes: the circuit compiles once)",
    )
    p.set_defaults(handler=run_demo_cmd)


def run_demo_cmd(args: argparse.Namespace) -> int:
    from ..errors import ModeldeedError

    if args.epochs < 2 or args.attack_epochs < 0 or args.threads < 1:
        raise ModeldeedError("--epochs must be >= 2, --attack-epochs >= 0 and --threads >= 1")
    spoofs = tuple(s for s in args.spoofs.split(",") if s)
    unknown = sorted(set(spoofs) - set(SPOOF_METHODS))
    if unknown:
        raise ModeldeedError(f"unknown spoofs {', '.join(unknown)}; choose from {', '.join(SPOOF_METHODS)}")
    setting = DemoSetting(
        epochs=args.epochs,
        attack_epochs=args.attack_epochs,
        seed=args.seed,
        threads=args.threads,
        spoof_methods=spoofs,
        attacks=tuple(a for a in args.attacks.split(",") if a),
        zk=args.zk,
    )
    stage_count = iter(range(1, 100))

    def announce(name: str) -> None:
        print(f"[{next(stage_count)}/{7 if args.zk else 6}] {name}", file=sys.stderr, flush=True)

    results = run_demo(args.out, setting, progress=not args.no_progress, on_stage=announce)
    print(summary_table(results))
    print(f"\nwrote {args.out}/results.json and {args.out}/report.html")
    return 0


def summary_table(results: dict[str, Any]) -> str:
    """A short plain-text summary: one line per verification, attack and spoof."""
    lines = [f"model: cnn on digits, test accuracy {100 * results['model']['test_accuracy']:.2f} %", ""]
    rows = [("check", "result", "detail")]
    for name, v in results["watermark"].items():
        rows.append(
            (
                f"watermark {name}",
                "ACCEPTED" if v["accepted"] else "rejected",
                f"trigger accuracy {100 * v['trigger_accuracy']:.0f} %",
            )
        )
    zk = results.get("zk")
    if zk:
        v = zk["zero_knowledge"]
        rows.append(
            (
                "watermark zero-knowledge (mlp)",
                "ACCEPTED" if v["accepted"] else "rejected",
                f"at least {v['proven_at_least']}/{v['hidden']} hidden triggers, none revealed",
            )
        )
    for name, v in results["proof"].items():
        rows.append(
            (
                f"proof, {name} verifier",
                "ACCEPTED" if v["accepted"] else "rejected",
                ", ".join(v["failed"]) or "all checks passed",
            )
        )
    for a in results.get("attacks", []):
        rows.append(
            (
                f"attack {a['label']}",
                "REMOVED" if a["watermark_removed"] else "survived",
                f"test {100 * a['test_accuracy_after']:.1f} %, trigger {100 * a['trigger_accuracy']:.0f} %",
            )
        )
    for s in results.get("spoofs", []):
        hardened = s["hardened"]
        verdict = f"reference {'ACCEPTS' if s['reference']['accepted'] else 'rejects'}, hardened " + (
            "ACCEPTS" if hardened and hardened["accepted"] else "rejects"
        )
        ratio = (s.get("cost_ratio") or {}).get("gradient_evaluations")
        detail = ", ".join(hardened["failed"]) if hardened else ""
        if isinstance(ratio, (int, float)):
            detail = f"cost {ratio:.2f}x honest; {detail}"
        rows.append((f"spoof {s['method']}", verdict, detail))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for i, row in enumerate(rows):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
        if i == 0:
            lines.append("-" * (widths[0] + widths[1] + 4 + max(len(r[2]) for r in rows)))
    return "\n".join(lines)
