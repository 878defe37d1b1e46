"""GPT: a decoder-only transformer language model (Radford et al. 2018/2019; after nanoGPT).

    p(x) = Π_t softmax(W_e · h_t)[x_t],   h_t = Transformer(START, x_0, …, x_{t-1})_t

Training minimises the mean −log p(x_t | x_<t) over every position of a window (teacher forcing).
Sampling uses a key/value cache (:mod:`genlab.nn.transformer`): each new token costs one position
of attention instead of re-running the whole window; once the context is full, the window slides
([START] + the last ``block_size − 1`` tokens) and the cache is rebuilt.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.base import DataInfo
from ..nn.transformer import Transformer
from .autoregressive import SequenceARModel
from .base import ModelError
from .registry import register


@register("gpt")
class GPT(SequenceARModel):
    """Decoder-only transformer (nanoGPT-like) for text and other discrete sequences."""

    @dataclass
    class Config:
        n_layer: int = 4
        n_head: int = 4
        n_embd: int = 128
        block_size: int = 0          # context incl. START; 0 = the data's window length
        dropout: float = 0.0
        bias: bool = False

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if not info.discrete:
            raise ModelError("gpt models discrete tokens (text, levels); for real-valued sequences use "
                             "rnn or wavenet (mixture density head)")

    def __init__(self, info: DataInfo, config: "GPT.Config | None" = None):
        super().__init__(info, config)
        c = self.config
        self.block_size = c.block_size or info.dim
        self.transformer = Transformer(info.num_levels + 1, self.block_size, c.n_layer, c.n_head, c.n_embd,
                                       c.dropout, c.bias, out_size=info.num_levels)
        self._setup_layout(0, 0)

    def core(self, u, c, state):
        """state = (key/value cache, token history incl. START)."""
        B, L = u.shape
        if state is None:
            cache, hist = None, u
        else:
            cache, hist = state[0], torch.cat([state[1], u], 1)
        if cache is not None and cache[0][0].shape[2] + L <= self.block_size:
            logits, cache = self.transformer(u, cache)
            return logits, (cache, hist)
        if hist.shape[1] > self.block_size:                      # slide: START + last block_size-1 tokens
            hist = torch.cat([self._start(B), hist[:, -(self.block_size - 1):]], 1)
        logits, cache = self.transformer(hist, None)
        return logits[:, -min(L, logits.shape[1]):], (cache, hist)

    def log_prob(self, x, cond=None, **options):
        if self.info.dim > self.block_size:
            raise ModelError(f"gpt: sequences of {self.info.dim} tokens exceed block_size={self.block_size}")
        return super().log_prob(x, cond, **options)
