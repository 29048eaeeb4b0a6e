"""The o1js side without proving: Poseidon commitments, the layout both languages agree on, the row estimate,
and the circuit's equality constraints against dishonest witnesses (run on concrete values, seconds each).

Range checks (signs of pre-activations, logit margins, count ≥ t) are custom Kimchi gates that o1js checks
only when proving; test_zk_proofs.py covers those with real proofs.
"""

from __future__ import annotations

import dataclasses

import pytest
from zk_helpers import binary_images, labelled_triggers, nonces, quantized_tiny, require_toolchain, statement_for

from modeldeed.watermark import pkeygen
from modeldeed.zk.circuit import CircuitSpec, estimate_rows
from modeldeed.zk.keys import opened_half_problems, poseidon_commitments, zk_pkeygen
from modeldeed.zk.node import run_node
from modeldeed.zk.statement import challenges, honest_claims

pytestmark = pytest.mark.usefixtures("toolchain")

SLOTS = 4


@pytest.fixture(scope="module")
def toolchain():
    require_toolchain()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("zk-node")


def test_poseidon_commitments_bind_image_label_and_nonce():
    images = binary_images(3)
    base = poseidon_commitments(images, [1, 2, 3], nonces(3))
    assert len(set(base)) == 3 and all(c.isdigit() for c in base)
    assert poseidon_commitments(images, [1, 2, 3], nonces(3)) == base  # deterministic
    flipped = images.clone()
    flipped[0, 0, 0, 0] = 1 - flipped[0, 0, 0, 0]
    assert poseidon_commitments(flipped, [1, 2, 3], nonces(3))[0] != base[0]
    assert poseidon_commitments(images, [2, 2, 3], nonces(3))[0] != base[0]
    assert poseidon_commitments(images, [1, 2, 3], nonces(4)[1:])[0] != base[0]


def test_zk_key_opened_half_opens_and_a_swapped_commitment_is_named():
    mk, vk = zk_pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=2)
    assert opened_half_problems(vk) == []
    first = vk.opened.indices[0]
    commitments = list(vk.zk_commitments)
    commitments[first] = str(int(commitments[first]) + 1)
    problems = opened_half_problems(dataclasses.replace(vk, zk_commitments=tuple(commitments)))
    assert problems == [
        f"trigger {first}: its Poseidon commitment does not open to the image and label its SHA-256 commitments open to"
    ]
    # the hidden half's Poseidon commitments are the marking key's triggers
    hidden = mk.marking_indices()
    recomputed = poseidon_commitments(mk.images[hidden], [int(mk.labels[i]) for i in hidden],
                                      [mk.image_nonces[i] for i in hidden])  # fmt: skip
    assert recomputed == [vk.zk_commitments[i] for i in hidden]


def test_a_key_without_poseidon_commitments_is_refused():
    from modeldeed.errors import ModeldeedError
    from modeldeed.zk.keys import require_zk_key

    _mk, vk = pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=2)
    with pytest.raises(ModeldeedError, match="zk-keygen"):
        require_zk_key(vk)


def test_python_and_javascript_agree_on_the_layout(workdir):
    for dims, slots in (((64, 16, 10), 8), ((64, 8, 8, 10), 4), ((300, 16, 3), 4)):
        lay = run_node("layout", {"dims": list(dims), "slots": slots}, workdir).answer["layout"]
        spec = CircuitSpec(dims, slots)
        assert (lay["publicSize"], lay["privateSize"], lay["perSlot"]) == (
            spec.public_size,
            spec.private_size,
            spec.per_slot,
        )


def test_the_row_estimate_bounds_o1js_own_count(workdir):
    for dims in ((64, 16, 10), (64, 8, 8, 10)):
        body = run_node("rows", {"dims": list(dims), "slots": SLOTS}, workdir).answer["rows"]
        rows = body + 6.5 * CircuitSpec(dims, SLOTS).public_size  # Pickles hashes the public input: Poseidon
        assert rows <= estimate_rows(dims, SLOTS) <= 1.2 * rows


@pytest.fixture(scope="module")
def honest():
    """Three binary triggers in four slots, Poseidon-committed; the tiny MLP labels the first two as committed."""
    _model, q = quantized_tiny()
    images = binary_images(3, seed=1)
    labels = labelled_triggers(q, images, wrong=1)
    ns = nonces(3)
    statement = statement_for(q, poseidon_commitments(images, labels, ns), SLOTS)
    claims = honest_claims(statement, 0, images, labels, ns)
    assert claims.correct == 2 and claims.counted == [1, 1, 0, 0]
    return statement, claims


def consistent_cases(statement, claim_list, threshold=2):
    """Public and private inputs for each claims object, with the challenge seed recomputed from the claims (as a
    cheater would do), in one node call."""
    items = [{"transcript": c.transcript(statement.header(0, threshold))} for c in claim_list]
    return [
        (statement.public_input(0, threshold, seed, rhos), c.private())
        for c, (seed, rhos) in zip(claim_list, challenges(statement, items))
    ]


def check(statement, cases, workdir):
    request = {**statement.spec.request(), "cases": [{"public": p, "private": w} for p, w in cases]}
    return [r["holds"] for r in run_node("check", request, workdir).answer["results"]]


def tampered(claims, **changes):
    copy = dataclasses.replace(
        claims,
        bits=claims.bits.copy(),
        hidden=[z.copy() for z in claims.hidden],
        logits=claims.logits.copy(),
        nonces=list(claims.nonces),
        labels=list(claims.labels),
        counted=list(claims.counted),
    )
    for name, edit in changes.items():
        edit(getattr(copy, name))
    return copy


def test_the_constraints_hold_for_honest_claims_and_catch_each_lie(honest, workdir):
    statement, claims = honest

    def at(index, delta):
        def edit(array):
            array[index] += delta

        return edit

    def put(index, value):
        def edit(values):
            values[index] = value

        return edit

    lies = {
        # each lie comes with the challenge seed recomputed from the lying claims: the transcript check passes,
        # and the constraint named (at least) must catch it
        "a logit off by one (Freivalds, output layer)": tampered(claims, logits=at((0, 3), 1)),
        "a hidden pre-activation off by one (Freivalds, hidden layer)": tampered(
            claims, hidden=lambda h: at((0, 5), 1)(h[0])
        ),
        "a pixel bit flipped (commitment)": tampered(claims, bits=at((0, 7), 1 - 2 * int(claims.bits[0, 7]))),
        "a pixel 'bit' of 2 (booleanity)": tampered(claims, bits=at((1, 7), 2 - int(claims.bits[1, 7]))),
        "another label (commitment)": tampered(claims, labels=put(0, (claims.labels[0] + 1) % 10)),
        "another nonce (commitment)": tampered(claims, nonces=put(1, claims.nonces[1] + 1)),
        "an empty slot counted": tampered(claims, counted=put(3, 1)),
    }
    cases = consistent_cases(statement, [claims, *lies.values()])
    # and a seed that is not the hash of the claims (the public input derived from seed + 1)
    public, private = cases[0]
    ((seed, rhos),) = challenges(statement, [{"seed": str(int(public[6]) + 1)}])
    cases.append((statement.public_input(0, 2, seed, rhos), private))
    results = check(statement, cases, workdir)
    assert results[0] is True
    names = [*lies, "a challenge seed that is not the hash of the claims"]
    assert [name for name, holds in zip(names, results[1:]) if holds] == []


def test_zk_prove_refuses_a_model_without_the_watermark_before_proving(tmp_path, capsys):
    from modeldeed.cli import main
    from modeldeed.models import ModelInfo, save_model, spec_for_data
    from modeldeed.watermark import save_key_pair

    mk, vk = zk_pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=4)
    save_key_pair(tmp_path / "keys", mk, vk, pngs=False)
    spec = spec_for_data("mlp", (1, 8, 8), 10)
    model, _q = quantized_tiny(seed=3)  # never saw a trigger: about 1 in 10 classified as committed
    save_model(tmp_path / "model", model, ModelInfo(spec, vk.classes, (1, 8, 8)))
    code = main(["watermark", "zk-prove", str(tmp_path / "model"), "--key", str(tmp_path / "keys"),
                 "--out", str(tmp_path / "proof.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("NOT PROVED") and "no proof exists" in out
    assert not (tmp_path / "proof.json").exists()


def test_more_triggers_than_slots_split_into_chunks_that_each_hold(workdir):
    """Six hidden triggers in circuits of four slots: two chunks, each with its own threshold and claims."""
    from modeldeed.zk.statement import split_threshold

    _model, q = quantized_tiny()
    images = binary_images(6, seed=2)
    labels = labelled_triggers(q, images, wrong=1)
    ns = nonces(6)
    statement = statement_for(q, poseidon_commitments(images, labels, ns), SLOTS)
    assert statement.chunks() == [(0, 1, 2, 3), (4, 5)]
    claims = [honest_claims(statement, k, images, labels, ns) for k in range(2)]
    assert [c.counted for c in claims] == [[1, 1, 1, 1], [1, 0, 0, 0]]
    thresholds = split_threshold([c.correct for c in claims], 5)
    assert thresholds == [4, 1]
    items = [{"transcript": c.transcript(statement.header(k, t))} for k, (c, t) in enumerate(zip(claims, thresholds))]
    cases = [
        (statement.public_input(k, t, seed, rhos), c.private())
        for k, (c, t, (seed, rhos)) in enumerate(zip(claims, thresholds, challenges(statement, items)))
    ]
    # chunk 1's claims do not hold under chunk 0's public input (other commitments, other chunk number)
    cases.append((cases[0][0], cases[1][1]))
    assert check(statement, cases, workdir) == [True, True, False]
