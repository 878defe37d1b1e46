"""Small convolutional encoders and decoders for images (C, H, W), any H and W.

``ConvEncoder``: stride-2 3×3 convolutions (H → ⌈H/2⌉ per level), then a linear head to
``out_dim``. ``ConvDecoder``: a linear layer to the coarsest feature map, then per level a
nearest-neighbour upsampling to the encoder's size at that level and a 3×3 convolution, then a
3×3 convolution to ``out_channels``. Using the encoder's exact sizes (instead of transposed
convolutions) makes 8×8, 28×28 and 7×7 alike work. These are the VAE encoder/decoder and the
DCGAN-style discriminator/generator (Radford et al. 2016, without batch norm).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .mlp import activation


def level_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """Spatial sizes after each stride-2 convolution (3×3, padding 1): ⌈h/2⌉ per level."""
    sizes = [(h, w)]
    for _ in range(levels):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


def _sn(m: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(m) if on else m


class ConvEncoder(nn.Module):
    """(B, C, H, W) → (B, out_dim). ``channels`` gives the width at each stride-2 level.

    ``features(x)`` returns the flattened last feature map (used by projection discriminators).
    ``spectral_norm=True`` wraps every convolution and the head (Miyato et al. 2018).
    """

    def __init__(self, in_shape: Sequence[int], out_dim: int, channels: Sequence[int] = (32, 64),
                 act: str = "silu", spectral_norm: bool = False, extra_in: int = 0):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [_sn(nn.Conv2d(c, ch, 3, stride=2, padding=1), spectral_norm), activation(act)]
            c = ch
        self.body = nn.Sequential(*layers)
        hh, ww = level_sizes(h, w, len(channels))[-1]
        self.feature_dim = c * hh * ww
        self.head = _sn(nn.Linear(self.feature_dim + extra_in, out_dim), spectral_norm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        f = self.features(x)
        if extra is not None:
            f = torch.cat([f, extra], 1)
        return self.head(f)


class ConvDecoder(nn.Module):
    """(B, in_dim) → (B, out_channels, H, W), mirroring :class:`ConvEncoder`'s level sizes."""

    def __init__(self, in_dim: int, out_shape: Sequence[int], channels: Sequence[int] = (32, 64),
                 act: str = "silu", out_channels: int | None = None):
        super().__init__()
        c_out, h, w = out_shape
        out_channels = c_out if out_channels is None else out_channels
        sizes = level_sizes(h, w, len(channels))
        chans = list(channels)
        self.start = (chans[-1], *sizes[-1])
        self.fc = nn.Sequential(nn.Linear(in_dim, chans[-1] * sizes[-1][0] * sizes[-1][1]), activation(act))
        layers: list[nn.Module] = []
        c = chans[-1]
        for i in range(len(chans) - 1, -1, -1):
            nxt = chans[i - 1] if i > 0 else chans[0]
            layers += [nn.Upsample(size=sizes[i], mode="nearest"), nn.Conv2d(c, nxt, 3, padding=1), activation(act)]
            c = nxt
        layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(z).view(z.shape[0], *self.start))


__all__ = ["ConvEncoder", "ConvDecoder", "level_sizes"]
