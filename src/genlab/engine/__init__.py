"""The one training loop for every family (see ``trainer.train``)."""
from .trainer import TrainConfig, Run, train

__all__ = ["TrainConfig", "Run", "train"]
