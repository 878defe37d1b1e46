"""WaveNet-style autoregressive model: a stack of dilated causal convolutions (van den Oord et al. 2016).

    u = [START, x_0, …, x_{T-2}] → embed → CausalConv1d(k=2)
      → residual blocks  z = tanh(W_f *_d h) ⊙ σ(W_g *_d h),  h ← h + W_r z,  skip += W_s z
        with dilations d = 1, 2, 4, …  (receptive field 1 + Σ (k−1)d)
      → ReLU → 1×1 → ReLU → 1×1 → logits over x_t (discrete) or a Gaussian mixture (real values)

Because u is x shifted right by one, output t sees x_<t only. On flattened 8×8 digits this is
Tomczak's causal-convolution ARM (Deep Generative Modeling, ch. 2) with gated residual blocks.
Sampling re-runs the network on the history at each step (no cache; sequences here are short).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.base import DataInfo
from ..nn.causal import CausalConv1d, GatedResidual1d, receptive_field
from .autoregressive import SequenceARModel, dilations_for
from .registry import register


@register("wavenet")
class WaveNet(SequenceARModel):
    """Dilated causal convolution stack (WaveNet) for flattened images, text and real-valued sequences."""

    @dataclass
    class Config:
        channels: int = 64
        skip_channels: int = 128
        kernel_size: int = 2
        dilations: tuple[int, ...] = ()   # () = 1, 2, 4, … covering the sequence
        stacks: int = 1                    # repeat the dilation cycle
        embd: int = 32
        components: int = 5
        class_cond: bool = False     # true: class-conditional (labels as cond=)

    def __init__(self, info: DataInfo, config: "WaveNet.Config | None" = None):
        super().__init__(info, config)
        c = self.config
        self.dilations = tuple(c.dilations) or dilations_for(info.dim if info.discrete else info.shape[0], c.kernel_size)
        self.embed = (nn.Embedding(self.input_size, c.embd) if info.discrete else nn.Linear(self.input_size, c.embd))
        self.inp = CausalConv1d(c.embd, c.channels, c.kernel_size)
        class_dim = c.embd if (c.class_cond and info.cond == "label") else 0
        self.blocks = nn.ModuleList(GatedResidual1d(c.channels, c.skip_channels, c.kernel_size, d, class_dim)
                                    for _ in range(c.stacks) for d in self.dilations)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(c.skip_channels, c.skip_channels, 1), nn.ReLU())
        self._setup_layout(c.skip_channels, c.components, class_dim=class_dim)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.config.kernel_size, [1] + list(self.dilations) * self.config.stacks)

    def core(self, u, c, state):
        """state = the input history (no cache): outputs for the last ``L`` positions."""
        L = u.shape[1]
        hist = u if state is None else torch.cat([state, u], 1)
        h = self.embed(hist).transpose(1, 2)                  # (B, E, T)
        h = self.inp(h)
        skip = 0
        for blk in self.blocks:
            h, s = blk(h, c)
            skip = skip + s
        out = self.out(skip).transpose(1, 2)                  # (B, T, F)
        return out[:, -L:], hist

