"""timm models by name: an optional extra that downloads nothing and takes only the data's arguments."""

from __future__ import annotations

import pytest

from modeldeed.errors import ModeldeedError
from modeldeed.models import ModelSpec, build_model, is_user_factory, spec_for_data
from modeldeed.models.timm_models import timm_module


def timm_available() -> bool:
    try:
        timm_module()
    except ModeldeedError:
        return False
    return True


def test_timm_names_are_not_user_code():
    assert not is_user_factory("timm:resnet18") and is_user_factory("mypkg.models:make")


@pytest.mark.skipif(timm_available(), reason="checks the refusal where timm cannot be imported")
def test_a_timm_model_without_a_working_timm_is_a_clear_error():
    with pytest.raises(ModeldeedError, match=r"timm") as caught:
        build_model(ModelSpec("timm:resnet18", {"num_classes": 10, "in_channels": 3}), seed=0)
    text = str(caught.value)
    assert "pip install 'modeldeed[timm]'" in text or "torchvision build that matches your torch" in text


@pytest.mark.skipif(
    not timm_available(),
    reason="timm is not importable here: it needs torchvision, and PyPI's torchvision 0.28 does not import beside "
    "the local torch 2.13.0+cpu (operator torchvision::nms does not exist)",
)
def test_a_timm_model_builds_untrained_from_the_data_arguments():
    spec = spec_for_data("timm:resnet18", (3, 32, 32), 10)
    assert spec.arguments == {"in_channels": 3, "num_classes": 10, "input_size": [32, 32]}
    a, b = build_model(spec, seed=1), build_model(spec, seed=1)
    assert all((a.state_dict()[k] == b.state_dict()[k]).all() for k in a.state_dict())  # seeded, no download
    with pytest.raises(ModeldeedError, match="pretrained"):
        build_model(ModelSpec("timm:resnet18", {"num_classes": 10, "pretrained": True}))
    with pytest.raises(ModeldeedError, match="timm has no model"):
        build_model(ModelSpec("timm:no-such-net", {"num_classes": 10}))
