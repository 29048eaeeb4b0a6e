"""Run `modeldeed ARGV` and print the process's peak resident memory (KiB) as the last line of stdout.

Used by tests/test_pol_hostile_files.py to measure what a hostile proof costs the verifier.
"""

import resource
import sys

import torch

from modeldeed.cli import main

if __name__ == "__main__":
    torch.set_num_threads(1)
    code = main(sys.argv[1:])
    sys.stdout.flush()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    sys.exit(code)
