"""Fuzz registry receipts: the bounded JSON reader, the declared Receipt, its offline verification against
the log's public key, and the registration beacon of an accepted one (modeldeed.registry.receipt)."""

import sys

import atheris
from harness import run

with atheris.instrument_imports(include=["modeldeed"]):
    from receipts import LOG_KEY

    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_json_bytes
    from modeldeed.registry.receipt import MAX_RECEIPT_BYTES, Receipt, registration_beacon, verify_receipt
    from modeldeed.schema import validate_document

VERIFIER = LOG_KEY.verifier()


def test_one(data: bytes) -> None:
    try:
        receipt = validate_document(Receipt, parse_json_bytes(data, "receipt.json", max_bytes=MAX_RECEIPT_BYTES), "r")
        if verify_receipt(receipt, VERIFIER).valid:
            registration_beacon(receipt)
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
