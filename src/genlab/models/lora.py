"""LoRA: low-rank adapters for fine-tuning (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large
Language Models").

A frozen linear layer W₀ (out × in) gets a trainable low-rank update:

    h = W₀ x + (α / r) · B A x,     A ∈ R^{r×in} (random init),  B ∈ R^{out×r} (zero init)   (eq. 3)

so at the start the adapted model equals the base model. After training, ``merge`` folds the
update into the weight, W = W₀ + (α/r) B A (no extra cost at inference), and ``unmerge`` takes it
out again (W₀ is recovered up to rounding).

Usage::

    names = apply_lora(model, r=8, alpha=16)        # wraps Linear layers, freezes everything else
    gl.train(model, new_corpus, steps=500)          # only A and B are updated
    merge_lora(model); remove_lora(model)           # a plain model again → model.save_pretrained(...)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "unmerge_lora", "remove_lora", "lora_parameters"]

DEFAULT_TARGETS = ("c_attn", "c_proj", "mlp.0", "mlp.2")   # GPT attention and MLP projections


class LoRALinear(nn.Module):
    """``base`` (frozen) plus the low-rank update (α/r)·B A."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))       # as nn.Linear (and the paper's code)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        return self.scale * self.lora_B @ self.lora_A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scale * F.linear(F.linear(self.drop(x), self.lora_A), self.lora_B)   # (α/r) B A x

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False


def apply_lora(model: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               targets=DEFAULT_TARGETS) -> list[str]:
    """Wrap every ``nn.Linear`` whose qualified name ends with one of ``targets`` (GPT: the attention and
    MLP projections) in a :class:`LoRALinear`, and freeze all other parameters. Returns the wrapped names."""
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and any(full.endswith(t) for t in targets):
                setattr(module, child_name, LoRALinear(child, r, alpha, dropout))
                wrapped.append(full)
    if not wrapped:
        raise ValueError(f"apply_lora: no nn.Linear layer matches targets {targets}")
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    return wrapped


def _lora_modules(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> None:
    for m in _lora_modules(model):
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    for m in _lora_modules(model):
        m.unmerge()


def remove_lora(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace every LoRALinear by its base Linear (merged first if ``merge``), so the model saves and
    loads as the plain family again. All parameters become trainable again."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                if merge:
                    child.merge()
                setattr(module, child_name, child.base)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_" in n]
