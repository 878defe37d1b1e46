"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

    p(x | y) = Π_{i,j} p(x_ij | x_<ij, y),   p(x_ij | ·) = softmax(logits_ij)   over the num_levels levels

x_<ij = the pixels before (i, j) in raster order. Each pixel level is embedded, then a first gated
block of type A (excludes the current pixel) and ``layers − 1`` residual gated blocks of type B
(:class:`genlab.nn.causal.GatedPixelBlock`, vertical + horizontal stacks: no blind spot) feed a
ReLU–1×1–ReLU–1×1 head with ``num_levels`` logits per pixel. Class-conditional: a label embedding
is added inside every gate (the paper's h-conditioning), ``cond=`` at sampling and log_prob.

Single-channel images only (digits, MNIST); sampling draws one pixel per network evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo
from ..nn.causal import GatedPixelBlock
from ..sampling.decoding import check_decoding_options, sample_next
from .base import GenerativeModel, ModelError
from .registry import register


@register("pixelcnn")
class PixelCNN(GenerativeModel):
    """Gated PixelCNN with masked (type A/B) convolutions; class-conditional when the data have labels."""

    likelihood = "exact"
    conditional_ok = True

    @dataclass
    class Config:
        channels: int = 64
        layers: int = 6
        kernel_size: int = 3
        first_kernel: int = 5
        embd: int = 16
        head: int = 128
        class_cond: bool = False     # true: class-conditional (labels as cond=)
        dropout: float = 0.0

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if not info.discrete or info.modality != "image" or len(info.shape) != 3:
            raise ModelError("pixelcnn models discrete images (C, H, W) with integer levels "
                             f"(got kind={info.kind}, modality={info.modality}, shape={info.shape}); "
                             "use binarize=True or a digits/mnist5k dataset")
        if info.shape[0] != 1:
            raise ModelError(f"pixelcnn supports single-channel images only (got {info.shape[0]} channels)")

    def __init__(self, info: DataInfo, config: "PixelCNN.Config | None" = None):
        super().__init__(info, config)
        c = self.config
        self.L = info.num_levels
        self.embed = nn.Embedding(self.L, c.embd)
        cd = c.channels if (c.class_cond and info.cond == "label") else 0
        self.class_emb = nn.Embedding(info.num_classes, cd) if cd else None
        self.conditional_ok = self.class_emb is not None   # unconditional: cond= is refused
        self.blocks = nn.ModuleList([GatedPixelBlock(c.embd, c.channels, c.first_kernel, first=True, cond_channels=cd)]
                                    + [GatedPixelBlock(c.channels, c.channels, c.kernel_size, cond_channels=cd)
                                       for _ in range(c.layers - 1)])
        self.drop = nn.Dropout(c.dropout) if c.dropout else nn.Identity()
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c.channels, c.head, 1), nn.ReLU(), nn.Conv2d(c.head, self.L, 1))

    def _cond(self, cond, B):
        if cond is None and self.class_emb is not None:
            raise ModelError("pixelcnn is class-conditional (class_cond=true): pass cond= (labels)")
        if cond is None or self.class_emb is None:      # unconditional p(x): labels are ignored
            return None
        cond = torch.as_tensor(cond, dtype=torch.long, device=self.device).reshape(-1)
        if len(cond) == 1:
            cond = cond.expand(B)
        if len(cond) != B:
            raise ModelError(f"pixelcnn: cond has {len(cond)} labels for {B} images")
        return self.class_emb(cond)

    def logits(self, x: torch.Tensor, cond=None) -> torch.Tensor:
        """Logits (B, H, W, L) of p(x_ij | x_<ij, y) for every pixel (x: (B, 1, H, W) levels)."""
        return self.network(self.embed(x[:, 0]).permute(0, 3, 1, 2), self._cond(cond, len(x)))

    def network(self, h: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Embedded pixels (B, E, H, W) → logits (B, H, W, L) (causality tests differentiate through this)."""
        v = h
        for blk in self.blocks:
            v, h = blk(v, h, c)
            h = self.drop(h)
        return self.head(h).permute(0, 2, 3, 1)

    def log_prob(self, x, cond=None, **options):
        """Exact log p(x | y) = Σ_ij log softmax(logits_ij)[x_ij], nats per image."""
        self.check_input(x, cond)
        lp = torch.gather(F.log_softmax(self.logits(x, cond), -1), -1, x[:, 0, ..., None]).squeeze(-1)
        return lp.flatten(1).sum(1)

    def loss(self, batch, phase="main"):
        nll = -self.log_prob(batch["x"], batch.get("y") if self.class_emb is not None else None)
        return {"loss": nll.mean() / self.info.dim, "nll": nll.mean().detach()}

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, greedy: bool = False, **options):
        """Ancestral sampling in raster order (H·W network evaluations). ``cond``: labels (n,) or one
        label. ``temperature``/``top_k``/``top_p``/``greedy`` filter each pixel's distribution."""
        if options:
            raise ModelError(f"pixelcnn.sample: unknown option(s) {', '.join(options)}; "
                             "options are temperature, top_k, top_p, greedy")
        check_decoding_options(temperature, top_k, top_p)
        was = self.training
        self.eval()
        _, H, W = self.info.shape
        x = torch.zeros(n, *self.info.shape, dtype=torch.long, device=self.device)
        for i in range(H):
            for j in range(W):
                lg = self.logits(x, cond)[:, i, j]
                x[:, 0, i, j] = sample_next(lg, temperature, top_k, top_p, greedy, generator)
        self.train(was)
        return x
