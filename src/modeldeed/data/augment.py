"""Random crop and horizontal flip driven by an explicit seed, so any training step can be replayed exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, seed: int, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Pad by `padding`, crop back to size at a random offset, flip half the images; same seed, same output.

    The random draws come from a private CPU generator, never from the global RNG.
    """
    gen = torch.Generator().manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)
    cols = torch.where(flips.view(n, 1).to(x.device), cols.flip(1), cols)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Gather each image's window: out[n, c, i, j] = padded[n, c, rows[n, i], cols[n, j]].
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()
