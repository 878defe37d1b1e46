"""Scores from a classifier's predictions on generated samples: the Inception-score formula and
class-conditional accuracy (with a genlab feature classifier instead of Inception-v3)."""
from __future__ import annotations

import math

import torch

from ._util import MetricError


def _probs(p) -> torch.Tensor:
    p = torch.as_tensor(p).detach().double()
    if p.ndim != 2:
        raise MetricError(f"expected (N, C) class probabilities, got shape {tuple(p.shape)}")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=p.dtype), atol=1e-4):
        raise MetricError("rows must be probabilities (non-negative, summing to 1); apply softmax to logits")
    return p


def classifier_score(probs, splits: int = 10) -> dict:
    """Inception-score formula (Salimans et al. 2016, "Improved techniques for training GANs"):

        IS = exp( E_x KL(p(y|x) ‖ p(y)) ),   p(y) = E_x p(y|x)

    computed on ``splits`` equal chunks (as in the original code); returns mean and std over
    chunks. Ranges from 1 to C (number of classes): confident *and* diverse predictions score high.
    ``probs``: (N, C) class probabilities of a classifier on generated samples.
    """
    p = _probs(probs)
    n = p.shape[0]
    splits = max(1, min(splits, n))
    vals = []
    for part in torch.tensor_split(p, splits):
        py = part.mean(0, keepdim=True)
        kl = (part * (part.clamp_min(1e-30).log() - py.clamp_min(1e-30).log())).sum(1)
        vals.append(math.exp(float(kl.mean())))
    v = torch.tensor(vals, dtype=torch.float64)
    return {"score": float(v.mean()), "score_std": float(v.std(unbiased=True)) if len(vals) > 1 else 0.0,
            "splits": splits, "num_classes": p.shape[1]}


def class_conditional_accuracy(probs_or_logits, labels) -> float:
    """Fraction of samples generated for class c that a classifier assigns to class c:
    acc = (1/N) Σ_i 1[argmax_c p(c | x_i) = y_i] (e.g. the "classification accuracy score" idea of
    Ravuri & Vinyals 2019 in reverse: a fixed classifier judges conditional samples)."""
    p = torch.as_tensor(probs_or_logits)
    y = torch.as_tensor(labels).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise MetricError(f"need (N, C) predictions and N labels, got {tuple(p.shape)} and {tuple(y.shape)}")
    return float((p.argmax(1) == y).double().mean())
