"""Architectures, the user-model factory, and the safe model files."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.models import (
    ModelInfo,
    ModelSpec,
    build_model,
    last_linear,
    load_model,
    replace_last_linear,
    save_model,
    spec_for_data,
)


@pytest.mark.parametrize("name", ["cnn", "resnet20", "resnet18"])
@pytest.mark.parametrize("shape, classes", [((1, 8, 8), 10), ((3, 32, 32), 7), ((1, 28, 28), 100)])
def test_output_shapes(name, shape, classes):
    if name == "resnet18" and shape[1] > 8:
        shape = (shape[0], 16, 16)  # keep the test fast; the architecture does not depend on the size
    model = build_model(spec_for_data(name, shape, classes), seed=0)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, *shape)).shape == (2, classes)


def test_init_is_a_function_of_the_seed():
    spec = spec_for_data("cnn", (1, 8, 8), 10)
    a, b, c = build_model(spec, seed=1), build_model(spec, seed=1), build_model(spec, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_save_load_round_trips_exactly(tmp_path):
    spec = spec_for_data("resnet20", (3, 16, 16), 5)
    model = build_model(spec, seed=3)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 16, 16))  # move the BatchNorm running statistics away from their defaults
    info = ModelInfo(spec, tuple("abcde"), (3, 16, 16), extra={"note": "x"})
    save_model(tmp_path / "m", model, info)
    loaded, loaded_info = load_model(tmp_path / "m")
    assert loaded_info == info
    for (name, t), (name2, u) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == name2 and t.dtype == u.dtype and torch.equal(t, u)
    assert not list(tmp_path.glob("m/.*tmp"))  # no temporary files left behind


def test_model_json_is_validated(tmp_path):
    spec = spec_for_data("cnn", (1, 8, 8), 10)
    save_model(tmp_path, build_model(spec, seed=0), ModelInfo(spec, tuple("0123456789"), (1, 8, 8)))
    doc = json.loads((tmp_path / "model.json").read_text())
    bad = dict(doc, input_shape=[1, 8])
    (tmp_path / "model.json").write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=r"model.json: field 'input_shape': List should have at least 3 items"):
        load_model(tmp_path)
    del bad["input_shape"]
    (tmp_path / "model.json").write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=r"field 'input_shape': Field required"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(dict(doc, format="something.else")))
    with pytest.raises(FormatError, match=r"is not a modeldeed.model document \('something.else'"):
        load_model(tmp_path)


def test_weights_file_is_checked(tmp_path):
    spec = spec_for_data("cnn", (1, 8, 8), 10)
    save_model(tmp_path, build_model(spec, seed=0), ModelInfo(spec, tuple("0123456789"), (1, 8, 8)))
    raw = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FormatError, match=r"model.safetensors: is \d+ bytes, too small for the \d+ bytes of tensors"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(raw[:8] + b"{" * 8 + raw[16:])
    with pytest.raises(FormatError, match=r"model.safetensors: not a valid safetensors file"):
        load_model(tmp_path)
    other = spec_for_data("cnn", (1, 8, 8), 12)
    save_model(tmp_path / "o", build_model(other, seed=0), ModelInfo(other, tuple("abcdefghijkl"), (1, 8, 8)))
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "o" / "model.safetensors").read_bytes())
    with pytest.raises(FormatError, match=r"tensor 'classifier.3.weight' is torch.float32\(12, 128\)"):
        load_model(tmp_path)


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def mlp(num_classes, input_size, in_channels, hidden=16):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size[0] * input_size[1], hidden),
                                 nn.ReLU(), nn.Linear(hidden, num_classes))
        def not_a_model(**kwargs):
            return 42
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models"
    sys.modules.pop("my_models", None)


def test_user_model_by_module_factory(user_module, tmp_path):
    spec = spec_for_data(f"{user_module}:mlp", (1, 8, 8), 10, '{"hidden": 7}', trust_code=True)
    assert spec.arguments == {"in_channels": 1, "num_classes": 10, "input_size": [8, 8], "hidden": 7}
    model = build_model(spec, seed=0, trust_code=True)
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10) and last_linear(model).in_features == 7
    save_model(tmp_path / "u", model, ModelInfo(spec, tuple("0123456789"), (1, 8, 8)))
    with pytest.raises(ModeldeedError, match="is user code"):
        load_model(tmp_path / "u")  # importing code named in a file is refused unless trusted
    loaded, _ = load_model(tmp_path / "u", trust_code=True)
    assert torch.equal(loaded[1].weight, model[1].weight)


def test_user_model_errors(user_module):
    with pytest.raises(ModeldeedError, match="not a torch.nn.Module"):
        build_model(ModelSpec(f"{user_module}:not_a_model"), trust_code=True)
    with pytest.raises(ModeldeedError, match="cannot import module"):
        build_model(ModelSpec("no_such_module_xyz:f"), trust_code=True)
    with pytest.raises(ModeldeedError, match="unknown model 'vgg'"):
        build_model(ModelSpec("vgg"))
    with pytest.raises(ModeldeedError, match="must be a JSON object"):
        spec_for_data("cnn", (1, 8, 8), 10, "[1, 2]")


def test_replace_last_linear():
    model = build_model(spec_for_data("resnet20", (3, 8, 8), 10), seed=0)
    old = replace_last_linear(model, torch.nn.Linear(64, 4))
    assert old.out_features == 10 and model(torch.rand(2, 3, 8, 8)).shape == (2, 4)
