"""Model families (one module each) and the protocol they share."""
from .base import GenerativeModel, ModelError, NoLikelihoodError, Phase
from .io import CheckpointError, load_model as load
from .registry import create, list_models, model_class, register

__all__ = ["GenerativeModel", "ModelError", "NoLikelihoodError", "Phase", "CheckpointError", "load", "create",
           "list_models", "model_class", "register"]
