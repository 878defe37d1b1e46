"""Multi-layer perceptrons, the workhorse network of the vector-data families."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "elu": nn.ELU,
               "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """``in_dim → hidden[0] → … → hidden[-1] → out_dim`` with an activation between layers.

    ``zero_last=True`` initialises the last layer to zero (so e.g. a coupling layer starts as
    the identity and a residual branch starts silent); tests of such layers must train first.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128), act: str = "silu",
                 zero_last: bool = False, dropout: float = 0.0):
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), activation(act)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = h
        last = nn.Linear(d, out_dim)
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["MLP", "activation", "count_parameters", "torch"]
