"""Glow (Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1×1 convolutions").

One step of flow = ActNorm → invertible 1×1 convolution → affine coupling (Table 1):

    ActNorm:      y = s ⊙ (x − b)                         ln|det| = H·W·Σ ln|s|
    1×1 conv:     y_{:,h,w} = W x_{:,h,w}                 ln|det| = H·W·ln|det W|
                  W = P L (U + diag(sign · e^{log|s|}))  (LU parameterisation, §3.2): ln|det W| = Σ log|s|
    coupling:     (x_a, x_b) → (x_a, x_b ⊙ exp(s(x_a)) + t(x_a)),   ln|det| = Σ s    (s bounded, B·tanh(ŝ/B))

Images use the multi-scale architecture (§3.3, from RealNVP): per level, squeeze (C, H, W) →
(4C, H/2, W/2), ``num_steps`` steps of flow, then split off half the channels to the base; the
last level keeps all channels. Vectors use the same step with an invertible linear map (LU)
in place of the 1×1 convolution and an MLP conditioner on half of the (mixed) features.
Discrete images are dequantised as in every genlab flow (``FlowModel``): ``log_prob`` is then the
uniform-dequantisation bound and ``likelihood_info()["kind"] == "bound"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import ModelError
from .flows_common import (ActNorm, AffineCoupling, Compose, ContextMLP, ConvNet, FactorOut, FlowModel, Inverse,
                           InvertibleLinearLU, Reshape, Squeeze, channel_mask)
from .registry import register


def glow_levels(c, h, w, num_steps, channels, levels, context_dim, scale_bound, act, seed=0, level=0):
    """squeeze → num_steps × (ActNorm, 1×1 conv, coupling) → split half → next level; unsqueeze back."""
    if h % 2 or w % 2:
        raise ModelError(f"glow: level {level} needs even height and width, got {h}×{w}; use fewer levels")
    ts = [Squeeze()]
    c, h, w = 4 * c, h // 2, w // 2
    for i in range(num_steps):
        ts += [ActNorm(c, image=True), InvertibleLinearLU(c, image=True, seed=seed + 100 * level + i),
               AffineCoupling(channel_mask(c, True), ConvNet(c, 2 * c, channels, context_dim, act), scale_bound)]
    if level < levels - 1:
        keep = c // 2
        ts.append(FactorOut(keep, Compose(glow_levels(keep, h, w, num_steps, channels, levels, context_dim,
                                                      scale_bound, act, seed, level + 1))))
    ts.append(Inverse(Squeeze()))
    return ts


@register("glow")
class Glow(FlowModel):
    """Glow (Kingma & Dhariwal 2018): ActNorm, invertible 1x1 convolutions (LU) and affine couplings, multi-scale."""

    likelihood = "exact"   # "bound" per instance on discrete data

    @dataclass
    class Config:
        num_steps: int = 8                       # steps of flow (per level for images)
        hidden: tuple[int, ...] = (128, 128)     # vectors: MLP conditioner widths
        channels: int = 64                       # images: conv conditioner width
        levels: int = 2                          # images: number of scales
        scale_bound: float = 2.0
        act: str = "relu"
        dropout: float = 0.0                     # vectors: dropout in the MLP conditioners
        preprocess: str = "logit"                # discrete data: logit | affine | none
        logit_alpha: float = 0.05
        dequant: str = "uniform"                 # discrete data: uniform | variational (learned q(u|x), Flow++)
        deq_layers: int = 4                      # variational dequantiser: layers
        deq_hidden: int = 32                     # variational dequantiser: conv channels (MLP: 2× this)
        conditional: bool = False               # p(x | y): labels/conditions feed the conditioners
        cond_embed: int = 16
        seed: int = 0                            # initial rotations of the LU layers

    @classmethod
    def default_config(cls, info):
        if info.modality == "image" and len(info.shape) == 3:
            return cls.Config(num_steps=4, channels=32, levels=2)
        if info.dim > 16:
            return cls.Config(num_steps=8, hidden=(256, 256))
        return cls.Config()

    def build_flow(self, context_dim):
        c = self.config
        shape = self.info.shape
        if self.info.modality == "image":
            return Compose(glow_levels(*shape, c.num_steps, c.channels, c.levels, context_dim, c.scale_bound, c.act,
                                       c.seed))
        D = self.info.dim
        if D < 2:
            raise ModelError("glow needs at least 2 dimensions; use 'maf' or 'nsf' for 1-D data")
        mask = torch.zeros(1, D)
        mask[:, : (D + 1) // 2] = 1
        ts = []
        for i in range(c.num_steps):
            ts += [ActNorm(D), InvertibleLinearLU(D, seed=c.seed + i),
                   AffineCoupling(mask.clone(), ContextMLP(D, 2 * D, c.hidden, context_dim, c.act, dropout=c.dropout),
                                  c.scale_bound)]
        if len(shape) != 1:
            ts = [Reshape(shape, (D,)), *ts, Inverse(Reshape(shape, (D,)))]
        return Compose(ts)
