"""Training of the feature classifiers (not a generative family, so not ``gl.train``).

A feature network is a fixed measuring instrument: a plain supervised classifier trained once
(``benchmarks/train_feature_nets.py``) and shipped with its SHA-256. This short explicit loop
(Adam, cross-entropy, random ±1-pixel shifts as augmentation) is the whole of it.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .nets import FeatureNet


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero padding), one shift per batch."""
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=g))
    p = max_shift
    xp = F.pad(x, (p, p, p, p))
    h, w = x.shape[-2:]
    return xp[..., p + dy:p + dy + h, p + dx:p + dx + w]


def accuracy(net: FeatureNet, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((net.probs(x).argmax(1) == y).double().mean())


def train_feature_net(train, val=None, epochs: int = 15, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                      feature_dim: int = 128, max_shift: int = 1, log=print) -> tuple[FeatureNet, dict]:
    """Train a :class:`FeatureNet` classifier on a labelled image Dataset; returns (net, stats)."""
    info = train.info
    if info.modality != "image" or train.y is None or info.cond != "label":
        raise ValueError(f"feature nets need labelled images; {info.name!r} is {info.modality} with cond={info.cond}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = FeatureNet(info.shape[0], info.num_classes, feature_dim, info.num_levels or 0, info.name)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    x, y = net.scale(train.x), train.y
    t0 = time.perf_counter()
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        tot = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(net(_shift(x[idx], g, max_shift)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
        sched.step()
        msg = f"epoch {ep + 1}/{epochs} loss {tot / len(x):.4f}"
        if val is not None:
            msg += f" val acc {accuracy(net, val.x, val.y):.4f}"
        log(msg)
    net.eval()
    stats = {"epochs": epochs, "train_seconds": round(time.perf_counter() - t0, 1), "seed": seed,
             "train_acc": accuracy(net, train.x, train.y)}
    if val is not None:
        stats["val_acc"] = accuracy(net, val.x, val.y)
    return net, stats
