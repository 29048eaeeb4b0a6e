"""Zero-knowledge public verification of the watermark (Adi et al. 2018, Appendix A, PVerify step 4).

The owner proves, without revealing a single hidden trigger, label or nonce, that a quantized twin of the
model classifies at least ⌈(1-ε)·h⌉ of the h hidden triggers of a cut-and-choose key as committed. The
circuit is an o1js ZkProgram (Kimchi/Pickles: transparent, no trusted setup) run by Node.js; see docs/zk.md.

mk, vk = zk_pkeygen(data.train.classes, data.train.input_shape, security_bits=16)
run = prove_watermark(model, mk, vk, test_data=data.test)          # owner
verdict = verify_watermark(model, vk, run.proof)                   # anyone
"""

from .circuit import CircuitSpec, cache_root, choose_slots, estimate_rows, setup
from .keys import opened_half_problems, poseidon_commitments, zk_pkeygen
from .node import CircuitRefused, ZkToolchainError, toolchain_problem
from .proof import ZkProof, load_proof, save_proof
from .prover import ProofRun, prove_watermark
from .quantize import QuantizedMLP, quantize_mlp
from .support import supported_problem
from .verifier import ZkVerdict, verify_watermark

__all__ = [
    "CircuitRefused",
    "CircuitSpec",
    "ProofRun",
    "QuantizedMLP",
    "ZkProof",
    "ZkToolchainError",
    "ZkVerdict",
    "cache_root",
    "choose_slots",
    "estimate_rows",
    "load_proof",
    "opened_half_problems",
    "poseidon_commitments",
    "prove_watermark",
    "quantize_mlp",
    "save_proof",
    "setup",
    "supported_problem",
    "toolchain_problem",
    "verify_watermark",
    "zk_pkeygen",
]
