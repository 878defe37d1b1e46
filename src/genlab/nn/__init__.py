"""Network building blocks shared by the families (no objectives, no samplers here)."""
from .mlp import MLP, activation, count_parameters

__all__ = ["MLP", "activation", "count_parameters"]
