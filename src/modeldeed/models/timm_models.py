"""timm models by name (`timm:resnet18`), an optional extra (`pip install 'modeldeed[timm]'`).

Only the architecture comes from timm: `pretrained` is always false (no download, offline machines), and the
only keyword arguments a spec may carry are the data's (`in_channels`, `num_classes`, `input_size`, mapped to
timm's `in_chans` and `num_classes`) and `drop_rate`, because a spec can come from a file a stranger wrote and
timm's other options load files. The name must be one `timm.list_models()` knows. Weights, when wanted, come
from a local safetensors file through modeldeed's own reader, never through timm.

timm needs torchvision; where torchvision cannot be imported beside the installed PyTorch (a CPU build of torch
with PyPI's torchvision), every `timm:` model is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ModeldeedError

PREFIX = "timm:"
EXTRA = "pip install 'modeldeed[timm]'"


def is_timm(architecture: str) -> bool:
    return architecture.startswith(PREFIX)


def timm_module() -> Any:
    """timm, or a ModeldeedError saying why it is unavailable."""
    try:
        import timm
    except ImportError as exc:
        raise ModeldeedError(f"timm models need the optional extra timm ({EXTRA}): {exc}") from None
    except (RuntimeError, OSError) as exc:  # torchvision built for another PyTorch fails while registering ops
        raise ModeldeedError(
            f"timm cannot be imported beside this PyTorch ({type(exc).__name__}: {str(exc)[:200]}); install the "
            "torchvision build that matches your torch"
        ) from None
    return timm


def timm_factory(architecture: str) -> Callable[..., nn.Module]:
    """The factory for `timm:NAME`: NAME from timm's registry, untrained (pretrained=False)."""
    name = architecture.removeprefix(PREFIX)
    timm = timm_module()
    if not name or not timm.is_model(name):
        raise ModeldeedError(f"{architecture!r}: timm has no model {name!r} (see timm.list_models())")

    def build(
        *,
        num_classes: int,
        in_channels: int = 3,
        input_size: list[int] | None = None,  # accepted so the data's arguments fit; timm's models adapt
        drop_rate: float = 0.0,
    ) -> nn.Module:
        for label, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if type(value) is not int or not 1 <= value <= 1 << 16:
                raise ValueError(f"{label} must be an integer in [1, 65536], got {value!r:.40}")
        if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be a number in [0, 1), got {drop_rate!r:.40}")
        return timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_channels, drop_rate=float(drop_rate)
        )

    return build
