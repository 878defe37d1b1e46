"""Decoder-only transformer blocks with a key/value cache (after Karpathy's nanoGPT ``model.py``).

Causal self-attention (Vaswani et al. 2017):  Attention(Q, K, V) = softmax(Q Kᵀ / √d + M) V,
with M_ij = −∞ for j > i, so position i only attends to positions ≤ i. Pre-LayerNorm blocks
(Radford et al. 2019, GPT-2):  x ← x + Attn(LN(x));  x ← x + MLP(LN(x)).

Key/value cache: when generating, the keys and values of earlier positions do not change
(causality), so each new token only computes its own q, k, v and attends to the cached k, v.
A cache is a list with one ``(k, v)`` pair per layer, each (B, heads, L, head_dim).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalSelfAttention", "TransformerBlock", "Transformer"]


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past is not None:                                   # prepend cached keys/values
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        L = k.shape[2]
        drop = self.dropout if self.training else 0.0
        if L == T:                                             # no cache: plain causal mask
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:                                                  # query i sits at absolute position L-T+i
            mask = torch.ones(T, L, dtype=torch.bool, device=x.device).tril(diagonal=L - T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.c_proj(y)), (k, v)


class TransformerBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=bias), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd, bias=bias), nn.Dropout(dropout))

    def forward(self, x, past=None):
        a, kv = self.attn(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class Transformer(nn.Module):
    """Token + learned position embeddings → ``n_layer`` blocks → LayerNorm → logits (tied weights).

    ``out_size`` (default ``vocab_size``): number of predicted tokens, the first rows of the embedding.

    ``forward(idx, cache=None)`` returns ``(logits, new_cache)``; with a cache, ``idx`` holds only
    the new tokens and positions continue from the cached length.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                 dropout: float = 0.0, bias: bool = False, out_size: int | None = None):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(n_embd, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.out_size = out_size or vocab_size
        if self.out_size > vocab_size:
            raise ValueError("out_size must be <= vocab_size (the output matrix is tied to the first rows of wte)")
        self.apply(self._init)
        for name, p in self.named_parameters():                # GPT-2 scaled init of residual projections
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor, cache: list | None = None):
        B, T = idx.shape
        start = cache[0][0].shape[2] if cache else 0
        if start + T > self.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds the context of {self.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None)
            new_cache.append(kv)
        # weight tying (Press & Wolf 2017): logits = h · wte[:V]ᵀ (extra input tokens, e.g. a start
        # symbol, sit after the first out_size rows and are never predicted)
        return F.linear(self.ln_f(x), self.wte.weight[:self.out_size]), new_cache
