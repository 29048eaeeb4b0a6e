"""`pol verify --engine ray` and `attack suite --engine ray` against the serial run, on a local 2-worker Ray.

One Ray instance (2 CPUs, no dashboard) is started for the module and shut down after it. Ray is an
optional extra that `make install` installs: without it these tests skip on a developer's machine and fail in CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from postgres_server import in_ci

from modeldeed.cli import main
from modeldeed.engine import LocalEngine, open_engine
from modeldeed.errors import ModeldeedError

SETTINGS = ["--data", "digits", "--model", "cnn", "--epochs", "1", "--batch-size", "128", "--seed", "4"]
QUIET = ["--threads", "1", "--no-progress"]


def require_ray():  # type: ignore[no-untyped-def]
    try:
        import ray
    except ImportError:
        if in_ci():
            pytest.fail("CI must run the Ray tests: ray is not installed (make install installs modeldeed[ray])")
        pytest.skip("ray is not installed (pip install 'modeldeed[ray]')")
    return ray


@pytest.fixture(scope="module")
def cluster():
    """The GCS address of a local Ray instance with 2 worker CPUs, this process its driver."""
    ray = require_ray()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _system_config={"worker_niceness": 0},  # as the engine's own local instance (engine.ray_engine)
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def proofs(tmp_path_factory) -> Path:
    """An honest proof under a statement, its commitment and opened part, and a Zhang et al. spoof of its model."""
    root = tmp_path_factory.mktemp("engine")
    assert main(["pol", "commit", *SETTINGS, "--checkpoint-every", "4", "--out", str(root / "commit")]) == 0
    train = ["train", *SETTINGS, *QUIET, "--checkpoint-every", "4", "--out", str(root / "model")]
    assert main([*train, "--proof", str(root / "honest"), "--statement", str(root / "commit")]) == 0
    assert main(["pol", "commit-proof", str(root / "honest"), "--out", str(root / "commitment.json")]) == 0
    opened = ["pol", "open", str(root / "honest"), "--commitment", str(root / "commitment.json")]
    assert main([*opened, "--out", str(root / "opened")]) == 0
    spoof = ["attack", "pol-spoof", str(root / "model"), "--data", "digits", "--method", "zhang3", *QUIET]
    assert main([*spoof, "--out", str(root / "spoof"), "--honest-timing-steps", "2"]) == 1
    return root


def verdict(capsys, *argv: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(["pol", "verify", *argv, "--json", *QUIET])
    return code, json.loads(capsys.readouterr().out)


def test_the_local_engine_maps_in_order_and_takes_no_address():
    assert LocalEngine().map(lambda x: x * x, [3, 1, 2]) == [9, 1, 4]
    with pytest.raises(ModeldeedError, match="--address is for --engine ray"):
        open_engine("local", "127.0.0.1:6379")
    with pytest.raises(ModeldeedError, match="unknown engine"):
        open_engine("spark")


def test_without_ray_installed_the_ray_engine_is_a_clear_exit_2(proofs, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert main(["pol", "verify", str(proofs / "honest"), "--engine", "ray", *QUIET]) == 2
    assert "needs Ray, which is not installed here (pip install 'modeldeed[ray]')" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:{closed}", "is unreachable"),
        ("nonsense", "--address must be auto, local, HOST:PORT or ray://HOST:PORT"),
        ("ray://127.0.0.1:{closed}", "is unreachable"),
    ],
)
def test_a_bad_or_unreachable_address_is_exit_2(proofs, capsys, address, message):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    argv = ["pol", "verify", str(proofs / "honest"), "--engine", "ray", "--address", address.format(closed=closed)]
    assert main([*argv, *QUIET]) == 2
    assert message in capsys.readouterr().err


def test_a_driver_connected_to_one_cluster_is_not_silently_sent_to_another(cluster, proofs, capsys):
    with socket.socket() as other:  # something listens there, but this process is connected to `cluster`
        other.bind(("127.0.0.1", 0))
        other.listen()
        address = f"127.0.0.1:{other.getsockname()[1]}"
        argv = ["pol", "verify", str(proofs / "honest"), "--engine", "ray", "--address", address, *QUIET]
        assert main(argv) == 2
    assert f"already connected to the Ray cluster at {cluster}, not {address}" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("proof", "extra", "accepted"),
    [
        ("honest", ["--all"], True),
        ("spoof/proof", ["--all"], False),  # rejected: no interval is reproduced, with nonzero distances
        ("opened", ["--hardened", "--statement", "{root}/commit", "--commitment", "{root}/commitment.json"], True),
        ("spoof/proof", ["--hardened", "--replay-mode", "tolerance"], False),
    ],
)
def test_pol_verify_on_ray_gives_the_serial_verdict_and_numbers(cluster, proofs, capsys, proof, extra, accepted):
    options = [e.format(root=proofs) for e in extra]
    code, local = verdict(capsys, str(proofs / proof), *options)
    ray_code, distributed = verdict(capsys, str(proofs / proof), *options, "--engine", "ray")
    assert (code, ray_code) == ((0, 0) if accepted else (1, 1))
    assert local["accepted"] is accepted and local["intervals"]
    assert distributed == local  # every field: verdict, reasons, and each interval's distances bit for bit
    if not accepted:
        assert any(any(v > 0 for v in i["error"].values()) for i in local["intervals"])


@pytest.mark.slow
def test_a_verifier_joins_a_running_cluster_by_host_and_port(cluster, proofs, capsys):
    """A separate process (a real second driver) joins the module's Ray by its GCS address."""
    _, local = verdict(capsys, str(proofs / "honest"))
    argv = ["pol", "verify", str(proofs / "honest"), "--engine", "ray", "--address", cluster, "--json", *QUIET]
    done = subprocess.run(
        [sys.executable, "-m", "modeldeed", *argv], capture_output=True, text=True, timeout=180, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == local


def test_a_worker_refuses_a_proof_file_other_than_the_one_the_verifier_checked(proofs, tmp_path):
    import shutil

    from modeldeed.pol.distributed import DatasetRef, ReplayTask, proof_file_digest, replay_task
    from modeldeed.pol.proof import load_proof

    copy = tmp_path / "proof"
    shutil.copytree(proofs / "honest", copy)
    _, proof_id = load_proof(copy)
    task = ReplayTask(
        directory=str(copy),
        opened=False,
        proof_file_sha256=proof_file_digest(copy, False),
        proof_id=proof_id,
        dataset=DatasetRef("digits"),
        settings={"metrics": ("l2",), "replay_mode": "tolerance"},
        exact=False,
        device="cpu",
        trust_code=False,
        threads=1,
        index=1,
        why=("challenge",),
        known_update=None,
    )
    answer = replay_task(task)
    assert answer["interval"]["accepted"] is True and answer["interval"]["index"] == 1
    assert answer["interval"]["error"]["l2"] == 0.0  # the recorded thread count: the replay is bit-identical
    doc = json.loads((copy / "proof.json").read_text())
    (copy / "proof.json").write_text(json.dumps(doc, indent=1))  # the same content, other bytes
    answer = replay_task(task)
    assert set(answer) == {"format_error"} and "differs on this worker from the file the verifier checked" in str(
        answer
    )
    assert torch.get_num_threads() == 1


@pytest.mark.slow
def test_attack_suite_on_ray_gives_the_serial_results(cluster, tmp_path, capsys):
    from attack_helpers import watermarked_digits

    from modeldeed.models import save_model
    from modeldeed.watermark import save_key_pair

    marked = watermarked_digits()
    save_model(tmp_path / "wm", marked.model, marked.info)
    save_key_pair(tmp_path / "key", marked.marking_key, marked.verification_key, pngs=False)
    base = ["attack", "suite", str(tmp_path / "wm"), "--key", str(tmp_path / "key"), "--data", "digits", *QUIET]
    base += ["--only", "ftll,prune-0.9,noise-0.3,quantize-2bit", "--epochs", "1", "--json"]
    results = {}
    for engine in ("local", "ray"):
        code = main([*base, "--out", str(tmp_path / engine), "--engine", engine, "--save-models"])
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads((tmp_path / engine / "results.json").read_text())
        assert code == (1 if any(r["watermark_removed"] for r in printed) else 0)
        assert (tmp_path / engine / "ftll" / "model.json").is_file()
        results[engine] = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in printed]
    assert [r["label"] for r in results["local"]] == ["ftll", "prune-0.9", "quantize-2bit", "noise-0.3"]
    assert results["ray"] == results["local"]


def test_a_dataset_named_by_a_relative_path_reaches_workers_as_an_absolute_one(tmp_path, monkeypatch):
    from modeldeed.pol.distributed import DatasetRef

    monkeypatch.chdir(tmp_path)
    ref = DatasetRef.of("memmap:runs/data", "files")
    assert ref == DatasetRef(f"memmap:{tmp_path}/runs/data", str(tmp_path / "files"))
    assert DatasetRef.of("digits") == DatasetRef("digits", None)
