"""Run `modeldeed ARGV` and print the process's peak resident memory (KiB) as the last line of stdout.

Used by tests/test_pol_hostile_files.py to measure what a hostile proof costs the verifier, and by
tests/test_failing_disk.py: with MODELDEED_TEST_FSIZE=N the kernel refuses to let this process write past
N bytes of any file (RLIMIT_FSIZE; SIGXFSZ ignored, so write() fails with EFBIG as on a full disk).
"""

import os
import resource
import signal
import sys

import torch

from modeldeed.cli import main

if __name__ == "__main__":
    torch.set_num_threads(1)
    if "MODELDEED_TEST_FSIZE" in os.environ:
        limit = int(os.environ["MODELDEED_TEST_FSIZE"])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    code = main(sys.argv[1:])
    sys.stdout.flush()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    sys.exit(code)
