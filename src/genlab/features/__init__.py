"""Feature networks that turn images into features for FD, KID, PRDC and the classifier score.

genlab never downloads a network at run time (DESIGN §4). For its own image datasets it ships a
small CNN classifier per dataset, trained by ``benchmarks/train_feature_nets.py`` and stored in
``genlab/assets/feature_<dataset>.safetensors``; records name the network and its SHA-256.
An Inception-v3 path (:class:`InceptionFeatures`) loads a user-supplied TorchScript FID file.
"""
from .nets import (FeatureError, FeatureNet, InceptionFeatures, asset_path, feature_net_for, file_sha256,
                   load_feature_net, save_feature_net)
from .train import train_feature_net

__all__ = ["FeatureError", "FeatureNet", "InceptionFeatures", "asset_path", "feature_net_for", "file_sha256",
           "load_feature_net", "save_feature_net", "train_feature_net"]
