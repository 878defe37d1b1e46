"""The one training loop for every family (see ``trainer.train`` and docs/engine.md)."""
from .trainer import Run, TrainConfig, TrainingError, train

__all__ = ["TrainConfig", "Run", "TrainingError", "train"]
