"""Datasets as tensors with metadata. No training code here."""
from .base import DataError, DataInfo, Dataset, validate
from .registry import list_datasets, load_dataset, register_dataset
from . import toy2d  # noqa: F401  (each module registers its datasets)
from . import bishop, images, text  # noqa: F401
from .text import Vocab

__all__ = ["Vocab", "DataError", "DataInfo", "Dataset", "validate", "list_datasets", "load_dataset", "register_dataset"]
