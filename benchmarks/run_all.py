"""Run every benchmark in this folder (bench_*.py), one after another; each prints its own ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    failed = []
    import torch

    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        if script.name == "bench_gpu.py" and not torch.cuda.is_available():
            print("skipped: no CUDA device here (bench_gpu.py runs on a GPU only)", flush=True)
            continue
        if subprocess.call([sys.executable, str(script), *sys.argv[1:]]) != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
