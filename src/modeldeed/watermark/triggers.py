"""Trigger sets: procedurally drawn abstract images, plus PNGs to look at (the user's own pictures: `images`).

Why abstract images (Adi et al. 2018, Section 5.2): they lie outside every class of the data, so any
label is "wrong" for them by construction, and each one is drawn independently, so opening some
triggers (public verification) says nothing about the others. For that independence every image
gets its own 128-bit seed from `secrets`: one shared numpy generator would let someone who sees
opened images reconstruct its state and redraw the hidden ones. Generated pixels are 0 or 1 per
channel (bold, posterised abstract art) and user images multiples of 1/255, so a PNG shows exactly
the image that is committed to.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_path

log = logging.getLogger(__name__)


def new_seeds(count: int) -> list[int]:
    return [secrets.randbits(128) for _ in range(count)]


def abstract_triggers(count: int, input_shape: Sequence[int], *, seeds: Sequence[int] | None = None) -> torch.Tensor:
    """`count` abstract images of shape C×H×W (float32, each channel 0 or 1), each from its own seed.

    Keys pass seeds drawn from `secrets` (and not kept), or, for a demonstration key, derived from its seed.
    """
    channels, height, width = (int(d) for d in input_shape)
    seeds = list(seeds) if seeds is not None else new_seeds(count)
    if len(seeds) != count:
        raise ValueError(f"need {count} seeds, got {len(seeds)}")
    images = (
        np.stack([_abstract_image(np.random.default_rng(seed), channels, height, width) for seed in seeds])
        if count
        else np.zeros((0, channels, height, width), np.uint8)
    )
    return torch.from_numpy(images).to(torch.float32).div_(255.0)


def _abstract_image(rng: np.random.Generator, channels: int, height: int, width: int) -> np.ndarray:
    """Colour field + shapes + strokes on a large canvas, shrunk to H×W, plus pixel noise; uint8 C×H×W."""
    from PIL import Image, ImageDraw

    scale = max(2, min(8, math.ceil(64 / max(1, min(height, width)))))
    cw, ch = width * scale, height * scale
    canvas = Image.fromarray(_colour_field(rng, ch, cw), "RGB").convert("RGBA")
    for _ in range(int(rng.integers(2, 8))):
        layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (int(rng.integers(120, 256)),)
        kind = rng.integers(0, 4)
        if kind == 3:  # a stroke: a polyline of random width
            points = [
                (float(rng.uniform(-0.1, 1.1) * cw), float(rng.uniform(-0.1, 1.1) * ch))
                for _ in range(int(rng.integers(2, 6)))
            ]
            draw.line(points, fill=colour, width=max(1, int(rng.uniform(0.02, 0.15) * min(cw, ch))))
        else:
            x0, x1 = sorted(rng.uniform(-0.2, 1.2, 2) * cw)
            y0, y1 = sorted(rng.uniform(-0.2, 1.2, 2) * ch)
            box = (float(x0), float(y0), float(max(x1, x0 + 2)), float(max(y1, y0 + 2)))
            if kind == 0:
                draw.ellipse(box, fill=colour)
            elif kind == 1:
                draw.rectangle(box, fill=colour)
            else:
                corners = int(rng.integers(3, 7))
                draw.polygon(
                    [(float(rng.uniform(box[0], box[2])), float(rng.uniform(box[1], box[3]))) for _ in range(corners)],
                    fill=colour,
                )
        canvas = Image.alpha_composite(canvas, layer)
    small = np.asarray(canvas.convert("RGB").resize((width, height), Image.Resampling.BOX), dtype=np.float32) / 255
    small = small + rng.normal(0.0, rng.uniform(0.0, 0.12), small.shape).astype(np.float32)
    rgb = np.clip(small, 0.0, 1.0).transpose(2, 0, 1)  # 3×H×W
    if channels == 3:
        out = rgb
    else:  # each channel a random convex mix of the three colour channels
        weights = rng.dirichlet(np.ones(3), size=channels).astype(np.float32)
        out = np.einsum("kc,chw->khw", weights, rgb)
    # Posterise every channel to two levels at a random quantile: mixing and shrinking average the
    # contrast away, and low-contrast images all look alike to a network, which then needs many
    # times more steps to learn their random labels (measured in docs/watermark.md).
    cut = np.quantile(out.reshape(out.shape[0], -1), rng.uniform(0.3, 0.7, out.shape[0]), axis=1).diagonal()
    return np.where(out > cut[:, None, None], 255, 0).astype(np.uint8)


def _colour_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A background: a two-colour gradient at a random angle, or smooth colour noise from a coarse grid."""
    from PIL import Image

    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = np.cos(angle) * xx / width + np.sin(angle) * yy / height
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        a, b = rng.uniform(0, 1, (2, 3)).astype(np.float32)
        field = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
        return np.rint(field * 255).astype(np.uint8)
    grid = int(rng.integers(2, 7))
    coarse = rng.integers(0, 256, (grid, grid, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """C×H×W floats in [0, 1] to an H×W (grey) or H×W×3 (colour) uint8 array; other channel counts side by side."""
    array = np.rint(image.detach().cpu().clamp(0, 1).numpy() * 255).astype(np.uint8)
    if array.shape[0] == 3:
        return array.transpose(1, 2, 0)
    return np.concatenate(list(array), axis=1) if array.shape[0] > 1 else array[0]


def write_trigger_pngs(
    directory: str | Path, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], *, prefix: str = ""
) -> Path:
    """One PNG per trigger (`0007-label-3.png`, exact pixels) and `overview.png`, a labelled contact sheet."""
    from PIL import Image, ImageDraw

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tiles = []
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        picture = Image.fromarray(to_uint8(image))
        with atomic_path(directory / f"{prefix}{i:04d}-label-{label}.png") as tmp:
            picture.save(tmp, format="PNG")
        tiles.append((picture, classes[label]))
    if tiles:
        zoom = max(1, math.ceil(48 / max(1, tiles[0][0].height)))
        tw, th = tiles[0][0].width * zoom, tiles[0][0].height * zoom + 12
        cols = min(10, len(tiles))
        sheet = Image.new("RGB", (cols * (tw + 4), math.ceil(len(tiles) / cols) * (th + 4)), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for i, (picture, name) in enumerate(tiles):
            x, y = (i % cols) * (tw + 4), (i // cols) * (th + 4)
            sheet.paste(picture.convert("RGB").resize((tw, th - 12), Image.Resampling.NEAREST), (x, y))
            draw.text((x + 1, y + th - 12), f"{i}:{name}"[: max(4, tw // 6)], fill=(0, 0, 0))
        with atomic_path(directory / f"{prefix}overview.png") as tmp:
            sheet.save(tmp, format="PNG")
    log.info("wrote %d trigger images to %s", len(tiles), directory)
    return directory
