"""Causal convolutions: dilated 1-D (WaveNet) and masked 2-D (PixelCNN), plus gated blocks.

Autoregressive factorisation  p(x) = Π_i p(x_i | x_<i)  needs networks whose output at position
i depends only on inputs at positions < i. Two ways:

- 1-D: pad on the left only. ``CausalConv1d(shift=False)`` sees x_{≤t} (van den Oord et al.
  2016, "WaveNet"); ``shift=True`` (the "type A" first layer) sees x_{<t}. Stacking layers with
  dilations 1, 2, 4, … gives a receptive field of 1 + Σ (k−1)·d.
- 2-D: mask the kernel (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"):
  type A hides the centre pixel and everything after it in raster order, type B hides only what
  follows the centre. The gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation
  with PixelCNN Decoders") splits a vertical stack (rows above) and a horizontal stack (the row
  so far) to remove the blind spot of stacked masked convolutions, and gates with
  tanh(W_f * x + V_f h) ⊙ σ(W_g * x + V_g h).

Only pixel order is masked (single-channel images); colour-channel masks are not implemented.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalConv1d", "MaskedConv2d", "GatedResidual1d", "GatedPixelBlock", "receptive_field"]


class CausalConv1d(nn.Conv1d):
    """Conv1d whose output at t sees x_{t-(k-1)d .. t}  (``shift=True``: x_{t-(k-1)d-1 .. t-1}).

    Implementation: left-pad by (k−1)·d (+1 and drop the last output when shifting).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, dilation: int = 1,
                 shift: bool = False, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.shift = shift
        self.left = (kernel_size - 1) * dilation + int(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(F.pad(x, (self.left, 0)))
        return y[..., :-1] if self.shift else y


def receptive_field(kernel_size: int, dilations) -> int:
    """Receptive field of a stack of causal convolutions: 1 + Σ (k−1)·d."""
    return 1 + sum((kernel_size - 1) * d for d in dilations)


class GatedResidual1d(nn.Module):
    """WaveNet residual block:  z = tanh(W_f * x + c_f) ⊙ σ(W_g * x + c_g);  x ← x + W_r z,  skip = W_s z.

    ``cond`` (B, C_c) is a global condition (e.g. a class embedding) added to both gates.
    """

    def __init__(self, channels: int, skip_channels: int, kernel_size: int = 2, dilation: int = 1,
                 cond_channels: int = 0):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation)
        self.cond = nn.Linear(cond_channels, 2 * channels, bias=False) if cond_channels else None
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        h = self.conv(x)
        if self.cond is not None and cond is not None:
            h = h + self.cond(cond)[:, :, None]
        f, g = h.chunk(2, dim=1)
        z = torch.tanh(f) * torch.sigmoid(g)
        return x + self.res(z), self.skip(z)


class MaskedConv2d(nn.Conv2d):
    """PixelCNN masked convolution (raster order). Type "A": output (i, j) sees pixels strictly
    before (i, j); type "B": also (i, j) itself. Kernel weights are multiplied by a fixed mask
    (a buffer), so hidden weights never leak, even after loading."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str = "B", bias: bool = True):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        k = kernel_size
        mask = torch.ones(1, 1, k, k)
        mask[:, :, k // 2, k // 2 + (mask_type == "B"):] = 0
        mask[:, :, k // 2 + 1:] = 0
        self.mask_type = mask_type
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups)


class GatedPixelBlock(nn.Module):
    """One gated PixelCNN layer with vertical (v) and horizontal (h) stacks (no blind spot).

    v at row i sees input rows ≤ i (kernel (k//2+1) × k, padded above); before it feeds h it is
    shifted down one row, so h at (i, j) sees rows < i through v and (i, < j) or (i, ≤ j) through
    its own 1 × (k//2+1) kernel (``first=True``: type A, excludes the current pixel).

        v' = tanh(Wf v + cf) ⊙ σ(Wg v + cg)
        h' = h + W1 [tanh(Wf h + Uf shift(v) + cf) ⊙ σ(Wg h + Ug shift(v) + cg)]   (residual unless first)
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, first: bool = False,
                 cond_channels: int = 0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        self.k, self.first = kernel_size, first
        kh = kernel_size // 2
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (kh + 1, kernel_size))
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, kh + 1))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.cond = nn.Linear(cond_channels, 4 * channels, bias=False) if cond_channels else None

    @staticmethod
    def _gate(t):
        a, b = t.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor | None = None):
        kh = self.k // 2
        v_pre = self.v_conv(F.pad(v, (kh, kh, kh, 0)))                  # rows i-kh..i
        if self.first:                                                   # h sees (i, j-kh-1 .. j-1)
            h_pre = self.h_conv(F.pad(h, (kh + 1, 0, 0, 0)))[..., :-1]
        else:                                                            # h sees (i, j-kh .. j)
            h_pre = self.h_conv(F.pad(h, (kh, 0, 0, 0)))
        v_shift = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]                  # row i gets v from row i-1
        h_pre = h_pre + self.v_to_h(v_shift)
        if self.cond is not None and cond is not None:
            cv, ch = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        v_new = self._gate(v_pre)
        h_new = self.h_out(self._gate(h_pre))
        if not self.first:
            h_new = h + h_new
        return v_new, h_new
