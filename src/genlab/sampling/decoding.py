"""Decoding for autoregressive models: greedy, temperature, top-k, top-p (nucleus), beam search.

Every autoregressive family in genlab (GPT, RNN/LSTM/GRU, WaveNet, PixelCNN, MADE) draws its
next token through :func:`sample_next`, and text models generate through :func:`generate` /
:func:`beam_search`, which only need a *step function*::

    logits, state = step(new_tokens, state)   # new_tokens (B, L) int64; logits (B, L, V)

``state`` is whatever the model carries between calls (a key/value cache, an RNN hidden state,
or the whole history); ``None`` on the first call. This module imports no model family.

Equations (Holtzman et al. 2020, "The curious case of neural text degeneration"):

- temperature T:  p_T(v) ∝ exp(z_v / T); T → 0 is greedy decoding (argmax).
- top-k:          keep the k largest logits, renormalise.
- top-p:          keep the smallest set V_p (in order of decreasing probability) with
                  Σ_{v ∈ V_p} p(v) ≥ p — *including* the token whose probability crosses p —
                  renormalise.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]

__all__ = ["top_k_filter", "top_p_filter", "filter_logits", "sample_next", "generate", "beam_search",
           "check_decoding_options", "DECODING_OPTIONS"]

#: the keyword options every text model's ``sample`` accepts (the CLI passes them through)
DECODING_OPTIONS = ("prompt", "max_new_tokens", "temperature", "top_k", "top_p", "greedy", "beam_width")


def check_decoding_options(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    if temperature is None or temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and not (0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p!r}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the ``k`` largest logits (last axis) to −inf. Ties at the k-th value are kept."""
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest prefix of tokens sorted by decreasing probability whose
    mass is ≥ p (the token that crosses p is kept); set the others to −inf.

    A token at sorted position i is kept iff the mass strictly before it is < p:
    ``cumsum_i − prob_i < p``  (so position 0 is always kept).
    """
    if p >= 1.0:
        return logits
    probs = torch.softmax(logits.float(), dim=-1)
    sorted_probs, idx = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    remove_sorted = before >= p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, idx, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the order of Hugging Face's ``generate``)."""
    check_decoding_options(temperature, top_k, top_p)
    if temperature != 1.0 and temperature > 0:
        logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, int(top_k))
    if top_p is not None:
        logits = top_p_filter(logits, float(top_p))
    return logits


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, greedy: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row of ``logits`` (..., V) → (...) int64. ``greedy`` or ``temperature=0``
    takes the argmax."""
    check_decoding_options(temperature, top_k, top_p)
    if greedy or temperature == 0:
        return logits.argmax(-1)
    z = filter_logits(logits, temperature, top_k, top_p)
    probs = torch.softmax(z.float(), dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    out = torch.multinomial(flat, 1, generator=generator)
    return out.reshape(probs.shape[:-1])


@torch.no_grad()
def generate(step: StepFn, prefix: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
             generator: torch.Generator | None = None, first_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Extend ``prefix`` (B, L) by ``max_new_tokens`` tokens drawn with :func:`sample_next`.

    If ``L == 0`` the first token is drawn from ``first_logits`` (V,) (a model's distribution of
    the first symbol). Returns (B, L + max_new_tokens).
    """
    out = [prefix]
    B = prefix.shape[0]
    if prefix.shape[1] == 0:
        if first_logits is None:
            raise ValueError("generate: empty prefix needs first_logits")
        tok = sample_next(first_logits.expand(B, -1), temperature, top_k, top_p, greedy, generator)
        out.append(tok[:, None])
        max_new_tokens -= 1
        prefix = tok[:, None]
    if max_new_tokens <= 0:
        return torch.cat(out, 1)
    logits, state = step(prefix, None)
    for i in range(max_new_tokens):
        tok = sample_next(logits[:, -1], temperature, top_k, top_p, greedy, generator)
        out.append(tok[:, None])
        if i + 1 < max_new_tokens:
            logits, state = step(tok[:, None], state)
    return torch.cat(out, 1)


@torch.no_grad()
def beam_search(step: StepFn, prefix: torch.Tensor, max_new_tokens: int, beam_width: int = 4,
                first_logits: torch.Tensor | None = None, length_penalty: float = 0.0,
                eos: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search for the most probable continuation of one prefix (1, L).

    Keeps the ``beam_width`` partial sequences with the largest Σ log p; each step expands every
    beam by every token and keeps the best ``beam_width`` of the B·V candidates. A beam that
    emitted ``eos`` stays finished. Score = Σ log p / len**length_penalty (0 = raw log-probability).
    The step function is re-run on the whole sequence each step (no cache), so any model works.
    Returns (sequences (beam_width, L + max_new_tokens), scores (beam_width,)), best first.
    """
    if prefix.shape[0] != 1:
        raise ValueError("beam_search takes one prefix of shape (1, L)")
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    seqs = prefix
    scores = torch.zeros(1, dtype=torch.float64)
    finished = torch.zeros(1, dtype=torch.bool)
    for t in range(max_new_tokens):
        if seqs.shape[1] == 0:
            if first_logits is None:
                raise ValueError("beam_search: empty prefix needs first_logits")
            logp = torch.log_softmax(first_logits.double(), -1)[None]
        else:
            logits, _ = step(seqs, None)
            logp = torch.log_softmax(logits[:, -1].double(), -1)
        V = logp.shape[-1]
        if eos is not None and finished.any():
            # a finished beam can only be continued by eos at no cost (keeps it alive, unchanged)
            logp[finished] = float("-inf")
            logp[finished, eos] = 0.0
        cand = (scores[:, None] + logp).reshape(-1)
        k = min(beam_width, cand.numel())
        top = torch.topk(cand, k)
        beam, tok = top.indices // V, top.indices % V
        seqs = torch.cat([seqs[beam], tok[:, None]], 1)
        scores = top.values
        finished = finished[beam] | ((tok == eos) if eos is not None else torch.zeros_like(finished[beam]))
    if length_penalty:
        lengths = torch.full_like(scores, float(max(1, max_new_tokens)))
        if eos is not None:
            new = seqs[:, prefix.shape[1]:]
            hit = (new == eos).double()
            first = torch.where(hit.any(1), hit.argmax(1).double() + 1, lengths)
            lengths = first
        final = scores / lengths ** length_penalty
        order = torch.argsort(final, descending=True)
        return seqs[order], final[order]
    return seqs, scores
